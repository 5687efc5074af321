"""Colour statistics and histograms in RGB, HSV and haematoxylin-eosin-DAB (HED) space.

For each of the three colour spaces and each of its three channels: mean, standard deviation,
skewness and a normalised histogram (``bins`` bins summing to 1) over a fixed range, so that
features are comparable between images:

- RGB: channels scaled to [0, 1], histogram range [0, 1]. A uint8 image is divided by 255, an
  integer image of ``bit_depth`` bits by ``2**bit_depth - 1`` (uint16 images need ``bit_depth``: their
  scale cannot be guessed), and a float image in [0, 1] is used as it is, in float64, not rounded
  to 8 bits;
- HSV: :func:`skimage.color.rgb2hsv`, all channels in [0, 1]. Hue is circular; its moments are
  taken on the [0, 1] value as is (the histogram is the informative part);
- HED: :func:`skimage.color.rgb2hed` (Ruifrok & Johnston colour deconvolution). The range of
  stain ``j`` is [0, od_max * sum_i max(M_ij, 0)], where ``od_max = log(1/255) / log(1e-6)``
  is the largest optical density skimage assigns to a non-zero uint8 value and ``M`` is
  ``skimage.color.hed_from_rgb``: this covers every image without a zero channel value; larger
  values (pixels with a channel exactly 0) are counted in the last bin.

Grey images (one channel) are handled explicitly as R = G = B = grey: their hue and saturation
are 0 and their HED values those of a neutral grey, so grey and RGB images give the same number
of features. Skewness is the biased (population) estimate and is 0 for a constant channel.
"""

import numpy as np

from ._base import ImageTransformer, check_bit_depth, integer_bits

__all__ = ["ColorFeatures", "color_features"]

_SPACES = (("rgb", "RGB"), ("hsv", "HSV"), ("hed", "HED"))
_STATS = ("mean", "std", "skew")


def _hed_upper():
    from skimage.color import hed_from_rgb

    od_max = np.log(1 / 255) / np.log(1e-6)
    return od_max * np.clip(hed_from_rgb, 0, None).sum(axis=0)


def _check_bins(bins):
    if not isinstance(bins, (int, np.integer)) or isinstance(bins, bool) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}.")
    return int(bins)


def _moments(v):
    """mean, std, skew over axis 1 of (N, P) float64 values."""
    mean = v.mean(axis=1)
    d = v - mean[:, None]
    m2 = (d * d).mean(axis=1)
    m3 = (d * d * d).mean(axis=1)
    std = np.sqrt(m2)
    # a constant channel has no skew; guard against 0/0 and against rounding noise in m2
    ok = m2 > 1e-12 * np.maximum(mean * mean, 1e-12)
    skew = np.divide(m3, m2**1.5, out=np.zeros_like(m3), where=ok)
    return mean, std, skew


def _histograms(v, lo, hi, bins):
    """Normalised histograms of each row of (N, P) values over [lo, hi], like np.histogram."""
    n, p = v.shape
    idx = np.floor((v - lo) * (bins / (hi - lo))).astype(np.int64)
    np.clip(idx, 0, bins - 1, out=idx)
    idx += (np.arange(n) * bins)[:, None]
    return np.bincount(idx.ravel(), minlength=n * bins).reshape(n, bins) / p


def _color_stack(images, bins, bits):
    """images: (N, H, W, C) uint8/uint16 of ``bits`` bits, or float in [0, 1]
    -> (N, 3 spaces * 3 channels * (3 + bins))."""
    from skimage.color import rgb2hed, rgb2hsv

    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    n = images.shape[0]
    if np.issubdtype(images.dtype, np.integer):
        rgb = images.astype(np.float64) / float(2**bits - 1)
    else:
        rgb = images.astype(np.float64)
    spaces = {
        "rgb": (rgb, np.zeros(3), np.ones(3)),
        "hsv": (rgb2hsv(rgb), np.zeros(3), np.ones(3)),
        "hed": (rgb2hed(rgb), np.zeros(3), _hed_upper()),
    }
    out = []
    for key, _ in _SPACES:
        values, lo, hi = spaces[key]
        flat = values.reshape(n, -1, 3)
        for ch in range(3):
            v = flat[:, :, ch]
            out.extend(x[:, None] for x in _moments(v))
            out.append(_histograms(v, lo[ch], hi[ch], bins))
    return np.concatenate(out, axis=1)


class ColorFeatures(ImageTransformer):
    """Per-channel mean, std, skewness and histograms in RGB, HSV and HED space.

    Parameters
    ----------
    bins : int
        Histogram bins per channel.
    bit_depth : int or None
        Bits of integer images: their values are divided by ``2**bit_depth - 1``. None: 8 for uint8
        images; uint16 images then raise (say e.g. 12 for 0-4095 data). Float images (in [0, 1]) are
        used as they are.
    n_jobs : int or None
        Number of joblib threads over chunks of images (None = 1).

    Attributes
    ----------
    feature_names_ : ndarray of str
        ``"rgb_R_mean"``, ``"rgb_R_std"``, ``"rgb_R_skew"``, ``"rgb_R_hist00"`` ... for the
        channels R, G, B, then H, S, V (``hsv_``), then H, E, D (``hed_``).
    n_features_out_ : int
        ``9 * (3 + bins)``.

    Notes
    -----
    See the module docstring for the histogram ranges and how grey images are treated.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    >>> ColorFeatures(bins=4).fit_transform(X).shape
    (2, 63)
    """

    # the colour conversions make several float64 copies of the chunk: keep it small (measured)
    _chunk_size = 4

    def __init__(self, bins=16, bit_depth=None, n_jobs=None):
        self.bins = bins
        self.bit_depth = bit_depth
        self.n_jobs = n_jobs

    def _check_params(self):
        _check_bins(self.bins)
        check_bit_depth(self.bit_depth)

    def _check_input(self, X):
        integer_bits(X, self.bit_depth, type(self).__name__)

    def _make_feature_names(self):
        bins = _check_bins(self.bins)
        width = len(str(bins - 1))
        names = []
        for key, chans in _SPACES:
            for ch in chans:
                names += [f"{key}_{ch}_{s}" for s in _STATS]
                names += [f"{key}_{ch}_hist{k:0{width}d}" for k in range(bins)]
        return names

    def _transform_stack(self, images):
        bits = integer_bits(images, self.bit_depth, type(self).__name__)
        return _color_stack(images, _check_bins(self.bins), bits)


def color_features(image, bins=16, bit_depth=None):
    """Colour features of one image (see :class:`ColorFeatures`).

    Parameters
    ----------
    image : array-like
        ``H x W`` grey or ``H x W x 3`` RGB: uint8, float in [0, 1], or uint16 with ``bit_depth``.
    bins : int
        Histogram bins per channel.
    bit_depth : int or None
        See :class:`ColorFeatures`.

    Returns
    -------
    ndarray of float32, shape (9 * (3 + bins),)

    See Also
    --------
    ColorFeatures : the same on a batch, as a scikit-learn transformer.

    References
    ----------
    .. [1] Ruifrok AC, Johnston DA. Quantification of histochemical staining by color deconvolution.
       Analytical and Quantitative Cytology and Histology 23(4):291-299 (2001).

    Examples
    --------
    >>> import numpy as np
    >>> f = color_features(np.full((4, 4, 3), 255, np.uint8), bins=4)
    >>> f.shape, float(f[0])  # mean of R for a white image
    ((63,), 1.0)
    """
    return ColorFeatures(bins=bins, bit_depth=bit_depth)._transform_one(image)
