import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from medfeat.classifiers import XGBoostClassifier, decision_scores, list_classifiers, make_classifier

NAMES = ["knn", "linear_svm", "logreg", "random_forest", "rbf_svm", "xgboost"]
FAST = {"random_forest": dict(n_estimators=30), "xgboost": dict(n_estimators=30, n_jobs=1)}


def _blobs(rng, n_per_class, n_classes, d=6, sep=3.0):
    centres = rng.normal(0, sep, size=(n_classes, d))
    X = np.concatenate([rng.normal(c, 1.0, size=(n_per_class, d)) for c in centres])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return X, y


def test_list_classifiers_is_sorted_and_complete():
    assert list_classifiers() == NAMES


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="logreg") as info:
        make_classifier("svm")
    assert all(n in str(info.value) for n in NAMES)


def test_invalid_parameter_is_a_value_error_naming_the_model():
    with pytest.raises(ValueError, match="'logreg'"):
        make_classifier("logreg", n_estimators=3)


def test_params_override_defaults():
    clf = make_classifier("rbf_svm", C=7.0)
    assert clf.named_steps["classifier"].C == 7.0
    assert clf.named_steps["classifier"].class_weight == "balanced"
    assert isinstance(clf.named_steps["scaler"], StandardScaler)
    assert not hasattr(make_classifier("random_forest"), "steps")


def test_xgboost_preset_defaults_are_the_documented_ones():
    # The values make_classifier's docstring promises (independent of where the code keeps them).
    params = make_classifier("xgboost").get_params()
    expected = dict(n_estimators=200, learning_rate=0.1, max_depth=4, subsample=0.8, colsample_bytree=0.5,
                    class_weight="balanced", device="auto", random_state=0, n_jobs=None, xgb_params=None)
    assert {k: params[k] for k in expected} == expected


@pytest.mark.parametrize("name", NAMES)
def test_binary_scores_rank_held_out_samples(name, rng):
    X, y = _blobs(rng, 60, 2)
    y = np.where(y == 1, "tumour", "normal")  # string labels: positive class is classes_[1] = "tumour"
    idx = rng.permutation(len(y))
    train, test = idx[:80], idx[80:]
    clf = make_classifier(name, **FAST.get(name, {})).fit(X[train], y[train])
    s = decision_scores(clf, X[test])
    assert s.shape == (len(test),) and s.dtype == np.float64
    assert list(clf.classes_) == ["normal", "tumour"]
    assert roc_auc_score(y[test] == "tumour", s) > 0.95


@pytest.mark.parametrize("name", NAMES)
def test_multiclass_scores_have_one_column_per_class(name, rng):
    X, y = _blobs(rng, 40, 3, sep=4.0)
    idx = rng.permutation(len(y))
    train, test = idx[:90], idx[90:]
    clf = make_classifier(name, **FAST.get(name, {})).fit(X[train], y[train])
    s = decision_scores(clf, X[test])
    assert s.shape == (len(test), 3)
    assert roc_auc_score(y[test], _softmax(s), multi_class="ovr") > 0.95
    assert np.mean(clf.predict(X[test]) == y[test]) > 0.85


def _softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", ["logreg", "linear_svm", "rbf_svm", "knn"])
def test_scaled_presets_ignore_feature_units(name, rng):
    # With the scaler inside, multiplying one feature by 1000 must not change the predictions.
    X, y = _blobs(rng, 40, 2)
    X2 = X.copy()
    X2[:, 0] *= 1000.0
    a = make_classifier(name).fit(X, y).predict(X)
    b = make_classifier(name).fit(X2, y).predict(X2)
    assert np.mean(a == b) >= 0.98


@pytest.mark.parametrize("name", ["logreg", "linear_svm", "rbf_svm", "random_forest", "xgboost"])
def test_class_weighting_raises_minority_recall(name, rng):
    # 95:5 imbalance with overlapping classes: on held-out minority samples the balanced preset must
    # find more of them than the same model without weighting.
    X = np.concatenate([rng.normal(0, 1, (380, 2)), rng.normal(1.2, 1, (20, 2))])
    y = np.r_[np.zeros(380, int), np.ones(20, int)]
    X_minority = rng.normal(1.2, 1, (400, 2))
    params = dict(FAST.get(name, {}))
    if name == "random_forest":
        params["min_samples_leaf"] = 10  # fully grown trees memorise and ignore weights
    weighted = make_classifier(name, **params).fit(X, y)
    plain = make_classifier(name, class_weight=None, **params).fit(X, y)
    assert np.mean(weighted.predict(X_minority) == 1) > np.mean(plain.predict(X_minority) == 1) + 0.1


def test_decision_scores_needs_fitted_estimator():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        decision_scores(make_classifier("logreg"), np.zeros((2, 2)))


def test_xgboost_labels_pickling_and_device(rng):
    X, y = _blobs(rng, 30, 3, sep=4.0)
    labels = np.array(["lympho", "stroma", "tumour"])[y]
    clf = XGBoostClassifier(n_estimators=20, device="cpu", n_jobs=1).fit(X, labels)
    assert clf.device_ == "cpu"
    assert set(clf.predict(X)) <= set(labels)
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    # clone keeps params only
    assert clone(clf).get_params() == clf.get_params()
    with pytest.raises(ValueError, match="device"):
        XGBoostClassifier(device="tpu").fit(X, labels)


def test_xgboost_balanced_weights_match_explicit_sample_weights(rng):
    # class_weight="balanced" must be equivalent to passing sklearn's balanced weights by hand.
    X = rng.normal(size=(60, 3))
    y = np.r_[np.zeros(45, int), np.ones(15, int)]
    w = np.where(y == 1, 60 / (2 * 15), 60 / (2 * 45))
    a = XGBoostClassifier(n_estimators=10, subsample=1.0, colsample_bytree=1.0, device="cpu", n_jobs=1).fit(
        X, y
    )
    b = XGBoostClassifier(
        n_estimators=10, subsample=1.0, colsample_bytree=1.0, class_weight=None, device="cpu", n_jobs=1
    ).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-6)


@parametrize_with_checks(
    [XGBoostClassifier(n_estimators=5, device="cpu", n_jobs=1)],
    expected_failed_checks=lambda est: {
        "check_sample_weight_equivalence_on_dense_data": "row/column subsampling makes weighted and "
        "repeated-sample fits draw different random subsets",
    },
)
def test_xgboost_estimator_contract(estimator, check):
    check(estimator)
