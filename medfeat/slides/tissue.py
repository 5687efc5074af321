"""Tissue masks on a low-resolution view of a slide.

Two methods:

- ``"otsu"``: Otsu threshold on HSV saturation, combined (AND) with a floor on optical density
  ``-log(I / 255)`` summed over RGB; H&E tissue is both coloured and absorbing, glass background is
  neither. The optical-density cut is Otsu's only while Otsu stays below a pale-tissue level
  (``_OD_PALE_TISSUE``): dark lesions give optical density a heavy tail, and Otsu would then split dark
  tissue from pale tissue instead of tissue from glass. Holes are filled and objects smaller than ``min_object_um2`` removed (scipy).
- ``"gray"``: Liu et al. 2017 (CAMELYON16): background where the grey level exceeds 0.8 (of 1).
"""

import warnings
from dataclasses import dataclass

import numpy as np

from .spec import GridSpec

__all__ = ["TissueMask", "tissue_mask"]


@dataclass
class TissueMask:
    """A boolean tissue mask with its resolution.

    Mask pixel ``(i, j)`` covers level-0 ``[j * fx, (j + 1) * fx) x [i * fy, (i + 1) * fy)`` with
    ``(fx, fy) = downsample``.

    Attributes
    ----------
    mask : ndarray of bool, shape (h, w)
    mpp : float or None
        Microns per mask pixel (None when the slide's mpp is unknown).
    downsample : (float, float)
        Level-0 pixels per mask pixel (``mpp / slide mpp``). Masks built by hand: see :meth:`from_array`.

    Examples
    --------
    >>> import numpy as np
    >>> m = TissueMask(np.ones((2, 3), bool), mpp=8.0, downsample=(32.0, 32.0))
    >>> m.fraction
    1.0
    """

    mask: np.ndarray
    mpp: float
    downsample: tuple = None

    @property
    def fraction(self):
        """Fraction of mask pixels that are tissue."""
        return float(np.mean(self.mask)) if self.mask.size else 0.0

    @classmethod
    def from_array(cls, mask, reader=None, *, mpp=None, downsample=None):
        """Wrap a hand-made boolean mask covering the slide of ``reader`` (or with explicit scale).

        The downsample is ``mpp / reader.mpp`` when ``mpp`` is given, else ``downsample``, else the
        ratio of the slide's level-0 width to the mask width.
        """
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"mask must be a 2-D boolean array, got shape {mask.shape}.")
        mask = mask.astype(bool)
        if downsample is not None:
            ds = tuple(float(v) for v in np.broadcast_to(np.asarray(downsample, float), (2,)))
        elif mpp is not None and reader is not None:
            ds = reader.downsample_for(mpp)
        elif reader is not None:
            W, H = reader.dimensions
            ds = (W / mask.shape[1], H / mask.shape[0])
        else:
            raise ValueError("give reader, mpp or downsample so the mask can be placed on the slide.")
        if mpp is None and reader is not None and reader.has_mpp:
            mpp = float(ds[0] * reader.mpp[0])
        return cls(mask=mask, mpp=mpp, downsample=ds)


# Summed RGB optical density of pale eosin / adipose-edge tissue, e.g. RGB (240, 220, 235) gives 0.29;
# clean glass (245, 245, 245) gives 0.12.
_OD_PALE_TISSUE = 0.25


def _otsu_mask(rgb):
    from skimage.filters import threshold_otsu

    # HSV saturation (max - min) / max and the optical density through a 256-entry table, in float32:
    # skimage's rgb2hsv works in float64 on all three channels, ~20x the thumbnail's size, which
    # dominated peak memory on 100,000 px slides.
    mx = rgb.max(axis=2)
    mn = rgb.min(axis=2)
    sat = (mx - mn).astype(np.float32)
    np.divide(sat, mx, out=sat, where=mx > 0)
    del mn
    lut = (-np.log(np.clip(np.arange(256, dtype=np.float64), 1.0, 255.0) / 255.0)).astype(np.float32)
    od = lut[rgb[..., 0]]
    od += lut[rgb[..., 1]]
    od += lut[rgb[..., 2]]
    if np.ptp(sat) < 1e-6 or np.ptp(od) < 1e-6:
        return np.zeros(sat.shape, bool)
    od_thr = min(float(threshold_otsu(od)), _OD_PALE_TISSUE)
    mask = (sat > threshold_otsu(sat)) & (od > od_thr)
    # A nearly empty image gives a meaningless Otsu split (noise vs noise): require real colour.
    mask &= (sat > 0.05) & (od > 0.15)
    return mask


def tissue_mask(reader, method=GridSpec.tissue, mpp=GridSpec.tissue_mpp, min_object_um2=2000.0, fill_holes=True, *, max_size=None):
    """Compute a boolean tissue mask at a low resolution.

    Parameters
    ----------
    reader : SlideReader
    method : {"otsu", "gray"}
        ``"otsu"``: Otsu on saturation and optical density; ``"gray"``: background where grey > 0.8.
    mpp : float
        Mask resolution in microns per pixel (ignored when the slide's mpp is unknown and
        ``max_size`` is given).
    min_object_um2 : float
        Connected tissue components smaller than this area are dropped.
    fill_holes : bool
        Fill holes (lumens, fat) enclosed by tissue, whatever their size (scipy ``binary_fill_holes``).
    max_size : int, optional
        Use a thumbnail with this longest side instead of ``mpp`` (for slides without mpp).

    Returns
    -------
    TissueMask

    Raises
    ------
    ValueError
        When the low-resolution view needs more level pixels than the reader's pixel budget
        (``SlideReader.open(..., max_pixels=)``): a slide without a pyramid level near ``mpp`` is decoded
        from level 0, in tiles, and only up to that budget.

    Warns
    -----
    UserWarning
        When no tissue is found (the empty mask is returned).

    Examples
    --------
    >>> import numpy as np
    >>> from medfeat.slides import SlideReader
    >>> img = np.full((256, 256, 3), 245, np.uint8); img[64:192, 64:192] = (200, 120, 180)
    >>> m = tissue_mask(SlideReader.open(img, slide_mpp=1.0), mpp=4.0, min_object_um2=0)
    >>> m.mask.shape, round(m.fraction, 2)
    ((64, 64), 0.25)
    """
    from scipy import ndimage as ndi

    if method not in ("otsu", "gray"):
        raise ValueError(f"method must be 'otsu' or 'gray', got {method!r}.")
    # The thumbnail covers level-0 [0, w * ds) x [0, h * ds), as TissueMask's downsample states.
    if reader.has_mpp and max_size is None:
        ds = reader.thumbnail_downsample(mpp=mpp)
        mask_mpp = float(mpp)
        rgb = reader.thumbnail(mpp=mpp)
    else:
        if max_size is None:
            _ = reader.mpp  # raises MissingMPPError naming the file and the mpp= override
        ds = reader.thumbnail_downsample(max_size=max_size)
        mask_mpp = float(ds[0] * reader.mpp[0]) if reader.has_mpp else None
        rgb = reader.thumbnail(max_size=max_size)
    if method == "gray":
        grey = rgb.astype(np.float32).mean(axis=2) / 255.0
        mask = grey <= 0.8
    else:
        mask = _otsu_mask(rgb)
    if mask_mpp is not None:
        min_px = round(float(min_object_um2 / (mask_mpp * mask_mpp * (ds[1] / ds[0]))))
    else:
        min_px = 0
    if fill_holes:
        mask = ndi.binary_fill_holes(mask)
    if min_px > 1:
        # skimage's remove_small_objects renamed its size argument in 0.26 (min_size -> max_size with
        # different strictness); labelling with scipy keeps one behaviour across the versions we allow.
        labels, n = ndi.label(mask)
        if n:
            sizes = np.bincount(labels.ravel())
            keep = sizes >= min_px
            keep[0] = False
            mask = keep[labels]
    if not mask.any():
        where = reader.path if reader.path is not None else "the in-memory image"
        warnings.warn(f"no tissue found in {where!r} (method={method!r}); returning an empty mask.", UserWarning,
                      stacklevel=2)
    return TissueMask(mask=mask.astype(bool), mpp=mask_mpp, downsample=tuple(ds))
