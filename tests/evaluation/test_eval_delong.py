"""DeLong AUC CI and paired test against R's pROC numbers, a slow O(n^2) DeLong, and Mann-Whitney."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from medfeat.evaluation import delong_auc_ci, delong_covariance, delong_test, roc_report

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from reference_scores import reference_datasets

# proc_reference.json was produced by hand with R 4.2.2 and pROC 1.18.0 (Debian r-cran-proc):
#   python tests/evaluation/data/export_reference_data.py /tmp/proc
#   Rscript tests/evaluation/data/make_proc_reference.R /tmp/proc tests/evaluation/data/proc_reference.json
# i.e. roc(y, score, levels=c(0, 1), direction="<"), ci.auc(method="delong", conf.level=0.95 and 0.90),
# var(method="delong") and roc.test(method="delong", paired=TRUE) on scikit-learn's bundled
# breast_cancer, wine and digits data (single-feature scores; see reference_scores.py).
REF = json.loads((DATA / "proc_reference.json").read_text())
DATASETS = reference_datasets()
TOL = 1e-6


def test_reference_file_provenance():
    assert REF["proc_version"] == "1.18.0" and REF["r_version"].startswith("R version 4.2.2")
    assert set(REF["datasets"]) == {"breast_cancer", "wine", "digits"}


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "digits"])
def test_delong_ci_matches_proc(name):
    y, scores = DATASETS[name]
    ref = REF["datasets"][name]
    assert ref["n"] == y.size and ref["n_pos"] == y.sum()
    for score_name, r in ref["scores"].items():
        s = scores[score_name]
        aucs, cov = delong_covariance(y, s)
        assert abs(aucs[0] - r["auc"]) < TOL
        assert abs(cov[0, 0] - r["var_delong"]) < TOL
        for conf, key in ((0.95, "ci95"), (0.90, "ci90")):
            res = delong_auc_ci(y, s, conf)
            assert abs(res.auc - r["auc"]) < TOL
            assert abs(res.lo - r[key][0]) < TOL and abs(res.hi - r[key][1]) < TOL


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "digits"])
def test_delong_paired_test_matches_proc(name):
    y, scores = DATASETS[name]
    for t in REF["datasets"][name]["tests"]:
        res = delong_test(y, scores[t["a"]], scores[t["b"]])
        assert abs(res.z - t["z"]) < TOL * max(1.0, abs(t["z"]))
        assert abs(res.p_value - t["p_value"]) < TOL
        assert abs(res.auc_a - REF["datasets"][name]["scores"][t["a"]]["auc"]) < TOL
        # Swapping the scores flips z and keeps p.
        swapped = delong_test(y, scores[t["b"]], scores[t["a"]])
        assert swapped.z == pytest.approx(-res.z) and swapped.p_value == pytest.approx(res.p_value)


def _slow_delong(y, scores):
    """Direct DeLong et al. (1988): placement values from all m*n comparisons."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    k = scores.shape[0]
    v10 = np.zeros((k, m))
    v01 = np.zeros((k, n))
    for r in range(k):
        for i in range(m):
            for j in range(n):
                psi = 1.0 if pos[r, i] > neg[r, j] else (0.5 if pos[r, i] == neg[r, j] else 0.0)
                v10[r, i] += psi / n
                v01[r, j] += psi / m
    aucs = v10.mean(axis=1)
    s10 = (v10 - aucs[:, None]) @ (v10 - aucs[:, None]).T / (m - 1)
    s01 = (v01 - aucs[:, None]) @ (v01 - aucs[:, None]).T / (n - 1)
    return aucs, s10 / m + s01 / n


def test_delong_covariance_equals_slow_direct_implementation(rng):
    y = (rng.random(60) < 0.4).astype(int)
    y[:2], y[2:4] = 1, 0
    # Rounded scores give many ties, the case where midranks matter.
    scores = np.round(np.vstack([y + rng.normal(size=60), 0.5 * y + rng.normal(size=60), rng.normal(size=60)]), 1)
    aucs, cov = delong_covariance(y, scores)
    slow_aucs, slow_cov = _slow_delong(y, scores)
    np.testing.assert_allclose(aucs, slow_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, slow_cov, atol=1e-12)


def test_auc_equals_mann_whitney_u(rng):
    y = np.r_[np.zeros(70, int), np.ones(45, int)]
    s = np.round(y * 0.8 + rng.normal(size=y.size), 1)
    u = stats.mannwhitneyu(s[y == 1], s[y == 0]).statistic
    expected = u / (45 * 70)
    assert delong_auc_ci(y, s).auc == pytest.approx(expected, abs=1e-12)
    assert roc_report(y, s, n_bootstrap=0).auc == pytest.approx(expected, abs=1e-12)


def test_ci_is_clipped_to_unit_interval():
    y = np.r_[np.zeros(10), np.ones(10)]
    s = np.r_[np.arange(10), np.arange(9, 19)]  # one overlap: AUC 0.995
    res = delong_auc_ci(y, s)
    assert res.hi == 1.0 and res.lo < res.auc < 1.0


def test_identical_scores_give_p_one():
    y = np.r_[np.zeros(5), np.ones(5)]
    s = np.arange(10.0)
    res = delong_test(y, s, s)
    assert res.z == 0.0 and res.p_value == 1.0


@pytest.mark.parametrize(
    "y, s, match",
    [
        ([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], "only positive"),
        ([0, 0, 1, 1], [0.1, np.nan, 0.3, 0.4], "NaN or inf"),
        ([0, 0, 1, 1], [0.1, np.inf, 0.3, 0.4], "NaN or inf"),
        ([0, 0, 1, 1], [0.1, 0.2, 0.3], "same length"),
        ([0, 0, 1, 2], [0.1, 0.2, 0.3, 0.4], "binary labels 0/1"),
        (["a", "a", "b", "b"], [0.1, 0.2, 0.3, 0.4], "pos_label"),
        ([0, 0, 1], [0.1, 0.2, 0.3], "at least 2 positive and 2 negative"),
    ],
)
def test_bad_input(y, s, match):
    with pytest.raises(ValueError, match=match):
        delong_auc_ci(y, s)


def test_string_labels_with_pos_label_and_bools():
    s = [0.1, 0.4, 0.35, 0.8, 0.2, 0.9]
    ref = delong_auc_ci([0, 0, 1, 1, 0, 1], s)
    assert delong_auc_ci(["n", "n", "t", "t", "n", "t"], s, pos_label="t") == ref
    assert delong_auc_ci(np.array([0, 0, 1, 1, 0, 1], bool), s) == ref
    with pytest.raises(ValueError, match="pos_label='x' does not occur"):
        delong_auc_ci(["n", "n", "t", "t", "n", "t"], s, pos_label="x")
    with pytest.raises(ValueError, match="score_b"):
        delong_test([0, 0, 1, 1, 0, 1], s, s[:-1])
