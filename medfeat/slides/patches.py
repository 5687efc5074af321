"""Reading the patches of a :class:`~medfeat.slides.PatchGrid`, at one or several scales.

Scale ``s`` of a patch keeps the patch centre and shows a field of view ``s`` times wider (``size * s``
pixels at the grid's mpp), resized to ``size`` pixels; i.e. it is read at ``mpp * s``. Areas outside the
slide are white.

:func:`iter_patch_batches` streams batches in grid order from parallel workers, each with its own
OpenSlide handle. Threads are the default: OpenSlide's tile decoding (ctypes calls) and Pillow's
resizing release the GIL. At most ``prefetch`` batches are in flight, so memory stays bounded however
large the slide.
"""

import collections
import os
import threading
from dataclasses import dataclass

import numpy as np

from .spec import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS, check_batch_size

__all__ = ["PatchBatch", "auto_num_workers", "iter_patch_batches", "read_patches"]


def auto_num_workers(cpus=None):
    """Slide-reader threads for a machine: 1 up to 4 CPUs, then one per 4 CPUs, at most 8.

    Reading (tile decode, crop, resize) costs a few percent of a CNN forward pass per patch, so one reader
    thread keeps up and is fully overlapped with compute on a small machine, while every core stays
    with the network: a second reader on 2 cores only competes with it (on 2 cores, reading the 140
    CMU-1-Small-Region patches took 0.27 s against about 4.5 s of ResNet-50 forward passes, and medfeat
    end to end ran at 0.92-1.02x the forward-only ceiling: benchmarks/results/peers.md). Larger machines
    get more readers for cheap feature sets.

    Parameters
    ----------
    cpus : int, optional
        CPU count (default: the CPUs this process may run on).

    Returns
    -------
    int

    Examples
    --------
    >>> auto_num_workers(2), auto_num_workers(4), auto_num_workers(16), auto_num_workers(128)
    (1, 1, 4, 8)
    """
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if cpus <= 4 else min(8, cpus // 4)


@dataclass
class PatchBatch:
    """One batch from :func:`iter_patch_batches`.

    Attributes
    ----------
    images : ndarray of uint8
        ``(b, H, W, 3)``, or ``(b, S, H, W, 3)`` for several scales.
    coords : ndarray of int64 (b, 2)
        Level-0 top-left ``(x, y)`` of each patch.
    indices : ndarray of int64 (b,)
        Positions of the patches in the grid.
    """

    images: np.ndarray
    coords: np.ndarray
    indices: np.ndarray

    def __len__(self):
        return len(self.indices)


def _check_scales(scales):
    try:
        scales = tuple(float(s) for s in np.atleast_1d(scales))
    except (TypeError, ValueError):
        raise ValueError(f"scales must be a sequence of positive numbers, got {scales!r}.") from None
    if not scales or any(not s > 0 for s in scales):
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales!r}.")
    return scales


def _check_indices(grid, indices):
    if indices is None:
        return np.arange(len(grid), dtype=np.int64)
    idx = np.asarray(indices)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    idx = idx.astype(np.int64).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= len(grid)):
        raise IndexError(f"indices must lie in [0, {len(grid)}) for this grid.")
    return idx


def _check_match(reader, grid):
    if tuple(reader.dimensions) != tuple(grid.slide_dimensions):
        raise ValueError(
            f"the grid was made for a slide of level-0 size {grid.slide_dimensions} "
            f"({grid.slide_path!r}) but the reader holds {reader.path or '<array>'!r} of size {reader.dimensions}."
        )


def _read_indices(reader, grid, idx, scales):
    sx0, sy0 = grid.size_level0_xy
    size = grid.size
    out = np.empty((len(idx), len(scales), size, size, 3), np.uint8)
    for n, i in enumerate(idx):
        x, y = grid.coords[i]
        cx, cy = x + sx0 / 2.0, y + sy0 / 2.0
        for k, s in enumerate(scales):
            fx = grid.mpp * s / grid.slide_mpp[0]
            fy = grid.mpp * s / grid.slide_mpp[1]
            if s == 1.0:
                loc = (x, y)
            else:
                loc = (cx - sx0 * s / 2.0, cy - sy0 * s / 2.0)
            out[n, k] = reader.read_region_downsample(loc, (size, size), (fx, fy))
    return out


def read_patches(reader, grid, scales=(1,), indices=None):
    """Read grid patches into an array.

    Parameters
    ----------
    reader : SlideReader
        The slide the grid was made for.
    grid : PatchGrid
    scales : sequence of float
        Field-of-view multipliers; scale 1 is the patch itself.
    indices : array-like of int, optional
        Which patches (default all).

    Returns
    -------
    ndarray of uint8
        ``(N, size, size, 3)`` for one scale, ``(N, S, size, size, 3)`` for several.

    See Also
    --------
    iter_patch_batches : the same in batches, read by worker threads.
    PatchGrid : the coordinates.

    References
    ----------
    .. [1] Liu Y, Gadepalli K, Norouzi M, et al. Detecting cancer metastases on gigapixel pathology images.
       arXiv:1703.02442 (2017).

    Examples
    --------
    >>> import numpy as np
    >>> from medfeat.slides import SlideReader, PatchGrid
    >>> reader = SlideReader.open(np.full((64, 64, 3), 128, np.uint8), slide_mpp=0.5)
    >>> grid = PatchGrid.from_reader(reader, mpp=0.5, size=32, tissue=None)
    >>> read_patches(reader, grid, scales=(1, 2)).shape
    (4, 2, 32, 32, 3)
    """
    scales = _check_scales(scales)
    idx = _check_indices(grid, indices)
    _check_match(reader, grid)
    out = _read_indices(reader, grid, idx, scales)
    return out[:, 0] if len(scales) == 1 else out


# ---------------------------------------------------------------------- process workers
_PROC = {}


def _proc_init(source, slide_mpp, grid_coords, grid_attrs):
    from .grid import PatchGrid
    from .reader import SlideReader

    _PROC["reader"] = SlideReader.open(source, slide_mpp=slide_mpp)
    _PROC["grid"] = PatchGrid.from_attrs(grid_coords, grid_attrs)


def _proc_read(idx, scales):
    return _read_indices(_PROC["reader"], _PROC["grid"], idx, scales)


def iter_patch_batches(slide, grid, batch_size=DEFAULT_BATCH_SIZE, scales=(1,), num_workers=DEFAULT_NUM_WORKERS, backend="thread", progress=True,
                       *, prefetch=None):
    """Stream grid patches in batches, in grid order, from parallel readers.

    Parameters
    ----------
    slide : str, os.PathLike or SlideReader
        The slide of ``grid``. Each worker opens its own handle (a reader is re-opened by path).
    grid : PatchGrid
    batch_size : int
    scales : sequence of float
        As in :func:`read_patches`.
    num_workers : int or "auto"
        Parallel readers; 0 reads in the calling thread; ``"auto"`` (default) is
        :func:`auto_num_workers` (1 reader on up to 4 CPUs).
    backend : {"thread", "process"}
        Threads (default; decoding releases the GIL) or spawned processes.
    progress : bool
        tqdm bar over patches.
    prefetch : int, optional
        Batches in flight at most (default ``2 * num_workers``); bounds memory. Each batch is split
        between the workers, so they share every batch and batches come out in grid order.

    Yields
    ------
    PatchBatch

    Examples
    --------
    >>> import numpy as np
    >>> from medfeat.slides import SlideReader, PatchGrid
    >>> reader = SlideReader.open(np.full((64, 96, 3), 128, np.uint8), slide_mpp=0.5)
    >>> grid = PatchGrid.from_reader(reader, mpp=0.5, size=32, tissue=None)
    >>> [b.indices.tolist() for b in iter_patch_batches(reader, grid, batch_size=4, num_workers=2)]
    [[0, 1, 2, 3], [4, 5]]
    """
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from .._checks import progress_bar

    from .reader import SlideReader

    scales = _check_scales(scales)
    batch_size = check_batch_size(batch_size)
    if isinstance(num_workers, str) and num_workers == "auto":
        num_workers = auto_num_workers()
    if isinstance(num_workers, str) or int(num_workers) != num_workers or num_workers < 0:
        raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}.")
    if backend not in ("thread", "process"):
        raise ValueError(f"backend must be 'thread' or 'process', got {backend!r}.")
    batch_size, num_workers = int(batch_size), int(num_workers)
    prefetch = 2 * max(num_workers, 1) if prefetch is None else int(prefetch)
    if prefetch < 1:
        raise ValueError(f"prefetch must be >= 1, got {prefetch!r}.")

    if isinstance(slide, SlideReader):
        base = slide
    else:
        base = SlideReader.open(slide, slide_mpp=grid.slide_mpp)
    _check_match(base, grid)
    multi = len(scales) > 1
    n = len(grid)
    chunks = [np.arange(s, min(s + batch_size, n), dtype=np.int64) for s in range(0, n, batch_size)]
    bar = progress_bar(total=n, desc="reading patches", unit="patch", disable=not progress)

    def emit(idx, images):
        bar.update(len(idx))
        return PatchBatch(images=images if multi else images[:, 0], coords=grid.coords[idx], indices=idx)

    owned = base is not slide
    try:
        if num_workers == 0:
            for idx in chunks:
                yield emit(idx, _read_indices(base, grid, idx, scales))
            return

        if backend == "thread":
            local = threading.local()
            readers = []
            lock = threading.Lock()

            def work(idx):
                reader = getattr(local, "reader", None)
                if reader is None:
                    reader = local.reader = base.reopen()
                    with lock:
                        readers.append(reader)
                return _read_indices(reader, grid, idx, scales)

            executor = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="medfeat-slide")
            task, extra = work, ()
        else:
            import multiprocessing as mp

            # Workers re-open files by path; an in-memory array is sent to each worker once.
            source = base.path if base.path is not None else base._backend.image
            executor = ProcessPoolExecutor(
                max_workers=num_workers, mp_context=mp.get_context("spawn"), initializer=_proc_init,
                initargs=(source, grid.slide_mpp, grid.coords, grid.attrs()),
            )
            readers = []
            task, extra = _proc_read, (scales,)

        # Each batch is split into one part per worker, so all workers share every batch (balanced even
        # for short grids) and batches still come out whole and in order. At most `prefetch` batches
        # are in flight.
        def parts(idx):
            return [p for p in np.array_split(idx, min(num_workers, len(idx))) if len(p)]

        pending = collections.deque()
        it = iter(chunks)

        def submit_next():
            idx = next(it, None)
            if idx is not None:
                pending.append((idx, [executor.submit(task, p, *extra) for p in parts(idx)]))

        try:
            for _ in range(prefetch):
                submit_next()
            while pending:
                idx, futs = pending.popleft()
                results = [f.result() for f in futs]
                submit_next()
                yield emit(idx, results[0] if len(results) == 1 else np.concatenate(results))
        finally:
            for _, futs in pending:
                for fut in futs:
                    fut.cancel()
            executor.shutdown(wait=True, cancel_futures=True)
            for r in readers:
                r.close()
    finally:
        bar.close()
        if owned:
            base.close()
