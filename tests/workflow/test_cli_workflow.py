"""tests/workflow/cli_workflow.sh runs extract -> train -> heatmap -> evaluate -> froc through the CLI only;
its figures are checked against independent computations on the files the commands wrote."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "workflow" / "cli_workflow.sh"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_cli_workflow_script(tmp_path):
    env = dict(os.environ, MEDFEAT=f"{sys.executable} -m medfeat.cli", QUICK="1", FEATURES="color",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), TQDM_DISABLE="1")
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "wf")], capture_output=True, text=True, env=env,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    figures = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    out = tmp_path / "wf"

    # patch AUC: recomputed from the score CSVs the heatmap command wrote (rows labelled -1 left out)
    df = pd.concat([pd.read_csv(p) for p in sorted((out / "heatmaps").glob("*_scores.csv"))])
    df = df[df["y_true"] != -1]
    assert float(figures["patch_auc"]) == pytest.approx(roc_auc_score(df["y_true"], df["score"]), abs=1e-9)
    # slide AUC: one score per slide, its maximum; a slide is positive when any patch is
    per = df.groupby("group").agg(y=("y_true", "max"), s=("score", "max"))
    assert len(per) == 6 and per["y"].sum() == 3
    assert float(figures["slide_auc"]) == pytest.approx(roc_auc_score(per["y"], per["s"]), abs=1e-9)
    # every artefact carries its geometry
    meta = json.loads((out / "heatmaps" / "test_tumor_0.npy.json").read_text())
    assert meta["mpp"] == 1.0 and meta["patch_size"] == 64 and meta["slide_dimensions_level0"] == [1024, 1024]
    # FROC from froc.json, consistent with its own per-slide table
    froc = json.loads((out / "froc" / "froc.json").read_text())
    assert float(figures["froc"]) == pytest.approx(froc["score"])
    assert int(figures["froc_lesions"]) == froc["n_lesions"] == sum(r["n_lesions"] for r in froc["per_slide"])
    assert 0.0 <= froc["score"] <= 1.0
    assert np.isclose(froc["score"], np.mean(list(froc["sensitivity_at"].values())))
