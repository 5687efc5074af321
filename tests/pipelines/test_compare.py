import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medfeat.pipelines.compare import compare_image_folder


def _write_folder(root, rng, classes, per_class=12, size=24, n_patients=None, single_group_class=None):
    """Classes differ only in brightness (same noise texture, integer shifts, no clipping): colour
    features separate them, LBP (invariant to monotonic grey-level changes) cannot."""
    rows = []
    levels = np.linspace(90, 160, len(classes)).round()
    for c, level in zip(classes, levels):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            texture = np.clip(rng.normal(0, 15, (size, size, 1)), -60, 60)
            img = (level + texture + rng.integers(-3, 4, (1, 1, 3))).astype(np.uint8)
            rel = f"{c}/{c}_{i}.png"
            Image.fromarray(img).save(root / rel)
            patient = f"P{c}{i // 2}" if c == single_group_class else f"P{i % (n_patients or per_class)}"
            if c == single_group_class:
                patient = "P_only"
            rows.append((rel, c, patient))
    pd.DataFrame(rows, columns=["relative_path", "label", "patient_id"]).to_csv(
        root / "manifest.csv", index=False
    )


def test_binary_comparison_files_table_and_resume(tmp_path, rng):
    data = tmp_path / "data"
    _write_folder(data, rng, ["normal", "tumour"], per_class=12, n_patients=6)
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="Only 6 groups .fewer than min_groups=10.: the group bootstrap was not run"):
        res = compare_image_folder(
            data, out, ["lbp", "color"], ["logreg", "knn"], n_splits=3, progress=False, n_bootstrap=50
        )
    assert res.task == "binary" and res.positive == "tumour"
    for name in (
        "table.md",
        "table.csv",
        "results.json",
        "report.html",
        "features_lbp.npz",
        "features_color.npz",
    ):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.tmp*"))
    t = res.table
    assert len(t) == 4 and set(zip(t["feature_set"], t["classifier"])) == {
        (f, c) for f in ("lbp", "color") for c in ("logreg", "knn")
    }
    auc = {(f, c): a for f, c, a in zip(t["feature_set"], t["classifier"], t["auc"])}
    assert auc[("color", "logreg")] > 0.95  # brightness is the class signal
    assert auc[("lbp", "logreg")] < 0.85  # LBP is blind to a brightness shift
    assert t["auc"].is_monotonic_decreasing
    assert np.isnan(t.loc[0, "p_vs_best"]) and (t["p_vs_best"][1:] <= 1).all()
    # 6 patients are too few for a group-bootstrap interval: none is given, and the notes say why
    assert t["auc_ci_lo"].isna().all() and t["auc_ci_hi"].isna().all()
    results = json.loads((out / "results.json").read_text())
    assert any("AUC CI: not available (group bootstrap not run: too few groups" in n for n in results["notes"])
    assert results["group_column"] == "patient_id" and results["n_groups"] == 6
    assert results["feature_dims"]["color"] == t.loc[t["feature_set"] == "color", "n_features"].iloc[0]
    # every fold held out whole patients: 6 patients over 3 folds -> 2 per test fold
    assert all(f["n_test_groups"] == 2 for f in results["folds"]["color | logreg"])
    md = (out / "table.md").read_text()
    assert "AUC (95% CI)" in md and "Bar et al." in md
    assert "<html" in (out / "report.html").read_text().lower()
    shown = repr(res)  # notebook display: one short line, the table as HTML
    assert shown.startswith("<CompareResult: binary comparison of 4 ") and "\n" not in shown
    assert res._repr_html_().count("</tr>") == 1 + 4 and "AUC (95% CI)" in res._repr_html_()

    again = compare_image_folder(
        data, out, ["lbp", "color"], ["logreg", "knn"], n_splits=3, progress=False, n_bootstrap=50
    )
    assert again.timings["cached"] == {"lbp": True, "color": True}
    pd.testing.assert_frame_equal(
        again.table.drop(columns="fit_seconds"), res.table.drop(columns="fit_seconds")
    )
    # an image that changes invalidates the caches; a speed-only parameter (n_jobs) does not
    first = sorted((data / "normal").glob("*.png"))[0]
    Image.fromarray(np.full((24, 24, 3), 99, np.uint8)).save(first)
    third = compare_image_folder(
        data, out, ["color"], ["logreg"], n_splits=3, progress=False, n_bootstrap=50, n_jobs=2
    )
    assert third.timings["cached"] == {"color": False}
    fourth = compare_image_folder(
        data, out, ["color"], ["logreg"], n_splits=3, progress=False, n_bootstrap=50
    )
    assert fourth.timings["cached"] == {"color": True}


def test_multiclass_with_deep_layers_fusion_and_a_single_slide_class(tmp_path, rng):
    data = tmp_path / "data"
    _write_folder(data, rng, ["a", "b", "c"], per_class=8, size=32, n_patients=4, single_group_class="c")
    out = tmp_path / "out"
    res = compare_image_folder(
        data,
        out,
        ["color", "deep", "fusion"],
        ["logreg"],
        n_splits=3,
        progress=False,
        deep_layers=("blocks.1", "blocks.2"),
        n_bootstrap=30,
    )
    assert res.task == "multiclass"
    dims = dict(zip(res.table["feature_set"], res.table["n_features"]))
    # EfficientNet-Lite0 stage widths: blocks.1 -> 24 channels, blocks.2 -> 40 channels
    assert dims["deep:blocks.1"] == 24 and dims["deep:blocks.2"] == 40
    hand = sum(np.load(out / f"features_{n}.npz")["X"].shape[1] for n in ("lbp", "gist", "color", "glcm"))
    assert dims["fusion"] == hand + 40
    for col in ("macro_auc", "macro_auc_ci_lo", "accuracy", "balanced_accuracy", "macro_auc_excl"):
        assert col in res.table
    assert any("['c']" in n and "single group" in n for n in res.notes)
    assert (res.table["accuracy"] <= 1).all() and (res.table["macro_auc"] >= 0).all()


def test_bad_arguments(tmp_path, rng):
    data = tmp_path / "data"
    _write_folder(data, rng, ["x", "y"], per_class=4, size=16)
    with pytest.raises(ValueError, match="feature_sets"):
        compare_image_folder(data, tmp_path / "o", ["sift"], progress=False)
    with pytest.raises(ValueError, match="classifier name"):
        compare_image_folder(data, tmp_path / "o", ["color"], ["svm"], progress=False)
    same = tmp_path / "same"
    _write_folder(same, rng, ["x", "y"], per_class=4, size=16, n_patients=1)
    with pytest.raises(ValueError, match="one group"):
        compare_image_folder(same, tmp_path / "o", ["color"], progress=False)
    one = tmp_path / "one"
    (one / "only").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(one / "only" / "a.png")
    with pytest.raises(ValueError, match="at least 2 classes"):
        compare_image_folder(one, tmp_path / "o", ["color"], progress=False, group_column=None)
