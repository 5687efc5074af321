"""LBP: hand-computed codes on tiny images and equality with skimage's local_binary_pattern."""

import warnings

import numpy as np
import pytest
from skimage import data
from skimage.feature import local_binary_pattern

from medfeat.features import LBPHistogram, lbp_codes, lbp_histogram


def edge_5x5():
    # columns 50 50 128 200 200: a vertical edge through the centre pixel (value 128)
    return np.tile(np.array([50, 50, 128, 200, 200], np.uint8), (5, 1))


def test_codes_vertical_edge_by_hand():
    # P=8, R=1, sample i at angle 2 pi i / 8 counter-clockwise from "right" (rows go down).
    # Centre 128: right 200 -> 1; up-right interpolates 0.29*128 + 0.71*200 = 179 -> 1;
    # up 128 (tie, counts as >=) -> 1; up-left 0.71*50 + 0.29*128 = 73 -> 0; left 50 -> 0;
    # down-left -> 0; down 128 -> 1; down-right -> 1. Bits 1,1,1,0,0,0,1,1: uniform (2 changes),
    # five ones -> riu2 code 5. nri_uniform: first zero at 3, so rotation 5 - 3 = 2 and
    # code 1 + (5 - 1) * 8 + 2 = 35.
    assert lbp_codes(edge_5x5(), P=8, R=1)[2, 2] == 5
    assert lbp_codes(edge_5x5(), P=8, R=1, method="nri_uniform")[2, 2] == 35


def test_codes_plus_pattern_is_non_uniform_by_hand():
    # Centre 100, the 4-neighbours 200, corners 0: the diagonal samples interpolate to ~91 < 100,
    # so the bits alternate 1,0,1,0,... (7 changes): non-uniform, riu2 code P + 1 = 9,
    # nri_uniform code P (P - 1) + 2 = 58.
    im = np.array([[0, 200, 0], [200, 100, 200], [0, 200, 0]], np.uint8)
    assert lbp_codes(im, 8, 1)[1, 1] == 9
    assert lbp_codes(im, 8, 1, method="nri_uniform")[1, 1] == 58


def test_codes_single_bright_neighbour_by_hand():
    # Only the neighbour above is brighter: one 1 at sample 2 -> riu2 code 1;
    # nri_uniform: first one at 2, rotation P - 2 = 6, code 1 + 0 * 8 + 6 = 7.
    im = np.full((3, 3), 50, np.uint8)
    im[1, 1] = 100
    im[0, 1] = 200
    assert lbp_codes(im, 8, 1)[1, 1] == 1
    assert lbp_codes(im, 8, 1, method="nri_uniform")[1, 1] == 7
    # and the neighbour to the right: rotation n_ones - first_zero = 1 - 1 = 0 -> code 1
    im = np.full((3, 3), 50, np.uint8)
    im[1, 1] = 100
    im[1, 2] = 200
    assert lbp_codes(im, 8, 1, method="nri_uniform")[1, 1] == 1


def _images():
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (37, 41), dtype=np.uint8),
        (rng.integers(0, 4, (30, 30)) * 60).astype(np.uint8),  # many exact ties
        data.camera()[200:264, 200:280],
        np.round(data.immunohistochemistry()[:48, :48].mean(axis=2)).astype(np.uint8),
        np.zeros((6, 6), np.uint8),
    ]


@pytest.mark.parametrize("method", ["uniform", "nri_uniform"])
@pytest.mark.parametrize("P,R", [(8, 1), (16, 2), (24, 3), (4, 1), (8, 1.5), (12, 2.5)])
def test_codes_equal_skimage(P, R, method):
    for im in _images():
        np.testing.assert_array_equal(lbp_codes(im, P, R, method), local_binary_pattern(im, P, R, method))


@pytest.mark.parametrize("method", ["uniform", "nri_uniform"])
def test_histogram_equals_skimage_histogram(method):
    pairs = ((8, 1), (16, 2), (24, 3))
    rgb = data.immunohistochemistry()[100:164, 200:264]
    grey = np.round(rgb.astype(np.float64).mean(axis=2)).astype(np.uint8)
    expected = []
    for P, R in pairs:
        n_bins = P + 2 if method == "uniform" else P * (P - 1) + 3
        codes = local_binary_pattern(grey, P, R, method)
        hist, _ = np.histogram(codes, bins=n_bins, range=(0, n_bins))
        expected.append(hist / codes.size)
    expected = np.concatenate(expected)
    np.testing.assert_allclose(lbp_histogram(rgb, pairs, method), expected, rtol=1e-6, atol=1e-8)
    # the batch transformer gives the same row
    X = np.stack([rgb, rgb[::-1]])
    F = LBPHistogram(radii_points=pairs, method=method).fit_transform(X)
    np.testing.assert_allclose(F[0], expected, rtol=1e-6, atol=1e-8)


def test_histograms_normalised_and_sized():
    X = np.random.default_rng(1).integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    est = LBPHistogram().fit(X)
    F = est.transform(X)
    assert F.shape == (3, 10 + 18 + 26) and F.dtype == np.float32
    for sl in (slice(0, 10), slice(10, 28), slice(28, 54)):
        np.testing.assert_allclose(F[:, sl].sum(axis=1), 1.0, rtol=1e-6)
    assert list(est.get_feature_names_out()[:2]) == ["P8_R1_0", "P8_R1_1"]
    assert LBPHistogram(method="nri_uniform").fit(X).n_features_out_ == 59 + 243 + 555


def test_float_image_is_coded_on_its_own_values():
    # a float image is not rounded to 8 bits: its codes are skimage's on the float grey itself
    # (skimage warns that LBP is meant for integer images; the codes are still defined)
    im = np.random.default_rng(2).random((16, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = local_binary_pattern(im, 8, 1, "uniform")
    np.testing.assert_array_equal(lbp_codes(im, 8, 1), expected)
    rounded = np.round(im * 255).astype(np.uint8)
    assert not np.array_equal(lbp_codes(im, 8, 1), lbp_codes(rounded, 8, 1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "ror"}, "method"),
        ({"radii_points": [(0, 1)]}, "radii_points"),
        ({"radii_points": [(8, -1)]}, "radii_points"),
        ({"radii_points": []}, "radii_points"),
        ({"radii_points": 8}, "radii_points"),
    ],
)
def test_bad_parameters(kwargs, match):
    X = np.zeros((1, 8, 8, 1), np.uint8)
    with pytest.raises(ValueError, match=match):
        LBPHistogram(**kwargs).fit(X)
