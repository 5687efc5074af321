"""roc_report: hand-computed operating points, fixed thresholds, (group) bootstrap, outputs, bad input."""

import json
import time

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medfeat.evaluation import roc_report
from medfeat.evaluation._bootstrap import SortedScores, bootstrap_weights

# Tiny data, counted by hand. Sorted by score: 0.8+ 0.7+ 0.6+ 0.4- 0.35+ 0.3- 0.2- 0.1-
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
S = np.array([0.1, 0.2, 0.3, 0.4, 0.35, 0.6, 0.7, 0.8])


def _op(rep, name):
    op = rep.operating_points[name]
    return op.threshold, op.sensitivity, op.specificity, op.ppv, op.npv, (op.tp, op.fp, op.tn, op.fn)


def test_operating_points_hand_computed():
    rep = roc_report(
        Y, S, n_bootstrap=0,
        operating_points=("youden", "sensitivity>=0.95", "specificity>=0.95", "specificity>=0.7", "sens>=0.5"),
    )
    assert rep.auc == 15 / 16  # 0.35 loses to 0.4 only
    # Youden J is 0.75 at 0.6 (sens 3/4, spec 1) and at 0.35 (sens 1, spec 3/4): the higher threshold wins.
    assert _op(rep, "youden") == (0.6, 0.75, 1.0, 1.0, 0.8, (3, 0, 4, 1))
    assert _op(rep, "sensitivity>=0.95") == (0.35, 1.0, 0.75, 0.8, 1.0, (4, 1, 3, 0))
    assert _op(rep, "specificity>=0.95") == (0.6, 0.75, 1.0, 1.0, 0.8, (3, 0, 4, 1))
    assert _op(rep, "specificity>=0.7") == (0.35, 1.0, 0.75, 0.8, 1.0, (4, 1, 3, 0))
    assert _op(rep, "sens>=0.5") == (0.7, 0.5, 1.0, 1.0, 4 / 6, (2, 0, 4, 2))
    assert rep.thresholds["youden"] == 0.6


def test_fixed_thresholds_are_applied_not_rechosen():
    rep = roc_report(Y, S, thresholds={"val_youden": 0.5, "low": 0.3}, n_bootstrap=200, random_state=0)
    assert list(rep.operating_points) == ["val_youden", "low"]
    assert _op(rep, "val_youden") == (0.5, 0.75, 1.0, 1.0, 0.8, (3, 0, 4, 1))
    assert _op(rep, "low") == (0.3, 1.0, 0.5, 4 / 6, 1.0, (4, 2, 2, 0))
    assert all(op.fixed for op in rep.operating_points.values())
    # Carrying validation thresholds over: the test-set point uses exactly the validation threshold.
    val = roc_report(Y, S, n_bootstrap=0)
    test = roc_report(Y, S + 0.05, thresholds=val.thresholds, n_bootstrap=0)
    assert test.operating_points["youden"].threshold == 0.6
    assert test.operating_points["youden"].sensitivity == 0.75  # 0.6+0.05, 0.7+0.05, 0.8+0.05 >= 0.6


def test_specificity_rule_can_call_nothing_positive():
    # The top score is a negative: specificity 1 is only reached by calling nothing positive.
    rep = roc_report([1, 0, 0, 1, 0], [0.5, 0.9, 0.1, 0.4, 0.2], operating_points=("specificity>=1",), n_bootstrap=0)
    op = rep.operating_points["specificity>=1"]
    assert op.threshold == np.inf and (op.tp, op.fp) == (0, 0) and np.isnan(op.ppv)


def test_weighted_bootstrap_auc_equals_sklearn_sample_weight(rng):
    y = (rng.random(300) < 0.3).astype(int)
    s = np.round(y + rng.normal(size=300), 1)
    ss = SortedScores(y, s)
    w = bootstrap_weights(rng, 5, 300, strata=ss.pos)
    aucs = ss.auc(w)
    for k in range(5):
        # Weights are in sorted order; map back to the original samples.
        orig = np.empty(300)
        orig[ss.order] = w[k]
        assert aucs[k] == pytest.approx(roc_auc_score(y, s, sample_weight=orig), abs=1e-12)
        # Stratified: class counts are kept.
        assert w[k][ss.pos == 1].sum() == y.sum() and w[k].sum() == 300


def test_group_bootstrap_never_splits_a_group(rng):
    groups = rng.integers(0, 12, 200)
    w = bootstrap_weights(rng, 300, 200, groups=groups)
    for g in range(12):
        members = w[:, groups == g]
        assert np.all(members == members[:, :1])  # every sample of a group has its group's count
    # Group counts per resample sum to the number of groups.
    first = np.array([w[:, np.flatnonzero(groups == g)[0]] for g in range(12)])
    assert np.all(first.sum(axis=0) == 12)


def _width(rep):
    return rep.auc_ci[1] - rep.auc_ci[0]


def test_group_bootstrap_equals_sample_bootstrap_on_duplicated_samples(rng):
    # Each sample copied 5 times as one group: resampling groups is resampling the original samples, so
    # the interval matches the original data's; treating copies as independent would make it ~sqrt(5) narrower.
    y = np.r_[np.zeros(60, int), np.ones(60, int)]
    s = 0.8 * y + rng.normal(size=120)
    base = roc_report(y, s, ci="bootstrap", n_bootstrap=2000, random_state=1)
    yd, sd, gd = np.repeat(y, 5), np.repeat(s, 5), np.repeat(np.arange(120), 5)
    grouped = roc_report(yd, sd, groups=gd, ci="bootstrap", n_bootstrap=2000, random_state=2)
    naive = roc_report(yd, sd, ci="bootstrap", n_bootstrap=2000, random_state=3)
    assert grouped.auc == pytest.approx(base.auc)
    assert grouped.ci_method == "group bootstrap" and grouped.n_groups == 120
    assert _width(grouped) == pytest.approx(_width(base), rel=0.2)
    assert _width(naive) < 0.6 * _width(grouped)
    assert any("whole groups" in n for n in grouped.notes) and any("independent" in n for n in grouped.notes)
    assert grouped.auc_ci_delong is not None  # kept for reference, flagged in the notes


def test_bootstrap_ci_close_to_delong_and_contains_estimates(rng):
    y = np.r_[np.zeros(300, int), np.ones(200, int)]
    s = y + rng.normal(size=500)
    rep = roc_report(y, s, ci="bootstrap", random_state=0)
    assert rep.auc_ci == pytest.approx(rep.auc_ci_delong, abs=0.01)
    for op in rep.operating_points.values():
        for m in ("sensitivity", "specificity", "ppv", "npv"):
            lo, hi = op.ci[m]
            assert lo <= getattr(op, m) + 1e-9 and getattr(op, m) <= hi + 1e-9
    assert rep.band_tpr_lo.shape == (101,) and np.all(rep.band_tpr_lo <= rep.band_tpr_hi)
    assert rep.band_tpr_lo[-1] == 1.0 and rep.band_tpr_hi[0] <= 1.0


def test_random_state_reproducible(rng):
    y = np.r_[np.zeros(50, int), np.ones(50, int)]
    s = y + rng.normal(size=100)
    a = roc_report(y, s, random_state=7, n_bootstrap=300).to_dict()
    b = roc_report(y, s, random_state=7, n_bootstrap=300).to_dict()
    assert a == b


def test_bootstrap_is_fast():
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.4).astype(int)
    s = y + rng.normal(size=3000)
    roc_report(y[:100], s[:100], n_bootstrap=10)  # warm-up imports
    t = time.perf_counter()
    roc_report(y, s, n_bootstrap=2000, random_state=0)
    elapsed = time.perf_counter() - t
    assert elapsed < 2.0, f"2000 resamples of 3000 samples took {elapsed:.2f} s"


def test_outputs(tmp_path, rng):
    y = np.r_[np.zeros(40, int), np.ones(40, int)]
    s = y + rng.normal(size=80)
    rep = roc_report(y, s, n_bootstrap=100, random_state=0)
    d = json.loads(rep.to_json(tmp_path / "r.json"))
    assert json.loads((tmp_path / "r.json").read_text()) == d
    assert d["curve"]["thresholds"][0] is None  # sklearn's inf threshold: JSON has no inf
    assert d["auc"] == pytest.approx(roc_auc_score(y, s))
    df = rep.to_frame()
    assert list(df.index) == ["youden", "sensitivity>=0.95", "specificity>=0.95"]
    assert df.loc["youden", "sensitivity"] == rep.operating_points["youden"].sensitivity
    assert df.attrs["auc"] == rep.auc
    text = rep.summary()
    assert "AUC" in text and "delong" in text and "youden" in text


def test_plot_headless(rng):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.r_[np.zeros(40, int), np.ones(40, int)]
    rep = roc_report(y, y + rng.normal(size=80), n_bootstrap=100, random_state=0)
    _, ax = plt.subplots()
    assert rep.plot(ax=ax) is ax
    assert len(ax.collections) >= 1  # the bootstrap band
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lab.startswith("youden") for lab in labels)
    plt.close("all")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(y_true=[1, 1, 1], y_score=[0.1, 0.2, 0.3]), "only positive"),
        (dict(y_true=[0, 0, 0], y_score=[0.1, 0.2, 0.3]), "only negative"),
        (dict(y_true=[0, 1, 1], y_score=[0.1, np.nan, 0.3]), "y_score contains 1 NaN or inf"),
        (dict(y_true=[0, 1, 1], y_score=[0.1, 0.3]), "same length"),
        (dict(y_true=[0, 1, 1], y_score=[[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]), r"proba\[:, 1\]"),
        (dict(y_true=[0, 1, 3], y_score=[0.1, 0.2, 0.3]), "y_true must hold binary labels"),
        (dict(y_true=["a", "b", "b"], y_score=[0.1, 0.2, 0.3]), "pos_label"),
        (dict(y_true=[0, 1, 1], y_score=[0.1, 0.2, 0.3], ci="wald"), "ci must be"),
        (dict(y_true=[0, 1, 1], y_score=[0.1, 0.2, 0.3], confidence=95), "confidence"),
        (dict(y_true=[0, 1, 1], y_score=[0.1, 0.2, 0.3], operating_points=("best",)), "not understood"),
        (dict(y_true=[0, 1, 1], y_score=[0.1, 0.2, 0.3], groups=[1, 2]), "groups has 2 values"),
        (dict(y_true=[0, 1, 1], y_score=[0.1, 0.2, 0.3], ci="bootstrap", n_bootstrap=0), "n_bootstrap"),
        (dict(y_true=[0, 1, 1], y_score=[0.1, 0.2, 0.3], min_groups=1), "min_groups"),
        (dict(y_true=[0, 1, 1], y_score=[0.1, 0.2, 0.3], thresholds=[0.5]), "thresholds must be"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        roc_report(**kwargs)


def test_string_labels_and_bools():
    labels = np.where(Y == 1, "tumour", "normal")
    a = roc_report(labels, S, pos_label="tumour", n_bootstrap=0)
    b = roc_report(Y.astype(bool), S, n_bootstrap=0)
    assert a.auc == b.auc == 15 / 16
    assert _op(a, "youden") == _op(b, "youden")
