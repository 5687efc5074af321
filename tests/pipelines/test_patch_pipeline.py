import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import FeatureUnion, Pipeline

from medfeat.classifiers import make_classifier
from medfeat.pipelines.patch import cross_validate_groups, macro_ovr_auc, make_patch_pipeline


def _grouped_data(rng, n_groups=20, per_group=4, d=5, signal=2.0):
    groups = np.repeat(np.arange(n_groups), per_group)
    y = np.repeat(np.arange(n_groups) % 2, per_group)
    X = rng.normal(size=(len(y), d))
    X[:, 0] += signal * y
    return X, y, np.array([f"slide{g}" for g in groups])


def test_no_group_on_both_sides_and_every_sample_tested_once(rng):
    X, y, groups = _grouped_data(rng)
    cv = cross_validate_groups(make_classifier("logreg"), X, y, groups, n_splits=5)
    assert len(cv.splits) == 5
    tested = np.concatenate([test for _, test in cv.splits])
    assert sorted(tested.tolist()) == list(range(len(y)))
    for k, (train, test) in enumerate(cv.splits):
        assert not set(groups[train]) & set(groups[test])
        assert set(y[test]) == {0, 1}  # stratified: 10 groups per class over 5 folds
        assert np.all(cv.fold[test] == k)
    assert list(cv.metrics["fold"]) == [0, 1, 2, 3, 4]
    assert cv.metrics["n_test"].sum() == len(y)


def test_group_cv_removes_identity_leakage(rng):
    # Every group has its own random "stain" vector and one label: a 1-NN classifier that matches
    # group identity is perfect under plain K-fold but at chance when whole groups are held out.
    n_groups, per_group = 30, 6
    groups = np.repeat(np.arange(n_groups), per_group)
    y = np.repeat(rng.permutation(np.arange(n_groups) % 2), per_group)
    X = rng.normal(size=(n_groups, 10))[groups] + 0.05 * rng.normal(size=(len(groups), 10))
    knn = KNeighborsClassifier(n_neighbors=1)
    leaky = np.mean(cross_val_predict(knn, X, y, cv=KFold(5, shuffle=True, random_state=0)) == y)
    cv = cross_validate_groups(knn, X, y, groups, n_splits=5)
    assert leaky > 0.95
    assert cv.pooled()["accuracy"] < 0.75


def test_oof_scores_equal_a_manual_refit_per_fold(rng):
    X, y, groups = _grouped_data(rng)
    clf = make_classifier("linear_svm")
    cv = cross_validate_groups(clf, X, y, groups, n_splits=4, random_state=3)
    for k, (train, test) in enumerate(cv.splits):
        ref = clone(clf).fit(X[train], y[train]).decision_function(X[test])
        np.testing.assert_allclose(cv.scores[test], ref)
        assert cv.metrics.loc[k, "roc_auc"] == pytest.approx(roc_auc_score(y[test], ref))
    assert cv.pooled()["roc_auc"] == pytest.approx(roc_auc_score(y, cv.scores))
    assert cv.pooled()["accuracy"] == pytest.approx(np.mean(cv.predictions == y))


def test_same_seed_same_folds_for_different_models(rng):
    X, y, groups = _grouped_data(rng)
    a = cross_validate_groups(make_classifier("logreg"), X, y, groups, random_state=7)
    b = cross_validate_groups(make_classifier("knn"), X, y, groups, random_state=7)
    np.testing.assert_array_equal(a.fold, b.fold)


def test_multiclass_with_a_single_group_class(rng):
    # class "c" lives on one slide only: when that slide is tested, training has no "c".
    X, y, groups = _grouped_data(rng, n_groups=12, per_group=5)
    y = np.where(y == 1, "b", "a").astype(object)
    y[groups == "slide0"] = "c"
    X[groups == "slide0", 1] += 5.0
    with pytest.warns(UserWarning, match=r"\['c'\] have no training sample"):
        cv = cross_validate_groups(
            make_classifier("logreg"), X, y, groups, n_splits=4, return_estimators=True
        )
    assert cv.scores.shape == (60, 3) and list(cv.classes) == ["a", "b", "c"]
    k = cv.fold[groups == "slide0"][0]
    assert list(cv.estimators[k].classes_) == ["a", "b"]
    assert np.all(cv.scores[cv.fold == k, 2] == 0.0)  # probability of an unseen class
    np.testing.assert_allclose(cv.scores.sum(axis=1), 1.0)


def test_macro_ovr_auc_matches_sklearn_on_probabilities(rng):
    y = rng.integers(0, 3, 90)
    p = rng.dirichlet([1, 1, 1], 90)
    p[np.arange(90), y] += 0.3
    p /= p.sum(axis=1, keepdims=True)
    assert macro_ovr_auc(y, p, [0, 1, 2]) == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))
    # decision values (not probabilities) work too: a monotone transform per column changes nothing
    assert macro_ovr_auc(y, np.log(p) * 3 + 1, [0, 1, 2]) == pytest.approx(macro_ovr_auc(y, p, [0, 1, 2]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_splits=30), "fewer than n_splits"),
        (dict(n_splits=1), "n_splits"),
        (dict(scoring=("f1",)), "scoring"),
    ],
)
def test_bad_arguments(rng, kwargs, match):
    X, y, groups = _grouped_data(rng)
    with pytest.raises(ValueError, match=match):
        cross_validate_groups(make_classifier("logreg"), X, y, groups, **kwargs)


def test_single_class_and_length_mismatch(rng):
    X, y, groups = _grouped_data(rng)
    with pytest.raises(ValueError, match="single class"):
        cross_validate_groups(make_classifier("logreg"), X, np.zeros_like(y), groups)
    with pytest.raises(ValueError, match="groups"):
        cross_validate_groups(make_classifier("logreg"), X, y, groups[:-1])


# -- make_patch_pipeline (needs medfeat.features) ------------------------------------------------


def _images(rng, n=24, size=24):
    """Dark smooth images (class 0) vs bright noisy images (class 1), in 12 groups of 2."""
    y = np.repeat([0, 1], n // 2)
    X = np.empty((n, size, size, 3), np.uint8)
    for i, label in enumerate(y):
        base = 70 if label == 0 else 160
        noise = 8 if label == 0 else 40
        X[i] = np.clip(rng.normal(base, noise, (size, size, 3)), 0, 255).astype(np.uint8)
    groups = np.arange(n) // 2
    return X, y, groups


def test_patch_pipeline_steps_and_fit(rng):
    X, y, groups = _images(rng)
    pipe = make_patch_pipeline("color", "logreg")
    assert [n for n, _ in pipe.steps] == ["features", "scaler", "classifier"]
    assert type(pipe.named_steps["features"]).__name__ == "ColorFeatures"
    pipe2 = make_patch_pipeline("lbp", "random_forest", classifier_params=dict(n_estimators=20))
    assert [n for n, _ in pipe2.steps] == ["features", "classifier"]
    cv = cross_validate_groups(pipe, X, y, groups, n_splits=3)
    assert cv.pooled()["roc_auc"] > 0.95
    fitted = pickle.loads(pickle.dumps(clone(pipe).fit(X, y)))
    assert fitted.predict(X[:2]).tolist() == [0, 0]


def test_presets_build_the_contract_transformers():
    from medfeat import features as F

    assert isinstance(make_patch_pipeline("handcrafted").named_steps["features"], F.HandcraftedFeatures)
    assert isinstance(make_patch_pipeline("deep").named_steps["features"], F.DeepFeatures)
    fusion = make_patch_pipeline("fusion", feature_params=dict(deep=dict(weights=None))).named_steps[
        "features"
    ]
    assert isinstance(fusion, FeatureUnion)
    assert [n for n, _ in fusion.transformer_list] == ["handcrafted", "deep"]
    assert fusion.transformer_list[1][1].weights is None


def test_custom_transformer_and_estimator_are_used_as_given():
    from sklearn.preprocessing import FunctionTransformer

    ft = FunctionTransformer(lambda X: np.asarray(X).reshape(len(X), -1).mean(axis=1, keepdims=True))
    clf = make_classifier("knn", n_neighbors=1)
    pipe = make_patch_pipeline(ft, clf)
    assert pipe.named_steps["features"] is ft
    assert pipe.named_steps["classifier"] is clf.named_steps["classifier"]
    assert isinstance(pipe, Pipeline)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(features="sift"), "features must be one of"),
        (dict(classifier="svm"), "classifier name"),
        (dict(features="lbp", feature_params=dict(radius=3)), "lbp"),
        (dict(classifier=42), "classifier must be"),
    ],
)
def test_patch_pipeline_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_patch_pipeline(**kwargs)
