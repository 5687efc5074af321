"""Patch grids: level-0 top-left coordinates of fixed-size patches at a target resolution.

A grid at ``mpp`` with ``size`` pixels and ``stride`` pixels (both at ``mpp``) has level-0 patch size
``size_level0 = size * mpp / slide_mpp_x`` and level-0 step ``stride_level0 = stride * mpp / slide_mpp_x``
(the y axis uses ``slide_mpp_y``). Patch ``(i, j)`` starts at ``(round(i * step_x), round(j * step_y))``
and there are ``n_x = max(1, ceil((W - size_level0) / step_x) + 1)`` columns: the fewest that make the last
patch reach the right edge, so the whole slide is covered and border patches are padded white on reading.
Rows likewise. Coordinates are int64, row-major (y, then x).

With a tissue mask, each patch gets the exact area fraction of tissue under its level-0 box (from a
summed-area table of the mask), and patches below ``min_tissue`` are dropped.
"""

import json

import numpy as np

from .spec import GridSpec

__all__ = ["PatchGrid", "box_fractions"]


def box_fractions(mask, downsample, boxes):
    """Exact area fraction of ``mask`` under level-0 boxes.

    Parameters
    ----------
    mask : ndarray of bool (h, w)
        Mask pixel ``(i, j)`` covers level-0 ``[j * dx, (j+1) * dx) x [i * dy, (i+1) * dy)``.
    downsample : float or (float, float)
        ``(dx, dy)``.
    boxes : ndarray (N, 4)
        Level-0 ``x0, y0, x1, y1``.

    Returns
    -------
    ndarray of float64 (N,)
        Fraction of each box covered by mask pixels (outside the mask counts as not covered).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 4), bool); m[:2, :2] = True
    >>> box_fractions(m, 10, np.array([[0, 0, 20, 20], [10, 10, 30, 30], [5, 0, 25, 20]]))
    array([1.  , 0.25, 0.75])
    """
    mask = np.asarray(mask, dtype=bool)
    dx, dy = (float(v) for v in np.broadcast_to(np.asarray(downsample, float), (2,)))
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    h, w = mask.shape
    # Summed-area table with a zero row/column: sat[i, j] = mask[:i, :j].sum(). For a piecewise-constant
    # mask the integral over [0, x] x [0, y] is bilinear inside each cell, so bilinear interpolation of
    # the table at fractional coordinates is exact.
    count_dtype = np.int32 if h * w < 2**31 else np.int64  # exact counts, half the memory of float64
    sat = np.zeros((h + 1, w + 1), count_dtype)
    np.cumsum(mask, axis=0, dtype=count_dtype, out=sat[1:, 1:])
    np.cumsum(sat[1:, 1:], axis=1, out=sat[1:, 1:])

    def integral(x, y):
        x = np.clip(x, 0, w)
        y = np.clip(y, 0, h)
        x0 = np.minimum(np.floor(x).astype(np.int64), w - 1) if w else np.zeros_like(x, np.int64)
        y0 = np.minimum(np.floor(y).astype(np.int64), h - 1) if h else np.zeros_like(y, np.int64)
        x0 = np.maximum(x0, 0)
        y0 = np.maximum(y0, 0)
        tx, ty = x - x0, y - y0
        a = sat[y0, x0].astype(np.float64)
        b = sat[y0, x0 + 1].astype(np.float64)
        c = sat[y0 + 1, x0].astype(np.float64)
        d = sat[y0 + 1, x0 + 1].astype(np.float64)
        return a * (1 - tx) * (1 - ty) + b * tx * (1 - ty) + c * (1 - tx) * ty + d * tx * ty

    if h == 0 or w == 0 or len(boxes) == 0:
        return np.zeros(len(boxes))
    x0, y0, x1, y1 = boxes[:, 0] / dx, boxes[:, 1] / dy, boxes[:, 2] / dx, boxes[:, 3] / dy
    area = (x1 - x0) * (y1 - y0)
    inside = integral(x1, y1) - integral(x0, y1) - integral(x1, y0) + integral(x0, y0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(area > 0, inside / area, 0.0)
    return np.clip(frac, 0.0, 1.0)


def _grid_axis(extent, size0, step0):
    n = max(1, int(np.ceil((extent - size0) / step0 - 1e-9)) + 1)
    return np.floor(np.arange(n) * step0 + 0.5).astype(np.int64)


class PatchGrid:
    """Level-0 coordinates of patches at a target resolution, with the metadata to re-read them.

    Build one with :meth:`from_reader`; restore one with :meth:`from_attrs`.

    Attributes
    ----------
    coords : ndarray of int64 (N, 2)
        Level-0 top-left ``(x, y)``.
    mpp : float
        Target microns per pixel.
    size, stride : int
        Patch size and step in pixels at ``mpp``.
    size_level0 : float
        Patch size in level-0 pixels (x axis): ``size * mpp / slide_mpp[0]``.
    slide_dimensions : (int, int)
    slide_path : str or None
    slide_mpp : (float, float)
    tissue : ndarray of float (N,) or None
        Tissue fraction of each patch when a mask was used.

    See Also
    --------
    read_patches, iter_patch_batches : the pixels of the grid.
    tissue_mask : the mask the grid keeps patches from.

    References
    ----------
    .. [1] Liu Y, Gadepalli K, Norouzi M, et al. Detecting cancer metastases on gigapixel pathology images.
       arXiv:1703.02442 (2017).

    Examples
    --------
    >>> import numpy as np
    >>> from medfeat.slides import SlideReader
    >>> reader = SlideReader.open(np.zeros((100, 130, 3), np.uint8), slide_mpp=0.25)
    >>> grid = PatchGrid.from_reader(reader, mpp=0.5, size=20, tissue=None)
    >>> len(grid), grid.size_level0, grid.coords[:3].tolist()
    (12, 40.0, [[0, 0], [40, 0], [80, 0]])
    """

    def __init__(self, coords, *, mpp, size, stride, slide_dimensions, slide_mpp, slide_path=None, tissue=None,
                 min_tissue=None, tissue_method=None, magnification=None):
        coords = np.asarray(coords)
        if coords.size == 0:
            coords = coords.reshape(0, 2)
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise ValueError(f"coords must be an (N, 2) array of level-0 (x, y), got shape {coords.shape}.")
        self.coords = coords.astype(np.int64)
        self.mpp = float(mpp)
        self.size = int(size)
        self.stride = int(stride)
        self.slide_dimensions = tuple(int(v) for v in slide_dimensions)
        self.slide_mpp = tuple(float(v) for v in slide_mpp)
        self.slide_path = None if slide_path is None else str(slide_path)
        self.tissue = None if tissue is None else np.asarray(tissue, dtype=np.float64)
        if self.tissue is not None and self.tissue.shape != (len(self.coords),):
            raise ValueError(f"tissue must have one fraction per patch ({len(self.coords)}), got {self.tissue.shape}.")
        self.min_tissue = None if min_tissue is None else float(min_tissue)
        self.tissue_method = tissue_method
        self.magnification = None if magnification is None else float(magnification)

    # ------------------------------------------------------------------ derived sizes
    @property
    def size_level0(self):
        return self.size * self.mpp / self.slide_mpp[0]

    @property
    def size_level0_xy(self):
        """Level-0 patch size per axis ``(sx, sy)``."""
        return self.size * self.mpp / self.slide_mpp[0], self.size * self.mpp / self.slide_mpp[1]

    @property
    def stride_level0(self):
        return self.stride * self.mpp / self.slide_mpp[0]

    def boxes(self):
        """Level-0 ``(x0, y0, x1, y1)`` of every patch, float64 (N, 4)."""
        sx, sy = self.size_level0_xy
        c = self.coords.astype(np.float64)
        return np.column_stack([c[:, 0], c[:, 1], c[:, 0] + sx, c[:, 1] + sy])

    def __len__(self):
        return len(self.coords)

    def __repr__(self):
        return (f"PatchGrid(n={len(self)}, mpp={self.mpp:g}, size={self.size}, stride={self.stride}, "
                f"size_level0={self.size_level0:g}, slide={self.slide_path!r})")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_reader(cls, reader, mpp=None, *, magnification=None, size=GridSpec.size, stride=None,
                    tissue=GridSpec.tissue, min_tissue=GridSpec.min_tissue, tissue_mpp=GridSpec.tissue_mpp):
        """Lay a grid of patches over a slide.

        Parameters
        ----------
        reader : SlideReader
        mpp : float, optional
            Target microns per pixel (default :class:`GridSpec`'s, 0.5, when ``magnification`` is not
            given either). :meth:`GridSpec.make_grid` calls this with a whole validated spec.
        magnification : float, optional
            Target objective magnification instead of ``mpp``: ``mpp = slide_mpp * objective_power /
            magnification`` when the slide records its objective power, else the usual convention
            ``mpp = 10 / magnification`` (20x = 0.5 um/px).
        size : int
            Patch side in pixels at the target resolution.
        stride : int, optional
            Step in pixels at the target resolution (default ``size``: non-overlapping).
        tissue : {"otsu", "gray"}, TissueMask or None
            How to find tissue (computed at ``tissue_mpp``), a precomputed mask, or None for all patches.
        min_tissue : float
            Keep patches whose tissue area fraction is >= this (ignored when ``tissue`` is None).
        tissue_mpp : float
            Resolution of the tissue mask computed here.

        Returns
        -------
        PatchGrid
        """
        from .tissue import TissueMask, tissue_mask

        if mpp is not None and magnification is not None:
            raise ValueError("give either mpp or magnification, not both.")
        slide_mpp = reader.mpp
        if magnification is not None:
            if not float(magnification) > 0:
                raise ValueError(f"magnification must be positive, got {magnification!r}.")
            if reader.objective_power:
                mpp = slide_mpp[0] * reader.objective_power / float(magnification)
            else:
                mpp = 10.0 / float(magnification)
        elif mpp is None:
            mpp = GridSpec.mpp
        if not float(mpp) > 0:
            raise ValueError(f"mpp must be positive, got {mpp!r}.")
        if int(size) != size or int(size) <= 0:
            raise ValueError(f"size must be a positive integer number of pixels, got {size!r}.")
        stride = size if stride is None else stride
        if int(stride) != stride or int(stride) <= 0:
            raise ValueError(f"stride must be a positive integer number of pixels, got {stride!r}.")
        if not 0.0 <= float(min_tissue) <= 1.0:
            raise ValueError(f"min_tissue must be in [0, 1], got {min_tissue!r}.")
        W, H = reader.dimensions
        fx, fy = float(mpp) / slide_mpp[0], float(mpp) / slide_mpp[1]
        xs = _grid_axis(W, size * fx, stride * fx)
        ys = _grid_axis(H, size * fy, stride * fy)
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        coords = np.column_stack([xx.ravel(), yy.ravel()])
        grid = cls(coords, mpp=mpp, size=size, stride=stride, slide_dimensions=(W, H), slide_mpp=slide_mpp,
                   slide_path=reader.path, magnification=magnification)
        if tissue is None:
            return grid
        if isinstance(tissue, str):
            method = tissue
            tmask = tissue_mask(reader, method=tissue, mpp=tissue_mpp)
        elif isinstance(tissue, TissueMask):
            method = "mask"
            tmask = tissue
        else:
            raise TypeError(f"tissue must be 'otsu', 'gray', a TissueMask or None, got {type(tissue).__name__}.")
        ds = tmask.downsample
        if ds is None and tmask.mpp is not None:
            ds = (tmask.mpp / slide_mpp[0], tmask.mpp / slide_mpp[1])
        elif ds is None:
            ds = (W / tmask.mask.shape[1], H / tmask.mask.shape[0])
        frac = box_fractions(tmask.mask, ds, grid.boxes())
        keep = frac >= float(min_tissue) - 1e-12
        grid.coords = grid.coords[keep]
        grid.tissue = frac[keep]
        grid.min_tissue = float(min_tissue)
        grid.tissue_method = method
        return grid

    # ------------------------------------------------------------------ views and persistence
    def subset(self, indices):
        """A grid holding only ``indices`` (ints or a boolean mask), same metadata."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"boolean indices must have shape ({len(self)},), got {idx.shape}.")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).ravel()
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"indices out of range for a grid of {len(self)} patches.")
        return PatchGrid(self.coords[idx], mpp=self.mpp, size=self.size, stride=self.stride,
                         slide_dimensions=self.slide_dimensions, slide_mpp=self.slide_mpp, slide_path=self.slide_path,
                         tissue=None if self.tissue is None else self.tissue[idx], min_tissue=self.min_tissue,
                         tissue_method=self.tissue_method, magnification=self.magnification)

    def to_frame(self):
        """``pandas.DataFrame`` with columns x, y (level-0 top-left) and tissue when known."""
        import pandas as pd

        data = {"x": self.coords[:, 0], "y": self.coords[:, 1]}
        if self.tissue is not None:
            data["tissue"] = self.tissue
        return pd.DataFrame(data)

    def attrs(self):
        """JSON-able metadata (everything but the coordinates and tissue fractions).

        Examples
        --------
        >>> g = PatchGrid([[0, 0]], mpp=0.5, size=4, stride=4, slide_dimensions=(8, 8), slide_mpp=(0.25, 0.25))
        >>> g.attrs()["size_level0"]
        8.0
        """
        out = {
            "mpp": self.mpp,
            "size": self.size,
            "stride": self.stride,
            "size_level0": self.size_level0,
            "stride_level0": self.stride_level0,
            "slide_dimensions": list(self.slide_dimensions),
            "slide_mpp": list(self.slide_mpp),
            "slide_path": self.slide_path,
            "min_tissue": self.min_tissue,
            "tissue_method": self.tissue_method,
            "magnification": self.magnification,
            "coordinate_space": "level-0 pixels, top-left (x, y)",
        }
        json.dumps(out)  # fail here, not in the store, if something is not JSON-able
        return out

    @classmethod
    def from_attrs(cls, coords, attrs, tissue=None):
        """Rebuild a grid from coordinates and :meth:`attrs` (e.g. read back from an HDF5 store).

        Values may come back as numpy scalars/arrays or JSON strings; ``None`` may be stored as ``""``.
        """
        def get(key, default=None):
            value = attrs.get(key, default)
            if isinstance(value, bytes):
                value = value.decode()
            if isinstance(value, np.ndarray):
                value = value.tolist()
            if isinstance(value, np.generic):
                value = value.item()
            if value == "" and key in ("slide_path", "min_tissue", "tissue_method", "magnification"):
                value = None
            return value

        missing = [k for k in ("mpp", "size", "stride", "slide_dimensions", "slide_mpp") if k not in attrs]
        if missing:
            raise ValueError(f"attrs lacks {missing}; expected the dict written by PatchGrid.attrs().")
        return cls(coords, mpp=get("mpp"), size=get("size"), stride=get("stride"),
                   slide_dimensions=get("slide_dimensions"), slide_mpp=get("slide_mpp"), slide_path=get("slide_path"),
                   tissue=tissue, min_tissue=get("min_tissue"), tissue_method=get("tissue_method"),
                   magnification=get("magnification"))
