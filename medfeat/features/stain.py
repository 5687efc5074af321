"""Stain normalisation, stain and colour augmentation, and dihedral test-time augmentation.

Slide-to-slide colour differences (stain batch, scanner, section thickness) are the first thing that
breaks frozen ImageNet features on H&E tiles. This module gives three kinds of levers, all on NHWC
``uint8`` batches (or lists of ``H x W x 3`` images), each a plain function plus a scikit-learn
estimator:

- **stain normalisation** (image -> image transformers, fitted on one reference image or on a set
  of references): :class:`ReinhardNormalizer` (LAB means and standard deviations, Reinhard et al.
  2001), :class:`MacenkoNormalizer` (stain vectors from the SVD of optical density, Macenko et al.
  2009) and :class:`VahadaneNormalizer` (sparse non-negative factorisation of optical density,
  Vahadane et al. 2016). Tiles with too little stain (background, fat) are passed through
  unchanged, never an exception in the middle of a batch; the count is warned about
  (:class:`StainPassThroughWarning`) and kept in ``n_passed_through_``.
- **augmentation for training**: :func:`hed_jitter` / :class:`HEDJitter` (Tellez et al. 2019) and
  :func:`color_jitter` / :class:`ColorJitter` (brightness, contrast, saturation, hue; Liu et al.
  2017). Adding K augmented copies changes the number of samples, which a transformer must not do,
  so the expansion is a meta-estimator, :class:`AugmentedTraining`, that augments inside ``fit``
  only and predicts on the images as given.
- **test-time augmentation**: the 8 dihedral transforms (:func:`dihedral`), averaged at the feature
  level (:class:`DihedralMean`, a transformer wrapper) or at the score level (:class:`DihedralTTA`,
  a classifier wrapper).

Optical density is ``OD = -ln(max(I, 1) / 255)`` per RGB channel; a pixel counts as stained when
the Euclidean norm of its OD vector exceeds ``beta`` (0.15 by default). Macenko's original rule (every
channel above ``beta``) drops pale eosin pixels, whose red OD is small.

Examples
--------
>>> import numpy as np
>>> from skimage import data
>>> ihc = data.immunohistochemistry()[:64, :64]
>>> norm = ReinhardNormalizer().fit(ihc[None])
>>> norm.transform(np.stack([ihc[::-1], np.full_like(ihc, 255)])).shape
(2, 64, 64, 3)
>>> int(norm.n_passed_through_)   # the blank tile came back unchanged
1
"""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, TransformerMixin, clone
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from .._checks import check_image, check_image_batch

__all__ = [
    "AugmentedTraining",
    "ColorJitter",
    "DihedralMean",
    "DihedralTTA",
    "HEDJitter",
    "MacenkoNormalizer",
    "ReinhardNormalizer",
    "StainPassThroughWarning",
    "VahadaneNormalizer",
    "color_jitter",
    "dihedral",
    "hed_jitter",
    "lab_statistics",
    "macenko_normalize",
    "macenko_stain_matrix",
    "optical_density",
    "reinhard_normalize",
    "stained_fraction",
    "vahadane_normalize",
    "vahadane_stain_matrix",
]

_IO = 255.0  # transmitted light intensity of an empty pixel


class StainPassThroughWarning(UserWarning):
    """Some tiles had too little stain to normalise and were returned unchanged."""


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _rgb(image, name="image"):
    im = check_image(image, name=name)
    if im.shape[2] == 1:
        raise ValueError(f"{name} is a grey image; stain normalisation and HED jitter need RGB (H x W x 3).")
    return im


def _rng(random_state):
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is not None and not isinstance(random_state, (numbers.Integral, np.random.SeedSequence)):
        raise ValueError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}.")
    return np.random.default_rng(random_state)


def _check_fraction(value, name, *, upper=1.0):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= upper:
        raise ValueError(f"{name} must be a number in [0, {upper:g}], got {value!r}.")
    return float(value)


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return float(value)


def _to_output(rgb01, dtype):
    """float RGB (any range) -> clipped uint8, or float64 in [0, 1]."""
    rgb01 = np.clip(rgb01, 0.0, 1.0)
    if dtype == "uint8":
        return np.round(rgb01 * 255.0).astype(np.uint8)
    return rgb01


def optical_density(image):
    """Optical density ``-ln(max(I, 1) / 255)`` of every RGB value of an image.

    Parameters
    ----------
    image : array-like of shape (H, W, 3)
        uint8 RGB image (or float in [0, 1]).

    Returns
    -------
    ndarray of float64, shape (H, W, 3)
        0 for white, ``ln 255`` ~ 5.54 for black.

    Examples
    --------
    >>> import numpy as np
    >>> od = optical_density(np.array([[[255, 93, 0]]], np.uint8))
    >>> np.round(od, 3).tolist()
    [[[0.0, 1.009, 5.541]]]
    """
    im = _rgb(image)
    return np.log(_IO / np.maximum(im.astype(np.float64), 1.0))


def _stained(od, beta):
    """Boolean mask of pixels whose OD vector norm exceeds ``beta``; od has shape (..., 3)."""
    return np.sqrt((od * od).sum(axis=-1)) > beta


def stained_fraction(image, beta=0.15):
    """Fraction of pixels whose optical-density norm exceeds ``beta`` (stained tissue).

    Examples
    --------
    >>> import numpy as np
    >>> im = np.full((4, 4, 3), 255, np.uint8); im[:2] = (150, 60, 160)
    >>> stained_fraction(im)
    0.5
    """
    return float(_stained(optical_density(image), _check_positive(beta, "beta")).mean())


# ----------------------------------------------------------------------------------------------
# Reinhard
# ----------------------------------------------------------------------------------------------
def lab_statistics(image):
    """Mean and standard deviation of each CIE-LAB channel (skimage ``rgb2lab``, D65) of an image.

    Parameters
    ----------
    image : array-like of shape (H, W, 3)
        uint8 RGB, or float RGB in [0, 1].

    Returns
    -------
    mean, std : ndarray of float64, shape (3,)
        L in [0, 100], a and b roughly in [-128, 127].

    Examples
    --------
    >>> import numpy as np
    >>> mean, std = lab_statistics(np.full((2, 2, 3), 255, np.uint8))
    >>> np.round(mean, 1).tolist(), std.tolist()    # white: L = 100, a = b = 0 (up to the D65 constants)
    ([100.0, -0.0, 0.0], [0.0, 0.0, 0.0])
    """
    from skimage.color import rgb2lab

    im = np.asarray(image)
    if im.dtype != np.float64 or im.ndim != 3:
        im = _rgb(im).astype(np.float64) / 255.0
    lab = rgb2lab(im).reshape(-1, 3)
    return lab.mean(axis=0), lab.std(axis=0)


def _median_rows(values):
    return np.median(np.asarray(values, dtype=np.float64), axis=0)


# ----------------------------------------------------------------------------------------------
# Macenko and Vahadane stain matrices
# ----------------------------------------------------------------------------------------------
def _orient(vectors):
    """Unit rows, haematoxylin first: H absorbs more red than eosin does."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    if v[0, 0] < v[1, 0]:
        v = v[::-1]
    return np.ascontiguousarray(v)


def _stained_od(image, beta, min_stain_fraction, name="image"):
    od = optical_density(image).reshape(-1, 3)
    keep = _stained(od, beta)
    n = int(keep.sum())
    if n < max(3, int(np.ceil(min_stain_fraction * len(od)))):
        raise ValueError(
            f"{name} has too little stain to estimate stain vectors: {n} of {len(od)} pixels have an optical "
            f"density above beta={beta:g} (need at least a fraction {min_stain_fraction:g})."
        )
    return od[keep]


def macenko_stain_matrix(image, *, beta=0.15, alpha=1.0, min_stain_fraction=0.05):
    """Haematoxylin and eosin stain vectors of an H&E image by the method of Macenko et al. (2009).

    The optical densities of the stained pixels are projected on the plane of their two main
    directions (eigenvectors of their covariance, i.e. an SVD of the centred OD); the stains are the
    directions at the ``alpha`` and ``100 - alpha`` percentiles of the angle in that plane.

    Parameters
    ----------
    image : array-like of shape (H, W, 3)
        uint8 RGB H&E image.
    beta : float, default=0.15
        Optical-density norm below which a pixel counts as background.
    alpha : float, default=1.0
        Percentile (in %) of the extreme angles, for robustness to outliers.
    min_stain_fraction : float, default=0.05
        Fewer stained pixels than this fraction raise ``ValueError``.

    Returns
    -------
    ndarray of float64, shape (2, 3)
        Unit OD vectors (R, G, B), haematoxylin first (the one with the larger red component).

    Raises
    ------
    ValueError
        Too little stain (e.g. a blank or fat tile), or a degenerate (one-colour) image.

    Examples
    --------
    >>> import numpy as np
    >>> H, E = np.array([0.65, 0.70, 0.29]), np.array([0.07, 0.99, 0.11])
    >>> H, E = H / np.linalg.norm(H), E / np.linalg.norm(E)
    >>> c = np.random.default_rng(0).uniform(0, 1.5, (64, 64, 2)); c[:16, :, 1] = 0; c[16:32, :, 0] = 0
    >>> image = (255 * np.exp(-(c @ np.stack([H, E])))).round().clip(0, 255).astype(np.uint8)
    >>> bool(np.abs(macenko_stain_matrix(image) - np.stack([H, E])).max() < 0.01)
    True
    """
    beta = _check_positive(beta, "beta")
    alpha = _check_fraction(alpha, "alpha", upper=50.0)
    od = _stained_od(image, beta, _check_fraction(min_stain_fraction, "min_stain_fraction"))
    _, eigvec = np.linalg.eigh(np.cov(od, rowvar=False))
    plane = eigvec[:, [2, 1]]  # the two largest eigenvalues (eigh sorts ascending)
    plane = plane * np.where(plane.sum(axis=0) < 0, -1.0, 1.0)  # point into the positive octant
    proj = od @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, [alpha, 100.0 - alpha])
    v1 = plane @ np.array([np.cos(lo), np.sin(lo)])
    v2 = plane @ np.array([np.cos(hi), np.sin(hi)])
    vectors = np.stack([v1, v2])
    if not np.all(np.isfinite(vectors)) or np.linalg.matrix_rank(vectors, tol=1e-6) < 2:
        raise ValueError("image has a single colour direction; two stain vectors cannot be separated.")
    return _orient(vectors * np.where(vectors.sum(axis=1, keepdims=True) < 0, -1.0, 1.0))


def _positive_lasso_2(od, D, lam):
    """Exact minimiser of ``0.5 ||x - c D||^2 + lam * sum(c)`` over c >= 0, for two atoms, row by row.

    Hand-written because scikit-learn's ``sparse_encode`` solves one Lasso per pixel in a Python loop
    (seconds per tile); with two atoms the KKT conditions have four cases, solved here vectorised.
    """
    G = D @ D.T
    b = od @ D.T
    candidates = [np.zeros_like(b)]
    for k in (0, 1):
        c = np.zeros_like(b)
        c[:, k] = np.maximum(0.0, (b[:, k] - lam) / G[k, k])
        candidates.append(c)
    det = G[0, 0] * G[1, 1] - G[0, 1] ** 2
    if det > 1e-12:
        r = b - lam
        both = np.column_stack([G[1, 1] * r[:, 0] - G[0, 1] * r[:, 1], G[0, 0] * r[:, 1] - G[0, 1] * r[:, 0]]) / det
        both = np.where((both >= 0).all(axis=1, keepdims=True), both, np.nan)
        candidates.append(both)
    best, best_obj = None, None
    for c in candidates:
        obj = 0.5 * np.einsum("ij,jk,ik->i", c, G, c) - (b * c).sum(axis=1) + lam * c.sum(axis=1)
        obj = np.where(np.isnan(obj), np.inf, obj)
        if best is None:
            best, best_obj = c.copy(), obj
        else:
            better = obj < best_obj
            best[better] = c[better]
            best_obj = np.minimum(obj, best_obj)
    return best


# Ruifrok & Johnston (2001) H&E vectors: the starting dictionary of the sparse factorisation.
_RUIFROK_HE = _orient([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]])


def vahadane_stain_matrix(
    image, *, beta=0.15, lam=0.1, n_pixels=4000, max_iter=100, min_stain_fraction=0.05, random_state=0
):
    """Haematoxylin and eosin stain vectors by sparse non-negative factorisation (Vahadane et al. 2016).

    Solves ``min 0.5 ||OD - C W||^2 + lam ||C||_1`` over non-negative concentrations ``C`` and
    non-negative unit-norm stain vectors ``W`` (2 x 3) by alternating an exact two-atom positive
    lasso with a block-coordinate dictionary update, as in scikit-learn's ``dict_learning`` with
    ``positive_code=True, positive_dict=True`` (that gives the same objective but took ~2.6 s per
    150 px tile here because of its per-pixel Lasso loop; this takes milliseconds).

    Parameters
    ----------
    image : array-like of shape (H, W, 3)
        uint8 RGB H&E image.
    beta : float, default=0.15
        Optical-density norm below which a pixel counts as background.
    lam : float, default=0.1
        Sparsity weight (Vahadane et al. use 0.1).
    n_pixels : int, default=4000
        Stained pixels sampled (seeded) for the factorisation.
    max_iter : int, default=100
    min_stain_fraction : float, default=0.05
        Fewer stained pixels than this fraction raise ``ValueError``.
    random_state : int, default=0
        Seed of the pixel sample.

    Returns
    -------
    ndarray of float64, shape (2, 3)
        Unit OD vectors, haematoxylin first.

    Examples
    --------
    >>> import numpy as np
    >>> H, E = np.array([0.65, 0.70, 0.29]), np.array([0.07, 0.99, 0.11])
    >>> c = np.random.default_rng(0).uniform(0, 1.5, (64, 64, 2)); c[:16, :, 1] = 0; c[16:32, :, 0] = 0
    >>> image = (255 * np.exp(-(c @ np.stack([H, E])))).round().clip(0, 255).astype(np.uint8)
    >>> W = vahadane_stain_matrix(image)
    >>> W.shape, bool(W[0, 0] > W[1, 0])
    ((2, 3), True)
    """
    beta = _check_positive(beta, "beta")
    lam = float(lam)
    if not lam >= 0:
        raise ValueError(f"lam must be >= 0, got {lam!r}.")
    od = _stained_od(image, beta, _check_fraction(min_stain_fraction, "min_stain_fraction"))
    if len(od) > n_pixels:
        od = od[_rng(random_state).choice(len(od), int(n_pixels), replace=False)]
    D = _RUIFROK_HE.copy()
    for _ in range(int(max_iter)):
        C = _positive_lasso_2(od, D, lam)
        D_old = D.copy()
        R = od - C @ D
        for k in (0, 1):
            ck = C[:, k]
            norm2 = ck @ ck
            if norm2 < 1e-12:
                continue  # unused atom: keep it (sklearn re-draws it at random; a fixed start is reproducible)
            R += np.outer(ck, D[k])
            d = np.maximum(R.T @ ck / norm2, 0.0)
            nd = np.linalg.norm(d)
            if nd > 1e-12:
                D[k] = d / nd
            R -= np.outer(ck, D[k])
        if np.abs(D - D_old).max() < 1e-6:
            break
    if np.linalg.matrix_rank(D, tol=1e-6) < 2:
        raise ValueError("image has a single colour direction; two stain vectors cannot be separated.")
    return _orient(D)


def _concentrations(image, stains):
    """Least-squares stain concentrations (H*W, 2) of every pixel for the given (2, 3) stain matrix."""
    od = optical_density(image).reshape(-1, 3)
    return np.linalg.lstsq(stains.T, od.T, rcond=None)[0].T


# ----------------------------------------------------------------------------------------------
# normaliser estimators
# ----------------------------------------------------------------------------------------------
class _StainNormalizer(TransformerMixin, BaseEstimator):
    """Shared fit/transform of the normalisers: per-image estimate, median over references, apply."""

    def _check_params(self):
        self._beta = _check_positive(self.beta, "beta")
        self._min_fraction = _check_fraction(self.min_stain_fraction, "min_stain_fraction")
        if self.dtype not in ("uint8", "float"):
            raise ValueError(f"dtype must be 'uint8' or 'float', got {self.dtype!r}.")

    def _enough_stain(self, image):
        frac = _stained(optical_density(image), self._beta).mean()
        return frac >= self._min_fraction and frac > 0

    def fit(self, X, y=None):
        """Estimate the target statistics from one or several reference images.

        Parameters
        ----------
        X : ndarray of shape (N, H, W, 3) or list of images
            Reference image(s), ignored when the ``reference`` parameter is set (a fixed template, so
            that fitting inside a pipeline does not replace it by the training images). With several,
            per-image estimates are pooled by their median (robust to one odd reference). References
            with too little stain are skipped (``n_references_skipped_``).
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            No reference has enough stain.
        """
        self._check_params()
        if self.reference is not None:
            X = self.reference
            if isinstance(X, np.ndarray) and X.ndim == 3:
                X = X[None]
            X = check_image_batch(X, name="reference")
        else:
            X = check_image_batch(X)
        estimates, skipped = [], 0
        for i, im in enumerate(X):
            im = _rgb(im, name=f"X[{i}]")
            est = self._estimate(im) if self._enough_stain(im) else None
            if est is None:
                skipped += 1
            else:
                estimates.append(est)
        if not estimates:
            raise ValueError(
                f"none of the {len(X)} reference image(s) has enough stain (stained fraction >= "
                f"{self._min_fraction:g} at beta={self._beta:g}); choose tissue-rich references."
            )
        self._set_target(estimates)
        self.n_references_ = len(estimates)
        self.n_references_skipped_ = skipped
        return self

    def transform(self, X):
        """Normalise every image; those with too little stain are returned unchanged.

        Parameters
        ----------
        X : ndarray of shape (N, H, W, 3) or list of images

        Returns
        -------
        ndarray of shape (N, H, W, 3) or list of images
            uint8 (``dtype="uint8"``) or float64 in [0, 1] (``dtype="float"``); a list for a list.

        Warns
        -----
        StainPassThroughWarning
            When some images were passed through; their number is also kept in
            ``n_passed_through_`` (of the latest call).
        """
        check_is_fitted(self, "n_references_")
        self._check_params()
        X = check_image_batch(X)
        out, passed = [], 0
        for i, im in enumerate(X):
            im = _rgb(im, name=f"X[{i}]")
            res = None
            if self._enough_stain(im):
                est = self._estimate(im)
                if est is not None:
                    res = self._apply(im, est)
            if res is None:
                passed += 1
                res = im if self.dtype == "uint8" else im.astype(np.float64) / 255.0
            out.append(res)
        # Reported rather than raised: one fat or background tile must not stop a slide's batch.
        self.n_passed_through_ = passed
        if passed:
            warnings.warn(
                f"{type(self).__name__}: {passed} of {len(out)} image(s) had too little stain "
                f"(stained fraction < {self._min_fraction:g}) and were passed through unchanged.",
                StainPassThroughWarning,
                stacklevel=2,
            )
        return np.stack(out) if isinstance(X, np.ndarray) else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # NHWC images in, images out
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = []
        tags.non_deterministic = False
        return tags


class ReinhardNormalizer(_StainNormalizer):
    """Reinhard colour transfer: match each image's CIE-LAB mean and std to the reference's.

    Parameters
    ----------
    beta : float, default=0.15
        Optical-density norm below which a pixel counts as unstained.
    min_stain_fraction : float, default=0.05
        Images with a smaller stained fraction (blank, background, fat) are passed through.
    dtype : {"uint8", "float"}, default="uint8"
        Output as rounded uint8, or as float64 RGB in [0, 1] (no rounding).
    reference : array-like of shape (H, W, 3), (N, H, W, 3) or list, optional
        Fixed reference image(s): ``fit`` estimates the target from them and ignores its ``X``. None:
        the images passed to ``fit`` are the references (in a pipeline: the training images, pooled
        by their median).

    Attributes
    ----------
    target_mean_, target_std_ : ndarray of shape (3,)
        LAB statistics of the reference (median over references).
    n_references_, n_references_skipped_ : int
    n_passed_through_ : int
        Images of the latest ``transform`` returned unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> ref, src = data.immunohistochemistry()[:64, :64], data.immunohistochemistry()[64:128, 64:128]
    >>> out = ReinhardNormalizer(dtype="float").fit(ref[None]).transform(src[None])[0]
    >>> np.allclose(lab_statistics(out)[0], lab_statistics(ref)[0], atol=0.5)
    True
    """

    def __init__(self, beta=0.15, min_stain_fraction=0.05, dtype="uint8", reference=None):
        self.beta = beta
        self.min_stain_fraction = min_stain_fraction
        self.dtype = dtype
        self.reference = reference

    def _estimate(self, image):
        mean, std = lab_statistics(image)
        return None if np.any(std < 1e-6) else (mean, std)

    def _set_target(self, estimates):
        self.target_mean_ = _median_rows([m for m, _ in estimates])
        self.target_std_ = _median_rows([s for _, s in estimates])

    def _apply(self, image, est):
        from skimage.color import lab2rgb, rgb2lab

        mean, std = est
        lab = rgb2lab(image.astype(np.float64) / 255.0)
        lab = (lab - mean) / std * self.target_std_ + self.target_mean_
        with warnings.catch_warnings():
            # out-of-gamut LAB values are clipped into sRGB (documented); skimage warns per image
            warnings.filterwarnings("ignore", message="Conversion from CIE-LAB", category=UserWarning)
            rgb = lab2rgb(lab)
        return _to_output(rgb, self.dtype)


class _StainMatrixNormalizer(_StainNormalizer):
    """Normalisers that map concentrations onto a target stain matrix (Macenko, Vahadane)."""

    def _estimate(self, image):
        try:
            stains = self._stain_matrix(image)
        except ValueError:  # degenerate colour content: pass through rather than fail the batch
            return None
        conc = _concentrations(image, stains)
        max_c = np.percentile(conc, 99, axis=0)
        if np.any(max_c <= 1e-6) or not np.all(np.isfinite(max_c)):
            return None
        return stains, max_c, conc

    def _set_target(self, estimates):
        self.stain_matrix_ = _orient(_median_rows([s for s, _, _ in estimates]))
        self.max_concentrations_ = _median_rows([m for _, m, _ in estimates])

    def _apply(self, image, est):
        _, max_c, conc = est
        conc = conc * (self.max_concentrations_ / max_c)
        od = conc @ self.stain_matrix_
        rgb = np.exp(-od).reshape(image.shape)  # I / Io, Io = 255
        return _to_output(rgb, self.dtype)


class MacenkoNormalizer(_StainMatrixNormalizer):
    """Macenko stain normalisation: each image's H&E concentrations re-rendered with the reference stains.

    Each image's stain vectors come from :func:`macenko_stain_matrix`; its per-pixel concentrations
    (least squares) are scaled so their 99th percentiles match the reference's and recombined with the
    reference stain vectors.

    Parameters
    ----------
    beta : float, default=0.15
        Optical-density norm below which a pixel counts as background.
    alpha : float, default=1.0
        Angle percentile of :func:`macenko_stain_matrix`.
    min_stain_fraction : float, default=0.05
        Images with a smaller stained fraction are passed through unchanged.
    dtype : {"uint8", "float"}, default="uint8"
    reference : array-like, optional
        Fixed reference image(s); see :class:`ReinhardNormalizer`.

    Attributes
    ----------
    stain_matrix_ : ndarray of shape (2, 3)
        Reference H and E unit OD vectors (median over references, re-normalised).
    max_concentrations_ : ndarray of shape (2,)
        Reference 99th-percentile concentrations (median over references).
    n_references_, n_references_skipped_, n_passed_through_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> he = data.immunohistochemistry()[:64, :64]
    >>> norm = MacenkoNormalizer().fit(he[None])
    >>> norm.stain_matrix_.shape, norm.transform(he[None]).dtype
    ((2, 3), dtype('uint8'))
    """

    def __init__(self, beta=0.15, alpha=1.0, min_stain_fraction=0.05, dtype="uint8", reference=None):
        self.beta = beta
        self.alpha = alpha
        self.min_stain_fraction = min_stain_fraction
        self.dtype = dtype
        self.reference = reference

    def _stain_matrix(self, image):
        return macenko_stain_matrix(image, beta=self._beta, alpha=self.alpha, min_stain_fraction=self._min_fraction)


class VahadaneNormalizer(_StainMatrixNormalizer):
    """Vahadane stain normalisation: stain vectors by sparse non-negative factorisation of OD.

    As :class:`MacenkoNormalizer`, with stain vectors from :func:`vahadane_stain_matrix`.

    Parameters
    ----------
    beta : float, default=0.15
    lam : float, default=0.1
        Sparsity weight of the factorisation.
    n_pixels : int, default=4000
        Stained pixels sampled per image for the factorisation.
    min_stain_fraction : float, default=0.05
    dtype : {"uint8", "float"}, default="uint8"
    random_state : int, default=0
        Seed of the pixel sample (the same for every image, so results do not depend on batch order).
    reference : array-like, optional
        Fixed reference image(s); see :class:`ReinhardNormalizer`.

    Attributes
    ----------
    stain_matrix_, max_concentrations_, n_references_, n_references_skipped_, n_passed_through_
        As in :class:`MacenkoNormalizer`.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> he = data.immunohistochemistry()[:64, :64]
    >>> VahadaneNormalizer().fit(he[None]).transform(he[None]).shape
    (1, 64, 64, 3)
    """

    def __init__(self, beta=0.15, lam=0.1, n_pixels=4000, min_stain_fraction=0.05, dtype="uint8", random_state=0,
                 reference=None):
        self.beta = beta
        self.lam = lam
        self.n_pixels = n_pixels
        self.min_stain_fraction = min_stain_fraction
        self.dtype = dtype
        self.random_state = random_state
        self.reference = reference

    def _stain_matrix(self, image):
        return vahadane_stain_matrix(
            image, beta=self._beta, lam=self.lam, n_pixels=self.n_pixels,
            min_stain_fraction=self._min_fraction, random_state=self.random_state,
        )


def _normalize_one(cls, image, reference, **params):
    norm = cls(**params)
    ref = np.asarray(reference) if not isinstance(reference, (list, tuple)) else reference
    if isinstance(ref, np.ndarray) and ref.ndim == 3:
        ref = ref[None]
    norm.fit(ref)
    return norm.transform(_rgb(image)[None])[0]


def reinhard_normalize(image, reference, **params):
    """Reinhard-normalise one image to a reference image (or a list/batch of references).

    Parameters
    ----------
    image : array-like of shape (H, W, 3)
    reference : array-like of shape (H, W, 3), (N, H, W, 3) or list of images
    **params
        Parameters of :class:`ReinhardNormalizer`.

    Returns
    -------
    ndarray of shape (H, W, 3)

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> ihc = data.immunohistochemistry()
    >>> reinhard_normalize(ihc[:32, :32], ihc[-32:, -32:]).shape
    (32, 32, 3)
    """
    return _normalize_one(ReinhardNormalizer, image, reference, **params)


def macenko_normalize(image, reference, **params):
    """Macenko-normalise one image to a reference image (or references); see :class:`MacenkoNormalizer`.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> ihc = data.immunohistochemistry()
    >>> macenko_normalize(ihc[:32, :32], ihc[-32:, -32:]).dtype
    dtype('uint8')
    """
    return _normalize_one(MacenkoNormalizer, image, reference, **params)


def vahadane_normalize(image, reference, **params):
    """Vahadane-normalise one image to a reference image (or references); see :class:`VahadaneNormalizer`.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> ihc = data.immunohistochemistry()
    >>> vahadane_normalize(ihc[:32, :32], ihc[-32:, -32:]).shape
    (32, 32, 3)
    """
    return _normalize_one(VahadaneNormalizer, image, reference, **params)


# ----------------------------------------------------------------------------------------------
# augmentation
# ----------------------------------------------------------------------------------------------
def _hed_matrices():
    from skimage.color import hed_from_rgb, rgb_from_hed

    return hed_from_rgb, rgb_from_hed


_LOG_ADJUST = np.log(1e-6)  # skimage's scaling of optical density in rgb2hed / hed2rgb


def hed_jitter(image, sigma=0.05, bias=0.02, random_state=None):
    """Random HED stain perturbation (Tellez et al. 2019): ``hed' = hed * (1 + a) + b`` per stain.

    The image is deconvolved into haematoxylin, eosin and DAB with scikit-image's Ruifrok-Johnston
    matrices (``skimage.color.hed_from_rgb``, on skimage's ``rgb2hed`` scale), each stain channel is
    scaled by ``1 + a`` with ``a ~ U(-sigma, sigma)`` and shifted by ``b ~ U(-bias, bias)``, and the
    result is recombined (``rgb_from_hed``). Tellez et al.'s "HED-light" uses 0.05 for both; HED values of
    H&E tiles lie in about [0, 0.3] on this scale, so the default bias is 0.02.

    The deconvolution is done here rather than with ``rgb2hed``/``hed2rgb`` because ``rgb2hed`` clips
    negative stain amounts to 0, so even a zero perturbation changes pixels outside the H-E-DAB cone
    (by up to 122 grey levels on Kather 2016 debris tiles); without the clip, ``sigma = bias = 0``
    returns the image unchanged.

    Parameters
    ----------
    image : array-like of shape (H, W, 3)
        uint8 RGB.
    sigma, bias : float
        Half-widths of the uniform scale and shift.
    random_state : None, int or numpy Generator

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> im = data.immunohistochemistry()[:32, :32]
    >>> a, b = hed_jitter(im, random_state=0), hed_jitter(im, random_state=0)
    >>> a.dtype, bool(np.array_equal(a, b)), bool(np.array_equal(hed_jitter(im, 0, 0), im))
    (dtype('uint8'), True, True)
    """
    sigma = _check_fraction(sigma, "sigma")
    bias = _check_fraction(bias, "bias")
    rng = _rng(random_state)
    im = _rgb(image)
    hed_from_rgb, rgb_from_hed = _hed_matrices()
    a = rng.uniform(-sigma, sigma, 3)
    b = rng.uniform(-bias, bias, 3)
    log_rgb = np.log(np.maximum(im.astype(np.float64) / 255.0, 1e-6)) / _LOG_ADJUST
    hed = log_rgb @ hed_from_rgb
    hed = hed * (1.0 + a) + b
    rgb = np.exp((hed @ rgb_from_hed) * _LOG_ADJUST)
    return _to_output(rgb, "uint8")


def color_jitter(image, brightness=64 / 255, contrast=0.75, saturation=0.25, hue=0.04, random_state=None):
    """Random brightness, contrast, saturation and hue perturbation (Liu et al. 2017).

    Applied in that order: add ``U(-brightness, brightness)`` to RGB in [0, 1]; scale deviations from the
    mean by ``U(1 - contrast, 1 + contrast)``; scale HSV saturation by ``U(1 - saturation, 1 + saturation)``;
    shift hue by ``U(-hue, hue)`` (circular). Defaults are Liu et al.'s maximum deltas (64/255, 0.75,
    0.25, 0.04). A grey image is returned with brightness and contrast changes only.

    Parameters
    ----------
    image : array-like of shape (H, W, C)
    brightness, contrast, saturation, hue : float
    random_state : None, int or numpy Generator

    Returns
    -------
    ndarray of uint8, same shape as the (checked) image

    Examples
    --------
    >>> import numpy as np
    >>> im = np.full((4, 4, 3), 128, np.uint8)
    >>> color_jitter(im, contrast=0, saturation=0, hue=0, random_state=0).shape
    (4, 4, 3)
    """
    from skimage.color import hsv2rgb, rgb2hsv

    brightness = _check_fraction(brightness, "brightness")
    contrast = _check_fraction(contrast, "contrast")
    saturation = _check_fraction(saturation, "saturation")
    hue = _check_fraction(hue, "hue", upper=0.5)
    rng = _rng(random_state)
    im = check_image(image).astype(np.float64) / 255.0
    d_b, f_c, f_s, d_h = (
        rng.uniform(-brightness, brightness),
        rng.uniform(1 - contrast, 1 + contrast),
        rng.uniform(1 - saturation, 1 + saturation),
        rng.uniform(-hue, hue),
    )
    im = np.clip(im + d_b, 0, 1)
    im = np.clip((im - im.mean()) * f_c + im.mean(), 0, 1)
    if im.shape[2] == 3:
        hsv = rgb2hsv(im)
        hsv[..., 1] = np.clip(hsv[..., 1] * f_s, 0, 1)
        hsv[..., 0] = (hsv[..., 0] + d_h) % 1.0
        im = hsv2rgb(hsv)
    return _to_output(im, "uint8")


class _Augmenter(TransformerMixin, BaseEstimator):
    """Image -> image random augmentation; each call draws from a generator seeded by ``random_state``."""

    def fit(self, X=None, y=None):
        """Validate the parameters (nothing is learnt).

        Returns
        -------
        self
        """
        self._one(np.full((2, 2, 3), 128, np.uint8), np.random.default_rng(0))  # validates parameters
        self.fitted_ = True
        return self

    def transform(self, X):
        """One random perturbation per image (seeded: the same call gives the same output).

        Parameters
        ----------
        X : ndarray of shape (N, H, W, 3) or list of images

        Returns
        -------
        ndarray of uint8 (N, H, W, 3), or a list for a list
        """
        check_is_fitted(self, "fitted_")
        X = check_image_batch(X)
        rng = _rng(self.random_state)
        out = [self._one(im, rng) for im in X]
        return np.stack(out) if isinstance(X, np.ndarray) else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.transformer_tags.preserves_dtype = []
        return tags


class HEDJitter(_Augmenter):
    """Transformer form of :func:`hed_jitter` (one random perturbation per image).

    Parameters
    ----------
    sigma, bias : float, defaults 0.05, 0.02
    random_state : None or int, default=None

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data
    >>> X = data.immunohistochemistry()[None, :32, :32]
    >>> HEDJitter(random_state=0).fit_transform(X).shape
    (1, 32, 32, 3)
    """

    def __init__(self, sigma=0.05, bias=0.02, random_state=None):
        self.sigma = sigma
        self.bias = bias
        self.random_state = random_state

    def _one(self, image, rng):
        return hed_jitter(image, self.sigma, self.bias, rng)


class ColorJitter(_Augmenter):
    """Transformer form of :func:`color_jitter` (Liu et al. 2017 colour perturbation).

    Parameters
    ----------
    brightness, contrast, saturation, hue : float
        Defaults 64/255, 0.75, 0.25, 0.04.
    random_state : None or int, default=None

    Examples
    --------
    >>> import numpy as np
    >>> X = np.full((2, 8, 8, 3), 100, np.uint8)
    >>> ColorJitter(random_state=0).fit_transform(X).shape
    (2, 8, 8, 3)
    """

    def __init__(self, brightness=64 / 255, contrast=0.75, saturation=0.25, hue=0.04, random_state=None):
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue
        self.random_state = random_state

    def _one(self, image, rng):
        return color_jitter(image, self.brightness, self.contrast, self.saturation, self.hue, rng)


def _wrapped_has(method):
    """available_if check: the fitted (else the unfitted) wrapped estimator has ``method``."""

    def check(self):
        return hasattr(getattr(self, "estimator_", self.estimator), method)

    return check


_ROUTED_METHODS = ("fit", "predict", "predict_proba", "decision_function")


def _router(meta):
    from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping

    mapping = MethodMapping()
    for m in _ROUTED_METHODS:
        mapping.add(caller=m, callee=m)
    return MetadataRouter(owner=meta).add(estimator=meta.estimator, method_mapping=mapping)


def _routed(meta, method, params):
    """Parameters for ``meta.estimator.<method>``: routed when metadata routing is on, else passed as given."""
    from sklearn.utils.metadata_routing import _routing_enabled, process_routing

    if not _routing_enabled():
        return params
    return dict(process_routing(meta, method, **params).estimator[method])


def _concat(parts):
    if all(isinstance(p, np.ndarray) for p in parts) and len({p.shape[1:] for p in parts}) == 1:
        return np.concatenate(parts)
    return [im for p in parts for im in p]


class AugmentedTraining(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Fit a classifier (an image pipeline) on the images plus K augmented copies; predict on images as given.

    Augmenting changes the number of samples, which a scikit-learn transformer must not do, so the
    expansion lives in this wrapper's ``fit``: copy ``k`` is ``clone(augmenter)`` with
    ``random_state = random_state + k`` applied to the whole training batch, labels (and
    ``sample_weight``) are repeated. ``predict``, ``predict_proba`` and ``decision_function`` pass the
    images through unchanged: augmentation is a training-time regulariser, not a test-time transform
    (see :class:`DihedralTTA` for that). With frozen features the effect is "features of K augmented
    copies per tile" in the training set.

    Parameters
    ----------
    estimator : estimator
        Classifier on images, e.g. :func:`medfeat.pipelines.make_patch_pipeline` (cloned in fit).
    augmenter : transformer, default=None
        Image -> image transformer with a ``random_state`` parameter (:class:`HEDJitter` when None).
    n_copies : int, default=4
        Augmented copies per image.
    include_original : bool, default=True
        Keep the original images in the training set.
    random_state : int, default=0
        Base seed; copy k uses ``random_state + k``.

    Attributes
    ----------
    estimator_ : fitted estimator
    classes_ : ndarray
    n_train_samples_ : int
        Training samples after expansion.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from sklearn.linear_model import LogisticRegression
    >>> mean_rgb = FunctionTransformer(lambda X: np.asarray(X, float).mean(axis=(1, 2)))
    >>> X = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (40, 60, 190, 210)]); y = [0, 0, 1, 1]
    >>> clf = AugmentedTraining(make_pipeline(mean_rgb, LogisticRegression()), ColorJitter(), n_copies=3)
    >>> clf.fit(X, y).n_train_samples_, clf.predict(X).tolist()
    (16, [0, 0, 1, 1])
    """

    def __init__(self, estimator, augmenter=None, n_copies=4, include_original=True, random_state=0):
        self.estimator = estimator
        self.augmenter = augmenter
        self.n_copies = n_copies
        self.include_original = include_original
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None, **fit_params):
        """Fit ``estimator`` on the expanded training set.

        Parameters
        ----------
        X : ndarray of shape (N, H, W, C) or list of images
        y : array-like of shape (N,)
        sample_weight : array-like of shape (N,), optional
            Repeated with the copies and passed to the estimator's ``fit``.
        **fit_params
            Other fit parameters of length N are repeated too (e.g. routed ``groups``).

        Returns
        -------
        self
        """
        if isinstance(self.n_copies, bool) or not isinstance(self.n_copies, numbers.Integral) or self.n_copies < 0:
            raise ValueError(f"n_copies must be an integer >= 0, got {self.n_copies!r}.")
        if not self.include_original and self.n_copies == 0:
            raise ValueError("n_copies=0 with include_original=False leaves no training images.")
        if not isinstance(self.random_state, numbers.Integral):
            raise ValueError(f"random_state must be an int (copy k uses random_state + k), got {self.random_state!r}.")
        X = check_image_batch(X)
        y = np.asarray(y)
        if len(y) != len(X):
            raise ValueError(f"y has {len(y)} labels for {len(X)} images.")
        if sample_weight is not None:
            fit_params = dict(fit_params, sample_weight=sample_weight)
        fit_params = _routed(self, "fit", fit_params)
        aug = HEDJitter() if self.augmenter is None else self.augmenter
        if "random_state" not in aug.get_params(deep=False):
            raise ValueError(f"augmenter must have a random_state parameter, got {type(aug).__name__}.")
        parts = [X] if self.include_original else []
        for k in range(int(self.n_copies)):
            parts.append(clone(aug).set_params(random_state=int(self.random_state) + k).fit(X).transform(X))
        reps = len(parts)
        Xa = _concat(parts)
        # per-image metadata (sample_weight, groups, ...) follows its image into every copy
        params = {
            key: np.tile(np.asarray(val), reps) if np.ndim(val) >= 1 and len(val) == len(X) else val
            for key, val in fit_params.items()
        }
        self.estimator_ = clone(self.estimator).fit(Xa, np.tile(y, reps), **params)
        self.classes_ = getattr(self.estimator_, "classes_", np.unique(y))
        self.n_train_samples_ = len(Xa)
        return self

    def predict(self, X, **params):
        """Predictions of the fitted estimator on the images as given."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X, **_routed(self, "predict", params))

    @available_if(_wrapped_has("predict_proba"))
    def predict_proba(self, X, **params):
        """Class probabilities of the fitted estimator on the images as given."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict_proba(X, **_routed(self, "predict_proba", params))

    @available_if(_wrapped_has("decision_function"))
    def decision_function(self, X, **params):
        """Decision values of the fitted estimator on the images as given."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.decision_function(X, **_routed(self, "decision_function", params))

    def get_metadata_routing(self):
        """Metadata (e.g. ``groups`` for a :class:`~medfeat.features.SlideStandardizer` inside) goes to ``estimator``."""
        return _router(self)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags


# ----------------------------------------------------------------------------------------------
# test-time augmentation
# ----------------------------------------------------------------------------------------------
def dihedral(images, k, flip):
    """One of the 8 dihedral transforms: rotate by ``k`` quarter turns, then mirror left-right if ``flip``.

    The spatial axes are the two before the channel axis, so (H, W, C), (N, H, W, C) and multiscale
    (N, S, H, W, C) arrays are all transformed image by image.

    Parameters
    ----------
    images : ndarray
    k : int in {0, 1, 2, 3}
    flip : bool

    Returns
    -------
    ndarray (contiguous)

    Examples
    --------
    >>> import numpy as np
    >>> im = np.arange(4).reshape(1, 2, 2, 1)
    >>> dihedral(im, 1, False)[0, ..., 0].tolist(), dihedral(im, 0, True)[0, ..., 0].tolist()
    ([[1, 3], [0, 2]], [[1, 0], [3, 2]])
    """
    if k not in (0, 1, 2, 3):
        raise ValueError(f"k must be 0, 1, 2 or 3 quarter turns, got {k!r}.")
    out = np.rot90(images, k, axes=(-3, -2))
    if flip:
        out = out[..., ::-1, :]
    return np.ascontiguousarray(out)


_DIHEDRAL = [(k, f) for k in range(4) for f in (False, True)]


def _dihedral_batch(X, k, flip):
    if isinstance(X, (list, tuple)):
        return [dihedral(np.asarray(im), k, flip) for im in X]
    return dihedral(X, k, flip)


def _image_batch(X):
    """Images for the dihedral wrappers: a list, or an array of (N, H, W, C) / multiscale (N, S, H, W, C).

    Not converted to uint8: the wrapped estimator validates its own input (and may keep float/16-bit).
    """
    if isinstance(X, (list, tuple)):
        return list(X)
    arr = np.asarray(X)
    if arr.ndim not in (4, 5):
        raise ValueError(
            f"X must be an image batch (N, H, W, C), a multiscale batch (N, S, H, W, C) or a list of images, got shape "
            f"{arr.shape}."
        )
    return arr


class DihedralMean(MetaEstimatorMixin, TransformerMixin, BaseEstimator):
    """Feature-level test-time augmentation: a feature transformer's output averaged over the 8 dihedral transforms.

    ``fit`` fits ``transformer`` on the images as given; ``transform`` returns the mean of its features
    over the 8 rotations/flips of every image (Liu et al. 2017 averaged scores; averaging frozen
    features makes them rotation invariant before the classifier sees them). Costs 8 passes.

    Parameters
    ----------
    transformer : transformer
        Image batch -> 2-D features (e.g. :class:`medfeat.features.DeepFeatures`).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> corner = FunctionTransformer(lambda X: np.asarray(X, float)[:, 0, 0, :])   # not rotation invariant
    >>> X = np.zeros((1, 4, 4, 1), np.uint8); X[0, 0, 0] = 80
    >>> DihedralMean(corner).fit(X).transform(X).tolist()   # top-left in 2 of the 8 views (identity, transpose)
    [[20.0]]
    """

    def __init__(self, transformer):
        self.transformer = transformer

    def fit(self, X, y=None, **fit_params):
        """Fit a clone of ``transformer`` on the images as given.

        Returns
        -------
        self
        """
        self.transformer_ = clone(self.transformer).fit(X, y, **fit_params)
        return self

    def transform(self, X):
        """Features averaged over the 8 dihedral views of each image.

        Returns
        -------
        ndarray of float32, shape (N, n_features)
        """
        check_is_fitted(self, "transformer_")
        X = _image_batch(X)
        total = None
        for k, f in _DIHEDRAL:
            F = np.asarray(self.transformer_.transform(_dihedral_batch(X, k, f)), dtype=np.float64)
            total = F if total is None else total + F
        return (total / len(_DIHEDRAL)).astype(np.float32)

    def get_feature_names_out(self, input_features=None):
        """Names of the wrapped transformer's features."""
        check_is_fitted(self, "transformer_")
        return self.transformer_.get_feature_names_out()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags


class DihedralTTA(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Score-level test-time augmentation: a classifier's scores averaged over the 8 dihedral transforms.

    ``fit`` fits a clone of ``estimator`` on the images as given. ``predict_proba`` and
    ``decision_function`` average the wrapped estimator's output over the 8 rotations/flips of each
    image (Liu et al. 2017); ``predict`` takes the class of the averaged scores.

    Parameters
    ----------
    estimator : classifier on images

    Attributes
    ----------
    estimator_ : fitted estimator
    classes_ : ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from sklearn.linear_model import LogisticRegression
    >>> mean_rgb = FunctionTransformer(lambda X: np.asarray(X, float).mean(axis=(1, 2)))
    >>> X = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (40, 60, 190, 210)]); y = [0, 0, 1, 1]
    >>> tta = DihedralTTA(make_pipeline(mean_rgb, LogisticRegression())).fit(X, y)
    >>> bool(np.allclose(tta.predict_proba(X), tta.estimator_.predict_proba(X)))   # rotation-invariant features
    True
    """

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, X, y, **fit_params):
        """Fit a clone of ``estimator`` on the images as given.

        Returns
        -------
        self
        """
        self.estimator_ = clone(self.estimator).fit(X, y, **_routed(self, "fit", fit_params))
        self.classes_ = getattr(self.estimator_, "classes_", np.unique(y))
        return self

    def get_metadata_routing(self):
        """Metadata (e.g. ``groups``) goes to ``estimator``; the 8 views keep each image's row, so it applies to each."""
        return _router(self)

    def _average(self, method, X, params):
        check_is_fitted(self, "estimator_")
        X = _image_batch(X)
        params = _routed(self, method, params)
        fn = getattr(self.estimator_, method)
        total = None
        for k, f in _DIHEDRAL:
            s = np.asarray(fn(_dihedral_batch(X, k, f), **params), dtype=np.float64)
            total = s if total is None else total + s
        return total / len(_DIHEDRAL)

    @available_if(_wrapped_has("predict_proba"))
    def predict_proba(self, X, **params):
        """Class probabilities averaged over the 8 views, shape (N, n_classes)."""
        return self._average("predict_proba", X, params)

    @available_if(_wrapped_has("decision_function"))
    def decision_function(self, X, **params):
        """Decision values averaged over the 8 views."""
        return self._average("decision_function", X, params)

    def predict(self, X, **params):
        """Class with the highest averaged probability (or decision value)."""
        if hasattr(self.estimator_, "predict_proba"):
            s = self.predict_proba(X, **params)
        else:
            s = self.decision_function(X, **params)
            if s.ndim == 1:
                return np.asarray(self.classes_)[(s > 0).astype(int)]
        return np.asarray(self.classes_)[np.argmax(s, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags
