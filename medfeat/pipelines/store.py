"""HDF5 feature store: one file per slide with patch coordinates, features and metadata.

A store is what :func:`extract_slide_features` writes and :func:`load_slide_features` reads:

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

import importlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "EmptyTissueError",
    "ExtractionResult",
    "estimator_config",
    "estimator_from_config",
    "extract_features",
    "extract_slide_features",
    "load_slide_features",
    "make_features",
    "store_path_for",
]

logger = logging.getLogger(__name__)

STORE_FORMAT = "medfeat-feature-store/1"
_PARTIAL_SUFFIX = ".partial"


class EmptyTissueError(ValueError):
    """Raised when a slide has no patch with enough tissue to extract features from."""


# --------------------------------------------------------------------------------------------------------
# feature transformers by name, and their JSON configuration (stored with the features, used to rebuild
# the same transformer at prediction time)
# --------------------------------------------------------------------------------------------------------


def make_features(features="deep", *, backbone=None, layers=None, scales=(1,), batch_size=None, input_size=None):
    """Build a feature transformer from a name.

    Parameters
    ----------
    features : {"deep", "handcrafted", "fusion", "lbp", "gist", "color", "glcm"} or transformer
        A preset of :func:`medfeat.pipelines.make_feature_transformer` (``"deep"``: DeepFeatures,
        EfficientNet-Lite0 offline weights by default; ``"handcrafted"``: LBP + GIST + colour + GLCM;
        ``"fusion"``: both). A transformer instance is returned as given (wrapped for several scales).
    backbone : str, optional
        Backbone name for the deep features (default: DeepFeatures' default).
    layers : str or list of str, optional
        Layer node names for the deep features (default: the backbone's pooled final features).
    scales : tuple of float
        Fields of view; with more than one the transformer is wrapped in
        :class:`medfeat.features.MultiScaleFeatures`.
    batch_size : int, optional
        Inference batch size for the deep features.
    input_size : None, "auto", int or (int, int), default None
        Size the deep features resize patches to. None (the slide-pipeline policy) feeds patches to
        the network at their own size: the grid's ``size`` at ``mpp`` already is the resolution asked
        for, so resizing would change it, and enlarging a 64 px patch to 224 px costs ~12x the
        compute for no new detail. ``"auto"`` is the backbone's training size (224 px for Lite0).

    Returns
    -------
    transformer
        An unfitted scikit-learn transformer taking NHWC uint8 batches.

    Examples
    --------
    >>> make_features("handcrafted").__class__.__name__
    'HandcraftedFeatures'
    """
    import medfeat.features as mf
    from medfeat.pipelines.patch import FEATURE_PRESETS, make_feature_transformer

    if isinstance(features, str):
        if features not in FEATURE_PRESETS:
            raise ValueError(f"features must be one of {list(FEATURE_PRESETS)} or a transformer, got {features!r}.")
        deep_kw = {}
        if backbone is not None:
            deep_kw["backbone"] = backbone
        if layers is not None:
            deep_kw["layers"] = layers
        if batch_size is not None:
            deep_kw["batch_size"] = int(batch_size)
        deep_kw["input_size"] = input_size
        if features == "deep":
            transformer = make_feature_transformer("deep", **deep_kw)
        elif features == "fusion":
            transformer = make_feature_transformer("fusion", deep=deep_kw)
        else:
            transformer = make_feature_transformer(features)
    elif hasattr(features, "transform"):
        transformer = features
    else:
        raise ValueError(f"features must be one of {list(FEATURE_PRESETS)} or a transformer, got {features!r}.")
    if len(tuple(scales)) > 1 and type(transformer).__name__ != "MultiScaleFeatures":
        transformer = mf.MultiScaleFeatures(transformer)
    return transformer


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) and hasattr(v[1], "get_params")
               for v in value) and value:
            # (name, estimator) lists of FeatureUnion / Pipeline
            return {"__steps__": [[n, estimator_config(e)] for n, e in value]}
        return {"__tuple__": [_jsonable(v) for v in value]} if isinstance(value, tuple) else [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "get_params"):
        return estimator_config(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return {"__repr__": repr(value)}


def _from_jsonable(value):
    if isinstance(value, list):
        return [_from_jsonable(v) for v in value]
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(_from_jsonable(v) for v in value["__tuple__"])
        if "__steps__" in value:
            return [(n, estimator_from_config(c)) for n, c in value["__steps__"]]
        if "__class__" in value:
            return estimator_from_config(value)
        if "__repr__" in value:
            raise ValueError(f"cannot rebuild a parameter stored only as its repr: {value['__repr__']}")
        return {k: _from_jsonable(v) for k, v in value.items()}
    return value


def estimator_config(estimator):
    """JSON-able description of an estimator: its class path and ``get_params(deep=False)``.

    Nested estimators (e.g. the transformer inside ``MultiScaleFeatures`` or the steps of a
    ``FeatureUnion``) are described recursively.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> estimator_config(StandardScaler())["__class__"]
    'sklearn.preprocessing._data.StandardScaler'
    """
    cls = type(estimator)
    params = estimator.get_params(deep=False)
    return {"__class__": f"{cls.__module__}.{cls.__qualname__}", "params": {k: _jsonable(v) for k, v in params.items()}}


_TRUSTED_PREFIXES = ("medfeat.", "sklearn.")


def estimator_from_config(config):
    """Rebuild an (unfitted) estimator from :func:`estimator_config`'s output.

    Only classes from ``medfeat`` and ``sklearn`` are rebuilt, so a store cannot make this import
    arbitrary modules.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> estimator_from_config(estimator_config(StandardScaler(with_mean=False)))
    StandardScaler(with_mean=False)
    """
    path = config["__class__"]
    if not path.startswith(_TRUSTED_PREFIXES):
        raise ValueError(f"refusing to rebuild estimator class {path!r}: only medfeat and sklearn classes are allowed.")
    module_name, _, qualname = path.rpartition(".")
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    params = {k: _from_jsonable(v) for k, v in config["params"].items()}
    return obj(**params)


def _feature_names(transformer, n_features):
    try:
        names = np.asarray(transformer.get_feature_names_out(), dtype=object)
        if len(names) == n_features:
            return [str(n) for n in names]
    except Exception:  # noqa: BLE001 - names are metadata; a transformer without them still works
        pass
    return [f"feature{i}" for i in range(n_features)]


def _is_fitted(estimator):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
        return True
    except NotFittedError:
        return False
    except TypeError:
        return True


# --------------------------------------------------------------------------------------------------------
# paths
# --------------------------------------------------------------------------------------------------------


def _slide_name(slide):
    path = getattr(slide, "path", None) if not isinstance(slide, (str, os.PathLike)) else slide
    if path is None:
        return None
    return Path(path).name.rsplit(".", 1)[0] if "." in Path(path).name else Path(path).name


def store_path_for(slide, out_dir):
    """Path of the feature store of ``slide`` inside ``out_dir``: ``<out_dir>/<slide file stem>.h5``.

    Examples
    --------
    >>> store_path_for("/data/tumor_001.tif", "/tmp/features").name
    'tumor_001.h5'
    """
    name = _slide_name(slide)
    if name is None:
        raise ValueError("slide has no file path (in-memory slide); pass out= as a file path ending in .h5.")
    return Path(out_dir) / f"{name}.h5"


def _resolve_out(slide, out):
    if out is None:
        raise ValueError("out must be given: a directory or a file path ending in .h5.")
    out = Path(out)
    if out.suffix.lower() in (".h5", ".hdf5"):
        return out
    return store_path_for(slide, out)


# --------------------------------------------------------------------------------------------------------
# extraction
# --------------------------------------------------------------------------------------------------------


def _open_reader(slide, slide_mpp):
    from medfeat.slides import SlideReader

    if isinstance(slide, SlideReader):
        return slide, False
    if isinstance(slide, (str, os.PathLike)) and not Path(slide).exists():
        raise FileNotFoundError(f"slide file not found: {os.fspath(slide)}")
    return SlideReader.open(slide, mpp=slide_mpp), True


# Parameters that change how features are computed, not their values: a resumed run may differ in them.
_RUNTIME_PARAMS = ("batch_size", "progress", "n_jobs")


def _strip_runtime(config):
    if isinstance(config, dict):
        return {k: _strip_runtime(v) for k, v in config.items() if k not in _RUNTIME_PARAMS}
    if isinstance(config, list):
        return [_strip_runtime(v) for v in config]
    return config


def _config_for(grid, transformer, scales, annotations_id):
    return {
        "format": STORE_FORMAT,
        "grid_attrs": grid.attrs(),
        "n_patches": int(len(grid)),
        "scales": [float(s) for s in scales],
        "transformer": _strip_runtime(estimator_config(transformer)),
        "annotations": annotations_id,
    }


def _canonical(obj):
    return json.dumps(obj, sort_keys=True, default=str)


def _try_resume(partial, config, coords):
    """Rows already finished in ``partial`` if it matches ``config`` and ``coords``, else 0."""
    import h5py

    try:
        with h5py.File(partial, "r") as f:
            if f.attrs.get("config") != _canonical(config):
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


def _label_patches(reader, grid, annotations):
    """Patch labels (0/1) from annotation polygons over the grid, or None."""
    if annotations is None:
        return None
    from medfeat import slides as ms

    if isinstance(annotations, (str, os.PathLike)):
        annotations = ms.read_annotations(annotations)
    annotations = list(annotations)
    return _labels_from_annotation_list(grid, annotations)


def _labels_from_annotation_list(grid, annotations, min_fraction=0.5):
    from medfeat import slides as ms

    w, h = (int(v) for v in grid.slide_dimensions)
    if not annotations:
        return np.zeros(len(grid), dtype=np.int8)
    # Rasterise at a resolution where one patch spans >= ~8 mask pixels, so min_fraction is meaningful.
    downsample = max(1.0, float(grid.size_level0) / 8.0)
    mask = ms.rasterize_annotations(annotations, (w, h), downsample=downsample)
    labels = ms.patch_labels(grid, mask, downsample, min_fraction=min_fraction)
    return np.asarray(labels).astype(np.int8)


def _annotations_id(annotations):
    if annotations is None:
        return None
    if isinstance(annotations, (str, os.PathLike)):
        return os.path.abspath(os.fspath(annotations))
    return f"{len(list(annotations))} polygons"


def extract_slide_features(
    slide,
    features="deep",
    *,
    mpp=0.5,
    size=224,
    stride=None,
    tissue="otsu",
    min_tissue=0.5,
    scales=(1,),
    out=None,
    batch_size=64,
    num_workers=2,
    chunk_size=1024,
    overwrite=False,
    progress=True,
    annotations=None,
    slide_mpp=None,
    backend="thread",
):
    """Extract patch features of one slide into an HDF5 feature store.

    Parameters
    ----------
    slide : str, path or SlideReader
        The whole-slide image (any format :class:`medfeat.slides.SlideReader` opens).
    features : transformer or {"deep", "handcrafted", "fusion"}
        A scikit-learn transformer on NHWC uint8 batches (see :func:`make_features`). An unfitted
        transformer is fitted on the first batch (feature extractors learn nothing from it).
    mpp : float
        Target resolution in microns per pixel.
    size : int
        Patch size in pixels at ``mpp``.
    stride : int, optional
        Grid step in pixels at ``mpp`` (default ``size``: non-overlapping).
    tissue : {"otsu", "gray"}, TissueMask or None
        Tissue detection for the grid (None keeps every patch).
    min_tissue : float
        Minimum tissue fraction for a patch to be kept.
    scales : tuple of float
        Fields of view (multiscale context, Liu et al.); ``(1,)`` for single scale.
    out : str or path
        Output file (``.h5``) or directory (the file is then ``<dir>/<slide stem>.h5``).
    batch_size : int
        Patches per batch read and transformed.
    num_workers : int
        Reader workers, overlapping slide I/O with compute.
    chunk_size : int
        Rows between checkpoints (rounded up to a multiple of ``batch_size``); an interrupted run resumes
        from the last finished chunk.
    overwrite : bool
        Recompute a finished store instead of skipping it.
    progress : bool
        Show a tqdm progress bar.
    annotations : str, path or list of Annotation, optional
        Annotation file (ASAP XML / GeoJSON) or polygons; stores 0/1 patch ``labels``.
    slide_mpp : float, optional
        The slide's mpp when the file does not record it.
    backend : {"thread", "process"}
        Reader worker backend.

    Returns
    -------
    pathlib.Path
        The finished store.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from medfeat.slides import write_synthetic_slide
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> s = write_synthetic_slide(d / "s.tif", size=(1024, 1024), mpp=0.5, seed=0)
    >>> p = extract_slide_features(s.path, "handcrafted", mpp=1.0, size=64, out=d, progress=False)
    >>> grid, X, labels, attrs = load_slide_features(p)
    >>> X.shape[0] == len(grid)
    True
    """
    import h5py

    from medfeat import __version__
    from medfeat.slides import PatchGrid, iter_patch_batches

    scales = tuple(scales)
    if not scales:
        raise ValueError("scales must hold at least one field-of-view factor, e.g. (1,).")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    out = _resolve_out(slide, out)
    if out.exists() and not overwrite:
        logger.info("feature store %s exists; skipping (overwrite=True recomputes it)", out)
        return out

    transformer = make_features(features, scales=scales)
    reader, owns = _open_reader(slide, slide_mpp)
    try:
        grid = PatchGrid.from_reader(reader, mpp=mpp, size=size, stride=stride, tissue=tissue, min_tissue=min_tissue)
        if grid.slide_path:
            # absolute, so heatmaps drawn from the store find the slide from any working directory
            grid.slide_path = os.path.abspath(grid.slide_path)
        n = len(grid)
        if n == 0:
            raise EmptyTissueError(
                f"slide {reader.path or '<array>'} has no patch with at least {min_tissue:.0%} tissue "
                f"(tissue={tissue!r}, mpp={mpp}, size={size}); lower min_tissue or pass tissue=None."
            )
        labels = _label_patches(reader, grid, annotations)
        coords = np.ascontiguousarray(grid.coords, dtype=np.int64)
        config = _config_for(grid, transformer, scales, _annotations_id(annotations))

        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + _PARTIAL_SUFFIX)
        n_done = 0
        if partial.exists():
            n_done = 0 if overwrite else _try_resume(partial, config, coords)
            if n_done == 0:
                partial.unlink()
        batch_size = int(batch_size)
        chunk_rows = max(batch_size, -(-int(chunk_size) // batch_size) * batch_size)

        # a chunk cache large enough to keep the partly written HDF5 chunk between batches
        with h5py.File(partial, "a", rdcc_nbytes=32 * 2**20) as f:
            if n_done == 0:
                for key in list(f.keys()):
                    del f[key]
                f.create_dataset("coords", data=coords)
                if labels is not None:
                    f.create_dataset("labels", data=labels)
                if grid.tissue is not None:
                    f.create_dataset("tissue", data=np.asarray(grid.tissue, dtype=np.float32))
                attrs = grid.attrs()
                f.attrs["format"] = STORE_FORMAT
                f.attrs["config"] = _canonical(config)
                f.attrs["grid_attrs"] = json.dumps(attrs, default=str)
                f.attrs["slide_path"] = grid.slide_path or ""
                f.attrs["slide_dimensions"] = np.asarray(grid.slide_dimensions, dtype=np.int64)
                f.attrs["slide_mpp"] = np.asarray(reader.mpp, dtype=np.float64)
                f.attrs["mpp"] = float(grid.mpp)
                f.attrs["size"] = int(grid.size)
                f.attrs["size_level0"] = float(grid.size_level0)
                f.attrs["stride"] = int(grid.stride)
                f.attrs["scales"] = np.asarray(scales, dtype=np.float64)
                f.attrs["tissue"] = tissue if isinstance(tissue, str) else ("none" if tissue is None else "mask")
                f.attrs["min_tissue"] = float(min_tissue)
                params = transformer.get_params(deep=False)
                inner = params.get("transformer", transformer) if "transformer" in params else transformer
                inner_params = inner.get_params(deep=False) if hasattr(inner, "get_params") else {}
                f.attrs["transformer"] = _canonical(estimator_config(transformer))
                f.attrs["transformer_class"] = config["transformer"]["__class__"]
                f.attrs["backbone"] = str(inner_params.get("backbone", ""))
                f.attrs["layers"] = json.dumps(_jsonable(inner_params.get("layers")))
                f.attrs["medfeat_version"] = __version__
                f.attrs["n_patches"] = n
                f.attrs["n_done"] = 0
                f.flush()
            else:
                logger.info("resuming %s from row %d of %d", out, n_done, n)

            # Fit on the first rows of the grid (not of the resumed part), so a resumed run and an
            # uninterrupted one use the same fitted transformer.
            if not _is_fitted(transformer):
                first = _read_first_batch(reader, grid, scales, min(batch_size, n))
                transformer.fit(first)

            todo = grid.subset(np.arange(n_done, n)) if n_done else grid
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=n, initial=n_done, unit="patch", desc=f"features {out.stem}", leave=False)
            row = n_done
            chunk_start = n_done
            try:
                for batch in iter_patch_batches(
                    reader, todo, batch_size=batch_size, scales=scales, num_workers=num_workers, backend=backend,
                    progress=False,
                ):
                    feats = np.asarray(transformer.transform(batch.images), dtype=np.float32)
                    if feats.ndim != 2 or feats.shape[0] != len(batch.images):
                        raise ValueError(
                            f"features transformer returned shape {feats.shape} for {len(batch.images)} patches; "
                            "expected (n_patches, n_features)."
                        )
                    if "features" not in f:
                        f.create_dataset(
                            "features", shape=(n, feats.shape[1]), dtype=np.float32,
                            # ~1 MiB HDF5 chunks of whole rows
                            chunks=(min(n, max(1, 2**18 // max(1, feats.shape[1]))), feats.shape[1]),
                        )
                        names = _feature_names(transformer, feats.shape[1])
                        f.create_dataset("feature_names", data=np.asarray(names, dtype=object),
                                         dtype=h5py.string_dtype())
                    elif f["features"].shape[1] != feats.shape[1]:
                        raise ValueError(
                            f"features transformer returned {feats.shape[1]} features; the store holds "
                            f"{f['features'].shape[1]}."
                        )
                    f["features"][row:row + len(feats)] = feats
                    row += len(feats)
                    if bar is not None:
                        bar.update(len(feats))
                    if row - chunk_start >= chunk_rows or row == n:
                        f.attrs["n_done"] = row
                        f.flush()
                        chunk_start = row
            finally:
                if bar is not None:
                    bar.close()
            if row != n:
                raise RuntimeError(f"patch reader stopped after {row} of {n} patches of {reader.path}.")
            f.attrs["complete"] = True
        os.replace(partial, out)
        return out
    finally:
        if owns:
            reader.close()


def _read_first_batch(reader, grid, scales, count):
    from medfeat.slides import read_patches

    return read_patches(reader, grid, scales=scales, indices=np.arange(count))


@dataclass
class ExtractionResult:
    """Outcome of one slide in :func:`extract_features`.

    Attributes
    ----------
    slide : str
        The slide as given.
    path : pathlib.Path or None
        The feature store (None when the slide failed).
    status : {"written", "skipped", "failed"}
        ``"skipped"``: a finished store was already there.
    error : str or None
        One-line reason for a failure.
    """

    slide: str
    path: Path | None
    status: str
    error: str | None = None


def extract_features(slides, features="deep", out_dir=None, *, overwrite=False, progress=True,
                     annotations_dir=None, **kwargs):
    """Extract feature stores for several slides; an unreadable slide is reported and skipped.

    Parameters
    ----------
    slides : iterable of str or path
        Slide files.
    features : transformer or {"deep", "handcrafted", "fusion"}
        As in :func:`extract_slide_features`. A transformer is fitted once and shared by all slides.
    out_dir : str or path
        Directory for the stores (``<out_dir>/<slide stem>.h5``).
    overwrite : bool
        Recompute finished stores.
    progress : bool
        Progress bars.
    annotations_dir : str or path, optional
        Directory with ``<slide stem>.xml`` / ``.geojson`` / ``.json`` annotations; slides with a file get
        ``labels`` (a slide without one gets none).
    **kwargs
        Passed to :func:`extract_slide_features` (mpp, size, stride, tissue, scales, ...).

    Returns
    -------
    list of ExtractionResult
        One per slide, in the given order.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from medfeat.slides import write_synthetic_slide
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> s = write_synthetic_slide(d / "a.tif", size=(1024, 1024), mpp=0.5, seed=0)
    >>> res = extract_features([s.path, d / "missing.svs"], "handcrafted", d / "feats", mpp=1.0, size=64,
    ...                        progress=False)
    >>> [r.status for r in res]
    ['written', 'failed']
    """
    if out_dir is None:
        raise ValueError("out_dir must be given: the directory for the feature stores.")
    slides = [os.fspath(s) for s in slides]
    if not slides:
        raise ValueError("slides is empty; expected at least one slide file.")
    transformer = make_features(features, scales=kwargs.get("scales", (1,)))
    results = []
    iterator = slides
    if progress and len(slides) > 1:
        from tqdm.auto import tqdm

        iterator = tqdm(slides, unit="slide", desc="slides")
    for slide in iterator:
        try:
            target = store_path_for(slide, out_dir)
            existed = target.exists() and not overwrite
            ann = _find_annotation(slide, annotations_dir)
            path = extract_slide_features(slide, transformer, out=target, overwrite=overwrite, progress=progress,
                                          annotations=ann, **kwargs)
            results.append(ExtractionResult(slide, path, "skipped" if existed else "written"))
        except Exception as exc:  # noqa: BLE001 - one bad slide must not stop the others
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            warnings.warn(f"skipping slide {slide}: {message}", RuntimeWarning, stacklevel=2)
            results.append(ExtractionResult(slide, None, "failed", message))
    return results


def _find_annotation(slide, annotations_dir):
    if annotations_dir is None:
        return None
    stem = _slide_name(slide)
    for ext in (".xml", ".geojson", ".json"):
        candidate = Path(annotations_dir) / f"{stem}{ext}"
        if candidate.exists():
            return candidate
    return None


# --------------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------------


def load_slide_features(path):
    """Read a feature store written by :func:`extract_slide_features`.

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
        Store attributes (slide path, mpp, sizes, transformer configuration, ``feature_names`` ...).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from medfeat.slides import write_synthetic_slide
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> s = write_synthetic_slide(d / "s.tif", size=(1024, 1024), mpp=0.5, seed=0)
    >>> p = extract_slide_features(s.path, "handcrafted", mpp=1.0, size=64, out=d, progress=False)
    >>> grid, X, labels, attrs = load_slide_features(p)
    >>> attrs["mpp"], X.dtype.name, labels is None
    (1.0, 'float32', True)
    """
    import h5py

    from medfeat.slides import PatchGrid

    path = Path(path)
    if not path.exists():
        partial = path.with_name(path.name + _PARTIAL_SUFFIX)
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
        for key in ("config", "grid_attrs", "transformer", "layers"):
            if key in attrs and isinstance(attrs[key], str):
                attrs[key] = json.loads(attrs[key])
        attrs["feature_names"] = [n.decode() if isinstance(n, bytes) else str(n) for n in f["feature_names"][()]]
    grid = PatchGrid.from_attrs(coords, attrs["grid_attrs"], tissue=tissue)
    attrs["path"] = str(path)
    return grid, features, labels, attrs
