"""Sphinx configuration for the medfeat documentation (built in CI with warnings as errors).

The API reference is generated from each subpackage's ``__all__`` at build time, so every public
name appears in it without a hand-kept list; the CLI page is the real ``--help`` of every subcommand.
"""

import contextlib
import io
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import medfeat  # noqa: E402

project = "medfeat"
author = "the medfeat developers"
copyright = "2026, the medfeat developers"
version = release = medfeat.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "_executed"]
# Notebooks are rendered, not executed here: the test suite already runs them (tests/test_notebooks.py).
# With MEDFEAT_NOTEBOOK_OUT=docs/_executed set for that run, the pages show its outputs and figures.
nb_execution_mode = "off"
templates_path = ["_templates"]
html_theme = "alabaster"
html_static_path = []
html_title = f"medfeat {release}"

autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # included Markdown files start below the page's own title level


def _public_subpackages():
    return [name for name in medfeat.__all__ if name != "__version__"]


def _write_if_changed(path, text):
    path = Path(path)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _api_page():
    import importlib

    lines = [
        "API reference",
        "=============",
        "",
        "Every public name of every subpackage (its ``__all__``), generated from the docstrings.",
        "",
    ]
    for sub in _public_subpackages():
        module = importlib.import_module(f"medfeat.{sub}")
        title = f"``medfeat.{sub}``"
        doc = (module.__doc__ or "").strip().splitlines()
        lines += [title, "-" * len(title), "", doc[0] if doc else "", "", f".. currentmodule:: medfeat.{sub}", "",
                  ".. autosummary::", "   :toctree: generated/", ""]
        lines += [f"   {name}" for name in sorted(module.__all__)]
        lines.append("")
    _write_if_changed(HERE / "api.rst", "\n".join(lines))


def _cli_page():
    from medfeat.cli import build_parser

    parser = build_parser()
    sections = [("medfeat", parser)]
    for action in parser._actions:  # argparse keeps subparsers only here
        if action.__class__.__name__ == "_SubParsersAction":
            sections += [(f"medfeat {name}", sub) for name, sub in action.choices.items()]
    lines = ["Command line", "============", "",
             "The ``medfeat`` command: every subcommand's ``--help``, as the installed version prints it.", ""]
    for title, sub in sections:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            sub.print_help()
        lines += [f"``{title}``", "-" * (len(title) + 4), "", "::", ""]
        lines += ["   " + line if line else "" for line in buf.getvalue().splitlines()]
        lines.append("")
    _write_if_changed(HERE / "user_guide" / "cli.rst", "\n".join(lines))


def _notebook_pages():
    """Copy each teaching notebook into docs/notebooks/ as .ipynb: the executed copy when the test run kept
    one (docs/_executed/, same name), else the jupytext source converted without outputs."""
    import jupytext
    import nbformat

    out_dir = HERE / "notebooks"
    out_dir.mkdir(exist_ok=True)
    executed = HERE / "_executed"
    names = []
    for src in sorted((ROOT / "notebooks").glob("[0-9]*.py")):
        kept = executed / f"{src.stem}.ipynb"
        nb = nbformat.read(kept, as_version=4) if kept.is_file() else jupytext.read(src)
        _write_if_changed(out_dir / f"{src.stem}.ipynb", nbformat.writes(nb))
        names.append(src.stem)
    lines = ["Teaching notebooks", "==================", "",
             "The notebooks in ``notebooks/`` (jupytext percent scripts; open them in Jupyter with jupytext, or",
             "run them as scripts). The test suite executes every one of them; where a page shows no outputs, it",
             "was built without that run.", "", ".. toctree::", "   :maxdepth: 1", ""]
    lines += [f"   notebooks/{name}" for name in names]
    _write_if_changed(HERE / "notebooks.rst", "\n".join(lines) + "\n")


_api_page()
_cli_page()
_notebook_pages()


def _skip_generated_request_methods(app, what, name, obj, skip, options):
    # scikit-learn generates set_<method>_request descriptors for metadata routing; their docstrings
    # point into scikit-learn's own docs and say nothing about medfeat.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_generated_request_methods)
