"""Synthetic pyramidal whole-slide images with known lesion polygons, for tests, benchmarks and demos.

:func:`write_synthetic_slide` streams tiles into a tiled BigTIFF (JPEG or deflate tiles, one page per
pyramid level, resolution tags in pixels per centimetre) that OpenSlide opens as a ``generic-tiff`` slide
with ``openslide.mpp-x/y`` set. No full-resolution array is ever held: every tile of every level is
computed from a procedural description at that level's resolution:

- tissue and lesions are star-shaped polygons (level-0 coordinates), rasterised per tile;
- the tissue and lesion textures are periodic (period 1024 level-0 px); the texture of level k is the
  2^k block mean of level 0's, so coarser levels are true downsamples away from polygon edges;
- background tiles are identical and encoded once.

:func:`write_tiled_tiff` writes given in-memory level arrays the same way (used to plant exact patterns).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import write_atomic

__all__ = ["SyntheticSlide", "write_synthetic_slide", "write_tiled_tiff"]

_BACKGROUND = (244, 243, 245)
_PERIOD = 1024


@dataclass
class SyntheticSlide:
    """Result of :func:`write_synthetic_slide`.

    Attributes
    ----------
    path : pathlib.Path
    lesions : list of ndarray (K, 2) float64
        Lesion polygons in level-0 ``(x, y)`` pixels (ground truth).
    mpp : float
    size : (int, int)
        Level-0 ``(width, height)``.
    tissue : list of ndarray (K, 2) float64
        Tissue polygons in level-0 pixels.
    level_dimensions : list of (int, int)
    """

    path: Path
    lesions: list
    mpp: float
    size: tuple
    tissue: list = field(default_factory=list)
    level_dimensions: list = field(default_factory=list)


def _check_compression(compression, quality):
    comp = str(compression).lower()
    if comp in ("deflate", "zlib"):
        comp = "zlib"
    if comp not in ("jpeg", "zlib", "none"):
        raise ValueError(f"compression must be 'jpeg', 'deflate'/'zlib' or 'none', got {compression!r}.")
    if comp == "jpeg" and not (1 <= int(quality) <= 100):
        raise ValueError(f"quality must be in 1..100, got {quality!r}.")
    return comp


def _level_dims(size, levels, tile_size):
    w, h = size
    dims = [(w, h)]
    if levels is None:
        while max(dims[-1]) > tile_size and min(dims[-1]) >= 2:
            pw, ph = dims[-1]
            dims.append((max(1, pw // 2), max(1, ph // 2)))
    else:
        if int(levels) < 1:
            raise ValueError(f"levels must be >= 1, got {levels!r}.")
        for _ in range(int(levels) - 1):
            pw, ph = dims[-1]
            dims.append((max(1, pw // 2), max(1, ph // 2)))
    return dims


def _write_pages(path, level_dims, tile_source, *, mpp, tile_size, compression, quality, progress):
    """Write one tiled page per level; ``tile_source(level, tx, ty)`` gives a (t, t, 3) uint8 tile."""
    import tifffile

    path = Path(path)
    t = int(tile_size)
    if t <= 0 or t % 16:
        raise ValueError(f"tile_size must be a positive multiple of 16 (TIFF tiles), got {tile_size!r}.")
    from .._checks import progress_bar

    n_tiles = sum(-(-w // t) * -(-h // t) for w, h in level_dims)
    bar = progress_bar(total=n_tiles, desc=f"writing {path.name}", unit="tile", disable=not progress)
    mpp0 = float(mpp)

    def tiles(level):
        import imagecodecs

        w, h = level_dims[level]
        cache = {}
        for ty in range(0, h, t):
            for tx in range(0, w, t):
                tile = tile_source(level, tx, ty)
                bar.update(1)
                if compression != "jpeg":
                    yield np.ascontiguousarray(tile)
                    continue
                # Encode JPEG ourselves so identical (background) tiles are encoded once.
                key = tile.ctypes.data if getattr(tile, "_medfeat_constant", False) else None
                if key is not None and key in cache:
                    yield cache[key]
                    continue
                data = imagecodecs.jpeg8_encode(
                    tile, level=int(quality), colorspace="RGB", outcolorspace="YCBCR", subsampling=(2, 2)
                )
                if key is not None:
                    cache[key] = data
                yield data

    def write(fh):
        with tifffile.TiffWriter(fh, bigtiff=True) as tw:
            for level, (w, h) in enumerate(level_dims):
                res = 1e4 / (mpp0 * (level_dims[0][0] / w))
                kwargs = {
                    "shape": (h, w, 3),
                    "dtype": np.uint8,
                    "tile": (t, t),
                    "resolution": (res, 1e4 / (mpp0 * (level_dims[0][1] / h))),
                    "resolutionunit": "CENTIMETER",
                    "subfiletype": 1 if level else 0,
                    "metadata": None,
                }
                if compression == "jpeg":
                    kwargs.update(photometric="ycbcr", compression="jpeg", subsampling=(2, 2))
                else:
                    kwargs.update(photometric="rgb", compression=None if compression == "none" else "zlib")
                tw.write(tiles(level), **kwargs)

    try:
        return write_atomic(path, write, suffix=".partial")
    finally:
        bar.close()


class _ConstTile(np.ndarray):
    """An ndarray flagged as a shared constant tile (its encoding is cached)."""

    _medfeat_constant = True


def write_tiled_tiff(path, levels, mpp, *, tile_size=256, compression="zlib", quality=90, progress=True):
    """Write given level arrays as a pyramidal tiled TIFF that OpenSlide opens (``generic-tiff``).

    Parameters
    ----------
    path : str or os.PathLike
    levels : list of ndarray (h_k, w_k, 3) uint8
        Level 0 first; each following level smaller. Their content is written as given, so planted
        patterns are exact with lossless ``compression``.
    mpp : float
        Microns per level-0 pixel; level k's resolution tag is ``mpp * (w_0 / w_k)``.
    tile_size : int
        Multiple of 16.
    compression : {"zlib", "deflate", "jpeg", "none"}
    quality : int
        JPEG quality.
    progress : bool

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> lv0 = np.full((64, 96, 3), 200, np.uint8)
    >>> p = write_tiled_tiff(os.path.join(tempfile.mkdtemp(), "s.tif"), [lv0, lv0[::2, ::2]], mpp=0.5, tile_size=32)
    >>> p.name
    's.tif'
    """
    comp = _check_compression(compression, quality)
    arrays = []
    for i, a in enumerate(levels):
        a = np.asarray(a)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"levels[{i}] must be an H x W x 3 uint8 array, got {a.dtype} {a.shape}.")
        arrays.append(a)
    if not arrays:
        raise ValueError("levels must hold at least one array.")
    if not float(mpp) > 0:
        raise ValueError(f"mpp must be positive, got {mpp!r}.")
    t = int(tile_size)

    def source(level, tx, ty):
        a = arrays[level]
        tile = np.full((t, t, 3), 255, np.uint8)
        part = a[ty : ty + t, tx : tx + t]
        tile[: part.shape[0], : part.shape[1]] = part
        return tile

    dims = [(a.shape[1], a.shape[0]) for a in arrays]
    return _write_pages(path, dims, source, mpp=mpp, tile_size=t, compression=comp, quality=quality, progress=progress)


# ---------------------------------------------------------------------- procedural slide
def _blob(rng, cx, cy, radius, n_vertices=96, roughness=0.25):
    """Star-shaped polygon: radius modulated by a few low-frequency harmonics."""
    theta = np.linspace(0, 2 * np.pi, n_vertices, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 6):
        r += roughness / k * rng.uniform(-1, 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = radius * np.clip(r, 0.45, None)
    return np.stack([cx + r * np.cos(theta), cy + r * np.sin(theta)], axis=1)


def _texture(rng, period, base, nuclei_colour, density, nucleus_radius, contrast):
    """Seamless (wrap-around) H&E-like texture of shape (period, period, 3) uint8."""
    from scipy import ndimage as ndi

    p = period
    noise = ndi.gaussian_filter(rng.standard_normal((p, p)), 6, mode="wrap")
    noise /= noise.std() + 1e-9
    fibres = ndi.gaussian_filter(rng.standard_normal((p, p)), (1.5, 12), mode="wrap")
    fibres /= fibres.std() + 1e-9
    img = np.asarray(base, np.float32)[None, None, :] + (contrast * noise + 0.5 * contrast * fibres)[..., None] * np.float32([1.0, 1.4, 0.8])
    # Nuclei: impulses blurred with wrap-around and thresholded into round dark blobs.
    n = int(density * p * p)
    impulses = np.zeros((p, p), np.float32)
    impulses[rng.integers(0, p, n), rng.integers(0, p, n)] = 1.0
    blur = ndi.gaussian_filter(impulses, nucleus_radius, mode="wrap")
    peak = 1.0 / (2 * np.pi * nucleus_radius**2)
    nuc = np.clip((blur - 0.35 * peak) / (0.25 * peak), 0, 1)[..., None]
    img = img * (1 - nuc) + np.asarray(nuclei_colour, np.float32) * nuc
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _downsample2(a):
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    b = a[:h, :w].astype(np.float32).reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    return np.round(b).astype(np.uint8)


def _texture_pyramid(tex, n_levels, tile):
    """Per level: the texture tiled so that any tile-sized window starting in [0, period) is a slice."""
    out = []
    cur = tex
    for _ in range(n_levels):
        p = cur.shape[0]
        reps = -(-(p + tile) // p)
        out.append((p, np.tile(cur, (reps, reps, 1))))
        if p >= 2:
            cur = _downsample2(cur)
    return out


def write_synthetic_slide(
    path,
    size=(8192, 6144),
    mpp=0.25,
    lesions=3,
    seed=0,
    tile_size=256,
    levels=None,
    quality=85,
    *,
    compression="jpeg",
    tissue_fraction=0.35,
    progress=True,
    lesion_style="distinct",
    lesion_radius_um=None,
):
    """Write a synthetic H&E-like pyramidal slide with known lesion polygons.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.tif`` path (written to a temporary name, then renamed).
    size : (int, int)
        Level-0 ``(width, height)``; 100,000 x 100,000 is fine (bounded memory, streamed).
    mpp : float
        Microns per level-0 pixel, stored in the resolution tags.
    lesions : int or list of array-like (K, 2)
        Number of random lesions placed inside tissue, or explicit level-0 polygons.
    seed : int
        Everything (shapes, textures) is deterministic given ``seed``.
    tile_size : int
        TIFF tile size (multiple of 16).
    levels : int, optional
        Number of pyramid levels (each half the previous); default: halve until a level fits one tile.
    quality : int
        JPEG quality.
    compression : {"jpeg", "deflate", "zlib", "none"}
        ``"deflate"`` gives lossless tiles (pixel-exact tests).
    tissue_fraction : float
        Approximate fraction of the slide area covered by tissue.
    progress : bool
        Show a tqdm bar over tiles.
    lesion_style : {"distinct", "subtle"}, default "distinct"
        ``"distinct"``: lesions are darker, more purple and crowded with nuclei (easy to find);
        ``"subtle"``: lesions keep the normal tissue's colour, background texture and nuclear stain and
        differ only in nuclear density (1.8x) and nuclear size (+20 %), so a classifier has real work to do.
    lesion_radius_um : float, optional
        Mean radius of random lesions in microns (default: a fifth to a third of the tissue blob's radius,
        often below the 275 um isolated-tumour-cell limit of CAMELYON16); capped to 0.6 of the blob radius.

    Returns
    -------
    SyntheticSlide

    Examples
    --------
    >>> import tempfile, os
    >>> s = write_synthetic_slide(os.path.join(tempfile.mkdtemp(), "s.tif"), size=(1024, 768), lesions=1)
    >>> s.size, len(s.lesions), s.level_dimensions
    ((1024, 768), 1, [(1024, 768), (512, 384), (256, 192)])
    """
    comp = _check_compression(compression, quality)
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height), got {size!r}.") from None
    if w < 16 or h < 16:
        raise ValueError(f"size must be at least 16 x 16 pixels, got {size!r}.")
    if not float(mpp) > 0:
        raise ValueError(f"mpp must be positive, got {mpp!r}.")
    if not 0 < float(tissue_fraction) <= 1:
        raise ValueError(f"tissue_fraction must be in (0, 1], got {tissue_fraction!r}.")
    t = int(tile_size)
    rng = np.random.default_rng(seed)
    dims = _level_dims((w, h), levels, t)

    # Tissue: a few blobs on a coarse layout grid sized to cover roughly `tissue_fraction`.
    n_blobs = int(rng.integers(2, 5))
    cols = int(np.ceil(np.sqrt(n_blobs * w / h)))
    rows = int(np.ceil(n_blobs / cols))
    cell_w, cell_h = w / cols, h / rows
    radius = np.sqrt(tissue_fraction * w * h / (n_blobs * np.pi))
    radius = min(radius, 0.45 * min(cell_w, cell_h))
    cells = rng.permutation(rows * cols)[:n_blobs]
    tissue = []
    for c in cells:
        cy, cx = divmod(int(c), cols)
        jitter = 0.5 * (min(cell_w, cell_h) / 2 - radius)
        tissue.append(
            _blob(rng, (cx + 0.5) * cell_w + rng.uniform(-jitter, jitter), (cy + 0.5) * cell_h + rng.uniform(-jitter, jitter),
                  radius * rng.uniform(0.85, 1.0), n_vertices=128, roughness=0.3)
        )
    if lesion_style not in ("distinct", "subtle"):
        raise ValueError(f"lesion_style must be 'distinct' or 'subtle', got {lesion_style!r}.")
    if lesion_radius_um is not None and not float(lesion_radius_um) > 0:
        raise ValueError(f"lesion_radius_um must be positive, got {lesion_radius_um!r}.")
    if isinstance(lesions, (int, np.integer)):
        if lesions < 0:
            raise ValueError(f"lesions must be >= 0 or a list of polygons, got {lesions!r}.")
        lesion_polys = []
        for i in range(int(lesions)):
            blob = tissue[i % len(tissue)]
            centre = blob.mean(axis=0)
            r_t = np.min(np.hypot(*(blob - centre).T))
            lr = r_t * rng.uniform(0.18, 0.3)
            if lesion_radius_um is not None:
                lr = min(float(lesion_radius_um) / float(mpp) * rng.uniform(0.85, 1.15), 0.6 * r_t)
            ang = rng.uniform(0, 2 * np.pi)
            d = rng.uniform(0, 0.55) * r_t
            if lesion_radius_um is not None:
                d = rng.uniform(0, max(0.0, 0.9 * r_t - lr))
            lesion_polys.append(_blob(rng, centre[0] + d * np.cos(ang), centre[1] + d * np.sin(ang), lr, 64, 0.35))
    else:
        lesion_polys = []
        for i, poly in enumerate(lesions):
            poly = np.asarray(poly, np.float64)
            if poly.ndim != 2 or poly.shape[1] != 2 or poly.shape[0] < 3:
                raise ValueError(f"lesions[{i}] must be a (K, 2) polygon with K >= 3, got shape {poly.shape}.")
            lesion_polys.append(poly)

    tex_rng = np.random.default_rng([int(seed), 1])
    normal = _texture(tex_rng, _PERIOD, (232, 170, 205), (95, 45, 140), 0.0009, 2.2, 9.0)
    if lesion_style == "distinct":
        tumour = _texture(tex_rng, _PERIOD, (165, 95, 165), (55, 20, 105), 0.0045, 2.6, 12.0)
    else:
        tumour = _texture(tex_rng, _PERIOD, (232, 170, 205), (95, 45, 140), 0.0016, 2.65, 9.0)
    pyr_normal = _texture_pyramid(normal, len(dims), t)
    pyr_tumour = _texture_pyramid(tumour, len(dims), t)
    background = np.full((t, t, 3), _BACKGROUND, np.uint8).view(_ConstTile)
    bboxes_t = [(p.min(0), p.max(0)) for p in tissue]
    bboxes_l = [(p.min(0), p.max(0)) for p in lesion_polys]

    from PIL import Image, ImageDraw

    def raster(polys, boxes, level, tx, ty):
        dsx, dsy = w / dims[level][0], h / dims[level][1]
        x0, y0 = tx * dsx, ty * dsy
        x1, y1 = (tx + t) * dsx, (ty + t) * dsy
        mask = None
        for poly, (lo, hi) in zip(polys, boxes):
            if hi[0] < x0 or lo[0] > x1 or hi[1] < y0 or lo[1] > y1:
                continue
            if mask is None:
                mask = Image.new("L", (t, t), 0)
                draw = ImageDraw.Draw(mask)
            # Pixel (i, j) of this level covers level-0 [(tx+i)*ds, ...); sample at its centre.
            pts = np.stack([(poly[:, 0]) / dsx - tx - 0.5, (poly[:, 1]) / dsy - ty - 0.5], axis=1)
            draw.polygon([tuple(p) for p in pts], fill=1)
        return None if mask is None else np.asarray(mask, bool)

    def window(pyr, level, tx, ty):
        p, big = pyr[level]
        ox, oy = tx % p, ty % p
        return big[oy : oy + t, ox : ox + t]

    def source(level, tx, ty):
        m_t = raster(tissue, bboxes_t, level, tx, ty)
        m_l = raster(lesion_polys, bboxes_l, level, tx, ty)
        if (m_t is None or not m_t.any()) and (m_l is None or not m_l.any()):
            return background
        tile = np.broadcast_to(np.uint8(_BACKGROUND), (t, t, 3))
        if m_t is not None:
            tile = np.where(m_t[..., None], window(pyr_normal, level, tx, ty), tile)
        if m_l is not None:
            tile = np.where(m_l[..., None], window(pyr_tumour, level, tx, ty), tile)
        return tile

    out = _write_pages(path, dims, source, mpp=mpp, tile_size=t, compression=comp, quality=quality, progress=progress)
    return SyntheticSlide(path=out, lesions=lesion_polys, mpp=float(mpp), size=(w, h), tissue=tissue, level_dimensions=dims)
