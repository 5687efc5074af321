"""The default set of handcrafted features: LBP, GIST, colour and GLCM side by side."""

import numpy as np
from sklearn.base import clone

from .._checks import check_image_batch
from ._base import ImageTransformer
from .color import ColorFeatures
from .gist import GIST
from .glcm import GLCMFeatures
from .lbp import LBPHistogram

__all__ = ["HandcraftedFeatures"]

_FAMILIES = (("lbp", LBPHistogram), ("gist", GIST), ("color", ColorFeatures), ("glcm", GLCMFeatures))


class HandcraftedFeatures(ImageTransformer):
    """LBP, GIST, colour and GLCM features concatenated, like a ``FeatureUnion`` of them.

    Each family parameter is ``True`` (the family with its default settings), ``False`` (left
    out) or a configured transformer of that family (cloned in ``fit``). The images are cut into
    chunks once and every family is computed on each chunk, so ``n_jobs`` parallelises the
    whole set; the families' own ``n_jobs`` are ignored.

    Parameters
    ----------
    lbp : bool or LBPHistogram
    gist : bool or GIST
    color : bool or ColorFeatures
    glcm : bool or GLCMFeatures
    n_jobs : int or None
        Number of joblib threads over chunks of images (None = 1).

    Attributes
    ----------
    transformers_ : list of (str, transformer)
        The fitted families, in output order.
    feature_names_ : ndarray of str
        Family names prefixed with ``"lbp__"``, ``"gist__"``, ``"color__"``, ``"glcm__"``.
    n_features_out_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    >>> est = HandcraftedFeatures(gist=GIST(image_size=32, boundary_extension=8))
    >>> F = est.fit_transform(X)
    >>> F.shape[0], est.get_feature_names_out()[0]
    (2, 'lbp__P8_R1_0')
    """

    _chunk_size = 4

    def __init__(self, lbp=True, gist=True, color=True, glcm=True, n_jobs=None):
        self.lbp = lbp
        self.gist = gist
        self.color = color
        self.glcm = glcm
        self.n_jobs = n_jobs

    def _families(self):
        out = []
        for name, cls in _FAMILIES:
            value = getattr(self, name)
            if value is True:
                est = cls()
            elif value is False or value is None:
                continue
            elif isinstance(value, cls):
                est = clone(value)
            else:
                raise ValueError(f"{name} must be True, False or a {cls.__name__} instance, got {value!r}.")
            out.append((name, est))
        if not out:
            raise ValueError("HandcraftedFeatures needs at least one of lbp, gist, color, glcm.")
        return out

    def fit(self, X, y=None):
        """Validate the images and the families, fit each family and record the feature names.

        Parameters
        ----------
        X : ndarray of shape (N, H, W, C) or list of images
        y : ignored

        Returns
        -------
        self
        """
        X = check_image_batch(X, keep_precision=True)  # checked once; the families re-check it without copying
        self.transformers_ = [(name, est.fit(X)) for name, est in self._families()]
        names = [f"{name}__{f}" for name, est in self.transformers_ for f in est.get_feature_names_out()]
        self.feature_names_ = np.asarray(names, dtype=object)
        self.n_features_out_ = len(names)
        return self

    def _check_input(self, X):
        for _, est in self.transformers_:
            est._check_input(X)

    def _transform_stack(self, images):
        return np.concatenate([est._transform_stack(images) for _, est in self.transformers_], axis=1)
