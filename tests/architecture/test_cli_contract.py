"""The command line only parses: its defaults are the library's, its options reach the pipelines, its
warnings reach the user, -q leaves errors only, and no module imports another's private names."""

import argparse
import ast
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import medfeat
from medfeat.cli import build_parser, main
from medfeat.pipelines import load_model, load_slide_features
from medfeat.slides import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS, GridSpec, write_synthetic_slide

PACKAGE = Path(medfeat.__file__).parent


def _subparser(name):
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _option(parser, flag):
    return next(a for a in parser._actions if flag in a.option_strings)


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_contract")
    square = [[200, 200], [600, 200], [600, 600], [200, 600]]
    out = []
    for i in range(3):
        s = write_synthetic_slide(d / f"s{i}.tif", size=(1024, 1024), mpp=0.5, lesions=[square] if i < 2 else [],
                                  seed=i)
        out.append(s)
    return d, out


def test_help_defaults_are_the_grid_spec_and_reader_defaults():
    extract = _subparser("extract")
    spec = GridSpec()
    expected = {"--mpp": spec.mpp, "--magnification": spec.magnification, "--size": spec.size,
                "--stride": spec.stride, "--tissue": spec.tissue, "--min-tissue": spec.min_tissue,
                "--tissue-mpp": spec.tissue_mpp, "--scales": list(spec.scales), "--batch-size": DEFAULT_BATCH_SIZE,
                "--reader-threads": DEFAULT_NUM_WORKERS}
    assert {flag: _option(extract, flag).default for flag in expected} == expected
    text = extract.format_help()
    for flag, value in (("--size", "224"), ("--min-tissue", "0.5"), ("--tissue-mpp", "8.0"), ("--batch-size", "64")):
        block = re.search(rf"^  {flag} \S+\s+(.*?)(?=^  -|^\S|\Z)", text, re.S | re.M).group(1)
        assert f"default: {value}" in " ".join(block.split()), (flag, block)
    # the options with nothing given build exactly the default spec
    from medfeat.cli import _grid

    assert _grid(build_parser().parse_args(["extract", "s.svs", "--out", "o"])) == spec
    args = build_parser().parse_args(["extract", "s.svs", "--out", "o", "--magnification", "10", "--tissue", "none"])
    assert _grid(args) == GridSpec(magnification=10, tissue=None)
    # every GridSpec field has an extract option: a new field needs its flag
    flags = {a.dest for a in extract._actions}
    assert {f.name for f in dataclasses.fields(GridSpec)} <= flags


def test_store_and_model_metadata_agree_with_the_spec(slides, tmp_path):
    d, ss = slides
    argv = ["extract", *[str(s.path) for s in ss[:2]], "--out", str(tmp_path / "f"), "--features", "color",
            "--mpp", "1", "--size", "32", "--tissue", "gray", "--min-tissue", "0.3", "--annotations",
            str(tmp_path / "ann"), "-q"]
    from medfeat.slides import annotations_to_geojson

    (tmp_path / "ann").mkdir()
    for s in ss[:2]:
        annotations_to_geojson(s.lesions, tmp_path / "ann" / f"{Path(s.path).stem}.geojson")
    assert main(argv) == 0
    spec = GridSpec(mpp=1.0, size=32, tissue="gray", min_tissue=0.3)
    _, _, _, attrs = load_slide_features(tmp_path / "f" / "s0.h5")
    assert attrs["grid_spec"] == spec.to_dict()
    assert main(["train", str(tmp_path / "f"), "--annotations", str(tmp_path / "ann"), "--classifier", "logreg",
                 "--out", str(tmp_path / "m.skops"), "-q"]) == 0
    model, metadata = load_model(tmp_path / "m.skops")
    assert GridSpec.from_dict(metadata["grid_spec"]) == model.grid_spec == spec.replace(stride=32)
    assert (metadata["mpp"], metadata["size"], metadata["stride"]) == (1.0, 32, 32)


def test_extract_batch_size_is_the_cnn_forward_batch(slides, tmp_path, monkeypatch):
    import medfeat.features.deep as deep

    seen = []
    prepare = deep._prepare

    def recording(batch, *args, **kwargs):
        seen.append(len(batch))
        return prepare(batch, *args, **kwargs)

    monkeypatch.setattr(deep, "_prepare", recording)
    _, ss = slides
    rc = main(["extract", str(ss[0].path), "--out", str(tmp_path), "--features", "deep", "--mpp", "2", "--size", "32",
               "--tissue", "none", "--batch-size", "8", "-q"])
    assert rc == 0
    n = len(load_slide_features(tmp_path / "s0.h5")[0])
    assert n == 64  # 1024 px at 0.5 um/px = 512 um = 16 patches of 32 um per side... at 2 um/px: 8 x 8
    # the rows are computed in n / 8 forward passes of 8 patches (after any probe DeepFeatures.fit runs)
    assert max(seen) == 8 and seen[-(n // 8):] == [8] * (n // 8)


def test_train_with_one_slide_of_the_rarer_class_prints_the_no_cv_warning(slides, tmp_path):
    _, ss = slides
    feats = tmp_path / "f"
    assert main(["extract", *[str(s.path) for s in ss], "--out", str(feats), "--features", "color", "--mpp", "2",
                 "--size", "32", "--tissue", "gray", "-q"]) == 0
    # slide-level labels: one positive slide, two negative ones
    pd.DataFrame({"slide": ["s0", "s1", "s2"], "label": [1, 0, 0]}).to_csv(tmp_path / "l.csv", index=False)
    proc = subprocess.run([sys.executable, "-m", "medfeat.cli", "train", str(feats), "--labels", str(tmp_path / "l.csv"),
                           "--classifier", "logreg", "--out", str(tmp_path / "m.skops")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "medfeat: warning: only 1 slide(s) hold the rarer class: no group-aware cross-validation" in proc.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_evaluate_prints_nothing_but_errors(tmp_path, where):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 6)
    # 12 rows in 3 groups: evaluate warns (too few groups for a group bootstrap) without -q
    pd.DataFrame({"y_true": y, "y_score": y + rng.normal(0, 0.7, 12), "group": np.arange(12) % 3}).to_csv(
        tmp_path / "p.csv", index=False)
    args = ["evaluate", "p.csv", "--out", "r.html", "--n-bootstrap", "100"]
    loud = subprocess.run([sys.executable, "-m", "medfeat.cli", *args], capture_output=True, text=True, cwd=tmp_path,
                          timeout=600)
    assert loud.returncode == 0 and loud.stdout.strip()  # the summary is printed without -q
    argv = ["-q", *args] if where == "before" else [*args, "-q"]
    quiet = subprocess.run([sys.executable, "-m", "medfeat.cli", *argv], capture_output=True, text=True, cwd=tmp_path,
                           timeout=600)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    assert (tmp_path / "r.html").exists()
    bad = subprocess.run([sys.executable, "-m", "medfeat.cli", *argv[:1], "evaluate", "missing.csv", "--out", "r.html",
                          *argv[1:0]], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert bad.returncode == 1 and bad.stdout == "" and bad.stderr.startswith("medfeat: error: ")


def _functions(tree, prefix):
    return [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith(prefix)]


def test_cli_only_parses():
    source = (PACKAGE / "cli.py").read_text()
    tree = ast.parse(source)
    for fn in _functions(tree, "_cmd_"):
        loops = [n for n in ast.walk(fn) if isinstance(n, (ast.For, ast.While, ast.AsyncFor))]
        assert not loops, f"{fn.name} loops (over slides?) at line {loops[0].lineno}: that belongs in a pipeline"
    # no CSV / table parsing and no file reading of its own
    assert not re.search(r"read_csv|csv\.reader|(?<!os\.)open\(|\.read_text\(|h5py", source)
    # no literal grid defaults: the values come from GridSpec
    for literal in ("default=0.5", "default=224", "default=8.0", "default=64", '"otsu"'):
        assert literal not in source, literal


def _private_imports(path, root=PACKAGE.parent):
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            internal = node.level > 0 or module.startswith("medfeat")
            if not internal or module.split(".")[-1] == "_checks" or node.module is None:
                continue  # external, the shared helper module, or `from . import _submodule` (a module)
            found += [f"{path.relative_to(root)}:{node.lineno} from {'.' * node.level}{module} import "
                      f"{a.name}" for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_private_name_is_imported_across_modules():
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _private_imports(path)]
    assert not offenders, "\n".join(offenders)


def test_the_private_import_check_catches_one(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("from .features._base import _grey_uint8\nfrom ._checks import _convert\nfrom os import _exit\n")
    assert _private_imports(bad, tmp_path) == ["probe.py:1 from .features._base import _grey_uint8"]
