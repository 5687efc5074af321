"""The command-line workflow as functions: label slides by annotation class, write heatmap artefacts,
evaluate per-patch scores (patch-level with clustered statistics and slide-level), and FROC from heatmaps.

Each ``medfeat`` subcommand of the slide workflow (``heatmap``, ``evaluate``, ``froc``) parses its
arguments and calls one function here, so the same closed loop runs from Python::

    extract -> train -> heatmap (scores + true labels) -> evaluate (ROC) -> froc

Every file written here goes through a temporary name and a rename.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import write_atomic
from .labels import ClassRule, find_annotation, slide_stem

__all__ = [
    "EvaluationResult",
    "HeatmapRun",
    "evaluate_predictions",
    "froc_from_heatmaps",
    "grid_spec_for_model",
    "heatmap_slides",
    "predict_image_dir",
    "read_thresholds",
    "write_heatmap_outputs",
]


def _write_atomic(path, write):
    return write_atomic(path, write)


def _write_text(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def write_heatmap_outputs(heatmap, out_dir, stem, *, threshold=None, y_true=None, objects="both",
                          positive_class="Tumor", negative_class="Normal", caption=None):
    """Write a heatmap's PNG, QuPath GeoJSON, NPY and per-patch score CSV (each with its metadata).

    Parameters
    ----------
    heatmap : Heatmap
    out_dir : str or path
    stem : str
        File stem: ``<stem>.png``, ``<stem>.geojson``, ``<stem>.npy``, ``<stem>_scores.csv``.
    threshold : float, optional
        Region / class threshold (default the heatmap's decision threshold).
    y_true : array-like, optional
        True patch labels (1, 0, -1 none) written as a ``y_true`` column, so ``evaluate`` runs on the CSV.
    objects, positive_class, negative_class
        See :meth:`Heatmap.to_geojson`.
    caption : str, optional
        Printed under the PNG (e.g. an out-of-domain warning).

    Returns
    -------
    dict of str to pathlib.Path
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "png": heatmap.to_png(out / f"{stem}.png", caption=caption),
        "geojson": heatmap.to_geojson(out / f"{stem}.geojson", threshold, label=positive_class,
                                      negative_label=negative_class, objects=objects),
        "npy": heatmap.to_npy(out / f"{stem}.npy"),
        "csv": heatmap.to_csv(out / f"{stem}_scores.csv", y_true, group=stem),
    }


def read_thresholds(path):
    """Thresholds ``{name: value}`` from a JSON file: a plain mapping, or a report JSON with operating points.

    Accepts ``{"youden": 0.42}``, a :class:`~medfeat.evaluation.ROCReport` JSON (``operating_points``) and a
    ``medfeat evaluate`` / ``train`` thresholds file (``{"thresholds": {...}}``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.json"
    >>> _ = p.write_text('{"thresholds": {"youden": 0.42}}')
    >>> read_thresholds(p)
    {'youden': 0.42}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"thresholds file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"thresholds file {path} is not JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("thresholds"), dict):
        data = data["thresholds"]
    elif isinstance(data, dict) and isinstance(data.get("operating_points"), dict):
        data = {k: v.get("threshold") for k, v in data["operating_points"].items() if isinstance(v, dict)}
    if not isinstance(data, dict) or not data:
        raise ValueError(f"thresholds file {path} must hold {{name: number}} (or a report's operating_points).")
    out = {}
    for k, v in data.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise ValueError(f"thresholds file {path}: {k!r} must be a finite number, got {v!r}.")
        out[str(k)] = float(v)
    return out


@dataclass
class EvaluationResult:
    """What :func:`evaluate_predictions` returns: patch-level and (with groups) slide-level ROC reports."""

    patch: object
    slide: object = None
    paths: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def summary(self):
        parts = [f"Patch level ({self.patch.unit}s, clustered by group when groups are known):",
                 self.patch.summary()]
        if self.slide is not None:
            parts += ["", "Slide level (one score per group):", self.slide.summary()]
        parts += [f"Note: {n}" for n in self.notes]
        return "\n".join(parts)


def _read_predictions(paths, *, label_column, score_column, group_column):
    import pandas as pd

    frames = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise FileNotFoundError(f"predictions CSV not found: {p}")
        df = pd.read_csv(p)
        score = score_column if score_column in df.columns else ("score" if "score" in df.columns else None)
        if label_column not in df.columns or score is None:
            raise ValueError(f"predictions CSV {p} needs a label column {label_column!r} and a score column "
                             f"{score_column!r} (or 'score', as heatmap CSVs have); got {list(df.columns)}.")
        part = pd.DataFrame({"y_true": df[label_column], "y_score": df[score]})
        if group_column and group_column in df.columns:
            part["group"] = df[group_column].astype(str)
        elif len(paths) > 1:
            part["group"] = slide_stem(p).removesuffix("_scores")
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def evaluate_predictions(predictions, out, *, pos_label=None, thresholds=None, label_column="y_true",
                         score_column="y_score", group_column="group", slide_aggregate="max", unit="patch",
                         n_bootstrap=2000, seed=0, title=None):
    """ROC report of per-patch (or per-image) predictions, patch-level and slide-level, written to ``out``.

    Parameters
    ----------
    predictions : str, path or list of them
        CSV(s) with a label and a score column (``medfeat heatmap`` writes ``x,y,score,y_true,group``). Rows
        whose label is -1 (no label, e.g. an ignored annotation class) are left out. With several files and
        no group column, each file is one group.
    out : str or path
        HTML report; the figures go to the same name with ``.json``, the thresholds of the operating
        points to ``<out stem>.thresholds.json`` (pass it as ``thresholds=`` on test data) and the AUCs
        with their intervals to ``<out stem>.summary.json``.
    pos_label : scalar, optional
        The positive label when labels are not 0/1.
    thresholds : dict, str or path, optional
        Thresholds fixed beforehand (a dict or a file for :func:`read_thresholds`), e.g. from validation.
    label_column, score_column, group_column : str
    slide_aggregate : {"max", "mean", "median", "top5_mean"}
        Score of a group (slide) at slide level.
    unit : str, default "patch"
    n_bootstrap, seed, title

    Returns
    -------
    EvaluationResult
    """
    from medfeat.evaluation import Report, roc_report, slide_level_roc

    paths = [predictions] if isinstance(predictions, (str, Path)) else list(predictions)
    df = _read_predictions(paths, label_column=label_column, score_column=score_column, group_column=group_column)
    notes = []
    unlabelled = df["y_true"].astype(str).isin(["-1", "-1.0"])
    if unlabelled.any():
        notes.append(f"{int(unlabelled.sum())} rows with label -1 (no label) were left out.")
        df = df[~unlabelled]
    if isinstance(thresholds, (str, Path)):
        thresholds = read_thresholds(thresholds)
    y = df["y_true"].to_numpy()
    if pos_label is not None and y.dtype.kind in "iuf":
        try:
            pos_label = type(y[0].item())(pos_label)
        except (TypeError, ValueError):
            pass
    groups = df["group"].to_numpy() if "group" in df.columns else None
    kw = dict(pos_label=pos_label, thresholds=thresholds, random_state=seed, n_bootstrap=n_bootstrap)
    patch = roc_report(y, df["y_score"].to_numpy(), groups=groups, unit=unit, **kw)
    slide = None
    if groups is not None:
        per = len(np.unique(groups))
        if per >= 2:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    slide = slide_level_roc(y, df["y_score"].to_numpy(), groups, aggregate=slide_aggregate,
                                            **{**kw, "thresholds": None})
                except ValueError as exc:
                    notes.append(f"No slide-level ROC: {exc}")
            for w in caught:
                warnings.warn(w.message, w.category, stacklevel=2)
    out = Path(out)
    report = Report(title or f"ROC report: {', '.join(Path(p).name for p in paths[:3])}")
    report.add_data_summary(y, groups=groups, name="Predictions", source=", ".join(str(p) for p in paths[:5]))
    report.add_roc(f"{unit} level", patch)
    if slide is not None:
        report.add_roc(f"slide level ({slide_aggregate})", slide)
    for n in notes:
        report.add_text(n, title="Note")
    saved = report.save(out)
    thr_path = out.with_name(out.stem + ".thresholds.json")
    _write_text(thr_path, json.dumps({"thresholds": patch.thresholds, "source": str(out), "unit": unit,
                                      "fixed": bool(thresholds is not None)}, indent=2))

    def brief(rep):
        return None if rep is None else {
            "auc": rep.auc, "auc_ci": [None if not math.isfinite(v) else v for v in rep.auc_ci],
            "ci_method": rep.ci_method, "unit": rep.unit, "n": rep.n_samples, "n_positive": rep.n_positive,
            "n_negative": rep.n_negative, "n_groups": rep.n_groups, "notes": list(rep.notes)}

    summary_path = out.with_name(out.stem + ".summary.json")
    _write_text(summary_path, json.dumps({"patch": brief(patch), "slide": brief(slide),
                                          "slide_aggregate": slide_aggregate if slide is not None else None,
                                          "notes": notes}, indent=2))
    return EvaluationResult(patch=patch, slide=slide, notes=notes,
                            paths={"html": saved.html, "json": saved.json, "thresholds": thr_path,
                                   "summary": summary_path})


def _sidecar(npy):
    meta_path = Path(str(npy) + ".json")
    if not meta_path.is_file():
        raise FileNotFoundError(f"heatmap {npy} has no metadata sidecar {meta_path.name} (written by `medfeat heatmap`); "
                                "without it the array cannot be mapped back onto the slide.")
    return json.loads(meta_path.read_text(encoding="utf-8"))


def froc_from_heatmaps(heatmaps, annotations_dir, out_dir, *, rule=None, threshold=None, min_distance=1,
                       max_mask_size=4096):
    """CAMELYON16 FROC from heatmap arrays (``medfeat heatmap``'s ``.npy`` + sidecar) and annotation files.

    Detections are the local maxima of each heatmap above ``threshold`` (default: each heatmap's decision
    threshold), placed at their patch's centre in level-0 pixels. Lesions are the positive-class polygons
    of each slide's annotation file, rasterised and merged by the CAMELYON16 rules.

    Parameters
    ----------
    heatmaps : str, path or list of them
        ``.npy`` files, or a directory holding them.
    annotations_dir : str or path
    out_dir : str or path
        Receives ``froc.json``, ``froc_per_slide.csv`` and ``froc.png``.
    rule : ClassRule, optional
        Class roles and what a slide without annotations is (default: an error).
    threshold : float, optional
    min_distance : int
        Minimum distance between detections, in heatmap cells.
    max_mask_size : int
        Longest side of the rasterised lesion masks.

    Returns
    -------
    FROCResult
    """
    from medfeat.evaluation import detections_from_heatmap, froc
    from medfeat.slides import rasterize_annotations, read_annotations, resolve_annotation_classes

    rule = rule or ClassRule()
    if isinstance(heatmaps, (str, Path)) and Path(heatmaps).is_dir():
        files = sorted(Path(heatmaps).glob("*.npy"))
    else:
        files = [Path(heatmaps)] if isinstance(heatmaps, (str, Path)) else [Path(p) for p in heatmaps]
    if not files:
        raise ValueError(f"no heatmap .npy files in {heatmaps}; run `medfeat heatmap` first.")
    dets, masks, mpps, downs = {}, {}, {}, {}
    for npy in files:
        if not npy.is_file():
            raise FileNotFoundError(f"heatmap file not found: {npy}")
        meta = _sidecar(npy)
        stem = npy.name[: -len(".npy")]
        arr = np.load(npy, allow_pickle=False)
        thr = float(meta["decision_threshold"]) if threshold is None else float(threshold)
        dets[stem] = detections_from_heatmap(arr, thr, origin=(0.0, 0.0), stride=float(meta["stride_level0"]),
                                             patch_size=float(meta["patch_size_level0"]), min_distance=min_distance)
        w, h = meta["slide_dimensions_level0"]
        slide_mpp = meta.get("slide_mpp")
        if not slide_mpp:
            raise ValueError(f"heatmap {npy} records no slide mpp; FROC needs it for the 75 um / 275 um rules.")
        mpps[stem] = float(np.mean(slide_mpp))
        ds = max(1.0, max(w, h) / float(max_mask_size))
        downs[stem] = ds
        path = find_annotation(stem, annotations_dir)
        if path is None:
            if rule.unannotated == "error":
                raise FileNotFoundError(
                    f"slide {stem!r} has no annotation file in {str(annotations_dir)!r}; say what it is with "
                    "--unannotated negative|skip."
                )
            if rule.unannotated == "skip":
                del dets[stem]
                continue
            masks[stem] = None
            continue
        anns = read_annotations(path)
        roles = resolve_annotation_classes([a.label for a in anns], positive=rule.positive, negative=rule.negative,
                                           ignore=rule.ignore, source=str(path))
        pos = [a for a in anns if roles[a.label] == "positive"]
        ign = [a for a in anns if roles[a.label] == "ignore"]
        if not pos:
            masks[stem] = None
            continue
        mask = rasterize_annotations(pos, (w, h), downsample=ds, exclude=())
        if ign:
            mask &= ~rasterize_annotations(ign, (w, h), downsample=ds, exclude=())
        masks[stem] = mask
    if not masks:
        raise ValueError("no slide left to score (every slide was skipped).")
    res = froc(dets, masks, mpp=mpps, mask_downsample=downs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res.to_json(out / "froc.json")
    import io

    buf = io.StringIO()
    res.per_slide.to_csv(buf)
    _write_text(out / "froc_per_slide.csv", buf.getvalue())
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    res.plot(fig.add_subplot(1, 1, 1))
    _write_atomic(out / "froc.png", lambda fh: fig.savefig(fh, format="png"))
    return res


def predict_image_dir(model, image_dir, out, *, batch_size=64, positive_label=None, progress=True):
    """Score every image under ``image_dir`` with a saved image model (e.g. ``medfeat compare``'s ``model.skops``).

    Parameters
    ----------
    model : estimator or str or path
        A fitted image-to-score pipeline, or a file written by :func:`medfeat.pipelines.save_model`
        (loaded with the default trusted types).
    image_dir : str or path
        Folder searched recursively for 8-bit images (PNG, JPEG, TIFF, BMP).
    out : str or path
        CSV to write: ``path`` (relative to ``image_dir``), ``score`` and, when the image sits in a
        sub-folder named like one of the model's classes, ``y_true`` (that folder's name); plus a
        ``<out>.json`` sidecar naming the model and what the score is.
    batch_size : int, default 64
    positive_label : optional
        The positive class (default: the one the model recorded, else the second class).

    Returns
    -------
    pandas.DataFrame
    """
    import io

    import pandas as pd
    from PIL import Image

    from .heatmap import is_calibrated, positive_scores
    from .persist import load_model

    meta = {}
    if isinstance(model, (str, Path)):
        if not Path(model).is_file():
            raise FileNotFoundError(f"model file not found: {model}")
        loaded = load_model(model)
        model, meta = loaded.pipeline, dict(loaded.metadata or {})
    root = Path(image_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"image directory not found: {image_dir}")
    exts = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)
    if not files:
        raise ValueError(f"no images ({', '.join(exts)}) under {image_dir}.")
    if positive_label is None and meta.get("positive") is not None:
        positive_label = meta["positive"]
    scores, kind = [], None
    for start in range(0, len(files), int(batch_size)):
        batch = []
        for f in files[start:start + int(batch_size)]:
            with Image.open(f) as im:
                batch.append(np.asarray(im.convert("RGB")))
        s, kind = positive_scores(model, batch, positive_label)
        scores.append(np.asarray(s, dtype=np.float64))
    rel = [str(f.relative_to(root)) for f in files]
    df = pd.DataFrame({"path": rel, "score": np.concatenate(scores)})
    classes = [str(c) for c in getattr(model, "classes_", [])]
    parents = [Path(r).parts[0] if len(Path(r).parts) > 1 else None for r in rel]
    if classes and all(p in classes for p in parents):
        df["y_true"] = parents
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    _write_text(out, buf.getvalue())
    side = {"model": meta, "kind": kind, "calibrated": is_calibrated(model),
            "score_name": "probability (calibrated)" if kind == "probability" and is_calibrated(model)
            else "score (uncalibrated, not a probability)", "positive_label": None if positive_label is None
            else str(positive_label), "n_images": len(df), "image_dir": str(root)}
    _write_text(out.with_name(out.name + ".json"), json.dumps(side, indent=2, default=str))
    return df


# --------------------------------------------------------------------------------------------------------
# heatmaps of many slides (the `medfeat heatmap` command)
# --------------------------------------------------------------------------------------------------------


def grid_spec_for_model(model, metadata=None, **overrides):
    """The :class:`~medfeat.slides.GridSpec` a saved model scores slides on, with ``overrides`` applied.

    A :class:`~medfeat.pipelines.SlidePatchClassifier` carries its own (:attr:`grid_spec`); a plain image
    pipeline gets it from its saved metadata (``grid_spec``, or the ``mpp``/``size``/``stride``/``scales``
    keys of older files), else the defaults. ``overrides`` whose value is None are ignored (options left
    unset on the command line).

    Examples
    --------
    >>> grid_spec_for_model(object(), {"mpp": 1.0, "size": 64}, stride=32).describe()
    '1 um/px, 64 px, stride 32, tissue otsu >= 0.5'
    """
    from medfeat.slides import GridSpec

    spec = getattr(model, "grid_spec", None)
    if spec is None:
        metadata = metadata or {}
        if metadata.get("grid_spec"):
            spec = GridSpec.from_dict(metadata["grid_spec"])
        else:
            legacy = {k: metadata[k] for k in ("mpp", "size", "stride") if metadata.get(k) is not None}
            if metadata.get("scales") is not None:
                legacy["scales"] = tuple(metadata["scales"])
            spec = GridSpec.build(None, **legacy)
    changes = {k: v for k, v in overrides.items() if v is not None}
    return spec.replace(**changes) if changes else spec


@dataclass
class HeatmapRun:
    """Outcome of one slide in :func:`heatmap_slides`.

    Attributes
    ----------
    slide : str
    status : {"written", "failed"}
    paths : dict of str to pathlib.Path
        The files written (png, geojson, npy, csv).
    n_patches : int
    score_name : str
        What the scores are ("probability", "score", "decision value").
    error : str or None
        One-line reason for a failure.
    """

    slide: str
    status: str
    paths: dict = field(default_factory=dict)
    n_patches: int = 0
    score_name: str = ""
    error: str | None = None


def _store_for(slide, features_dir):
    store = Path(features_dir) / f"{slide_stem(slide)}.h5"
    if not store.is_file():
        raise FileNotFoundError(f"no feature store {store.name} for slide {slide} in --features-dir {features_dir}")
    return store


def heatmap_slides(model, slides, out_dir, *, metadata=None, grid=None, features_dir=None, annotations_dir=None,
                   rule=None, tta=False, batch_size=None, num_workers=None, progress=True, slide_mpp=None,
                   positive_label=None, threshold=None, objects="both", positive_class="Tumor",
                   negative_class="Normal", errors="skip"):
    """Heatmaps of several slides with one model, each written as PNG, QuPath GeoJSON, NPY and score CSV.

    Parameters
    ----------
    model : fitted estimator
        A :class:`~medfeat.pipelines.SlidePatchClassifier` (from :func:`train_from_feature_stores`) or a
        fitted image pipeline.
    slides : list of str or path
    out_dir : str or path
        ``<out_dir>/<slide stem>.png``, ``.geojson``, ``.npy``, ``_scores.csv``
        (:func:`write_heatmap_outputs`).
    metadata : dict, optional
        The model file's metadata (:func:`~medfeat.pipelines.load_model`), for the grid of plain pipelines.
    grid : GridSpec, optional
        The grid; default :func:`grid_spec_for_model` (the model's own).
    features_dir : str or path, optional
        Score the stored features ``<features_dir>/<slide stem>.h5`` instead of extracting again (a model from
        :func:`train_from_feature_stores`; the store must have the model's mpp and patch size).
    annotations_dir : str or path, optional
        Annotation directory: each patch's true label goes into the score CSV (``y_true``).
    rule : ClassRule, optional
        Annotation classes for ``annotations_dir``.
    tta, batch_size, num_workers, progress, slide_mpp, positive_label
        As in :class:`~medfeat.pipelines.SlideHeatmap`.
    threshold, objects, positive_class, negative_class
        As in :func:`write_heatmap_outputs`. (The parameters are those of
        :func:`medfeat.pipelines.distributed.heatmap_slides_many`, which runs the same on Dask.)
    errors : {"skip", "raise"}
        A slide that fails is reported (RuntimeWarning, ``"failed"`` result) and skipped, or re-raised.

    Returns
    -------
    list of HeatmapRun
        One per slide, in the given order.
    """
    from medfeat.slides import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS

    from .extraction import check_slides
    from .heatmap import SlideHeatmap, heatmap_from_features
    from .labels import check_unique_stems, slide_labels
    from .slide_train import SlidePatchClassifier

    if errors not in ("skip", "raise"):
        raise ValueError(f"errors must be 'skip' or 'raise', got {errors!r}.")
    slides = [str(s) for s in slides] if features_dir is not None else check_slides(slides)
    check_unique_stems(slides)  # outputs are named <stem>.png/.geojson/.npy
    if annotations_dir is not None and not Path(annotations_dir).is_dir():
        raise FileNotFoundError(f"annotations directory not found: {annotations_dir}")
    if features_dir is not None and not isinstance(model, SlidePatchClassifier):
        raise ValueError("features_dir needs a model written by `medfeat train` (a classifier on stored features).")
    spec = grid if grid is not None else grid_spec_for_model(model, metadata)
    maker = SlideHeatmap(model, spec, tta=tta, progress=progress, slide_mpp=slide_mpp, positive_label=positive_label,
                         batch_size=DEFAULT_BATCH_SIZE if batch_size is None else batch_size,
                         num_workers=DEFAULT_NUM_WORKERS if num_workers is None else num_workers)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for slide in slides:
        stem = slide_stem(slide)
        try:
            if features_dir is not None:
                hm = _heatmap_from_store(model, _store_for(slide, features_dir), heatmap_from_features)
            else:
                hm = maker.predict(slide)
            y_true = slide_labels(stem, hm.grid, annotations_dir, rule) if annotations_dir is not None else None
            paths = write_heatmap_outputs(hm, out, stem, threshold=threshold, y_true=y_true, objects=objects,
                                          positive_class=positive_class, negative_class=negative_class)
            runs.append(HeatmapRun(slide, "written", paths, len(hm.scores), hm.score_name))
        except Exception as exc:  # noqa: BLE001 - one bad slide must not stop the others
            if errors == "raise":
                raise
            message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            warnings.warn(f"skipping slide {slide}: {message}", RuntimeWarning, stacklevel=2)
            runs.append(HeatmapRun(slide, "failed", error=message))
    return runs


def _heatmap_from_store(model, store, heatmap_from_features):
    hm = heatmap_from_features(store, model.classifier_, getattr(model, "positive_label_", None))
    if float(hm.grid.mpp) != float(model.mpp) or int(hm.grid.size) != int(model.size):
        raise ValueError(f"store {store} was extracted at {hm.grid.mpp} mpp / {hm.grid.size} px but the model was "
                         f"trained at {model.mpp} mpp / {model.size} px.")
    hm.threshold = getattr(model, "threshold_", None)
    return hm
