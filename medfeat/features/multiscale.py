"""Multiscale context features (Liu et al. 2017): one feature extractor applied at several fields of view.

A multiscale batch has shape (N, S, H, W, C): for each of N locations, S patches with the same
centre and growing fields of view resized to the same H x W (scale 0 the finest), as produced by
``medfeat.slides.read_patches(..., scales=(1, 2, 4))``. :class:`MultiScaleFeatures` runs an image
transformer on every scale and concatenates the results, scale 0 first.
"""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from medfeat._checks import check_multiscale_batch

__all__ = ["MultiScaleFeatures"]


class MultiScaleFeatures(TransformerMixin, BaseEstimator):
    """Apply an image transformer to each scale of (N, S, H, W, C) batches and concatenate.

    Parameters
    ----------
    transformer : estimator or None, default None
        Any transformer of NHWC image batches (e.g. :class:`~medfeat.features.DeepFeatures`, the
        handcrafted ones). None means ``DeepFeatures()`` (EfficientNet-Lite0, offline weights).
        It is cloned, never modified.
    n_scales : int or None, default None
        Number of scales S. None: taken from ``X`` in ``fit``; give it to fit with ``X=None``.
    per_scale : bool, default False
        False (default): one clone is shared by all scales, fitted on all scales' images together
        (one network in memory, and ``transform`` sends the N*S images through it in one pass,
        which batches best). True: one clone per scale, each fitted on its own scale's images, for
        transformers whose ``fit`` learns from the data.

    Attributes
    ----------
    transformers_ : list of estimators
        The fitted clone(s): one shared (``per_scale=False``) or one per scale.
    n_scales_ : int
    n_features_out_ : int

    See Also
    --------
    DeepFeatures : frozen CNN layer features of one scale.
    medfeat.slides.read_patches : multiscale patches from a slide.

    References
    ----------
    .. [1] Liu Y, Gadepalli K, Norouzi M, et al. Detecting cancer metastases on gigapixel pathology images.
       arXiv:1703.02442 (2017).

    Examples
    --------
    >>> import numpy as np
    >>> from medfeat.features.deep import DeepFeatures
    >>> X = np.zeros((2, 3, 32, 32, 3), np.uint8)  # 2 locations, 3 scales
    >>> ms = MultiScaleFeatures(DeepFeatures(layers="blocks.1", input_size=None)).fit(X)
    >>> ms.transform(X).shape
    (2, 72)
    >>> ms.get_feature_names_out()[[0, 24]].tolist()
    ['scale0__efficientnet_lite0.blocks.1__avg__0', 'scale1__efficientnet_lite0.blocks.1__avg__0']
    """

    def __init__(self, transformer=None, n_scales=None, per_scale=False):
        self.transformer = transformer
        self.n_scales = n_scales
        self.per_scale = per_scale

    def _base(self):
        if self.transformer is None:
            from medfeat.features.deep import DeepFeatures

            return DeepFeatures()
        if not (hasattr(self.transformer, "fit") and hasattr(self.transformer, "transform")):
            raise ValueError(f"transformer must be an estimator with fit and transform, got {self.transformer!r}.")
        return self.transformer

    def fit(self, X=None, y=None):
        """Fit the clone(s) of ``transformer``.

        Parameters
        ----------
        X : ndarray of shape (N, S, H, W, C) or None
            Multiscale batch; may be None when ``n_scales`` is set and the transformer's ``fit``
            accepts None (as :class:`~medfeat.features.DeepFeatures` does).
        y : ignored

        Returns
        -------
        self
        """
        n_scales = self.n_scales
        if n_scales is not None and (isinstance(n_scales, bool) or not isinstance(n_scales, (int, np.integer))
                                     or n_scales < 1):
            raise ValueError(f"n_scales must be a positive integer or None, got {n_scales!r}.")
        if X is not None:
            X = check_multiscale_batch(X, keep_precision=True)
            if n_scales is not None and X.shape[1] != n_scales:
                raise ValueError(f"X has {X.shape[1]} scales (shape {X.shape}) but n_scales={n_scales}.")
            n_scales = X.shape[1]
        if n_scales is None:
            raise ValueError("fit(X=None) needs n_scales: the number of scales is otherwise taken from X.")
        base = self._base()
        if self.per_scale:
            self.transformers_ = [clone(base).fit(None if X is None else X[:, s], y) for s in range(n_scales)]
        else:
            flat = None if X is None else X.reshape((-1,) + X.shape[2:])
            self.transformers_ = [clone(base).fit(flat)]
        names = []
        for s in range(n_scales):
            inner = self.transformers_[s if self.per_scale else 0]
            names.extend(f"scale{s}__{name}" for name in inner.get_feature_names_out())
        self.n_scales_ = int(n_scales)
        self.feature_names_ = np.asarray(names, dtype=object)
        self.n_features_out_ = len(names)
        return self

    def transform(self, X):
        """Features of every scale, concatenated scale 0 first.

        Parameters
        ----------
        X : ndarray of shape (N, S, H, W, C)

        Returns
        -------
        ndarray of float32, shape (N, n_features_out)
        """
        check_is_fitted(self, "feature_names_")
        X = check_multiscale_batch(X, keep_precision=True)
        n, s = X.shape[:2]
        if s != self.n_scales_:
            raise ValueError(f"X has {s} scales (shape {X.shape}); this transformer was fitted with {self.n_scales_}.")
        if self.per_scale:
            blocks = [np.asarray(t.transform(X[:, i]), dtype=np.float32) for i, t in enumerate(self.transformers_)]
            out = np.concatenate(blocks, axis=1)
        else:
            # (N*S, d) in location-major order reshapes to (N, S*d) with scale 0's block first.
            flat = np.asarray(self.transformers_[0].transform(X.reshape((n * s,) + X.shape[2:])), dtype=np.float32)
            out = flat.reshape(n, -1)
        if out.shape[1] != self.n_features_out_:
            raise RuntimeError(f"inner transformer gave {out.shape[1]} features in all, expected {self.n_features_out_}.")
        return np.ascontiguousarray(out)

    def get_feature_names_out(self, input_features=None):
        """Inner feature names prefixed ``scale<s>__``.

        Returns
        -------
        ndarray of str objects
        """
        check_is_fitted(self, "feature_names_")
        return self.feature_names_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # (N, S, H, W, C) image batches
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = []
        return tags
