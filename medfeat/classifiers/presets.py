"""Classifier presets for frozen image features, and a uniform continuous score for ROC analysis.

The presets are plain scikit-learn estimators (a :class:`~sklearn.pipeline.Pipeline` with a
:class:`~sklearn.preprocessing.StandardScaler` step where the model is sensitive to feature scale), with
defaults chosen for a few hundred to a few thousand samples of standardised CNN or handcrafted features,
and class weighting on by default so that imbalanced patch sets do not collapse to the majority class.
"""

import sys

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .._checks import optional_import
from .positive import class_scores

__all__ = [
    "CLASSIFIER_DEFAULTS",
    "XGBoostClassifier",
    "decision_scores",
    "list_classifiers",
    "make_classifier",
]

# Defaults of every preset (documented in make_classifier). Scaled models see standardised features.
CLASSIFIER_DEFAULTS = {
    # L2 logistic regression. C=0.1 rather than sklearn's 1.0: with d (hundreds to thousands of CNN
    # channels) >= n the data are often separable and weak regularisation only slows lbfgs down.
    # newton-cg: on standardised, strongly correlated features (GIST, CNN channels) it converged in
    # ~10 iterations where lbfgs needed 50-300 (4-25x faster on the Kather/Kermany features, same optimum).
    "logreg": dict(C=0.1, class_weight="balanced", solver="newton-cg", max_iter=5000),
    # Linear SVM (Bar et al. 2015 used an SVM on CNN/GIST/LBP features). Small C for the same reason.
    "linear_svm": dict(C=0.01, class_weight="balanced", max_iter=20000),
    # RBF SVM, gamma="scale" = 1 / (d * var(X)), i.e. 1/d on standardised features.
    "rbf_svm": dict(C=1.0, kernel="rbf", gamma="scale", class_weight="balanced"),
    "random_forest": dict(n_estimators=300, class_weight="balanced", random_state=0, n_jobs=None),
    # "xgboost": XGBoostClassifier's own __init__ defaults, added below the class (one source of truth).
    # kNN has no class weighting; distance weighting limits the pull of the majority class a little.
    "knn": dict(n_neighbors=15, weights="distance"),
}

_SCALED = {
    "logreg": True,
    "linear_svm": True,
    "rbf_svm": True,
    "random_forest": False,
    "xgboost": False,
    "knn": True,
}


def list_classifiers():
    """Names accepted by :func:`make_classifier`.

    Examples
    --------
    >>> list_classifiers()
    ['knn', 'linear_svm', 'logreg', 'random_forest', 'rbf_svm', 'xgboost']
    """
    return sorted(CLASSIFIER_DEFAULTS)


def _model_class(name):
    return {
        "logreg": LogisticRegression,
        "linear_svm": LinearSVC,
        "rbf_svm": SVC,
        "random_forest": RandomForestClassifier,
        "xgboost": XGBoostClassifier,
        "knn": KNeighborsClassifier,
    }[name]


def make_classifier(name, **params):
    """Build a classifier preset by name.

    Parameters
    ----------
    name : {"logreg", "linear_svm", "rbf_svm", "random_forest", "xgboost", "knn"}
        The model. Defaults (override any of them through ``params``):

        - ``"logreg"``: ``StandardScaler`` + ``LogisticRegression(C=0.1, class_weight="balanced",
          solver="newton-cg", max_iter=5000)``; scores are ``predict_proba``.
        - ``"linear_svm"``: ``StandardScaler`` + ``LinearSVC(C=0.01, class_weight="balanced",
          max_iter=20000)``; scores are ``decision_function`` (no probabilities; ROC needs only a ranking).
        - ``"rbf_svm"``: ``StandardScaler`` + ``SVC(kernel="rbf", C=1, gamma="scale",
          class_weight="balanced")``; scores are ``decision_function``.
        - ``"random_forest"``: ``RandomForestClassifier(n_estimators=300, class_weight="balanced",
          random_state=0)``, no scaler (trees are scale-invariant).
        - ``"xgboost"``: :class:`XGBoostClassifier` (histogram trees, ``n_estimators=200,
          learning_rate=0.1, max_depth=4, subsample=0.8, colsample_bytree=0.5``, ``device="auto"`` = CUDA
          when xgboost and a GPU are available, else CPU), no scaler. Class imbalance is handled with
          per-sample weights ``n / (k * n_class)`` (sklearn's "balanced" rule) given to ``fit``, which
          works for multi-class too, unlike ``scale_pos_weight``.
        - ``"knn"``: ``StandardScaler`` + ``KNeighborsClassifier(n_neighbors=15, weights="distance")``
          (kNN has no class weighting).
    **params
        Parameters of the model (not of the scaler), e.g. ``C=1.0`` or ``n_estimators=100``.

    Returns
    -------
    estimator
        A ``Pipeline([("scaler", StandardScaler()), ("classifier", model)])`` for scale-sensitive
        models, else the bare model. All work for binary and multi-class targets; use
        :func:`decision_scores` for a continuous score.

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the valid names) or a parameter the model does not take.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> clf = make_classifier("logreg", C=10.0).fit(X, y)
    >>> clf.predict([[0.2], [2.8]])
    array([0, 1])
    >>> [name for name, _ in clf.steps]
    ['scaler', 'classifier']
    """
    if not isinstance(name, str) or name not in CLASSIFIER_DEFAULTS:
        raise ValueError(f"classifier name must be one of {list_classifiers()}, got {name!r}.")
    kwargs = {**CLASSIFIER_DEFAULTS[name], **params}
    cls = _model_class(name)
    try:
        model = cls(**kwargs)
    except TypeError as exc:
        valid = sorted(cls().get_params(deep=False))
        raise ValueError(
            f"invalid parameter for classifier {name!r} ({exc}); valid parameters: {valid}."
        ) from exc
    if _SCALED[name]:
        return Pipeline([("scaler", StandardScaler()), ("classifier", model)])
    return model


def decision_scores(estimator, X):
    """Continuous scores of a fitted classifier, usable for ROC analysis.

    Uses ``predict_proba`` when the estimator offers it, else ``decision_function``.

    Parameters
    ----------
    estimator : fitted classifier
        Any scikit-learn classifier or pipeline ending in one.
    X : array-like
        Input accepted by ``estimator``.

    Returns
    -------
    ndarray of float64
        Binary: shape (n,), the score of the positive class ``estimator.classes_[1]`` (probability or
        decision value; higher means more likely positive). Multi-class: shape (n, k), one column per
        class in ``estimator.classes_`` order.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array(["a", "a", "b", "b"])
    >>> clf = make_classifier("linear_svm").fit(X, y)
    >>> s = decision_scores(clf, X)
    >>> s.shape, bool(s[3] > s[0])
    ((4,), True)
    """
    check_is_fitted(estimator)
    classes = getattr(estimator, "classes_", None)
    if classes is not None and len(classes) == 2 and (
        hasattr(estimator, "predict_proba") or hasattr(estimator, "decision_function")
    ):
        return class_scores(estimator, X, classes[1])[0]
    if hasattr(estimator, "predict_proba"):
        scores = np.asarray(estimator.predict_proba(X), dtype=np.float64)
        if scores.ndim == 2 and scores.shape[1] == 2:
            return scores[:, 1]
        return scores
    if hasattr(estimator, "decision_function"):
        scores = np.asarray(estimator.decision_function(X), dtype=np.float64)
        if scores.ndim == 2 and scores.shape[1] == 1:
            scores = scores[:, 0]
        return scores
    raise ValueError(
        f"estimator {type(estimator).__name__} has neither predict_proba nor decision_function; "
        f"cannot compute continuous scores (classes: {classes})."
    )


def _cuda_available():
    # Ask torch only if it is already loaded (importing it just to probe costs seconds); otherwise
    # trust xgboost's own build flag plus the presence of an NVIDIA device node.
    xgboost = sys.modules.get("xgboost")
    if xgboost is None or not xgboost.build_info().get("USE_CUDA", False):
        return False
    torch = sys.modules.get("torch")
    if torch is not None:
        return bool(torch.cuda.is_available())
    import os

    return os.path.exists("/dev/nvidia0")


class XGBoostClassifier(ClassifierMixin, BaseEstimator):
    """Histogram gradient-boosted trees (xgboost) with class weighting and any label type.

    A thin wrapper of ``xgboost.XGBClassifier``: it encodes labels of any type (xgboost wants
    0..k-1), turns ``class_weight="balanced"`` into per-sample weights (xgboost has no class_weight,
    and ``scale_pos_weight`` covers binary tasks only), picks ``device="cuda"`` when available, and
    persists its booster as xgboost's own JSON (so :mod:`skops.io` can save it without pickling).

    Parameters
    ----------
    n_estimators, learning_rate, max_depth, subsample, colsample_bytree : see xgboost
    class_weight : {"balanced", None} or dict, default="balanced"
        Turned into sample weights with ``sklearn.utils.class_weight.compute_sample_weight``.
    device : {"auto", "cpu", "cuda"}, default="auto"
        "auto" uses CUDA when xgboost was built with it and a GPU is present.
    random_state : int, default=0
    n_jobs : int or None
        Threads used by xgboost (None = xgboost's default).
    xgb_params : dict or None
        Any other ``XGBClassifier`` parameter.

    Attributes
    ----------
    classes_ : ndarray
        Class labels.
    model_ : xgboost.XGBClassifier
        The fitted booster wrapper.
    device_ : str
        Device actually used.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]] * 5); y = np.array(["a", "a", "b", "b"] * 5)
    >>> XGBoostClassifier(n_estimators=5, device="cpu").fit(X, y).predict([[0.0], [3.0]])
    array(['a', 'b'], dtype='<U1')
    """

    def __init__(
        self,
        n_estimators=200,
        learning_rate=0.1,
        max_depth=4,
        subsample=0.8,
        colsample_bytree=0.5,
        class_weight="balanced",
        device="auto",
        random_state=0,
        n_jobs=None,
        xgb_params=None,
    ):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.class_weight = class_weight
        self.device = device
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.xgb_params = xgb_params

    def fit(self, X, y, sample_weight=None):
        xgboost = optional_import("xgboost", purpose="the 'xgboost' classifier")
        X, y = validate_data(self, X, y, dtype=np.float32, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        self._le = LabelEncoder().fit(y)
        self.classes_ = self._le.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"y must hold at least 2 classes, got 1 class: {list(self.classes_)}.")
        y_enc = self._le.transform(y)
        weights = None
        if self.class_weight is not None:
            weights = compute_sample_weight(
                self.class_weight, y_enc if not isinstance(self.class_weight, dict) else y
            )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
            if not np.any(sample_weight > 0):
                raise ValueError(
                    "sample_weight: all weights are zero; at least one sample must have weight > 0."
                )
            weights = sample_weight if weights is None else weights * sample_weight
        if self.device not in ("auto", "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}.")
        self.device_ = ("cuda" if _cuda_available() else "cpu") if self.device == "auto" else self.device
        params = dict(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            tree_method="hist",
            device=self.device_,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )
        params.update(self.xgb_params or {})
        self.model_ = xgboost.XGBClassifier(**params)
        self.model_.fit(X, y_enc, sample_weight=weights)
        return self

    def predict_proba(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False, ensure_all_finite="allow-nan")
        proba = np.asarray(self.model_.predict_proba(X), dtype=np.float64)
        if proba.ndim == 1:
            proba = np.column_stack([1.0 - proba, proba])
        return proba

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # The booster is stored as xgboost's JSON model bytes, not a pickled C++ handle: files stay
    # portable across xgboost versions and skops.io can persist it as plain bytes.
    def __getstate__(self):
        state = self.__dict__.copy()
        model = state.pop("model_", None)
        if model is not None:
            state["_model_json"] = bytes(model.get_booster().save_raw("json"))
            state["_model_params"] = {k: v for k, v in model.get_params().items() if v is None or isinstance(v, (bool, int, float, str))}
        return state

    def __setstate__(self, state):
        state = dict(state)
        raw = state.pop("_model_json", None)
        params = state.pop("_model_params", None)
        self.__dict__.update(state)
        if raw is not None:
            xgboost = optional_import("xgboost", purpose="loading an 'xgboost' classifier")
            model = xgboost.XGBClassifier(**params)
            model.load_model(bytearray(raw))
            self.model_ = model


CLASSIFIER_DEFAULTS["xgboost"] = {
    k: v for k, v in XGBoostClassifier().get_params(deep=False).items() if k != "xgb_params"
}

