"""Feature-level domain alignment without target labels: per-slide standardisation and CORAL.

Frozen CNN embeddings of tiles from one slide share an offset (and a covariance) caused by that
slide's stain and scanner. Both transformers here remove it using only the features of each slide
(no labels), so a slide never seen in training can be aligned at prediction time:

- :class:`SlideStandardizer` / :func:`standardize_by_group`: subtract each slide's feature mean and
  divide by its standard deviation;
- :class:`CORAL` / :func:`coral_align`: whiten each slide's features with its own covariance and
  re-colour them with the reference (training) covariance, CORrelation ALignment (Sun, Feng & Saenko
  2016) applied slide by slide towards one common reference.

Both need the group (slide) of every row **at transform time**, which scikit-learn passes through
metadata routing. Standalone: ``fit_transform(X, groups=g)`` and ``transform(X, groups=g)``. Inside a
:class:`~sklearn.pipeline.Pipeline` turn routing on (``sklearn.set_config(enable_metadata_routing=True)``)
and pass ``groups=`` to ``fit``, ``predict``, ``predict_proba`` ... : both classes request ``groups`` by
default. ``groups=None`` means all rows come from one slide (e.g. scoring one slide at a time).

Caveat, measured in ``benchmarks/study_domain_shift.py``: a slide's mean also reflects its mix of
tissue classes; when that mix differs a lot between slides, per-slide centring removes signal too.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = np.r_[rng.normal(0, 1, (50, 3)), rng.normal(5, 2, (50, 3))]   # slide 1 is shifted and scaled
>>> groups = np.repeat(["s0", "s1"], 50)
>>> Z = SlideStandardizer().fit_transform(X, groups=groups)
>>> bool(np.allclose(Z[50:].mean(axis=0), 0) and np.allclose(Z[50:].std(axis=0), 1))
True
"""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["CORAL", "SlideStandardizer", "coral_align", "standardize_by_group"]


def _groups(groups, n):
    if groups is None:
        return np.zeros(n, dtype=np.int64)
    g = np.asarray(groups)
    if g.ndim != 1 or len(g) != n:
        raise ValueError(f"groups must be 1-D with one slide/group id per row ({n}), got shape {g.shape}.")
    return g


def _check_min_size(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 2:
        raise ValueError(f"min_group_size must be an integer >= 2, got {value!r}.")
    return int(value)


def _warn_small(cls, small, min_size):
    if small:
        warnings.warn(
            f"{cls}: {len(small)} group(s) have fewer than {min_size} rows ({sorted(map(str, small))[:5]}); "
            "they are transformed with the training statistics instead of their own.",
            UserWarning,
            stacklevel=3,
        )


class SlideStandardizer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Standardise features slide by slide: ``(x - mean_slide) / std_slide`` for every row of that slide.

    Parameters
    ----------
    with_std : bool, default=True
        Divide by each slide's standard deviation (else only centre).
    min_group_size : int, default=2
        Slides with fewer rows use the training set's mean and std instead (with a warning).
    eps : float, default=1e-6
        Floor of the standard deviation (constant features).

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_features,)
        Training mean and std (pooled over all training rows), the fallback for small groups.
    n_features_in_ : int
    n_groups_fit_ : int
        Number of groups seen in ``fit``.

    Notes
    -----
    The transform of a slide depends only on that slide's own rows, so it never leaks across a
    slide-grouped train/test split; it does depend on which rows of the slide are transformed together.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0], [3.0], [10.0], [30.0]])
    >>> SlideStandardizer().fit_transform(X, groups=[0, 0, 1, 1]).ravel().tolist()
    [-1.0, 1.0, -1.0, 1.0]
    """

    __metadata_request__fit = {"groups": True}
    __metadata_request__transform = {"groups": True}

    def __init__(self, with_std=True, min_group_size=2, eps=1e-6):
        self.with_std = with_std
        self.min_group_size = min_group_size
        self.eps = eps

    def fit(self, X, y=None, groups=None):
        """Record the training mean/std (fallback for small groups).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        groups : array-like of shape (n_samples,), optional
            Slide of every row (only counted here).

        Returns
        -------
        self
        """
        _check_min_size(self.min_group_size)
        X = validate_data(self, X, dtype=np.float64)
        g = _groups(groups, len(X))
        self.mean_ = X.mean(axis=0)
        self.scale_ = np.maximum(X.std(axis=0), float(self.eps)) if self.with_std else np.ones(X.shape[1])
        self.n_groups_fit_ = len(np.unique(g))
        return self

    def transform(self, X, groups=None):
        """Standardise each group's rows with that group's own statistics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        groups : array-like of shape (n_samples,), optional
            Slide of every row; None: all rows are one slide.

        Returns
        -------
        ndarray of float64, shape (n_samples, n_features)
        """
        check_is_fitted(self, "mean_")
        min_size = _check_min_size(self.min_group_size)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        g = _groups(groups, len(X))
        out = np.empty_like(X)
        small = []
        for gid in np.unique(g):
            rows = g == gid
            if rows.sum() < min_size:
                small.append(gid)
                mean, scale = self.mean_, self.scale_
            else:
                mean = X[rows].mean(axis=0)
                scale = np.maximum(X[rows].std(axis=0), float(self.eps)) if self.with_std else 1.0
            out[rows] = (X[rows] - mean) / scale
        _warn_small(type(self).__name__, small, min_size)
        return out

    def fit_transform(self, X, y=None, groups=None):
        """``fit(X, y, groups).transform(X, groups)``."""
        return self.fit(X, y, groups=groups).transform(X, groups=groups)


def _sym_power(C, power):
    w, V = np.linalg.eigh(C)
    w = np.maximum(w, 1e-12)
    return (V * w**power) @ V.T


def _whiten(Xc, ridge, eye):
    """``Xc (Xc^T Xc / n + ridge I)^(-1/2)`` for centred rows ``Xc``.

    With fewer rows than features (a slide of 80 tiles, 1280 CNN features) the covariance has rank < n,
    so the thin SVD ``Xc = U S V^T`` gives the same result in O(n^2 d) instead of an O(d^3) eigendecomposition:
    ``Xc (C + rI)^(-1/2) = U S (S^2 / n + r)^(-1/2) V^T``.
    """
    n, d = Xc.shape
    if n >= d:
        return Xc @ _sym_power(Xc.T @ Xc / n + ridge * eye, -0.5)
    U, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    return (U * (S / np.sqrt(S * S / n + ridge))) @ Vt


class CORAL(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """CORrelation ALignment of each slide to the training slides' covariance (Sun et al. 2016).

    ``fit`` takes the reference: the mean of the training rows and the average within-slide covariance
    ``C_ref`` (so the between-slide shift is not part of it). ``transform`` maps every slide's rows
    ``x -> (x - mean_slide) (C_slide + r I)^(-1/2) (C_ref + r I)^(1/2) + mean_ref``, with
    ``r = reg * trace(C_ref) / n_features`` (the identity term of the CORAL paper, made scale-free).
    Best on a modest number of features (e.g. after PCA) relative to the rows per slide.

    Parameters
    ----------
    reg : float, default=1.0
        Ridge added to every covariance, in units of the average reference variance.
    min_group_size : int, default=2
        Slides with fewer rows are left as they are (with a warning).

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
    covariance_ : ndarray of shape (n_features, n_features)
        Reference (average within-slide) covariance, without the ridge.
    ridge_ : float
    n_features_in_, n_groups_fit_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> A = rng.normal(size=(200, 2)); B = rng.normal(size=(200, 2)) @ [[3.0, 1.0], [0.0, 0.5]] + 4
    >>> X = np.r_[A, B]; g = np.repeat([0, 1], 200)
    >>> Z = CORAL(reg=1e-6).fit_transform(X, groups=g)
    >>> bool(np.allclose(np.cov(Z[200:], rowvar=False), np.cov(Z[:200], rowvar=False), atol=1e-6))
    True
    """

    __metadata_request__fit = {"groups": True}
    __metadata_request__transform = {"groups": True}

    def __init__(self, reg=1.0, min_group_size=2):
        self.reg = reg
        self.min_group_size = min_group_size

    def _check_reg(self):
        if isinstance(self.reg, bool) or not isinstance(self.reg, numbers.Real) or not self.reg >= 0:
            raise ValueError(f"reg must be a number >= 0, got {self.reg!r}.")

    def fit(self, X, y=None, groups=None):
        """Reference mean and average within-slide covariance of the training rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        groups : array-like of shape (n_samples,), optional
            Slide of every row; None: one slide.

        Returns
        -------
        self
        """
        self._check_reg()
        min_size = _check_min_size(self.min_group_size)
        X = validate_data(self, X, dtype=np.float64)
        g = _groups(groups, len(X))
        covs, weights = [], []
        for gid in np.unique(g):
            rows = g == gid
            if rows.sum() >= min_size:
                covs.append(np.cov(X[rows], rowvar=False, bias=True).reshape(X.shape[1], X.shape[1]))
                weights.append(rows.sum())
        if not covs:
            largest = int(np.unique(g, return_counts=True)[1].max())
            raise ValueError(
                f"CORAL needs a group with at least min_group_size={min_size} rows to estimate a covariance; the "
                f"largest has {largest}" + (" (one sample has no covariance)." if largest == 1 else ".")
            )
        self.mean_ = X.mean(axis=0)
        self.covariance_ = np.average(np.stack(covs), axis=0, weights=np.asarray(weights, float))
        self.ridge_ = float(self.reg) * max(float(np.trace(self.covariance_)) / X.shape[1], 1e-12)
        eye = np.eye(X.shape[1])
        self._recolour = _sym_power(self.covariance_ + self.ridge_ * eye, 0.5)
        self.n_groups_fit_ = len(np.unique(g))
        return self

    def transform(self, X, groups=None):
        """Align every slide's rows to the reference covariance and mean.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        groups : array-like of shape (n_samples,), optional
            Slide of every row; None: all rows are one slide.

        Returns
        -------
        ndarray of float64, shape (n_samples, n_features)
        """
        check_is_fitted(self, "covariance_")
        min_size = _check_min_size(self.min_group_size)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        g = _groups(groups, len(X))
        out = X.copy()
        eye = np.eye(X.shape[1])
        small = []
        for gid in np.unique(g):
            rows = g == gid
            if rows.sum() < min_size:
                small.append(gid)
                continue
            Xc = X[rows] - X[rows].mean(axis=0)
            out[rows] = _whiten(Xc, self.ridge_, eye) @ self._recolour + self.mean_
        _warn_small(type(self).__name__, small, min_size)
        return out

    def fit_transform(self, X, y=None, groups=None):
        """``fit(X, y, groups).transform(X, groups)``."""
        return self.fit(X, y, groups=groups).transform(X, groups=groups)


def standardize_by_group(X, groups, *, with_std=True, min_group_size=2):
    """Per-group (per-slide) standardisation of a feature table; see :class:`SlideStandardizer`.

    Examples
    --------
    >>> import numpy as np
    >>> standardize_by_group(np.array([[0.0], [2.0], [5.0], [5.0]]), [0, 0, 1, 1]).ravel().tolist()
    [-1.0, 1.0, 0.0, 0.0]
    """
    return SlideStandardizer(with_std=with_std, min_group_size=min_group_size).fit_transform(X, groups=groups)


def coral_align(X, groups, *, reg=1.0, min_group_size=2):
    """Align every group's features to the average within-group covariance; see :class:`CORAL`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (30, 2)), rng.normal(0, 3, (30, 2))]
    >>> Z = coral_align(X, np.repeat([0, 1], 30), reg=1e-6)
    >>> bool(np.allclose(Z[:30].std(axis=0), Z[30:].std(axis=0), atol=1e-6))
    True
    """
    return CORAL(reg=reg, min_group_size=min_group_size).fit_transform(X, groups=groups)
