"""Colour and GLCM features against hand-computed values and skimage/scipy references."""

import numpy as np
import pytest
from scipy import stats
from skimage import data
from skimage.color import hed_from_rgb, rgb2hed, rgb2hsv
from skimage.feature import graycomatrix, graycoprops

from medfeat.features import ColorFeatures, GLCMFeatures, color_features, glcm_features

BINS = 8
PER_CHANNEL = 3 + BINS


def _channel(features, space, ch):
    start = (space * 3 + ch) * PER_CHANNEL
    return features[start : start + PER_CHANNEL]


def test_white_image_by_hand():
    f = color_features(np.full((4, 5, 3), 255, np.uint8), bins=BINS)
    assert f.shape == (9 * PER_CHANNEL,)
    for ch in range(3):
        r = _channel(f, 0, ch)
        assert (r[0], r[1], r[2]) == (1.0, 0.0, 0.0)  # mean, std, skew
        assert r[3 + BINS - 1] == 1.0 and r[3 : 3 + BINS - 1].sum() == 0  # all in the top bin
    hsv_v = _channel(f, 1, 2)
    assert hsv_v[0] == 1.0  # value 1, hue and saturation 0
    assert _channel(f, 1, 1)[0] == 0.0
    hed = [_channel(f, 2, ch)[0] for ch in range(3)]
    np.testing.assert_allclose(hed, 0.0, atol=1e-12)  # white: no stain


@pytest.fixture(scope="module")
def tissue():
    return data.immunohistochemistry()[300:340, 200:250]


def test_rgb_hsv_hed_against_references(tissue):
    f = color_features(tissue, bins=BINS)
    rgb = tissue.astype(np.float64) / 255
    hi_hed = np.log(1 / 255) / np.log(1e-6) * np.clip(hed_from_rgb, 0, None).sum(axis=0)
    spaces = [(rgb, np.ones(3)), (rgb2hsv(rgb), np.ones(3)), (rgb2hed(rgb), hi_hed)]
    for s, (values, hi) in enumerate(spaces):
        for ch in range(3):
            v = values[..., ch].ravel()
            got = _channel(f, s, ch)
            np.testing.assert_allclose(got[:3], [v.mean(), v.std(), stats.skew(v)], rtol=1e-4, atol=1e-6)
            hist, _ = np.histogram(np.clip(v, 0, hi[ch]), bins=BINS, range=(0, hi[ch]))
            np.testing.assert_allclose(got[3:], hist / v.size, atol=1e-7)


def test_grey_image_is_rgb_with_equal_channels(tissue):
    grey = np.round(tissue.mean(axis=2)).astype(np.uint8)
    np.testing.assert_array_equal(color_features(grey), color_features(np.repeat(grey[..., None], 3, 2)))


def test_color_names_and_bad_bins():
    X = np.zeros((1, 4, 4, 3), np.uint8)
    names = ColorFeatures(bins=BINS).fit(X).get_feature_names_out()
    assert list(names[:4]) == ["rgb_R_mean", "rgb_R_std", "rgb_R_skew", "rgb_R_hist0"]
    assert names[-1] == "hed_D_hist7"
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="bins"):
            ColorFeatures(bins=bad).fit(X)


def test_glcm_stripes_by_hand():
    # vertical stripes 0/255, 2 levels: horizontal neighbours always differ (contrast 1,
    # dissimilarity 1, homogeneity 0.5), vertical ones never (contrast 0, homogeneity 1);
    # for both, half of the pairs sit in each of two cells -> ASM 0.5
    stripes = np.tile(np.array([0, 255], np.uint8), (6, 3))
    props = ("contrast", "dissimilarity", "homogeneity", "ASM")
    f = glcm_features(stripes, distances=(1,), angles=(0.0, np.pi / 2), levels=2, props=props)
    np.testing.assert_allclose(f, [1, 0, 1, 0, 0.5, 1, 0.5, 0.5])


def test_glcm_equals_skimage():
    props = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM", "entropy")
    rng = np.random.default_rng(0)
    images = [data.camera()[100:140, 300:350], rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)]
    est = GLCMFeatures(props=props).fit(images)
    F = est.transform(images)
    for im, row in zip(images, F):
        grey = im if im.ndim == 2 else np.round(im.mean(axis=2)).astype(np.uint8)
        q = (grey.astype(np.int64) * 64 // 256).astype(np.uint8)
        P = graycomatrix(q, (1, 2, 4), (0, np.pi / 4, np.pi / 2, 3 * np.pi / 4), levels=64, symmetric=True, normed=True)
        expected = np.concatenate([graycoprops(P, p).ravel() for p in props])
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-6)
    names = est.get_feature_names_out()
    assert list(names[:5]) == ["contrast_d1_a0", "contrast_d1_a45", "contrast_d1_a90", "contrast_d1_a135", "contrast_d2_a0"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"distances": (0,)}, "distances"),
        ({"angles": ()}, "angles"),
        ({"levels": 1}, "levels"),
        ({"levels": 300}, "levels"),
        ({"props": ("texture",)}, "props"),
    ],
)
def test_glcm_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GLCMFeatures(**kwargs).fit(np.zeros((1, 8, 8, 1), np.uint8))
