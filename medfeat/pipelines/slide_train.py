"""Training patch classifiers from slide feature stores, with labels from annotations or a CSV.

The training set is the union of the rows of several feature stores (one per slide); each row's group is
its slide, so cross-validation never puts patches of one slide on both sides (StratifiedGroupKFold).
The trained model is a :class:`SlidePatchClassifier`: the feature transformer recorded in the stores plus
the fitted classifier plus the grid settings (mpp, patch size, stride, scales), so it scores raw slide
patches (:class:`~medfeat.pipelines.heatmap.SlideHeatmap`) with exactly the features it was trained on.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from .._checks import ResultDisplay
from ..slides.spec import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS, GridSpec
from .config import estimator_config, estimator_from_config, strip_runtime
from .labels import read_labels_csv, store_labels
from .store import load_slide_features

__all__ = ["SlidePatchClassifier", "SlideTrainingResult", "load_training_set", "train_from_feature_stores"]

logger = logging.getLogger(__name__)

_GRID_FIELDS = tuple(f.name for f in dataclasses.fields(GridSpec))


def _classifier_has(method):
    # like sklearn's Pipeline: expose predict_proba / decision_function only when the classifier has them
    def check(self):
        clf = getattr(self, "classifier_", self.classifier)
        return hasattr(clf, method)

    return check


class SlidePatchClassifier(ClassifierMixin, BaseEstimator):
    """A patch classifier on raw slide patches: feature transformer + classifier + grid settings.

    Parameters
    ----------
    features : transformer
        Feature transformer on NHWC uint8 patches (or (N, S, H, W, C) for several scales).
    classifier : estimator
        Classifier on the features.
    mpp, size, stride, scales, tissue, min_tissue, magnification, tissue_mpp
        The patch grid the classifier was trained on, the fields of :class:`medfeat.slides.GridSpec` (with
        its defaults); :attr:`grid_spec` gives them as one validated spec, used by :meth:`heatmap`.
        (They are separate parameters, not one spec object, so the scikit-learn contract holds and models
        saved before the spec existed still load.)
    positive_label : object, optional
        The positive class; required unless the labels are 0/1 (:func:`medfeat.classifiers.positive_class`).

    Attributes
    ----------
    features_ : fitted transformer
    classifier_ : fitted classifier
    classes_ : ndarray
    positive_label_ : object
        The positive class (an element of ``classes_``); heatmaps and scores use it.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from sklearn.linear_model import LogisticRegression
    >>> mean_rgb = FunctionTransformer(lambda X: np.asarray(X, float).mean(axis=(1, 2)))
    >>> X = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (40, 60, 190, 210)])
    >>> m = SlidePatchClassifier(mean_rgb, LogisticRegression(), mpp=1.0, size=8).fit(X, [1, 1, 0, 0])
    >>> m.predict(X).tolist()
    [1, 1, 0, 0]
    """

    def __init__(self, features=None, classifier=None, mpp=GridSpec.mpp, size=GridSpec.size, stride=GridSpec.stride,
                 scales=GridSpec.scales, tissue=GridSpec.tissue, min_tissue=GridSpec.min_tissue, positive_label=None,
                 magnification=GridSpec.magnification, tissue_mpp=GridSpec.tissue_mpp):
        self.features = features
        self.positive_label = positive_label
        self.classifier = classifier
        self.mpp = mpp
        self.size = size
        self.stride = stride
        self.scales = scales
        self.tissue = tissue
        self.min_tissue = min_tissue
        self.magnification = magnification
        self.tissue_mpp = tissue_mpp

    def __setstate__(self, state):
        # models saved before magnification / tissue_mpp / positive_label existed: the defaults they were made with
        state = dict(state)
        state.setdefault("magnification", GridSpec.magnification)
        state.setdefault("tissue_mpp", GridSpec.tissue_mpp)
        state.setdefault("positive_label", None)
        super().__setstate__(state)

    @property
    def grid_spec(self):
        """The grid settings as one validated :class:`medfeat.slides.GridSpec`."""
        return GridSpec(**{name: getattr(self, name) for name in _GRID_FIELDS})

    @classmethod
    def from_grid_spec(cls, features, classifier, spec, **params):
        """A model on the grid ``spec`` (a :class:`~medfeat.slides.GridSpec` or its dict); ``params`` are the
        other parameters (``positive_label``)."""
        spec = GridSpec.build(spec)
        params.update({name: getattr(spec, name) for name in _GRID_FIELDS})
        params["stride"] = spec.step  # the step the patches were cut with, explicit in the model
        return cls(features, classifier, **params)

    def fit(self, X, y):
        """Fit the transformer and the classifier on patches ``X`` (NHWC uint8) and labels ``y``."""
        if self.features is None or self.classifier is None:
            raise ValueError("features and classifier must both be given.")
        self.features_ = clone(self.features).fit(X)
        F = self.features_.transform(X)
        self.classifier_ = clone(self.classifier).fit(F, y)
        self._set_classes()
        return self

    def _set_classes(self):
        from medfeat.classifiers import positive_class

        self.classes_ = self.classifier_.classes_
        self.positive_label_ = positive_class(self.classes_, self.positive_label)

    def fit_features(self, F, y, *, fitted_features=None):
        """Fit only the classifier, on precomputed feature rows ``F`` (e.g. from feature stores).

        Parameters
        ----------
        F : ndarray of shape (n, d)
            Features computed by (a fitted copy of) ``features``.
        y : array-like of shape (n,)
        fitted_features : transformer, optional
            The fitted transformer that made ``F``; by default ``features`` is fitted on one blank patch
            (feature extractors learn nothing from the data: fitting only builds them).
        """
        if self.features is None or self.classifier is None:
            raise ValueError("features and classifier must both be given.")
        if fitted_features is None:
            blank = np.full((1, int(self.size), int(self.size), 3), 255, np.uint8)
            if len(tuple(self.scales)) > 1:
                blank = np.repeat(blank[:, None], len(tuple(self.scales)), axis=1)
            fitted_features = clone(self.features).fit(blank)
        self.features_ = fitted_features
        self.classifier_ = clone(self.classifier).fit(F, y)
        self._set_classes()
        return self

    def transform_features(self, X):
        check_is_fitted(self, "classifier_")
        return self.features_.transform(X)

    @available_if(_classifier_has("predict_proba"))
    def predict_proba(self, X):
        check_is_fitted(self, "classifier_")
        return self.classifier_.predict_proba(self.features_.transform(X))

    @available_if(_classifier_has("decision_function"))
    def decision_function(self, X):
        check_is_fitted(self, "classifier_")
        return self.classifier_.decision_function(self.features_.transform(X))

    def predict(self, X):
        check_is_fitted(self, "classifier_")
        return self.classifier_.predict(self.features_.transform(X))

    def heatmap(self, slide, *, stride=None, tta=False, batch_size=DEFAULT_BATCH_SIZE, num_workers=DEFAULT_NUM_WORKERS,
                progress=True, slide_mpp=None):
        """Heatmap of ``slide`` on this model's grid (:attr:`grid_spec`; see :class:`SlideHeatmap`)."""
        from .heatmap import SlideHeatmap

        check_is_fitted(self, "classifier_")
        spec = self.grid_spec if stride is None else self.grid_spec.replace(stride=stride)
        return SlideHeatmap(self, spec, tta=tta, batch_size=batch_size, num_workers=num_workers, progress=progress,
                            slide_mpp=slide_mpp).predict(slide)


@dataclass(repr=False)
class SlideTrainingResult(ResultDisplay):
    """What :func:`train_from_feature_stores` returns.

    Attributes
    ----------
    model : SlidePatchClassifier
        Fitted on all patches; scores raw slide patches.
    X, y, groups : ndarray
        The training features, patch labels and slide of each patch.
    oof_scores : ndarray or None
        Out-of-fold positive-class scores from group-aware cross-validation (None with fewer than 2 slides
        per class).
    report : ROCReport or None
        Patch-level ROC of the out-of-fold scores (CIs resample slides).
    stores : list of pathlib.Path
        The stores used.
    classifier_name : str or None
        The :func:`~medfeat.classifiers.make_classifier` preset, when one was named.
    model_path : pathlib.Path or None
        Where :meth:`save` (or ``train_from_feature_stores(out=...)``) wrote the model.
    """

    model: SlidePatchClassifier
    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    oof_scores: np.ndarray | None
    report: object
    stores: list
    classifier_name: str | None = None
    model_path: Path | None = None

    def metadata(self):
        """What a saved model records beside itself: its grid (``grid_spec``, and the older separate keys),
        classifier, training patches and slides, out-of-fold AUC and positive class."""
        model = self.model
        return {"mpp": model.mpp, "size": model.size, "stride": model.stride, "scales": list(model.scales),
                "grid_spec": model.grid_spec.to_dict(), "classifier": self.classifier_name,
                "n_patches": int(len(self.y)), "slides": [Path(p).name for p in self.stores],
                "cv_auc": None if self.report is None else float(self.report.auc),
                "positive_label": model.positive_label_}

    def save(self, path):
        """Write the model and :meth:`metadata` to ``path`` (:func:`medfeat.pipelines.save_model`)."""
        from .persist import save_model

        self.model_path = Path(save_model(self.model, path, metadata=self.metadata()))
        return self.model_path

    def summary(self):
        """Text summary: patches, slides, classes, and the out-of-fold ROC when there is one."""
        classes, counts = np.unique(self.y, return_counts=True)
        lines = [f"patch classifier trained on {len(self.y)} patches from {len(np.unique(self.groups))} slides "
                 f"({', '.join(f'{c}: {k}' for c, k in zip(classes.tolist(), counts.tolist()))}), "
                 f"{self.X.shape[1]} features"]
        if self.report is None:
            lines.append("No out-of-fold ROC (fewer than 2 slides per class).")
        else:
            lines += ["Out-of-fold " + ln if i == 0 else ln for i, ln in enumerate(self.report.summary().splitlines())]
        return "\n".join(lines)

    def _display_frame(self):
        return None


def _stores_in(features_dir):
    if isinstance(features_dir, (list, tuple)):
        stores = [Path(p) for p in features_dir]
    else:
        features_dir = Path(features_dir)
        if not features_dir.is_dir():
            raise FileNotFoundError(f"features directory not found: {features_dir}")
        stores = sorted(features_dir.glob("*.h5"))
    if not stores:
        raise ValueError(f"no feature stores (*.h5) in {features_dir}; run `medfeat extract` first.")
    return stores


def load_training_set(features_dir, *, annotations=None, labels=None, rule=None):
    """Features, labels and slide groups from a directory of feature stores.

    Labels come from (first that applies): a labels CSV (``slide,label`` for slide-level labels given to
    every patch of the slide, or ``slide,x,y,label`` for patch labels at level-0 top-left coordinates);
    an annotations directory (``<slide>.xml``/``.geojson`` rasterised to patch labels by the classes of
    ``rule``, a :class:`~medfeat.pipelines.ClassRule`; a slide without a file is an error unless the rule
    says ``unannotated="negative"`` or ``"skip"``, or the labels CSV lists it); or the ``labels`` stored in
    the feature stores. Patches labelled -1 (ignored classes) are left out; stores without labels are
    skipped with a warning.

    Returns
    -------
    X : ndarray (n, d) float32
    y : ndarray (n,)
    groups : ndarray (n,) of str
    stores : list of Path
    attrs : dict
        Attributes of the first store (grid settings, transformer configuration).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from medfeat.slides import write_synthetic_slide
    >>> from medfeat.pipelines import extract_slide_features
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> s = write_synthetic_slide(d / "s.tif", size=(1024, 1024), mpp=0.5, lesions=1)
    >>> p = extract_slide_features(s.path, "handcrafted", mpp=1.0, size=64, out=d / "f", progress=False,
    ...                            annotations=s.lesions)
    >>> X, y, groups, stores, attrs = load_training_set(d / "f")
    >>> X.shape[0] == y.shape[0] == groups.shape[0]
    True
    """
    if annotations is not None and not Path(annotations).is_dir():
        raise FileNotFoundError(f"annotations directory not found: {annotations}")
    labels_df = read_labels_csv(labels) if labels is not None else None
    Xs, ys, gs, used = [], [], [], []
    first_attrs, first_config = None, None
    for store in _stores_in(features_dir):
        grid, F, stored, attrs = load_slide_features(store)
        stem = store.name[: -len(".h5")]
        got = store_labels(stem, grid, stored, annotations_dir=annotations, labels_df=labels_df, rule=rule)
        if got is None:
            warnings.warn(f"no labels for {store.name}; skipped.", RuntimeWarning, stacklevel=2)
            continue
        lab, keep = got
        config = (attrs.get("transformer"), attrs.get("mpp"), attrs.get("size"), attrs.get("scales"))
        if first_config is None:
            first_attrs, first_config = attrs, config
        elif config != first_config:
            raise ValueError(f"feature store {store} was extracted with other settings (features, mpp, size or scales) "
                             f"than {used[0]}; train on stores from one extraction.")
        Xs.append(F[keep])
        ys.append(lab[keep])
        gs.append(np.full(int(keep.sum()), stem, dtype=object))
        used.append(store)
    if not Xs:
        raise ValueError(f"no labelled patches in {features_dir}: give --annotations or --labels matching the slide names.")
    X = np.concatenate(Xs).astype(np.float32, copy=False)
    y = np.concatenate(ys)
    try:
        y = y.astype(np.int64)
    except (TypeError, ValueError):
        y = y.astype(str)
    groups = np.concatenate(gs).astype(str)
    return X, y, groups, used, first_attrs


def train_from_feature_stores(features_dir, *, annotations=None, labels=None, classifier="xgboost", cv=5,
                              random_state=0, classifier_params=None, positive_label=None, rule=None,
                              features=None, out=None):
    """Train a patch classifier on feature stores with group-aware (by slide) cross-validation.

    Parameters
    ----------
    features_dir : str, path or list of paths
        Directory of ``*.h5`` feature stores (or the store paths).
    annotations : str or path, optional
        Directory of ``<slide>.xml`` / ``.geojson`` annotations (patch labels by rasterised polygons).
    labels : str or path, optional
        Labels CSV (``slide,label`` or ``slide,x,y,label``); with ``annotations`` too, its rows win (e.g.
        ``slide,label`` rows declaring the normal slides that have no annotation file).
    rule : ClassRule, optional
        Annotation classes (positive / negative / ignored) and what an unannotated slide is (default: an
        error).
    classifier : str or estimator
        A :func:`medfeat.classifiers.make_classifier` name or an unfitted estimator.
    cv : int
        Folds of StratifiedGroupKFold (reduced to the number of slides of the rarer class); below 2
        no cross-validation is run.
    random_state : int
        Seed of the fold shuffling.
    classifier_params : dict, optional
        Extra parameters for ``make_classifier``.
    positive_label : object, optional
        The positive class; required unless the labels are 0/1 (``Tumor``/``normal`` or ``1``/``2`` are not
        guessed). Recorded in the model as ``positive_label_``; heatmaps draw its score.
    features : transformer, optional
        The feature transformer the stores were extracted with. By default it is rebuilt from the stores'
        recorded configuration, which is only done for medfeat's feature transformers (an allow-list:
        a store is a file, and must not name code to run); for another transformer pass it here, and it
        is checked against the recorded configuration.
    out : str or path, optional
        Write the trained model (with :meth:`SlideTrainingResult.metadata`) to this file.

    Returns
    -------
    SlideTrainingResult

    Warns
    -----
    RuntimeWarning
        When fewer than 2 slides hold the rarer class: no cross-validation is possible, the model is only
        fitted.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from medfeat.slides import write_synthetic_slide
    >>> from medfeat.pipelines import extract_slide_features
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> square = [[300, 300], [600, 300], [600, 600], [300, 600]]
    >>> for i in range(2):
    ...     s = write_synthetic_slide(d / f"s{i}.tif", size=(1024, 1024), mpp=0.5, lesions=[square], seed=i)
    ...     _ = extract_slide_features(s.path, "color", mpp=1.0, size=32, out=d / "f", progress=False,
    ...                                annotations=s.lesions, tissue="gray")
    >>> res = train_from_feature_stores(d / "f", classifier="logreg")
    >>> res.model.mpp, res.model.size, res.report is not None
    (1.0, 32, True)
    """
    from medfeat.classifiers import make_classifier, positive_class

    from .patch import cross_validate_groups

    if annotations is not None and logger.isEnabledFor(logging.INFO):
        from .labels import annotation_summary

        stems = [p.name[: -len(".h5")] for p in _stores_in(features_dir)]
        if Path(annotations).is_dir():
            table = annotation_summary(stems, annotations, rule)
            logger.info("annotation classes per slide (role: positive / negative / ignore):\n%s",
                        table.to_string(index=False))
    X, y, groups, stores, attrs = load_training_set(features_dir, annotations=annotations, labels=labels, rule=rule)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"all {len(y)} labelled patches have the single class {classes[0]}; a classifier needs two "
                         "classes (check the annotations/labels and that lesions fall on tissue patches).")
    if len(classes) > 2:
        raise ValueError(f"slide training supports binary labels; got classes {classes.tolist()}.")
    positive = positive_class(classes, positive_label)
    clf = make_classifier(classifier, **(classifier_params or {})) if isinstance(classifier, str) else clone(classifier)

    oof, report = None, None
    # number of slides holding each class bounds the folds, so every fold sees both classes
    slides_per_class = min(len(np.unique(groups[y == c])) for c in classes)
    n_splits = min(int(cv), slides_per_class, len(np.unique(groups)))
    if n_splits >= 2:
        # the group-aware CV engine of medfeat (StratifiedGroupKFold by slide), as in compare
        oof = cross_validate_groups(clf, X, y, groups, n_splits=n_splits, random_state=random_state,
                                    scoring=(), positive_label=positive, progress=False).scores
        y01 = (y == positive).astype(int)
        if len(np.unique(y01)) == 2:
            from medfeat.evaluation import roc_report

            report = roc_report(y01, oof, groups=groups)
    else:
        warnings.warn(f"only {slides_per_class} slide(s) hold the rarer class: no group-aware cross-validation; "
                      "the model is fitted on all patches.", RuntimeWarning, stacklevel=2)

    if features is None:
        transformer = estimator_from_config(attrs["transformer"])
    else:
        if strip_runtime(estimator_config(features)) != strip_runtime(attrs["transformer"]):
            raise ValueError(
                f"features={features!r} is not the transformer the stores were extracted with "
                f"({attrs['transformer'].get('__class__')} with its recorded parameters)."
            )
        transformer = clone(features)
    model = SlidePatchClassifier.from_grid_spec(
        transformer, clf, attrs["grid_spec"], positive_label=positive.item() if hasattr(positive, "item") else positive
    )
    model.fit_features(X, y)
    result = SlideTrainingResult(model, X, y, groups, oof, report, stores,
                                 classifier_name=classifier if isinstance(classifier, str) else None)
    if out is not None:
        result.save(out)
    return result
