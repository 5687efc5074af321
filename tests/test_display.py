"""Notebook display of result objects: short one-line repr, summary text, escaped HTML."""

from html import escape

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from medfeat.evaluation import compare_feature_sets, froc, multiclass_roc, roc_report
from medfeat.pipelines import CVResult, Heatmap, cross_validate_groups
from medfeat.slides import PatchGrid


def _one_line(obj, cls_name):
    text = repr(obj)
    assert text.startswith(f"<{cls_name}: ") and text.endswith(">")
    assert "\n" not in text and len(text) < 250 and "array(" not in text
    return text


@pytest.fixture
def binary_scores():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    s = y + rng.normal(0, 0.8, y.size)
    return y, s, np.arange(60) // 3


def test_roc_report_display(binary_scores):
    y, s, groups = binary_scores
    rep = roc_report(y, s, groups=groups, n_bootstrap=50, random_state=0)
    text = _one_line(rep, "ROCReport")
    assert text.startswith(f"<ROCReport: AUC {roc_auc_score(y, s):.4f} (95% CI ")
    assert "60 samples (30 positive), 20 groups" in text
    html = rep._repr_html_()
    # the headline lines, the operating-point table (one row per point) and the notes as a list
    assert f"AUC {roc_auc_score(y, s):.4f}" in html
    assert html.count("</tr>") == 2 + len(rep.operating_points)  # header, index-name row, one row per point
    assert rep.notes and all(f"<li>{escape(n)}</li>" in html for n in rep.notes)


def test_multiclass_html_is_escaped():
    rng = np.random.default_rng(1)
    y = np.repeat(["<b>", "a&b", "c"], 20)
    scores = rng.random((60, 3))
    res = multiclass_roc(y, scores, classes=["<b>", "a&b", "c"], n_bootstrap=30, random_state=0)
    _one_line(res, "MulticlassROC")
    html = res._repr_html_()
    assert "&lt;b&gt;" in html and "a&amp;b" in html and "<b>" not in html


def test_cv_result_summary_counts_and_pooled_auc():
    rng = np.random.default_rng(2)
    X = np.r_[rng.normal(0, 1, (20, 2)), rng.normal(1.5, 1, (20, 2))]
    y = np.repeat([0, 1], 20)
    groups = np.arange(40) // 2  # 20 patients
    cv = cross_validate_groups(LogisticRegression(), X, y, groups, n_splits=4)
    text = _one_line(cv, "CVResult")
    assert "4-fold grouped CV: 40 samples, 2 classes, 20 groups" in text
    summary = cv.summary()
    assert f"roc_auc {roc_auc_score(y, cv.scores):.4f}" in summary
    fold_auc = cv.metrics["roc_auc"]
    assert f"mean {fold_auc.mean():.4f}, range {fold_auc.min():.4f}-{fold_auc.max():.4f}" in summary
    assert cv._repr_html_().count("</tr>") == 1 + 4  # header + one row per fold
    assert isinstance(cv, CVResult)


def test_feature_set_comparison_summary(binary_scores):
    y, s, groups = binary_scores
    noisy = s + np.random.default_rng(3).normal(0, 2, s.size)
    comp = compare_feature_sets(y, {"good": s, "noisy": noisy}, groups=groups, n_bootstrap=30, random_state=0)
    _one_line(comp, "FeatureSetComparison")
    lines = comp.summary().splitlines()
    assert lines[0].startswith("2 feature sets; best good: AUC " + f"{roc_auc_score(y, s):.4f}")
    assert any(ln.strip().startswith("noisy:") and "p vs best" in ln for ln in lines)


def test_froc_display():
    with pytest.warns(UserWarning, match="anecdotal"):  # no lesion at all: froc says so
        res = froc({"A": [[10.0, 10.0, 0.9], [500.0, 500.0, 0.8]]}, {"A": None}, mpp=1.0)
    text = _one_line(res, "FROCResult")
    assert "1 slides (1 normal), 0 lesions" in text


def test_heatmap_repr_and_plot_into_an_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = PatchGrid(np.array([[0, 0], [64, 0], [128, 64]]), mpp=1.0, size=32, stride=32,
                     slide_dimensions=(200, 130), slide_mpp=(0.5, 0.5))
    hm = Heatmap([0.1, 0.2, 0.3], grid)
    text = _one_line(hm, "Heatmap")
    assert "3 patches of 32 px at 1 mpp, score (uncalibrated predict_proba, not a probability), range 0.1-0.3" in text
    assert "<pre>" in hm._repr_html_()
    fig, ax = plt.subplots()
    try:
        assert hm.plot(ax, overlay=False) is ax
        shown = ax.images[-1]
        np.testing.assert_array_equal(np.ma.filled(shown.get_array(), np.nan), hm.to_array())
        # cells are 64 level-0 px (32 px at 1 mpp on a 0.5 mpp slide), centred on their patches
        assert shown.get_extent() == [0.0, 4 * 64.0, 3 * 64.0, 0.0]  # a 3 x 4 lattice covers 200 x 130
        assert ax.get_xlim() == (0.0, 200.0) and ax.get_ylim() == (130.0, 0.0)
    finally:
        plt.close(fig)
