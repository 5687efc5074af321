"""Slide feature extraction: slide -> tissue patch grid -> patch batches -> features -> HDF5 store.

:func:`extract_slide_features` runs the named steps for one slide (open the slide, lay the tissue grid,
label the patches, fit the transformer on the first rows, stream the rows into a
:class:`~medfeat.pipelines.store.FeatureStoreWriter`); :func:`extract_features` runs it over many slides
with one shared transformer, reporting and skipping slides that fail.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..slides.spec import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS, GridSpec, check_batch_size
from .config import make_features, set_batch_size
from .labels import annotations_id, find_annotation, label_patches, slide_stem
from .store import (
    FeatureStoreWriter,
    StoreCollisionError,
    recorded_fingerprint,
    resolve_store_path,
    slide_fingerprint,
    store_lock,
    store_path_for,
)

__all__ = ["EmptyTissueError", "ExtractionResult", "check_slides", "extract_features", "extract_slide_features"]

logger = logging.getLogger(__name__)


class EmptyTissueError(ValueError):
    """Raised when a slide has no patch with enough tissue to extract features from."""


def check_slides(slides):
    """``slides`` as a list of paths; FileNotFoundError when every one of them is missing.

    Some missing slides are reported and skipped by the functions that run over several slides; all of them
    missing is bad input (a wrong directory or pattern), refused before any work.

    Examples
    --------
    >>> check_slides(["/no/such/slide.svs"])
    Traceback (most recent call last):
    ...
    FileNotFoundError: slide not found: /no/such/slide.svs
    """
    slides = [os.fspath(s) for s in slides]
    if not slides:
        raise ValueError("slides is empty; expected at least one slide file.")
    missing = [s for s in slides if not Path(s).exists()]
    if len(missing) == len(slides):
        what = missing[0] if len(missing) == 1 else f"{missing[0]} (and {len(missing) - 1} more)"
        raise FileNotFoundError(f"slide not found: {what}")
    return slides


# --------------------------------------------------------------------------------------------------------
# the steps
# --------------------------------------------------------------------------------------------------------


def _open_reader(slide, slide_mpp):
    """(reader, owned): a SlideReader for ``slide``; ``owned`` when this call opened it."""
    from medfeat.slides import SlideReader

    if isinstance(slide, SlideReader):
        return slide, False
    if isinstance(slide, (str, os.PathLike)) and not Path(slide).exists():
        raise FileNotFoundError(f"slide file not found: {os.fspath(slide)}")
    return SlideReader.open(slide, slide_mpp=slide_mpp), True


def _tissue_grid(reader, spec):
    """The patch grid ``spec`` lays over the slide's tissue; EmptyTissueError when no patch qualifies."""
    grid = spec.make_grid(reader)
    if grid.slide_path:
        # absolute, so heatmaps drawn from the store find the slide from any working directory
        grid.slide_path = os.path.abspath(grid.slide_path)
    if len(grid) == 0:
        raise EmptyTissueError(
            f"slide {reader.path or '<array>'} has no patch with at least {spec.min_tissue:.0%} tissue "
            f"(tissue={spec.tissue_name!r}, {spec.describe()}); lower min_tissue or pass tissue=None."
        )
    return grid


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


def _fit_on_first_rows(transformer, reader, grid, scales, batch_size):
    """Fit an unfitted transformer on the first rows of the grid (feature extractors learn nothing from
    them). The first rows of the whole grid, not of a resumed part: a resumed run and an uninterrupted
    one use the same fitted transformer."""
    from medfeat.slides import read_patches

    if not _is_fitted(transformer):
        first = read_patches(reader, grid, scales=scales, indices=np.arange(min(batch_size, len(grid))))
        transformer.fit(first)


def _stream_rows(store, reader, grid, transformer, *, scales, batch_size, num_workers, backend, progress):
    """Read the patches from ``store.n_done`` on in batches, transform them and append the rows."""
    from medfeat.slides import iter_patch_batches

    n = len(grid)
    todo = grid.subset(np.arange(store.n_done, n)) if store.n_done else grid
    bar = None
    if progress:
        from .._checks import progress_bar

        bar = progress_bar(total=n, initial=store.n_done, unit="patch", desc=f"features {store.out.stem}", leave=False)
    try:
        for batch in iter_patch_batches(reader, todo, batch_size=batch_size, scales=scales,
                                        num_workers=num_workers, backend=backend, progress=False):
            feats = np.asarray(transformer.transform(batch.images), dtype=np.float32)
            if feats.ndim != 2 or feats.shape[0] != len(batch.images):
                raise ValueError(
                    f"features transformer returned shape {feats.shape} for {len(batch.images)} patches; "
                    "expected (n_patches, n_features)."
                )
            store.append(feats)
            if bar is not None:
                bar.update(len(feats))
    finally:
        if bar is not None:
            bar.close()


# --------------------------------------------------------------------------------------------------------
# one slide, many slides
# --------------------------------------------------------------------------------------------------------


def extract_slide_features(
    slide,
    features="deep",
    *,
    grid=None,
    out=None,
    batch_size=DEFAULT_BATCH_SIZE,
    num_workers=DEFAULT_NUM_WORKERS,
    chunk_size=1024,
    overwrite=False,
    progress=True,
    annotations=None,
    slide_mpp=None,
    backend="thread",
    label_rule=None,
    lock_timeout=None,
    **grid_settings,
):
    """Extract patch features of one slide into an HDF5 feature store.

    Parameters
    ----------
    slide : str, path or SlideReader
        The whole-slide image (any format :class:`medfeat.slides.SlideReader` opens).
    features : transformer or {"deep", "handcrafted", "fusion", "lbp", "gist", "color", "glcm"}
        A scikit-learn transformer on NHWC uint8 batches or a preset name (see
        :func:`medfeat.pipelines.make_features`). An unfitted transformer is fitted on the first batch
        (feature extractors learn nothing from it).
    grid : GridSpec or dict, optional
        The patch grid (:class:`medfeat.slides.GridSpec`: target ``mpp`` or ``magnification``, ``size``,
        ``stride``, ``tissue``, ``min_tissue``, ``tissue_mpp``, ``scales``); default ``GridSpec()``.
    **grid_settings
        Any :class:`~medfeat.slides.GridSpec` field given on its own (``mpp=1.0, size=64`` ...); it
        overrides the same field of ``grid``. The resulting spec is recorded in the store
        (attribute ``grid_spec``).
    out : str or path
        Output file (``.h5``) or directory (the file is then ``<dir>/<slide stem>.h5``).
    batch_size : int
        Patches per batch read from the slide and passed through the transformer: the CNN's batch
        size for deep features (set on the transformer's ``batch_size`` parameters, which do not change
        the features).
    num_workers : int or "auto"
        Reader threads, overlapping slide I/O with compute (``"auto"``: 1 on up to 4 CPUs, see
        :func:`medfeat.slides.auto_num_workers`).
    chunk_size : int
        Rows between checkpoints (rounded up to a multiple of ``batch_size``); an interrupted run resumes
        from the last finished chunk.
    overwrite : bool
        Recompute a finished store instead of skipping it.
    progress : bool
        Show a tqdm progress bar.
    annotations : str, path or list of Annotation, optional
        Annotation file (ASAP XML / GeoJSON) or polygons; stores patch ``labels`` (1 lesion, 0 normal,
        -1 ignored) by the classes of ``label_rule``.
    label_rule : medfeat.pipelines.ClassRule, optional
        Positive / negative / ignored annotation classes (default: a single class is positive, several
        are an error).
    slide_mpp : float, optional
        The slide's mpp when the file does not record it.
    backend : {"thread", "process"}
        Reader worker backend.
    lock_timeout : float, optional
        Seconds to wait when another process is writing the same store (its lock is held); None waits
        until it finishes (the finished store is then skipped), 0 gives up at once
        (:class:`~medfeat.pipelines.store.StoreBusyError`).

    Returns
    -------
    pathlib.Path
        The finished store.

    Raises
    ------
    StoreCollisionError
        When the finished store at ``out`` was made from another slide with the same file name (it is
        neither skipped nor overwritten; ``overwrite=True`` replaces it).
    StoreWriteError
        When writing fails (disk full): no store is published and the partial file is removed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from medfeat.slides import write_synthetic_slide
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> s = write_synthetic_slide(d / "s.tif", size=(1024, 1024), mpp=0.5, seed=0)
    >>> p = extract_slide_features(s.path, "handcrafted", mpp=1.0, size=64, out=d, progress=False)
    >>> from medfeat.pipelines import load_slide_features
    >>> grid, X, labels, attrs = load_slide_features(p)
    >>> X.shape[0] == len(grid)
    True
    """
    spec = GridSpec.build(grid, **grid_settings)
    batch_size = check_batch_size(batch_size)
    out = resolve_store_path(slide, out)
    if isinstance(slide, (str, os.PathLike)) and not Path(slide).exists():
        raise FileNotFoundError(f"slide file not found: {os.fspath(slide)}")
    fingerprint = slide_fingerprint(slide)
    # one writer per store: a second run waits here (or gives up), then finds the finished store
    with store_lock(out, timeout=lock_timeout):
        if out.exists() and not overwrite:
            recorded, recorded_slide = recorded_fingerprint(out)
            if recorded and recorded != fingerprint:
                raise StoreCollisionError(
                    f"{out} holds the features of another slide with the same name ({recorded_slide or 'unknown'}); "
                    "refusing to skip or overwrite it: write to another output directory, rename the slide, or "
                    "pass overwrite=True (--overwrite) if the slide was replaced on purpose."
                )
            logger.info("feature store %s exists; skipping (overwrite=True recomputes it)", out)
            return out

        transformer = make_features(features, scales=spec.scales)
        set_batch_size(transformer, batch_size)
        reader, owns = _open_reader(slide, slide_mpp)
        try:
            grid = _tissue_grid(reader, spec)
            labels = label_patches(grid, annotations, rule=label_rule)
            chunk_rows = max(batch_size, -(-int(chunk_size) // batch_size) * batch_size)
            with FeatureStoreWriter(out, grid, transformer, spec=spec, slide_mpp=reader.mpp, labels=labels,
                                    annotations_id=annotations_id(annotations), chunk_rows=chunk_rows,
                                    overwrite=overwrite, slide_fingerprint=fingerprint) as store:
                _fit_on_first_rows(transformer, reader, grid, spec.scales, batch_size)
                _stream_rows(store, reader, grid, transformer, scales=spec.scales, batch_size=batch_size,
                             num_workers=num_workers, backend=backend, progress=progress)
                return store.finish()
        finally:
            if owns:
                reader.close()


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


def extract_features(slides, features="deep", out_dir=None, *, grid=None, overwrite=False, progress=True,
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
    grid : GridSpec or dict, optional
        The patch grid of every slide (validated once, before the first slide).
    overwrite : bool
        Recompute finished stores.
    progress : bool
        Progress bars.
    annotations_dir : str or path, optional
        Directory with ``<slide stem>.xml`` / ``.geojson`` / ``.json`` annotations; slides with a file get
        ``labels`` (a slide without one gets none).
    **kwargs
        :class:`~medfeat.slides.GridSpec` fields (``mpp``, ``size``, ``stride``, ``tissue``, ``scales`` ...,
        overriding ``grid``) and the other options of :func:`extract_slide_features` (``batch_size``,
        ``num_workers``, ``slide_mpp`` ...).

    Returns
    -------
    list of ExtractionResult
        One per slide, in the given order.

    Raises
    ------
    FileNotFoundError
        When every slide (or the annotations directory) is missing; single missing or unreadable slides
        are reported with a RuntimeWarning and a ``"failed"`` result.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from medfeat.slides import write_synthetic_slide
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> s = write_synthetic_slide(d / "a.tif", size=(1024, 1024), mpp=0.5, seed=0)
    >>> import warnings
    >>> with warnings.catch_warnings(record=True):  # the missing slide is reported with a RuntimeWarning
    ...     res = extract_features([s.path, d / "missing.svs"], "handcrafted", d / "feats", mpp=1.0, size=64,
    ...                            progress=False)
    >>> [r.status for r in res]
    ['written', 'failed']
    """
    if out_dir is None:
        raise ValueError("out_dir must be given: the directory for the feature stores.")
    slides = check_slides(slides)
    if annotations_dir is not None and not Path(annotations_dir).is_dir():
        raise FileNotFoundError(f"annotations directory not found: {annotations_dir}")
    grid_fields = {f.name for f in dataclasses.fields(GridSpec)}
    spec = GridSpec.build(grid, **{k: kwargs.pop(k) for k in list(kwargs) if k in grid_fields})
    transformer = make_features(features, scales=spec.scales)
    results = []
    # Stores are named by the slide's file stem: two different slides with one stem would share a store.
    first_with_stem = {}
    iterator = slides
    if progress and len(slides) > 1:
        from .._checks import progress_bar

        iterator = progress_bar(slides, unit="slide", desc="slides")
    for slide in iterator:
        try:
            stem = slide_stem(slide)
            other = first_with_stem.setdefault(stem, slide)
            if os.path.abspath(other) != os.path.abspath(slide):
                raise StoreCollisionError(
                    f"{slide} and {other} have the same name {stem!r}, so their feature stores would collide; "
                    "extract them into separate output directories (or rename one)."
                )
            target = store_path_for(slide, out_dir)
            existed = target.exists() and not overwrite
            ann = find_annotation(slide_stem(slide), annotations_dir)
            path = extract_slide_features(slide, transformer, grid=spec, out=target, overwrite=overwrite,
                                          progress=progress, annotations=ann, **kwargs)
            results.append(ExtractionResult(slide, path, "skipped" if existed else "written"))
        except Exception as exc:  # noqa: BLE001 - one bad slide must not stop the others
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            warnings.warn(f"skipping slide {slide}: {message}", RuntimeWarning, stacklevel=2)
            results.append(ExtractionResult(slide, None, "failed", message))
    return results
