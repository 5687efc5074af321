"""Image preprocessing before feature extraction: intensity windowing of radiology images, and CLAHE.

CLAHE (:func:`clahe` / :class:`CLAHE`): contrast-limited adaptive histogram equalisation (scikit-image
``equalize_adapthist``) of uint8 images, used on chest radiographs by Lakhani & Sundaram (2017).

Radiology pixels (CT Hounsfield units, 12-16 bit radiographs) have no fixed display scale. A
*window* says which interval of values matters and maps it linearly onto [0, 1]; values below go to
0 and above to 1. The result is a float image in [0, 1] that every feature family accepts without a
further guess: GIST, colour and GLCM work on it in float, and the CNN path scales it for its ImageNet
normalisation (see :class:`~medfeat.features.DeepFeatures`).

Windows are given as

- ``(center, width)``: the interval ``[center - width / 2, center + width / 2]`` (DICOM's
  ``LINEAR_EXACT`` function), e.g. ``(40, 400)`` for CT soft tissue;
- a preset name of :data:`WINDOW_PRESETS` (CT windows in Hounsfield units: ``"lung"``,
  ``"mediastinum"``, ``"soft_tissue"``, ``"bone"``, ``"brain"``, ``"liver"``);
- ``"percentile"`` (the 0.5-99.5 percentiles of each image), ``"percentile:LO:HI"`` or
  ``("percentile", LO, HI)``: a per-image contrast stretch;
- ``"CENTER,WIDTH"`` as a string (what the command line passes).

A DICOM file's own window (its VOI LUT or window centre/width, honouring MONOCHROME1) is applied by
the reader, :func:`medfeat.datasets.read_dicom` (``window="auto"``).

Examples
--------
>>> import numpy as np
>>> from medfeat.features import window_image
>>> window_image(np.array([[-1000, -600, 150]]), "lung")
array([[0.23333333, 0.5       , 1.        ]], dtype=float32)
"""

import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._checks import WINDOW_PRESETS, check_image, check_image_batch, parse_window, percentile_window, window_to_unit

__all__ = ["CLAHE", "WINDOW_PRESETS", "Window", "clahe", "window_image"]


def _check_raw(image, name):
    arr = np.asarray(image)
    if arr.dtype == object or arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be a numeric image array, got dtype {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real-valued, got dtype {arr.dtype}.")
    if arr.ndim not in (2, 3) or 0 in arr.shape:
        raise ValueError(f"{name} must be a non-empty H x W or H x W x C image, got shape {arr.shape}.")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values.")
    return arr


def _apply(arr, spec, invert):
    kind, a, b, _ = spec
    if kind == "percentile":
        center, width = percentile_window(arr, a, b)
    else:
        center, width = a, b
    out = window_to_unit(arr, center, width)
    if invert:
        out = np.float32(1) - out
    return out


def window_image(image, window, *, invert=False):
    """Window one image to float32 in [0, 1].

    Parameters
    ----------
    image : array-like
        ``H x W`` or ``H x W x C`` numeric image of any dtype and range (signed integers and floats
        included), e.g. CT values in Hounsfield units.
    window : str or tuple
        ``(center, width)``, a preset name of :data:`WINDOW_PRESETS`, ``"percentile"``,
        ``"percentile:LO:HI"``, ``("percentile", LO, HI)`` or ``"CENTER,WIDTH"`` (see the module notes).
    invert : bool, default=False
        Return ``1 - windowed``, e.g. for a MONOCHROME1 image (high values displayed dark).

    Returns
    -------
    ndarray of float32, same shape as ``image``, values in [0, 1]

    Examples
    --------
    >>> import numpy as np
    >>> window_image(np.array([[-160, 40, 240, 1000]]), (40, 400))
    array([[0. , 0.5, 1. , 1. ]], dtype=float32)
    >>> window_image(np.arange(5.0)[None], "percentile:0:100", invert=True)
    array([[1.  , 0.75, 0.5 , 0.25, 0.  ]], dtype=float32)
    """
    arr = _check_raw(image, "image")
    spec = parse_window(window, allow_auto=False)
    return _apply(arr, spec, bool(invert))


class Window(TransformerMixin, BaseEstimator):
    """Intensity window as a scikit-learn transformer on image batches (the head of a Pipeline).

    Stateless: ``fit`` only validates the parameters. A percentile window is computed per image.

    Parameters
    ----------
    window : str or tuple, default="percentile"
        See :func:`window_image`.
    invert : bool, default=False
        Return ``1 - windowed``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from medfeat.features import LBPHistogram
    >>> ct = np.random.default_rng(0).integers(-1000, 1000, (2, 16, 16, 1)).astype(np.int16)
    >>> Window("lung").fit_transform(ct).dtype
    dtype('float32')
    >>> make_pipeline(Window("lung"), LBPHistogram(radii_points=[(8, 1)])).fit_transform(ct).shape
    (2, 10)
    """

    def __init__(self, window="percentile", invert=False):
        self.window = window
        self.invert = invert

    def _spec(self):
        if not isinstance(self.invert, (bool, np.bool_)):
            raise ValueError(f"invert must be True or False, got {self.invert!r}.")
        return parse_window(self.window, allow_auto=False)

    def fit(self, X, y=None):
        """Validate the parameters (nothing is learnt).

        Parameters
        ----------
        X : ndarray of shape (N, H, W, C) or list of images, or None
        y : ignored

        Returns
        -------
        self
        """
        self._spec()
        return self

    def transform(self, X):
        """Window every image.

        Parameters
        ----------
        X : ndarray of shape (N, H, W, C) or list of images
            Numeric images of any dtype and range.

        Returns
        -------
        ndarray of float32 with the shape of ``X``, or a list of such arrays when ``X`` is a list
        """
        spec = self._spec()
        invert = bool(self.invert)
        if isinstance(X, (list, tuple)):
            if not X:
                raise ValueError("X is an empty batch; expected at least one image.")
            return [_apply(_check_raw(im, f"X[{i}]"), spec, invert) for i, im in enumerate(X)]
        arr = np.asarray(X)
        if arr.ndim != 4 or arr.shape[0] == 0:
            raise ValueError(f"X must be a non-empty N x H x W x C batch or a list of images, got shape {arr.shape}.")
        return np.stack([_apply(_check_raw(im, f"X[{i}]"), spec, invert) for i, im in enumerate(arr)])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = []
        return tags


# -- CLAHE ---------------------------------------------------------------------------------------
def _check_clahe(kernel_size, clip_limit, nbins):
    if kernel_size is not None and (
        isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral) or kernel_size < 2
    ):
        raise ValueError(f"kernel_size must be None or an integer >= 2 (pixels), got {kernel_size!r}.")
    if isinstance(clip_limit, bool) or not isinstance(clip_limit, numbers.Real) or not 0 < clip_limit <= 1:
        raise ValueError(f"clip_limit must be a number in (0, 1], got {clip_limit!r}.")
    if isinstance(nbins, bool) or not isinstance(nbins, numbers.Integral) or not 2 <= nbins <= 65536:
        raise ValueError(f"nbins must be an integer in [2, 65536], got {nbins!r}.")


def clahe(image, kernel_size=None, clip_limit=0.01, nbins=256):
    """Contrast-limited adaptive histogram equalisation of one image.

    uint8 in, uint8 out; uint16 or float (in [0, 1], e.g. after :func:`window_image`) in, float32 in
    [0, 1] out, so a 12-16 bit radiograph is not rounded to 8 bits. Grey images are equalised directly; RGB images are equalised on the V channel of HSV (what
    ``skimage.exposure.equalize_adapthist`` does for colour input), so hue is kept.

    Parameters
    ----------
    image : array-like of shape (H, W) or (H, W, C)
        uint8, uint16, or float in [0, 1]; C is 1 or 3.
    kernel_size : int, optional
        Size of the contextual regions in pixels (skimage default: 1/8 of the image size).
    clip_limit : float, default=0.01
        Normalised clip limit in (0, 1]: higher gives more contrast.
    nbins : int, default=256
        Histogram bins.

    Returns
    -------
    ndarray of shape (H, W, C)
        uint8 for uint8 input, else float32 in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> im = np.tile(np.linspace(100, 140, 64).astype(np.uint8), (64, 1))   # low contrast
    >>> out = clahe(im)
    >>> out.shape, int(np.ptp(out)) > int(np.ptp(im))
    ((64, 64, 1), True)
    """
    from skimage.exposure import equalize_adapthist

    _check_clahe(kernel_size, clip_limit, nbins)
    im = check_image(image, keep_precision=True)
    src = im[..., 0] if im.shape[2] == 1 else im
    if np.ptp(src) == 0:  # a constant image has nothing to equalise (skimage would return zeros)
        return im.copy() if im.dtype == np.uint8 else _unit_float(im)
    out = np.clip(equalize_adapthist(src, kernel_size=kernel_size, clip_limit=clip_limit, nbins=nbins), 0, 1)
    out = np.round(out * 255.0).astype(np.uint8) if im.dtype == np.uint8 else out.astype(np.float32)
    return out[..., None] if im.shape[2] == 1 else out


def _unit_float(im):
    if im.dtype == np.uint16:
        return (im / 65535.0).astype(np.float32)
    return im.astype(np.float32)


class CLAHE(TransformerMixin, BaseEstimator):
    """Transformer form of :func:`clahe`: every image of an NHWC batch (or list) equalised.

    uint8 batches give uint8; uint16 or float batches give float32 in [0, 1].

    Parameters
    ----------
    kernel_size : int, optional
    clip_limit : float, default=0.01
    nbins : int, default=256

    Examples
    --------
    >>> import numpy as np
    >>> X = np.tile(np.linspace(100, 140, 64).astype(np.uint8), (2, 64, 1))[..., None]
    >>> CLAHE(clip_limit=0.02).fit_transform(X).dtype
    dtype('uint8')
    """

    def __init__(self, kernel_size=None, clip_limit=0.01, nbins=256):
        self.kernel_size = kernel_size
        self.clip_limit = clip_limit
        self.nbins = nbins

    def fit(self, X=None, y=None):
        """Validate the parameters (nothing is learnt).

        Returns
        -------
        self
        """
        _check_clahe(self.kernel_size, self.clip_limit, self.nbins)
        self.fitted_ = True
        return self

    def transform(self, X):
        """Equalise every image.

        Parameters
        ----------
        X : ndarray of shape (N, H, W, C) or list of images

        Returns
        -------
        ndarray (N, H, W, C), or a list for a list
        """
        check_is_fitted(self, "fitted_")
        X = check_image_batch(X, keep_precision=True)
        out = [clahe(im, self.kernel_size, self.clip_limit, self.nbins) for im in X]
        return np.stack(out) if isinstance(X, np.ndarray) else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = []
        return tags
