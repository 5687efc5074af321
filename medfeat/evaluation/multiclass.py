"""Multi-class ROC: one-vs-rest AUCs with DeLong CIs and the macro AUC with a bootstrap CI."""

from dataclasses import dataclass, field

import numpy as np

from .._checks import JSONMixin, ResultDisplay, json_safe
from ._bootstrap import Resampler, SortedScores, chunk_size, percentile_ci
from ._validation import as_1d, check_confidence, check_groups, check_n_bootstrap, check_scores
from .delong import delong_auc_ci

__all__ = ["MulticlassROC", "multiclass_roc"]


@dataclass(repr=False)
class MulticlassROC(JSONMixin, ResultDisplay):
    """Result of :func:`multiclass_roc`.

    Attributes
    ----------
    per_class : pandas.DataFrame
        One row per class: ``auc`` (class vs rest), DeLong ``ci_lo``/``ci_hi``, ``n_positive``, ``n_negative``.
    macro_auc : float
        Unweighted mean of the one-vs-rest AUCs (scikit-learn's ``roc_auc_score(multi_class="ovr")``).
    macro_ci : tuple of float
        Percentile bootstrap interval of the macro AUC.
    """

    per_class: object
    macro_auc: float
    macro_ci: tuple
    confidence: float
    n_bootstrap: int
    n_bootstrap_valid: int
    bootstrap_unit: str
    notes: list = field(default_factory=list)

    def to_frame(self):
        """Per-class rows plus a ``macro`` row."""
        import pandas as pd

        macro = pd.DataFrame(
            {"auc": [self.macro_auc], "ci_lo": [self.macro_ci[0]], "ci_hi": [self.macro_ci[1]],
             "ci_method": ["bootstrap"], "n_positive": [np.nan], "n_negative": [np.nan]},
            index=pd.Index(["macro"], name=self.per_class.index.name),
        )
        return pd.concat([self.per_class, macro])

    def to_dict(self):
        return json_safe(
            {
                "per_class": self.per_class.reset_index().astype({"class": str}).to_dict(orient="records"),
                "macro_auc": self.macro_auc,
                "macro_ci": list(self.macro_ci),
                "confidence": self.confidence,
                "n_bootstrap": self.n_bootstrap,
                "n_bootstrap_valid": self.n_bootstrap_valid,
                "bootstrap_unit": self.bootstrap_unit,
                "notes": self.notes,
            }
        )

    def summary(self):
        pct = f"{self.confidence:.0%}"
        lines = [f"Macro AUC {self.macro_auc:.4f} ({pct} CI {self.macro_ci[0]:.4f}-{self.macro_ci[1]:.4f}, bootstrap)"]
        for cls, row in self.per_class.iterrows():
            lines.append(f"  {cls} vs rest: AUC {row['auc']:.4f} ({row['ci_lo']:.4f}-{row['ci_hi']:.4f}, DeLong)")
        return "\n".join(lines + [f"Note: {n}" for n in self.notes])

    def __str__(self):
        return self.summary()


def multiclass_roc(
    y_true,
    y_score,
    *,
    classes=None,
    groups=None,
    confidence=0.95,
    n_bootstrap=2000,
    random_state=None,
):
    """One-vs-rest AUC per class with DeLong CIs, and the macro AUC with a bootstrap CI.

    There is no standard DeLong interval for the mean of one-vs-rest AUCs (each uses a different
    split of the same samples into cases and controls), so the macro interval is a percentile
    bootstrap: stratified by class, or resampling whole groups when ``groups`` is given (then the
    per-class DeLong intervals, which assume independent samples, are flagged in ``notes``).

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Class labels (any type).
    y_score : array-like of shape (n, n_classes)
        Scores per class, columns in the order of ``classes`` (e.g. ``predict_proba`` output).
    classes : sequence, optional
        Class of each column; default the sorted distinct labels (scikit-learn's ``classes_`` order).
    groups, confidence, n_bootstrap, random_state
        As in :func:`roc_report`.

    Returns
    -------
    MulticlassROC

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(["a", "b", "c"], 30)
    >>> s = rng.normal(size=(90, 3)) + np.eye(3)[np.repeat([0, 1, 2], 30)]
    >>> res = multiclass_roc(y, s, n_bootstrap=200, random_state=0)
    >>> list(res.per_class.index), res.macro_ci[0] < res.macro_auc < res.macro_ci[1]
    (['a', 'b', 'c'], True)
    """
    import pandas as pd

    y = as_1d(y_true, "y_true")
    confidence = check_confidence(confidence)
    n_bootstrap = check_n_bootstrap(n_bootstrap)
    s = check_scores(y_score, n=y.shape[0], name="y_score", ndim=2)
    classes = np.unique(y) if classes is None else np.asarray(list(classes))
    if s.shape[1] != classes.size:
        raise ValueError(
            f"y_score has {s.shape[1]} columns but there are {classes.size} classes {classes.tolist()[:10]}; "
            "pass classes= in column order."
        )
    if classes.size < 2:
        raise ValueError("y_true has a single class; ROC analysis needs at least two.")
    missing = [c for c in classes if not np.any(y == c)]
    unknown = sorted({str(v) for v in np.unique(y)} - {str(c) for c in classes})
    if missing or unknown:
        raise ValueError(f"y_true and classes disagree: classes absent from y_true {missing}, unknown labels {unknown}.")
    codes = check_groups(groups, y.shape[0])

    onehot = np.stack([(y == c).astype(np.int8) for c in classes], axis=1)
    rows = []
    for k, c in enumerate(classes.tolist()):
        yk = onehot[:, k]
        m, n = int(yk.sum()), int(yk.size - yk.sum())
        if m >= 2 and n >= 2:
            r = delong_auc_ci(yk, s[:, k], confidence)
        else:
            from sklearn.metrics import roc_auc_score

            r = (float(roc_auc_score(yk, s[:, k])), float("nan"), float("nan"))
        rows.append({"class": c, "auc": r[0], "ci_lo": r[1], "ci_hi": r[2], "ci_method": "delong",
                     "n_positive": m, "n_negative": n})
    per_class = pd.DataFrame(rows).set_index("class")
    macro = float(per_class["auc"].mean())

    notes = ["Macro AUC = unweighted mean of the one-vs-rest AUCs; its interval is a percentile bootstrap."]
    rng = np.random.default_rng(random_state)
    sorted_k = [SortedScores(onehot[:, k], s[:, k]) for k in range(classes.size)]
    boots, n_valid = [], 0
    strata = None if codes is not None else onehot.argmax(axis=1).astype(np.int64)
    resampler = Resampler(y.size, strata=strata, groups=codes)
    step = chunk_size(y.size * classes.size)
    done = 0
    while done < n_bootstrap:
        b = min(step, n_bootstrap - done)
        done += b
        w = resampler.draw(rng, b)
        aucs = np.column_stack([ss.auc(w[:, ss.order]) for ss in sorted_k])
        ok = np.all(np.isfinite(aucs), axis=1)
        n_valid += int(ok.sum())
        boots.append(aucs[ok].mean(axis=1))
    macro_ci = percentile_ci(np.concatenate(boots), confidence) if n_valid else (float("nan"), float("nan"))
    if codes is not None:
        unit = "group (whole groups resampled with replacement)"
        notes.append(
            "Samples are grouped: the macro interval resamples whole groups; the per-class DeLong intervals "
            "treat samples as independent and are usually too narrow."
        )
        if n_valid < n_bootstrap:
            notes.append(f"{n_bootstrap - n_valid} group resamples lacked a class and were dropped.")
    else:
        unit = "sample, stratified by class" if n_bootstrap else "none"
    return MulticlassROC(per_class, macro, macro_ci, confidence, n_bootstrap, n_valid, unit, notes)
