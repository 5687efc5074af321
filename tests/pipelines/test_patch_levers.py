"""make_patch_pipeline with the domain-shift levers: stain, augment, tta, slide_standardize."""

import pickle
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.base import clone

from medfeat.features import (
    AugmentedTraining,
    ColorFeatures,
    DihedralMean,
    DihedralTTA,
    HEDJitter,
    MacenkoNormalizer,
    ReinhardNormalizer,
    SlideStandardizer,
    StainPassThroughWarning,
    dihedral,
)
from medfeat.pipelines import make_patch_pipeline


def he_tiles(n, seed, stains, scale=1.0):
    rng = np.random.default_rng(seed)
    S = np.asarray(stains, float)
    S /= np.linalg.norm(S, axis=1, keepdims=True)
    c = rng.uniform(0, 1.2, (n, 24, 24, 2)) * scale
    return (255 * np.exp(-(c @ S))).round().clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def data():
    he = [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]]
    a = he_tiles(8, 0, he, 0.6)  # pale class
    b = he_tiles(8, 1, he, 1.4)  # dark class
    X = np.concatenate([a, b])
    y = np.repeat([0, 1], 8)
    groups = np.tile([0, 1], 8)
    return X, y, groups


def test_no_levers_is_the_plain_pipeline(data):
    X, y, _ = data
    pipe = make_patch_pipeline("color", "logreg", feature_params={"bins": 4})
    assert [n for n, _ in pipe.steps] == ["features", "scaler", "classifier"]


def test_stain_step_with_fixed_reference(data):
    X, y, _ = data
    ref = X[:2]
    pipe = make_patch_pipeline(ColorFeatures(bins=4), stain="macenko", stain_reference=ref).fit(X, y)
    assert [n for n, _ in pipe.steps] == ["stain", "features", "scaler", "classifier"]
    norm = pipe.named_steps["stain"]
    expected = MacenkoNormalizer().fit(ref)
    np.testing.assert_allclose(norm.stain_matrix_, expected.stain_matrix_)  # the reference, not the training set
    assert norm.n_references_ == 2
    # without a reference the training images are the references
    pipe2 = make_patch_pipeline(ColorFeatures(bins=4), stain="reinhard").fit(X, y)
    np.testing.assert_allclose(pipe2.named_steps["stain"].target_mean_, ReinhardNormalizer().fit(X).target_mean_)
    with pytest.raises(ValueError, match="stain must be one of"):
        make_patch_pipeline("color", stain="ruifrok")
    with pytest.raises(ValueError, match="stain_reference needs"):
        make_patch_pipeline("color", stain_reference=ref)


def test_augment_after_stain_and_fit_only(data):
    X, y, _ = data
    pipe = make_patch_pipeline(ColorFeatures(bins=4), stain="reinhard", augment="hed", n_copies=2, random_state=3)
    assert [n for n, _ in pipe.steps] == ["stain", "augmented"]
    aug = pipe.named_steps["augmented"]
    assert isinstance(aug, AugmentedTraining) and isinstance(aug.augmenter, HEDJitter)
    pipe.fit(X, y)
    assert pipe.named_steps["augmented"].n_train_samples_ == 3 * len(X)
    # prediction: the inner pipeline on the normalised images, no augmentation
    normalised = pipe.named_steps["stain"].transform(X)
    inner = pipe.named_steps["augmented"].estimator_
    np.testing.assert_allclose(pipe.predict_proba(X), inner.predict_proba(normalised))
    again = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(again.predict(X), pipe.predict(X))
    assert clone(pipe).get_params()["augmented__n_copies"] == 2


def test_tta_feature_and_score(data):
    X, y, _ = data
    feat = make_patch_pipeline(ColorFeatures(bins=4), tta="feature").fit(X, y)
    assert isinstance(feat.named_steps["features"], DihedralMean)
    # colour statistics are rotation invariant: averaging the 8 views changes nothing
    plain = make_patch_pipeline(ColorFeatures(bins=4)).fit(X, y)
    np.testing.assert_allclose(feat.predict_proba(X), plain.predict_proba(X), rtol=1e-5)
    score = make_patch_pipeline("lbp", tta="score").fit(X, y)
    assert isinstance(score, DihedralTTA)
    views = [dihedral(X, k, f) for k in range(4) for f in (False, True)]
    expected = np.mean([score.estimator_.predict_proba(v) for v in views], axis=0)
    np.testing.assert_allclose(score.predict_proba(X), expected, rtol=1e-6)  # float32 probabilities, summed in float64
    with pytest.raises(ValueError, match="tta must be"):
        make_patch_pipeline("color", tta="yes")


def test_slide_standardize_routes_groups_through_every_wrapper(data):
    X, y, groups = data
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_patch_pipeline(ColorFeatures(bins=4), slide_standardize=True, augment="color", n_copies=1,
                                   tta="score")
        pipe.fit(X, y, groups=groups)
        proba = pipe.predict_proba(X, groups=groups)
    inner = pipe.estimator_.estimator_  # DihedralTTA -> AugmentedTraining -> Pipeline
    assert isinstance(inner.named_steps["slide_standardize"], SlideStandardizer)
    assert inner.named_steps["slide_standardize"].n_groups_fit_ == 2
    # by hand: per-slide standardised features of each view, then the classifier, averaged over the 8 views
    feats, std, clf = inner.named_steps["features"], inner.named_steps["slide_standardize"], inner[2:]
    views = [dihedral(X, k, f) for k in range(4) for f in (False, True)]
    expected = np.mean([clf.predict_proba(std.transform(feats.transform(v), groups=groups)) for v in views], axis=0)
    np.testing.assert_allclose(proba, expected)


def test_slide_heatmap_refuses_per_slide_alignment_and_runs_a_stain_pipeline(data, tmp_path):
    from medfeat.pipelines import SlideHeatmap
    from medfeat.slides import write_synthetic_slide

    X, y, _ = data
    slide = write_synthetic_slide(tmp_path / "s.tif", size=(512, 512), mpp=0.5)
    aligned = make_patch_pipeline(ColorFeatures(bins=4), slide_standardize=True).fit(X, y)
    with pytest.raises(ValueError, match="heatmap_from_features"):
        SlideHeatmap(aligned, mpp=1.0, size=32, progress=False).predict(slide.path)
    stained = make_patch_pipeline(ColorFeatures(bins=4), stain="reinhard", tta="score").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StainPassThroughWarning)  # background patches pass through
        hm = SlideHeatmap(stained, mpp=1.0, size=32, progress=False, tissue=None).predict(slide.path)
    assert np.isfinite(hm.scores).all() and len(hm.scores) == 64
