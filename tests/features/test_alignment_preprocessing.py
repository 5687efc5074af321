"""Per-slide feature alignment (SlideStandardizer, CORAL) and CLAHE."""

import pickle

import numpy as np
import pytest
import sklearn
from skimage.exposure import equalize_adapthist
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
    parametrize_with_checks,
)

from medfeat.features import CLAHE, CORAL, SlideStandardizer, clahe, coral_align, standardize_by_group


@parametrize_with_checks([SlideStandardizer(), CORAL()])
def test_sklearn_estimator_checks(estimator, check):
    # with groups=None (one slide) both are ordinary 2-D transformers
    check(estimator)


@pytest.fixture
def slides():
    rng = np.random.default_rng(0)
    X0 = rng.normal(0, 1, (80, 4))
    X1 = rng.normal(0, 1, (60, 4)) @ np.diag([3.0, 0.5, 1.0, 2.0]) + [5, -2, 0, 1]
    X2 = rng.normal(0, 1, (70, 4)) @ np.array([[1, 0.8, 0, 0], [0, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1.0]]) - 3
    return np.r_[X0, X1, X2], np.repeat(["a", "b", "c"], [80, 60, 70])


def test_slide_standardizer_matches_hand_computed(slides):
    X, g = slides
    Z = SlideStandardizer().fit(X, groups=g).transform(X, groups=g)
    for s in "abc":
        rows = g == s
        np.testing.assert_allclose(Z[rows], (X[rows] - X[rows].mean(0)) / X[rows].std(0))
    np.testing.assert_allclose(standardize_by_group(X, g), Z)
    # centring only
    C = SlideStandardizer(with_std=False).fit_transform(X, groups=g)
    np.testing.assert_allclose(C[g == "b"], X[g == "b"] - X[g == "b"].mean(0))
    # groups=None: one slide, i.e. an ordinary standardisation
    np.testing.assert_allclose(SlideStandardizer().fit_transform(X), (X - X.mean(0)) / X.std(0))


def test_small_groups_fall_back_to_training_statistics(slides):
    X, g = slides
    st = SlideStandardizer(min_group_size=3).fit(X, groups=g)
    with pytest.warns(UserWarning, match="fewer than 3 rows"):
        Z = st.transform(X[:2], groups=["x", "y"])
    np.testing.assert_allclose(Z, (X[:2] - X.mean(0)) / X.std(0))
    with pytest.raises(ValueError, match="groups must be 1-D"):
        st.transform(X, groups=g[:5])
    with pytest.raises(ValueError, match="min_group_size"):
        SlideStandardizer(min_group_size=1).fit(X)


def test_coral_aligns_every_slide_to_the_average_within_slide_covariance(slides):
    X, g = slides
    coral = CORAL(reg=1e-8).fit(X, groups=g)
    covs = [np.cov(X[g == s], rowvar=False, bias=True) for s in "abc"]
    ref = np.average(covs, axis=0, weights=[80, 60, 70])
    np.testing.assert_allclose(coral.covariance_, ref)
    Z = coral.transform(X, groups=g)
    for s in "abc":
        rows = g == s
        np.testing.assert_allclose(np.cov(Z[rows], rowvar=False, bias=True), ref, atol=1e-5)
        np.testing.assert_allclose(Z[rows].mean(0), X.mean(0), atol=1e-9)
    # an unseen slide is aligned from its own rows only
    rng = np.random.default_rng(1)
    new = rng.normal(0, 1, (50, 4)) * [0.2, 4, 1, 1] + 7
    np.testing.assert_allclose(np.cov(coral.transform(new), rowvar=False, bias=True), ref, atol=1e-5)
    np.testing.assert_allclose(coral_align(X, g, reg=1e-8), Z)
    # the ridge: reg * mean reference variance
    assert CORAL(reg=0.5).fit(X, groups=g).ridge_ == pytest.approx(0.5 * np.trace(ref) / 4)


def test_coral_with_fewer_rows_than_features_equals_the_dense_formula():
    from scipy.linalg import fractional_matrix_power

    rng = np.random.default_rng(3)
    X = np.r_[rng.normal(0, 1, (12, 20)), rng.normal(2, 3, (9, 20))]
    g = np.repeat([0, 1], [12, 9])
    coral = CORAL(reg=0.3).fit(X, groups=g)
    r, eye = coral.ridge_, np.eye(20)
    recolour = np.real(fractional_matrix_power(coral.covariance_ + r * eye, 0.5))
    for s in (0, 1):
        Xs = X[g == s]
        C = np.cov(Xs, rowvar=False, bias=True)
        whiten = np.real(fractional_matrix_power(C + r * eye, -0.5))
        expected = (Xs - Xs.mean(0)) @ whiten @ recolour + X.mean(0)
        np.testing.assert_allclose(coral.transform(X, groups=g)[g == s], expected, atol=1e-8)


def test_groups_are_routed_through_a_pipeline(slides):
    X, g = slides
    y = (np.arange(len(X)) % 2).astype(int)
    X = X + y[:, None] * 0.5
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(SlideStandardizer(), LogisticRegression()).fit(X, y, groups=g)
        proba = pipe.predict_proba(X, groups=g)
    Z = standardize_by_group(X, g)
    manual = LogisticRegression().fit(Z, y)
    np.testing.assert_allclose(proba, manual.predict_proba(Z), rtol=1e-6)
    fitted = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_allclose(fitted[0].transform(X, groups=g), Z)
    assert clone(pipe)[0].get_params() == SlideStandardizer().get_params()


# -- CLAHE ---------------------------------------------------------------------------------------
def test_clahe_equals_skimage_and_raises_contrast():
    rng = np.random.default_rng(0)
    grey = (np.tile(np.linspace(90, 150, 48), (48, 1)) + rng.normal(0, 3, (48, 48))).clip(0, 255).astype(np.uint8)
    out = clahe(grey, clip_limit=0.02)
    expected = np.round(equalize_adapthist(grey, clip_limit=0.02) * 255).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 0], expected)
    assert np.ptp(out) > np.ptp(grey)
    rgb = np.stack([grey, grey // 2, grey], axis=-1)
    np.testing.assert_array_equal(clahe(rgb), np.round(equalize_adapthist(rgb) * 255).astype(np.uint8))
    const = np.full((8, 8, 1), 77, np.uint8)
    np.testing.assert_array_equal(clahe(const), const)
    X = np.stack([grey, grey[::-1]])[..., None]
    T = CLAHE(clip_limit=0.02).fit_transform(X)
    assert T.shape == X.shape and T.dtype == np.uint8
    np.testing.assert_array_equal(T[0], out)
    assert isinstance(CLAHE().fit_transform([grey, grey[:20]]), list)
    with pytest.raises(ValueError, match="clip_limit"):
        CLAHE(clip_limit=0).fit(X)
    # a float (windowed) radiograph keeps its precision: float32 out, as skimage computes it
    f = grey / 255.0 + np.linspace(0, 1e-3, 48)[None]  # values between the 8-bit levels
    fout = clahe(f, clip_limit=0.02)
    assert fout.dtype == np.float32
    np.testing.assert_allclose(fout[..., 0], equalize_adapthist(f, clip_limit=0.02), atol=1e-6)
    assert clahe(np.full((8, 8), 0.25)).dtype == np.float32


def test_clahe_data_free_checks():
    est = CLAHE()
    for check in (check_parameters_default_constructible, check_no_attributes_set_in_init,
                  check_get_params_invariance, check_set_params):
        check("CLAHE", est)
