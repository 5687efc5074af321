"""Domain shift across slides on the Kather 2016 colorectal tiles: what each lever buys on unseen slides.

Unit of analysis: the tile for the classifier, the *slide* for validation. Leave-one-slide-out (LOSO)
cross-validation over the 6 source slides: every fold trains on 5 slides and scores the 6th, which the
model never saw (not its tiles, not its colours). Out-of-fold predictions are pooled over the 6 folds;
confidence intervals resample the 6 slides with replacement (slide bootstrap) -- with only 6 slides they
are coarse and probably too narrow. Tile-level 5-fold CV (tiles of one slide on both sides) is shown
beside it: the optimistic figure usually reported.

Levers, each alone, then combined:

- stain normalisation to an *external* reference set: 16 tissue tiles of the OpenSlide CMU-1-Small-Region
  H&E slide (another lab and scanner, never a test slide), pooled by the normalisers' medians --
  Reinhard, Macenko, Vahadane (medfeat.features.stain);
- stain augmentation of the training side: K copies per training tile with HED jitter (Tellez et al. 2019)
  or brightness/contrast/saturation/hue jitter (Liu et al. 2017) -- features of the copies are added to the
  training set only (what medfeat.features.AugmentedTraining does);
- test-time augmentation with the 8 dihedral transforms, averaged at the feature level (train and test,
  DihedralMean) or the score level (test only, DihedralTTA);
- label-free feature alignment: per-slide feature standardisation, CORAL towards the average within-slide
  covariance of the training slides (medfeat.features.alignment); each slide, the held-out one included,
  is aligned with its own tiles' features only.

Classifier: medfeat's "logreg" preset (standardise + balanced logistic regression), the same in every
configuration, no tuning. Deep features: frozen EfficientNet-Lite0 (offline weights) global-average pooled
``bn2`` (the 1280-d embedding, DeepFeatures' default layer) on the native 150 px tiles (input_size=None:
no upsampling; 0.45x the compute of 224 px). Handcrafted: LBP + GIST + colour + GLCM (HandcraftedFeatures).

Combinations: the levers that raised the LOSO balanced accuracy alone (the better variant of each kind)
are combined in every subset of two or more. The "best" row is chosen on the same LOSO results it is
reported on: best-of-N, optimistic.

CPU budget (a 2-core machine shared by several jobs; one deep pass over the 480 tiles took 2-3 minutes):
2 augmented copies per tile, not 4; no augmentation or TTA for the handcrafted features; augmentation and
TTA combined with raw tiles only (not with normalised ones). The JSON lists what was not computed.

Features of every tile variant are cached under benchmarks/results/cache/ (ignored by git), so an
interrupted run resumes and the analysis can be re-run without re-extracting.

Data: Kather JN et al., Sci Rep 6:27988 (2016), doi:10.5281/zenodo.53169, CC BY 4.0 (../shared/data).

Usage: python benchmarks/study_domain_shift.py [--features-only] [--quick]
"""

import argparse
import hashlib
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = RESULTS / "cache" / "domain_shift"
DATASET = "kather2016_crc_texture"
DEEP_LAYERS = ("blocks.4", "blocks.6", "bn2")
PRIMARY_LAYER = "bn2"
N_COPIES = 2  # augmented copies per training tile (2, not 4: CPU budget on a shared machine)
AUG_SEED = 1000
VIEWS = [(k, f) for k in range(4) for f in (False, True)]  # view 0 is the identity
CACHE_VERSION = "v1"


def _load():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def _write_atomic(path, data):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, str):
        tmp.write_text(data)
    else:
        with open(tmp, "wb") as fh:
            np.savez(fh, **data)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# data and tile variants
# ----------------------------------------------------------------------------------------------
def load_data():
    from _data import dataset_folder  # benchmarks/_data.py: ../shared/data or $MEDFEAT_DATA, checksums verified

    from medfeat.datasets import load_image_folder

    ds = load_image_folder(dataset_folder(DATASET), group_column="source_slide")
    return ds


def reference_tiles(n=16, seed=0):
    """n tissue tiles of 150 px at 0.5 um/px from CMU-1-Small-Region (an external H&E reference)."""
    from medfeat.datasets import cmu_small_region
    from medfeat.slides import PatchGrid, SlideReader, read_patches

    with SlideReader.open(cmu_small_region()) as slide:
        grid = PatchGrid.from_reader(slide, mpp=0.5, size=150, tissue="otsu", min_tissue=0.9)
        idx = np.sort(np.random.default_rng(seed).choice(len(grid), size=min(n, len(grid)), replace=False))
        patches = np.asarray(read_patches(slide, grid, indices=idx))
    return patches[:, 0] if patches.ndim == 5 else patches


class Variants:
    """Images of every tile variant, computed lazily: stain-normalised, augmented, rotated."""

    def __init__(self, images, tag):
        self.images = images
        self.tag = tag
        self._norm = {}
        self.passed_through = {}

    def stain(self, name):
        from medfeat.features import MacenkoNormalizer, ReinhardNormalizer, StainPassThroughWarning, VahadaneNormalizer

        if name == "raw":
            return self.images
        if name not in self._norm:
            # normalised tiles are cached too: Vahadane took ~10 min for the 480 tiles on the loaded machine
            path = CACHE / f"images__{self.tag}__{name}.npz"
            if path.exists():
                with np.load(path, allow_pickle=False) as z:
                    self._norm[name] = z["images"]
                    self.passed_through[name] = int(z["passed_through"])
                return self._norm[name]
            cls = {"reinhard": ReinhardNormalizer, "macenko": MacenkoNormalizer, "vahadane": VahadaneNormalizer}[name]
            norm = cls().fit(reference_tiles())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", StainPassThroughWarning)
                self._norm[name] = norm.transform(self.images)
            self.passed_through[name] = int(norm.n_passed_through_)
            CACHE.mkdir(parents=True, exist_ok=True)
            _write_atomic(path, {"images": self._norm[name], "passed_through": np.asarray(self.passed_through[name])})
        return self._norm[name]

    def get(self, variant):
        """variant: '<stain>', '<stain>+hed<k>', '<stain>+color<k>' or '<stain>@d<i>'."""
        from medfeat.features import ColorJitter, HEDJitter, dihedral

        if "@d" in variant:
            stain, i = variant.split("@d")
            k, f = VIEWS[int(i)]
            return dihedral(self.stain(stain), k, f)
        if "+" in variant:
            stain, aug = variant.split("+")
            kind, k = aug.rstrip("0123456789"), int(aug[len(aug.rstrip("0123456789")):])
            cls = {"hed": HEDJitter, "color": ColorJitter}[kind]
            return cls(random_state=AUG_SEED + k).fit().transform(self.stain(stain))
        return self.stain(variant)


def _fingerprint(paths, input_size):
    h = hashlib.sha256()
    h.update(CACHE_VERSION.encode())
    h.update(repr((DEEP_LAYERS, input_size, AUG_SEED)).encode())
    for p in paths:
        h.update(str(p).encode())
    return h.hexdigest()[:12]


class FeatureCache:
    """Deep and handcrafted features of each variant, one npz per (variant, family), resumable."""

    def __init__(self, variants, paths, input_size, timings):
        self.variants = variants
        self.tag = _fingerprint(paths, input_size)
        self.input_size = input_size
        self.timings = timings
        self._mem = {}
        self._models = {}
        CACHE.mkdir(parents=True, exist_ok=True)

    def _model(self, family):
        if family not in self._models:
            from medfeat.features import DeepFeatures, HandcraftedFeatures

            if family == "deep":
                m = DeepFeatures(layers=list(DEEP_LAYERS), input_size=self.input_size, device="cpu", batch_size=32)
            else:
                m = HandcraftedFeatures(n_jobs=1)
            self._models[family] = m.fit(self.variants.images[:2])
        return self._models[family]

    def get(self, variant, family, layer=PRIMARY_LAYER):
        key = (variant, family)
        if key not in self._mem:
            path = CACHE / f"{self.tag}__{family}__{variant.replace('@', '_at_').replace('+', '_plus_')}.npz"
            if path.exists():
                with np.load(path, allow_pickle=False) as z:
                    self._mem[key] = {k: z[k] for k in z.files}
            else:
                t0 = time.perf_counter()
                images = self.variants.get(variant)
                t1 = time.perf_counter()
                model = self._model(family)
                F = model.transform(images)
                names = np.asarray(model.get_feature_names_out(), dtype=str)
                t2 = time.perf_counter()
                data = {"X": np.asarray(F, np.float32), "names": names}
                _write_atomic(path, data)
                self._mem[key] = data
                self.timings[f"{family}:{variant}"] = dict(images_s=round(t1 - t0, 1), features_s=round(t2 - t1, 1),
                                                           load=_load())
                print(f"  features {family:11s} {variant:16s} images {t1 - t0:6.1f} s, features {t2 - t1:6.1f} s "
                      f"(load {_load()})", flush=True)
        d = self._mem[key]
        if family == "deep":
            layers = DEEP_LAYERS if layer == "multi" else (layer,)
            return np.concatenate([d["X"][:, np.char.startswith(d["names"], f"efficientnet_lite0.{name}__")]
                                   for name in layers], axis=1)
        return d["X"]


# ----------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------
def _scores_all_classes(clf, X, classes):
    proba = clf.predict_proba(X)
    out = np.zeros((len(X), len(classes)))
    for j, c in enumerate(clf.classes_):
        out[:, list(classes).index(c)] = proba[:, j]
    return out


def evaluate(cache, y, slides, classes, *, family, stain="raw", augment=None, tta=None, align=None, layer=PRIMARY_LAYER,
             tile_level=False, rows=None):
    """Out-of-fold class probabilities (n, k) of one configuration, LOSO (or tile-level 5-fold).

    ``rows``: run on these tiles only (LOSO over their slides; ``y`` and ``slides`` are the full arrays);
    the probabilities returned are those of the given rows, in order.
    """
    from sklearn.model_selection import StratifiedKFold

    from medfeat.classifiers import make_classifier
    from medfeat.features import CORAL, SlideStandardizer

    def feats(variant):
        X = cache.get(variant, family, layer)
        return X if rows is None else X[rows]

    if rows is not None:
        y, slides = y[rows], slides[rows]

    base = feats(stain)
    views = [base] + [feats(f"{stain}@d{i}") for i in range(1, 8)] if tta else None
    copies = [feats(f"{stain}+{augment}{k}") for k in range(N_COPIES)] if augment else []
    if tta == "feature" and augment:
        raise ValueError("feature-level TTA with augmentation would need the 8 views of every copy; not computed")
    X_all = np.mean(views, axis=0) if tta == "feature" else base

    if tile_level:
        splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X_all, y))
    else:
        splits = [(np.flatnonzero(slides != s), np.flatnonzero(slides == s)) for s in np.unique(slides)]
    out = np.zeros((len(y), len(classes)))
    for train, test in splits:
        Xtr = np.concatenate([X_all[train]] + [c[train] for c in copies])
        reps = 1 + len(copies)
        ytr, gtr = np.tile(y[train], reps), np.tile(slides[train], reps)
        aligner = None
        if align == "slide_std":
            aligner = SlideStandardizer()
        elif align == "coral":
            aligner = CORAL()
        if aligner is not None:
            Xtr = aligner.fit_transform(Xtr, groups=gtr)
        clf = make_classifier("logreg").fit(Xtr, ytr)

        def score(X):
            Xt = aligner.transform(X, groups=slides[test]) if aligner is not None else X
            return _scores_all_classes(clf, Xt, classes)

        if tta == "score":
            out[test] = np.mean([score(v[test]) for v in views], axis=0)
        else:
            out[test] = score(X_all[test])
    return out


def cached_evaluate(cache, y, slides, classes, **kw):
    """evaluate(), with the out-of-fold probabilities kept on disk (a re-run only redoes the statistics)."""
    full = dict(stain="raw", augment=None, tta=None, align=None, layer=PRIMARY_LAYER, tile_level=False)
    full.update(kw)
    if full.get("rows") is not None:
        full["rows"] = hashlib.sha256(np.asarray(full["rows"], np.int64).tobytes()).hexdigest()[:12]
    else:
        full.pop("rows", None)
    key = hashlib.sha256(repr(sorted(full.items())).encode()).hexdigest()[:12]
    path = CACHE / f"{cache.tag}__proba__{key}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    proba = evaluate(cache, y, slides, classes, **kw)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, proba)
    os.replace(tmp, path)
    return proba


def nested_selection(cache, y, slides, classes, family, configs, exclude):
    """An unbiased estimate of "use the best configuration": for each held-out slide, the configuration is
    chosen by LOSO on the *other* slides only (their balanced accuracy over the classes not in ``exclude``),
    then trained on all the other slides and scored on the held-out one. Returns (probabilities, choices)."""
    from sklearn.metrics import recall_score

    classes = np.asarray(classes)
    keep = [c for c in classes if c not in exclude]
    out = np.zeros((len(y), len(classes)))
    chosen = {}
    for s in np.unique(slides):
        inner = np.flatnonzero(slides != s)
        present = [c for c in keep if np.any(y[inner] == c)]
        scores = []
        for cfg in configs:
            p = cached_evaluate(cache, y, slides, classes, family=family, rows=inner, **cfg)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores.append(float(np.mean(recall_score(y[inner], classes[p.argmax(axis=1)], labels=present,
                                                         average=None))))
        best = configs[int(np.argmax(scores))]
        full = cached_evaluate(cache, y, slides, classes, family=family, **best)
        out[slides == s] = full[slides == s]
        chosen[str(s)] = {"config": _label(best), "inner_balanced_accuracy_excl": max(scores)}
        print(f"    nested {family:11s} held out {s}: chose {_label(best)} (inner {max(scores):.3f})", flush=True)
    return out, chosen


def metrics(y, proba, slides, classes, *, exclude=(), n_boot=1000, seed=0):
    """Pooled balanced accuracy and macro AUC with slide-bootstrap CIs, per-class recall, per-slide figures."""
    from sklearn.metrics import balanced_accuracy_score, recall_score

    from medfeat.pipelines.patch import macro_ovr_auc

    classes = np.asarray(classes)
    pred = classes[proba.argmax(axis=1)]
    keep_cls = [c for c in classes if c not in exclude]

    def bal(yt, pr, cls=None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if cls is None:
                return float(balanced_accuracy_score(yt, pr))
            present = [c for c in cls if np.any(yt == c)]
            return float(np.mean(recall_score(yt, pr, labels=present, average=None)))

    res = dict(
        balanced_accuracy=bal(y, pred),
        macro_auc=macro_ovr_auc(y, proba, list(classes)),
        accuracy=float(np.mean(pred == y)),
    )
    if exclude:
        res["balanced_accuracy_excl"] = bal(y, pred, keep_cls)
    res["recall"] = {str(c): float(np.mean(pred[y == c] == c)) for c in classes}
    res["per_slide_balanced_accuracy"] = {str(s): bal(y[slides == s], pred[slides == s]) for s in np.unique(slides)}
    # slide bootstrap: resample the slides with replacement, pool their tiles
    rng = np.random.default_rng(seed)
    uniq = np.unique(slides)
    rows = {s: np.flatnonzero(slides == s) for s in uniq}
    boot = {"balanced_accuracy": [], "macro_auc": [], "balanced_accuracy_excl": []}
    for _ in range(n_boot):
        idx = np.concatenate([rows[s] for s in rng.choice(uniq, len(uniq), replace=True)])
        if len(np.unique(y[idx])) < 2:
            continue
        boot["balanced_accuracy"].append(bal(y[idx], pred[idx]))
        boot["macro_auc"].append(macro_ovr_auc(y[idx], proba[idx], list(classes)))
        if exclude:
            boot["balanced_accuracy_excl"].append(bal(y[idx], pred[idx], keep_cls))
    for k, v in boot.items():
        if v:
            res[f"{k}_ci"] = [float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))]
    return res


# ----------------------------------------------------------------------------------------------
# the study
# ----------------------------------------------------------------------------------------------
def _skipped(family, cfg):
    """Levers not run for handcrafted features, to fit the CPU budget of a shared 2-core machine."""
    if family == "handcrafted" and cfg.get("layer"):
        return True  # layers are a deep-feature lever
    return family == "handcrafted" and bool(cfg.get("tta") or cfg.get("augment") or cfg.get("stain") == "vahadane")


def _label(cfg):
    parts = []
    if cfg.get("stain", "raw") != "raw":
        parts.append(cfg["stain"])
    if cfg.get("augment"):
        parts.append(f"{cfg['augment']} aug x{N_COPIES}")
    if cfg.get("tta"):
        parts.append(f"TTA-8 ({cfg['tta']})")
    if cfg.get("align"):
        parts.append({"slide_std": "slide standardisation", "coral": "CORAL"}[cfg["align"]])
    if cfg.get("layer") == "multi":
        parts.append("multi-layer (" + " + ".join(DEEP_LAYERS) + ")")
    return " + ".join(parts) if parts else "none (baseline)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features-only", action="store_true", help="only fill the feature cache")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 levers, 50 bootstrap resamples")
    ap.add_argument("--input-size", type=int, default=None, help="resize tiles for the CNN (default: native 150 px)")
    ap.add_argument("--n-boot", type=int, default=1000,
                    help="slide-bootstrap resamples (6 slides have only 462 distinct resamples)")
    ap.add_argument("--other-layers", action="store_true",
                    help="also report the baseline of the other cached Lite0 layers (context, not used for selection)")
    ap.add_argument("--skip-nested", action="store_true",
                    help="leave out the nested selection (each configuration re-run on 5 slides per held-out slide)")
    ap.add_argument("--skip-tta", action="store_true",
                    help="leave out dihedral TTA (7 more CNN passes over the tiles); the output says so")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    load_start = _load()

    ds = load_data()
    y = np.asarray(ds.labels)
    slides = np.asarray(ds.groups)
    classes = np.unique(y)
    timings = {}
    variants = Variants(np.asarray(ds.images), _fingerprint(list(ds.paths), None))
    cache = FeatureCache(variants, list(ds.paths), args.input_size, timings)
    n_boot = 50 if args.quick else args.n_boot

    # which classes cannot be learnt when their only slide(s) are held out
    import pandas as pd

    table = pd.crosstab(pd.Series(y, name="class"), pd.Series(slides, name="slide"))
    single_slide = [str(c) for c in table.index if (table.loc[c] > 0).sum() == 1]
    exclude = tuple(single_slide)

    alone = [dict()]
    stains = ["reinhard", "macenko", "vahadane"]
    alone += [dict(stain=s) for s in stains]
    alone += [dict(augment="hed"), dict(augment="color")]
    if not args.skip_tta:
        alone += [dict(tta="feature"), dict(tta="score")]
    alone += [dict(align="slide_std"), dict(align="coral")]
    alone += [dict(layer="multi")]
    if args.quick:
        alone = [dict(), dict(stain="reinhard"), dict(align="slide_std")]

    families = ["deep", "handcrafted"]
    results = {"deep": {}, "handcrafted": {}}
    print(f"{len(y)} tiles, {len(classes)} classes, {len(np.unique(slides))} slides; classes on one slide only: "
          f"{single_slide}; load average {load_start}", flush=True)

    def run(family, cfg, tile_level=False):
        proba = cached_evaluate(cache, y, slides, classes, family=family, tile_level=tile_level, **cfg)
        m = metrics(y, proba, slides, classes, exclude=exclude, n_boot=n_boot)
        m["config"] = dict(cfg)
        m["label"] = _label(cfg) + (" [tile-level 5-fold CV]" if tile_level else "")
        print(f"  {family:11s} {m['label']:55s} bal.acc {m['balanced_accuracy']:.3f} "
              f"(excl. {m.get('balanced_accuracy_excl', float('nan')):.3f}) macro AUC {m['macro_auc']:.3f}", flush=True)
        return m

    # 1) features (the expensive part; cached)
    needed = {"deep": set(), "handcrafted": set()}
    for cfg in alone:
        stain = cfg.get("stain", "raw")
        for fam in families:
            if _skipped(fam, cfg):
                continue
            needed[fam].add(stain)
            if cfg.get("augment"):
                needed[fam].update(f"{stain}+{cfg['augment']}{k}" for k in range(N_COPIES))
            if cfg.get("tta"):
                needed[fam].update(f"{stain}@d{i}" for i in range(1, 8))
    def order(v):  # cheapest, most informative first, so an interrupted run has the levers alone
        return ("@d" in v, "+" in v, v != "raw", v)

    for fam in families:
        for v in sorted(needed[fam], key=order):
            cache.get(v, fam)
    if args.features_only:
        print(f"feature cache filled in {time.perf_counter() - t_start:.0f} s")
        return

    # 2) each lever alone, and the tile-level figure
    for fam in families:
        results[fam]["tile_level"] = run(fam, dict(), tile_level=True)
        results[fam]["alone"] = []
        for cfg in alone:
            if _skipped(fam, cfg):
                continue
            results[fam]["alone"].append(run(fam, cfg))
        if fam == "deep" and args.other_layers:
            results[fam]["other_layers_baseline"] = {
                layer: metrics(y, cached_evaluate(cache, y, slides, classes, family=fam, layer=layer), slides, classes,
                               exclude=exclude, n_boot=0)["balanced_accuracy"]
                for layer in DEEP_LAYERS if layer != PRIMARY_LAYER
            }

    # 3) combinations: the levers that helped alone (LOSO balanced accuracy above the baseline), all
    #    subsets of two or more of them (stain normalisers and the two TTA or alignment variants are
    #    alternatives: the better one of each kind enters). Chosen on the same folds: best-of-N.
    for fam in families:
        rows_alone = results[fam]["alone"]
        base = rows_alone[0]["balanced_accuracy"]
        helpful = {}
        for kind in ("stain", "augment", "tta", "align", "layer"):
            cands = [r for r in rows_alone if r["config"].get(kind) and r["balanced_accuracy"] > base]
            if cands:
                helpful[kind] = max(cands, key=lambda r: r["balanced_accuracy"])["config"][kind]
        if "stain" in helpful and ("augment" in helpful or "tta" in helpful):
            # copies and views exist for raw tiles only (CPU budget): keep whichever side helped more
            best_stain = max(r["balanced_accuracy"] for r in rows_alone if r["config"].get("stain") == helpful["stain"])
            best_other = max(r["balanced_accuracy"] for r in rows_alone
                             if r["config"].get("augment") or r["config"].get("tta"))
            if best_stain >= best_other:
                helpful.pop("augment", None), helpful.pop("tta", None)
            else:
                helpful.pop("stain")
        if helpful.get("tta") == "feature" and "augment" in helpful:
            helpful["tta"] = "score"  # feature-level TTA would need the 8 views of every augmented copy
        kinds = sorted(helpful)
        rows = []
        import itertools

        for r in range(2, len(kinds) + 1):
            for subset in itertools.combinations(kinds, r):
                rows.append(run(fam, {k: helpful[k] for k in subset}))
        all_rows = rows_alone + rows
        best = max(all_rows, key=lambda r: r["balanced_accuracy"])
        results[fam]["helpful_alone"] = helpful
        results[fam]["combinations"] = rows
        results[fam]["best"] = dict(best, best_of_n=len(all_rows), optimistic=True)
        if not args.skip_nested:
            proba, chosen = nested_selection(cache, y, slides, classes, fam, [r["config"] for r in all_rows], exclude)
            m = metrics(y, proba, slides, classes, exclude=exclude, n_boot=n_boot)
            m.update(label="nested selection among the rows above (chosen on the other slides)", chosen=chosen,
                     candidates=len(all_rows))
            results[fam]["nested"] = m
            print(f"  {fam:11s} nested selection: bal.acc {m['balanced_accuracy']:.3f} "
                  f"(excl. {m.get('balanced_accuracy_excl', float('nan')):.3f})", flush=True)

    meta = dict(
        dataset=DATASET,
        n_tiles=int(len(y)),
        classes=[str(c) for c in classes],
        slides=[str(s) for s in np.unique(slides)],
        tiles_per_class_and_slide=table.to_dict(),
        classes_on_one_slide=single_slide,
        deep=dict(backbone="efficientnet_lite0", weights="offline ImageNet", layer=PRIMARY_LAYER, pool="avg",
                  input_size=args.input_size or "native 150 px"),
        classifier="medfeat logreg preset (StandardScaler + LogisticRegression C=0.1, class_weight=balanced)",
        validation="leave-one-slide-out (6 folds), out-of-fold predictions pooled; tile-level: StratifiedKFold(5)",
        ci=f"95% percentile slide bootstrap, {n_boot} resamples of the 6 slides (few groups: coarse, likely too narrow)",
        stain_reference="16 tissue tiles (150 px, 0.5 um/px) of CMU-1-Small-Region, pooled by median",
        augmentation=f"{N_COPIES} copies per training tile, seeds {AUG_SEED}+k",
        stain_passed_through=variants.passed_through,
        not_computed=[
            "handcrafted features with augmentation, TTA or Vahadane (CPU budget: 2 shared cores)",
            "augmentation or TTA of stain-normalised tiles (combinations use them with raw tiles only)",
            "feature-level TTA combined with augmentation (it would need the 8 views of every copy)",
        ] + (["dihedral TTA (run with --skip-tta: 7 more CNN passes did not fit the CPU budget of this run)"]
             if args.skip_tta else []),
        python=platform.python_version(),
        cpus=os.cpu_count(),
        load_average_start=load_start,
        load_average_end=_load(),
        seconds=round(time.perf_counter() - t_start, 1),
        feature_timings=timings,
        note="shared 2-core machine, other engineers' jobs running (see load averages); timings are not benchmarks",
    )
    out = dict(meta=meta, results=results)
    RESULTS.mkdir(exist_ok=True)
    name = "domain_shift_quick" if args.quick else "domain_shift"
    _write_atomic(RESULTS / f"{name}.json", json.dumps(out, indent=2, default=str))
    _write_atomic(RESULTS / f"{name}.md", markdown(out))
    print(markdown(out))


def _ci(r, key):
    ci = r.get(f"{key}_ci")
    v = r.get(key)
    if v is None:
        return "-"
    return f"{v:.3f} ({ci[0]:.3f}-{ci[1]:.3f})" if ci else f"{v:.3f}"


def markdown(out):
    meta, res = out["meta"], out["results"]
    excl = ", ".join(meta["classes_on_one_slide"]) or "none"
    lines = [
        "# Domain shift across slides: Kather 2016 colorectal tiles (480 tiles, 8 classes, 6 slides)",
        "",
        f"Leave-one-slide-out CV (the held-out slide is never seen in training), out-of-fold predictions pooled; "
        f"{meta['ci']}. Classifier: {meta['classifier']}. Deep: EfficientNet-Lite0 `{meta['deep']['layer']}` "
        f"(avg-pooled, {meta['deep']['input_size']}); handcrafted: LBP + GIST + colour + GLCM. Stain reference: "
        f"{meta['stain_reference']}. Augmentation: {meta['augmentation']}. "
        f"\"excl.\" = balanced accuracy over the classes other than {excl}, which lives on one slide and cannot be "
        "learnt when that slide is held out (so the all-class balanced accuracy cannot exceed 7/8 = 0.875).",
        "",
    ]
    for fam in ("deep", "handcrafted"):
        r = res[fam]
        lines += [f"## {fam}", "",
                  "| levers | balanced acc. (95% CI) | bal. acc. excl. | macro AUC (95% CI) |",
                  "|---|---|---|---|"]
        t = r["tile_level"]
        lines.append(f"| tile-level 5-fold CV, no lever (optimistic: slides on both sides) | {_ci(t, 'balanced_accuracy')} | "
                     f"{_ci(t, 'balanced_accuracy_excl')} | {_ci(t, 'macro_auc')} |")
        for row in r["alone"] + r.get("combinations", []):
            lines.append(f"| {row['label']} | {_ci(row, 'balanced_accuracy')} | {_ci(row, 'balanced_accuracy_excl')} | "
                         f"{_ci(row, 'macro_auc')} |")
        b = r["best"]
        lines += ["", f"Best ({fam}, best of {b['best_of_n']} configurations on the same folds: optimistic): "
                      f"**{b['label']}**, balanced accuracy {_ci(b, 'balanced_accuracy')}, excl. "
                      f"{_ci(b, 'balanced_accuracy_excl')}, macro AUC {_ci(b, 'macro_auc')}.", ""]
        nest = r.get("nested")
        if nest:
            picks = {}
            for v in nest["chosen"].values():
                picks[v["config"]] = picks.get(v["config"], 0) + 1
            lines += [f"Nested selection ({fam}; for each held-out slide the configuration is chosen among the "
                      f"{nest['candidates']} rows above by LOSO on the other 5 slides only, so the held-out slide "
                      f"plays no part in the choice: the honest figure for \"use the best lever\"; the list of "
                      f"combinations itself came from the levers that helped on all 6 slides, a small leak): "
                      f"balanced accuracy "
                      f"{_ci(nest, 'balanced_accuracy')}, excl. {_ci(nest, 'balanced_accuracy_excl')}, macro AUC "
                      f"{_ci(nest, 'macro_auc')}. Chosen: "
                      + ", ".join(f"{k} ({n} of 6 folds)" for k, n in sorted(picks.items(), key=lambda kv: -kv[1]))
                      + ".", ""]
        base = r["alone"][0]
        lines += ["Per-class recall (LOSO), baseline -> best:", "",
                  "| class | " + " | ".join(base["recall"]) + " |",
                  "|---|" + "---|" * len(base["recall"]),
                  "| baseline | " + " | ".join(f"{v:.2f}" for v in base["recall"].values()) + " |",
                  "| best | " + " | ".join(f"{v:.2f}" for v in b["recall"].values()) + " |",
                  "", "Per held-out slide balanced accuracy (classes present on that slide), baseline -> best: "
                  + ", ".join(f"{s}: {base['per_slide_balanced_accuracy'][s]:.2f} -> {b['per_slide_balanced_accuracy'][s]:.2f}"
                              for s in base["per_slide_balanced_accuracy"]), ""]
        if fam == "deep" and r.get("other_layers_baseline"):
            lines += ["Other Lite0 layers, baseline LOSO balanced accuracy (context only, not used for selection): "
                      + ", ".join(f"{k}: {v:.3f}" for k, v in r["other_layers_baseline"].items()), ""]
    lines += ["Not computed (say so rather than guess): " + "; ".join(meta["not_computed"]) + ".", "",
              "Tiles passed through unchanged by the normalisers (too little stain): "
              + (f"{meta['stain_passed_through']}." if meta["stain_passed_through"]
                 else "not recorded in this run (the normalised tiles' features came from the cache)."),
              "",
              f"Run: {meta['seconds']} s on {meta['cpus']} CPUs (load average {meta['load_average_start']} at start, "
              f"{meta['load_average_end']} at end; {meta['note']}).",
              "Data: Kather et al. 2016, doi:10.5281/zenodo.53169, CC BY 4.0."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
