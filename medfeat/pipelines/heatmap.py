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

from .._checks import ResultDisplay, write_atomic
from ..classifiers.positive import positive_scores
from ..slides.spec import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS, GridSpec, check_batch_size

__all__ = ["Heatmap", "SlideHeatmap", "heatmap_from_features", "is_calibrated", "positive_scores"]


def is_calibrated(model):
    """Whether ``model``'s ``predict_proba`` is calibrated (a ``CalibratedClassifierCV`` at its end).

    Class-balanced or margin classifiers (SVM, balanced logistic regression, XGBoost with
    ``scale_pos_weight``) output scores, not probabilities; only a calibrated model's output is called
    a probability in heatmaps and reports.

    Examples
    --------
    >>> from sklearn.calibration import CalibratedClassifierCV
    >>> from sklearn.linear_model import LogisticRegression
    >>> is_calibrated(LogisticRegression()), is_calibrated(CalibratedClassifierCV(LogisticRegression()))
    (False, True)
    """
    from sklearn.calibration import CalibratedClassifierCV

    seen = 0
    while model is not None and seen < 10:
        seen += 1
        if isinstance(model, CalibratedClassifierCV):
            return True
        if getattr(model, "calibrated_", False) is True:
            return True
        if hasattr(model, "steps"):
            model = model.steps[-1][1]
        else:
            model = getattr(model, "classifier_", None)
    return False


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
        What the model's method returned: ``predict_proba`` output or a decision value.
    tta : bool
        Whether 8-fold rotation/flip averaging was used.
    calibrated : bool
        Whether the ``predict_proba`` output is calibrated (:func:`is_calibrated`); only then is the score
        called a probability (``score_name``), otherwise it is a score whose colour map is centred on
        ``decision_threshold``.
    threshold : float, optional
        The decision threshold (e.g. fixed on validation data); default 0.5 for ``predict_proba`` output,
        0 for decision values.
    """

    scores: np.ndarray
    grid: object
    kind: str = "probability"
    tta: bool = False
    meta: dict = field(default_factory=dict)
    calibrated: bool = False
    threshold: float | None = None

    def __post_init__(self):
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.scores.shape != (len(self.grid),):
            raise ValueError(f"scores must have one value per grid patch ({len(self.grid)}), got {self.scores.shape}.")

    @property
    def decision_threshold(self):
        """The threshold regions, detections and the colour map's centre use."""
        if self.threshold is not None:
            return float(self.threshold)
        return 0.5 if self.kind == "probability" else 0.0

    @property
    def score_name(self):
        """What one score is, in words: a calibrated probability, or an uncalibrated score."""
        if self.kind == "probability" and self.calibrated:
            return "P(positive), calibrated"
        if self.kind == "probability":
            return "score (uncalibrated predict_proba, not a probability)"
        return "score (decision value)"

    def metadata(self):
        """Everything needed to map an exported array, table or image back onto the slide.

        Returns
        -------
        dict
            Slide path and level-0 size, slide and target mpp, patch size and stride (target pixels and
            level-0 pixels), the heatmap cell size and offset, the coordinate convention, score kind and
            name, threshold, calibration and TTA.
        """
        from medfeat import __version__

        g = self.grid
        slide_mpp = self.meta.get("slide_mpp")
        if slide_mpp is None:
            slide_mpp = getattr(g, "slide_mpp", None)
        if slide_mpp is not None:
            slide_mpp = [float(v) for v in np.atleast_1d(slide_mpp)]
        stride = getattr(g, "stride", None)
        return {
            "medfeat_version": __version__,
            "slide": str(self.slide_path) if self.slide_path else None,
            "slide_dimensions_level0": list(self.slide_dimensions),
            "slide_mpp": slide_mpp,
            "mpp": self.mpp,
            "patch_size": int(g.size),
            "patch_size_level0": float(g.size_level0),
            "stride": None if stride is None else float(stride),
            "stride_level0": self.stride_level0,
            "cell_offset_level0": self.cell_offset,
            "array_shape": list(self.shape),
            "coordinates": "level-0 pixels, top-left (x, y) of each patch; array cell [r, c] is the patch at "
                           "(c * stride_level0, r * stride_level0)",
            "n_patches": int(len(self.scores)),
            "kind": self.kind,
            "score_name": self.score_name,
            "calibrated": bool(self.calibrated),
            "decision_threshold": self.decision_threshold,
            "tta": bool(self.tta),
            **({"store": self.meta["store"]} if self.meta.get("store") else {}),
            **({"domain_note": self.meta["domain_note"]} if self.meta.get("domain_note") else {}),
        }

    def _write_sidecar(self, path, **extra):
        import json

        path = Path(path)
        meta = {**self.metadata(), "file": path.name, **extra}
        text = json.dumps(meta, indent=2, allow_nan=False)
        return write_atomic(path.with_name(path.name + ".json"), lambda fh: fh.write(text.encode("utf-8")),
                            suffix=".partial")

    def summary(self):
        """One line: slide, number of scored patches, resolution, score kind and range."""
        name = Path(self.slide_path).name if self.slide_path else "slide"
        finite = self.scores[np.isfinite(self.scores)]
        rng = f", range {finite.min():.3g}-{finite.max():.3g}" if finite.size else ""
        return (f"{name}: {len(self.scores)} patches of {int(self.grid.size)} px at {self.mpp:g} mpp, "
                f"{self.score_name}{rng}{' (8-fold TTA)' if self.tta else ''}")

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

    def to_frame(self, y_true=None):
        """DataFrame with x, y (level-0 top-left), score and, when given, the true label per patch.

        Parameters
        ----------
        y_true : array-like of shape (N,), optional
            True patch labels (1 lesion, 0 normal, -1 no label, e.g. from
            :func:`medfeat.slides.annotation_patch_labels`); unlabelled patches keep -1.
        """
        import pandas as pd

        df = pd.DataFrame({"x": self.coords[:, 0], "y": self.coords[:, 1], "score": self.scores})
        if y_true is not None:
            y_true = np.asarray(y_true)
            if y_true.shape != (len(self.scores),):
                raise ValueError(f"y_true must have one label per patch ({len(self.scores)}), got shape {y_true.shape}.")
            df["y_true"] = y_true
        return df

    # -- exports -------------------------------------------------------------------------------------
    def to_csv(self, path, y_true=None, *, group=None):
        """Per-patch scores as CSV (``x,y,score[,y_true][,group]``) plus a ``<path>.json`` metadata sidecar.

        The CSV feeds ``medfeat evaluate`` (``y_true``, ``y_score`` via ``--score-column score``) and
        ``medfeat froc`` directly. Written to a temporary name, then renamed.

        Returns
        -------
        pathlib.Path
        """
        import io

        df = self.to_frame(y_true)
        if group is not None:
            df["group"] = str(group)
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        out = write_atomic(path, lambda fh: fh.write(buf.getvalue().encode("utf-8")), suffix=".partial")
        self._write_sidecar(path, columns=list(df.columns))
        return out

    def to_npy(self, path):
        """Save :meth:`to_array` as ``.npy`` plus a ``<path>.json`` sidecar with :meth:`metadata`.

        Both are written to a temporary name, then renamed.

        Returns
        -------
        pathlib.Path
        """
        out = write_atomic(path, lambda fh: np.save(fh, self.to_array()), suffix=".partial")
        self._write_sidecar(path)
        return out

    def polygons(self, threshold=0.5):
        """Level-0 shapely polygons of the union of cells with score >= ``threshold``.

        Returns
        -------
        list of shapely.Polygon
        """
        import shapely

        try:
            ok = not isinstance(threshold, (bool, np.bool_)) and math.isfinite(float(threshold))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            # NaN compares false with every score: the regions would silently be empty
            raise ValueError(f"threshold must be a finite number, got {threshold!r}.")
        keep = self.scores >= float(threshold)
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

    def to_geojson(self, path, threshold=None, *, label="Tumor", color=(200, 0, 0), objects="annotations",
                   negative_label="Normal", measurement="score"):
        """Write QuPath GeoJSON: regions above the threshold and/or one detection object per scored tile.

        Coordinates are level-0 pixels (what QuPath expects) and every geometry is clipped to the slide.
        Each feature has its own random UUID, so files of several slides or runs imported into one QuPath
        project never collide. The FeatureCollection carries :meth:`metadata` in a ``"medfeat"`` member.

        Parameters
        ----------
        path : str or path
        threshold : float, optional
            Default :attr:`decision_threshold`.
        label : str, default "Tumor"
            QuPath class of regions / tiles at or above the threshold.
        color : (r, g, b)
        objects : {"annotations", "detections", "both"}, default "annotations"
            ``"annotations"``: one annotation per connected region above the threshold (holes kept);
            ``"detections"``: one detection per scored tile (the heatmap cell) classified ``label`` or
            ``negative_label`` with the score as a measurement, QuPath's "measurement map" idiom;
            ``"both"``: both.
        negative_label : str or None, default "Normal"
            Class of tiles below the threshold (None leaves them unclassified).
        measurement : str, default "score"
            Name of the measurement holding the score.

        Returns
        -------
        pathlib.Path
        """
        import json
        import uuid

        import shapely

        from medfeat.slides import annotations_to_geojson

        if objects not in ("annotations", "detections", "both"):
            raise ValueError(f"objects must be 'annotations', 'detections' or 'both', got {objects!r}.")
        thr = self.decision_threshold if threshold is None else float(threshold)
        w, h = self.slide_dimensions
        slide_box = shapely.box(0, 0, w, h)
        features = []
        if objects in ("annotations", "both"):
            anns = []
            for ann in self.annotations(thr, label=label):
                poly = shapely.Polygon(ann.polygon, [hl for hl in ann.holes]).intersection(slide_box)
                for part in getattr(poly, "geoms", [poly]):
                    if part.geom_type == "Polygon" and not part.is_empty:
                        ann_cls = type(ann)
                        anns.append(ann_cls(np.asarray(part.exterior.coords), label=ann.label, name=ann.name,
                                            holes=[np.asarray(r.coords) for r in part.interiors]))
            features += annotations_to_geojson(anns, colors={label: tuple(color)})["features"]
        if objects in ("detections", "both") and len(self.scores):
            s, off = self.stride_level0, self.cell_offset
            row, col = self._cells()
            x0 = np.clip(col * s + off, 0, w)
            y0 = np.clip(row * s + off, 0, h)
            x1 = np.clip(col * s + off + s, 0, w)
            y1 = np.clip(row * s + off + s, 0, h)
            for i in range(len(self.scores)):
                if not (x1[i] > x0[i] and y1[i] > y0[i]) or not np.isfinite(self.scores[i]):
                    continue
                ring = [[float(x0[i]), float(y0[i])], [float(x1[i]), float(y0[i])], [float(x1[i]), float(y1[i])],
                        [float(x0[i]), float(y1[i])], [float(x0[i]), float(y0[i])]]
                props = {"objectType": "detection", "isLocked": False,
                         "measurements": {measurement: float(self.scores[i])}}
                cls = label if self.scores[i] >= thr else negative_label
                if cls:
                    props["classification"] = {"name": cls, "color": list(color) if cls == label else [0, 120, 220]}
                features.append({"type": "Feature", "id": str(uuid.uuid4()),
                                 "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": props})
        meta = {**self.metadata(), "threshold": thr, "positive_class": label, "negative_class": negative_label,
                "objects": objects, "measurement": measurement}
        collection = {"type": "FeatureCollection", "medfeat": meta, "features": features}
        text = json.dumps(collection, allow_nan=False)
        return write_atomic(path, lambda fh: fh.write(text.encode("utf-8")), suffix=".partial")

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
               title=None, dpi=110, caption=None):
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
        ax = self.plot(fig.add_subplot(1, 1, 1), overlay=overlay, max_size=max_size, cmap=cmap, alpha=alpha,
                       vmin=vmin, vmax=vmax, title=title)
        caption = caption or self.meta.get("domain_note")
        if caption:
            ax.text(0.5, -0.16, caption, transform=ax.transAxes, ha="center", va="top", fontsize=8, wrap=True,
                    color="darkred")
        import json

        meta = self.metadata()
        if caption:
            meta["caption"] = caption
        png_meta = {"Title": f"medfeat heatmap {meta['slide'] or ''}".strip(), "Description": json.dumps(meta)}
        out = write_atomic(
            path, lambda fh: fig.savefig(fh, format="png", bbox_inches="tight", pad_inches=0.1, metadata=png_meta),
            suffix=".partial",
        )
        self._write_sidecar(path, **({"caption": caption} if caption else {}))
        return out

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
        norm = None
        if self.kind == "probability" and self.calibrated:
            vmin = 0.0 if vmin is None else vmin
            vmax = 1.0 if vmax is None else vmax
        else:
            # An uncalibrated score has no absolute meaning: centre the diverging map on the decision
            # threshold so red means "called positive" and blue "called negative".
            from matplotlib.colors import TwoSlopeNorm

            thr = self.decision_threshold
            finite = arr[np.isfinite(arr)]
            lo = float(finite.min()) if finite.size else thr - 1.0
            hi = float(finite.max()) if finite.size else thr + 1.0
            lo = min(lo if vmin is None else vmin, thr - 1e-9)
            hi = max(hi if vmax is None else vmax, thr + 1e-9)
            norm = TwoSlopeNorm(vcenter=thr, vmin=lo, vmax=hi)
            vmin = vmax = None
        thumb = self._thumbnail(max_size) if overlay else None
        if thumb is not None:
            ax.imshow(thumb, extent=(0, w, h, 0), interpolation="bilinear")
        rows, cols = arr.shape
        s, off = self.stride_level0, self.cell_offset
        masked = np.ma.masked_invalid(arr)
        im = ax.imshow(masked, extent=(off, off + cols * s, off + rows * s, off), cmap=cmap,
                       alpha=alpha if thumb is not None else 1.0, vmin=vmin, vmax=vmax, norm=norm,
                       interpolation="nearest")
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_xlabel("x (level-0 px)")
        ax.set_ylabel("y (level-0 px)")
        name = Path(self.slide_path).name if self.slide_path else "slide"
        short = "P(positive), calibrated" if self.kind == "probability" and self.calibrated else "score"
        ax.set_title(title or f"{name}: {short}{' (8-fold TTA)' if self.tta else ''}, {self.mpp:g} mpp", fontsize=9)
        if colorbar:
            cb_label = (short if norm is None
                        else f"{self.score_name}; centred on threshold {self.decision_threshold:.3g}")
            ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=cb_label)
        return ax

    def _thumbnail(self, max_size):
        from medfeat.slides import SlideReader

        path = self.slide_path
        if not path or not Path(path).exists():
            return None
        reader = SlideReader.open(path, slide_mpp=self.meta.get("slide_mpp"))
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
    grid : GridSpec or dict, optional
        The patch grid (:class:`medfeat.slides.GridSpec`) the pipeline was trained on. Default: the
        pipeline's own ``grid_spec`` when it has one (a :class:`SlidePatchClassifier` from
        :func:`train_from_feature_stores`), else ``GridSpec()``.
    **grid_settings
        Single :class:`~medfeat.slides.GridSpec` fields (``mpp=``, ``size=``, ``stride=`` ...) overriding
        those of ``grid``; a smaller ``stride`` gives a finer heatmap.
    tta : bool
        Average the scores over the 8 rotations/flips of each patch (Liu et al. 2017).
    batch_size, num_workers : int
        Patches per batch (read and scored together) and reader workers.
    progress : bool
        tqdm bar.
    slide_mpp : float, optional
        The slide's own mpp when the file does not record it.
    positive_label : object, optional
        The class whose score is drawn, for pipelines that do not record one (see :func:`positive_scores`).

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

    def __init__(self, pipeline, grid=None, *, tta=False, batch_size=DEFAULT_BATCH_SIZE,
                 num_workers=DEFAULT_NUM_WORKERS, progress=True, slide_mpp=None, positive_label=None, **grid_settings):
        self.pipeline = pipeline
        self.positive_label = positive_label
        if grid is None:
            grid = getattr(pipeline, "grid_spec", None)
        self.grid = GridSpec.build(grid, **grid_settings)
        self.tta = tta
        self.batch_size = check_batch_size(batch_size)
        self.num_workers = num_workers
        self.progress = progress
        self.slide_mpp = slide_mpp

    def _score(self, images):
        if not self.tta:
            return positive_scores(self.pipeline, images, self.positive_label)
        from medfeat.features.stain import dihedral  # the one definition of the 8 views (also DihedralTTA)

        total, kind = None, None
        for k in range(4):
            for flip in (False, True):
                s, kind = positive_scores(self.pipeline, dihedral(images, k, flip), self.positive_label)
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
        from medfeat.features import CORAL, SlideStandardizer
        from medfeat.slides import SlideReader, iter_patch_batches

        params = self.pipeline.get_params(deep=True).values() if hasattr(self.pipeline, "get_params") else ()
        if isinstance(self.pipeline, (SlideStandardizer, CORAL)) or any(
            isinstance(v, (SlideStandardizer, CORAL)) for v in params
        ):
            # scored batch by batch here, so a per-slide statistic would be a per-batch one
            raise ValueError(
                "pipeline holds a per-slide feature alignment (SlideStandardizer/CORAL), which needs all of a slide's "
                "features at once; extract a feature store and use heatmap_from_features instead."
            )
        if isinstance(slide, (str, os.PathLike)) and not Path(slide).exists():
            raise FileNotFoundError(f"slide file not found: {os.fspath(slide)}")
        owns = not isinstance(slide, SlideReader)
        reader = SlideReader.open(slide, slide_mpp=self.slide_mpp) if owns else slide
        try:
            grid = self.grid.make_grid(reader)
            scores = np.full(len(grid), np.nan)
            kind = "probability" if hasattr(self.pipeline, "predict_proba") else "decision"
            bar = None
            if self.progress and len(grid):
                from .._checks import progress_bar

                name = Path(reader.path).name if reader.path else "slide"
                bar = progress_bar(total=len(grid), unit="patch", desc=f"heatmap {name}", leave=False)
            try:
                if len(grid):
                    for batch in iter_patch_batches(reader, grid, batch_size=self.batch_size,
                                                    scales=self.grid.scales, num_workers=self.num_workers,
                                                    progress=False):
                        s, kind = self._score(batch.images)
                        scores[np.asarray(batch.indices)] = s
                        if bar is not None:
                            bar.update(len(s))
            finally:
                if bar is not None:
                    bar.close()
            meta = {"slide_mpp": self.slide_mpp}
            return Heatmap(scores, grid, kind=kind, tta=bool(self.tta), meta=meta,
                           calibrated=is_calibrated(self.pipeline),
                           threshold=getattr(self.pipeline, "threshold_", None))
        finally:
            if owns:
                reader.close()


def heatmap_from_features(store, classifier, positive_label=None):
    """Heatmap from a feature store and a classifier fitted on those features (no re-extraction).

    Parameters
    ----------
    store : str or path
        A feature store written by :func:`medfeat.pipelines.extract_slide_features`.
    classifier : fitted estimator
        Takes the stored feature rows (``predict_proba`` or ``decision_function``).
    positive_label : object, optional
        The positive class when the classifier's classes are not 0/1 (see :func:`positive_scores`).

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
    from .store import load_slide_features

    grid, X, _, attrs = load_slide_features(store)
    scores, kind = positive_scores(classifier, X, positive_label) if len(X) else (np.zeros(0), "probability")
    slide_mpp = attrs.get("slide_mpp")
    meta = {"slide_mpp": float(slide_mpp[0]) if isinstance(slide_mpp, list) else slide_mpp, "store": str(store)}
    return Heatmap(scores, grid, kind=kind, meta=meta, calibrated=is_calibrated(classifier),
                   threshold=getattr(classifier, "threshold_", None))
