"""Every heatmap artefact maps back onto the slide, QuPath objects are well-formed, scores are named honestly."""

import json

import numpy as np
import pytest
from PIL import Image

from medfeat.pipelines import Heatmap, is_calibrated
from medfeat.slides import PatchGrid

SCORES = np.array([0.1, 0.7, 0.4, 0.9, 0.2, 0.6])


def _heatmap(**kw):
    # 6 patches of 10 x 10 px at 2 um/px on a 1 um/px slide of level-0 size 50 x 30: each patch spans 20 level-0
    # px; the right column (x = 40) and the bottom row (y = 20) stick out of the slide.
    coords = [[0, 0], [20, 0], [40, 0], [0, 20], [20, 20], [40, 20]]
    grid = PatchGrid(coords, mpp=2.0, size=10, stride=10, slide_dimensions=(50, 30), slide_mpp=(1.0, 1.0))
    return Heatmap(SCORES.copy(), grid, **kw)


def _check_meta(meta):
    assert meta["mpp"] == 2.0
    assert meta["slide_mpp"] == [1.0, 1.0]
    assert meta["patch_size"] == 10 and meta["patch_size_level0"] == 20.0
    assert meta["stride"] == 10.0 and meta["stride_level0"] == 20.0
    assert meta["slide_dimensions_level0"] == [50, 30]
    assert meta["array_shape"] == [2, 3]


def test_npy_csv_png_geojson_record_resolution_and_geometry(tmp_path):
    # Misleading point 7: the npy, csv and GeoJSON carried no mpp, stride or slide size.
    hm = _heatmap()
    npy = hm.to_npy(tmp_path / "h.npy")
    arr = np.load(npy)
    assert arr.shape == (2, 3) and arr[1, 2] == pytest.approx(0.6)
    _check_meta(json.loads((tmp_path / "h.npy.json").read_text()))

    y_true = np.array([0, 1, -1, 1, 0, 0])
    csv = hm.to_csv(tmp_path / "h.csv", y_true, group="slideA")
    import pandas as pd

    df = pd.read_csv(csv)
    assert list(df.columns) == ["x", "y", "score", "y_true", "group"]
    assert df["y_true"].tolist() == y_true.tolist() and df["x"].tolist() == [0, 20, 40, 0, 20, 40]
    _check_meta(json.loads((tmp_path / "h.csv.json").read_text()))

    png = hm.to_png(tmp_path / "h.png", overlay=False)
    _check_meta(json.loads(Image.open(png).info["Description"]))
    _check_meta(json.loads((tmp_path / "h.png.json").read_text()))

    gj = json.loads(hm.to_geojson(tmp_path / "h.geojson", objects="both").read_text())
    _check_meta(gj["medfeat"])


def test_qupath_detections_measurements_classes_clipping_and_unique_ids(tmp_path):
    hm = _heatmap()
    a = json.loads(hm.to_geojson(tmp_path / "a.geojson", 0.5, objects="detections", label="Lesion",
                                 negative_label="Benign", measurement="tumour score").read_text())
    dets = [f for f in a["features"] if f["properties"]["objectType"] == "detection"]
    assert len(dets) == 6
    assert [f["properties"]["measurements"]["tumour score"] for f in dets] == pytest.approx(SCORES.tolist())
    assert [f["properties"]["classification"]["name"] for f in dets] == [
        "Benign", "Lesion", "Benign", "Lesion", "Benign", "Lesion"]
    # geometry clipped to the 50 x 30 slide: the last cell spans x 40-50 (not 60) and y 20-30 (not 40)
    ring = np.array(dets[5]["geometry"]["coordinates"][0])
    assert ring[:, 0].min() == 40 and ring[:, 0].max() == 50 and ring[:, 1].min() == 20 and ring[:, 1].max() == 30
    for f in a["features"]:
        xy = np.array(f["geometry"]["coordinates"][0])
        assert xy[:, 0].max() <= 50 and xy[:, 1].max() <= 30
    b = json.loads(hm.to_geojson(tmp_path / "b.geojson", 0.5, objects="both").read_text())
    ids = [f["id"] for f in a["features"]] + [f["id"] for f in b["features"]]
    assert len(ids) == len(set(ids))  # unique within and across files
    regions = [f for f in b["features"] if f["properties"]["objectType"] == "annotation"]
    assert regions and all(np.array(f["geometry"]["coordinates"][0])[:, 1].max() <= 30 for f in regions)


def test_uncalibrated_scores_are_not_called_probabilities():
    # Misleading point 6: class-balanced, uncalibrated predict_proba and SVM decision values were labelled
    # "P(lesion)" / "probability", and a 0.5 threshold was applied to decision values.
    hm = _heatmap(kind="probability")
    assert "not a probability" in hm.score_name
    assert "not a probability" in hm.summary()
    dec = _heatmap(kind="decision")
    assert dec.decision_threshold == 0.0 and "decision value" in dec.score_name
    cal = _heatmap(kind="probability", calibrated=True)
    assert cal.score_name.startswith("P(positive)")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import TwoSlopeNorm

    ax = _heatmap(kind="probability", threshold=0.35).plot(overlay=False)
    norm = ax.images[-1].norm
    assert isinstance(norm, TwoSlopeNorm) and norm.vcenter == pytest.approx(0.35)
    assert "score" in ax.get_title() and "P(" not in ax.get_title()
    ax = cal.plot(overlay=False)
    assert not isinstance(ax.images[-1].norm, TwoSlopeNorm)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_is_calibrated():
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    assert not is_calibrated(make_pipeline(StandardScaler(), LogisticRegression()))
    assert is_calibrated(make_pipeline(StandardScaler(), CalibratedClassifierCV(LogisticRegression())))
