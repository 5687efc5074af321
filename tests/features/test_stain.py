"""Stain normalisation, augmentation and dihedral TTA against independent expectations."""

import pickle
import warnings

import numpy as np
import pytest
from skimage.color import rgb2lab
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from medfeat.features import (
    AugmentedTraining,
    ColorJitter,
    DihedralMean,
    DihedralTTA,
    HEDJitter,
    MacenkoNormalizer,
    ReinhardNormalizer,
    StainPassThroughWarning,
    VahadaneNormalizer,
    color_jitter,
    dihedral,
    hed_jitter,
    macenko_normalize,
    macenko_stain_matrix,
    optical_density,
    reinhard_normalize,
    stained_fraction,
    vahadane_stain_matrix,
)

NORMALIZERS = [ReinhardNormalizer, MacenkoNormalizer, VahadaneNormalizer]


def unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def two_stain_image(H, E, seed=0, n=96, scale=1.5):
    """Beer-Lambert image of two planted stains: a quarter pure H, a quarter pure E, half mixed."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(0, scale, (n, n, 2))
    c[: n // 4, :, 1] = 0
    c[n // 4 : n // 2, :, 0] = 0
    S = np.stack([unit(H), unit(E)])
    return (255 * np.exp(-(c @ S))).round().clip(0, 255).astype(np.uint8), S, c


PLANTED = [
    ([0.65, 0.70, 0.29], [0.07, 0.99, 0.11]),  # Ruifrok & Johnston H&E
    ([0.55, 0.76, 0.34], [0.15, 0.85, 0.50]),
    ([0.70, 0.60, 0.40], [0.20, 0.90, 0.30]),
]


def lab_mean_std(rgb01):
    lab = rgb2lab(rgb01).reshape(-1, 3)
    return lab.mean(0), lab.std(0)


@pytest.fixture(scope="module")
def he_pair():
    a, _, c = two_stain_image(*PLANTED[0], seed=1)
    S_b = np.stack([unit(PLANTED[1][0]), unit(PLANTED[1][1])])
    b = (255 * np.exp(-(0.8 * c @ S_b))).round().clip(0, 255).astype(np.uint8)  # other stains, paler
    return a, b


# -- Reinhard ------------------------------------------------------------------------------------
def test_reinhard_output_lab_statistics_equal_reference():
    from skimage.color import lab2rgb

    # a reference well inside the RGB gamut, and a source that is a shifted, contrast-changed copy
    rng = np.random.default_rng(2)
    c = rng.uniform(0.15, 0.8, (64, 64, 2))
    ref = (255 * np.exp(-(c @ np.stack([unit(PLANTED[0][0]), unit(PLANTED[0][1])])))).round().astype(np.uint8)
    lab = rgb2lab(ref / 255.0)
    src = (np.clip(lab2rgb((lab - lab.mean((0, 1))) * [0.8, 1.2, 0.9] + lab.mean((0, 1)) + [-6, 4, -3]), 0, 1) * 255)
    src = src.round().astype(np.uint8)
    out = ReinhardNormalizer(dtype="float").fit(ref[None]).transform(src[None])[0]
    assert out.min() > 0 and out.max() < 1  # in gamut, so no clipping can move the statistics
    m_out, s_out = lab_mean_std(out)
    m_ref, s_ref = lab_mean_std(ref.astype(float) / 255)
    np.testing.assert_allclose(m_out, m_ref, atol=1e-3)
    np.testing.assert_allclose(s_out, s_ref, atol=1e-3)
    # uint8 output: within rounding of the reference statistics
    out8 = reinhard_normalize(src, ref)
    m8, s8 = lab_mean_std(out8.astype(float) / 255)
    np.testing.assert_allclose(m8, m_ref, atol=0.3)
    np.testing.assert_allclose(s8, s_ref, atol=0.3)


def test_reinhard_pooled_references_use_the_median(he_pair):
    a, b = he_pair
    c = np.clip(a.astype(int) + 40, 0, 255).astype(np.uint8)  # a brighter third reference
    norm = ReinhardNormalizer().fit(np.stack([a, b, c]))
    stats = np.array([lab_mean_std(im.astype(float) / 255)[0] for im in (a, b, c)])
    np.testing.assert_allclose(norm.target_mean_, np.median(stats, axis=0), atol=1e-9)
    assert norm.n_references_ == 3 and norm.n_references_skipped_ == 0


# -- Macenko / Vahadane --------------------------------------------------------------------------
@pytest.mark.parametrize("H,E", PLANTED)
def test_macenko_recovers_planted_stain_vectors(H, E):
    image, S, _ = two_stain_image(H, E)
    np.testing.assert_allclose(macenko_stain_matrix(image), S, atol=1e-2)


@pytest.mark.parametrize("H,E", PLANTED)
def test_vahadane_recovers_planted_stain_vectors(H, E):
    image, S, _ = two_stain_image(H, E)
    # a small sparsity weight: the L1 term shrinks the codes and biases the atoms by ~lam / 2
    np.testing.assert_allclose(vahadane_stain_matrix(image, lam=0.01), S, atol=1e-2)
    # the paper's lam=0.1 still finds both stains, within 0.06
    np.testing.assert_allclose(vahadane_stain_matrix(image), S, atol=0.06)


@pytest.mark.parametrize("cls", [MacenkoNormalizer, VahadaneNormalizer], ids=lambda c: c.__name__)
def test_stain_matrix_normalisers_undo_a_change_of_stains(cls, he_pair):
    ref, restained = he_pair
    out = cls().fit(ref[None]).transform(restained[None])[0]
    before = np.abs(restained.astype(int) - ref).mean()
    after = np.abs(out.astype(int) - ref).mean()
    # same tissue (concentrations) rendered with other, paler stains goes back to the reference
    assert before > 10 and after < 1.0
    # the reference normalised to itself is itself (up to rounding)
    assert np.abs(cls().fit(ref[None]).transform(ref[None])[0].astype(int) - ref).max() <= 2


def test_macenko_pooled_references_median_stain_vectors():
    ims = [two_stain_image(H, E, seed=i)[0] for i, (H, E) in enumerate(PLANTED)]
    norm = MacenkoNormalizer().fit(np.stack(ims))
    per = np.stack([macenko_stain_matrix(im) for im in ims])
    med = np.median(per, axis=0)
    np.testing.assert_allclose(norm.stain_matrix_, med / np.linalg.norm(med, axis=1, keepdims=True), atol=1e-9)


@pytest.mark.parametrize("cls", NORMALIZERS, ids=lambda c: c.__name__)
def test_blank_and_fat_tiles_pass_through_unchanged(cls, he_pair):
    ref, src = he_pair
    blank = np.full_like(ref, 255)
    fat = np.full_like(ref, 250)
    fat[::24] = (200, 120, 180)  # thin membranes: ~4% stained pixels
    assert stained_fraction(fat) < 0.05
    norm = cls().fit(ref[None])
    with pytest.warns(StainPassThroughWarning, match="2 of 3"):
        out = norm.transform(np.stack([blank, src, fat]))
    np.testing.assert_array_equal(out[0], blank)
    np.testing.assert_array_equal(out[2], fat)
    assert not np.array_equal(out[1], src)
    assert norm.n_passed_through_ == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        norm.transform(src[None])  # no pass-through, no warning
    assert norm.n_passed_through_ == 0


@pytest.mark.parametrize("cls", NORMALIZERS, ids=lambda c: c.__name__)
def test_normaliser_fit_errors_and_skipped_references(cls, he_pair):
    ref, _ = he_pair
    blank = np.full_like(ref, 255)
    with pytest.raises(ValueError, match="none of the 1 reference"):
        cls().fit(blank[None])
    norm = cls().fit(np.stack([blank, ref]))
    assert norm.n_references_ == 1 and norm.n_references_skipped_ == 1
    with pytest.raises(ValueError, match="grey"):
        norm.transform(ref[None, ..., :1])
    with pytest.raises(ValueError, match="min_stain_fraction"):
        cls(min_stain_fraction=2).fit(ref[None])
    with pytest.raises(NotFittedError):
        cls().transform(ref[None])


@pytest.mark.parametrize("cls", NORMALIZERS + [HEDJitter, ColorJitter], ids=lambda c: c.__name__)
def test_sklearn_data_free_checks_and_pickle(cls, he_pair):
    name = cls.__name__
    est = cls()
    check_parameters_default_constructible(name, est)
    check_no_attributes_set_in_init(name, est)
    check_get_params_invariance(name, est)
    check_set_params(name, est)
    ref, src = he_pair
    X = np.stack([ref, src])
    fitted = clone(est).set_params(**({"random_state": 0} if "random_state" in est.get_params() else {})).fit(X)
    out = fitted.transform(X)
    assert out.shape == X.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).transform(X), out)
    np.testing.assert_array_equal(fitted.transform(X), out)  # deterministic
    # a list gives a list with the same images
    lst = fitted.transform([ref, src[:40, :50]])
    assert isinstance(lst, list) and lst[1].shape == (40, 50, 3)


def test_function_forms_match_transformers(he_pair):
    ref, src = he_pair
    np.testing.assert_array_equal(macenko_normalize(src, ref), MacenkoNormalizer().fit(ref[None]).transform(src[None])[0])
    assert optical_density(np.array([[[255, 255, 1]]], np.uint8))[0, 0].tolist() == [0.0, 0.0, np.log(255)]


# -- augmentation ---------------------------------------------------------------------------------
def test_hed_jitter_identity_seeded_and_moves_stain_amounts(he_pair):
    from skimage.color import hed_from_rgb

    ref, _ = he_pair
    np.testing.assert_array_equal(hed_jitter(ref, 0, 0), ref)
    a = hed_jitter(ref, 0.2, 0.0, random_state=3)
    np.testing.assert_array_equal(a, hed_jitter(ref, 0.2, 0.0, random_state=3))
    assert not np.array_equal(a, hed_jitter(ref, 0.2, 0.0, random_state=4))

    # pure scaling of the stains: each HED channel of the output is the input's times one factor
    def hed(im):
        return (np.log(np.maximum(im / 255.0, 1e-6)) / np.log(1e-6)) @ hed_from_rgb

    h_in, h_out = hed(ref.astype(float)), hed(a.astype(float))
    mask = (ref > 5).all(-1) & (ref < 250).all(-1) & (a > 5).all(-1) & (a < 250).all(-1)
    for j in (0, 1):
        ratio = h_out[mask, j] / h_in[mask, j]
        ok = np.abs(h_in[mask, j]) > 0.05
        assert 0.8 - 0.02 <= np.median(ratio[ok]) <= 1.2 + 0.02
        assert np.std(ratio[ok]) < 0.05  # one factor per stain, up to uint8 rounding


def test_color_jitter_identity_and_brightness_range():
    rng = np.random.default_rng(0)
    im = rng.integers(70, 180, (16, 16, 3)).astype(np.uint8)
    assert np.abs(color_jitter(im, 0, 0, 0, 0, random_state=0).astype(int) - im).max() <= 1
    shifts = [
        color_jitter(im, brightness=0.1, contrast=0, saturation=0, hue=0, random_state=s).astype(float).mean() - im.mean()
        for s in range(20)
    ]
    assert max(np.abs(shifts)) <= 0.1 * 255 + 0.5 and np.ptp(shifts) > 5
    grey = color_jitter(im[..., :1], random_state=0)
    assert grey.shape == (16, 16, 1)


class _Recorder(ClassifierMixin, BaseEstimator):
    """Logistic regression on the mean RGB that remembers the images it was fitted on."""

    def fit(self, X, y, sample_weight=None):
        self.seen_ = np.asarray(X)
        self.lr_ = LogisticRegression().fit(self.seen_.astype(float).mean(axis=(1, 2)), y, sample_weight=sample_weight)
        self.classes_ = self.lr_.classes_
        return self

    def predict(self, X):
        return self.lr_.predict(np.asarray(X, float).mean(axis=(1, 2)))

    def predict_proba(self, X):
        return self.lr_.predict_proba(np.asarray(X, float).mean(axis=(1, 2)))


def test_augmented_training_expands_fit_only():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.integers(30, 90, (4, 8, 8, 3)), rng.integers(160, 230, (4, 8, 8, 3))]).astype(np.uint8)
    y = np.repeat([0, 1], 4)
    clf = AugmentedTraining(_Recorder(), ColorJitter(), n_copies=3, random_state=5).fit(X, y, sample_weight=np.ones(8))
    seen = clf.estimator_.seen_
    assert clf.n_train_samples_ == 32 and len(seen) == 32
    np.testing.assert_array_equal(seen[:8], X)  # originals first
    np.testing.assert_array_equal(seen[8:16], ColorJitter(random_state=5).fit(X).transform(X))  # copy 0: seed 5
    np.testing.assert_array_equal(seen[24:], ColorJitter(random_state=7).fit(X).transform(X))  # copy 2: seed 7
    # prediction sees the images as given
    np.testing.assert_allclose(clf.predict_proba(X), clf.estimator_.predict_proba(X))
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))
    assert clone(clf).get_params()["n_copies"] == 3
    assert not hasattr(AugmentedTraining(make_pipeline(FunctionTransformer(), FunctionTransformer())), "predict_proba")
    with pytest.raises(ValueError, match="n_copies"):
        AugmentedTraining(_Recorder(), n_copies=-1).fit(X, y)
    without = AugmentedTraining(_Recorder(), HEDJitter(), n_copies=2, include_original=False).fit(X, y)
    assert without.n_train_samples_ == 16


# -- test-time augmentation ------------------------------------------------------------------------
def test_dihedral_gives_the_8_distinct_views():
    im = np.arange(9, dtype=np.uint8).reshape(1, 3, 3, 1)
    views = {dihedral(im, k, f).tobytes() for k in range(4) for f in (False, True)}
    assert len(views) == 8
    np.testing.assert_array_equal(dihedral(im, 1, False)[0, ..., 0], np.rot90(im[0, ..., 0]))
    np.testing.assert_array_equal(dihedral(im, 0, True)[0, ..., 0], im[0, :, ::-1, 0])
    with pytest.raises(ValueError, match="quarter turns"):
        dihedral(im, 4, False)


def test_dihedral_tta_and_mean_equal_manual_averages():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (6, 6, 6, 3)).astype(np.uint8)
    y = np.array([0, 1, 0, 1, 0, 1])
    flat = FunctionTransformer(lambda Z: np.asarray(Z, float).reshape(len(Z), -1))  # not rotation invariant
    pipe = make_pipeline(flat, LogisticRegression(max_iter=200))
    tta = DihedralTTA(pipe).fit(X, y)
    views = [np.rot90(X, k, axes=(1, 2))[:, :, ::-1] if f else np.rot90(X, k, axes=(1, 2)) for k in range(4) for f in (0, 1)]
    expected = np.mean([tta.estimator_.predict_proba(v) for v in views], axis=0)
    np.testing.assert_allclose(tta.predict_proba(X), expected)
    np.testing.assert_array_equal(tta.predict(X), tta.classes_[expected.argmax(1)])
    dm = DihedralMean(flat).fit(X)
    np.testing.assert_allclose(dm.transform(X), np.mean([v.reshape(6, -1) for v in views], axis=0), rtol=1e-6)
    # averaged features are invariant to any dihedral transform of the input
    np.testing.assert_allclose(dm.transform(dihedral(X, 3, True)), dm.transform(X), rtol=1e-6)
