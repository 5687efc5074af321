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
chunks; after each chunk the number of finished rows (``n_done``) is stored and the file flushed, so an
interrupted extraction resumes from the last finished chunk (after checking that the partial file was made
with the same grid and configuration, else it starts over). A finished store is skipped on re-runs unless
``overwrite=True``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from .config import canonical_json, estimator_config, feature_names, param_to_json, strip_runtime
from .labels import slide_stem

__all__ = [
    "PARTIAL_SUFFIX",
    "STORE_FORMAT",
    "FeatureStoreWriter",
    "load_slide_features",
    "resolve_store_path",
    "store_config",
    "store_path_for",
]

logger = logging.getLogger(__name__)

STORE_FORMAT = "medfeat-feature-store/1"
PARTIAL_SUFFIX = ".partial"


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


def store_config(grid, transformer, scales, annotations_id):
    """What must match for a partial store to be resumed: grid, scales, transformer (less runtime
    parameters such as ``batch_size``) and annotations."""
    return {
        "format": STORE_FORMAT,
        "grid_attrs": grid.attrs(),
        "n_patches": int(len(grid)),
        "scales": [float(s) for s in scales],
        "transformer": strip_runtime(estimator_config(transformer)),
        "annotations": annotations_id,
    }


def _resume_rows(partial, config, coords):
    """Rows already finished in ``partial`` if it matches ``config`` and ``coords``, else 0."""
    import h5py

    try:
        with h5py.File(partial, "r") as f:
            if f.attrs.get("config") != canonical_json(config):
                logger.info("partial store %s was made with another configuration; starting over", partial)
                return 0
            if "coords" not in f or not np.array_equal(f["coords"][()], coords):
                return 0
            n_done = int(f.attrs.get("n_done", 0))
            if n_done and "features" not in f:
                return 0
            return n_done
    except (OSError, KeyError, ValueError):
        # A partial file left by a hard kill may be unreadable: start over rather than fail.
        logger.info("partial store %s is unreadable; starting over", partial)
        return 0


def _header_attrs(grid, *, slide_mpp, spec, transformer, config):
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
    }


class FeatureStoreWriter:
    """Write one feature store: header, feature rows in checkpointed chunks, then the final rename.

    Used as a context manager by :func:`medfeat.pipelines.extract_slide_features`::

        with FeatureStoreWriter(out, grid, transformer, spec=spec, slide_mpp=reader.mpp) as store:
            for feats in ...:            # rows in grid order, from store.n_done on
                store.append(feats)
            store.finish()               # <out>.partial -> <out>

    Entering opens ``<out>.partial``: when it holds the same configuration and grid, writing resumes at
    :attr:`n_done`; otherwise it starts over and writes the header (datasets ``coords``, ``labels``,
    ``tissue`` and the attributes listed in the module docstring). Leaving without :meth:`finish`
    (an error) keeps the partial file for the next run.

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
    annotations_id : str or None
        Recorded in the configuration (a store labelled from other annotations is not resumed).
    chunk_rows : int
        Rows between checkpoints.
    overwrite : bool
        Ignore an existing partial file.
    """

    def __init__(self, out, grid, transformer, *, spec, slide_mpp, labels=None, annotations_id=None,
                 chunk_rows=1024, overwrite=False):
        self.out = Path(out)
        self.partial = self.out.with_name(self.out.name + PARTIAL_SUFFIX)
        self.grid = grid
        self.transformer = transformer
        self.spec = spec
        self.slide_mpp = slide_mpp
        self.labels = labels
        self.chunk_rows = int(chunk_rows)
        self.overwrite = overwrite
        self.config = store_config(grid, transformer, spec.scales, annotations_id)
        self.n = len(grid)
        self.n_done = 0
        self.row = 0
        self._file = None
        self._chunk_start = 0

    def __enter__(self):
        import h5py

        coords = np.ascontiguousarray(self.grid.coords, dtype=np.int64)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.partial.exists():
            self.n_done = 0 if self.overwrite else _resume_rows(self.partial, self.config, coords)
            if self.n_done == 0:
                self.partial.unlink()
        # a chunk cache large enough to keep the partly written HDF5 chunk between batches
        self._file = f = h5py.File(self.partial, "a", rdcc_nbytes=32 * 2**20)
        try:
            if self.n_done == 0:
                self._write_header(f, coords)
            else:
                logger.info("resuming %s from row %d of %d", self.out, self.n_done, self.n)
        except BaseException:
            f.close()
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

        f = self._file
        if "features" not in f:
            n, d = self.n, feats.shape[1]
            # ~1 MiB HDF5 chunks of whole rows
            f.create_dataset("features", shape=(n, d), dtype=np.float32, chunks=(min(n, max(1, 2**18 // max(1, d))), d))
            names = feature_names(self.transformer, d)
            f.create_dataset("feature_names", data=np.asarray(names, dtype=object), dtype=h5py.string_dtype())
        elif f["features"].shape[1] != feats.shape[1]:
            raise ValueError(
                f"features transformer returned {feats.shape[1]} features; the store holds "
                f"{f['features'].shape[1]}."
            )
        f["features"][self.row:self.row + len(feats)] = feats
        self.row += len(feats)
        if self.row - self._chunk_start >= self.chunk_rows or self.row == self.n:
            f.attrs["n_done"] = self.row
            f.flush()
            self._chunk_start = self.row

    def finish(self):
        """Mark the store complete, close it and give it its final name."""
        if self.row != self.n:
            raise RuntimeError(f"patch reader stopped after {self.row} of {self.n} patches of {self.grid.slide_path}.")
        self._file.attrs["complete"] = True
        self._file.close()
        self._file = None
        os.replace(self.partial, self.out)
        return self.out

    def __exit__(self, *exc):
        if self._file is not None:
            self._file.close()
            self._file = None
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
        for key in ("config", "grid_attrs", "transformer", "layers", "grid_spec"):
            if key in attrs and isinstance(attrs[key], str):
                attrs[key] = json.loads(attrs[key])
        attrs["feature_names"] = [n.decode() if isinstance(n, bytes) else str(n) for n in f["feature_names"][()]]
    grid = PatchGrid.from_attrs(coords, attrs["grid_attrs"], tissue=tissue)
    # stores written before the spec was recorded get it from their separate attributes
    attrs["grid_spec"] = GridSpec.from_store_attrs(attrs).to_dict()
    attrs["path"] = str(path)
    return grid, features, labels, attrs
