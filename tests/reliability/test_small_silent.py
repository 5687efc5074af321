"""Issue 10 item 10: small silent failures.

At commit 1e25e0f: ``--threshold nan`` was accepted (NaN compares false with every score, so the GeoJSON
regions were silently empty); a 2-row evaluation printed zero-width "confidence intervals" such as
1.000-1.000; ``evaluate --out x.html`` overwrote a neighbouring ``x.json`` of any origin; and a class folder
symlinked to the image folder itself was counted as a class holding every image again.
"""

import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from medfeat.cli import main
from medfeat.datasets import load_image_folder
from medfeat.evaluation import roc_report
from medfeat.pipelines.heatmap import Heatmap
from medfeat.slides import PatchGrid


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_cli_heatmap_threshold_must_be_finite(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as info:
        main(["heatmap", str(tmp_path / "model.skops"), str(tmp_path / "s.tif"), "--out", str(tmp_path),
              f"--threshold={value}"])
    assert info.value.code == 2
    assert "finite" in capsys.readouterr().err


def test_heatmap_regions_refuse_a_nan_threshold():
    grid = PatchGrid([[0, 0], [8, 0]], mpp=1, size=8, stride=8, slide_dimensions=(16, 8), slide_mpp=(1, 1))
    hm = Heatmap(np.array([0.2, 0.9]), grid)
    assert len(hm.polygons(0.5)) == 1
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        hm.polygons(float("nan"))


def test_two_row_evaluation_gives_no_zero_width_interval(recwarn):
    rep = roc_report([0, 1], [0.1, 0.9], random_state=0)
    assert rep.auc == 1.0
    assert all(math.isnan(v) for v in rep.auc_ci)
    for op in rep.operating_points.values():
        for lo, hi in op.ci.values():
            assert math.isnan(lo) and math.isnan(hi)
    text = rep.summary()
    assert "1.000-1.000" not in text and "1.0000-1.0000" not in text
    assert "redraws the same samples" in text


def test_evaluate_does_not_overwrite_a_neighbouring_json(tmp_path, capsys):
    preds = tmp_path / "preds.csv"
    preds.write_text("y_true,y_score\n0,0.1\n1,0.9\n0,0.3\n1,0.7\n0,0.2\n1,0.6\n")
    mine = tmp_path / "results.json"
    mine.write_text('{"my": "own results"}')
    # (the small-sample caveats this input raises are printed by the CLI, not what this test is about)
    rc = main(["evaluate", str(preds), "--out", str(tmp_path / "results.html"), "-q"])
    assert rc == 1
    assert "results.json exists and is not a medfeat report" in capsys.readouterr().err
    assert json.loads(mine.read_text()) == {"my": "own results"}
    assert not (tmp_path / "results.html").exists()
    # a report's own JSON is replaced on a re-run
    assert main(["evaluate", str(preds), "--out", str(tmp_path / "report.html"), "-q"]) == 0
    assert main(["evaluate", str(preds), "--out", str(tmp_path / "report.html"), "-q"]) == 0
    assert json.loads((tmp_path / "report.json").read_text())["sections"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_class_folder_symlinked_to_the_root_is_not_a_class(tmp_path):
    root = tmp_path / "images"
    for cls, value in (("benign", 40), ("tumour", 200)):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(root / cls / f"{cls}_p1.png")
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "again").symlink_to(root / "tumour", target_is_directory=True)
    with pytest.warns(UserWarning, match="loop"):
        data = load_image_folder(root)
    assert data.classes == ["benign", "tumour"]
    assert sorted(data.labels.tolist()) == ["benign", "tumour"]
