"""Patch-to-slide (or image-to-patient) score aggregation."""

import numpy as np
import pandas as pd

__all__ = ["aggregate_slide_scores"]

_METHODS = ("max", "mean", "quantile", "topk_mean")


def aggregate_slide_scores(scores, groups, method="max", *, k=5, q=0.9):
    """Aggregate patch scores into one score per slide (or patient).

    Parameters
    ----------
    scores : array-like of shape (n,) or (n, c)
        Patch scores (probabilities or decision values). 2-D input is aggregated column by column.
    groups : array-like of shape (n,)
        Slide (or patient) id of each patch.
    method : {"max", "topk_mean", "quantile", "mean"}, default="max"
        ``"max"``: highest patch score (Liu et al. 2017 use the maximum of the tumour heatmap);
        ``"topk_mean"``: mean of the ``k`` highest scores (all of them when a slide has fewer than
        ``k`` patches), less sensitive to one false-positive patch; ``"quantile"``: the ``q``-quantile
        (linear interpolation); ``"mean"``: the average.
    k : int, default=5
        Number of top patches for ``"topk_mean"``.
    q : float, default=0.9
        Quantile in [0, 1] for ``"quantile"``.

    Returns
    -------
    pandas.Series or pandas.DataFrame
        Indexed by the sorted unique groups (index name ``"group"``); a DataFrame with the columns of
        ``scores`` when ``scores`` is 2-D.

    Examples
    --------
    >>> s = aggregate_slide_scores([0.1, 0.9, 0.3, 0.2, 0.4], ["a", "a", "b", "b", "b"], "topk_mean", k=2)
    >>> s.round(2).to_dict()
    {'a': 0.5, 'b': 0.35}
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {list(_METHODS)}, got {method!r}.")
    scores_arr = np.asarray(scores, dtype=np.float64)
    if scores_arr.ndim not in (1, 2):
        raise ValueError(f"scores must be 1-D (n,) or 2-D (n, c), got shape {scores_arr.shape}.")
    groups_arr = np.asarray(groups)
    if groups_arr.ndim != 1 or len(groups_arr) != len(scores_arr):
        raise ValueError(
            f"groups must be 1-D with one entry per score ({len(scores_arr)}), got shape {groups_arr.shape}."
        )
    if len(scores_arr) == 0:
        raise ValueError("scores is empty; expected at least one patch score.")
    if np.isnan(scores_arr).any():
        raise ValueError("scores contains NaN values.")
    if method == "topk_mean" and (not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"k must be a positive integer for method='topk_mean', got {k!r}.")
    if method == "quantile" and not (0.0 <= float(q) <= 1.0):
        raise ValueError(f"q must lie in [0, 1] for method='quantile', got {q!r}.")

    frame = pd.DataFrame(scores_arr if scores_arr.ndim == 2 else scores_arr[:, None])
    if hasattr(scores, "columns"):
        frame.columns = scores.columns
    grouped = frame.groupby(pd.Index(groups_arr, name="group"), sort=True)
    if method == "max":
        out = grouped.max()
    elif method == "mean":
        out = grouped.mean()
    elif method == "quantile":
        out = grouped.quantile(float(q), interpolation="linear")
    else:
        out = grouped.agg(lambda col: np.sort(col.to_numpy())[-k:].mean())
    if scores_arr.ndim == 1:
        series = out.iloc[:, 0]
        series.name = getattr(scores, "name", None)
        return series
    return out
