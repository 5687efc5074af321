"""GIST descriptor of Oliva & Torralba, computed exactly as the LabelMe toolbox's ``LMgist``.

Steps (names of the reference MATLAB functions in brackets):

1. grey level = mean of the channels, in single precision (``LMgist``). The input is used in its
   own precision: uint8, uint16 or float images are never rounded to 8 bits first (step 3 makes
   the descriptor independent of the intensity scale, so uint16 needs no bit depth);
2. resize so that the shorter side is ``image_size`` and crop the centre square
   (``imresizecrop(img, imageSize, 'bilinear')``). MATLAB's ``imresize`` antialiases when it
   shrinks: the triangle kernel is widened by 1/scale, taps beyond the border are mirrored
   ("symmetric") and the weights of each output pixel are normalised to sum 1. This module
   builds the same weights as two small matrices (rows, columns) and applies them with matmuls.
   Octave's ``imresize`` (image package 2.14) computes the same kernel but does not normalise the
   weights; the two agree exactly when 1/scale is an integer (e.g. 256 -> 128) and differ by the
   small ripple of the unnormalised kernel otherwise. We follow MATLAB;
3. rescale intensities to [0, 255] (a constant image, for which LMgist divides 0 by 0, gives an
   all-zero image here and hence an all-zero descriptor);
4. ``prefilt``: log(1 + x), symmetric padding by 5, whitening by a Gaussian high-pass
   (``fc_prefilt`` cycles/image) and local contrast normalisation, computed with FFTs;
5. ``gistGabor``: symmetric padding by ``boundary_extension``, FFT, multiplication by each Gabor
   transfer function of ``createGabor(orientationsPerScale, imageSize + 2 * boundaryExtension)``,
   inverse FFT, modulus, crop, and ``downN``: means over ``n_blocks x n_blocks`` blocks.

Element order is LMgist's: filter-major (scales from high to low frequency, orientations within
a scale), then blocks in column-major order (block row index fastest); for ``color=True`` the
three channels' descriptors follow one another (LMgist's ``gistGabor`` on a colour image).

Speed: images are processed as stacks, in single precision like MATLAB (which runs
``gistGabor`` and ``prefilt`` on ``single`` data), the Gabor bank and the prefilter are cached per
size, the prefilter (a real, even transfer function) uses real FFTs, and the inverse FFT of each
filtered spectrum is done along the columns first, only for the frequency columns where the filter
exceeds 1e-10 (its peak is 1), and only for the rows that survive the crop before transforming
along rows. Dropping transfer values below 1e-10 is the one numerical departure from LMgist; it
changes descriptors far below single-precision rounding. The test suite compares with
descriptors computed by LMgist itself (Octave): the differences are below 5e-7 (tolerance 1e-4).
"""

from functools import lru_cache

import numpy as np

from ._base import ImageTransformer

__all__ = ["GIST", "gabor_transfer_functions", "gist_descriptor"]

_PREFILT_PAD = 5


def _check_gist_params(image_size, orientations_per_scale, n_blocks, fc_prefilt, boundary_extension):
    if not isinstance(image_size, (int, np.integer)) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8, got {image_size!r}.")
    try:
        ors = tuple(int(o) for o in orientations_per_scale)
    except TypeError:
        raise ValueError(
            f"orientations_per_scale must be a sequence of integers, got {orientations_per_scale!r}."
        ) from None
    if not ors or any(o < 1 for o in ors):
        raise ValueError(f"orientations_per_scale must hold positive integers, got {orientations_per_scale!r}.")
    if not isinstance(n_blocks, (int, np.integer)) or not 1 <= n_blocks <= image_size:
        raise ValueError(f"n_blocks must be an integer in [1, image_size], got {n_blocks!r}.")
    if not np.isscalar(fc_prefilt) or not fc_prefilt > 0:
        raise ValueError(f"fc_prefilt must be a positive number, got {fc_prefilt!r}.")
    if not isinstance(boundary_extension, (int, np.integer)) or not 0 <= boundary_extension <= image_size:
        raise ValueError(f"boundary_extension must be an integer in [0, image_size], got {boundary_extension!r}.")
    return int(image_size), ors, int(n_blocks), float(fc_prefilt), int(boundary_extension)


@lru_cache(maxsize=8)
def _gabor_bank(orientations_per_scale, n):
    """createGabor: transfer functions, shape (n_filters, n, n), float64, zero frequency at [0, 0]."""
    half = n / 2
    f = np.arange(-half, half)  # MATLAB -n/2:n/2-1
    fx, fy = np.meshgrid(f, f)
    fr = np.fft.fftshift(np.sqrt(fx**2 + fy**2))
    t = np.fft.fftshift(np.angle(fx + 1j * fy))
    bank = []
    for i, n_or in enumerate(orientations_per_scale):
        for j in range(n_or):
            p1, p2, p3, p4 = 0.35, 0.3 / (1.85**i), 16 * n_or**2 / 32**2, np.pi / n_or * j
            tr = t + p4
            tr = tr + 2 * np.pi * (tr < -np.pi) - 2 * np.pi * (tr > np.pi)
            bank.append(np.exp(-10 * p1 * (fr / n / p2 - 1) ** 2 - 2 * p3 * np.pi * tr**2))
    bank = np.stack(bank)
    bank.setflags(write=False)
    return bank


def gabor_transfer_functions(orientations_per_scale=(8, 8, 8, 8), n=192):
    """Fourier-domain Gabor bank of LMgist (``createGabor``), zero frequency at index [0, 0].

    Parameters
    ----------
    orientations_per_scale : sequence of int
        Orientations at each scale, from high to low frequency.
    n : int
        Side of the (padded) image, ``image_size + 2 * boundary_extension``.

    Returns
    -------
    ndarray of float64, shape (sum(orientations_per_scale), n, n)

    Examples
    --------
    >>> gabor_transfer_functions((4, 4), 32).shape
    (8, 32, 32)
    """
    ors = tuple(int(o) for o in orientations_per_scale)
    return _gabor_bank(ors, int(n)).copy()


@lru_cache(maxsize=8)
def _gabor_bank32(orientations_per_scale, n):
    bank = _gabor_bank(orientations_per_scale, n).astype(np.float32)
    bank.setflags(write=False)
    return bank


@lru_cache(maxsize=8)
def _prefilt_gaussian(n, fc):
    """Half-plane (rfft layout) of prefilt's Gaussian ``fftshift(exp(-(fx^2 + fy^2) / s1^2))``."""
    s1 = fc / np.sqrt(np.log(2))
    f = np.arange(-n / 2, n / 2)
    fx, fy = np.meshgrid(f, f)
    gf = np.fft.fftshift(np.exp(-(fx**2 + fy**2) / s1**2))
    half = np.ascontiguousarray(gf[:, : n // 2 + 1].astype(np.float32))
    half.setflags(write=False)
    return half


def _matlab_round(x):
    return int(np.floor(x + 0.5))


@lru_cache(maxsize=32)
def _resize_matrix(in_len, out_len):
    """Weights of MATLAB ``imresize(..., 'bilinear')`` along one axis, shape (out_len, in_len).

    Output pixel i (1-based) sits at input coordinate ``u = i / s + (1 - 1 / s) / 2``; the
    kernel is the triangle, widened to ``tri(s x) s`` when shrinking (antialiasing), taps beyond
    the border are mirrored (symmetric, edge pixel repeated) and each row is normalised.
    """
    s = out_len / in_len
    if s < 1:
        width = 2.0 / s

        def kernel(x):
            return s * np.clip(1 - np.abs(s * x), 0, None)

    else:
        width = 2.0

        def kernel(x):
            return np.clip(1 - np.abs(x), 0, None)

    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / s + 0.5 * (1 - 1 / s)
    left = np.floor(u - width / 2)
    taps = int(np.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    w = kernel(u[:, None] - idx)
    w /= w.sum(axis=1, keepdims=True)
    # mirror indices (1-based) into [1, in_len] like MATLAB's aux = [1:n, n:-1:1]
    aux = np.concatenate([np.arange(1, in_len + 1), np.arange(in_len, 0, -1)])
    idx = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)] - 1
    mat = np.zeros((out_len, in_len))
    np.add.at(mat, (np.repeat(np.arange(out_len), taps), idx.ravel()), w.ravel())
    mat.setflags(write=False)
    return mat


@lru_cache(maxsize=32)
def _resize_crop_matrices(h, w, m):
    """Sparse (m, h) row and (m, w) column matrices of ``imresizecrop(img, m, 'bilinear')``."""
    scaling = max(m / h, m / w)
    nr, nc = _matlab_round(h * scaling), _matlab_round(w * scaling)
    sr, sc = (nr - m) // 2, (nc - m) // 2
    from scipy import sparse

    rows = _resize_matrix(h, nr)[sr : sr + m] if nr != h else np.eye(h)[sr : sr + m]
    cols = _resize_matrix(w, nc)[sc : sc + m] if nc != w else np.eye(w)[sc : sc + m]
    return sparse.csr_matrix(rows), sparse.csr_matrix(cols)


def _preprocess(images, m, color):
    """Grey (or colour) planes resized-and-cropped to m x m and rescaled to [0, 255].

    images: uint8, uint16 or float (N, H, W, C). Returns float32 (N, c, m, m) with c = 1, or 3 when
    ``color``.
    """
    n, h, w, c = images.shape
    if color:
        planes = images.astype(np.float32)
        if c == 1:
            planes = np.repeat(planes, 3, axis=3)
    else:
        # LMgist: single(mean(img, 3)), the mean taken in double
        planes = images.mean(axis=3, dtype=np.float64).astype(np.float32)[..., None]
    planes = np.moveaxis(planes, 3, 1)  # (N, c, H, W)
    if h == w == m:
        out = np.array(planes, dtype=np.float32)  # imresize to the same size is the identity
    else:
        # the resize matrices have a few non-zeros per row: sparse products, one per axis
        rows, cols = _resize_crop_matrices(h, w, m)
        b = n * planes.shape[1]
        a = planes.reshape(b, h, w).transpose(1, 0, 2).reshape(h, b * w)
        t = (rows @ a).reshape(m, b, w).transpose(2, 1, 0).reshape(w, b * m)  # (W, B * m_rows)
        out = (cols @ t).reshape(m, b, m).transpose(1, 2, 0)  # (B, m_rows, m_cols)
        out = out.reshape(planes.shape[:2] + (m, m)).astype(np.float32)
    out -= out.min(axis=(1, 2, 3), keepdims=True)
    top = out.max(axis=(1, 2, 3), keepdims=True)
    out = np.divide(255 * out, top, out=np.zeros_like(out), where=top > 0)
    return out


def _prefilt(img, fc):
    """LMgist ``prefilt`` on float32 (N, c, m, m) stacks."""
    import scipy.fft as sfft

    w = _PREFILT_PAD
    x = np.log(img + np.float32(1))
    x = np.pad(x, ((0, 0), (0, 0), (w, w), (w, w)), mode="symmetric")
    sn, sm = x.shape[2:]
    n = max(sn, sm)
    n += n % 2
    if (sn, sm) != (n, n):
        x = np.pad(x, ((0, 0), (0, 0), (0, n - sn), (0, n - sm)), mode="symmetric")
    gf = _prefilt_gaussian(n, fc)
    # gf is real and even, so filtering a real image gives a real image: real FFTs suffice.
    out = x - sfft.irfft2(sfft.rfft2(x) * gf, s=(n, n))
    energy = np.mean(out, axis=1, keepdims=True) ** 2
    localstd = np.sqrt(np.abs(sfft.irfft2(sfft.rfft2(energy) * gf, s=(n, n))))
    out = out / (np.float32(0.2) + localstd)
    return np.ascontiguousarray(out[:, :, w : sn - w, w : sm - w], dtype=np.float32)


@lru_cache(maxsize=8)
def _block_indicator(m, n_blocks):
    ind = np.kron(np.eye(n_blocks, dtype=np.float32), np.ones((m // n_blocks, 1), dtype=np.float32))
    ind.setflags(write=False)
    return ind


def _block_means(a, n_blocks):
    """downN: means over n_blocks x n_blocks blocks of the last two axes, as (..., col, row)."""
    m = a.shape[-1]
    if m % n_blocks == 0:
        b = m // n_blocks
        # block sums as ind.T @ a @ ind with a 0/1 indicator matrix: a BLAS product is several
        # times faster than a strided reduction; single-precision sums of b * b terms
        ind = _block_indicator(m, n_blocks)
        means = (ind.T @ (a @ ind)).astype(np.float64) / (b * b)
    else:
        edges = np.fix(np.linspace(0, m, n_blocks + 1)).astype(np.int64)
        counts = np.diff(edges)
        sums = np.add.reduceat(np.add.reduceat(a, edges[:-1], axis=-2, dtype=np.float64), edges[:-1], axis=-1)
        means = sums / (counts[:, None] * counts[None, :])
    return np.swapaxes(means, -1, -2)  # column-major block order: row index fastest


# Gabor transfer values below this are treated as zero when deciding which frequency columns a
# filter touches. The filters peak at 1; a dropped value changes a response by at most this times
# the mean spectral magnitude, orders of magnitude below single-precision rounding of the result.
_SUPPORT_EPS = 1e-10


def _circular_interval(mask):
    """Smallest circular interval (start, length) of indices containing every True of ``mask``."""
    n = len(mask)
    if mask.all() or not mask.any():
        return 0, n
    # the interval is the complement of the longest circular run of False
    idx = np.flatnonzero(mask)
    gaps = np.diff(np.concatenate([idx, idx[:1] + n]))  # distance to the next True, circularly
    j = int(np.argmax(gaps))
    start = int(idx[(j + 1) % len(idx)])
    return start, n - (int(gaps[j]) - 1)


@lru_cache(maxsize=8)
def _gabor_columns(orientations_per_scale, n):
    """Per filter: its columns (kx) rolled so the ones above _SUPPORT_EPS come first, and how many."""
    bank = _gabor_bank32(orientations_per_scale, n)
    out = []
    for g in bank:
        start, length = _circular_interval((g > _SUPPORT_EPS).any(axis=0))
        sub = np.ascontiguousarray(np.roll(g, -start, axis=1)[:, :length])
        sub.setflags(write=False)
        out.append((start, length, sub))
    return tuple(out)


def _gist_gabor(img, orientations, n_blocks, be):
    """LMgist ``gistGabor`` on float32 (N, c, m, m) stacks -> (N, c * n_filters * n_blocks**2)."""
    import scipy.fft as sfft

    n, c, m, _ = img.shape
    padded = np.pad(img, ((0, 0), (0, 0), (be, be), (be, be)), mode="symmetric")
    size = m + 2 * be
    spec = sfft.fft2(padded).astype(np.complex64)  # (N, c, size, size)
    filters = _gabor_columns(orientations, size)
    feats = np.empty((n, c, len(filters), n_blocks, n_blocks), dtype=np.float64)
    prod = np.empty((n, c, size, size), dtype=np.complex64)
    rows = np.zeros((n, c, m, size), dtype=np.complex64)  # second-pass input, zero beyond `length`
    dirty = 0
    for k, (start, length, g) in enumerate(filters):
        # ifft2 = ifft along the columns, then along the rows. Only the frequency columns where
        # the filter is non-zero need the first pass (the others stay 0), and only the rows
        # be:be+m survive the crop. Those columns form a circular interval; moving it to the
        # front multiplies the result by a unit-modulus phase e^(2 pi i start x / size), which
        # the modulus removes, so the second pass just zero-pads to the full length.
        first = min(length, size - start)
        np.multiply(spec[..., start : start + first], g[:, :first], out=prod[..., :first])
        if first < length:
            np.multiply(spec[..., : length - first], g[:, first:], out=prod[..., first:length])
        rows[..., :length] = sfft.ifft(prod[..., :length], axis=-2)[..., be : be + m, :]
        if dirty > length:
            rows[..., length:dirty] = 0
        dirty = length
        out = sfft.ifft(rows, axis=-1)[..., be : be + m]
        feats[:, :, k] = _block_means(np.abs(out), n_blocks)
    return feats.reshape(n, -1)


def _gist_stack(images, params, color):
    m, orientations, n_blocks, fc, be = params
    img = _preprocess(images, m, color)
    return _gist_gabor(_prefilt(img, fc), orientations, n_blocks, be)


class GIST(ImageTransformer):
    """GIST descriptors (Oliva & Torralba 2001) of a batch of images, as LabelMe's ``LMgist``.

    Parameters
    ----------
    image_size : int
        Side of the square the image is resized and centre-cropped to.
    orientations_per_scale : sequence of int
        Gabor orientations per scale, from high to low frequency.
    n_blocks : int
        The filter responses are averaged over ``n_blocks x n_blocks`` blocks.
    fc_prefilt : float
        Cut-off (cycles per image) of the whitening / contrast-normalisation prefilter.
    boundary_extension : int
        Symmetric padding (pixels) before the Gabor filtering.
    color : bool
        False: one descriptor of the grey image (mean of channels), 512 values with the defaults.
        True: the descriptors of R, G and B one after the other (prefiltered jointly as LMgist's
        ``prefilt`` does: contrast normalised by the local energy of the channel mean); a grey
        image then counts as three equal channels.
    n_jobs : int or None
        Number of joblib threads over chunks of images (None = 1).

    Attributes
    ----------
    feature_names_ : ndarray of str
        ``"s0_o0_r0_c0"`` (scale, orientation, block row, block column), prefixed by
        ``"R_"``/``"G_"``/``"B_"`` when ``color`` is True.
    n_features_out_ : int

    See Also
    --------
    gist_descriptor : the same on one image.
    HandcraftedFeatures : every handcrafted family at once.

    References
    ----------
    .. [1] Oliva A, Torralba A. Modeling the shape of the scene: a holistic representation of the spatial
       envelope. International Journal of Computer Vision 42:145-175 (2001). doi:10.1023/A:1011139631724
    .. [2] Bar Y, Diamant I, Wolf L, Greenspan H. Deep learning with non-medical training used for chest
       pathology identification. Proc. SPIE Medical Imaging 9414 (2015). doi:10.1117/12.2083124

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    >>> GIST(image_size=32, boundary_extension=8).fit_transform(X).shape
    (2, 512)
    """

    # small chunks keep the per-filter work arrays in cache (measured: 4 beats 8 and 16)
    _chunk_size = 4

    def __init__(
        self,
        image_size=128,
        orientations_per_scale=(8, 8, 8, 8),
        n_blocks=4,
        fc_prefilt=4,
        boundary_extension=32,
        color=False,
        n_jobs=None,
    ):
        self.image_size = image_size
        self.orientations_per_scale = orientations_per_scale
        self.n_blocks = n_blocks
        self.fc_prefilt = fc_prefilt
        self.boundary_extension = boundary_extension
        self.color = color
        self.n_jobs = n_jobs

    def _params(self):
        return _check_gist_params(
            self.image_size, self.orientations_per_scale, self.n_blocks, self.fc_prefilt, self.boundary_extension
        )

    def _check_params(self):
        self._params()
        if not isinstance(self.color, (bool, np.bool_)):
            raise ValueError(f"color must be True or False, got {self.color!r}.")

    def _make_feature_names(self):
        _, ors, nb, _, _ = self._params()
        names = [
            f"s{s}_o{o}_r{r}_c{c}"
            for s, n_or in enumerate(ors)
            for o in range(n_or)
            for c in range(nb)
            for r in range(nb)
        ]
        if self.color:
            return [f"{ch}_{name}" for ch in "RGB" for name in names]
        return names

    def _transform_stack(self, images):
        return _gist_stack(images, self._params(), bool(self.color))


def gist_descriptor(
    image,
    image_size=128,
    orientations_per_scale=(8, 8, 8, 8),
    n_blocks=4,
    fc_prefilt=4,
    boundary_extension=32,
    color=False,
):
    """GIST descriptor of one image, as LabelMe's ``LMgist`` computes it.

    Parameters
    ----------
    image : array-like
        ``H x W`` grey or ``H x W x 3`` RGB: uint8, uint16 or float in [0, 1], used in that
        precision (LMgist on the same array; its rescaling to [0, 255] makes the scale irrelevant).
    image_size, orientations_per_scale, n_blocks, fc_prefilt, boundary_extension, color
        See :class:`GIST`.

    Returns
    -------
    ndarray of float32, shape (n_filters * n_blocks**2 * (3 if color else 1),)

    See Also
    --------
    GIST : the same on a batch, as a scikit-learn transformer.
    gabor_transfer_functions : the filter bank.

    References
    ----------
    .. [1] Oliva A, Torralba A. Modeling the shape of the scene: a holistic representation of the spatial
       envelope. International Journal of Computer Vision 42:145-175 (2001). doi:10.1023/A:1011139631724

    Examples
    --------
    >>> import numpy as np
    >>> g = gist_descriptor(np.random.default_rng(0).integers(0, 256, (64, 80), dtype=np.uint8))
    >>> g.shape, bool((g >= 0).all())
    ((512,), True)
    """
    est = GIST(
        image_size=image_size,
        orientations_per_scale=orientations_per_scale,
        n_blocks=n_blocks,
        fc_prefilt=fc_prefilt,
        boundary_extension=boundary_extension,
        color=color,
    )
    return est._transform_one(image)
