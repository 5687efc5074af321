"""Input checks shared by the evaluation functions (labels, scores, groups, confidence)."""

import numbers

import numpy as np

__all__ = ["check_binary", "check_confidence", "check_groups", "check_labels", "check_n_bootstrap", "check_scores"]


def as_1d(values, name):
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.ndim == 2 and 1 in arr.shape and arr.size > 0:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per sample), got an array of shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; expected at least one value per sample.")
    return arr


def check_labels(y_true, *, pos_label=None, name="y_true"):
    """Binary labels as an int8 array of 0/1.

    Accepts bools, numbers in {0, 1}, or any labels together with ``pos_label`` (required for
    strings, so the positive class is never guessed).
    """
    y = as_1d(y_true, name)
    if pos_label is not None:
        if not np.any(y == pos_label):
            found = sorted({str(v) for v in np.unique(y)})[:10]
            raise ValueError(f"pos_label={pos_label!r} does not occur in {name} (labels found: {found}).")
        return (y == pos_label).astype(np.int8)
    if y.dtype == np.bool_:
        return y.astype(np.int8)
    if y.dtype.kind in "iuf":
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError(f"{name} contains NaN or inf; expected labels 0/1.")
        values = np.unique(y)
        if not np.all(np.isin(values, (0, 1))):
            raise ValueError(
                f"{name} must hold binary labels 0/1 (or bools), got values {values[:10].tolist()}; "
                "for other labels pass pos_label=<the positive class>."
            )
        return y.astype(np.int8)
    found = sorted({str(v) for v in np.unique(y.astype(str))})[:10]
    raise ValueError(
        f"{name} holds non-numeric labels {found}; pass pos_label=<the positive class> so the positive class "
        "is not guessed."
    )


def check_scores(y_score, *, n=None, name="y_score", ndim=1):
    """Finite float64 scores, 1-D (or 2-D when ``ndim=2``) with ``n`` rows."""
    if hasattr(y_score, "to_numpy"):
        y_score = y_score.to_numpy()
    arr = np.asarray(y_score)
    if ndim == 1:
        if arr.ndim == 2 and arr.shape[1] == 2 and arr.shape[0] > 1:
            raise ValueError(
                f"{name} has shape {arr.shape}; expected one score per sample. For predict_proba output pass "
                "the positive-class column, e.g. proba[:, 1]."
            )
        arr = as_1d(arr, name)
    elif arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_classes), got an array of shape {arr.shape}.")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.float64)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be numeric scores, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or inf value(s); scores must be finite.")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values but y_true has {n}; they must have the same length.")
    return arr


def check_binary(y_true, y_score, *, pos_label=None, score_name="y_score"):
    """Validate a binary problem: returns (y int8 0/1, scores float64); both classes must be present."""
    y = check_labels(y_true, pos_label=pos_label)
    s = check_scores(y_score, n=y.shape[0], name=score_name)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.shape[0]:
        only = "positive" if n_pos else "negative"
        raise ValueError(
            f"y_true contains only {only} samples ({y.shape[0]}); ROC analysis needs both classes."
        )
    return y, s


def check_groups(groups, n):
    """Integer group codes 0..G-1 (or None)."""
    if groups is None:
        return None
    g = as_1d(groups, "groups")
    if g.shape[0] != n:
        raise ValueError(f"groups has {g.shape[0]} values but y_true has {n}; they must have the same length.")
    if g.dtype.kind == "f" and not np.all(np.isfinite(g)):
        raise ValueError("groups contains NaN or inf.")
    _, codes = np.unique(g.astype(str) if g.dtype == object else g, return_inverse=True)
    codes = codes.reshape(-1)
    if codes.max() < 1:
        raise ValueError("groups has a single group; a group bootstrap needs at least two groups.")
    return codes.astype(np.int64)


def check_confidence(confidence):
    if not isinstance(confidence, numbers.Real) or not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be a number in (0, 1), e.g. 0.95; got {confidence!r}.")
    return float(confidence)


def check_n_bootstrap(n_bootstrap):
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, numbers.Integral) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be a non-negative integer (0 turns the bootstrap off); got {n_bootstrap!r}.")
    return int(n_bootstrap)
