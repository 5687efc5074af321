"""Intensity windows: hand-computed pixels for every kind of window, the transformer contract, errors."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from medfeat._checks import window_to_unit
from medfeat.features import WINDOW_PRESETS, LBPHistogram, Window, window_image


def test_center_width_by_hand():
    # (40, 400): [-160, 240] -> [0, 1]
    x = np.array([[-1000, -160, 40, 140, 240, 3000]], np.int16)
    np.testing.assert_allclose(window_image(x, (40, 400)), [[0, 0, 0.5, 0.75, 1, 1]], atol=1e-7)
    np.testing.assert_allclose(window_image(x, "40,400"), window_image(x, (40, 400)))
    assert window_image(x, (40, 400)).dtype == np.float32


def test_presets_by_hand():
    assert WINDOW_PRESETS["lung"] == (-600.0, 1500.0)
    # lung: [-1350, 150]; -1000 HU (air) -> 350 / 1500, -600 -> 0.5
    np.testing.assert_allclose(window_image(np.array([[-1350, -1000, -600, 150]]), "lung"), [[0, 350 / 1500, 0.5, 1]],
                               atol=1e-7)
    # bone: (400, 1800) -> [-500, 1300]
    np.testing.assert_allclose(window_image(np.array([[-500, 400, 850]]), "bone"), [[0, 0.5, 0.75]], atol=1e-7)


def test_percentile_by_hand():
    x = np.arange(101.0)[None]  # percentile p of 0..100 is p itself
    np.testing.assert_allclose(window_image(x, "percentile:10:90")[0, [0, 10, 30, 50, 90, 100]],
                               [0, 0, 0.25, 0.5, 1, 1], atol=1e-7)
    np.testing.assert_allclose(window_image(x, ("percentile", 10, 90)), window_image(x, "percentile:10:90"))
    # default 0.5 - 99.5: values 0.5 and 99.5
    np.testing.assert_allclose(window_image(x, "percentile")[0, [25, 50]], [24.5 / 99, 0.5], atol=1e-6)
    # a constant image maps to 0.5, not 0/0
    np.testing.assert_allclose(window_image(np.full((3, 3), 7.0), "percentile"), 0.5)


def test_invert():
    x = np.array([[-160, 40, 140]])
    np.testing.assert_allclose(window_image(x, (40, 400), invert=True), [[1, 0.5, 0.25]], atol=1e-7)


def test_dicom_linear_and_sigmoid_functions_by_hand():
    # DICOM PS3.3 C.11.2.1.2.1 LINEAR: y = (x - (c - 0.5)) / (w - 1) + 0.5, clipped to [0, 1]
    c, w = 600.0, 1600.0
    x = np.array([-300.0, -200.0, 0.0, 599.5, 1000.0, 1399.0, 2000.0])
    expected = np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1)
    np.testing.assert_allclose(window_to_unit(x, c, w, "LINEAR"), expected, atol=1e-7)
    assert window_to_unit(np.array([0.0]), c, w, "LINEAR")[0] == pytest.approx(200 / 1599, abs=1e-7)
    # SIGMOID: 1 / (1 + exp(-4 (x - c) / w)); at c + w/4 that is 1 / (1 + e^-1)
    np.testing.assert_allclose(window_to_unit(np.array([c, c + w / 4]), c, w, "SIGMOID"),
                               [0.5, 1 / (1 + np.exp(-1))], atol=1e-7)
    with pytest.raises(ValueError, match="VOI LUT function"):
        window_to_unit(x, c, w, "LOG")


def test_window_transformer_on_batches_lists_and_in_a_pipeline():
    rng = np.random.default_rng(0)
    ct = rng.integers(-1200, 1200, (3, 12, 10, 1)).astype(np.int16)
    out = Window((40, 400)).fit_transform(ct)
    assert out.shape == ct.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, np.clip((ct + 160) / 400, 0, 1), atol=1e-6)
    listed = Window((40, 400), invert=True).fit_transform([ct[0], ct[1, :5]])
    np.testing.assert_allclose(listed[1], 1 - np.clip((ct[1, :5] + 160) / 400, 0, 1), atol=1e-6)
    feats = make_pipeline(Window("lung"), LBPHistogram(radii_points=[(8, 1)])).fit_transform(ct)
    assert feats.shape == (3, 10)
    est = Window("lung")
    for check in (check_parameters_default_constructible, check_no_attributes_set_in_init,
                  check_get_params_invariance, check_set_params):
        check("Window", est)
    assert clone(est).get_params() == {"window": "lung", "invert": False}


@pytest.mark.parametrize(
    "window",
    ["auto", None, "lungs", (40, 0), (40, -5), ("percentile", 90, 10), "percentile:1", "percentile:a:b", (1, 2, 3),
     "40;400"],
)
def test_bad_windows(window):
    with pytest.raises(ValueError, match="window must be"):
        window_image(np.zeros((2, 2)), window)
    with pytest.raises(ValueError, match="window must be"):
        Window(window).fit(None)


def test_bad_images():
    with pytest.raises(ValueError, match="numeric"):
        window_image(np.zeros((2, 2), bool), "lung")
    with pytest.raises(ValueError, match="NaN"):
        window_image(np.array([[np.nan, 1.0]]), "lung")
    with pytest.raises(ValueError, match="N x H x W x C"):
        Window("lung").fit_transform(np.zeros((4, 4)))
