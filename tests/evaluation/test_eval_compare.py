"""Feature-set comparison table against pROC numbers; multi-class OvR / macro AUC against scikit-learn."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medfeat.evaluation import compare_feature_sets, markdown_table, multiclass_roc

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from reference_scores import reference_datasets

REF = json.loads((DATA / "proc_reference.json").read_text())  # see test_eval_delong.py for provenance


def test_comparison_table_matches_proc(tmp_path):
    y, scores = reference_datasets()["breast_cancer"]
    cmp = compare_feature_sets(y, scores, n_bootstrap=300, random_state=0)
    ref = REF["datasets"]["breast_cancer"]
    assert cmp.best == "worst_concave_points"  # highest pROC AUC (0.967)
    for name, r in ref["scores"].items():
        assert cmp.reports[name].auc_ci == pytest.approx(tuple(r["ci95"]), abs=1e-6)
    for t in ref["tests"]:
        if cmp.best in (t["a"], t["b"]):
            other = t["a"] if t["b"] == cmp.best else t["b"]
            assert cmp.p_values[other] == pytest.approx(t["p_value"], abs=1e-6)
    assert np.isnan(cmp.p_values[cmp.best])

    df = cmp.to_frame()
    assert list(df.columns) == list(scores)
    assert list(df.index) == ["Sensitivity", "Specificity", "AUC (95% CI)", "p vs worst_concave_points (DeLong)"]
    assert df.loc["AUC (95% CI)", "mean_radius"] == "0.938 (0.917–0.958)"
    assert df.loc["p vs worst_concave_points (DeLong)", "worst_concave_points"] == "best"
    md = cmp.to_markdown()
    assert md.splitlines()[0].startswith("| at youden | mean_radius |") and "0.938 (0.917–0.958)" in md
    html = cmp.to_html()
    assert "<table" in html and "0.938 (0.917–0.958)" in html
    cmp.to_csv(tmp_path / "t.csv")
    back = pd.read_csv(tmp_path / "t.csv", index_col=0)
    assert back.loc["mean_radius", "auc"] == pytest.approx(ref["scores"]["mean_radius"]["auc"], abs=1e-9)
    # Sensitivity/specificity at Youden match a direct count at the reported threshold.
    thr = cmp.thresholds["mean_texture"]
    pred = scores["mean_texture"] >= thr
    assert back.loc["mean_texture", "sensitivity"] == pytest.approx(pred[y == 1].mean())
    assert back.loc["mean_texture", "specificity"] == pytest.approx((~pred[y == 0]).mean())


def test_comparison_fixed_thresholds_and_errors():
    y = np.r_[np.zeros(20), np.ones(20)]
    s = {"a": np.arange(40.0), "b": np.r_[np.arange(20.0), np.arange(10.0, 30.0)]}
    cmp = compare_feature_sets(y, s, thresholds={"a": 20.0, "b": 25.0}, n_bootstrap=0)
    assert cmp.reports["a"].operating_points["youden"].sensitivity == 1.0
    assert cmp.reports["b"].operating_points["youden"].sensitivity == 0.25  # 25..29 of 10..29
    with pytest.raises(ValueError, match="missing"):
        compare_feature_sets(y, s, thresholds={"a": 1.0})
    with pytest.raises(ValueError, match=r"scores\['b'\]"):
        compare_feature_sets(y, {"a": s["a"], "b": s["b"][:-1]})


def test_markdown_table_escapes_pipes():
    df = pd.DataFrame({"x|y": ["a|b"]}, index=["r"])
    assert markdown_table(df).splitlines()[2] == "| r | a\\|b |"


def test_multiclass_against_sklearn():
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_wine(return_X_y=True)
    names = np.array(["barolo", "grignolino", "barbera"])[y]
    proba = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(C=0.01)), X, y, cv=5,
                              method="predict_proba")
    res = multiclass_roc(names, proba, classes=["barolo", "grignolino", "barbera"], random_state=0,
                         n_bootstrap=500)
    for k, c in enumerate(["barolo", "grignolino", "barbera"]):
        assert res.per_class.loc[c, "auc"] == pytest.approx(roc_auc_score(y == k, proba[:, k]))
        assert res.per_class.loc[c, "n_positive"] == np.sum(y == k)
    assert res.macro_auc == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    lo, hi = res.macro_ci
    assert lo <= res.macro_auc <= hi and hi - lo < 0.1
    assert "macro" in res.to_frame().index
    d = json.loads(res.to_json())
    assert d["macro_auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert [r["class"] for r in d["per_class"]] == ["barolo", "grignolino", "barbera"]
    assert d["per_class"][1]["n_positive"] == np.sum(y == 1)
    with pytest.raises(ValueError, match="3 columns but there are 2 classes"):
        multiclass_roc(names, proba, classes=["barolo", "grignolino"])
    with pytest.raises(ValueError, match="y_score contains"):
        multiclass_roc(names, np.where(proba > 0.9, np.nan, proba))
