"""Clustered AUC variance (Obuchowski 1997) against independent expectations, and roc_report's refusals.

The slow reference below is written from the paper's formulas with explicit loops over cases, controls
and clusters (psi kernel, structural components per cluster, S10/S01/S11), independently of the
vectorised midrank code in medfeat.evaluation.delong.
"""

from fractions import Fraction

import numpy as np
import pytest

from medfeat.evaluation import (
    clustered_auc_ci,
    clustered_auc_covariance,
    clustered_auc_test,
    delong_covariance,
    delong_test,
    roc_report,
)


def _psi(x, y):
    return 1.0 if x > y else 0.5 if x == y else 0.0


def obuchowski_slow(y, scores, groups):
    """Obuchowski (1997) eqs. for k tests, one loop per sum. Returns (aucs, cov)."""
    y = list(y)
    scores = [list(s) for s in scores]
    clusters = sorted(set(groups))
    k = len(scores)
    pos = [i for i in range(len(y)) if y[i] == 1]
    neg = [i for i in range(len(y)) if y[i] == 0]
    big_m, big_n = len(pos), len(neg)
    aucs, v10c, v01c = [], [], []
    for r in range(k):
        s = scores[r]
        v10 = {i: sum(_psi(s[i], s[j]) for j in neg) / big_n for i in pos}
        v01 = {j: sum(_psi(s[i], s[j]) for i in pos) / big_m for j in neg}
        aucs.append(sum(_psi(s[i], s[j]) for i in pos for j in neg) / (big_m * big_n))
        v10c.append({c: sum(v10[i] for i in pos if groups[i] == c) for c in clusters})
        v01c.append({c: sum(v01[j] for j in neg if groups[j] == c) for c in clusters})
    m_i = {c: sum(1 for i in pos if groups[i] == c) for c in clusters}
    n_i = {c: sum(1 for j in neg if groups[j] == c) for c in clusters}
    i10 = sum(1 for c in clusters if m_i[c] > 0)
    i01 = sum(1 for c in clusters if n_i[c] > 0)
    n_cl = len(clusters)
    cov = np.zeros((k, k))
    for r in range(k):
        for q in range(k):
            s10 = i10 / ((i10 - 1) * big_m) * sum(
                (v10c[r][c] - m_i[c] * aucs[r]) * (v10c[q][c] - m_i[c] * aucs[q]) for c in clusters
            )
            s01 = i01 / ((i01 - 1) * big_n) * sum(
                (v01c[r][c] - n_i[c] * aucs[r]) * (v01c[q][c] - n_i[c] * aucs[q]) for c in clusters
            )
            s11_rq = n_cl / (n_cl - 1) * sum(
                (v10c[r][c] - m_i[c] * aucs[r]) * (v01c[q][c] - n_i[c] * aucs[q]) for c in clusters
            )
            s11_qr = n_cl / (n_cl - 1) * sum(
                (v10c[q][c] - m_i[c] * aucs[q]) * (v01c[r][c] - n_i[c] * aucs[r]) for c in clusters
            )
            cov[r, q] = s10 / big_m + s01 / big_n + (s11_rq + s11_qr) / (big_m * big_n)
    return np.array(aucs), cov


def _clustered_data(rng, n_clusters=12, effect=1.0, icc=0.6):
    y, s1, s2, g = [], [], [], []
    for c in range(n_clusters):
        n = int(rng.integers(2, 9))
        frac = rng.uniform(0.1, 0.9)
        u = rng.normal() * icc
        for _ in range(n):
            lab = int(rng.random() < frac)
            y.append(lab)
            base = effect * lab + u
            s1.append(base + rng.normal())
            s2.append(base + 0.5 * rng.normal() + 0.3 * rng.normal())
            g.append(f"slide{c}")
    y = np.array(y)
    # Ties on purpose: the kernel's 1/2 must be handled as in the paper.
    return y, np.round(np.array(s1), 1), np.round(np.array(s2), 1), np.array(g)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clustered_covariance_matches_slow_reference(seed):
    rng = np.random.default_rng(seed)
    y, s1, s2, g = _clustered_data(rng)
    aucs, cov, k = clustered_auc_covariance(y, np.vstack([s1, s2]), g)
    ref_aucs, ref_cov = obuchowski_slow(y, [s1, s2], list(g))
    assert k == 12
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, atol=1e-9, rtol=1e-9)
    t = clustered_auc_test(y, s1, s2, g)
    var = ref_cov[0, 0] + ref_cov[1, 1] - 2 * ref_cov[0, 1]
    assert t.z == pytest.approx((ref_aucs[0] - ref_aucs[1]) / np.sqrt(var), abs=1e-6)


def test_clustered_variance_hand_computed_equal_clusters():
    # Clusters a, b, c each hold one positive and one negative.
    # Positives 0.8, 0.35, 0.9; negatives 0.1, 0.4, 0.2. V10 = 1, 2/3, 1; V01 = 1, 2/3, 1; AUC = 8/9.
    # Centred cluster sums a = b = (1/9, -2/9, 1/9); I10 = I01 = I = 3, M = N = 3.
    # S10 = S01 = 3/(2*3) * 6/81 = 1/27; S11 = 3/2 * 6/81 = 1/9.
    # var = (1/27)/3 + (1/27)/3 + 2*(1/9)/9 = 4/81.
    y = [1, 0, 1, 0, 1, 0]
    s = [0.8, 0.1, 0.35, 0.4, 0.9, 0.2]
    g = ["a", "a", "b", "b", "c", "c"]
    aucs, cov, _ = clustered_auc_covariance(y, s, g)
    assert float(aucs[0]) == pytest.approx(8 / 9, abs=1e-12)
    assert float(cov[0, 0]) == pytest.approx(float(Fraction(4, 81)), abs=1e-9)


def test_clustered_variance_hand_computed_unequal_clusters():
    # A: positives 0.9, 0.6 and negative 0.3; B: negatives 0.5, 0.2; C: positive 0.4, negative 0.1.
    # V10: 0.9 -> 1, 0.6 -> 1, 0.4 -> 3/4; AUC = 11/12. V01: 0.3 -> 1, 0.5 -> 2/3, 0.2 -> 1, 0.1 -> 1.
    # Centred sums: a = (2 - 22/12, 0, 3/4 - 11/12) = (1/6, 0, -1/6); b = (1/12, 5/3 - 22/12, 1/12) = (1/12, -1/6, 1/12).
    # I10 = 2, I01 = 3, I = 3, M = 3, N = 4.
    # S10 = 2/(1*3) * 2/36 = 1/27; S01 = 3/(2*4) * 6/144 = 1/64; S11 = 3/2 * (1/72 + 0 - 1/72) = 0.
    # var = (1/27)/3 + (1/64)/4 = 1/81 + 1/256 = 337/20736.
    y = [1, 1, 0, 0, 0, 1, 0]
    s = [0.9, 0.6, 0.3, 0.5, 0.2, 0.4, 0.1]
    g = ["A", "A", "A", "B", "B", "C", "C"]
    aucs, cov, _ = clustered_auc_covariance(y, s, g)
    assert float(aucs[0]) == pytest.approx(11 / 12, abs=1e-12)
    assert float(cov[0, 0]) == pytest.approx(337 / 20736, abs=1e-9)


@pytest.mark.parametrize("seed", [3, 4])
def test_one_sample_per_cluster_equals_delong(seed):
    # With singleton clusters S11 = 0 and S10, S01 reduce to DeLong's ddof=1 covariances of the placements
    # (the I/(I-1) factor is the n/(n-1) of the sample covariance).
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(30, int), np.ones(25, int)]
    s1 = y + rng.normal(size=55)
    s2 = 0.5 * y + rng.normal(size=55)
    aucs_c, cov_c, k = clustered_auc_covariance(y, np.vstack([s1, s2]), np.arange(55))
    aucs_d, cov_d = delong_covariance(y, np.vstack([s1, s2]))
    assert k == 55
    np.testing.assert_allclose(aucs_c, aucs_d, atol=1e-12)
    np.testing.assert_allclose(cov_c, cov_d, atol=1e-9)
    assert clustered_auc_test(y, s1, s2, np.arange(55)).p_value == pytest.approx(delong_test(y, s1, s2).p_value, abs=1e-6)


def test_duplicated_samples_as_clusters_give_the_original_delong_variance():
    # Each sample copied 5 times into its own cluster: the information is that of the original samples,
    # so the clustered variance equals DeLong's on the originals, while DeLong on the copies is ~5x smaller.
    rng = np.random.default_rng(5)
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    s = y + rng.normal(size=40)
    _, cov_orig = delong_covariance(y, s)
    yd, sd, gd = np.repeat(y, 5), np.repeat(s, 5), np.repeat(np.arange(40), 5)
    _, cov_cl, _ = clustered_auc_covariance(yd, sd, gd)
    _, cov_naive = delong_covariance(yd, sd)
    assert float(cov_cl[0, 0]) == pytest.approx(float(cov_orig[0, 0]), abs=1e-9)
    assert float(cov_naive[0, 0]) < 0.25 * float(cov_cl[0, 0])


def test_clustered_needs_two_groups_per_class():
    with pytest.raises(ValueError, match="groups"):
        clustered_auc_covariance([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], ["a", "a", "a", "b"][:3] + ["a"])
    with pytest.raises(ValueError, match="one entry per sample"):
        clustered_auc_ci([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], ["a", "b"])


def test_paired_test_when_the_difference_comes_from_one_slide():
    # Misleading point 4: two scores differ only on the patches of one slide. Patch-level DeLong counts
    # those correlated patches as independent evidence and calls the AUC difference significant; the
    # clustered test sees one slide's worth of evidence and does not.
    rng = np.random.default_rng(0)
    g = np.repeat([f"s{i}" for i in range(8)], 40)
    y = np.tile(np.r_[np.zeros(30, int), np.ones(10, int)], 8)
    a = 1.5 * y + rng.normal(size=y.size)
    b = a.copy()
    in_s0 = g == "s0"
    b[in_s0 & (y == 1)] += 2.5  # b separates slide s0's lesion patches; elsewhere a and b agree
    naive = delong_test(y, b, a)
    clustered = clustered_auc_test(y, b, a, g)
    assert naive.auc_a > naive.auc_b
    assert naive.p_value < 0.05
    assert clustered.p_value > 0.05
    assert clustered.n_clusters == 8


def test_roc_report_grouped_uses_clustered_interval():
    rng = np.random.default_rng(6)
    y, s1, _, g = _clustered_data(rng, n_clusters=15)
    rep = roc_report(y, s1, groups=g, n_bootstrap=300, random_state=0)
    ci = clustered_auc_ci(y, s1, g)
    assert rep.ci_method.startswith("clustered")
    assert rep.auc_ci == pytest.approx((ci.lo, ci.hi), abs=1e-12)
    assert rep.auc_ci_clustered == pytest.approx((ci.lo, ci.hi), abs=1e-12)
    boot = roc_report(y, s1, groups=g, ci="bootstrap", n_bootstrap=300, random_state=0)
    assert boot.ci_method == "group bootstrap"


def test_roc_report_refuses_bootstrap_on_two_groups_and_warns():
    # Misleading point 5: a "group bootstrap" CI from 2 groups and PPV 0.857-0.857 printed without a word.
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(20, int), np.ones(7, int), np.zeros(20, int), np.ones(7, int)]
    s = y + rng.normal(scale=0.8, size=y.size)
    g = np.repeat(["slideA", "slideB"], 27)
    with pytest.warns(UserWarning, match="Only 2 groups"):
        rep = roc_report(y, s, groups=g, ci="bootstrap", n_bootstrap=500, random_state=0)
    assert np.isnan(rep.auc_ci).all()
    for op in rep.operating_points.values():
        assert all(np.isnan(v).all() for v in op.ci.values())
    assert "CI not available" in rep.summary()


def test_roc_report_flags_zero_width_intervals():
    # Two rows per class, perfectly separated: every stratified resample gives AUC 1 -> 1.0000-1.0000.
    # (With one row per class the bootstrap is not run at all: tests/reliability/test_small_silent.py.)
    with pytest.warns(UserWarning, match="Zero-width"):
        rep = roc_report([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], ci="bootstrap", n_bootstrap=50, random_state=0)
    assert any("Zero-width" in n for n in rep.notes)


def test_compare_feature_sets_with_groups_uses_the_clustered_test():
    from medfeat.evaluation import compare_feature_sets

    rng = np.random.default_rng(0)
    g = np.repeat([f"s{i}" for i in range(12)], 30)
    y = np.tile(np.r_[np.zeros(22, int), np.ones(8, int)], 12)
    a = 1.5 * y + rng.normal(size=y.size)
    b = a + np.where((g == "s0") & (y == 1), 2.5, 0.0)
    cmp = compare_feature_sets(y, {"a": a, "b": b}, groups=g, n_bootstrap=200, random_state=0)
    assert cmp.best == "b"
    assert cmp.p_values["a"] == pytest.approx(clustered_auc_test(y, b, a, g).p_value, abs=1e-12)
    assert "clustered" in cmp.to_frame().index[-1]
    assert cmp.reports["a"].ci_method.startswith("clustered")


def test_froc_from_two_lesions_is_flagged():
    # Misleading point 4: "FROC 1.000" from 2 lesions printed like a benchmark figure.
    from medfeat.evaluation import froc

    m = np.zeros((200, 200), bool)
    m[20:80, 20:80] = True
    m[120:180, 120:180] = True
    with pytest.warns(UserWarning, match="rests on 2 lesion"):
        res = froc({"t1": [[400, 400, 0.9], [1200, 1200, 0.8]]}, {"t1": m}, mpp=1.0, mask_downsample=8)
    assert res.score == 1.0 and res.n_lesions == 2
    assert "anecdotal" in res.summary() and res.to_dict()["notes"]
