"""Shared private helpers: image and batch validation, optional-import checks.

Every public entry point that takes images goes through :func:`check_image` or
:func:`check_image_batch`, so the dtype and shape rules of the whole package live here:

- images are ``H x W x C`` ``uint8`` with C in {1, 3}; a 2-D ``H x W`` array is a grey image
  and becomes ``H x W x 1``;
- float images must lie in [0, 1] and are converted explicitly with ``round(x * 255)``;
- bool, 16-bit, signed integer and 4-channel (RGBA) images are rejected with a ``ValueError``
  rather than silently mis-scaled.
"""

import html
import importlib

import numpy as np

__all__ = [
    "ResultDisplay",
    "check_image",
    "check_image_batch",
    "check_multiscale_batch",
    "optional_import",
    "to_grey",
]


def optional_import(module, *, purpose=None, package=None):
    """Import ``module`` or raise an ImportError that says how to install it.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"torch"``.
    purpose : str, optional
        What the module is needed for, used in the message.
    package : str, optional
        The pip package that provides it, if its name differs from ``module``.

    Returns
    -------
    module
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = package or module.split(".")[0]
        why = f" (needed for {purpose})" if purpose else ""
        raise ImportError(f"medfeat needs the package {pkg!r}{why}; install it with `pip install {pkg}`.") from exc


def check_image(image, *, name="image"):
    """Validate one image and return it as an ``H x W x C`` uint8 array (C = 1 or 3).

    Parameters
    ----------
    image : array-like
        ``H x W`` grey or ``H x W x C`` with C in {1, 3}; uint8, or float in [0, 1].
    name : str
        Argument name used in error messages.

    Returns
    -------
    ndarray of uint8, shape (H, W, C)

    Examples
    --------
    >>> import numpy as np
    >>> check_image(np.zeros((4, 5))).shape
    (4, 5, 1)
    >>> check_image(np.full((2, 2, 3), 1.0))[0, 0]
    array([255, 255, 255], dtype=uint8)
    """
    arr = np.asarray(image)
    if arr.dtype == object:
        raise ValueError(f"{name} must be a numeric image array, got an object array.")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"{name} must be an H x W (grey) or H x W x C image, got an array of shape {arr.shape}.")
    h, w, c = arr.shape
    if h == 0 or w == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}).")
    if c == 4:
        raise ValueError(
            f"{name} has 4 channels (RGBA?); drop or composite the alpha channel first, "
            "e.g. image[..., :3] for an opaque image."
        )
    if c not in (1, 3):
        raise ValueError(f"{name} must have 1 (grey) or 3 (RGB) channels, got {c} (shape {arr.shape}).")
    return _to_uint8(arr, name=name)


def _to_uint8(arr, *, name):
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        raise ValueError(f"{name} is boolean; convert a mask to uint8 (0/255) explicitly.")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf values.")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name} is a float image with values in [{lo:g}, {hi:g}]; float images must lie in [0, 1]. "
                "For 0-255 data pass uint8 (e.g. image.astype(np.uint8))."
            )
        return np.round(arr * 255.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} has dtype {arr.dtype}; expected uint8 (or float in [0, 1]). Rescale 16-bit or signed "
            "images to 0-255 yourself, e.g. (image / image.max() * 255).astype(np.uint8), so no intensity "
            "scaling is guessed."
        )
    raise ValueError(f"{name} has unsupported dtype {arr.dtype}; expected uint8 or float in [0, 1].")


def check_image_batch(X, *, name="X"):
    """Validate a batch of images.

    Parameters
    ----------
    X : ndarray of shape (N, H, W, C) or list of images
        An NHWC array (uint8, or float in [0, 1]) or a list of ``H x W [x C]`` images, possibly of
        different sizes.
    name : str
        Argument name used in error messages.

    Returns
    -------
    ndarray of shape (N, H, W, C) or list of ndarray
        A uint8 NHWC array when ``X`` is an array, else a list of ``H x W x C`` uint8 arrays.

    Examples
    --------
    >>> import numpy as np
    >>> check_image_batch(np.zeros((2, 8, 8, 3), np.uint8)).shape
    (2, 8, 8, 3)
    >>> [im.shape for im in check_image_batch([np.zeros((4, 4)), np.ones((5, 6, 3))])]
    [(4, 4, 1), (5, 6, 3)]
    """
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError(f"{name} is an empty batch; expected at least one image.")
        return [check_image(im, name=f"{name}[{i}]") for i, im in enumerate(X)]
    if hasattr(X, "iloc"):
        raise ValueError(f"{name} must be an NHWC image array or a list of images, got a pandas object.")
    arr = np.asarray(X)
    if arr.ndim != 4:
        hint = " For one image use X[None] (or the function form, e.g. lbp_histogram(image))." if arr.ndim == 3 else ""
        raise ValueError(f"{name} must be an N x H x W x C image batch or a list of images, got shape {arr.shape}.{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch; expected at least one image.")
    n, h, w, c = arr.shape
    if h == 0 or w == 0:
        raise ValueError(f"{name} holds empty images (shape {arr.shape}).")
    if c == 4:
        raise ValueError(f"{name} has 4 channels (RGBA?); drop or composite the alpha channel first, e.g. X[..., :3].")
    if c not in (1, 3):
        raise ValueError(f"{name} must have 1 (grey) or 3 (RGB) channels in its last axis, got shape {arr.shape}.")
    return _to_uint8(arr, name=name)


def check_multiscale_batch(X, *, name="X"):
    """Validate a multiscale batch of shape (N, S, H, W, C), scale 0 the finest.

    Returns
    -------
    ndarray of uint8, shape (N, S, H, W, C)

    Examples
    --------
    >>> import numpy as np
    >>> check_multiscale_batch(np.zeros((2, 3, 8, 8, 3), np.uint8)).shape
    (2, 3, 8, 8, 3)
    """
    arr = np.asarray(X)
    if arr.ndim != 5:
        raise ValueError(f"{name} must be a multiscale batch of shape (N, S, H, W, C), got shape {arr.shape}.")
    n, s = arr.shape[:2]
    if n == 0 or s == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}).")
    return check_image_batch(arr.reshape((n * s,) + arr.shape[2:]), name=name).reshape(arr.shape)


def to_grey(image):
    """Grey level of a checked ``H x W x C`` uint8 image as float64 ``H x W`` (mean of channels).

    Examples
    --------
    >>> import numpy as np
    >>> to_grey(np.array([[[0, 30, 60]]], np.uint8))
    array([[30.]])
    """
    return image.astype(np.float64).mean(axis=2)


class ResultDisplay:
    """Short ``repr`` and notebook HTML for result objects, built from their ``summary()``.

    A class using it defines ``summary()`` (text, first line a one-line headline) and may define
    ``to_frame()`` (a pandas DataFrame shown as the HTML table). Dataclasses must be declared with
    ``@dataclass(repr=False)``, otherwise the generated ``__repr__`` (which prints every array)
    replaces this one.
    """

    def _display_frame(self):
        """The DataFrame shown in HTML (``to_frame()`` by default; None shows the summary text only)."""
        return self.to_frame() if hasattr(self, "to_frame") else None

    def _headline(self):
        """The one line shown by ``repr`` (the summary's first line by default)."""
        lines = self.summary().splitlines()
        return lines[0] if lines else ""

    def __repr__(self):
        lines = self.summary().splitlines()
        head = self._headline()
        more = f" (+{len(lines) - 1} lines in .summary())" if len(lines) > 1 else ""
        return f"<{type(self).__name__}: {head}{more}>"

    def _repr_html_(self):
        lines = self.summary().splitlines()
        notes = [ln[len("Note: "):] for ln in lines if ln.startswith("Note: ")]
        body = [ln for ln in lines if not ln.startswith("Note: ")]
        out = [f"<div class=\"medfeat-result\"><strong>{html.escape(type(self).__name__)}</strong>"]
        frame = self._display_frame()
        if frame is not None and len(frame):
            # Indented summary lines are the table's rows in text form: the table replaces them.
            head = [ln for ln in body if not ln[:1].isspace()]
            out.append("<p>" + "<br>".join(html.escape(ln) for ln in head) + "</p>")
            out.append(frame.to_html(border=0, escape=True, max_rows=40, float_format=lambda v: f"{v:.4g}"))
        else:
            out.append("<pre>" + html.escape("\n".join(body)) + "</pre>")
        if notes:
            out.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
        out.append("</div>")
        return "\n".join(out)
