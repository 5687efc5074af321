"""Vectorised bootstrap of ROC statistics.

A bootstrap resample is represented by a weight (count) per sample, so that resampling samples and
resampling whole groups (slides, patients) share one code path: with groups, every sample of a drawn
group gets the number of times its group was drawn, so a group is never split. For a chunk of
resamples the weighted ROC counts at every distinct score are computed at once with
``np.add.reduceat`` over the score-sorted samples; AUCs, sensitivities and specificities for all
resamples then follow from cumulative sums. 2000 resamples of a few thousand samples take a fraction
of a second, instead of the minutes a Python loop over ``roc_auc_score`` would take.
"""

import numpy as np

__all__ = ["Resampler", "SortedScores", "bootstrap_weights", "chunk_size", "percentile_ci", "weighted_auc"]

# Resamples per chunk: bounds memory to ~chunk * n_samples * 8 bytes.
_CHUNK_CELLS = 200_000


def chunk_size(n_samples):
    return int(max(1, min(2000, _CHUNK_CELLS // max(n_samples, 1))))


def bootstrap_weights(rng, n_resamples, n_samples, *, strata=None, groups=None):
    """Weights (n_resamples, n_samples) of one chunk of bootstrap resamples.

    ``groups``: integer codes 0..G-1; whole groups are drawn with replacement.
    ``strata``: integer codes; samples are drawn within each stratum (keeps class counts fixed,
    as pROC's default stratified bootstrap). Otherwise plain resampling of samples.
    """
    return Resampler(n_samples, strata=strata, groups=groups).draw(rng, n_resamples)


class Resampler:
    """Draws bootstrap weights in chunks; the strata members are found once, not per chunk."""

    def __init__(self, n_samples, *, strata=None, groups=None):
        self.n = int(n_samples)
        self.groups = groups
        self.n_groups = None if groups is None else int(groups.max()) + 1
        if groups is None:
            if strata is None:
                self.members = [np.arange(self.n)]
            else:
                order = np.argsort(strata, kind="stable")
                cuts = np.flatnonzero(np.diff(strata[order])) + 1
                self.members = np.split(order, cuts)

    def draw(self, rng, b):
        if self.groups is not None:
            g = self.n_groups
            draw = rng.integers(0, g, size=(b, g))
            draw += (np.arange(b) * g)[:, None]
            counts = np.bincount(draw.ravel(), minlength=b * g).reshape(b, g).astype(np.int32)
            return counts[:, self.groups]
        offsets = (np.arange(b) * self.n)[:, None]
        draws = []
        for members in self.members:
            d = rng.integers(0, members.size, size=(b, members.size))
            if members.size != self.n:  # a stratum: map draws to its members
                d = members[d]
            d += offsets
            draws.append(d)
        flat = np.concatenate(draws, axis=1).ravel() if len(draws) > 1 else draws[0].ravel()
        return np.bincount(flat, minlength=b * self.n).astype(np.int32).reshape(b, self.n)


class SortedScores:
    """Binary labels and scores sorted by decreasing score, with tie groups.

    ``thresholds`` holds ``[inf, distinct scores in decreasing order]``; column ``j`` of the count
    matrices counts the samples with ``score >= thresholds[j]`` (column 0: none). Weights passed to
    :meth:`counts` are in this sorted order (draw them with ``strata=self.pos`` or
    ``groups=codes[self.order]``), which saves a gather over every resample.
    """

    def __init__(self, y, scores):
        order = np.argsort(-scores, kind="stable")
        s = scores[order]
        self.order = order
        self.pos = y[order].astype(np.int32)
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        self.starts = starts
        self.thresholds = np.r_[np.inf, s[starts]]

    def counts(self, weights):
        """Cumulative weighted (TP, FP) of shape (b, U + 1), plus totals P and N of shape (b,)."""
        w = np.atleast_2d(weights)
        wp = w * self.pos
        wn = w - wp
        if self.starts.size < self.pos.size:  # ties: sum the weights of each tie group
            wp = np.add.reduceat(wp, self.starts, axis=1)
            wn = np.add.reduceat(wn, self.starts, axis=1)
        b, u = wp.shape
        tp = np.zeros((b, u + 1), dtype=np.int64 if self.pos.size >= 2**31 else np.int32)
        fp = np.zeros_like(tp)
        np.cumsum(wp, axis=1, out=tp[:, 1:])
        np.cumsum(wn, axis=1, out=fp[:, 1:])
        return tp, fp, wp, wn

    def auc(self, weights):
        """Weighted AUC per resample (NaN where a class is missing)."""
        tp, fp, wp, wn = self.counts(weights)
        return weighted_auc(tp, fp, wp, wn)


def weighted_auc(tp, fp, wp, wn):
    """AUC per row from the count matrices of :meth:`SortedScores.counts` (NaN where a class is missing)."""
    p = tp[:, -1].astype(np.float64)
    n = fp[:, -1].astype(np.float64)
    # Each positive beats the negatives with a lower score and ties half of those with its score:
    # sum_j wp_j * (n - fp_j + wn_j / 2) = p * n - sum_j wp_j * (fp_j - wn_j / 2).
    lost = np.einsum("ij,ij->i", wp, fp[:, 1:] - 0.5 * wn)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (p * n - lost) / (p * n)


def percentile_ci(values, confidence):
    """Percentile interval of the finite values (NaN, NaN when none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (float("nan"), float("nan"))
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(v, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))
