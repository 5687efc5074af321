"""ROC reports: AUC with confidence interval, operating points with bootstrap CIs, group bootstrap.

:func:`roc_report` gathers what a medical-AI paper reports for a binary score: the AUC with a DeLong
(or bootstrap) interval, the curve, and sensitivity / specificity / PPV / NPV at operating points
such as Youden's index or a high-sensitivity screening point, each with a percentile bootstrap
interval. Thresholds chosen on a validation set (``report_val.thresholds``) can be carried to the test
set with ``thresholds=`` so test-set figures are honest.
"""

import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from .._checks import JSONMixin, ResultDisplay, json_safe
from ._bootstrap import Resampler, SortedScores, chunk_size, percentile_ci, weighted_auc
from ._validation import check_binary, check_confidence, check_groups, check_n_bootstrap
from .delong import clustered_auc_ci, delong_auc_ci

__all__ = ["OperatingPoint", "ROCReport", "group_scores", "roc_report", "slide_level_roc"]

METRICS = ("sensitivity", "specificity", "ppv", "npv")
_RULE_RE = re.compile(r"^\s*(sensitivity|sens|tpr|specificity|spec|tnr)\s*>=\s*([0-9.eE+-]+)\s*$")
FPR_GRID = np.linspace(0.0, 1.0, 101)
# Below this many groups a group bootstrap has too few distinct resamples to mean anything, and the
# clustered variance (asymptotic in the number of groups) is a rough guide at best.
MIN_GROUPS = 10


def _fmt_ci(lo, hi, digits=4):
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "CI not available"
    return f"{lo:.{digits}f}-{hi:.{digits}f}"


def _parse_rule(rule):
    """("youden", None) or ("sensitivity"|"specificity", level) from an operating-point string."""
    if not isinstance(rule, str):
        raise ValueError(
            f"operating_points entries must be strings like 'youden', 'sensitivity>=0.95' or "
            f"'specificity>=0.9', got {rule!r}; fixed thresholds go in thresholds={{name: value}}."
        )
    if rule.strip().lower() == "youden":
        return "youden", None
    m = _RULE_RE.match(rule.strip().lower())
    if not m:
        raise ValueError(
            f"operating_points entry {rule!r} not understood; expected 'youden', 'sensitivity>=X' or "
            "'specificity>=X' with X in [0, 1]."
        )
    kind = "sensitivity" if m.group(1) in ("sensitivity", "sens", "tpr") else "specificity"
    level = float(m.group(2))
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"operating_points entry {rule!r}: the level must lie in [0, 1].")
    return kind, level


def _select_columns(kind, level, tp, fp, p, n, thresholds):
    """Column index of the chosen threshold for each row of the cumulative count matrices."""
    if kind == "fixed":
        k = int(np.sum(thresholds[1:] >= level))
        return np.full(tp.shape[0], k, dtype=np.int64)
    if kind == "youden":
        # Youden's J = tp/p - fp/n (+ const). First maximum = highest threshold among ties.
        return np.argmax(tp * (1.0 / p)[:, None] - fp * (1.0 / n)[:, None], axis=1)
    # Comparisons on counts (tp >= level * p) avoid dividing whole matrices; the small tolerance keeps
    # e.g. 19/20 >= 0.95 true despite rounding.
    if kind == "sensitivity":
        # Highest threshold reaching the sensitivity, hence the best specificity; the last column has sens 1.
        return np.argmax(tp >= (level * p - 1e-9 * p)[:, None], axis=1)
    # specificity: lowest threshold keeping the specificity, hence the best sensitivity; column 0 has spec 1.
    ok = fp <= ((1.0 - level) * n + 1e-9 * n)[:, None]
    return ok.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)


def _metrics_at(cols, tp, fp, p, n):
    rows = np.arange(tp.shape[0])
    tpk = tp[rows, cols].astype(np.float64)
    fpk = fp[rows, cols].astype(np.float64)
    tnk, fnk = n - fpk, p - tpk
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "sensitivity": tpk / p,
            "specificity": tnk / n,
            "ppv": tpk / (tpk + fpk),
            "npv": tnk / (tnk + fnk),
            "_counts": (tpk, fpk, tnk, fnk),
        }


def _band(tp, fp, p, n, grid):
    """TPR of each resample's ROC curve linearly interpolated at the FPR grid, shape (b, len(grid))."""
    b, k = tp.shape
    fpr = fp / n[:, None]
    tpr = tp / p[:, None]
    # One searchsorted over all rows: row r is shifted by 2r so the flattened x stays sorted.
    shift = 2.0 * np.arange(b)[:, None]
    flat_x = (fpr + shift).ravel()
    q = (grid[None, :] + shift).ravel()
    left = np.clip(np.searchsorted(flat_x, q, side="right") - 1, 0, b * k - 1)
    row_end = (np.repeat(np.arange(b), grid.size) + 1) * k - 1
    right = np.minimum(left + 1, row_end)
    x_l, x_r = flat_x[left], flat_x[right]
    y_l, y_r = tpr.ravel()[left], tpr.ravel()[right]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(x_r > x_l, (q - x_l) / (x_r - x_l), 0.0)
    t = np.clip(t, 0.0, 1.0)
    return (y_l + t * (y_r - y_l)).reshape(b, grid.size)


@dataclass
class OperatingPoint:
    """One operating point: threshold (``score >= threshold`` is called positive) and its figures.

    ``fixed`` is True when the threshold was given (e.g. chosen on validation data) rather than chosen
    on the data of this report. ``ci`` maps each of sensitivity, specificity, ppv, npv to a percentile
    bootstrap interval (NaN when the bootstrap is off).
    """

    name: str
    rule: str
    threshold: float
    fixed: bool
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    tp: int
    fp: int
    tn: int
    fn: int
    ci: dict = field(default_factory=dict)

    def to_dict(self):
        return json_safe(
            {
                "name": self.name,
                "rule": self.rule,
                "threshold": self.threshold,
                "fixed": self.fixed,
                **{m: getattr(self, m) for m in METRICS},
                "tp": self.tp,
                "fp": self.fp,
                "tn": self.tn,
                "fn": self.fn,
                "ci": {m: list(v) for m, v in self.ci.items()},
            }
        )


@dataclass(repr=False)
class ROCReport(JSONMixin, ResultDisplay):
    """Result of :func:`roc_report`. Thresholds follow scikit-learn: ``score >= threshold`` is positive.

    Attributes
    ----------
    auc : float
    auc_ci : tuple of float
        Interval of ``auc`` by ``ci_method``.
    ci_method : str
        ``"delong"``, ``"bootstrap"``, ``"clustered (Obuchowski 1997)"`` or ``"group bootstrap"``.
    fpr, tpr, curve_thresholds : ndarray
        The curve from :func:`sklearn.metrics.roc_curve` (first threshold ``inf``).
    operating_points : dict of str to OperatingPoint
    band_fpr, band_tpr_lo, band_tpr_hi : ndarray or None
        Pointwise percentile bootstrap band of the TPR at a fixed FPR grid.
    auc_ci_delong, auc_ci_bootstrap, auc_ci_clustered : tuple or None
        The intervals when available (DeLong assumes independent samples; the clustered interval needs
        groups).
    unit : str
        The unit of analysis the figures are computed on (``"sample"`` unless given, e.g. ``"patch"``).
    notes : list of str
        What the reader must know to interpret the figures (resampling unit, assumptions).
    """

    auc: float
    auc_ci: tuple
    ci_method: str
    confidence: float
    n_samples: int
    n_positive: int
    n_negative: int
    n_groups: object
    fpr: np.ndarray
    tpr: np.ndarray
    curve_thresholds: np.ndarray
    operating_points: dict
    n_bootstrap: int
    n_bootstrap_valid: int
    bootstrap_unit: str
    random_state: object = None
    auc_ci_delong: object = None
    auc_ci_bootstrap: object = None
    auc_ci_clustered: object = None
    unit: str = "sample"
    band_fpr: object = None
    band_tpr_lo: object = None
    band_tpr_hi: object = None
    notes: list = field(default_factory=list)

    @property
    def thresholds(self):
        """``{operating point name: threshold}``, to pass as ``roc_report(..., thresholds=...)`` on test data."""
        return {name: op.threshold for name, op in self.operating_points.items()}

    def to_dict(self):
        """All figures as JSON-able Python objects (non-finite numbers, e.g. the ``inf`` threshold, become None)."""
        d = {
            "auc": self.auc,
            "auc_ci": list(self.auc_ci),
            "ci_method": self.ci_method,
            "confidence": self.confidence,
            "n_samples": self.n_samples,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "n_groups": self.n_groups,
            "curve": {"fpr": self.fpr, "tpr": self.tpr, "thresholds": self.curve_thresholds},
            "operating_points": {k: v.to_dict() for k, v in self.operating_points.items()},
            "n_bootstrap": self.n_bootstrap,
            "n_bootstrap_valid": self.n_bootstrap_valid,
            "bootstrap_unit": self.bootstrap_unit,
            "random_state": self.random_state if isinstance(self.random_state, (int, type(None))) else repr(self.random_state),
            "auc_ci_delong": None if self.auc_ci_delong is None else list(self.auc_ci_delong),
            "auc_ci_bootstrap": None if self.auc_ci_bootstrap is None else list(self.auc_ci_bootstrap),
            "auc_ci_clustered": None if self.auc_ci_clustered is None else list(self.auc_ci_clustered),
            "unit": self.unit,
            "band": None
            if self.band_fpr is None
            else {"fpr": self.band_fpr, "tpr_lo": self.band_tpr_lo, "tpr_hi": self.band_tpr_hi},
            "notes": list(self.notes),
        }
        return json_safe(d)

    def to_frame(self):
        """Operating points as a DataFrame (one row each); AUC and its CI in ``df.attrs``."""
        import pandas as pd

        rows = []
        for name, op in self.operating_points.items():
            row = {"operating_point": name, "rule": op.rule, "threshold": op.threshold, "fixed": op.fixed}
            for m in METRICS:
                lo, hi = op.ci.get(m, (np.nan, np.nan))
                row[m] = getattr(op, m)
                row[f"{m}_ci_lo"] = lo
                row[f"{m}_ci_hi"] = hi
            row.update(tp=op.tp, fp=op.fp, tn=op.tn, fn=op.fn)
            rows.append(row)
        df = pd.DataFrame(rows).set_index("operating_point") if rows else pd.DataFrame()
        df.attrs.update(
            auc=self.auc, auc_ci=tuple(self.auc_ci), ci_method=self.ci_method, confidence=self.confidence
        )
        return df

    def summary(self):
        """Human-readable text summary."""
        pct = f"{self.confidence:.0%}"
        lines = [
            f"ROC report: {self.n_samples} {self.unit}s ({self.n_positive} positive, {self.n_negative} negative)"
            + (f", {self.n_groups} groups" if self.n_groups else ""),
            f"AUC {self.auc:.4f} ({pct} CI {_fmt_ci(*self.auc_ci)}, {self.ci_method})",
        ]
        if self.n_bootstrap:
            lines.append(
                f"Bootstrap: {self.n_bootstrap_valid} of {self.n_bootstrap} resamples usable; unit: {self.bootstrap_unit}"
            )
        if self.operating_points:
            lines.append(f"Operating points (score >= threshold is positive; {pct} bootstrap percentile CIs):")
        for name, op in self.operating_points.items():
            how = "fixed beforehand" if op.fixed else "chosen on this data"
            parts = [f"  {name} [{how}] threshold {op.threshold:.6g}"]
            for m in METRICS:
                lo, hi = op.ci.get(m, (np.nan, np.nan))
                parts.append(f"{m} {getattr(op, m):.3f} ({_fmt_ci(lo, hi, 3)})")
            lines.append(", ".join(parts))
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def _headline(self):
        groups = f", {self.n_groups} groups" if self.n_groups else ""
        return (f"AUC {self.auc:.4f} ({self.confidence:.0%} CI {self.auc_ci[0]:.4f}-{self.auc_ci[1]:.4f}, "
                f"{self.ci_method}), {self.n_samples} samples ({self.n_positive} positive){groups}")

    def plot(self, ax=None, *, label=None, color=None, band=True, operating_points=True, chance=True):
        """ROC curve with its bootstrap band and operating points (matplotlib, imported here).

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Drawn into a new figure when omitted (headless-safe: the Agg backend is used when no
            display backend was chosen).
        label : str, optional
            Legend label prefix for the curve.

        Returns
        -------
        matplotlib Axes
        """
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(5.5, 5.0))
        pct = f"{self.confidence:.0%}"
        text = f"AUC {self.auc:.3f} ({self.auc_ci[0]:.3f}-{self.auc_ci[1]:.3f})"
        (line,) = ax.plot(self.fpr, self.tpr, color=color, lw=2, label=f"{label}: {text}" if label else text)
        c = line.get_color()
        if band and self.band_fpr is not None:
            ax.fill_between(
                self.band_fpr, self.band_tpr_lo, self.band_tpr_hi, color=c, alpha=0.2, lw=0,
                label=f"{pct} bootstrap band" if not label else None,
            )
        if operating_points:
            markers = "osD^v<>p*h"
            for i, (name, op) in enumerate(self.operating_points.items()):
                ax.plot(
                    1.0 - op.specificity, op.sensitivity, markers[i % len(markers)], color=c, mec="black",
                    ms=7, label=f"{name}: sens {op.sensitivity:.2f}, spec {op.specificity:.2f}",
                )
        if chance:
            ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_xlabel("1 - specificity (false positive rate)")
        ax.set_ylabel("Sensitivity (true positive rate)")
        ax.set_aspect("equal")
        ax.legend(loc="lower right", fontsize=7)
        return ax


def _point(name, rule, kind, level, fixed, ss, tp, fp, p, n):
    col = int(_select_columns(kind, level, tp, fp, p, n, ss.thresholds)[0])
    met = _metrics_at(np.array([col]), tp, fp, p, n)
    tpk, fpk, tnk, fnk = (int(round(float(v[0]))) for v in met["_counts"])
    threshold = float(level) if kind == "fixed" else float(ss.thresholds[col])
    return OperatingPoint(
        name=name, rule=rule, threshold=threshold, fixed=fixed,
        **{m: float(met[m][0]) for m in METRICS}, tp=tpk, fp=fpk, tn=tnk, fn=fnk,
    )


def roc_report(
    y_true,
    y_score,
    *,
    groups=None,
    ci="delong",
    confidence=0.95,
    n_bootstrap=2000,
    operating_points=("youden", "sensitivity>=0.95", "specificity>=0.95"),
    thresholds=None,
    random_state=None,
    pos_label=None,
    min_groups=MIN_GROUPS,
    unit="sample",
):
    """ROC analysis of a binary score: AUC with CI, curve, operating points with bootstrap CIs.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Binary labels: 0/1 or bool; other labels (e.g. strings) need ``pos_label``.
    y_score : array-like of shape (n,)
        Finite scores, higher = more likely positive.
    groups : array-like of shape (n,), optional
        Slide / patient of each sample. Patches of one slide are not independent: the AUC interval is
        then the clustered (Obuchowski 1997) interval with ``ci="delong"`` (DeLong's own interval,
        which treats samples as independent, is kept in ``auc_ci_delong`` for reference) or the
        group-bootstrap interval with ``ci="bootstrap"``; the bootstrap resamples whole groups.
    ci : {"delong", "bootstrap"}, default "delong"
        Method of the AUC interval: analytic (DeLong, or Obuchowski's clustered variance with groups)
        or bootstrap (stratified by class without groups, as pROC's default; whole groups with groups),
        percentile interval.
    confidence : float, default 0.95
    n_bootstrap : int, default 2000
        Resamples for the operating-point intervals, the ROC band and bootstrap AUC intervals; 0 turns
        the bootstrap off (intervals NaN; not allowed with ``groups`` or ``ci="bootstrap"``).
    operating_points : sequence of str
        ``"youden"`` (max sensitivity + specificity - 1), ``"sensitivity>=X"`` (highest threshold
        reaching that sensitivity, i.e. the best specificity there) and ``"specificity>=X"`` (lowest
        threshold keeping that specificity). Thresholds are chosen on this data and chosen again in
        every resample, so their intervals include the variability of choosing the threshold.
    thresholds : dict of str to float, or float, optional
        Thresholds fixed beforehand, e.g. ``report_val.thresholds`` from a validation set; when given,
        these are the operating points (``operating_points`` is ignored) and stay fixed in resamples.
    random_state : int, numpy Generator or None
        Seed of the bootstrap.
    pos_label : scalar, optional
        The positive class when ``y_true`` is not 0/1 or bool.
    min_groups : int, default 10
        With fewer groups than this the group bootstrap is refused (its intervals are NaN: a handful of
        groups has too few distinct resamples to mean anything) and a warning says that the clustered
        AUC interval rests on too few groups.
    unit : str, default "sample"
        What one sample is (``"patch"``, ``"slide"``, ``"image"``), printed in the summary and notes.

    Returns
    -------
    ROCReport
        A :class:`UserWarning` is issued (and the reason kept in ``notes``) when an interval rests on
        fewer than ``min_groups`` groups or has zero width (a degenerate interval, e.g. PPV 0.857-0.857,
        which says nothing about certainty).

    See Also
    --------
    delong_auc_ci : the DeLong interval alone.
    multiclass_roc : one-vs-rest and macro AUC.
    froc : lesion-level evaluation on slides.

    References
    ----------
    .. [1] DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated receiver
       operating characteristic curves: a nonparametric approach. Biometrics 44(3):837-845 (1988).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.r_[np.zeros(50), np.ones(50)]
    >>> s = y + rng.normal(size=100)
    >>> rep = roc_report(y, s, n_bootstrap=200, random_state=0)
    >>> round(rep.auc, 3), rep.ci_method
    (0.741, 'delong')
    >>> test = roc_report(y, s + 0.1, thresholds=rep.thresholds, n_bootstrap=0)
    >>> test.operating_points["youden"].fixed
    True
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    y, s = check_binary(y_true, y_score, pos_label=pos_label)
    confidence = check_confidence(confidence)
    n_bootstrap = check_n_bootstrap(n_bootstrap)
    codes = check_groups(groups, y.shape[0])
    if ci not in ("delong", "bootstrap"):
        raise ValueError(f"ci must be 'delong' or 'bootstrap', got {ci!r}.")
    if n_bootstrap == 0 and ci == "bootstrap":
        raise ValueError("n_bootstrap must be > 0 when ci='bootstrap'; got n_bootstrap=0.")
    if isinstance(min_groups, bool) or not isinstance(min_groups, (int, np.integer)) or min_groups < 2:
        raise ValueError(f"min_groups must be an integer >= 2, got {min_groups!r}.")
    if not isinstance(unit, str) or not unit:
        raise ValueError(f"unit must be a non-empty string such as 'patch' or 'slide', got {unit!r}.")
    n_groups = None if codes is None else int(codes.max()) + 1
    few_groups = n_groups is not None and n_groups < min_groups

    # Operating-point specifications: (name, rule text, kind, level, fixed).
    specs = []
    if thresholds is not None:
        if isinstance(thresholds, (int, float, np.integer, np.floating)) and not isinstance(thresholds, bool):
            thresholds = {"threshold": float(thresholds)}
        if not isinstance(thresholds, dict):
            raise ValueError(
                f"thresholds must be a dict {{name: threshold}} (e.g. report_val.thresholds) or a number, "
                f"got {type(thresholds).__name__}."
            )
        for name, t in thresholds.items():
            try:
                t = float(t)
            except (TypeError, ValueError):
                raise ValueError(f"thresholds[{name!r}] must be a number, got {t!r}.") from None
            if math.isnan(t):
                raise ValueError(f"thresholds[{name!r}] is NaN.")
            specs.append((str(name), f"score >= {t:.6g}", "fixed", t, True))
    else:
        if isinstance(operating_points, str):
            operating_points = (operating_points,)
        for rule in operating_points:
            kind, level = _parse_rule(rule)
            specs.append((rule, rule, kind, level, False))

    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    ss = SortedScores(y, s)
    tp1, fp1, _, _ = ss.counts(np.ones((1, y.size), dtype=np.int32))
    p1 = np.array([float(n_pos)])
    n1 = np.array([float(n_neg)])
    ops = {name: _point(name, rule, kind, level, fixed, ss, tp1, fp1, p1, n1) for name, rule, kind, level, fixed in specs}

    auc = float(roc_auc_score(y, s))
    fpr, tpr, curve_thr = roc_curve(y, s)
    notes = []

    auc_ci_delong = None
    if n_pos >= 2 and n_neg >= 2:
        d = delong_auc_ci(y, s, confidence)
        auc_ci_delong = (d.lo, d.hi)
    else:
        notes.append("DeLong's interval needs at least 2 positive and 2 negative samples; it is not available.")

    # Bootstrap, chunked so memory stays bounded.
    rng = np.random.default_rng(random_state)
    boot_auc, boot_ops, bands = [], {name: {m: [] for m in METRICS} for name in ops}, []
    n_valid = 0
    # A class with a single sample is redrawn identically in every class-stratified resample: the
    # bootstrap could only return the point estimate as a zero-width "interval", so it is not run.
    single = codes is None and min(n_pos, n_neg) < 2
    if single and n_bootstrap:
        notes.append(
            f"Only {n_pos} positive and {n_neg} negative {unit}(s): a class-stratified bootstrap redraws the "
            "same samples every time, so no bootstrap interval is given (operating points, ROC band)."
        )
    if n_bootstrap and not few_groups and not single:
        # Weights are drawn directly in score-sorted order (see SortedScores).
        strata = None if codes is not None else ss.pos
        resampler = Resampler(y.size, strata=strata, groups=None if codes is None else codes[ss.order])
        step = chunk_size(y.size)
        done = 0
        while done < n_bootstrap:
            b = min(step, n_bootstrap - done)
            done += b
            w = resampler.draw(rng, b)
            tp, fp, wp, wn = ss.counts(w)
            p = tp[:, -1].astype(np.float64)
            n = fp[:, -1].astype(np.float64)
            ok = (p > 0) & (n > 0)
            if not np.any(ok):
                continue
            tp, fp, wp, wn, p, n = tp[ok], fp[ok], wp[ok], wn[ok], p[ok], n[ok]
            n_valid += int(ok.sum())
            boot_auc.append(weighted_auc(tp, fp, wp, wn))
            for name, _, kind, level, _ in specs:
                cols = _select_columns(kind, level, tp, fp, p, n, ss.thresholds)
                met = _metrics_at(cols, tp, fp, p, n)
                for m in METRICS:
                    boot_ops[name][m].append(met[m])
            bands.append(_band(tp, fp, p, n, FPR_GRID))

    auc_ci_boot = None
    band_lo = band_hi = band_fpr = None
    if n_valid:
        auc_ci_boot = percentile_ci(np.concatenate(boot_auc), confidence)
        for name in ops:
            ops[name].ci = {m: percentile_ci(np.concatenate(boot_ops[name][m]), confidence) for m in METRICS}
        allb = np.concatenate(bands)
        alpha = (1.0 - confidence) / 2.0
        band_lo, band_hi = np.quantile(allb, [alpha, 1.0 - alpha], axis=0)
        band_fpr = FPR_GRID.copy()
    else:
        for name in ops:
            ops[name].ci = {m: (float("nan"), float("nan")) for m in METRICS}

    auc_ci_clustered = None
    warn = []
    if codes is not None:
        boot_unit = "group (whole groups resampled with replacement)"
        try:
            c = clustered_auc_ci(y, s, codes, confidence)
            auc_ci_clustered = (c.lo, c.hi)
        except ValueError as exc:
            notes.append(f"The clustered AUC interval is not available: {exc}")
        notes.append(
            f"{unit.capitalize()}s are grouped ({n_groups} groups) and not independent: the AUC interval is "
            + ("the clustered (Obuchowski 1997) interval" if ci == "delong" else "the group-bootstrap interval")
            + " and any bootstrap resamples whole groups, so no group is split."
        )
        notes.append(
            "DeLong's interval treats samples as independent, which grouped samples are not; it is kept "
            "for reference only (auc_ci_delong) and is usually too narrow."
        )
        if few_groups:
            msg = (
                f"Only {n_groups} groups (fewer than min_groups={min_groups}): the group bootstrap was not run "
                "(operating-point intervals and the ROC band are not available)"
                + (", and the clustered AUC interval rests on too few groups to be trusted" if ci == "delong" else "")
                + "; report per-group results or collect more slides/patients."
            )
            notes.append(msg)
            warn.append(msg)
        if ci == "delong":
            ci_method = "clustered (Obuchowski 1997)"
            auc_ci = auc_ci_clustered
        else:
            ci_method = "group bootstrap"
            auc_ci = auc_ci_boot
        if auc_ci is None:
            auc_ci = (float("nan"), float("nan"))
        if n_valid and n_valid < n_bootstrap:
            notes.append(
                f"{n_bootstrap - n_valid} of {n_bootstrap} group resamples lacked one class and were dropped."
            )
    else:
        boot_unit = "sample, stratified by class" if n_bootstrap else "none"
        if ci == "delong":
            ci_method = "delong"
            auc_ci = auc_ci_delong if auc_ci_delong is not None else (float("nan"), float("nan"))
        else:
            ci_method = "bootstrap"
            auc_ci = auc_ci_boot if auc_ci_boot is not None else (float("nan"), float("nan"))
        if min(n_pos, n_neg) < 5:
            msg = (
                f"Only {n_pos} positive and {n_neg} negative {unit}s: the intervals are rough at best."
            )
            notes.append(msg)
            warn.append(msg)
    # A zero-width interval (e.g. PPV 0.857-0.857) means the resamples could not move the figure, not
    # that it is certain: say so instead of printing it as a confidence interval.
    degenerate = []
    if math.isfinite(auc_ci[0]) and auc_ci[1] - auc_ci[0] == 0.0:
        degenerate.append(f"AUC {auc_ci[0]:.4f}-{auc_ci[1]:.4f}")
    for name, op in ops.items():
        for m, (lo, hi) in op.ci.items():
            # Figures pinned at 0 or 1 by the rule itself (sensitivity under 'sensitivity>=0.95' on few
            # positives, NPV when no positive is missed) are exact, not degenerate.
            if math.isfinite(lo) and hi - lo == 0.0 and 0.0 < lo < 1.0:
                degenerate.append(f"{name} {m} {lo:.4f}-{hi:.4f}")
    if degenerate:
        msg = (
            "Zero-width intervals (" + "; ".join(degenerate[:6]) + (" ..." if len(degenerate) > 6 else "")
            + "): the resamples could not vary these figures (too few samples or groups); they are not a "
            "measure of certainty."
        )
        notes.append(msg)
        warn.append(msg)
    for msg in warn:
        warnings.warn(msg, UserWarning, stacklevel=2)
    if ops and n_bootstrap:
        chosen = [name for name, op in ops.items() if not op.fixed]
        if chosen:
            notes.append(
                "Operating-point thresholds were chosen on this data and re-chosen in every resample; "
                "for honest test-set figures fix them on validation data (thresholds=report_val.thresholds)."
            )

    return ROCReport(
        auc=auc, auc_ci=tuple(float(v) for v in auc_ci), ci_method=ci_method, confidence=confidence,
        n_samples=int(y.size), n_positive=n_pos, n_negative=n_neg,
        n_groups=n_groups,
        fpr=fpr, tpr=tpr, curve_thresholds=curve_thr, operating_points=ops,
        n_bootstrap=n_bootstrap, n_bootstrap_valid=n_valid, bootstrap_unit=boot_unit,
        random_state=random_state if isinstance(random_state, (int, np.integer, type(None))) else None,
        auc_ci_delong=auc_ci_delong, auc_ci_bootstrap=auc_ci_boot, auc_ci_clustered=auc_ci_clustered, unit=unit,
        band_fpr=band_fpr, band_tpr_lo=band_lo, band_tpr_hi=band_hi, notes=notes,
    )


_AGGREGATES = ("max", "mean", "median", "top5_mean")


def group_scores(y_true, y_score, groups, *, aggregate="max", pos_label=None):
    """One label and one score per group (slide / patient) from per-sample labels and scores.

    A group is positive when any of its samples is (a slide with a lesion is a tumour slide). Its
    score is the stated aggregate of its samples' scores: ``"max"`` (Liu et al. 2017 use the heatmap
    maximum), ``"mean"``, ``"median"`` or ``"top5_mean"`` (mean of the 5 highest, all when fewer).

    Parameters
    ----------
    y_true, y_score, groups : array-like of shape (n,)
    aggregate : {"max", "mean", "median", "top5_mean"}, default "max"
    pos_label : scalar, optional

    Returns
    -------
    pandas.DataFrame
        Indexed by group (sorted), columns ``y_true`` (0/1), ``y_score`` and ``n`` (samples per group).

    Examples
    --------
    >>> group_scores([0, 1, 0, 0], [0.2, 0.9, 0.4, 0.1], ["a", "a", "b", "b"]).to_dict("list")
    {'y_true': [1, 0], 'y_score': [0.9, 0.4], 'n': [2, 2]}
    """
    import pandas as pd

    from ._validation import check_labels, check_scores

    if aggregate not in _AGGREGATES:
        raise ValueError(f"aggregate must be one of {list(_AGGREGATES)}, got {aggregate!r}.")
    y = check_labels(y_true, pos_label=pos_label)
    s = check_scores(y_score, n=y.shape[0])
    g = np.asarray(groups.to_numpy() if hasattr(groups, "to_numpy") else groups)
    if g.ndim != 1 or g.shape[0] != y.shape[0]:
        raise ValueError(f"groups must be 1-D with one entry per sample ({y.shape[0]}), got shape {g.shape}.")
    df = pd.DataFrame({"y_true": y.astype(int), "y_score": s, "group": g})
    grouped = df.groupby("group", sort=True)
    if aggregate == "top5_mean":
        score = grouped["y_score"].agg(lambda c: np.sort(c.to_numpy())[-5:].mean())
    else:
        score = grouped["y_score"].agg(aggregate)
    out = pd.DataFrame({"y_true": grouped["y_true"].max().astype(int), "y_score": score,
                        "n": grouped.size().astype(int)})
    out.index.name = "group"
    return out


def slide_level_roc(y_true, y_score, groups, *, aggregate="max", pos_label=None, unit="slide", **kwargs):
    """ROC report with one sample per slide (or patient): the slide-level figure beside the patch-level one.

    Labels and scores per group come from :func:`group_scores` (positive when any sample is; score by the
    stated ``aggregate``). Slides are independent units, so DeLong's interval applies; with few slides
    the report warns. Keyword arguments go to :func:`roc_report`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(30), 4)
    >>> y = (g % 2 == 0).astype(int) * (np.arange(120) % 4 == 0)
    >>> rep = slide_level_roc(y, y + rng.normal(scale=0.5, size=120), g, n_bootstrap=100, random_state=0)
    >>> rep.n_samples, rep.unit
    (30, 'slide')
    """
    per = group_scores(y_true, y_score, groups, aggregate=aggregate, pos_label=pos_label)
    rep = roc_report(per["y_true"].to_numpy(), per["y_score"].to_numpy(), unit=unit, **kwargs)
    rep.notes.insert(
        0, f"One score per {unit}: the {aggregate} of its samples' scores; a {unit} is positive when any of its "
        "samples is."
    )
    return rep
