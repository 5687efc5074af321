"""The slide workflow functions behind the CLI: class rules, unannotated slides, evaluation and FROC from files."""

import json

import numpy as np
import pandas as pd
import pytest

from medfeat.evaluation import clustered_auc_ci, roc_report
from medfeat.pipelines import (
    ClassRule,
    Heatmap,
    annotation_summary,
    evaluate_predictions,
    froc_from_heatmaps,
    read_thresholds,
    slide_labels,
)
from medfeat.slides import Annotation, PatchGrid, annotations_to_geojson


def _grid(n=4, size=10):
    coords = [[i * size, 0] for i in range(n)]
    return PatchGrid(coords, mpp=1, size=size, stride=size, slide_dimensions=(n * size, size), slide_mpp=(1, 1))


def _sq(x0, y0, s):
    return np.array([[x0, y0], [x0 + s, y0], [x0 + s, y0 + s], [x0, y0 + s]], float)


def test_slide_without_annotation_file_is_an_error_by_default(tmp_path):
    # Misleading point 2: a slide without (or with a misspelt) annotation file silently became all-negative.
    annotations_to_geojson([Annotation(_sq(0, 0, 10), label="Tumor")], tmp_path / "tumour_01.geojson")
    g = _grid()
    with pytest.raises(FileNotFoundError, match="tumor_01.*--unannotated"):
        slide_labels("tumor_01", g, tmp_path)  # misspelt: the file is tumour_01
    assert slide_labels("tumor_01", g, tmp_path, ClassRule(unannotated="negative")).tolist() == [0, 0, 0, 0]
    assert slide_labels("tumor_01", g, tmp_path, ClassRule(unannotated="skip")) is None
    assert slide_labels("tumour_01", g, tmp_path).tolist() == [1, 0, 0, 0]


def test_annotation_summary_lists_classes_and_roles(tmp_path):
    annotations_to_geojson([Annotation(_sq(0, 0, 10), label="Tumor"), Annotation(_sq(10, 0, 20), label="Stroma"),
                            Annotation(_sq(30, 0, 5), label="Stroma")], tmp_path / "a.geojson")
    rule = ClassRule(positive="Tumor", negative="Stroma", unannotated="negative")
    df = annotation_summary(["a", "b"], tmp_path, rule)
    rows = {(r["slide"], r["class"]): r for r in df.to_dict("records")}
    assert rows[("a", "Tumor")]["role"] == "positive" and rows[("a", "Tumor")]["area_px"] == 100.0
    assert rows[("a", "Stroma")]["polygons"] == 2 and rows[("a", "Stroma")]["area_px"] == 425.0  # 20^2 + 5^2
    assert rows[("b", "(none)")]["role"] == "no annotation file: negative"
    # without a positive list, two classes are "unlisted" in the summary (and an error when labelling)
    assert set(annotation_summary(["a"], tmp_path)["role"]) == {"unlisted"}


def _predictions(tmp_path, n_slides=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_slides):
        lab = np.r_[np.zeros(15, int), np.ones(5 if s % 2 == 0 else 0, int)]
        off = rng.normal(scale=0.5)
        for y in lab:
            rows.append({"y_true": y, "score": y * 1.2 + off + rng.normal(), "group": f"slide{s:02d}"})
    rows.append({"y_true": -1, "score": 9.0, "group": "slide00"})  # an ignored patch
    df = pd.DataFrame(rows)
    df.to_csv(tmp_path / "pred.csv", index=False)
    return df


def test_evaluate_predictions_patch_clustered_and_slide_level(tmp_path):
    df = _predictions(tmp_path)
    res = evaluate_predictions(tmp_path / "pred.csv", tmp_path / "rep.html", n_bootstrap=200, seed=0)
    kept = df[df["y_true"] != -1]
    ci = clustered_auc_ci(kept["y_true"], kept["score"], kept["group"])
    assert res.patch.auc_ci == pytest.approx((ci.lo, ci.hi), abs=1e-12)
    assert res.patch.n_samples == len(kept) and any("label -1" in n for n in res.notes)
    # slide level by hand: a slide is positive when any patch is, its score the maximum
    per = kept.groupby("group").agg(y=("y_true", "max"), s=("score", "max"))
    assert res.slide.n_samples == 12 and res.slide.auc == pytest.approx(roc_report(per["y"], per["s"], n_bootstrap=0).auc)
    assert (tmp_path / "rep.html").exists() and (tmp_path / "rep.json").exists()
    thr = read_thresholds(res.paths["thresholds"])
    assert thr == pytest.approx(res.patch.thresholds)
    # the validation thresholds carried to "test" data: fixed there, not re-chosen
    test = evaluate_predictions(tmp_path / "pred.csv", tmp_path / "test.html", thresholds=res.paths["thresholds"],
                                n_bootstrap=200)
    assert all(op.fixed for op in test.patch.operating_points.values())
    assert test.patch.operating_points["youden"].threshold == pytest.approx(thr["youden"])


def test_read_thresholds_formats_and_errors(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"youden": 0.3}))
    (tmp_path / "b.json").write_text(json.dumps({"operating_points": {"youden": {"threshold": 0.2}}}))
    (tmp_path / "c.json").write_text(json.dumps({"youden": "high"}))
    assert read_thresholds(tmp_path / "a.json") == {"youden": 0.3}
    assert read_thresholds(tmp_path / "b.json") == {"youden": 0.2}
    with pytest.raises(ValueError, match="finite number"):
        read_thresholds(tmp_path / "c.json")


def test_froc_from_heatmap_files(tmp_path):
    # slide t: 100 x 100 level-0 px at 10 um/px; one 400 um lesion at level-0 (20..60, 20..60); the
    # heatmap (10 x 10 cells of 10 px) peaks inside it (0.9) and outside (0.6): 1 lesion found, 1 FP.
    # slide n: normal (no annotation file, declared negative): one peak (0.7) = 1 FP.
    coords = [[x, y] for y in range(0, 100, 10) for x in range(0, 100, 10)]
    grid = PatchGrid(coords, mpp=10, size=1, stride=1, slide_dimensions=(100, 100), slide_mpp=(10, 10))
    s = np.zeros(100)
    s[4 * 10 + 4] = 0.9   # cell (row 4, col 4): patch centre (45, 45), inside the lesion
    s[8 * 10 + 8] = 0.6   # far from it
    hm = Heatmap(s, grid, kind="probability", calibrated=True)
    (tmp_path / "hm").mkdir()
    hm.to_npy(tmp_path / "hm" / "t.npy")
    s2 = np.zeros(100)
    s2[55] = 0.7
    Heatmap(s2, grid, kind="probability", calibrated=True).to_npy(tmp_path / "hm" / "n.npy")
    (tmp_path / "ann").mkdir()
    annotations_to_geojson([Annotation(_sq(20, 20, 40), label="Tumor")], tmp_path / "ann" / "t.geojson")
    with pytest.raises(FileNotFoundError, match="'n'"):
        froc_from_heatmaps(tmp_path / "hm", tmp_path / "ann", tmp_path / "froc", threshold=0.1)
    with pytest.warns(UserWarning, match="rests on 1 lesion"):
        res = froc_from_heatmaps(tmp_path / "hm", tmp_path / "ann", tmp_path / "froc", threshold=0.1,
                                 rule=ClassRule(unannotated="negative"))
    assert res.n_slides == 2 and res.n_lesions == 1 and res.n_normal_slides == 1
    # hand: the lesion is found at 0.9 with 0 FP; FPs at 0.7 and 0.6 -> sensitivity 1 from 0.25 FP/slide on
    assert res.sensitivity_at[0.25] == 1.0 and res.score == 1.0
    assert int(res.per_slide["n_fp"].sum()) == 2
    saved = json.loads((tmp_path / "froc" / "froc.json").read_text())
    assert saved["score"] == 1.0 and (tmp_path / "froc" / "froc.png").exists()
