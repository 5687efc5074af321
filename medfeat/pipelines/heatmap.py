"""Slide heatmaps: patch scores of a fitted pipeline put back onto the slide's patch grid.

:class:`SlideHeatmap` runs a fitted image pipeline (NHWC patches -> ``predict_proba`` or
``decision_function``) over the tissue patches of a slide, optionally with 8-fold rotation/flip test-time
averaging (Liu et al. 2017), and returns a :class:`Heatmap`: one score per grid patch with its level-0
coordinates, exportable as a 2-D array, a PNG over the slide thumbnail, QuPath GeoJSON polygons, ``.npy``
and FROC detections. :func:`heatmap_from_features` builds the same object from a feature store and a
classifier on features, so nothing is extracted twice.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import ResultDisplay
from ._io import write_atomic

__all__ = ["Heatmap", "SlideHeatmap", "heatmap_from_features", "positive_scores"]


def positive_scores(model, X):
    """Scores of the positive class: ``predict_proba[:, positive]`` or ``decision_function``.

    The positive class is ``1`` (or ``True``) when it is among ``classes_``, else the last class.

    Parameters
    ----------
    model : fitted estimator
    X : array-like
        Input accepted by ``model``.

    Returns
    -------
    scores : ndarray of float64, shape (n,)
    kind : {"probability", "decision"}

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> m = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> s, kind = positive_scores(m, np.array([[0.0], [1.0]]))
    >>> kind, bool(s[1] > s[0])
    ('probability', True)
    """
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        classes = list(getattr(model, "classes_", range(proba.shape[1])))
        col = classes.index(1) if 1 in classes else len(classes) - 1
        return proba[:, col], "probability"
    if hasattr(model, "decision_function"):
        dec = np.asarray(model.decision_function(X), dtype=np.float64)
        if dec.ndim == 2:
            dec = dec[:, -1]
        return dec, "decision"
    raise TypeError(f"{type(model).__name__} has neither predict_proba nor decision_function; expected a classifier.")


def _dihedral(images, k, flip):
    # Spatial axes are the two before the channel axis, for (N,H,W,C) and multiscale (N,S,H,W,C) alike.
    out = np.rot90(images, k, axes=(-3, -2))
    if flip:
        out = out[..., ::-1, :]
    return np.ascontiguousarray(out)


@dataclass(repr=False)
class Heatmap(ResultDisplay):
    """Patch scores on a slide's patch grid.

    Attributes
    ----------
    scores : ndarray of float64, shape (N,)
        One score per grid patch (probability of the positive class, or decision value).
    grid : medfeat.slides.PatchGrid
        The grid (``coords`` level-0 top-left x, y; mpp; size; stride; slide size and path).
    kind : {"probability", "decision"}
    tta : bool
        Whether 8-fold rotation/flip averaging was used.
    """

    scores: np.ndarray
    grid: object
    kind: str = "probability"
    tta: bool = False
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.scores.shape != (len(self.grid),):
            raise ValueError(f"scores must have one value per grid patch ({len(self.grid)}), got {self.scores.shape}.")

    def summary(self):
        """One line: slide, number of scored patches, resolution, score kind and range."""
        name = Path(self.slide_path).name if self.slide_path else "slide"
        finite = self.scores[np.isfinite(self.scores)]
        rng = f", range {finite.min():.3g}-{finite.max():.3g}" if finite.size else ""
        return (f"{name}: {len(self.scores)} patches of {int(self.grid.size)} px at {self.mpp:g} mpp, "
                f"{self.kind} scores{rng}{' (8-fold TTA)' if self.tta else ''}")

    def _display_frame(self):
        return None

    # -- geometry ------------------------------------------------------------------------------------
    @property
    def coords(self):
        """(N, 2) int64 level-0 top-left (x, y) of each patch."""
        return np.asarray(self.grid.coords, dtype=np.int64)

    @property
    def mpp(self):
        return float(self.grid.mpp)

    @property
    def slide_path(self):
        return self.grid.slide_path

    @property
    def slide_dimensions(self):
        return tuple(int(v) for v in self.grid.slide_dimensions)

    @property
    def stride_level0(self):
        """Grid step in level-0 pixels (the size of one heatmap cell)."""
        return float(self.grid.stride) * float(self.grid.size_level0) / float(self.grid.size)

    @property
    def cell_offset(self):
        """Level-0 offset of a cell's top-left from its patch's top-left (cells are centred on patches)."""
        return (float(self.grid.size_level0) - self.stride_level0) / 2.0

    def _cells(self):
        s = self.stride_level0
        c = self.coords
        col = np.rint(c[:, 0] / s).astype(np.int64)
        row = np.rint(c[:, 1] / s).astype(np.int64)
        return row, col

    @property
    def shape(self):
        """(rows, cols) of :meth:`to_array`: the stride lattice covering the slide."""
        w, h = self.slide_dimensions
        s = self.stride_level0
        rows, cols = max(1, math.ceil(h / s)), max(1, math.ceil(w / s))
        if len(self.scores):
            row, col = self._cells()
            rows, cols = max(rows, int(row.max()) + 1), max(cols, int(col.max()) + 1)
        return rows, cols

    def to_array(self):
        """Scores as a 2-D float array on the stride lattice; NaN where no patch was scored (off tissue).

        Cell ``[r, c]`` is the patch whose level-0 top-left is ``(c * stride_level0, r * stride_level0)``.

        Returns
        -------
        ndarray of float64, shape ``self.shape``
        """
        arr = np.full(self.shape, np.nan)
        if len(self.scores):
            row, col = self._cells()
            arr[row, col] = self.scores
        return arr

    def to_frame(self):
        """DataFrame with x, y (level-0 top-left) and score per patch."""
        import pandas as pd

        return pd.DataFrame({"x": self.coords[:, 0], "y": self.coords[:, 1], "score": self.scores})

    # -- exports -------------------------------------------------------------------------------------
    def to_npy(self, path):
        """Save :meth:`to_array` as ``.npy`` (written to a temporary name, then renamed).

        Returns
        -------
        pathlib.Path
        """
        return write_atomic(path, lambda fh: np.save(fh, self.to_array()), suffix=".partial")

    def polygons(self, threshold=0.5):
        """Level-0 shapely polygons of the union of cells with score >= ``threshold``.

        Returns
        -------
        list of shapely.Polygon
        """
        import shapely

        keep = self.scores >= threshold
        if not np.any(keep):
            return []
        s, off = self.stride_level0, self.cell_offset
        row, col = self._cells()
        x0 = col[keep] * s + off
        y0 = row[keep] * s + off
        boxes = shapely.box(x0, y0, x0 + s, y0 + s)
        # Cells tile the lattice edge to edge without overlap: coverage_union is exact and much faster than
        # a general unary_union for many thousands of squares.
        merged = shapely.coverage_union_all(boxes)
        merged = shapely.normalize(merged)
        geoms = list(merged.geoms) if hasattr(merged, "geoms") else [merged]
        return [g for g in geoms if g.geom_type == "Polygon" and not g.is_empty]

    def annotations(self, threshold=0.5, *, label="Tumor"):
        """Regions with score >= ``threshold`` as :class:`medfeat.slides.Annotation` polygons (level 0).

        Returns
        -------
        list of Annotation
        """
        from medfeat.slides import Annotation

        out = []
        for i, poly in enumerate(self.polygons(threshold)):
            out.append(Annotation(np.asarray(poly.exterior.coords), label=label, name=f"{label} {i + 1}",
                                  holes=[np.asarray(r.coords) for r in poly.interiors]))
        return out

    def to_geojson(self, path, threshold=0.5, *, label="Tumor", color=(200, 0, 0)):
        """Write the regions with score >= ``threshold`` as a QuPath GeoJSON FeatureCollection.

        Polygons are in level-0 pixels (what QuPath expects), one Feature per connected region (union of
        the heatmap cells above the threshold), with ``objectType: annotation`` and a ``classification``
        named ``label``; holes are kept. Written by :func:`medfeat.slides.annotations_to_geojson`.

        Returns
        -------
        pathlib.Path
        """
        from medfeat.slides import annotations_to_geojson

        path = Path(path)
        annotations_to_geojson(self.annotations(threshold, label=label), path, colors={label: tuple(color)})
        return path

    def detections(self, threshold=0.5, **kwargs):
        """Candidate lesion detections ``(x, y, score)`` in level-0 pixels, for FROC.

        Local maxima of the heatmap with score above ``threshold``
        (:func:`medfeat.evaluation.detections_from_heatmap`), mapped from lattice cells to the level-0
        centre of their patch.

        Returns
        -------
        ndarray of float64, shape (K, 3)
        """
        from medfeat.evaluation import detections_from_heatmap

        # Cell [r, c] is the patch at level-0 top-left (c * stride, r * stride): origin 0, and the detection
        # sits at the patch centre.
        return detections_from_heatmap(self.to_array(), threshold, origin=(0.0, 0.0), stride=self.stride_level0,
                                       patch_size=float(self.grid.size_level0), **kwargs)

    def to_png(self, path, overlay=True, *, max_size=1024, cmap="coolwarm", alpha=0.5, vmin=None, vmax=None,
               title=None, dpi=110):
        """Draw the heatmap (over the slide thumbnail when ``overlay``) with a colour bar, as PNG.

        A diverging colour map (blue = low, red = high) keeps the tissue readable under both ends;
        cells without a score (off tissue) are left transparent. Matplotlib is imported here and used
        through its object API with the Agg canvas, so no global backend is changed.

        Returns
        -------
        pathlib.Path
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        w, h = self.slide_dimensions
        aspect = h / max(w, 1)
        fig = Figure(figsize=(7.0, max(2.5, min(12.0, 6.0 * aspect))), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        self.plot(fig.add_subplot(1, 1, 1), overlay=overlay, max_size=max_size, cmap=cmap, alpha=alpha,
                  vmin=vmin, vmax=vmax, title=title)
        return write_atomic(
            path, lambda fh: fig.savefig(fh, format="png", bbox_inches="tight", pad_inches=0.1), suffix=".partial"
        )

    def plot(self, ax=None, *, overlay=True, max_size=1024, cmap="coolwarm", alpha=0.5, vmin=None, vmax=None,
             title=None, colorbar=True):
        """Draw the heatmap into a matplotlib Axes (over the slide thumbnail when ``overlay``).

        Axes are in level-0 pixels, so annotation polygons or detections can be drawn on top with
        their own coordinates. Cells without a score (off tissue) are transparent.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            A new pyplot figure when omitted.
        overlay : bool, default True
            Draw the slide thumbnail underneath (when the slide file is still there).
        colorbar : bool, default True

        Returns
        -------
        matplotlib Axes
        """
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(7.0, 5.0), layout="constrained")
        w, h = self.slide_dimensions
        arr = self.to_array()
        if self.kind == "probability":
            vmin = 0.0 if vmin is None else vmin
            vmax = 1.0 if vmax is None else vmax
        thumb = self._thumbnail(max_size) if overlay else None
        if thumb is not None:
            ax.imshow(thumb, extent=(0, w, h, 0), interpolation="bilinear")
        rows, cols = arr.shape
        s, off = self.stride_level0, self.cell_offset
        masked = np.ma.masked_invalid(arr)
        im = ax.imshow(masked, extent=(off, off + cols * s, off + rows * s, off), cmap=cmap,
                       alpha=alpha if thumb is not None else 1.0, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_xlabel("x (level-0 px)")
        ax.set_ylabel("y (level-0 px)")
        name = Path(self.slide_path).name if self.slide_path else "slide"
        ax.set_title(title or f"{name}: {'P(positive)' if self.kind == 'probability' else 'score'}"
                     f"{' (8-fold TTA)' if self.tta else ''}, {self.mpp:g} mpp", fontsize=9)
        if colorbar:
            ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                               label="probability" if self.kind == "probability" else "decision value")
        return ax

    def _thumbnail(self, max_size):
        from medfeat.slides import SlideReader

        path = self.slide_path
        if not path or not Path(path).exists():
            return None
        reader = SlideReader.open(path, mpp=self.meta.get("slide_mpp"))
        try:
            return reader.thumbnail(max_size=max_size)
        finally:
            reader.close()


class SlideHeatmap:
    """Score every tissue patch of a slide with a fitted image pipeline.

    Parameters
    ----------
    pipeline : fitted estimator
        Takes NHWC uint8 patches (or (N, S, H, W, C) with several ``scales``) and has ``predict_proba``
        or ``decision_function`` (e.g. :func:`medfeat.pipelines.make_patch_pipeline` after fit).
    mpp : float
        Resolution in microns per pixel the pipeline was trained at.
    size : int
        Patch size in pixels at ``mpp``.
    stride : int, optional
        Grid step in pixels at ``mpp`` (default ``size``). A smaller stride gives a finer heatmap.
    tissue : {"otsu", "gray"}, TissueMask or None
        Tissue detection.
    min_tissue : float
        Minimum tissue fraction of a scored patch.
    scales : tuple of float
        Fields of view passed to the reader (multiscale pipelines).
    tta : bool
        Average the scores over the 8 rotations/flips of each patch (Liu et al. 2017).
    batch_size, num_workers : int
        Reader batch size and workers.
    progress : bool
        tqdm bar.
    slide_mpp : float, optional
        The slide's mpp when the file does not record it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from medfeat.slides import write_synthetic_slide
    >>> mean_rgb = FunctionTransformer(lambda X: np.asarray(X, float).mean(axis=(1, 2)))
    >>> model = make_pipeline(mean_rgb, LogisticRegression()).fit(
    ...     np.stack([np.full((8, 8, 3), v, np.uint8) for v in (50, 200)]), [1, 0])
    >>> s = write_synthetic_slide(pathlib.Path(tempfile.mkdtemp()) / "s.tif", size=(1024, 1024), mpp=0.5)
    >>> hm = SlideHeatmap(model, mpp=1.0, size=64, progress=False).predict(s.path)
    >>> hm.to_array().shape
    (8, 8)
    """

    def __init__(self, pipeline, mpp=0.5, size=224, stride=None, tissue="otsu", min_tissue=0.5, scales=(1,),
                 tta=False, batch_size=64, num_workers=2, progress=True, slide_mpp=None):
        self.pipeline = pipeline
        self.mpp = mpp
        self.size = size
        self.stride = stride
        self.tissue = tissue
        self.min_tissue = min_tissue
        self.scales = scales
        self.tta = tta
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.progress = progress
        self.slide_mpp = slide_mpp

    def _score(self, images):
        if not self.tta:
            return positive_scores(self.pipeline, images)
        total, kind = None, None
        for k in range(4):
            for flip in (False, True):
                s, kind = positive_scores(self.pipeline, _dihedral(images, k, flip))
                total = s if total is None else total + s
        return total / 8.0, kind

    def predict(self, slide):
        """Heatmap of one slide.

        Parameters
        ----------
        slide : str, path or SlideReader

        Returns
        -------
        Heatmap
        """
        from medfeat.slides import PatchGrid, SlideReader, iter_patch_batches

        if isinstance(slide, (str, os.PathLike)) and not Path(slide).exists():
            raise FileNotFoundError(f"slide file not found: {os.fspath(slide)}")
        owns = not isinstance(slide, SlideReader)
        reader = SlideReader.open(slide, mpp=self.slide_mpp) if owns else slide
        try:
            grid = PatchGrid.from_reader(reader, mpp=self.mpp, size=self.size, stride=self.stride,
                                         tissue=self.tissue, min_tissue=self.min_tissue)
            scores = np.full(len(grid), np.nan)
            kind = "probability" if hasattr(self.pipeline, "predict_proba") else "decision"
            bar = None
            if self.progress and len(grid):
                from tqdm.auto import tqdm

                name = Path(reader.path).name if reader.path else "slide"
                bar = tqdm(total=len(grid), unit="patch", desc=f"heatmap {name}", leave=False)
            try:
                if len(grid):
                    for batch in iter_patch_batches(reader, grid, batch_size=int(self.batch_size),
                                                    scales=tuple(self.scales), num_workers=int(self.num_workers),
                                                    progress=False):
                        s, kind = self._score(batch.images)
                        scores[np.asarray(batch.indices)] = s
                        if bar is not None:
                            bar.update(len(s))
            finally:
                if bar is not None:
                    bar.close()
            meta = {"slide_mpp": self.slide_mpp}
            return Heatmap(scores, grid, kind=kind, tta=bool(self.tta), meta=meta)
        finally:
            if owns:
                reader.close()


def heatmap_from_features(store, classifier):
    """Heatmap from a feature store and a classifier fitted on those features (no re-extraction).

    Parameters
    ----------
    store : str or path
        A feature store written by :func:`medfeat.pipelines.extract_slide_features`.
    classifier : fitted estimator
        Takes the stored feature rows (``predict_proba`` or ``decision_function``).

    Returns
    -------
    Heatmap

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn.linear_model import LogisticRegression
    >>> from medfeat.slides import write_synthetic_slide
    >>> from medfeat.pipelines import extract_slide_features, load_slide_features
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> s = write_synthetic_slide(d / "s.tif", size=(1024, 1024), mpp=0.5)
    >>> p = extract_slide_features(s.path, "handcrafted", mpp=1.0, size=64, out=d, progress=False)
    >>> _, X, _, _ = load_slide_features(p)
    >>> clf = LogisticRegression().fit(X, (X[:, 0] > X[:, 0].mean()).astype(int))
    >>> heatmap_from_features(p, clf).scores.shape == (len(X),)
    True
    """
    from medfeat.pipelines.store import load_slide_features

    grid, X, _, attrs = load_slide_features(store)
    scores, kind = positive_scores(classifier, X) if len(X) else (np.zeros(0), "probability")
    slide_mpp = attrs.get("slide_mpp")
    meta = {"slide_mpp": float(slide_mpp[0]) if isinstance(slide_mpp, list) else slide_mpp, "store": str(store)}
    return Heatmap(scores, grid, kind=kind, meta=meta)
