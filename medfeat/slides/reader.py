"""Whole-slide reading by resolution: :class:`SlideReader` over OpenSlide, plain images and arrays.

Coordinates are always level-0 pixels, top-left, ``(x, y)``. Resolution is asked for in microns per
pixel (``mpp``); the reader picks the coarsest pyramid level that is still at least as fine as the
request and resizes from there.

Resizing uses Pillow's ``Image.resize`` with a float ``box`` (sub-pixel positions kept exact): the box
filter when shrinking, so each output pixel is the area-weighted mean of the level pixels under its
footprint (antialiased, like OpenCV's INTER_AREA and like the averaging that builds slide pyramids),
and the bilinear filter when enlarging (a request finer than level 0). When the
requested resolution matches a pyramid level (within 1 %) the level's pixels are returned as stored,
without resampling.

Areas outside the slide and transparent pixels (OpenSlide returns alpha 0 outside the scanned area)
are composited onto white. A region that does not overlap the slide at all is a ``ValueError``:
it is always a coordinate mistake (e.g. level-k coordinates passed as level-0 ones).

Pixel budget: a file can claim any size in a few bytes (a 0.7 MB tiled TIFF claiming 20000 x 20000 px
without a pyramid), so no single request decodes more than ``max_pixels`` pixels of a level (default
``2**28``, about 16384 x 16384; ``SlideReader.open(..., max_pixels=)`` or the ``MEDFEAT_MAX_PIXELS``
environment variable). Plain images, decoded whole, are checked against it from their header before
decoding. Below the budget, large reads (thumbnails and tissue masks of unpyramided slides) are decoded in
tiles of at most ``2**22`` level pixels, so memory stays near the size of the output.
"""

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from .._checks import check_image

__all__ = ["MissingMPPError", "SlideReader", "UpsamplingWarning"]

# Relative tolerance when matching a requested downsample to a pyramid level: OpenSlide reports
# downsamples such as 4.0003 for levels whose size does not divide evenly.
_LEVEL_TOL = 0.01

# Suffixes read as plain one-level images when OpenSlide does not recognise the file.
_PIL_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
_TIFF_SUFFIXES = {".tif", ".tiff"}


class MissingMPPError(ValueError):
    """Raised when a resolution is needed but neither the slide nor the user gives one."""


# Most level pixels one request may decode (plain images: the whole image). 2**28 RGB pixels are 768 MiB.
DEFAULT_MAX_PIXELS = 2**28
# Reads larger than this are decoded tile by tile (OpenSlide's direct read holds 7 bytes per pixel).
_TILE_PIXELS = 2**22


def _max_pixels(value):
    if value is None:
        env = os.environ.get("MEDFEAT_MAX_PIXELS")
        if env is None:
            return DEFAULT_MAX_PIXELS
        try:
            value = int(float(env))
        except ValueError:
            raise ValueError(f"MEDFEAT_MAX_PIXELS must be a positive number of pixels, got {env!r}.") from None
        name = "MEDFEAT_MAX_PIXELS"
    else:
        name = "max_pixels"
    try:
        ok = int(value) == value and int(value) > 0
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive whole number of pixels, got {value!r}.")
    return int(value)


class _Refused(ValueError):
    """A file medfeat refuses on purpose (over budget, truncated): its message is final, not wrapped."""


def _budget_error(what, w, h, budget):
    return _Refused(
        f"{what} needs {w} x {h} = {w * h:,} pixels decoded at once, above the pixel budget of {budget:,} "
        "(a decompression bomb, or an image without a pyramid level coarse enough); raise it with "
        "SlideReader.open(..., max_pixels=N) or the MEDFEAT_MAX_PIXELS environment variable if the file is trusted."
    )


def _as_pair(value, name):
    if value is None:
        return None
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.size != 2 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be a positive number or a pair (x, y) of positive numbers, got {value!r}.")
    return float(arr[0]), float(arr[1])


class _ArrayBackend:
    """One-level slide held in memory (an ndarray, or a decoded plain image)."""

    def __init__(self, image):
        self.image = image
        h, w = image.shape[:2]
        self.level_dimensions = ((w, h),)
        self.level_downsamples = (1.0,)
        self.properties = {}

    def read(self, level, x, y, w, h):
        # Level-0 box inside the image (SlideReader._backend_read clips and pads); a copy, so what callers
        # get never aliases the slide (or the caller's own array).
        return self.image[y : y + h, x : x + w].copy()

    def close(self):
        self.image = None


# Tile cache shared by the handles of one slide's reader threads (OpenSlide's own default is 32 MiB per handle).
_SHARED_CACHE_BYTES = 64 * 1024 * 1024


class _OpenSlideBackend:
    def __init__(self, path):
        import openslide

        try:
            self.slide = openslide.OpenSlide(str(path))
        except openslide.OpenSlideError as exc:
            raise ValueError(f"OpenSlide could not read the slide file {str(path)!r}: {exc}") from exc
        self.level_dimensions = tuple(tuple(int(v) for v in d) for d in self.slide.level_dimensions)
        self.level_downsamples = tuple(float(d) for d in self.slide.level_downsamples)
        self.properties = dict(self.slide.properties)
        self.path = str(path)
        self._direct = _direct_reader(self.slide)
        self._cache = None

    def share_cache_with(self, other):
        """Give ``other`` (a handle of the same slide) this handle's tile cache.

        Reader threads each hold their own handle, and neighbouring patches split between threads need the
        same tiles: with separate caches every thread decodes them again. OpenSlide's cache is thread-safe
        and can be shared between handles (OpenSlide >= 4.0); older builds keep separate caches.
        """
        import openslide

        if not hasattr(openslide, "OpenSlideCache") or not hasattr(self.slide, "set_cache"):
            return  # openslide-python < 1.3
        try:
            if self._cache is None:
                cache = openslide.OpenSlideCache(_SHARED_CACHE_BYTES)
                self.slide.set_cache(cache)
                self._cache = cache
            other.slide.set_cache(self._cache)
        except openslide.OpenSlideError:  # OpenSlideVersionError: the C library is older than 4.0
            return
        other._cache = self._cache

    def read(self, level, x, y, w, h):
        import openslide

        ds = self.level_downsamples[level]
        # OpenSlide takes the top-left in level-0 pixels and the size in level pixels.
        x0, y0, w, h = round(x * ds), round(y * ds), int(w), int(h)
        try:
            if self._direct is not None:
                return self._direct(x0, y0, level, w, h)
            img = self.slide.read_region((x0, y0), level, (w, h))
        except openslide.OpenSlideError as exc:
            raise ValueError(f"OpenSlide failed to read a region of {self.path!r} (corrupt or truncated?): {exc}") from exc
        return _composite_white(np.asarray(img))

    def close(self):
        self.slide.close()


def _direct_reader(slide):
    """Read regions straight into a numpy buffer, or None to use ``OpenSlide.read_region``.

    ``OpenSlide.read_region`` goes through a zeroed ctypes buffer, an ARGB->RGBA pass and a PIL image
    that numpy then copies, all holding the GIL; with several reader threads that serial part limits
    the speed-up. Here the C call (which releases the GIL) fills an uninitialised numpy buffer and
    numpy (which releases the GIL on large arrays) turns premultiplied ARGB into RGB on white:
    ``c + 255 - alpha`` per channel, exact for premultiplied colour. It relies on openslide-python's
    ``lowlevel._read_region`` binding, so any surprise falls back to the public API.
    """
    import ctypes
    import sys

    try:
        from openslide import lowlevel

        func = lowlevel._read_region
        handle = slide._osr
    except (ImportError, AttributeError):
        return None
    if sys.byteorder != "little":
        return None

    def read(x, y, level, w, h):
        buf = np.empty((h, w), np.uint32)
        func(handle, buf.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32)), x, y, level, w, h)
        bgra = buf.view(np.uint8).reshape(h, w, 4)  # little-endian ARGB words: bytes B, G, R, A
        out = np.empty((h, w, 3), np.uint8)
        # one plane at a time: ~4x faster than a reversed-channel strided copy
        out[..., 0] = bgra[..., 2]
        out[..., 1] = bgra[..., 1]
        out[..., 2] = bgra[..., 0]
        alpha = bgra[..., 3]
        if alpha.min() < 255:
            out += (255 - alpha)[..., None]
        return out

    return read


def _composite_white(rgba):
    rgb = rgba[..., :3]
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    # OpenSlide returns un-premultiplied RGBA; blend onto white.
    a = alpha[..., None].astype(np.float32) / 255.0
    out = rgb.astype(np.float32) * a + 255.0 * (1.0 - a)
    return np.round(out).astype(np.uint8)


def _tiff_mpp(page):
    """mpp from TIFF resolution tags, or None when they are absent or a screen/print default."""
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2

    def _res(tag):
        num, den = tags[tag].value
        return num / den if den else 0.0

    rx, ry = _res("XResolution"), _res("YResolution")
    if rx <= 0 or ry <= 0:
        return None
    if unit == 3:  # centimetre
        return 1e4 / rx, 1e4 / ry
    if unit == 2:  # inch: 72/96/300 dpi defaults (>= 21 um/px) are not scan resolutions
        if min(rx, ry) <= 1200:
            return None
        return 25400.0 / rx, 25400.0 / ry
    return None


class _LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _tiff_page0(tif, path, file_size, max_pixels):
    """Page 0 of a TIFF OpenSlide did not open, after refusing truncated pyramids and over-budget pages."""
    pages = list(tif.pages)
    if not pages:
        raise ValueError(f"the TIFF file {str(path)!r} holds no image.")
    for k, page in enumerate(pages):
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts) if n]
        if ends and max(ends) > file_size:
            raise _Refused(
                f"the TIFF file {str(path)!r} is truncated: the image data of page {k} ({page.shape[1]} x "
                f"{page.shape[0]} px) ends at byte {max(ends):,} but the file has {file_size:,} bytes. An incomplete "
                "copy of a pyramidal slide is not read as a one-level image (other features, 4x the memory)."
            )
    page = pages[0]
    h, w = page.shape[:2]
    if h * w > max_pixels:
        raise _budget_error(f"decoding the image {str(path)!r}, which has no pyramid OpenSlide reads,", w, h,
                            max_pixels)
    if len(pages) > 1 and any(p.shape[:2] != page.shape[:2] for p in pages[1:]):
        warnings.warn(
            f"{str(path)!r}: OpenSlide does not read this {len(pages)}-page TIFF (a pyramid with untiled or "
            "unusual pages?); only its first page is used, as a one-level image, and every thumbnail and mask is "
            "computed from it.", UserWarning, stacklevel=4)
    return page


def _load_plain_image(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Decode a plain image into an RGB uint8 array and its mpp from tags (or None).

    The size is checked against ``max_pixels`` from the header, before decoding; a TIFF whose pages
    point past the end of the file (a truncated pyramid, which OpenSlide refuses) is refused, not read as
    its first page.
    """
    suffix = path.suffix.lower()
    mpp = None
    if suffix in _TIFF_SUFFIXES:
        import tifffile

        # tifffile logs (not raises) an IFD chain that points past the end of the file
        capture = _LogCapture()
        tlog = logging.getLogger("tifffile")
        tlog.addHandler(capture)
        try:
            with tifffile.TiffFile(str(path)) as tif:
                page = _tiff_page0(tif, path, os.path.getsize(path), max_pixels)
                if any("offset" in m for m in capture.messages):
                    raise _Refused(
                        f"the TIFF file {str(path)!r} is truncated or damaged (its list of pages points past the end "
                        f"of the file: {capture.messages[0]}); an incomplete pyramid is not read as a one-level image."
                    )
                mpp = _tiff_mpp(page)
                image = page.asarray()
        except _Refused as exc:
            raise ValueError(str(exc)) from None
        except ValueError as exc:
            raise ValueError(f"could not read the TIFF file {str(path)!r} (truncated or not a TIFF?): {exc}") from exc
        except Exception as exc:  # tifffile raises a variety of errors for damaged files
            raise ValueError(f"could not read the TIFF file {str(path)!r} (truncated or not a TIFF?): {exc}") from exc
        finally:
            tlog.removeHandler(capture)
    else:
        from PIL import Image

        try:
            with warnings.catch_warnings():
                # our own budget decides (checked below from the header); Pillow's warning would only repeat it
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    w, h = im.size
                    if w * h > max_pixels:
                        raise _budget_error(f"decoding the image {str(path)!r}", w, h, max_pixels)
                    im.load()
                    if im.mode in ("RGBA", "LA", "P"):
                        im = im.convert("RGBA")
                        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                        im = Image.alpha_composite(bg, im)
                    image = np.asarray(im.convert("RGB"))
        except _Refused as exc:
            raise ValueError(str(exc)) from None
        except ValueError as exc:
            raise ValueError(f"could not read the image file {str(path)!r} (truncated or not an image?): {exc}") from exc
        except Exception as exc:
            raise ValueError(f"could not read the image file {str(path)!r} (truncated or not an image?): {exc}") from exc
    return _rgb_uint8(image, name=f"image in {str(path)!r}"), mpp


def _rgb_uint8(image, name):
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 4:
        if arr.dtype != np.uint8:
            raise ValueError(f"{name} is RGBA with dtype {arr.dtype}; expected uint8.")
        arr = _composite_white(arr)
    arr = check_image(arr, name=name)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


class UpsamplingWarning(UserWarning):
    """A read asked for a finer resolution than the slide's best level holds, so pixels were interpolated.

    Silence it with ``warnings.simplefilter("ignore", UpsamplingWarning)`` (the command line's
    ``--allow-upsampling``) when the interpolation is intended.
    """


# (slide, rounded factor) pairs already warned about: one warning per slide and resolution, not per patch.
_UPSAMPLING_WARNED = set()


def _warn_upsampling(reader, fx, fy):
    key = (reader.path if reader.path is not None else id(reader._backend), round(fx, 4), round(fy, 4))
    if key in _UPSAMPLING_WARNED:
        return
    _UPSAMPLING_WARNED.add(key)
    mpp = f"{reader._mpp[0]:g} um/px" if reader._mpp is not None else "its level-0 resolution"
    target = f"{reader._mpp[0] * fx:g} um/px" if reader._mpp is not None else f"downsample {fx:g}"
    warnings.warn(
        f"{reader._name()} is read at {target}, finer than its best level ({mpp}): pixels are interpolated "
        f"{1.0 / min(fx, fy):.2g}x (upsampled), not seen. Ask for mpp >= the slide's own, or silence this "
        "with warnings.simplefilter('ignore', medfeat.slides.UpsamplingWarning) / --allow-upsampling.",
        UpsamplingWarning,
        stacklevel=3,
    )


class SlideReader:
    """Read a whole-slide image (or plain image, or array) by resolution in microns per pixel.

    Create one with :meth:`SlideReader.open`. All coordinates are level-0 pixels, top-left ``(x, y)``.

    Attributes
    ----------
    path : str or None
        File path, or None for an in-memory array.
    dimensions : tuple of int
        Level-0 ``(width, height)``.
    level_count : int
    level_dimensions : tuple of (int, int)
    level_downsamples : tuple of float
    mpp : tuple of float
        ``(mpp_x, mpp_y)`` in microns per level-0 pixel (the user's ``mpp`` when given). Accessing it
        raises :class:`MissingMPPError` when the slide has none and none was given.
    objective_power : float or None
    vendor : str
        ``"array"``, ``"image"`` or OpenSlide's vendor name (``"aperio"``, ``"generic-tiff"``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> reader = SlideReader.open(np.zeros((100, 200, 3), np.uint8), slide_mpp=0.25)
    >>> reader.dimensions, reader.mpp
    ((200, 100), (0.25, 0.25))
    >>> reader.read_region((0, 0), (50, 25), mpp=1.0).shape
    (25, 50, 3)
    """

    def __init__(self, backend, *, path=None, mpp=None, vendor="array", objective_power=None, max_pixels=None):
        self._backend = backend
        self.max_pixels = _max_pixels(max_pixels)
        self.path = path
        self._mpp = mpp
        self._user_mpp = None
        self.vendor = vendor
        self.objective_power = objective_power
        self.level_dimensions = backend.level_dimensions
        self.level_downsamples = backend.level_downsamples
        self.level_count = len(self.level_dimensions)
        self.dimensions = self.level_dimensions[0]

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(cls, path_or_array, slide_mpp=None, *, max_pixels=None, mpp=None):
        """Open a slide file, a plain image file or an ``H x W x 3`` uint8 array.

        Parameters
        ----------
        path_or_array : str, os.PathLike or ndarray
            A whole-slide file OpenSlide reads (SVS, NDPI, MRXS, SCN, generic tiled TIFF, ...), a plain
            PNG/JPEG/TIFF image (read as a one-level slide), or an image array (grey or RGB, uint8 or
            float in [0, 1]).
        slide_mpp : float or (float, float), optional
            The slide's own microns per level-0 pixel. Overrides the file's value, or supplies a missing
            one. (Everywhere else in medfeat ``mpp`` is the *target* resolution patches are read at.)
        max_pixels : int, optional
            Pixel budget: the most level pixels one read (or the decoding of a plain image) may need.
            Default ``$MEDFEAT_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS` (``2**28``).
        mpp : float or (float, float), optional
            Old name of ``slide_mpp`` (deprecated: it meant the slide's resolution here and the target
            resolution everywhere else).

        Returns
        -------
        SlideReader

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ValueError
            If the file cannot be decoded (not a slide, truncated pyramid), a plain image exceeds the pixel
            budget, or ``slide_mpp`` is not positive.

        Examples
        --------
        >>> import numpy as np
        >>> with SlideReader.open(np.full((8, 8, 3), 200, np.uint8), slide_mpp=0.5) as r:
        ...     r.level_count
        1
        """
        if mpp is not None:
            if slide_mpp is not None:
                raise ValueError("give slide_mpp only (mpp is its deprecated old name), not both.")
            warnings.warn("SlideReader.open(mpp=) is renamed slide_mpp= (the slide's own resolution); mpp= "
                          "will be removed.", DeprecationWarning, stacklevel=2)
            slide_mpp = mpp
        user_mpp = _as_pair(slide_mpp, "slide_mpp")
        max_pixels = _max_pixels(max_pixels)
        if isinstance(path_or_array, np.ndarray):
            image = _rgb_uint8(path_or_array, name="path_or_array")
            reader = cls(_ArrayBackend(image), path=None, mpp=user_mpp, vendor="array", max_pixels=max_pixels)
            reader._user_mpp = user_mpp
            return reader
        if not isinstance(path_or_array, (str, os.PathLike)):
            raise TypeError(
                f"path_or_array must be a file path or an H x W x 3 array, got {type(path_or_array).__name__}."
            )
        path = Path(path_or_array)
        if not path.exists():
            raise FileNotFoundError(f"slide file {str(path)!r} does not exist.")
        if path.is_dir():
            raise ValueError(f"slide path {str(path)!r} is a directory; expected a slide or image file.")

        import openslide

        try:
            fmt = openslide.OpenSlide.detect_format(str(path))
        except openslide.OpenSlideError as exc:
            raise ValueError(f"OpenSlide could not inspect {str(path)!r} (corrupt or truncated?): {exc}") from exc
        if fmt is not None:
            backend = _OpenSlideBackend(path)
            props = backend.properties
            file_mpp = None
            try:
                file_mpp = (float(props["openslide.mpp-x"]), float(props["openslide.mpp-y"]))
            except (KeyError, ValueError):
                file_mpp = None
            if file_mpp is not None and not all(np.isfinite(file_mpp) & (np.asarray(file_mpp) > 0)):
                file_mpp = None
            power = props.get("openslide.objective-power")
            try:
                power = float(power) if power is not None else None
            except ValueError:
                power = None
            vendor = props.get("openslide.vendor", fmt)
        else:
            suffix = path.suffix.lower()
            if suffix not in _PIL_SUFFIXES | _TIFF_SUFFIXES:
                raise ValueError(
                    f"{str(path)!r} is not a slide OpenSlide recognises nor a plain image "
                    f"(PNG/JPEG/TIFF); check that the file is complete and really a {suffix or 'slide'} file."
                )
            image, file_mpp = _load_plain_image(path, max_pixels)
            backend = _ArrayBackend(image)
            power, vendor = None, "image"
        reader = cls(backend, path=str(path), mpp=user_mpp or file_mpp, vendor=vendor, objective_power=power,
                     max_pixels=max_pixels)
        reader._user_mpp = user_mpp
        return reader

    def reopen(self):
        """A new, independent reader of the same slide (own OpenSlide handle), e.g. for a worker.

        In-memory readers share their (read-only) array.
        """
        if self.path is None or self.vendor == "image":
            clone = SlideReader(self._backend, path=self.path, mpp=self._mpp, vendor=self.vendor,
                                objective_power=self.objective_power, max_pixels=self.max_pixels)
            clone._user_mpp = self._user_mpp
            return clone
        clone = SlideReader.open(self.path, slide_mpp=self._user_mpp, max_pixels=self.max_pixels)
        if self._backend is not None:  # a closed reader can still be re-opened; it has no cache to share
            self._backend.share_cache_with(clone._backend)
        return clone

    def close(self):
        """Release the OpenSlide handle (in-memory readers just drop their reference)."""
        if self._backend is not None and not isinstance(self._backend, _ArrayBackend):
            self._backend.close()
        self._backend = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        mpp = "unknown" if self._mpp is None else f"{self._mpp[0]:g}x{self._mpp[1]:g}"
        src = self.path if self.path is not None else "<array>"
        return f"SlideReader({src!r}, dimensions={self.dimensions}, levels={self.level_count}, mpp={mpp})"

    def __getstate__(self):
        # Readers travel to worker processes by path and re-open there; arrays travel as data.
        state = dict(self.__dict__)
        if self.path is not None and self.vendor != "image":
            state["_backend"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self._backend is None and self.path is not None:
            self._backend = _OpenSlideBackend(self.path)

    # ------------------------------------------------------------------ properties
    @property
    def has_mpp(self):
        """Whether a resolution is known (from the file or the user)."""
        return self._mpp is not None

    @property
    def mpp(self):
        if self._mpp is None:
            where = f"the slide {self.path!r}" if self.path is not None else "this in-memory image"
            raise MissingMPPError(
                f"{where} records no resolution (microns per pixel); pass it explicitly, e.g. "
                f"SlideReader.open(..., slide_mpp=0.25)."
            )
        return self._mpp

    def _check_open(self):
        if self._backend is None:
            raise ValueError(f"the reader of {self.path or '<array>'!r} is closed.")

    def _name(self):
        return repr(self.path) if self.path is not None else "the in-memory image"

    # ------------------------------------------------------------------ reading
    def best_level(self, downsample):
        """Index of the coarsest level whose downsample is <= ``downsample`` (with 1 % tolerance).

        Examples
        --------
        >>> import numpy as np
        >>> SlideReader.open(np.zeros((4, 4, 3), np.uint8), slide_mpp=1).best_level(3.0)
        0
        """
        best = 0
        for i, ds in enumerate(self.level_downsamples):
            if ds <= downsample * (1.0 + _LEVEL_TOL):
                best = i if ds >= self.level_downsamples[best] else best
        return best

    def downsample_for(self, mpp):
        """Level-0 pixels per output pixel ``(fx, fy)`` for a target ``mpp``."""
        target = _as_pair(mpp, "mpp")
        sx, sy = self.mpp
        return target[0] / sx, target[1] / sy

    def read_region(self, location, size, *, mpp=None):
        """Read a region at a target resolution.

        Parameters
        ----------
        location : (x, y)
            Top-left corner in level-0 pixels (floats allowed for sub-pixel positions).
        size : (w, h)
            Output size in pixels at the target resolution.
        mpp : float or (float, float), optional
            Target microns per pixel; None reads level 0 unresized.

        Returns
        -------
        ndarray of uint8, shape (h, w, 3)
            RGB; areas outside the slide are white.

        Raises
        ------
        ValueError
            If the region lies entirely outside the slide or ``size`` is not positive.

        Examples
        --------
        >>> import numpy as np
        >>> img = np.zeros((40, 40, 3), np.uint8)
        >>> r = SlideReader.open(img, slide_mpp=0.5)
        >>> r.read_region((30, 30), (20, 20))[15, 15]   # outside the 40x40 image: white
        array([255, 255, 255], dtype=uint8)
        """
        factor = (1.0, 1.0) if mpp is None else self.downsample_for(mpp)
        return self.read_region_downsample(location, size, factor)

    def read_region_downsample(self, location, size, downsample):
        """Like :meth:`read_region` with the scale given as level-0 pixels per output pixel.

        Works without a known mpp (used by thumbnails and masks).
        """
        self._check_open()
        fx, fy = _as_pair(downsample, "downsample")
        try:
            x, y = (float(v) for v in location)
            w, h = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"location must be (x, y) and size (w, h), got {location!r} and {size!r}.") from None
        if w <= 0 or h <= 0:
            raise ValueError(f"size must be positive (w, h), got {tuple(size)!r}.")
        W, H = self.dimensions
        ext_w, ext_h = w * fx, h * fy
        if x >= W or y >= H or x + ext_w <= 0 or y + ext_h <= 0:
            raise ValueError(
                f"region at level-0 ({x:g}, {y:g}) of level-0 size ({ext_w:g}, {ext_h:g}) lies entirely outside "
                f"{self._name()} of level-0 size {self.dimensions}."
            )
        if w * h > self.max_pixels:
            raise _budget_error(f"a {w} x {h} px read of {self._name()}", w, h, self.max_pixels)
        level = self.best_level(min(fx, fy))
        ds = self.level_downsamples[level]
        if level == 0 and min(fx, fy) < 1.0 - _LEVEL_TOL:
            _warn_upsampling(self, fx, fy)
        # OpenSlide maps level-0 to level-k pixels by dividing by its reported downsample (the mean of
        # both axes when a level's size does not divide evenly); use the same mapping.
        sx, sy = fx / ds, fy / ds  # level pixels per output pixel
        lx, ly = x / ds, y / ds
        lw, lh = self.level_dimensions[level]
        exact = abs(sx - 1.0) < _LEVEL_TOL and abs(sy - 1.0) < _LEVEL_TOL
        # Level pixels this request decodes (clipped to the level): the budget is checked before any decoding.
        margin = 0 if exact else 2 + int(np.ceil(max(sx, sy)))
        need_w = max(0, min(lx + w * sx + margin, lw) - max(lx - margin, 0))
        need_h = max(0, min(ly + h * sy + margin, lh) - max(ly - margin, 0))
        if need_w * need_h > self.max_pixels:
            raise _budget_error(
                f"reading level-0 ({x:g}, {y:g}) + ({w * fx:g}, {h * fy:g}) of {self._name()} from level {level} "
                f"({lw} x {lh} px)", int(np.ceil(need_w)), int(np.ceil(need_h)), self.max_pixels)
        out = None
        # Output tile so that one tile's level box stays under _TILE_PIXELS (a pixel's box may alone exceed it).
        side = np.sqrt(_TILE_PIXELS)
        tw = max(1, min(w, int((side - 2 * margin - 2) / sx))) if w * sx * h * sy > _TILE_PIXELS else w
        th = max(1, min(h, int((side - 2 * margin - 2) / sy))) if w * sx * h * sy > _TILE_PIXELS else h
        if tw == w and th == h:
            return self._read_level(level, lx, ly, w, h, sx, sy, exact)
        out = np.full((h, w, 3), 255, np.uint8)
        for oy in range(0, h, th):
            for ox in range(0, w, tw):
                bw, bh = min(tw, w - ox), min(th, h - oy)
                # at a level's own resolution output pixel i is level pixel round(lx) + i
                tx, ty = (round(lx) + ox, round(ly) + oy) if exact else (lx + ox * sx, ly + oy * sy)
                if tx >= lw + margin or ty >= lh + margin or tx + bw * sx <= -margin or ty + bh * sy <= -margin:
                    continue  # outside the level: stays white
                out[oy : oy + bh, ox : ox + bw] = self._read_level(level, tx, ty, bw, bh, sx, sy, exact)
        return out

    def _read_level(self, level, lx, ly, w, h, sx, sy, exact):
        """``(h, w)`` output pixels from level ``level`` starting at level pixel ``(lx, ly)``, ``sx`` level px each."""
        if exact:
            return self._backend_read(level, round(lx), round(ly), w, h)
        from PIL import Image

        lw, lh = self.level_dimensions[level]
        # Read an integer-aligned level box with a margin for the filter support, then resample the
        # exact float box inside it.
        margin = 2 + int(np.ceil(max(sx, sy)))
        bx0, by0 = int(np.floor(lx)) - margin, int(np.floor(ly)) - margin
        bx1, by1 = int(np.ceil(lx + w * sx)) + margin, int(np.ceil(ly + h * sy)) + margin
        # Clip the read to the level (plus margin) so far-outside context stays cheap; pad white after.
        cx0, cy0 = max(bx0, -margin), max(by0, -margin)
        cx1, cy1 = min(bx1, lw + margin), min(by1, lh + margin)
        block = np.full((by1 - by0, bx1 - bx0, 3), 255, np.uint8)
        if cx1 > cx0 and cy1 > cy0:
            block[cy0 - by0 : cy1 - by0, cx0 - bx0 : cx1 - bx0] = self._backend_read(level, cx0, cy0, cx1 - cx0, cy1 - cy0)
        box = (lx - bx0, ly - by0, lx - bx0 + w * sx, ly - by0 + h * sy)
        shrink = sx >= 1.0 and sy >= 1.0
        resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
        out = Image.fromarray(block).resize((w, h), resample, box=box)
        return np.asarray(out)

    def _backend_read(self, level, x, y, w, h):
        lw, lh = self.level_dimensions[level]
        # Only ask the backend for the part inside the level; pad the rest white.
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, lw), min(y + h, lh)
        if x0 == x and y0 == y and x1 == x + w and y1 == y + h:
            return self._backend.read(level, x, y, w, h)
        out = np.full((h, w, 3), 255, np.uint8)
        if x1 > x0 and y1 > y0:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = self._backend.read(level, x0, y0, x1 - x0, y1 - y0)
        return out

    def thumbnail(self, mpp=None, max_size=None):
        """The whole slide at a resolution, or fitted into ``max_size`` pixels.

        Parameters
        ----------
        mpp : float, optional
            Target microns per pixel (needs a known slide mpp).
        max_size : int, optional
            Longest side in pixels; used when ``mpp`` is None (default 1024).

        Returns
        -------
        ndarray of uint8, shape (h, w, 3)
            Covers level-0 ``[0, w * f) x [0, h * f)`` with ``f = mpp / slide mpp`` (or
            ``max(dimensions) / max_size``), i.e. ``ceil(dimension / f)`` pixels per axis.

        Examples
        --------
        >>> import numpy as np
        >>> SlideReader.open(np.zeros((100, 200, 3), np.uint8)).thumbnail(max_size=50).shape
        (25, 50, 3)
        """
        if mpp is not None and max_size is not None:
            raise ValueError("give either mpp or max_size to thumbnail(), not both.")
        f = self.thumbnail_downsample(mpp=mpp, max_size=max_size)
        W, H = self.dimensions
        size = (max(1, int(np.ceil(W / f[0] - 1e-9))), max(1, int(np.ceil(H / f[1] - 1e-9))))
        return self.read_region_downsample((0, 0), size, f)

    def thumbnail_downsample(self, mpp=None, max_size=None):
        """Level-0 pixels per thumbnail pixel ``(fx, fy)`` used by :meth:`thumbnail`."""
        if mpp is not None:
            return self.downsample_for(mpp)
        max_size = 1024 if max_size is None else max_size
        if int(max_size) <= 0:
            raise ValueError(f"max_size must be a positive number of pixels, got {max_size!r}.")
        f = max(max(self.dimensions) / int(max_size), 1.0)
        return f, f
