"""Local binary pattern (LBP) histograms.

The codes are exactly those of :func:`skimage.feature.local_binary_pattern` (``method="uniform"``,
i.e. rotation-invariant uniform "riu2" codes with P + 2 values, or ``"nri_uniform"`` with
P (P - 1) + 3 values) on the grey image in its own precision: the uint8 grey image of an 8-bit
image, the original integers of a 16-bit one (LBP only compares values, so it needs no bit depth or
window), the unrounded channel mean of a float image. skimage loops over pixels in Cython, computing the
bilinear interpolation weights of every sample point again at every pixel; here the same
arithmetic is done on whole image stacks with NumPy: the sample offsets are fixed per (P, R), the
interpolation weights depend only on the row (resp. column) index and are precomputed as vectors
with the very same floating-point expressions skimage evaluates (``pos = r + rp``,
``dr = pos - floor(pos)``, ``(1 - dc) * a + dc * b`` ...), so every thresholded bit, hence every code,
is identical. Sample points that fall on integer offsets skip the interpolation (exact: the
weights are 1 and 0). The test suite checks equality with skimage on random and real images.
"""

import numpy as np

from .._checks import check_image
from ._base import ImageTransformer, grey_levels

__all__ = ["LBPHistogram", "lbp_codes", "lbp_histogram"]

_METHODS = ("uniform", "nri_uniform")
# pixels per strip in the LBP kernel: a few float64 buffers of this size fit in L2 cache
_STRIP_ELEMENTS = 16384


def _n_bins(P, method):
    return P + 2 if method == "uniform" else P * (P - 1) + 3


def _check_lbp_params(radii_points, method):
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
    try:
        pairs = [(int(P), float(R)) for P, R in radii_points]
    except (TypeError, ValueError):
        raise ValueError(f"radii_points must be a sequence of (P, R) pairs, got {radii_points!r}.") from None
    if not pairs:
        raise ValueError("radii_points must hold at least one (P, R) pair.")
    for (P, R), orig in zip(pairs, radii_points):
        if P < 1 or P != orig[0] or R <= 0:
            raise ValueError(f"radii_points: each (P, R) needs an integer P >= 1 and R > 0, got {tuple(orig)!r}.")
        if P > 64:
            raise ValueError(f"radii_points: P = {P} is too large (at most 64 sample points).")
    return pairs


def _sample_offsets(P, R, H, W):
    """Per sample point: integer offsets and the per-row/per-column interpolation weights.

    Mirrors skimage's ``_local_binary_pattern``: ``rp = round(-R sin(2 pi i / P), 5)``,
    ``cp = round(R cos(2 pi i / P), 5)``; the point of pixel (r, c) is (r + rp, c + cp),
    ``minr = floor(r + rp)``, ``maxr = ceil(r + rp)``, ``dr = (r + rp) - minr`` (same for c).
    """
    angles = 2 * np.pi * np.arange(P, dtype=np.double) / P
    rp = np.round(-R * np.sin(angles), 5)
    cp = np.round(R * np.cos(angles), 5)
    rows = np.arange(H, dtype=np.double)
    cols = np.arange(W, dtype=np.double)
    points = []
    for i in range(P):
        pr = rows + rp[i]
        pc = cols + cp[i]
        minr, maxr = np.floor(pr), np.ceil(pr)
        minc, maxc = np.floor(pc), np.ceil(pc)
        offs = []
        for lo_hi, idx in (((minr, maxr), rows), ((minc, maxc), cols)):
            d_lo, d_hi = lo_hi[0] - idx, lo_hi[1] - idx
            # In double precision r + rp never rounds across an integer for the small radii and
            # image sizes used here, so the integer offsets are the same for every row/column;
            # checked rather than assumed.
            if np.ptp(d_lo) != 0 or np.ptp(d_hi) != 0:  # pragma: no cover - defensive
                raise ValueError(f"LBP with R={R} on images of size {H}x{W} is not supported.")
            offs.append((int(d_lo[0]), int(d_hi[0])))
        dr = (pr - minr)[:, None]  # (H, 1)
        dc = pc - minc  # (W,)
        points.append((offs[0], offs[1], dr, 1 - dr, dc, 1 - dc, not np.any(dr), not np.any(dc)))
    return points


def _bits(grey, P, R):
    """Thresholded sample bits, shape (P, N, H, W) bool, for a float64 grey stack (N, H, W)."""
    N, H, W = grey.shape
    m = int(np.ceil(R)) + 1
    points = _sample_offsets(P, R, H, W)
    bits = np.empty((P, N, H, W), dtype=bool)
    # Points outside the image read the constant 0 (skimage's mode 'C', cval 0).
    padded = np.zeros((H + 2 * m, W + 2 * m), dtype=np.double)
    # One image, and within it one strip of rows, at a time with preallocated buffers: the
    # arrays stay in cache and no temporary is allocated per operation (both dominated the run
    # time when working on whole stacks).
    strip = max(1, min(H, _STRIP_ELEMENTS // W))
    top = np.empty((strip, W))
    bottom = np.empty((strip, W))
    tmp = np.empty((strip, W))
    for n in range(N):
        padded[m : m + H, m : m + W] = grey[n]
        for y0 in range(0, H, strip):
            y1 = min(H, y0 + strip)
            h = y1 - y0
            centre = grey[n, y0:y1]
            t_buf, b_buf, x_buf = top[:h], bottom[:h], tmp[:h]

            def shifted(dy, dx):
                return padded[m + dy + y0 : m + dy + y1, m + dx : m + dx + W]

            for i, ((r0, r1), (c0, c1), dr, one_dr, dc, one_dc, row_exact, col_exact) in enumerate(points):
                if col_exact:
                    t, b = shifted(r0, c0), shifted(r1, c0)
                else:
                    # the same expressions, in the same order, as skimage's bilinear_interpolation
                    np.multiply(one_dc, shifted(r0, c0), out=t_buf)
                    np.multiply(dc, shifted(r0, c1), out=x_buf)
                    t = np.add(t_buf, x_buf, out=t_buf)
                    if not row_exact:
                        np.multiply(one_dc, shifted(r1, c0), out=b_buf)
                        np.multiply(dc, shifted(r1, c1), out=x_buf)
                        b = np.add(b_buf, x_buf, out=b_buf)
                if row_exact:
                    value = t
                else:
                    np.multiply(one_dr[y0:y1], t, out=x_buf)
                    np.multiply(dr[y0:y1], b, out=t_buf)
                    value = np.add(x_buf, t_buf, out=x_buf)
                # skimage tests ``texture - center >= 0``; for finite IEEE doubles that is
                # ``texture >= center``.
                np.greater_equal(value, centre, out=bits[i, n, y0:y1])
    return bits


def _codes_from_bits(bits, method):
    P = bits.shape[0]
    u8 = bits.view(np.uint8)
    n_ones = u8.sum(axis=0, dtype=np.uint8).astype(np.int64) if P < 256 else u8.sum(axis=0)
    # skimage counts changes along the chain without wrap-around; for binary chains "at most 2
    # changes" is the same with or without the wrap-around pair.
    changes = np.zeros(bits.shape[1:], dtype=np.uint8)
    for i in range(P - 1):
        changes += u8[i] ^ u8[i + 1]
    uniform = changes <= 2
    if method == "uniform":
        return np.where(uniform, n_ones, P + 1)
    first_one = np.argmax(bits, axis=0)
    first_zero = np.argmax(~bits, axis=0)
    rot_index = np.where(first_one == 0, n_ones - first_zero, P - first_one)
    codes = 1 + (n_ones - 1) * P + rot_index
    codes = np.where(n_ones == 0, 0, codes)
    codes = np.where(n_ones == P, P * (P - 1) + 1, codes)
    return np.where(uniform, codes, P * (P - 1) + 2)


def _grey(images):
    """Grey level of checked N x H x W x C images as float64 (N, H, W).

    For integer images the mean of the channels is rounded to the image's integers (uint8 as
    before, uint16 kept at 16 bits), because skimage's LBP is meant for integer images and the
    rounded grey is what an integer grey image would be; float images keep their unrounded mean.
    """
    return grey_levels(images).astype(np.double)


def _lbp_codes_stack(grey, P, R, method):
    return _codes_from_bits(_bits(grey, P, R), method)


def lbp_codes(image, P=8, R=1.0, method="uniform"):
    """LBP code image of one image, equal to skimage's ``local_binary_pattern`` on its grey image.

    Parameters
    ----------
    image : array-like
        ``H x W`` grey or ``H x W x 3`` RGB: uint8, uint16 (coded on its own integers) or float in
        [0, 1] (coded on its float grey level, not rounded to 8 bits).
    P : int
        Number of circularly symmetric neighbour points.
    R : float
        Radius of the circle.
    method : {"uniform", "nri_uniform"}
        ``"uniform"``: rotation-invariant uniform codes 0..P+1 (riu2); ``"nri_uniform"``:
        non-rotation-invariant uniform codes 0..P(P-1)+2.

    Returns
    -------
    ndarray of int64, shape (H, W)

    See Also
    --------
    lbp_histogram : histograms of these codes.
    skimage.feature.local_binary_pattern : the reference the codes equal.

    References
    ----------
    .. [1] Ojala T, Pietikäinen M, Mäenpää T. Multiresolution gray-scale and rotation invariant texture
       classification with local binary patterns. IEEE TPAMI 24(7):971-987 (2002).
       doi:10.1109/TPAMI.2002.1017623

    Examples
    --------
    >>> import numpy as np
    >>> int(lbp_codes(np.full((3, 3), 7, np.uint8))[1, 1])  # all neighbours >= centre
    8
    """
    (P, R), = _check_lbp_params([(P, R)], method)
    grey = _grey(check_image(image, keep_precision=True)[None])
    return _lbp_codes_stack(grey, P, R, method)[0]


def _histograms(images, pairs, method):
    grey = _grey(images)
    n, h, w = grey.shape
    out = []
    for P, R in pairs:
        codes = _lbp_codes_stack(grey, P, R, method)
        nb = _n_bins(P, method)
        flat = codes.reshape(n, -1) + (np.arange(n) * nb)[:, None]
        hist = np.bincount(flat.ravel(), minlength=n * nb).reshape(n, nb)
        out.append(hist / float(h * w))
    return np.concatenate(out, axis=1)


def _format_r(R):
    return f"{R:g}"


class LBPHistogram(ImageTransformer):
    """Normalised LBP histograms of a batch of images (rotation-invariant uniform by default).

    The grey image (mean of the channels; rounded to the image's integers for uint8 and uint16
    images, unrounded for floats) is coded with
    :func:`lbp_codes` for each (P, R) pair and the per-pair histograms (each summing to 1) are
    concatenated.

    Parameters
    ----------
    radii_points : sequence of (P, R) pairs
        Number of neighbours and radius of each LBP operator.
    method : {"uniform", "nri_uniform"}
        ``"uniform"`` gives P + 2 bins per pair, ``"nri_uniform"`` P (P - 1) + 3.
    n_jobs : int or None
        Number of joblib workers over chunks of images (None = 1).

    Attributes
    ----------
    feature_names_ : ndarray of str
        ``"P8_R1_0"`` ... (pair, then bin).
    n_features_out_ : int

    See Also
    --------
    lbp_histogram : the same on one image.
    HandcraftedFeatures : every handcrafted family at once.

    References
    ----------
    .. [1] Ojala T, Pietikäinen M, Mäenpää T. Multiresolution gray-scale and rotation invariant texture
       classification with local binary patterns. IEEE TPAMI 24(7):971-987 (2002).
       doi:10.1109/TPAMI.2002.1017623

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    >>> LBPHistogram(radii_points=[(8, 1)]).fit_transform(X).shape
    (2, 10)
    """

    def __init__(self, radii_points=((8, 1), (16, 2), (24, 3)), method="uniform", n_jobs=None):
        self.radii_points = radii_points
        self.method = method
        self.n_jobs = n_jobs

    def _check_params(self):
        _check_lbp_params(self.radii_points, self.method)

    def _make_feature_names(self):
        return [
            f"P{P}_R{_format_r(R)}_{k}"
            for P, R in _check_lbp_params(self.radii_points, self.method)
            for k in range(_n_bins(P, self.method))
        ]

    def _transform_stack(self, images):
        return _histograms(images, _check_lbp_params(self.radii_points, self.method), self.method)


def lbp_histogram(image, radii_points=((8, 1), (16, 2), (24, 3)), method="uniform"):
    """Concatenated normalised LBP histograms of one image.

    Parameters
    ----------
    image : array-like
        ``H x W`` grey or ``H x W x 3`` RGB: uint8, uint16 or float in [0, 1] (see :func:`lbp_codes`).
    radii_points : sequence of (P, R) pairs
        Number of neighbours and radius of each LBP operator.
    method : {"uniform", "nri_uniform"}
        See :class:`LBPHistogram`.

    Returns
    -------
    ndarray of float32, shape (sum of bins,)
        One histogram per pair, each summing to 1.

    See Also
    --------
    LBPHistogram : the same on a batch, as a scikit-learn transformer.
    lbp_codes : the per-pixel codes.

    References
    ----------
    .. [1] Ojala T, Pietikäinen M, Mäenpää T. Multiresolution gray-scale and rotation invariant texture
       classification with local binary patterns. IEEE TPAMI 24(7):971-987 (2002).
       doi:10.1109/TPAMI.2002.1017623

    Examples
    --------
    >>> import numpy as np
    >>> h = lbp_histogram(np.zeros((8, 8), np.uint8), radii_points=[(8, 1)])
    >>> h.shape, float(h.sum())
    ((10,), 1.0)
    """
    return LBPHistogram(radii_points=radii_points, method=method)._transform_one(image)
