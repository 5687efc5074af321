"""Grey-level co-occurrence (Haralick-style) texture properties.

The grey image (mean of the channels, rounded to the image's integers for integer images) is
quantised to ``levels`` grey levels by an explicit rule, never by a silent round to 8 bits first:

- integer images of ``bit_depth`` bits (8 for uint8 unless given; uint16 needs it):
  ``q = grey * levels // 2**bit_depth`` (for uint8, ``grey * levels // 256`` as before);
- float images in [0, 1]: ``q = min(floor(grey * levels), levels - 1)``.

Symmetric, normalised co-occurrence matrices are built for every
(distance, angle) and reduced with :func:`skimage.feature.graycoprops`.

The matrices are skimage's :func:`~skimage.feature.graycomatrix` (``symmetric=True``, normalised
to sum 1); the properties of a whole chunk of images are computed in one ``graycoprops`` call by
stacking the images along its angle axis.
"""

import numpy as np

from ._base import ImageTransformer, check_bit_depth, grey_levels, integer_bits

__all__ = ["GLCMFeatures", "glcm_features"]

_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
_ALL_PROPS = _PROPS + ("mean", "variance", "std", "entropy")


def _check_glcm_params(distances, angles, levels, props):
    try:
        dists = tuple(int(d) for d in distances)
        angs = tuple(float(a) for a in angles)
        props = (props,) if isinstance(props, str) else tuple(props)
    except (TypeError, ValueError):
        raise ValueError("distances, angles and props must be sequences (of int, float, str).") from None
    if not dists or any(d < 1 for d in dists) or any(d != orig for d, orig in zip(dists, distances)):
        raise ValueError(f"distances must be positive integers, got {distances!r}.")
    if not angs:
        raise ValueError("angles must hold at least one angle (radians).")
    if not isinstance(levels, (int, np.integer)) or isinstance(levels, bool) or not 2 <= levels <= 256:
        raise ValueError(f"levels must be an integer in [2, 256], got {levels!r}.")
    if not props or any(p not in _ALL_PROPS for p in props):
        raise ValueError(f"props must be a non-empty subset of {_ALL_PROPS}, got {props!r}.")
    return dists, angs, int(levels), props


def _quantise(images, levels, bits):
    grey = grey_levels(images)
    if np.issubdtype(grey.dtype, np.integer):
        return ((grey.astype(np.int64) * levels) >> bits).astype(np.uint8)
    return np.minimum(np.floor(grey * levels), levels - 1).astype(np.uint8)


def _cooccurrence(q, dists, angs, levels):
    """Symmetric, normalised GLCMs of a stack q (N, H, W) -> (levels, levels, n_dist, N * n_ang)."""
    from skimage.feature import graycomatrix

    n = q.shape[0]
    L = levels
    P = np.empty((L, L, len(dists), n, len(angs)), dtype=np.float64)
    for i in range(n):
        P[:, :, :, i, :] = graycomatrix(q[i], dists, angs, levels=L, symmetric=True, normed=False)
    sums = P.sum(axis=(0, 1), keepdims=True)
    sums[sums == 0] = 1
    P /= sums
    # images stacked along graycoprops' angle axis
    return P.reshape(L, L, len(dists), n * len(angs))


def _glcm_stack(images, params, bits):
    from skimage.feature import graycoprops

    dists, angs, levels, props = params
    n = images.shape[0]
    P = _cooccurrence(_quantise(images, levels, bits), dists, angs, levels)
    out = []
    for prop in props:
        v = graycoprops(P, prop).reshape(len(dists), n, len(angs)).transpose(1, 0, 2)
        out.append(v.reshape(n, -1))
    return np.concatenate(out, axis=1)


def _angle_name(a):
    deg = np.degrees(a)
    return f"a{deg:.0f}" if np.isclose(deg, round(deg)) else f"a{deg:.3g}"


class GLCMFeatures(ImageTransformer):
    """Grey-level co-occurrence properties over several distances and angles.

    Parameters
    ----------
    distances : sequence of int
        Pixel distances of the pixel pairs.
    angles : sequence of float
        Angles (radians) of the pixel pairs, skimage's convention.
    levels : int
        Number of grey levels after quantisation (2 to 256).
    props : sequence of str
        Properties of :func:`skimage.feature.graycoprops`.
    bit_depth : int or None
        Bits of integer images, for the quantisation ``grey * levels // 2**bit_depth``. None: 8 for
        uint8 images; uint16 images then raise (say e.g. 12 for 0-4095 data). Float images in
        [0, 1] are quantised as ``floor(grey * levels)`` (1.0 in the top level).
    n_jobs : int or None
        Number of joblib threads over chunks of images (None = 1).

    Attributes
    ----------
    feature_names_ : ndarray of str
        ``"contrast_d1_a0"`` ... (property, then distance, then angle in degrees).
    n_features_out_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).integers(0, 256, (2, 16, 16), dtype=np.uint8)[..., None]
    >>> GLCMFeatures(distances=(1,), angles=(0.0,), props=("contrast",)).fit_transform(X).shape
    (2, 1)
    """

    # graycoprops makes several float64 temporaries of the stacked matrices: small chunks stay in cache
    _chunk_size = 2

    def __init__(
        self,
        distances=(1, 2, 4),
        angles=(0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4),
        levels=64,
        props=_PROPS,
        bit_depth=None,
        n_jobs=None,
    ):
        self.distances = distances
        self.angles = angles
        self.levels = levels
        self.props = props
        self.bit_depth = bit_depth
        self.n_jobs = n_jobs

    def _params(self):
        return _check_glcm_params(self.distances, self.angles, self.levels, self.props)

    def _check_params(self):
        self._params()
        check_bit_depth(self.bit_depth)

    def _check_input(self, X):
        integer_bits(X, self.bit_depth, type(self).__name__)

    def _make_feature_names(self):
        dists, angs, _, props = self._params()
        return [f"{p}_d{d}_{_angle_name(a)}" for p in props for d in dists for a in angs]

    def _transform_stack(self, images):
        bits = integer_bits(images, self.bit_depth, type(self).__name__)
        return _glcm_stack(images, self._params(), bits)


def glcm_features(
    image,
    distances=(1, 2, 4),
    angles=(0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4),
    levels=64,
    props=_PROPS,
    bit_depth=None,
):
    """Grey-level co-occurrence properties of one image (see :class:`GLCMFeatures`).

    Parameters
    ----------
    image : array-like
        ``H x W`` grey or ``H x W x 3`` RGB: uint8, float in [0, 1], or uint16 with ``bit_depth``.
    distances, angles, levels, props, bit_depth
        See :class:`GLCMFeatures`.

    Returns
    -------
    ndarray of float32, shape (len(props) * len(distances) * len(angles),)

    See Also
    --------
    GLCMFeatures : the same on a batch, as a scikit-learn transformer.
    skimage.feature.graycomatrix : the co-occurrence matrices.

    References
    ----------
    .. [1] Haralick RM, Shanmugam K, Dinstein I. Textural features for image classification. IEEE Trans.
       Systems, Man, and Cybernetics 3(6):610-621 (1973).

    Examples
    --------
    >>> import numpy as np
    >>> stripes = np.tile(np.array([0, 255], np.uint8), (8, 4))  # vertical stripes
    >>> glcm_features(stripes, distances=(1,), angles=(0.0, np.pi / 2), levels=2, props=("contrast",))
    array([1., 0.], dtype=float32)
    """
    return GLCMFeatures(
        distances=distances, angles=angles, levels=levels, props=props, bit_depth=bit_depth
    )._transform_one(image)
