"""HDF5 feature store: one file per slide with patch coordinates, features and metadata.

A store is what :func:`medfeat.pipelines.extract_slide_features` writes (through
:class:`FeatureStoreWriter`) and :func:`load_slide_features` reads:

- dataset ``coords``: ``(N, 2)`` int64, level-0 top-left ``(x, y)`` of every patch (the PatchGrid);
- dataset ``features``: ``(N, D)`` float32, one row per patch, in grid order;
- dataset ``feature_names``: ``(D,)`` UTF-8 strings (a dataset, not an attribute, because attributes are
  limited to 64 KiB and deep layers have thousands of names);
- optional dataset ``labels``: ``(N,)`` int8 patch labels (from annotations);
- attributes: slide path, level-0 size and mpp, target mpp, patch size at target and level 0, stride,
  scales, the transformer's class and parameters (backbone, layers ...), medfeat version, and the grid's
  own metadata (``grid_attrs``, JSON) so :meth:`medfeat.slides.PatchGrid.from_attrs` rebuilds the grid.

Robustness: the file is written as ``<name>.h5.partial`` and renamed when complete. Rows are written in
chunks; after each chunk the number of finished rows (``n_done``) and a SHA-256 of the rows so far are
stored and the file flushed, so an interrupted extraction resumes from the last finished chunk, only when
the partial file was made with the same grid, configuration, slide (content fingerprint) and label source
(annotation content) and its rows still hash to the recorded digest; otherwise it starts over. Before the
rename every row is read back and checked against the digest of the rows computed: an HDF5 write error
(disk full) or a silently lost chunk aborts the slide, removes the partial file and raises
:class:`StoreWriteError`, so no final-named store is ever incomplete. One process at a time writes a store:
:func:`store_lock` takes an exclusive lock (``<name>.h5.lock``, released by the OS if the process dies).
A finished store is skipped on re-runs unless ``overwrite=True``; a finished store of another slide with
the same file name is refused (:class:`StoreCollisionError`), not skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from .config import canonical_json, estimator_config, feature_names, param_to_json, strip_runtime
from .labels import slide_stem

__all__ = [
    "PARTIAL_SUFFIX",
    "STORE_FORMAT",
    "FeatureStoreWriter",
    "StoreBusyError",
    "StoreCollisionError",
    "StoreWriteError",
    "load_slide_features",
    "resolve_store_path",
    "slide_fingerprint",
    "store_config",
    "store_lock",
    "store_path_for",
]

logger = logging.getLogger(__name__)

STORE_FORMAT = "medfeat-feature-store/1"
PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"


class StoreWriteError(OSError):
    """Writing a feature store failed (disk full, I/O error): nothing was published under its name."""


class StoreBusyError(TimeoutError):
    """Another process holds the lock of the feature store (it is being written)."""


class StoreCollisionError(ValueError):
    """The finished store at the target path belongs to another slide with the same file name."""


# --------------------------------------------------------------------------------------------------------
# slide identity and locking
# --------------------------------------------------------------------------------------------------------

_FP_BLOCK = 1 << 20
_FP_SAMPLES = 8


def slide_fingerprint(slide):
    """Content fingerprint of a slide: SHA-256 of its size, first and last MiB and 8 blocks in between.

    Cheap (about 2.5 MiB read whatever the slide's size) and covers the header, the tile tables and a
    spread of tiles, so a different slide with the same file name, or a slide replaced at the same path,
    gets another fingerprint. In-memory slides hash their pixels.

    Parameters
    ----------
    slide : str, path, SlideReader or ndarray

    Returns
    -------
    str
        ``"sha256:<hex>"``.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.bin"); _ = open(p, "wb").write(b"slide")
    >>> slide_fingerprint(p)[:7]
    'sha256:'
    """
    h = hashlib.sha256()
    if isinstance(slide, np.ndarray) or (getattr(slide, "path", "x") is None and hasattr(slide, "_backend")):
        image = slide if isinstance(slide, np.ndarray) else slide._backend.image
        h.update(repr((image.shape, str(image.dtype))).encode())
        h.update(np.ascontiguousarray(image).data)
        return "sha256:" + h.hexdigest()
    path = os.fspath(getattr(slide, "path", slide))
    size = os.path.getsize(path)
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        if size <= (_FP_SAMPLES + 2) * _FP_BLOCK:
            h.update(fh.read())
        else:
            for start in np.linspace(0, size - _FP_BLOCK, _FP_SAMPLES + 2).astype(np.int64):
                fh.seek(int(start))
                h.update(fh.read(_FP_BLOCK))
    return "sha256:" + h.hexdigest()


@contextlib.contextmanager
def store_lock(out, timeout=None):
    """Hold the exclusive lock of the store ``out`` (``<out>.lock``, a ``filelock.FileLock``).

    Two runs writing the same store would otherwise delete each other's partial file and rename the
    same half-written file. The lock is an OS file lock: a killed process releases it.

    Parameters
    ----------
    out : path
        The final store path.
    timeout : float, optional
        Seconds to wait for another process's lock; None waits as long as it takes, 0 does not wait.

    Raises
    ------
    StoreBusyError
        When the lock was not obtained within ``timeout``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "s.h5"
    >>> with store_lock(out):
    ...     pass
    """
    from filelock import FileLock, Timeout

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out) + LOCK_SUFFIX)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if timeout is not None and timeout <= 0:
            raise StoreBusyError(
                f"{out} is being written by another process (lock {lock.lock_file}); skipped. Re-run when it "
                "has finished (the finished store is then skipped)."
            ) from None
        logger.warning("%s is being written by another process; waiting for it to finish", out)
        try:
            lock.acquire(timeout=-1 if timeout is None else timeout)
        except Timeout:
            raise StoreBusyError(
                f"{out} is still being written by another process after {timeout:g} s (lock {lock.lock_file}); "
                "skipped."
            ) from None
    try:
        yield lock
    finally:
        lock.release()


def recorded_fingerprint(path):
    """The slide fingerprint and slide path a finished store records (``(None, None)`` when absent)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            fp = f.attrs.get("slide_fingerprint")
            return (str(fp) if fp is not None else None), str(f.attrs.get("slide_path", ""))
    except OSError:
        return None, None


# --------------------------------------------------------------------------------------------------------
# paths
# --------------------------------------------------------------------------------------------------------


def store_path_for(slide, out_dir):
    """Path of the feature store of ``slide`` inside ``out_dir``: ``<out_dir>/<slide file stem>.h5``.

    Examples
    --------
    >>> store_path_for("/data/tumor_001.tif", "/tmp/features").name
    'tumor_001.h5'
    """
    name = slide_stem(slide)
    if name is None:
        raise ValueError("slide has no file path (in-memory slide); pass out= as a file path ending in .h5.")
    return Path(out_dir) / f"{name}.h5"


def resolve_store_path(slide, out):
    """``out`` when it names an ``.h5``/``.hdf5`` file, else the slide's store inside the directory ``out``.

    Examples
    --------
    >>> resolve_store_path("/data/t.svs", "/tmp/f").name, resolve_store_path("/data/t.svs", "/tmp/x.h5").name
    ('t.h5', 'x.h5')
    """
    if out is None:
        raise ValueError("out must be given: a directory or a file path ending in .h5.")
    out = Path(out)
    if out.suffix.lower() in (".h5", ".hdf5"):
        return out
    return store_path_for(slide, out)


# --------------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------------


def store_config(grid, transformer, scales, annotations_id, slide_fingerprint=None):
    """What must match for a partial store to be resumed: grid, scales, transformer (less runtime
    parameters such as ``batch_size``), the annotations (source and content hash) and the slide
    (content fingerprint)."""
    return {
        "format": STORE_FORMAT,
        "grid_attrs": grid.attrs(),
        "n_patches": int(len(grid)),
        "scales": [float(s) for s in scales],
        "transformer": strip_runtime(estimator_config(transformer)),
        "annotations": annotations_id,
        "slide_fingerprint": slide_fingerprint,
    }


_HASH_ROWS = 4096


def _hash_rows(dataset, n, hasher):
    """Feed rows ``[0, n)`` of ``dataset`` (float32, C order) to ``hasher``, in blocks."""
    for start in range(0, n, _HASH_ROWS):
        block = dataset[start:min(n, start + _HASH_ROWS)]
        hasher.update(np.ascontiguousarray(block, dtype=np.float32).data)
    return hasher


def _resume_rows(partial, config, coords):
    """``(n_done, hasher)``: rows already finished in ``partial`` if it matches ``config`` and ``coords``
    and its rows still hash to the digest recorded with ``n_done``, else ``(0, fresh hasher)``."""
    import h5py

    fresh = (0, hashlib.sha256())
    try:
        with h5py.File(partial, "r") as f:
            if f.attrs.get("config") != canonical_json(config):
                logger.info("partial store %s was made with another configuration, slide or annotations; "
                            "starting over", partial)
                return fresh
            if "coords" not in f or not np.array_equal(f["coords"][()], coords):
                return fresh
            n_done = int(f.attrs.get("n_done", 0))
            if n_done == 0:
                return fresh
            if "features" not in f or f["features"].shape[0] < n_done:
                return fresh
            hasher = _hash_rows(f["features"], n_done, hashlib.sha256())
            if f.attrs.get("rows_sha256") != hasher.hexdigest():
                logger.info("partial store %s: its first %d rows do not match their recorded digest; starting "
                            "over", partial, n_done)
                return fresh
            return n_done, hasher
    except (OSError, KeyError, ValueError, RuntimeError):
        # A partial file left by a hard kill may be unreadable: start over rather than fail. No other
        # process can be writing it: the caller holds the store's lock.
        logger.info("partial store %s is unreadable; starting over", partial)
        return fresh


def _header_attrs(grid, *, slide_mpp, spec, transformer, config):
    # slide_fingerprint and annotations are recorded as attributes too (from the config)
    from medfeat import __version__

    params = transformer.get_params(deep=False)
    inner = params.get("transformer", transformer) if "transformer" in params else transformer
    inner_params = inner.get_params(deep=False) if hasattr(inner, "get_params") else {}
    return {
        "format": STORE_FORMAT,
        "config": canonical_json(config),
        "grid_attrs": json.dumps(grid.attrs(), default=str),
        "slide_path": grid.slide_path or "",
        "slide_dimensions": np.asarray(grid.slide_dimensions, dtype=np.int64),
        "slide_mpp": np.asarray(slide_mpp, dtype=np.float64),
        "mpp": float(grid.mpp),
        "size": int(grid.size),
        "size_level0": float(grid.size_level0),
        "stride": int(grid.stride),
        "scales": np.asarray(spec.scales, dtype=np.float64),
        "tissue": spec.tissue_name,
        "min_tissue": float(spec.min_tissue),
        "grid_spec": spec.to_json(),
        "transformer": canonical_json(estimator_config(transformer)),
        "transformer_class": config["transformer"]["__class__"],
        "backbone": str(inner_params.get("backbone", "")),
        "layers": json.dumps(param_to_json(inner_params.get("layers"))),
        "medfeat_version": __version__,
        "n_patches": len(grid),
        "n_done": 0,
        "rows_sha256": hashlib.sha256().hexdigest(),
        "slide_fingerprint": config.get("slide_fingerprint") or "",
        "annotations": json.dumps(config.get("annotations")),
    }


class FeatureStoreWriter:
    """Write one feature store: header, feature rows in checkpointed chunks, then the final rename.

    Used as a context manager by :func:`medfeat.pipelines.extract_slide_features`::

        with FeatureStoreWriter(out, grid, transformer, spec=spec, slide_mpp=reader.mpp) as store:
            for feats in ...:            # rows in grid order, from store.n_done on
                store.append(feats)
            store.finish()               # <out>.partial -> <out>

    Entering opens ``<out>.partial``: when it holds the same configuration, grid, slide and annotations and
    its rows match their recorded digest, writing resumes at :attr:`n_done`; otherwise it starts over and
    writes the header (datasets ``coords``, ``labels``, ``tissue`` and the attributes listed in the module
    docstring). Leaving without :meth:`finish` after an interruption keeps the partial file for the next
    run; a write error removes it and raises :class:`StoreWriteError`. The caller holds :func:`store_lock`.

    Parameters
    ----------
    out : path
        Final ``.h5`` path.
    grid : medfeat.slides.PatchGrid
    transformer : transformer
        Fitted or not; recorded as its configuration and used for feature names.
    spec : medfeat.slides.GridSpec
        The settings the grid was laid with, recorded (``grid_spec``; ``scales``, ``tissue`` and
        ``min_tissue`` also as attributes of their own, as stores always had them).
    slide_mpp : (float, float)
        The slide's level-0 resolution, recorded.
    labels : ndarray of int8 or None
    annotations_id : dict or None
        Source and content hash of the annotations (:func:`medfeat.pipelines.labels.annotations_id`),
        recorded in the configuration: a store labelled from other annotations is not resumed.
    chunk_rows : int
        Rows between checkpoints.
    overwrite : bool
        Ignore an existing partial file.
    slide_fingerprint : str, optional
        :func:`slide_fingerprint` of the slide, recorded in the configuration: a partial store of another
        slide (same name, or replaced at the same path) is not resumed.
    """

    def __init__(self, out, grid, transformer, *, spec, slide_mpp, labels=None, annotations_id=None,
                 chunk_rows=1024, overwrite=False, slide_fingerprint=None):
        self.out = Path(out)
        self.partial = self.out.with_name(self.out.name + PARTIAL_SUFFIX)
        self.grid = grid
        self.transformer = transformer
        self.spec = spec
        self.slide_mpp = slide_mpp
        self.labels = labels
        self.chunk_rows = int(chunk_rows)
        self.overwrite = overwrite
        self.config = store_config(grid, transformer, spec.scales, annotations_id, slide_fingerprint)
        self.n = len(grid)
        self.n_done = 0
        self.row = 0
        self._file = None
        self._features = None
        self._hasher = hashlib.sha256()
        self._chunk_start = 0

    def _failed(self, exc, what):
        """Abort after an HDF5/OS error: close, remove the partial file (its content is suspect and may fill
        the disk) and raise StoreWriteError naming the store and the cause."""
        f, self._file, self._features = self._file, None, None
        if f is not None:
            with contextlib.suppress(Exception):
                f.close()
        with contextlib.suppress(OSError):
            self.partial.unlink()
        text = str(exc).strip()
        cause = (text.splitlines() or [type(exc).__name__])[0].split(" (file write failed")[0]
        # HDF5 puts the OS error in the middle of a multi-line message: "... error message = 'No space ...'"
        os_error = re.search(r"error message = '([^']+)'", text)
        if os_error:
            cause = f"{cause}: {os_error.group(1)}"
        raise StoreWriteError(f"writing the feature store {self.out} failed while {what}: {cause}. Nothing was "
                              "written under that name; free disk space (or fix the error) and re-run.") from exc

    def __enter__(self):
        import h5py

        coords = np.ascontiguousarray(self.grid.coords, dtype=np.int64)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.partial.exists():
            self.n_done, self._hasher = (0, hashlib.sha256()) if self.overwrite else _resume_rows(
                self.partial, self.config, coords)
            if self.n_done == 0:
                self.partial.unlink()
        try:
            # a chunk cache large enough to keep the partly written HDF5 chunk between batches
            self._file = f = h5py.File(self.partial, "a", rdcc_nbytes=32 * 2**20)
            if self.n_done == 0:
                self._write_header(f, coords)
            else:
                self._features = f["features"]
                logger.info("resuming %s from row %d of %d", self.out, self.n_done, self.n)
        except (OSError, RuntimeError) as exc:
            self._failed(exc, "writing its header")
        except BaseException:
            if self._file is not None:
                self._file.close()
                self._file = None
            raise
        self.row = self._chunk_start = self.n_done
        return self

    def _write_header(self, f, coords):
        for key in list(f.keys()):
            del f[key]
        f.create_dataset("coords", data=coords)
        if self.labels is not None:
            f.create_dataset("labels", data=self.labels)
        if self.grid.tissue is not None:
            f.create_dataset("tissue", data=np.asarray(self.grid.tissue, dtype=np.float32))
        attrs = _header_attrs(self.grid, slide_mpp=self.slide_mpp, spec=self.spec, transformer=self.transformer,
                              config=self.config)
        for key, value in attrs.items():
            f.attrs[key] = value
        f.flush()

    def append(self, feats):
        """Write the next rows (``(n_rows, D)`` float32, in grid order); checkpoint after each chunk."""
        import h5py

        feats = np.ascontiguousarray(feats, dtype=np.float32)
        f = self._file
        if self._features is not None and self._features.shape[1] != feats.shape[1]:
            raise ValueError(
                f"features transformer returned {feats.shape[1]} features; the store holds "
                f"{self._features.shape[1]}."
            )
        try:
            if self._features is None:
                n, d = self.n, feats.shape[1]
                # ~1 MiB HDF5 chunks of whole rows; one handle kept open, so a failed write surfaces in
                # flush() instead of being lost when a temporary dataset object is freed
                # All of its space is allocated (and zero-filled) now: a disk too small fails here, cleanly,
                # instead of in a later chunk write that leaves HDF5 unable to close the file.
                dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
                dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
                self._features = f.create_dataset("features", shape=(n, d), dtype=np.float32, dcpl=dcpl,
                                                  chunks=(min(n, max(1, 2**18 // max(1, d))), d))
                names = feature_names(self.transformer, d)
                f.create_dataset("feature_names", data=np.asarray(names, dtype=object), dtype=h5py.string_dtype())
            self._features[self.row:self.row + len(feats)] = feats
            self._hasher.update(feats.data)
            self.row += len(feats)
            if self.row - self._chunk_start >= self.chunk_rows or self.row == self.n:
                f.flush()  # the rows first, then the checkpoint that vouches for them
                f.attrs["n_done"] = self.row
                f.attrs["rows_sha256"] = self._hasher.hexdigest()
                f.flush()
                self._chunk_start = self.row
        except (OSError, RuntimeError, ValueError) as exc:  # h5py reports some write failures as ValueError
            self._failed(exc, f"writing rows {self.row}-{self.row + len(feats)}")

    def finish(self):
        """Mark the store complete, verify every row on disk against the digest of the rows computed, and
        give it its final name (only then)."""
        import h5py

        if self.row != self.n:
            raise RuntimeError(f"patch reader stopped after {self.row} of {self.n} patches of {self.grid.slide_path}.")
        expected = self._hasher.hexdigest()
        try:
            self._file.attrs["complete"] = True
            self._file.flush()
            self._features = None
            f, self._file = self._file, None
            f.close()
            with h5py.File(self.partial, "r") as check:
                got = _hash_rows(check["features"], self.n, hashlib.sha256()).hexdigest()
                complete = bool(check.attrs.get("complete", False)) and int(check.attrs.get("n_done", -1)) == self.n
            if got != expected or not complete:
                raise OSError(f"the {self.n} rows read back from {self.partial} differ from the rows computed "
                              "(a write was lost: disk full?)")
            with open(self.partial, "rb") as fh:
                os.fsync(fh.fileno())
        except (OSError, RuntimeError) as exc:
            self._failed(exc, "finishing it")
        os.replace(self.partial, self.out)
        return self.out

    def __exit__(self, *exc):
        self._features = None
        if self._file is not None:
            f, self._file = self._file, None
            try:
                f.close()
            except (OSError, RuntimeError):
                # the flush on close failed: the partial file's last chunk is suspect; its digest decides
                # on the next run whether it is resumed
                logger.warning("closing the partial store %s failed", self.partial)
        return False


# --------------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------------


def load_slide_features(path):
    """Read a feature store written by :func:`medfeat.pipelines.extract_slide_features`.

    Parameters
    ----------
    path : str or path
        The ``.h5`` store.

    Returns
    -------
    grid : medfeat.slides.PatchGrid
        The patch grid (level-0 coordinates and metadata).
    features : ndarray of float32, shape (N, D)
    labels : ndarray of int8, shape (N,), or None
    attrs : dict
        Store attributes (slide path, mpp, sizes, transformer configuration, ``feature_names``, and
        ``grid_spec``: the :class:`~medfeat.slides.GridSpec` as a dict, also for older stores ...).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from medfeat.slides import write_synthetic_slide
    >>> from medfeat.pipelines import extract_slide_features
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> s = write_synthetic_slide(d / "s.tif", size=(1024, 1024), mpp=0.5, seed=0)
    >>> p = extract_slide_features(s.path, "handcrafted", mpp=1.0, size=64, out=d, progress=False)
    >>> grid, X, labels, attrs = load_slide_features(p)
    >>> attrs["mpp"], X.dtype.name, labels is None
    (1.0, 'float32', True)
    """
    import h5py

    from medfeat.slides import GridSpec, PatchGrid

    path = Path(path)
    if not path.exists():
        partial = path.with_name(path.name + PARTIAL_SUFFIX)
        hint = f" (an unfinished extraction is at {partial}; re-run it to resume)" if partial.exists() else ""
        raise FileNotFoundError(f"feature store not found: {path}{hint}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path} is not a readable HDF5 feature store ({exc}).") from exc
    with f:
        if f.attrs.get("format") != STORE_FORMAT or "coords" not in f or "features" not in f:
            raise ValueError(f"{path} is not a medfeat feature store (expected format {STORE_FORMAT!r}).")
        coords = f["coords"][()]
        features = f["features"][()]
        labels = f["labels"][()] if "labels" in f else None
        tissue = f["tissue"][()] if "tissue" in f else None
        attrs = {}
        for key, value in f.attrs.items():
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, (np.integer, np.floating, np.bool_)):
                value = value.item()
            attrs[key] = value
        for key in ("config", "grid_attrs", "transformer", "layers", "grid_spec", "annotations"):
            if key in attrs and isinstance(attrs[key], str):
                attrs[key] = json.loads(attrs[key])
        attrs["feature_names"] = [n.decode() if isinstance(n, bytes) else str(n) for n in f["feature_names"][()]]
    grid = PatchGrid.from_attrs(coords, attrs["grid_attrs"], tissue=tissue)
    # stores written before the spec was recorded get it from their separate attributes
    attrs["grid_spec"] = GridSpec.from_store_attrs(attrs).to_dict()
    attrs["path"] = str(path)
    return grid, features, labels, attrs
