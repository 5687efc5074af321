"""scikit-learn contract and project checks for every handcrafted transformer, and bad input."""

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from medfeat.features import (
    GIST,
    ColorFeatures,
    GLCMFeatures,
    HandcraftedFeatures,
    LBPHistogram,
    color_features,
    gist_descriptor,
    glcm_features,
    lbp_histogram,
)

SMALL_GIST = {"image_size": 32, "boundary_extension": 8, "orientations_per_scale": (4, 4)}

ESTIMATORS = [
    LBPHistogram(radii_points=((8, 1), (16, 2))),
    GIST(**SMALL_GIST),
    ColorFeatures(bins=4),
    GLCMFeatures(distances=(1, 2)),
    HandcraftedFeatures(gist=GIST(**SMALL_GIST), color=ColorFeatures(bins=4)),
]
IDS = [type(e).__name__ for e in ESTIMATORS]
DEFAULT_CLASSES = [LBPHistogram, GIST, ColorFeatures, GLCMFeatures, HandcraftedFeatures]


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).integers(0, 256, (5, 40, 36, 3), dtype=np.uint8)


@pytest.mark.parametrize("cls", DEFAULT_CLASSES, ids=lambda c: c.__name__)
def test_sklearn_data_free_checks(cls):
    name = cls.__name__
    est = cls()
    check_parameters_default_constructible(name, est)
    check_no_attributes_set_in_init(name, est)
    check_get_params_invariance(name, est)
    check_set_params(name, est)


@pytest.mark.parametrize("est", ESTIMATORS, ids=IDS)
def test_project_checks(est, X):
    est = clone(est)
    with pytest.raises(NotFittedError):
        est.transform(X)
    assert est.fit(X) is est
    F = est.transform(X)
    # 2-D float32, one row per image, deterministic, finite
    assert F.ndim == 2 and F.dtype == np.float32 and F.shape[0] == len(X)
    assert np.all(np.isfinite(F))
    np.testing.assert_array_equal(est.transform(X), F)
    # names match columns, unique
    names = est.get_feature_names_out()
    assert len(names) == F.shape[1] == est.n_features_out_ and len(set(names)) == len(names)
    # a list of images, and n_jobs=2 in chunks, give the same rows
    np.testing.assert_array_equal(est.transform(list(X)), F)
    par = clone(est).set_params(n_jobs=2)
    par._chunk_size = 2
    np.testing.assert_array_equal(par.fit(X).transform(X), F)
    # grey images are accepted and treated as R = G = B
    G = est.transform(X[..., :1])
    assert G.shape == F.shape
    np.testing.assert_array_equal(G, est.transform(np.repeat(X[..., :1], 3, axis=3)))


@pytest.mark.parametrize("est", ESTIMATORS, ids=IDS)
def test_clone_params_pickle_and_pandas_output(est, X):
    fitted = clone(est).fit(X)
    F = fitted.transform(X)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.transform(X), F)
    cloned = clone(fitted)
    assert not hasattr(cloned, "feature_names_")
    assert cloned.get_params(deep=False).keys() == est.get_params(deep=False).keys()
    df = clone(est).set_output(transform="pandas").fit(X).transform(X)
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == list(fitted.get_feature_names_out())
    np.testing.assert_array_equal(df.to_numpy(), F)


def test_images_of_different_sizes(X):
    images = [X[0], X[1, :30, :20], X[2, :, :, :1]]
    est = LBPHistogram(radii_points=((8, 1),)).fit(images)
    F = est.transform(images)
    for im, row in zip(images, F):
        np.testing.assert_array_equal(row, lbp_histogram(im, ((8, 1),)))


@pytest.mark.parametrize("est", ESTIMATORS, ids=IDS)
def test_list_of_different_sizes_equals_one_image_batches(est, X):
    # a list of mixed sizes (and channels) is computed image by image; each row must be that
    # image's features as a batch of one, in order, also when chunks hold several sizes
    images = [X[0], X[1, :30, :20], X[2, :, :, :1], X[3, 5:, 3:]]
    fitted = clone(est).fit(images)
    fitted._chunk_size = 3
    F = fitted.transform(images)
    assert F.shape == (len(images), fitted.n_features_out_)
    for im, row in zip(images, F):
        np.testing.assert_array_equal(row, fitted.transform(im[None])[0])


def test_function_forms_equal_transformer_rows(X):
    pairs = [
        (lbp_histogram(X[1]), LBPHistogram()),
        (gist_descriptor(X[1], **SMALL_GIST), GIST(**SMALL_GIST)),
        (color_features(X[1]), ColorFeatures()),
        (glcm_features(X[1]), GLCMFeatures()),
    ]
    for single, est in pairs:
        assert single.dtype == np.float32 and single.ndim == 1
        np.testing.assert_array_equal(single, est.fit_transform(X)[1])


def test_handcrafted_union(X):
    parts = [
        ("lbp", LBPHistogram(radii_points=((8, 1),))),
        ("gist", GIST(**SMALL_GIST)),
        ("color", ColorFeatures(bins=4)),
        ("glcm", GLCMFeatures(distances=(1,))),
    ]
    est = HandcraftedFeatures(**dict(parts)).fit(X)
    F = est.transform(X)
    expected = np.concatenate([clone(p).fit_transform(X) for _, p in parts], axis=1)
    np.testing.assert_array_equal(F, expected)
    names = est.get_feature_names_out()
    expected_names = [f"{n}__{f}" for n, p in parts for f in clone(p).fit(X).get_feature_names_out()]
    assert list(names) == expected_names
    only = HandcraftedFeatures(lbp=False, gist=False, color=False, glcm=GLCMFeatures(distances=(1,))).fit(X)
    assert all(n.startswith("glcm__") for n in only.get_feature_names_out())
    with pytest.raises(ValueError, match="at least one"):
        HandcraftedFeatures(lbp=False, gist=False, color=False, glcm=False).fit(X)
    with pytest.raises(ValueError, match="lbp must be"):
        HandcraftedFeatures(lbp=GIST()).fit(X)
    # nested parameters are reachable like in a Pipeline
    assert est.get_params()["gist__image_size"] == 32


@pytest.mark.parametrize("est", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((0, 8, 8, 3), np.uint8), "empty batch"),
        ([], "empty batch"),
        (np.zeros((8, 8, 3), np.uint8), "N x H x W x C"),
        (np.full((1, 8, 8, 3), 2.0), r"\[0, 1\]"),
        (np.zeros((1, 8, 8, 4), np.uint8), "RGBA"),
        (np.zeros((1, 8, 8, 3), np.int16), "int16.*window"),
    ],
    ids=["empty", "empty-list", "ndim3", "float>1", "rgba", "signed-16-bit"],
)
def test_bad_input(est, bad, match, X):
    with pytest.raises(ValueError, match=match):
        clone(est).fit(bad)
    fitted = clone(est).fit(X)
    with pytest.raises(ValueError, match=match):
        fitted.transform(bad)
