"""Patch (image) classification pipelines and group-aware cross-validation.

A patch pipeline is a plain scikit-learn :class:`~sklearn.pipeline.Pipeline`: a feature step that
turns an NHWC uint8 image batch into a float32 table (handcrafted, deep or both), then a classifier
preset from :func:`medfeat.classifiers.make_classifier` (with its scaler, if any).
"""

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import FeatureUnion, Pipeline

from .._checks import FEATURE_PRESETS, ResultDisplay
from ..classifiers import class_scores, decision_scores, make_classifier, positive_class

__all__ = [
    "AUGMENTERS",
    "FEATURE_PRESETS",
    "STAIN_METHODS",
    "CVResult",
    "cross_validate_groups",
    "macro_ovr_auc",
    "make_feature_transformer",
    "make_patch_pipeline",
]

# FEATURE_PRESETS (the preset names, defined once in medfeat._checks so the command line can list them
# without importing scikit-learn) -> the transformer class of each single-transformer preset
_FEATURE_CLASSES = {
    "color": "ColorFeatures",
    "deep": "DeepFeatures",
    "gist": "GIST",
    "glcm": "GLCMFeatures",
    "handcrafted": "HandcraftedFeatures",
    "lbp": "LBPHistogram",
}


def make_feature_transformer(features="handcrafted", **params):
    """Build a feature transformer from a preset name.

    Parameters
    ----------
    features : str
        ``"handcrafted"`` (:class:`medfeat.features.HandcraftedFeatures`: LBP + GIST + colour +
        GLCM), ``"deep"`` (:class:`medfeat.features.DeepFeatures`, frozen EfficientNet-Lite0 by
        default), ``"fusion"`` (a :class:`~sklearn.pipeline.FeatureUnion` of both, names prefixed
        ``"handcrafted__"`` and ``"deep__"``), or one family: ``"lbp"``, ``"gist"``, ``"color"``,
        ``"glcm"``.
    **params
        Parameters of the transformer. For ``"fusion"``: ``handcrafted={...}`` and ``deep={...}``.

    Returns
    -------
    transformer

    Examples
    --------
    >>> type(make_feature_transformer("lbp")).__name__
    'LBPHistogram'
    """
    from .. import features as F  # composed here, not at import time: the layering stays one way

    if not isinstance(features, str) or features not in FEATURE_PRESETS:
        raise ValueError(
            f"features must be one of {list(FEATURE_PRESETS)} or a transformer, got {features!r}."
        )
    if features == "fusion":
        unknown = set(params) - {"handcrafted", "deep"}
        if unknown:
            raise ValueError(
                f"fusion features take only handcrafted={{...}} and deep={{...}}, got {sorted(unknown)}."
            )
        return FeatureUnion(
            [
                ("handcrafted", F.HandcraftedFeatures(**params.get("handcrafted", {}))),
                ("deep", F.DeepFeatures(**params.get("deep", {}))),
            ]
        )
    cls = getattr(F, _FEATURE_CLASSES[features])
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"invalid parameter for {features!r} features ({cls.__name__}): {exc}") from exc


STAIN_METHODS = ("macenko", "reinhard", "vahadane")
AUGMENTERS = ("color", "hed")


def make_patch_pipeline(
    features="handcrafted",
    classifier="logreg",
    *,
    feature_params=None,
    classifier_params=None,
    stain=None,
    stain_reference=None,
    augment=None,
    n_copies=4,
    tta=None,
    slide_standardize=False,
    random_state=0,
):
    """A scikit-learn pipeline from images to class scores, with optional domain-shift levers.

    Parameters
    ----------
    features : str or transformer, default="handcrafted"
        A preset of :func:`make_feature_transformer` (``"deep"``, ``"handcrafted"``, ``"fusion"``,
        ``"lbp"``, ``"gist"``, ``"color"``, ``"glcm"``) or any transformer mapping an image batch to
        a 2-D table (used as given).
    classifier : str or estimator, default="logreg"
        A :func:`medfeat.classifiers.make_classifier` name or any classifier (used as given).
    feature_params, classifier_params : dict, optional
        Parameters of the preset feature transformer / classifier.
    stain : {"reinhard", "macenko", "vahadane"} or transformer, optional
        Stain normalisation of the images first (:mod:`medfeat.features.stain`), as a step ``("stain", ...)``.
    stain_reference : array-like, optional
        Reference image(s) of the normaliser (a fixed template). None: it is fitted on the training images
        (their median statistics).
    augment : {"hed", "color"} or transformer, optional
        Train on the images plus ``n_copies`` augmented copies of each (HED jitter or brightness/contrast/
        saturation/hue jitter), after the stain step: the rest of the pipeline is wrapped in
        :class:`~medfeat.features.AugmentedTraining` (step ``("augmented", ...)``), which augments in ``fit``
        only.
    n_copies : int, default=4
    tta : {"feature", "score"}, optional
        Dihedral test-time augmentation: ``"feature"`` averages the features over the 8 views
        (:class:`~medfeat.features.DihedralMean` as the feature step, also in training); ``"score"`` wraps the
        whole pipeline in :class:`~medfeat.features.DihedralTTA` (scores averaged at prediction only).
    slide_standardize : bool, default=False
        A :class:`~medfeat.features.SlideStandardizer` step after the features: each slide's features are
        standardised with that slide's own mean/std. Needs the slide of every image in ``fit`` and at
        prediction: turn on ``sklearn.set_config(enable_metadata_routing=True)`` and pass ``groups=``
        (without ``groups`` a batch counts as one slide).
    random_state : int, default=0
        Seed of the augmentation (copy k uses ``random_state + k``).

    Returns
    -------
    sklearn.pipeline.Pipeline or DihedralTTA
        Without levers: steps ``("features", ...)`` then the classifier's steps (``("scaler", ...)``,
        ``("classifier", ...)`` for scale-sensitive presets), so ``pipeline.named_steps["features"]`` is the
        extractor. With levers: ``[("stain", ...)]`` + ``("features", ...)`` [+ ``("slide_standardize", ...)``]
        + classifier steps, where everything after the stain step sits inside ``("augmented",
        AugmentedTraining(...))`` when ``augment`` is set; ``tta="score"`` wraps the result in ``DihedralTTA``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> dark, bright = rng.integers(0, 60, (6, 32, 32, 3)), rng.integers(150, 255, (6, 32, 32, 3))
    >>> X = np.concatenate([dark, bright]).astype(np.uint8)
    >>> y = np.r_[np.zeros(6, int), np.ones(6, int)]
    >>> pipe = make_patch_pipeline("color", "logreg").fit(X, y)
    >>> [name for name, _ in pipe.steps], pipe.predict(X[[0, -1]]).tolist()
    (['features', 'scaler', 'classifier'], [0, 1])
    >>> levers = make_patch_pipeline("color", stain="reinhard", augment="hed", n_copies=2, tta="score")
    >>> type(levers).__name__, [name for name, _ in levers.estimator.steps]
    ('DihedralTTA', ['stain', 'augmented'])
    """
    from .. import features as F
    if isinstance(features, str):
        transformer = make_feature_transformer(features, **(feature_params or {}))
    elif hasattr(features, "fit") and hasattr(features, "transform"):
        if feature_params:
            raise ValueError(
                "feature_params is only for preset names; configure the transformer you pass instead."
            )
        transformer = features
    else:
        raise ValueError(
            f"features must be one of {list(FEATURE_PRESETS)} or a transformer, got {features!r}."
        )
    if isinstance(classifier, str):
        clf = make_classifier(classifier, **(classifier_params or {}))
    elif hasattr(classifier, "fit"):
        if classifier_params:
            raise ValueError(
                "classifier_params is only for preset names; configure the estimator you pass instead."
            )
        clf = classifier
    else:
        raise ValueError(f"classifier must be a make_classifier name or an estimator, got {classifier!r}.")
    steps = list(clf.steps) if isinstance(clf, Pipeline) else [("classifier", clf)]
    if tta not in (None, "feature", "score"):
        raise ValueError(f"tta must be None, 'feature' or 'score', got {tta!r}.")
    if tta == "feature":
        transformer = F.DihedralMean(transformer)
    head = [("features", transformer)]
    if slide_standardize:
        head.append(("slide_standardize", F.SlideStandardizer()))
    model = Pipeline(head + steps)
    if augment is not None:
        if isinstance(augment, str):
            if augment not in AUGMENTERS:
                raise ValueError(f"augment must be one of {list(AUGMENTERS)} or a transformer, got {augment!r}.")
            augment = {"hed": F.HEDJitter, "color": F.ColorJitter}[augment]()
        model = F.AugmentedTraining(model, augment, n_copies=n_copies, random_state=random_state)
    if stain is not None:
        if isinstance(stain, str):
            if stain not in STAIN_METHODS:
                raise ValueError(f"stain must be one of {list(STAIN_METHODS)} or a transformer, got {stain!r}.")
            stain = {"reinhard": F.ReinhardNormalizer, "macenko": F.MacenkoNormalizer,
                     "vahadane": F.VahadaneNormalizer}[stain](reference=stain_reference)
        elif stain_reference is not None:
            raise ValueError("stain_reference is only for stain method names; configure the normaliser you pass.")
        if isinstance(model, Pipeline):
            model = Pipeline([("stain", stain)] + model.steps)
        else:
            model = Pipeline([("stain", stain), ("augmented", model)])
    elif stain_reference is not None:
        raise ValueError("stain_reference needs stain=...")
    return F.DihedralTTA(model) if tta == "score" else model


def macro_ovr_auc(y_true, scores, classes):
    """Macro one-vs-rest AUC from per-class scores (probabilities or decision values).

    Unlike ``roc_auc_score(multi_class="ovr")`` this does not require the rows to be probabilities:
    each class's AUC only needs its column to rank that class above the others. Classes absent from
    ``y_true`` (or that are all of it) are skipped; NaN when none can be scored.

    Examples
    --------
    >>> macro_ovr_auc(["a", "b", "c"], [[3, 0, 0], [0, 2, 0], [0, 0, 1]], ["a", "b", "c"])
    1.0
    """
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=np.float64)
    aucs = []
    for j, c in enumerate(classes):
        pos = y_true == c
        if 0 < pos.sum() < len(pos):
            aucs.append(roc_auc_score(pos, scores[:, j]))
    return float(np.mean(aucs)) if aucs else float("nan")


def _metric(name, y_true, scores, pred, classes, positive=None):
    if name == "accuracy":
        return float(accuracy_score(y_true, pred))
    if name == "balanced_accuracy":
        with warnings.catch_warnings():  # a fold may lack a class: sklearn warns, the value is still defined
            warnings.simplefilter("ignore")
            return float(balanced_accuracy_score(y_true, pred))
    if name == "roc_auc":
        if len(classes) == 2:
            pos = np.asarray(y_true) == (classes[1] if positive is None else positive)
            return float(roc_auc_score(pos, scores)) if 0 < pos.sum() < len(pos) else float("nan")
        return macro_ovr_auc(y_true, scores, classes)
    raise AssertionError(name)  # validated earlier


_METRICS = ("accuracy", "balanced_accuracy", "roc_auc")


@dataclass(repr=False)
class CVResult(ResultDisplay):
    """Out-of-fold results of :func:`cross_validate_groups`.

    Attributes
    ----------
    scores : ndarray
        Out-of-fold continuous scores: shape (n,) for binary tasks (score of ``classes[1]``), (n, k)
        for multi-class (columns in ``classes`` order).
    predictions : ndarray of shape (n,)
        Out-of-fold predicted labels.
    fold : ndarray of int, shape (n,)
        Test fold of every sample.
    classes : ndarray
        Sorted class labels.
    metrics : pandas.DataFrame
        One row per fold: n_train, n_test, n_test_groups, fit_seconds and every metric.
    splits : list of (train_indices, test_indices)
    estimators : list or None
        Fitted pipelines per fold when ``return_estimators=True``.
    """

    scores: np.ndarray
    predictions: np.ndarray
    fold: np.ndarray
    classes: np.ndarray
    metrics: pd.DataFrame
    splits: list
    y_true: np.ndarray = field(repr=False, default=None)
    estimators: list = field(repr=False, default=None)
    positive: object = None

    def pooled(self):
        """Metrics on the pooled out-of-fold predictions (one value each, all samples at once).

        Returns
        -------
        dict
            ``accuracy``, ``balanced_accuracy`` and ``roc_auc`` (binary AUC, or macro one-vs-rest AUC).
        """
        return {
            m: _metric(m, self.y_true, self.scores, self.predictions, list(self.classes), self.positive)
            for m in _METRICS
        }

    def summary(self):
        """Text summary: sample, group and fold counts, pooled out-of-fold metrics, the per-fold spread."""
        n_groups = int(self.metrics["n_test_groups"].sum()) if "n_test_groups" in self.metrics else None
        groups = f", {n_groups} groups (each in one test fold)" if n_groups is not None else ""
        lines = [f"{len(self.splits)}-fold grouped CV: {len(self.fold)} samples, {len(self.classes)} classes{groups}"]
        if self.y_true is not None:
            pooled = self.pooled()
            lines.append("Pooled out-of-fold: " + ", ".join(f"{m} {v:.4f}" for m, v in pooled.items()))
        for m in _METRICS:
            v = self.metrics[m].to_numpy(dtype=float) if m in self.metrics else np.array([np.nan])
            if np.isfinite(v).any():
                lines.append(f"Per fold {m}: mean {np.nanmean(v):.4f}, range {np.nanmin(v):.4f}-{np.nanmax(v):.4f}")
        return "\n".join(lines)

    def to_frame(self):
        """The per-fold metrics table (a copy of ``metrics``)."""
        return self.metrics.copy()


def _take(X, idx):
    if isinstance(X, (list, tuple)):
        return [X[i] for i in idx]
    return X[idx]


def _aligned_scores(estimator, X, classes, positive=None):
    """Fold scores with one column per global class (multi-class), for pooling across folds.

    A class missing from a fold's training side (e.g. a class that lives on one slide only, when that
    slide is in the test fold) cannot be predicted: its probability is 0, its decision value is set
    below every other value of that fold, so it ranks last.
    """
    if len(classes) == 2:
        return decision_scores(estimator, X) if positive is None else class_scores(estimator, X, positive)[0]
    fitted = list(estimator.classes_)
    if hasattr(estimator, "predict_proba"):
        s = np.asarray(estimator.predict_proba(X), dtype=np.float64)
    else:
        s = np.asarray(estimator.decision_function(X), dtype=np.float64)
        if s.ndim == 1:  # only two classes on this fold's training side: +-d ranks them both
            s = np.column_stack([-s, s])
    out = np.empty((s.shape[0], len(classes)), dtype=np.float64)
    fill = 0.0 if hasattr(estimator, "predict_proba") else float(np.min(s)) - 1.0
    out[:] = fill
    for j, c in enumerate(fitted):
        out[:, list(classes).index(c)] = s[:, j]
    return out


def cross_validate_groups(
    pipeline,
    X,
    y,
    groups,
    *,
    n_splits=5,
    random_state=0,
    scoring=_METRICS,
    return_estimators=False,
    progress=True,
    train_copies=None,
    positive_label=None,
):
    """Group-aware stratified K-fold cross-validation with out-of-fold scores.

    Splits with :class:`~sklearn.model_selection.StratifiedGroupKFold` (shuffled): all samples of a
    group (slide, patient) fall in one test fold, so none is on both sides of any split, and class
    proportions are kept as far as the groups allow. Each fold fits a clone of ``pipeline``.

    Parameters
    ----------
    pipeline : estimator
        A classifier or pipeline (e.g. from :func:`make_patch_pipeline`), cloned per fold.
    X : ndarray or list
        Images (NHWC array or list) or a 2-D feature table.
    y : array-like of shape (n,)
        Labels (at least 2 classes).
    groups : array-like of shape (n,)
        Group of each sample; needs at least ``n_splits`` distinct groups.
    n_splits : int, default=5
    random_state : int, default=0
        Seed of the fold shuffling; the same seed gives the same folds for every pipeline, so the
        out-of-fold scores of different pipelines are paired (DeLong tests apply).
    scoring : sequence of str, default=("accuracy", "balanced_accuracy", "roc_auc")
        Per-fold metrics. ``"roc_auc"`` is the binary AUC of ``classes[1]`` or the macro one-vs-rest
        AUC; NaN on a fold whose test side holds a single class.
    return_estimators : bool, default=False
        Keep the fitted pipeline of every fold.
    progress : bool, default=True
        Show a tqdm bar over folds.
    train_copies : sequence of arrays like X, optional
        Augmented copies of ``X`` (row i of each is a copy of sample i, e.g. features of stain-jittered
        images): the copies of the training rows are added to the training side of every fold, with the
        same labels; test folds are scored on ``X`` only.
    positive_label : object, optional
        Binary tasks: the class whose score ``scores`` holds and whose AUC ``"roc_auc"`` measures (see
        :func:`medfeat.classifiers.positive_class`). Default ``classes[1]``.

    Returns
    -------
    CVResult

    Raises
    ------
    ValueError
        Fewer distinct groups than ``n_splits``, a single class, mismatched lengths, unknown metric.

    Examples
    --------
    >>> import numpy as np
    >>> from medfeat.classifiers import make_classifier
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (20, 2)), rng.normal(3, 1, (20, 2))]; y = np.repeat([0, 1], 20)
    >>> groups = np.arange(40) // 2  # pairs of samples from one patient
    >>> cv = cross_validate_groups(make_classifier("logreg"), X, y, groups, n_splits=4)
    >>> cv.scores.shape, round(cv.pooled()["roc_auc"], 2) > 0.9
    ((40,), True)
    """
    y = np.asarray(y)
    groups = np.asarray(groups)
    n = len(X)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"y must be 1-D with one label per sample ({n}), got shape {y.shape}.")
    if groups.ndim != 1 or len(groups) != n:
        raise ValueError(f"groups must be 1-D with one group per sample ({n}), got shape {groups.shape}.")
    if not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}.")
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(
            f"y holds a single class ({classes.tolist()}); cross-validation needs at least 2 classes."
        )
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise ValueError(
            f"groups has {n_groups} distinct group(s), fewer than n_splits={n_splits}; lower n_splits or "
            "provide finer groups (every test fold needs at least one whole group)."
        )
    train_copies = list(train_copies) if train_copies is not None else []
    for i, c in enumerate(train_copies):
        if len(c) != n:
            raise ValueError(f"train_copies[{i}] has {len(c)} rows; every copy needs one row per sample ({n}).")
    scoring = [scoring] if isinstance(scoring, str) else list(scoring)
    unknown = set(scoring) - set(_METRICS)
    if unknown:
        raise ValueError(f"scoring must name metrics among {list(_METRICS)}, got {sorted(unknown)}.")

    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    with warnings.catch_warnings():
        # StratifiedGroupKFold warns when a class has fewer groups than folds; stratification is then
        # approximate, which the per-fold metrics show anyway.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        splits = list(cv.split(np.zeros((n, 1)), y, groups))

    binary = len(classes) == 2
    positive = positive_class(classes, positive_label) if binary and positive_label is not None else None
    scores = np.zeros(n) if binary else np.zeros((n, len(classes)))
    predictions = np.empty(n, dtype=y.dtype)
    fold_of = np.full(n, -1, dtype=np.int64)
    rows, estimators = [], []
    iterator = enumerate(splits)
    if progress:
        from .._checks import progress_bar

        iterator = progress_bar(iterator, total=n_splits, desc="CV folds", leave=False)
    for k, (train, test) in iterator:
        train_classes = np.unique(y[train])
        if len(train_classes) < 2:
            raise ValueError(
                f"fold {k}: the training side holds a single class ({train_classes.tolist()}); the groups "
                "are too few or too unbalanced for group-aware CV with this n_splits."
            )
        if len(train_classes) < len(classes):
            missing = sorted(set(classes.tolist()) - set(train_classes.tolist()))
            warnings.warn(
                f"fold {k}: class(es) {missing} have no training sample (all their groups are in the test "
                "fold); they cannot be predicted in this fold.",
                UserWarning,
                stacklevel=2,
            )
        est = clone(pipeline)
        t0 = time.perf_counter()
        if train_copies:
            X_train = [_take(X, train)] + [_take(c, train) for c in train_copies]
            X_train = (np.concatenate(X_train) if all(isinstance(p, np.ndarray) for p in X_train)
                       else [row for p in X_train for row in p])
            est.fit(X_train, np.tile(y[train], 1 + len(train_copies)))
        else:
            est.fit(_take(X, train), y[train])
        fit_s = time.perf_counter() - t0
        X_test = _take(X, test)
        s = _aligned_scores(est, X_test, classes, positive)
        pred = est.predict(X_test)
        scores[test] = s
        predictions[test] = pred
        fold_of[test] = k
        row = dict(
            fold=k,
            n_train=len(train),
            n_test=len(test),
            n_test_groups=len(np.unique(groups[test])),
            fit_seconds=fit_s,
        )
        for m in scoring:
            row[m] = _metric(m, y[test], s, pred, list(classes), positive)
        rows.append(row)
        if return_estimators:
            estimators.append(est)
    return CVResult(
        scores=scores,
        predictions=predictions,
        fold=fold_of,
        classes=classes,
        metrics=pd.DataFrame(rows),
        splits=splits,
        y_true=y,
        estimators=estimators if return_estimators else None,
        positive=positive,
    )
