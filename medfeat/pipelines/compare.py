"""Deep-versus-handcrafted comparison on a folder of labelled images (the engine of ``medfeat compare``).

For every feature set (LBP, GIST, colour, GLCM, frozen CNN layers, their fusion) and every classifier,
group-aware cross-validation (:func:`medfeat.pipelines.cross_validate_groups`, StratifiedGroupKFold by
patient or slide) gives out-of-fold scores; the scores give the table of Bar et al. (2015): AUC with
its confidence interval, sensitivity and specificity, and a DeLong test against the best row (binary
tasks), or accuracy, balanced accuracy and macro one-vs-rest AUC (multi-class tasks).

Features are computed once per feature set for the whole folder and cached in ``out/``. This is not
leakage: the extractors are unsupervised and frozen (no parameter is learnt from the images or the
labels), so a patch's features do not depend on which fold it lands in. Everything that does learn
from data - the scaler and the classifier - is fitted inside each training fold.
"""

import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._checks import HANDCRAFTED_FAMILIES, ResultDisplay, json_safe, write_atomic, write_text_atomic
from ..classifiers import make_classifier
from .patch import cross_validate_groups, macro_ovr_auc, make_feature_transformer

__all__ = [
    "DEFAULT_CLASSIFIERS",
    "DEFAULT_DEEP_LAYERS",
    "DEFAULT_FEATURE_SETS",
    "CompareResult",
    "compact_table",
    "compare_image_folder",
]

DEFAULT_FEATURE_SETS = HANDCRAFTED_FAMILIES + ("deep", "fusion")
DEFAULT_CLASSIFIERS = ("logreg", "linear_svm", "rbf_svm")
#: EfficientNet-Lite0 stages used as separate feature sets, the analogue of Bar et al.'s Decaf
#: L5/L6/L7: the last three MBConv stages (112, 192, 320 channels) and the 1280-channel head ("bn2"),
#: each global-average pooled.
DEFAULT_DEEP_LAYERS = ("blocks.4", "blocks.5", "blocks.6", "bn2")
_HANDCRAFTED = HANDCRAFTED_FAMILIES
_KNOWN_SETS = DEFAULT_FEATURE_SETS


@dataclass(repr=False)
class CompareResult(ResultDisplay):
    """Result of :func:`compare_image_folder`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per feature set x classifier, best first (by AUC).
    task : {"binary", "multiclass"}
    classes : list of str
    positive : str or None
        Positive class of a binary task.
    cv : dict
        ``{(feature_set, classifier): CVResult}`` with out-of-fold scores.
    files : dict
        Paths of table.md, table.csv, results.json and report.html.
    notes : list of str
        What a reader needs to interpret the table.
    """

    table: pd.DataFrame
    task: str
    classes: list
    positive: object
    cv: dict = field(repr=False)
    files: dict
    notes: list
    timings: dict = field(default_factory=dict)

    def to_markdown(self):
        """The table as Markdown (numbers rounded)."""
        return _markdown(self.table)

    def summary(self):
        """Text summary: task, classes, the best row, where the files are, and the notes."""
        best = compact_table(self.table.head(1)).iloc[0] if len(self.table) else None
        lines = [f"{self.task} comparison of {len(self.table)} feature set x classifier rows; classes {list(self.classes)}"
                 + (f", positive {self.positive!r}" if self.positive is not None else "")]
        if best is not None:
            lines.append("Best: " + ", ".join(f"{k} {v}" for k, v in best.items()))
        lines += [f"{k}: {v}" for k, v in self.files.items()]
        return "\n".join(lines + [f"Note: {n}" for n in self.notes])

    def to_frame(self):
        """The table in its readable form (estimates with their CIs in one cell)."""
        return compact_table(self.table)


# -- features ---------------------------------------------------------------------------------------


class _RegexGroup:
    """Group of an image: a regular expression's first capture group (or match) in its relative path."""

    def __init__(self, pattern):
        import re

        try:
            self.regex = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"group_regex {pattern!r} is not a regular expression: {exc}") from None
        self.pattern = pattern

    def __call__(self, rel):
        m = self.regex.search(str(rel))
        if m is None:
            raise ValueError(f"group_regex {self.pattern!r} does not match {str(rel)!r}; every image needs a group.")
        return m.group(1) if m.groups() else m.group(0)


def _regex_grouper(pattern):
    return _RegexGroup(pattern)


def _nested_selection(sets, y, groups, classifiers, positive, n_splits, random_state, eval_groups, n_bootstrap,
                      confidence):
    """Out-of-fold scores of "choose the best configuration by inner grouped CV, then fit it" (binary)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold

    from ..classifiers import decision_scores
    from ..evaluation import roc_report

    pos = (np.asarray(y) == positive).astype(int)
    outer = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state + 1)
    scores = np.full(len(y), np.nan)
    chosen = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        splits = list(outer.split(np.zeros((len(y), 1)), pos, groups))
        for train, test in splits:
            inner_splits = min(n_splits - 1 if n_splits > 2 else 2, len(np.unique(groups[train])))
            best, best_auc = None, -np.inf
            for f, X in sets.items():
                for c in classifiers:
                    try:
                        cv = cross_validate_groups(make_classifier(c), X[train], y[train], groups[train],
                                                   n_splits=inner_splits, random_state=random_state, scoring=(),
                                                   progress=False)
                        # cv.scores score the second class in sorted order; AUC ranks configurations the same way
                        auc = roc_auc_score(y[train] == np.unique(y[train])[1], cv.scores)
                    except ValueError:
                        continue
                    if auc > best_auc:
                        best, best_auc = (f, c), auc
            if best is None:
                raise ValueError("nested CV: no configuration could be cross-validated on an outer training side.")
            chosen.append(f"{best[0]} + {best[1]}")
            model = make_classifier(best[1]).fit(sets[best[0]][train], y[train])
            s = np.asarray(decision_scores(model, sets[best[0]][test]), dtype=np.float64)
            if s.ndim == 2:
                classes = list(model.classes_)
                s = s[:, classes.index(positive)]
            scores[test] = s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rep = roc_report(pos, scores, groups=eval_groups, n_bootstrap=n_bootstrap if eval_groups is not None else 0,
                         ci="bootstrap" if eval_groups is not None and n_bootstrap else "delong",
                         confidence=confidence, random_state=random_state, operating_points=())
    return {"auc": float(rep.auc), "auc_ci": [float(v) for v in rep.auc_ci], "ci_method": rep.ci_method,
            "chosen": chosen, "outer_folds": len(splits), "notes": list(rep.notes)}


def _save_best(path, feature_set, classifier, X, y, images, deep_backbone, n_jobs, bit_depth, positive, classes,
               policy):
    """The best row as an image-to-score Pipeline (frozen extractor + classifier fitted on all images)."""
    from sklearn.pipeline import Pipeline

    from .persist import save_model

    if feature_set.startswith("deep:"):
        layer = feature_set.split(":", 1)[1]
        transformer = _transformer("deep", deep_backbone, [layer], n_jobs)
    else:
        transformer = _transformer(feature_set, deep_backbone, (), n_jobs, bit_depth)
    # Feature extractors learn nothing from data: fitting builds them. The classifier is fitted on the
    # cached features of all images (the same numbers the transformer gives).
    first = images[:1] if not isinstance(images, list) else [images[0]]
    transformer.fit(first)
    clf = make_classifier(classifier).fit(X, y)
    pipe = Pipeline([("features", transformer), ("classifier", clf)])
    meta = {"feature_set": feature_set, "classifier": classifier, "deep_backbone": deep_backbone,
            "positive": positive, "classes": [str(c) for c in classes], "image_input": json_safe(policy),
            "trained_on_images": int(len(y)), "source": "medfeat compare (best row)"}
    return save_model(pipe, path, metadata=meta)


def _transformer(name, deep_backbone, deep_layers, n_jobs, bit_depth=None):
    """The extractor of one feature set, from the one preset factory (:func:`make_feature_transformer`)."""
    if name == "deep":
        return make_feature_transformer("deep", backbone=deep_backbone, layers=list(deep_layers), progress=False)
    params = {"n_jobs": n_jobs}
    if name in ("color", "glcm"):
        params["bit_depth"] = bit_depth
    return make_feature_transformer(name, **params)


# Parameters that change speed or display but not the features: a cache made with other values is reused.
_NOT_FINGERPRINTED = ("batch_size", "n_jobs", "progress")


def _fingerprint(name, transformer, paths, inputs=None):
    """Hash of the feature set, its parameters, how the images were read (window, bit depth) and the
    images (path, size, mtime) behind a cache file."""
    h = hashlib.sha256()
    h.update(name.encode())
    h.update(repr(inputs).encode())
    params = transformer.get_params(deep=False)
    h.update(repr(sorted((k, repr(v)) for k, v in params.items() if k not in _NOT_FINGERPRINTED)).encode())
    for p in paths:
        h.update(str(p).encode())
        st = os.stat(p)
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _cached_features(name, transformer, images, paths, out, progress, inputs=None):
    """Features of one set, from ``out/features_<name>.npz`` when its fingerprint matches."""
    cache = out / f"features_{name}.npz"
    fp = _fingerprint(name, transformer, paths, inputs)
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["fingerprint"]) == fp:
                    return z["X"], [str(s) for s in z["names"]], 0.0, True
        except (OSError, ValueError, KeyError):
            pass  # unreadable or old cache: recompute and overwrite
    t0 = time.perf_counter()
    if hasattr(transformer, "progress"):
        transformer.set_params(progress=progress)
    X = np.asarray(transformer.fit(images).transform(images), dtype=np.float32)
    seconds = time.perf_counter() - t0
    names = [str(s) for s in transformer.get_feature_names_out()]
    # a file handle: np.savez would append ".npz" to a str name
    write_atomic(cache, lambda fh: np.savez(fh, X=X, names=np.asarray(names, dtype=str), fingerprint=np.asarray(fp)))
    return X, names, seconds, False


def _split_deep(X, names, layers):
    """Split the concatenated multi-layer deep features into one block per layer.

    DeepFeatures concatenates the layers in the given order and names every column
    ``<arch>.<layer>__...``; the part before the first ``"__"`` identifies the layer.
    """
    prefixes = [n.split("__", 1)[0] for n in names]
    order = list(dict.fromkeys(prefixes))
    if len(order) != len(layers) or not all(
        p.endswith(f".{layer}") or p == layer for p, layer in zip(order, layers)
    ):
        raise RuntimeError(f"deep feature names {order} do not match the requested layers {list(layers)}.")
    prefixes = np.asarray(prefixes)
    return {f"deep:{layer}": X[:, prefixes == p] for p, layer in zip(order, layers)}


# -- metrics ----------------------------------------------------------------------------------------


def _binary_rows(cvs, y, groups, positive, n_bootstrap, random_state, confidence):
    """Rows of the binary table: AUC (CI), sensitivity / specificity at Youden (CI), DeLong p vs best."""
    from ..evaluation import compare_feature_sets

    pos = np.asarray(y) == positive
    labels = {key: f"{key[0]} + {key[1]}" for key in cvs}
    comparison = compare_feature_sets(
        pos,
        {labels[k]: cv.scores for k, cv in cvs.items()},
        groups=groups,
        # with groups: the group-bootstrap AUC interval (many patients: the README's figures); the
        # paired p-values are clustered (Obuchowski) either way
        ci="bootstrap" if groups is not None and n_bootstrap else "delong",
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        random_state=random_state,
    )
    num = comparison.to_frame(numeric=True)
    rows = []
    for key, cv in cvs.items():
        r = num.loc[labels[key]]
        pooled = cv.pooled()
        rows.append(
            dict(
                feature_set=key[0],
                classifier=key[1],
                auc=r["auc"],
                auc_ci_lo=r["auc_ci_lo"],
                auc_ci_hi=r["auc_ci_hi"],
                sensitivity=r["sensitivity"],
                sensitivity_ci_lo=r["sensitivity_ci_lo"],
                sensitivity_ci_hi=r["sensitivity_ci_hi"],
                specificity=r["specificity"],
                specificity_ci_lo=r["specificity_ci_lo"],
                specificity_ci_hi=r["specificity_ci_hi"],
                p_vs_best=r["p_value_vs_best"],
                accuracy=pooled["accuracy"],
                balanced_accuracy=pooled["balanced_accuracy"],
                fold_auc_mean=float(np.nanmean(cv.metrics["roc_auc"])),
                fold_auc_sd=float(np.nanstd(cv.metrics["roc_auc"], ddof=1)),
            )
        )
    best_label = comparison.best
    best_key = next(k for k, v in labels.items() if v == best_label)
    return pd.DataFrame(rows), comparison, best_key


def _bar_layout(cvs, y, groups, positive, classifiers, n_bootstrap, random_state, confidence):
    """Bar et al.'s layout (feature sets as columns) for the classifier with the best mean AUC over
    feature sets (choosing it per feature set would favour the noisiest rows)."""
    from ..evaluation import compare_feature_sets

    pos = np.asarray(y) == positive
    mean_auc = {c: np.mean([cvs[k].pooled()["roc_auc"] for k in cvs if k[1] == c]) for c in classifiers}
    clf = max(mean_auc, key=mean_auc.get)
    comparison = compare_feature_sets(
        pos,
        {k[0]: cv.scores for k, cv in cvs.items() if k[1] == clf},
        groups=groups,
        # with groups: the group-bootstrap AUC interval (many patients: the README's figures); the
        # paired p-values are clustered (Obuchowski) either way
        ci="bootstrap" if groups is not None and n_bootstrap else "delong",
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        random_state=random_state,
    )
    return clf, comparison


def _multiclass_rows(cvs, y, groups, classes, n_bootstrap, random_state, confidence, exclude):
    """Rows of the multi-class table: macro one-vs-rest AUC (group-bootstrap CI), accuracies."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    from ..evaluation import multiclass_roc

    y = np.asarray(y)
    keep = ~np.isin(y, list(exclude))
    kept = [classes.index(c) for c in classes if c not in exclude]
    rows, per_class = [], {}
    for key, cv in cvs.items():
        pooled = cv.pooled()
        mc = multiclass_roc(
            y,
            cv.scores,
            classes=classes,
            groups=groups,
            confidence=confidence,
            n_bootstrap=n_bootstrap,
            random_state=random_state,
        )
        per_class[key] = mc
        row = dict(
            feature_set=key[0],
            classifier=key[1],
            macro_auc=mc.macro_auc,
            macro_auc_ci_lo=mc.macro_ci[0],
            macro_auc_ci_hi=mc.macro_ci[1],
            accuracy=pooled["accuracy"],
            balanced_accuracy=pooled["balanced_accuracy"],
            fold_macro_auc_mean=float(np.nanmean(cv.metrics["roc_auc"])),
            fold_macro_auc_sd=float(np.nanstd(cv.metrics["roc_auc"], ddof=1)),
        )
        if exclude:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                row["macro_auc_excl"] = macro_ovr_auc(
                    y[keep], cv.scores[keep][:, kept], [classes[i] for i in kept]
                )
                row["balanced_accuracy_excl"] = float(balanced_accuracy_score(y[keep], cv.predictions[keep]))
                row["accuracy_excl"] = float(accuracy_score(y[keep], cv.predictions[keep]))
        rows.append(row)
    return pd.DataFrame(rows), per_class


def _ci(v, lo, hi):
    if not np.isfinite(v):
        return ""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{v:.3f}"
    return f"{v:.3f} ({lo:.3f}-{hi:.3f})"


def _p(p):
    if not np.isfinite(p):
        return "best"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def compact_table(table):
    """Readable version of the comparison table: estimates with their CIs in one cell.

    Parameters
    ----------
    table : pandas.DataFrame
        ``CompareResult.table``.

    Returns
    -------
    pandas.DataFrame of str
    """
    out = pd.DataFrame(
        {
            "feature set": table["feature_set"],
            "classifier": table["classifier"],
            "d": table["n_features"].astype(int),
        }
    )
    if "auc" in table:
        out["AUC (95% CI)"] = [_ci(*r) for r in table[["auc", "auc_ci_lo", "auc_ci_hi"]].to_numpy()]
        out["sensitivity"] = [
            _ci(*r) for r in table[["sensitivity", "sensitivity_ci_lo", "sensitivity_ci_hi"]].to_numpy()
        ]
        out["specificity"] = [
            _ci(*r) for r in table[["specificity", "specificity_ci_lo", "specificity_ci_hi"]].to_numpy()
        ]
        out["p vs best"] = [_p(v) for v in table["p_vs_best"]]
        fold = ("fold_auc_mean", "fold_auc_sd")
    else:
        out["macro AUC (95% CI)"] = [
            _ci(*r) for r in table[["macro_auc", "macro_auc_ci_lo", "macro_auc_ci_hi"]].to_numpy()
        ]
        fold = ("fold_macro_auc_mean", "fold_macro_auc_sd")
    out["accuracy"] = table["accuracy"].map(lambda v: f"{v:.3f}")
    out["balanced acc."] = table["balanced_accuracy"].map(lambda v: f"{v:.3f}")
    if "macro_auc_excl" in table:
        out["macro AUC excl."] = table["macro_auc_excl"].map(lambda v: f"{v:.3f}")
        out["balanced acc. excl."] = table["balanced_accuracy_excl"].map(lambda v: f"{v:.3f}")
    out["per-fold AUC"] = [f"{m:.3f} ± {s:.3f}" for m, s in table[list(fold)].to_numpy()]
    return out


def _markdown(table):
    t = compact_table(table)
    header = "| " + " | ".join(t.columns) + " |"
    sep = "|" + "|".join("---" for _ in t.columns) + "|"
    lines = [header, sep] + [
        "| " + " | ".join(str(v) for v in row) + " |" for row in t.itertuples(index=False)
    ]
    return "\n".join(lines) + "\n"


# -- main entry point -------------------------------------------------------------------------------


def compare_image_folder(
    path,
    out,
    feature_sets=DEFAULT_FEATURE_SETS,
    classifiers=None,
    *,
    n_splits=5,
    random_state=0,
    progress=True,
    quick=False,
    deep_backbone="efficientnet_lite0",
    deep_layers=DEFAULT_DEEP_LAYERS,
    group_column="auto",
    positive=None,
    n_bootstrap=1000,
    confidence=0.95,
    n_jobs=None,
    window="auto",
    bit_depth=None,
    stain=None,
    augment=None,
    n_copies=4,
    tta=False,
    slide_standardize=False,
    group_regex=None,
    nested=True,
    save_model=True,
):
    """Compare feature sets x classifiers with group-aware CV on a folder of class sub-folders.

    The folder may hold 8-bit images, DICOM files and 16-bit PNG/TIFF files: see ``window``. A folder
    of DICOM files without a manifest is grouped by PatientID. No pixel data and no DICOM identifier
    (patient ID, UIDs) is written into the outputs: groups appear only as counts.

    Parameters
    ----------
    path : str or Path
        Image folder, read with :func:`medfeat.datasets.load_image_folder` (a ``manifest.csv`` with a
        patient/slide column makes the CV group-aware; without one every image is its own group).
    out : str or Path
        Output folder: ``table.md``, ``table.csv``, ``results.json``, ``report.html`` and the feature
        caches ``features_<set>.npz`` (a re-run reuses them, so an interrupted run resumes).
    feature_sets : sequence of str
        Among ``"lbp"``, ``"gist"``, ``"color"``, ``"glcm"``, ``"deep"`` (one set per layer in
        ``deep_layers``, named ``"deep:<layer>"``) and ``"fusion"`` (all four handcrafted sets plus the
        last deep layer, concatenated).
    classifiers : sequence of str, optional
        :func:`medfeat.classifiers.make_classifier` names; default ``("logreg", "linear_svm",
        "rbf_svm")``, or ``("logreg",)`` when ``quick``.
    n_splits : int, default=5
        Folds of StratifiedGroupKFold (lowered to the number of groups, with a warning, when there are
        fewer groups).
    random_state : int, default=0
        Seed of the fold shuffling (same folds for every row, so rows are paired) and the bootstrap.
    progress : bool, default=True
        tqdm bars.
    quick : bool, default=False
        Smaller run for a first look: one classifier (unless given), only the last deep layer,
        200 bootstrap resamples.
    deep_backbone : str, default="efficientnet_lite0"
    deep_layers : sequence of str, default=DEFAULT_DEEP_LAYERS
    group_column : "auto", str, callable or None
        Passed to :func:`~medfeat.datasets.load_image_folder`.
    positive : str, optional
        Positive class of a binary task (default: the second class in sorted order).
    n_bootstrap : int, default=1000
        Resamples (of whole groups) for the confidence intervals.
    confidence : float, default=0.95
    n_jobs : int, optional
        Threads of the handcrafted extractors.
    window : "auto", None, str or tuple, default="auto"
        Intensity window of DICOM and 16-bit files, passed to
        :func:`~medfeat.datasets.load_image_folder` (``"auto"``: a DICOM file's own VOI/window with
        MONOCHROME1 inverted, 16-bit files over ``bit_depth`` bits; or ``"lung"`` and the other CT
        presets, ``(center, width)``, ``"percentile"``). Windowed images are float in [0, 1]: the
        handcrafted features use those values unrounded; the CNN gets ``round(x * 255) / 255`` (8-bit,
        like its ImageNet training images) and then its mean/std normalisation. The policy and the
        windows applied are recorded in ``results.json`` (``image_input``) and the notes.
    bit_depth : int, optional
        Bits of 16-bit PNG/TIFF values (e.g. 12); with ``window=None`` (uint16 kept) it is also the
        ``bit_depth`` of the colour and GLCM features.
    stain : {"reinhard", "macenko", "vahadane"}, optional
        Stain-normalise every image before feature extraction (:mod:`medfeat.features.stain`). The
        target is the median over all images of the folder: label-free, but it sees the test groups'
        pixels (transductive); images with too little stain pass through (counted in the notes).
    augment : {"hed", "color"}, optional
        Add the features of ``n_copies`` augmented copies of each training image (HED or colour jitter,
        after the stain step) to the training side of every fold only; test images are scored as given.
    n_copies : int, default=4
    tta : bool, default=False
        Average every feature set over the 8 dihedral views of each image (feature-level test-time
        augmentation, :class:`~medfeat.features.DihedralMean`; 8x the extraction time).
    slide_standardize : bool, default=False
        Standardise every feature set group by group (each group with its own mean/std,
        :func:`~medfeat.features.standardize_by_group`); it uses no labels and no other group, so it
        does not leak across folds.
    group_regex : str, optional
        Group each image by a regular expression searched in its path relative to ``path`` (the first
        capture group, else the whole match), e.g. ``r"person(\\d+)_"``; a file it does not match is an
        error. Overrides ``group_column``.
    nested : bool, default=True
        For a binary task, also estimate the whole "pick the best row" procedure by nested grouped CV:
        in each outer fold the configuration is chosen by an inner grouped CV on the training groups
        only, then scored on the held-out groups. The table's best row is the best of N on the same
        out-of-fold scores and therefore optimistic; the nested figure is not.
    save_model : bool, default=True
        Fit the best row's feature set and classifier on all images and save it as ``model.skops``
        (``medfeat predict`` applies it to new images). Not available for ``"fusion"`` or with
        augmentation / stain / TTA levers.

    Returns
    -------
    CompareResult

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp()); rng = np.random.default_rng(0)
    >>> for cls, level in (("dark", 60), ("bright", 190)):
    ...     (root / cls).mkdir()
    ...     for i in range(6):
    ...         img = np.clip(rng.normal(level, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
    ...         Image.fromarray(img).save(root / cls / f"{i}.png")
    >>> res = compare_image_folder(root, root / "out", ["color"], ["logreg"], n_splits=3, progress=False,
    ...                            group_column=None, n_bootstrap=0)
    >>> res.task, round(float(res.table["auc"][0]), 2)
    ('binary', 1.0)
    """
    from ..datasets import load_image_folder

    feature_sets = [feature_sets] if isinstance(feature_sets, str) else list(feature_sets)
    unknown = [f for f in feature_sets if f not in _KNOWN_SETS]
    if unknown or not feature_sets:
        raise ValueError(
            f"feature_sets must be a non-empty list among {list(_KNOWN_SETS)}, got {feature_sets!r}."
        )
    if classifiers is None:
        classifiers = ("logreg",) if quick else DEFAULT_CLASSIFIERS
    classifiers = [classifiers] if isinstance(classifiers, str) else list(classifiers)
    for c in classifiers:
        make_classifier(c)  # validates the name before any long work
    deep_layers = [deep_layers] if isinstance(deep_layers, str) else list(deep_layers)
    if quick:
        deep_layers = deep_layers[-1:]
        n_bootstrap = min(n_bootstrap, 200)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    if group_regex is not None:
        group_column = _regex_grouper(group_regex)
    ds = load_image_folder(path, group_column=group_column, progress=progress, window=window, bit_depth=bit_depth)
    policy = ds.input_policy
    y, groups, classes = ds.labels, ds.groups, list(ds.classes)
    if len(classes) < 2:
        raise ValueError(f"{path}: a comparison needs at least 2 classes (sub-folders), found {classes}.")
    task = "binary" if len(classes) == 2 else "multiclass"
    if positive is None:
        positive = classes[1] if task == "binary" else None
    elif task == "binary" and positive not in classes:
        raise ValueError(f"positive must be one of the classes {classes}, got {positive!r}.")
    n_groups = len(np.unique(groups))
    # One image per group: the group bootstrap is the ordinary one, and DeLong's CI is valid.
    eval_groups = None if n_groups == len(y) else groups
    if eval_groups is not None and not n_bootstrap:
        raise ValueError("n_bootstrap must be > 0 when images are grouped (CIs resample whole groups).")
    if n_groups < 2:
        # a DICOM group is a patient ID or UID: not echoed
        which = f" ({groups[0]!r})" if ds.group_column not in ("PatientID", "StudyInstanceUID") else ""
        raise ValueError(f"{path}: all images are in one group{which}; group-aware CV needs at least 2 groups.")
    if n_groups < n_splits:
        warnings.warn(
            f"{path}: only {n_groups} groups; using n_splits={n_groups} instead of {n_splits}.",
            UserWarning,
            stacklevel=2,
        )
        n_splits = n_groups

    # 0. domain-shift levers on the images (label-free, once for the whole folder)
    from .. import features as F
    from .patch import AUGMENTERS, STAIN_METHODS

    if stain is not None and stain not in STAIN_METHODS:
        raise ValueError(f"stain must be one of {list(STAIN_METHODS)} or None, got {stain!r}.")
    if augment is not None and augment not in AUGMENTERS:
        raise ValueError(f"augment must be one of {list(AUGMENTERS)} or None, got {augment!r}.")
    if augment is not None and (isinstance(n_copies, bool) or not isinstance(n_copies, (int, np.integer)) or n_copies < 1):
        raise ValueError(f"n_copies must be an integer >= 1, got {n_copies!r}.")
    images, lever_tag, lever_notes = ds.images, "", []
    if stain is not None:
        norm = {"reinhard": F.ReinhardNormalizer, "macenko": F.MacenkoNormalizer,
                "vahadane": F.VahadaneNormalizer}[stain]().fit(images)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", F.StainPassThroughWarning)
            images = norm.transform(images)
        lever_tag += f"__stain-{stain}"
        lever_notes.append(
            f"Stain normalisation: {stain}, target = median over all {norm.n_references_} usable images of the folder "
            f"(label-free but transductive); {norm.n_passed_through_} image(s) with too little stain passed through."
        )
    copies = []
    if augment is not None:
        aug_cls = {"hed": F.HEDJitter, "color": F.ColorJitter}[augment]
        copies = [(f"__aug-{augment}-seed{random_state + k}", aug_cls(random_state=random_state + k).fit().transform(images))
                  for k in range(int(n_copies))]
        lever_notes.append(
            f"Augmentation: features of {n_copies} {augment}-jittered copies of each training image (seeds "
            f"{random_state}..{random_state + n_copies - 1}) added to the training side of every fold; test images as given."
        )
    if tta:
        lever_tag += "__tta8"
        lever_notes.append("Test-time augmentation: every feature set averaged over the 8 dihedral views of each image.")
    if slide_standardize:
        lever_notes.append(
            "Slide standardisation: every feature set standardised group by group with that group's own mean/std "
            "(no labels, no other group: no leak across folds)."
        )

    # 1. features, once per set for the whole folder (frozen extractors: see the module docstring)
    needed = [f for f in _HANDCRAFTED if f in feature_sets or "fusion" in feature_sets]
    if "deep" in feature_sets or "fusion" in feature_sets:
        needed.append("deep")
    blocks, dims, timings = {}, {}, {"features_seconds": {}, "cached": {}}
    copy_blocks = {}  # feature set -> features of each augmented copy (training side only)
    feature_iter = needed
    if progress:
        from .._checks import progress_bar

        feature_iter = progress_bar(needed, desc="feature sets", unit="set")
    for name in feature_iter:
        if progress:
            feature_iter.set_postfix_str(name)
        transformer = _transformer(name, deep_backbone, deep_layers, n_jobs, bit_depth if window is None else None)
        if tta:
            transformer = F.DihedralMean(transformer)
        inputs = (policy["window"], policy["bit_depth"])
        X, names, seconds, cached = _cached_features(name + lever_tag, transformer, images, ds.paths, out, progress,
                                                     inputs)
        timings["features_seconds"][name] = round(seconds, 2)
        timings["cached"][name] = cached
        copy_X = [
            _cached_features(name + lever_tag + ctag, transformer, cimages, ds.paths, out, progress, inputs)[0]
            for ctag, cimages in copies
        ]
        if slide_standardize:
            X = F.standardize_by_group(X, groups).astype(np.float32)
            copy_X = [F.standardize_by_group(c, groups).astype(np.float32) for c in copy_X]
        if name == "deep":
            blocks.update(_split_deep(X, names, deep_layers))
            for k, c in enumerate(copy_X):
                for key, v in _split_deep(c, names, deep_layers).items():
                    copy_blocks.setdefault(key, [None] * len(copy_X))[k] = v
        else:
            blocks[name] = X
            if copy_X:
                copy_blocks[name] = copy_X
    sets, set_copies = {}, {}
    for name in feature_sets:
        if name == "deep":
            sets.update({k: v for k, v in blocks.items() if k.startswith("deep:")})
            set_copies.update({k: v for k, v in copy_blocks.items() if k.startswith("deep:")})
        elif name == "fusion":
            fused = [h for h in _HANDCRAFTED] + [f"deep:{deep_layers[-1]}"]
            sets["fusion"] = np.hstack([blocks[h] for h in fused])
            if copy_blocks:
                set_copies["fusion"] = [np.hstack([copy_blocks[h][k] for h in fused]) for k in range(len(copies))]
        else:
            sets[name] = blocks[name]
            if name in copy_blocks:
                set_copies[name] = copy_blocks[name]
    dims = {k: int(v.shape[1]) for k, v in sets.items()}

    # 2. group-aware CV of every feature set x classifier on the same folds
    cvs = {}
    combos = [(f, c) for f in sets for c in classifiers]
    it = combos
    if progress:
        from .._checks import progress_bar

        it = progress_bar(combos, desc="cross-validation", unit="model")
    t_cv = time.perf_counter()
    with warnings.catch_warnings():
        # A class held by one group only cannot be trained on when that group is tested; the notes
        # and the "_excl" columns report it once instead of a warning per fold and model.
        warnings.filterwarnings("ignore", message=r"fold \d+: class\(es\)")
        warnings.filterwarnings("ignore", category=FutureWarning)
        for key in it:
            cvs[key] = cross_validate_groups(
                make_classifier(key[1]), sets[key[0]], y, groups, n_splits=n_splits, random_state=random_state,
                train_copies=set_copies.get(key[0]), positive_label=positive, progress=False,
            )
    timings["cv_seconds"] = round(time.perf_counter() - t_cv, 2)

    # 3. tables
    grouped = n_groups < len(y)
    if not grouped:
        msg = ("NOT GROUP-AWARE: no patient/slide grouping was given, so every image is its own group; images "
               "of one patient or slide can sit on both sides of a split and every figure here is then "
               "optimistic. Give a manifest column (--group-column) or a file-name pattern (--group-regex).")
        warnings.warn(msg, UserWarning, stacklevel=2)
    n_configs = len(sets) * len(classifiers)
    notes = ([msg] if not grouped else []) + [
        f"{len(y)} images, {len(classes)} classes, {n_groups} groups "
        f"({ds.group_column or 'one group per image'}); {n_splits}-fold StratifiedGroupKFold "
        f"(shuffled, random_state={random_state})"
        + (": no group on both sides of a split." if grouped else ": splits by image only (see above)."),
        f"Best of {n_configs}: the top row is chosen among {n_configs} configurations on the same out-of-fold "
        "scores it is reported with, so its figures are optimistic (selection bias)"
        + ("; the nested grouped CV figure below estimates the selection procedure honestly." if nested and
           len(classes) == 2 else "."),
        "Scores are out-of-fold and pooled over folds; features are frozen/unsupervised and computed once, "
        "scaling and classifiers are fitted inside each training fold.",
    ]
    if set(policy["formats"]) - {"8-bit"}:
        kinds = ", ".join(f"{n} {k}" for k, n in policy["formats"].items())
        windows = "; ".join(f"{n} x {w}" for w, n in policy["windows"].items())
        depth = f", bit_depth={policy['bit_depth']}" if policy["bit_depth"] else ""
        inverted = policy["inverted_monochrome1"]
        flipped = f"; {inverted} MONOCHROME1 image(s) inverted" if inverted else ""
        use = (
            "Handcrafted features use the windowed values in [0, 1] unrounded; the CNN gets them rounded to 8 bits "
            "(round(x * 255) / 255), then ImageNet mean/std normalisation."
            if policy["window"] is not None
            else "Handcrafted features use the 16-bit integers (colour and GLCM with this bit_depth)."
        )
        notes.append(f"Image input: {kinds} file(s); window={policy['window']!r}{depth}: {windows}{flipped}. {use}")
    notes += lever_notes
    single_group = [c for c in classes if len(np.unique(groups[y == c])) == 1]
    bar, extra, per_class = None, {}, None
    if task == "binary":
        table, comparison, best_key = _binary_rows(
            cvs, y, eval_groups, positive, n_bootstrap, random_state, confidence
        )
        bar = _bar_layout(cvs, y, eval_groups, positive, classifiers, n_bootstrap, random_state, confidence)
        rep = comparison.reports[f"{best_key[0]} + {best_key[1]}"]
        auc_ci = (
            f"{rep.ci_method} ({confidence:.0%})" if np.all(np.isfinite(rep.auc_ci))
            else f"not available ({rep.ci_method} not run: too few groups, see the warnings)"
        )
        notes.append(
            f"Positive class: {positive}. AUC CI: {auc_ci}; sensitivity and "
            "specificity at the Youden threshold chosen on the same out-of-fold scores (optimistic), "
            "percentile bootstrap CIs. p_vs_best: paired test against the best row "
            f"({best_key[0]} + {best_key[1]}): clustered (Obuchowski 1997) when images are grouped, else DeLong."
        )
        sort_col = "auc"
        extra["roc"] = {f"{f} | {c}": comparison.reports[f"{f} + {c}"].to_dict() for f, c in cvs}
    else:
        table, per_class = _multiclass_rows(
            cvs, y, eval_groups, classes, n_bootstrap, random_state, confidence, single_group
        )
        notes.append(
            "macro_auc: mean one-vs-rest AUC over classes of the pooled out-of-fold scores; CI: percentile "
            f"bootstrap over whole groups ({n_bootstrap} resamples; few groups give coarse intervals)."
        )
        if single_group:
            notes.append(
                f"Class(es) {single_group} come from a single group: when it is tested no training sample "
                "of the class exists, so they cannot be learnt across groups; the *_excl columns "
                "leave them out."
            )
        sort_col = "macro_auc"
        extra["per_class_auc"] = {f"{f} | {c}": mc.to_dict() for (f, c), mc in per_class.items()}
    table.insert(2, "n_features", [dims[f] for f in table["feature_set"]])
    table.insert(
        3,
        "fit_seconds",
        [
            round(float(cvs[(f, c)].metrics["fit_seconds"].sum()), 2)
            for f, c in zip(table["feature_set"], table["classifier"])
        ],
    )
    table = table.sort_values(sort_col, ascending=False, kind="stable").reset_index(drop=True)
    nested_result = None
    if nested and task == "binary" and len(cvs) > 1:
        nested_result = _nested_selection(sets, y, groups, classifiers, positive, n_splits, random_state,
                                          eval_groups, n_bootstrap, confidence)
        extra["nested"] = nested_result
        r = nested_result
        notes.append(
            f"Nested grouped CV of the selection itself (outer {n_splits} folds; the configuration chosen by an inner "
            f"grouped CV on each outer training side): AUC {r['auc']:.3f} ({r['ci_method']} {r['auc_ci'][0]:.3f}-"
            f"{r['auc_ci'][1]:.3f}); chosen per outer fold: {', '.join(r['chosen'])}. Report this, not the top row, as "
            "the expected performance of 'the best configuration'."
            if all(np.isfinite(r["auc_ci"])) else
            f"Nested grouped CV of the selection itself: AUC {r['auc']:.3f}; chosen per outer fold: "
            f"{', '.join(r['chosen'])}. Report this, not the top row, as the expected performance."
        )
    model_path = None
    if save_model:
        best_f, best_c = table.loc[0, "feature_set"], table.loc[0, "classifier"]
        if best_f == "fusion" or stain or augment or tta or slide_standardize:
            notes.append(f"No model saved: the best row ({best_f} + {best_c}) uses fusion or an image lever, which "
                         "`medfeat predict` cannot replay.")
        else:
            model_path = _save_best(out / "model.skops", best_f, best_c, sets[best_f], y, images, deep_backbone,
                                    n_jobs, bit_depth if window is None else None, positive, classes, policy)
            notes.append(f"Model saved: {best_f} + {best_c} fitted on all {len(y)} images -> {model_path.name} "
                         "(`medfeat predict model.skops IMAGE_DIR` applies it).")
    readme = Path(path) / "README.md"
    source = (
        readme.read_text(encoding="utf-8", errors="replace").splitlines()[0].lstrip("# ")
        if readme.is_file()
        else None
    )
    timings["total_seconds"] = round(time.perf_counter() - t_start, 2)

    # 4. files (temporary name, then rename)
    files = {
        k: out / v
        for k, v in dict(
            table_md="table.md", table_csv="table.csv", results_json="results.json", report_html="report.html"
        ).items()
    }
    if model_path is not None:
        files["model"] = model_path
    title = f"medfeat compare: {Path(path).name}"
    md = [f"# {title}\n", _markdown(table)]
    if bar is not None:
        md += [
            f"\n## Bar et al. (2015) layout, classifier {bar[0]} (best mean AUC over feature sets)\n",
            bar[1].to_markdown() + "\n",
        ]
    md.append("\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    if source:
        md.append(f"- Data: {source} (see {readme} for source, citation and licence).\n")
    write_text_atomic(files["table_md"], "".join(md))
    write_text_atomic(files["table_csv"], table.to_csv(index=False))
    results = dict(
        dataset=str(Path(path).resolve()),
        dataset_readme=source,
        task=task,
        classes=classes,
        positive=positive,
        n_images=int(len(y)),
        n_groups=int(n_groups),
        group_column=ds.group_column,
        image_input=policy,
        n_splits=n_splits,
        random_state=random_state,
        feature_sets=list(sets),
        feature_dims=dims,
        classifiers=classifiers,
        deep_backbone=deep_backbone,
        deep_layers=deep_layers,
        notes=notes,
        timings=timings,
        table=json.loads(table.to_json(orient="records")),
        folds={f"{f} | {c}": json.loads(cv.metrics.to_json(orient="records")) for (f, c), cv in cvs.items()},
        **extra,
    )
    if bar is not None:
        results["bar_layout"] = {"classifier": bar[0], **bar[1].to_dict()}
    write_text_atomic(files["results_json"], json.dumps(json_safe(results), indent=2))
    _write_report(
        files["report_html"],
        title,
        table,
        notes,
        cvs,
        task,
        y,
        eval_groups,
        bar,
        source,
        positive,
        n_bootstrap,
        per_class=per_class,
    )
    timings["total_seconds"] = round(time.perf_counter() - t_start, 2)
    return CompareResult(
        table=table,
        task=task,
        classes=classes,
        positive=positive,
        cv=cvs,
        files=files,
        notes=notes,
        timings=timings,
    )


def _write_report(
    path, title, table, notes, cvs, task, y, groups, bar, source, positive, n_bootstrap, per_class=None
):
    from ..evaluation import Report, roc_report

    report = Report(title, description=source)
    report.add_data_summary(y, groups=groups, name="Data")
    report.add_text("\n\n".join(notes), title="How to read the table")
    view = compact_table(table)
    view.index = pd.Index(
        [f"{f} + {c}" for f, c in zip(view.pop("feature set"), view.pop("classifier"))], name="model"
    )
    report.add_table("Feature sets x classifiers (group-aware CV, out-of-fold scores)", view)
    if bar is not None:
        clf, comparison = bar
        report.add_table(f"Bar et al. (2015) layout, classifier {clf}", comparison)
        top = list(zip(table["feature_set"], table["classifier"]))[:5]
        pos = np.asarray(y) == positive
        # the ROC figure re-uses the comparison's reports where it has them (same classifier)
        reps = {}
        for f, c in top:
            if c == clf and f in comparison.reports:
                reps[f"{f} + {c}"] = comparison.reports[f]
            else:
                reps[f"{f} + {c}"] = roc_report(
                    pos,
                    cvs[(f, c)].scores,
                    groups=groups,
                    ci="bootstrap" if groups is not None and n_bootstrap else "delong",
                    n_bootstrap=min(n_bootstrap, 200),
                    operating_points=("youden",),
                    random_state=0,
                )
        report.add_roc("ROC of the five best rows", reps)
    if per_class:
        best = (table.loc[0, "feature_set"], table.loc[0, "classifier"])
        cv = cvs[best]
        report.add_table(
            f"One-vs-rest AUC per class, best row ({best[0]} + {best[1]})", per_class[best].to_frame()
        )
        confusion = pd.crosstab(
            pd.Series(np.asarray(y), name="true"), pd.Series(cv.predictions, name="predicted"), dropna=False
        )
        report.add_table(f"Confusion matrix (out-of-fold), best row ({best[0]} + {best[1]})", confusion)
    report.save(path, json_path=path.with_name("report.json"))
