"""Shared private helpers: image and batch validation, optional-import checks, atomic writes, JSON.

This is the one module every part of the package may import private helpers from: the leaves
(``features``, ``slides``, ``evaluation``, ``datasets``) never import each other, so what they share
lives here. It imports nothing beyond numpy and the standard library.

Every public entry point that takes images goes through :func:`check_image` or
:func:`check_image_batch`, so the dtype and shape rules of the whole package live here:

- images are ``H x W x C`` with C in {1, 3}; a 2-D ``H x W`` array is a grey image and becomes
  ``H x W x 1``;
- by default (``keep_precision=False``, for consumers that work on 8-bit values: CNN input, stain
  normalisation, slide reading) the result is ``uint8``: float images must lie in [0, 1] and are
  converted explicitly with ``round(x * 255)``; 16-bit images are rejected;
- with ``keep_precision=True`` (the handcrafted features) ``uint8`` and ``uint16`` images are returned
  unchanged and float images in [0, 1] stay float (float16 becomes float32), so nothing is rounded
  to 8 bits. A ``uint16`` image carries no intensity scale of its own (12-bit? windowed?): the
  consumers that need one (colour, GLCM) ask for an explicit ``bit_depth``; scale-free ones (GIST,
  which rescales to [0, 255] itself, and LBP, which only compares values) use the integers as they are;
- bool, signed integer, 32-bit integer and 4-channel (RGBA) images are rejected with a
  ``ValueError`` rather than silently mis-scaled: window them to [0, 1] first
  (:func:`window_to_unit`, public as ``medfeat.features.window_image``).

The intensity windows of radiology (DICOM VOI window centre/width, CT presets, percentile windows)
are defined here too, because both the DICOM reader (``medfeat.datasets``) and the feature-side
transformer (``medfeat.features.preprocessing``) apply them and those leaves may not import each
other.
"""

import html
import importlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = [
    "FEATURE_PRESETS",
    "HANDCRAFTED_FAMILIES",
    "JSONMixin",
    "ResultDisplay",
    "WINDOW_PRESETS",
    "check_image",
    "check_image_batch",
    "check_multiscale_batch",
    "check_positive_int",
    "json_safe",
    "optional_import",
    "parse_window",
    "percentile_window",
    "progress_bar",
    "to_grey",
    "window_to_unit",
    "write_atomic",
    "write_text_atomic",
]


# --------------------------------------------------------------------------------------------------------
# names shared by the command line (which must parse without importing scikit-learn or torch) and the
# pipelines: defined here once
# --------------------------------------------------------------------------------------------------------

#: The handcrafted feature families, each a feature set of its own in comparisons.
HANDCRAFTED_FAMILIES = ("lbp", "gist", "color", "glcm")
#: Feature presets of :func:`medfeat.pipelines.make_feature_transformer` (sorted).
FEATURE_PRESETS = tuple(sorted(HANDCRAFTED_FAMILIES + ("deep", "fusion", "handcrafted")))

def progress_bar(iterable=None, **kwargs):
    """A tqdm progress bar: the notebook widget when ipywidgets is installed, else the text bar.

    ``tqdm.auto`` picks the widget bar in Jupyter and, without ipywidgets, warns ("IProgress not found")
    on every bar; this picks the text bar instead, so notebooks stay clean. Every progress bar of medfeat
    comes from here; ``disable=True`` (the library's ``progress=False``) shows nothing.

    Examples
    --------
    >>> bar = progress_bar(range(3), disable=True)
    >>> list(bar)
    [0, 1, 2]
    """
    import importlib.util

    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(iterable, **kwargs)


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


def check_positive_int(value, name):
    """The one rule for counts such as ``batch_size``, ``size`` or ``stride``: a positive integer (not a bool,
    not a float). Returns it as ``int``.

    Examples
    --------
    >>> check_positive_int(8, "batch_size")
    8
    >>> check_positive_int(2.5, "size")
    Traceback (most recent call last):
    ...
    ValueError: size must be a positive integer, got 2.5.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def check_image(image, *, name="image", keep_precision=False):
    """Validate one image and return it as an ``H x W x C`` array (C = 1 or 3).

    Parameters
    ----------
    image : array-like
        ``H x W`` grey or ``H x W x C`` with C in {1, 3}; uint8, float in [0, 1], or (with
        ``keep_precision``) uint16.
    name : str
        Argument name used in error messages.
    keep_precision : bool, default=False
        False: return uint8 (floats converted with ``round(x * 255)``, 16-bit rejected). True: return
        uint8 and uint16 images unchanged and float images as float32/float64 (see the module notes).

    Returns
    -------
    ndarray of shape (H, W, C)
        uint8, or with ``keep_precision`` uint8, uint16, float32 or float64.

    Examples
    --------
    >>> import numpy as np
    >>> check_image(np.zeros((4, 5))).shape
    (4, 5, 1)
    >>> check_image(np.full((2, 2, 3), 1.0))[0, 0]
    array([255, 255, 255], dtype=uint8)
    >>> check_image(np.full((2, 2), 0.3), keep_precision=True)[0, 0]
    array([0.3])
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
    return _convert(arr, name=name, keep_precision=keep_precision)


def _convert(arr, *, name, keep_precision):
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
                "For 0-255 data pass uint8 (e.g. image.astype(np.uint8)); window other ranges to [0, 1] "
                "first (medfeat.features.window_image)."
            )
        if keep_precision:
            return arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float32)
        return np.round(arr * 255.0).astype(np.uint8)
    if keep_precision and arr.dtype == np.uint16:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        accepted = "uint8, uint16" if keep_precision else "uint8"
        raise ValueError(
            f"{name} has dtype {arr.dtype}; expected {accepted} (or float in [0, 1]). Map 16-bit, signed (e.g. CT "
            "Hounsfield units) or 32-bit images to [0, 1] with an explicit window first, e.g. "
            "medfeat.features.window_image(image, (center, width)) or window_image(image, 'percentile'), "
            "so that no intensity scaling is guessed."
        )
    raise ValueError(f"{name} has unsupported dtype {arr.dtype}; expected uint8 or float in [0, 1].")


def check_image_batch(X, *, name="X", keep_precision=False):
    """Validate a batch of images.

    Parameters
    ----------
    X : ndarray of shape (N, H, W, C) or list of images
        An NHWC array (uint8, or float in [0, 1]; uint16 with ``keep_precision``) or a list of
        ``H x W [x C]`` images, possibly of different sizes (and, in a list, different dtypes).
    name : str
        Argument name used in error messages.
    keep_precision : bool, default=False
        See :func:`check_image`.

    Returns
    -------
    ndarray of shape (N, H, W, C) or list of ndarray
        An NHWC array when ``X`` is an array, else a list of ``H x W x C`` arrays; uint8 unless
        ``keep_precision``.

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
        return [check_image(im, name=f"{name}[{i}]", keep_precision=keep_precision) for i, im in enumerate(X)]
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
    return _convert(arr, name=name, keep_precision=keep_precision)


def check_multiscale_batch(X, *, name="X", keep_precision=False):
    """Validate a multiscale batch of shape (N, S, H, W, C), scale 0 the finest.

    Returns
    -------
    ndarray of shape (N, S, H, W, C)
        uint8 unless ``keep_precision`` (see :func:`check_image`).

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
    flat = arr.reshape((n * s,) + arr.shape[2:])
    return check_image_batch(flat, name=name, keep_precision=keep_precision).reshape(arr.shape)


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


# -- intensity windows (radiology) ------------------------------------------------------------------

#: Common CT windows as (center, width) in Hounsfield units (Radiopaedia, "Windowing (CT)"). They only
#: make sense for values in HU, i.e. CT after the DICOM rescale slope/intercept; radiographs (CR/DX)
#: have no HU scale: use the file's own window ("auto") or a percentile window for them.
WINDOW_PRESETS = {
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "liver": (30.0, 150.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "soft_tissue": (50.0, 400.0),
}

_DEFAULT_PERCENTILES = (0.5, 99.5)
_VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


def parse_window(window, *, name="window", allow_auto=True):
    """Normalise a window specification.

    Parameters
    ----------
    window : str, tuple or None
        ``None`` (no window), ``"auto"`` (the reader's default: a DICOM file's own VOI, else the full
        range of the stored bit depth), a preset name of :data:`WINDOW_PRESETS`, ``(center, width)``,
        ``"percentile"`` (0.5-99.5 % of each image), ``"percentile:LO:HI"`` or ``("percentile", LO, HI)``,
        or the string ``"CENTER,WIDTH"``.
    name : str
        Argument name used in error messages.
    allow_auto : bool
        Whether ``"auto"`` and None are accepted (they need a reader that knows the file).

    Returns
    -------
    None, "auto", ("center_width", center, width, label) or ("percentile", lo, hi, label)

    Examples
    --------
    >>> parse_window("lung")
    ('center_width', -600.0, 1500.0, 'lung')
    >>> parse_window("40,400")
    ('center_width', 40.0, 400.0, 'center=40 width=400')
    >>> parse_window("percentile:1:99")
    ('percentile', 1.0, 99.0, 'percentile 1-99')
    """
    auto = "None, 'auto', " if allow_auto else ""
    expected = (
        f"{name} must be {auto}a preset among {sorted(WINDOW_PRESETS)}, "
        "(center, width) with width > 0, 'CENTER,WIDTH', 'percentile', 'percentile:LO:HI' or "
        f"('percentile', LO, HI) with 0 <= LO < HI <= 100; got {window!r}."
    )
    if window is None or (isinstance(window, str) and window == "auto"):
        if not allow_auto:
            raise ValueError(expected)
        return window
    if isinstance(window, str):
        if window in WINDOW_PRESETS:
            c, w = WINDOW_PRESETS[window]
            return ("center_width", c, w, window)
        if window.startswith("percentile"):
            rest = window[len("percentile"):]
            if rest == "":
                window = ("percentile",) + _DEFAULT_PERCENTILES
            elif rest.startswith(":") and rest.count(":") == 2:
                window = ("percentile",) + tuple(rest[1:].split(":"))
            else:
                raise ValueError(expected)
        elif "," in window:
            window = tuple(window.split(","))
        else:
            raise ValueError(expected)
    if isinstance(window, (tuple, list)) and len(window) == 3 and window[0] == "percentile":
        try:
            lo, hi = float(window[1]), float(window[2])
        except (TypeError, ValueError):
            raise ValueError(expected) from None
        if not (0 <= lo < hi <= 100):
            raise ValueError(expected)
        return ("percentile", lo, hi, f"percentile {lo:g}-{hi:g}")
    if isinstance(window, (tuple, list)) and len(window) == 2:
        try:
            c, w = float(window[0]), float(window[1])
        except (TypeError, ValueError):
            raise ValueError(expected) from None
        if not (np.isfinite(c) and np.isfinite(w) and w > 0):
            raise ValueError(expected)
        return ("center_width", c, w, f"center={c:g} width={w:g}")
    raise ValueError(expected)


def window_to_unit(values, center, width, function="LINEAR_EXACT"):
    """Map values through an intensity window to float32 in [0, 1] (DICOM PS3.3 C.11.2.1.2).

    pydicom's ``apply_windowing`` does the same for a dataset but scales its output to the stored bit
    range and needs a DICOM dataset; here the output range is [0, 1] for any array (PNG/TIFF values,
    user windows, the feature-side transformer), so the three functions are written out.

    Parameters
    ----------
    values : ndarray
        Intensities (e.g. Hounsfield units after the modality rescale).
    center, width : float
        Window centre and width.
    function : {"LINEAR_EXACT", "LINEAR", "SIGMOID"}
        ``LINEAR_EXACT``: ``[center - width/2, center + width/2]`` maps linearly onto [0, 1] (clipped);
        the meaning of a user's (center, width). ``LINEAR``: DICOM's default for a file's own window,
        ``((x - (center - 0.5)) / (width - 1) + 0.5)`` clipped, i.e. the interval
        ``center - 0.5 -+ (width - 1) / 2``. ``SIGMOID``: ``1 / (1 + exp(-4 (x - center) / width))``.

    Returns
    -------
    ndarray of float32, same shape as ``values``

    Examples
    --------
    >>> import numpy as np
    >>> window_to_unit(np.array([-200.0, 40.0, 140.0, 300.0]), 40, 400)
    array([0.  , 0.5 , 0.75, 1.  ], dtype=float32)
    """
    x = np.asarray(values, dtype=np.float64)
    function = str(function).upper()
    if function not in _VOI_FUNCTIONS:
        raise ValueError(f"VOI LUT function must be one of {_VOI_FUNCTIONS}, got {function!r}.")
    center, width = float(center), float(width)
    if function == "SIGMOID":
        if width <= 0:
            raise ValueError(f"window width must be > 0 for SIGMOID, got {width}.")
        return (1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))).astype(np.float32)
    if function == "LINEAR":
        if width < 1:
            raise ValueError(f"window width must be >= 1 for the DICOM LINEAR function, got {width}.")
        lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    else:
        if width <= 0:
            raise ValueError(f"window width must be > 0, got {width}.")
        lo, hi = center - width / 2, center + width / 2
    if hi <= lo:  # LINEAR with width 1: a threshold at center - 0.5
        return (x > lo).astype(np.float32)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def percentile_window(values, lo, hi):
    """(center, width) of the LINEAR_EXACT window spanning the ``lo``-``hi`` percentiles of ``values``.

    A constant image gets width 1 around its value, so it maps to 0.5 everywhere instead of 0/0.

    Examples
    --------
    >>> import numpy as np
    >>> percentile_window(np.arange(101.0), 10, 90)
    (50.0, 80.0)
    """
    a, b = np.percentile(np.asarray(values, dtype=np.float64), [lo, hi])
    if b <= a:
        return float(a), 1.0
    return float((a + b) / 2), float(b - a)


# --------------------------------------------------------------------------------------------------------
# outputs: written under a temporary name, renamed when complete
# --------------------------------------------------------------------------------------------------------


def write_atomic(path, write, *, suffix=".tmp"):
    """Call ``write(fh)`` on a binary temporary file beside ``path``, then rename it to ``path``.

    The temporary file (``.<name>.<random><suffix>`` in the same directory, so the rename is atomic and
    two writers never share it) is flushed to disk before the rename and removed if ``write`` fails, so
    an interrupted run never leaves a half-written file under the final name. The parent directory is
    created if needed; the file gets the permissions an ordinary ``open()`` would give it.

    Parameters
    ----------
    path : str or path
        Final file name.
    write : callable
        Called once with the open binary file handle.
    suffix : str
        Suffix of the temporary name.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_atomic(pathlib.Path(tempfile.mkdtemp()) / "a.txt", lambda fh: fh.write(b"hi"))
    >>> p.read_text(), sorted(q.name for q in p.parent.iterdir())
    ('hi', ['a.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        os.close(fd)
        # reopened by name: some writers (tifffile) need the handle's file name
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates the file 0600; give it the permissions an ordinary open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path, text, *, encoding="utf-8"):
    """Write ``text`` to ``path`` through :func:`write_atomic`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> write_text_atomic(pathlib.Path(tempfile.mkdtemp()) / "a.md", "# hi").read_text()
    '# hi'
    """
    data = str(text).encode(encoding)
    return write_atomic(path, lambda fh: fh.write(data))


# --------------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------------

_NOT_HANDLED = object()


def json_safe(value, *, encode=None):
    """A strict-JSON copy of ``value``: plain Python types, non-finite floats as ``None``.

    numpy scalars become Python numbers, arrays and tuples become lists, dict keys become strings and
    paths become strings (JSON has no NaN or infinity, so ``json.dumps(..., allow_nan=False)`` accepts
    the result). Any other object goes to ``encode(obj)`` when given (a hook for estimators and the
    like; it is tried first on every value and returns ``json_safe.NOT_HANDLED`` to fall through),
    else to its ``repr``.

    Examples
    --------
    >>> import numpy as np
    >>> json_safe({"auc": np.float32(0.5), "ci": (np.nan, 1.0), 3: np.arange(2)})
    {'auc': 0.5, 'ci': [None, 1.0], '3': [0, 1]}
    """
    if encode is not None:
        out = encode(value)
        if out is not _NOT_HANDLED:
            return out
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v, encode=encode) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, encode=encode) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v, encode=encode) for v in value.tolist()]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


json_safe.NOT_HANDLED = _NOT_HANDLED


class JSONMixin:
    """``to_json`` for result classes that have a ``to_dict`` (strict JSON, atomic write)."""

    def to_json(self, path=None, *, indent=2):
        """JSON text of :meth:`to_dict`; written to ``path`` (temporary name, then renamed) when given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            write_text_atomic(path, text)
        return text
