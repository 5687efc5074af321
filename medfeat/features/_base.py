"""Shared base class of the image-batch transformers in :mod:`medfeat.features`.

A feature family is written as a function of a stack of same-sized images (``_transform_stack``)
plus the list of its feature names; the base class does the rest of the scikit-learn contract: input
validation through :func:`medfeat._checks.check_image_batch` (with ``keep_precision=True``: uint8,
uint16 and float images reach the families as they are, never rounded to 8 bits), chunking the batch so that the
per-call overhead of joblib (and of the vectorised NumPy kernels) is amortised, ``n_jobs``
parallelism, float32 2-D output, ``get_feature_names_out`` and tags telling scikit-learn that the
input is a batch of images rather than a 2-D table.
"""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._checks import check_image, check_image_batch

__all__ = ["ImageTransformer"]


_CONTROLLER = []


def _one_blas_thread():
    """Context manager limiting BLAS to one thread.

    The ThreadpoolController is built once: building it (what ``threadpool_limits`` does on
    every call) inspects every loaded shared library and costs milliseconds.
    """
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def _grey_uint8(images):
    """Grey level of uint8 (N, H, W, C) images as uint8 (N, H, W): the channel mean, rounded.

    Rounded half to even (``np.round``), so that integer-based features (LBP codes, GLCM levels)
    see the same grey image.
    """
    if images.shape[-1] == 1:
        return images[..., 0]
    return np.round(images.astype(np.float64).mean(axis=-1)).astype(np.uint8)


def grey_levels(images):
    """Grey level of checked (N, H, W, C) images in their own precision, shape (N, H, W).

    uint8 and uint16: the channel mean rounded to the image's integers (uint8 exactly as
    :func:`_grey_uint8`), so integer-based features (LBP codes, GLCM levels) work on integers as
    the image's own; float: the channel mean in float64, not rounded.
    """
    if images.dtype == np.uint8:
        return _grey_uint8(images)
    if np.issubdtype(images.dtype, np.integer):
        if images.shape[-1] == 1:
            return images[..., 0]
        return np.round(images.astype(np.float64).mean(axis=-1)).astype(images.dtype)
    return images.astype(np.float64).mean(axis=-1)


def check_bit_depth(bit_depth):
    if bit_depth is None:
        return None
    if isinstance(bit_depth, bool) or not isinstance(bit_depth, (int, np.integer)) or not 1 <= bit_depth <= 16:
        raise ValueError(f"bit_depth must be None or an integer in [1, 16], got {bit_depth!r}.")
    return int(bit_depth)


def integer_bits(images, bit_depth, owner):
    """Bits of the integer scale of a checked batch (array or list): 8 for uint8 unless ``bit_depth``
    says otherwise; uint16 needs ``bit_depth`` (its scale cannot be guessed) and every value must fit.

    Returns None for float images (already on [0, 1]).
    """
    bit_depth = check_bit_depth(bit_depth)
    arrays = images if isinstance(images, list) else [images]
    bits = None
    for im in arrays:
        if not np.issubdtype(im.dtype, np.integer):
            continue
        b = bit_depth if bit_depth is not None else (8 if im.dtype == np.uint8 else None)
        if b is None:
            raise ValueError(
                f"{owner} got {im.dtype} images but bit_depth=None: say how many bits the values use "
                "(e.g. bit_depth=12 for 0-4095 data, 16 for the full range), or window the images to "
                "float [0, 1] first (medfeat.features.window_image)."
            )
        top = int(im.max()) if np.iinfo(im.dtype).max >= 2**b else 0
        if top >= 2**b:
            raise ValueError(f"{owner}: bit_depth={b} but the images hold the value {top} (>= 2**{b}).")
        bits = b
    return bits


def _chunks(X, size):
    return [X[i : i + size] for i in range(0, len(X), size)]


def stack_if_same_shape(images):
    """Return an NHWC array when all images of a list share one shape and dtype, else the list itself.

    The dtype must match too: stacking uint8 with float images would promote 0-255 values to floats
    read as [0, 1].
    """
    if isinstance(images, np.ndarray):
        return images
    if all(im.shape == images[0].shape and im.dtype == images[0].dtype for im in images):
        return np.stack(images)
    return images


class ImageTransformer(TransformerMixin, BaseEstimator):
    """Base class: a feature family computed image by image on an NHWC batch (or a list of images).

    Subclasses implement ``_check_params()`` (validate hyper-parameters, return nothing),
    ``_make_feature_names()`` (list of str) and ``_transform_stack(images)``, where ``images``
    is a checked NHWC array (uint8, uint16 or float in [0, 1]) and the result is a float array of
    shape ``(len(images), n_features)``. Chunks of images of different sizes (or dtypes) are passed
    to it one image at a time. ``_check_input(X)`` may reject a checked batch (e.g. uint16 without
    a bit depth); it runs in ``fit`` and ``transform``.

    Subclasses must define ``n_jobs`` as a constructor parameter.
    """

    #: images per joblib task; large enough to amortise dispatch, small enough to stay in cache.
    _chunk_size = 8
    #: the kernels are NumPy/SciPy/Cython code that releases the GIL, so threads avoid copying
    #: the batch into worker processes.
    _prefer = "threads"

    # -- to be provided by subclasses -------------------------------------------------------
    def _check_params(self):  # pragma: no cover - overridden
        pass

    def _make_feature_names(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def _transform_stack(self, images):  # pragma: no cover - overridden
        raise NotImplementedError

    def _check_input(self, X):
        pass

    def _transform_chunk(self, images):
        """Features of a chunk: an NHWC array at once, a list of different-sized images one by one."""
        if isinstance(images, np.ndarray):
            return self._transform_stack(images)
        return np.concatenate([self._transform_stack(im[None]) for im in images], axis=0)

    # -- scikit-learn API -------------------------------------------------------------------
    def fit(self, X, y=None):
        """Validate the parameters and the image batch and record the feature names.

        Parameters
        ----------
        X : ndarray of shape (N, H, W, C) or list of images
            uint8, uint16 or float in [0, 1]; C is 1 (grey) or 3 (RGB).
        y : ignored

        Returns
        -------
        self
        """
        X = check_image_batch(X, keep_precision=True)
        self._check_params()
        self._check_input(X)
        names = list(self._make_feature_names())
        self.feature_names_ = np.asarray(names, dtype=object)
        self.n_features_out_ = len(names)
        return self

    def transform(self, X):
        """Compute the features of every image.

        Parameters
        ----------
        X : ndarray of shape (N, H, W, C) or list of images
            uint8, uint16 or float in [0, 1]; C is 1 (grey) or 3 (RGB).

        Returns
        -------
        ndarray of float32, shape (N, n_features_out)
        """
        check_is_fitted(self, "feature_names_")
        X = check_image_batch(X, keep_precision=True)
        self._check_input(X)
        out = self._run_chunks(X, self._transform_chunk)
        if out.shape[1] != self.n_features_out_:  # a bug, not a user error
            raise RuntimeError(f"{type(self).__name__} produced {out.shape[1]} features, expected {self.n_features_out_}.")
        return out

    def _run_chunks(self, X, func):
        chunks = [stack_if_same_shape(c) for c in _chunks(X, self._chunk_size)]
        n_jobs = self.n_jobs
        # One BLAS thread: the matrix products here are small, and OpenBLAS threads spinning
        # beside joblib's threads (or other processes) oversubscribe the cores; with them
        # n_jobs=2 ran slower than n_jobs=1.
        with _one_blas_thread():
            if n_jobs in (None, 1) or len(chunks) == 1:
                results = [func(c) for c in chunks]
            else:
                from joblib import Parallel, delayed

                results = Parallel(n_jobs=n_jobs, prefer=self._prefer)(delayed(func)(c) for c in chunks)
        return np.ascontiguousarray(np.concatenate(results, axis=0), dtype=np.float32)

    def _transform_one(self, image):
        """Features of one image (used by the function forms), as a 1-D float32 array."""
        self._check_params()
        image = check_image(image, keep_precision=True)
        self._check_input(image[None])
        return np.asarray(self._transform_stack(image[None]), dtype=np.float32)[0]

    def get_feature_names_out(self, input_features=None):
        """Names of the output features.

        Parameters
        ----------
        input_features : ignored
            Present for compatibility with scikit-learn; image inputs have no column names.

        Returns
        -------
        ndarray of str objects, shape (n_features_out_,)
        """
        check_is_fitted(self, "feature_names_")
        return self.feature_names_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Input is a batch of images (N, H, W, C) or a list of images, not a 2-D table
        # (scikit-learn has no tag for 4-D input).
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = []
        return tags
