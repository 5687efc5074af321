"""High-bit-depth and float input keeps its precision through the handcrafted features.

References are independent of the package: LMgist (the Octave reference vectors and the per-image
float64 NumPy port in lmgist_port.py), skimage's local_binary_pattern / graycomatrix / graycoprops on
hand-quantised images, and hand-computed colour statistics.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from skimage import data
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern

from medfeat.features import (
    GIST,
    ColorFeatures,
    GLCMFeatures,
    HandcraftedFeatures,
    LBPHistogram,
    color_features,
    gist_descriptor,
    glcm_features,
    lbp_codes,
)

HERE = Path(__file__).parent
REF = np.load(HERE / "data" / "lmgist_octave_reference.npz")


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_medfeat_{name}", HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _port():
    return _load("lmgist_port")


def _fixture_images():
    """The four images LMgist was run on in Octave (test_gist.fixture_images)."""
    return _load("test_gist").fixture_images()


def _low_contrast_float():
    """A 160 x 200 float image whose detail lies below 8-bit resolution: a faint texture (a few
    hundredths) on a smooth gradient. Rounding it to uint8 leaves about ten grey levels."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:160, 0:200] / 200.0
    texture = data.camera()[100:260, 100:300] / 255.0
    return 0.40 + 0.01 * x + 0.03 * texture + 0.002 * rng.random((160, 200))


# -- GIST ---------------------------------------------------------------------------------------


def test_gist_of_float_image_equals_lmgist_octave():
    # LMgist on a float image x / 255: imresizecrop is linear and LMgist then rescales to [0, 255]
    # itself (img - min, 255 * img / max), so its descriptor is the one of the uint8 image x that
    # Octave computed; GIST must reproduce it from the float input, to 1e-4 like the uint8 path.
    images = _fixture_images()
    out = GIST().fit_transform(images / 255.0)
    assert np.abs(out - REF["gist128"]).max() < 1e-4
    assert np.abs(GIST().fit_transform(images.astype(np.float32) / 255) - REF["gist128"]).max() < 1e-4


def test_gist_of_uint8_image_unchanged():
    images = _fixture_images()
    assert np.abs(GIST().fit_transform(images) - REF["gist128"]).max() < 1e-4


def test_gist_of_float_image_equals_lmgist_port_and_is_not_rounded():
    port = _port()
    im = _low_contrast_float()
    expected = port.lmgist(im)  # LMgist in float64 on the same float image, its rescaling included
    got = gist_descriptor(im)
    assert np.abs(got - expected).max() < 1e-4
    # the old behaviour (round to uint8 first) is far from it: the test can tell the two apart
    rounded = gist_descriptor(np.round(im * 255).astype(np.uint8))
    assert np.abs(rounded - expected).max() > 1e-3


def test_gist_of_uint16_image_equals_lmgist_port():
    port = _port()
    im16 = np.round(_low_contrast_float() * 4095).astype(np.uint16)  # 12-bit data
    expected = port.lmgist(im16.astype(np.float64))
    assert np.abs(gist_descriptor(im16) - expected).max() < 1e-4
    # GIST needs no bit depth: LMgist's rescaling makes it independent of the intensity scale
    assert np.abs(gist_descriptor(im16) - gist_descriptor(im16 / 4095.0)).max() < 1e-4


# -- LBP ----------------------------------------------------------------------------------------


def test_lbp_on_uint16_uses_the_original_integers():
    im16 = np.round(_low_contrast_float()[:48, :48] * 4095).astype(np.uint16)
    for P, R in ((8, 1), (16, 2)):
        np.testing.assert_array_equal(lbp_codes(im16, P, R), local_binary_pattern(im16, P, R, "uniform"))
    # rounding to 8 bits would change the codes (ten-odd grey levels are left)
    im8 = np.round(im16 / 4095 * 255).astype(np.uint8)
    assert (lbp_codes(im16, 8, 1) != lbp_codes(im8, 8, 1)).mean() > 0.2
    # a 3-channel uint16 image is coded on its channel mean rounded to integers (not to 8 bits)
    rgb = np.stack([im16, im16 + 1, im16 + 3], axis=-1)
    grey = np.round(rgb.astype(np.float64).mean(axis=2)).astype(np.uint16)
    np.testing.assert_array_equal(lbp_codes(rgb, 8, 1), local_binary_pattern(grey, 8, 1, "uniform"))


def test_lbp_histogram_of_uint16_batch_equals_skimage():
    im16 = np.round(_low_contrast_float()[:40, :40] * 65535).astype(np.uint16)
    X = np.stack([im16, im16[::-1]])[..., None]
    out = LBPHistogram(radii_points=[(8, 1)]).fit_transform(X)
    for k in range(2):
        codes = local_binary_pattern(X[k, ..., 0], 8, 1, "uniform")
        expected = np.bincount(codes.astype(int).ravel(), minlength=10) / codes.size
        np.testing.assert_allclose(out[k], expected, atol=1e-7)


# -- GLCM ---------------------------------------------------------------------------------------


def _skimage_glcm(q, levels, prop="contrast"):
    P = graycomatrix(q, [1], [0.0, np.pi / 2], levels=levels, symmetric=True, normed=True)
    return graycoprops(P, prop).ravel()


def test_glcm_uint16_with_explicit_bit_depth():
    im16 = np.round(_low_contrast_float()[:40, :40] * 4095).astype(np.uint16)
    # 12 bits into 16 levels: q = g * 16 // 4096 = g // 256
    q = (im16 // 256).astype(np.uint8)
    got = glcm_features(im16, distances=(1,), angles=(0.0, np.pi / 2), levels=16, props=("contrast",), bit_depth=12)
    np.testing.assert_allclose(got, _skimage_glcm(q, 16), rtol=1e-6)
    with pytest.raises(ValueError, match="bit_depth"):
        GLCMFeatures().fit(im16[None, ..., None])
    with pytest.raises(ValueError, match="bit_depth=10.*4"):
        GLCMFeatures(bit_depth=10).fit(np.full((1, 4, 4, 1), 1024, np.uint16))


def test_glcm_float_quantisation_by_hand():
    im = np.array([[0.0, 0.24, 0.26, 0.5], [0.74, 0.76, 0.99, 1.0]] * 2)
    # floor(g * 4), 1.0 in the top level
    q = np.array([[0, 0, 1, 2], [2, 3, 3, 3]] * 2, dtype=np.uint8)
    got = glcm_features(im, distances=(1,), angles=(0.0, np.pi / 2), levels=4, props=("contrast",))
    np.testing.assert_allclose(got, _skimage_glcm(q, 4), rtol=1e-6)


def test_glcm_uint8_quantisation_unchanged():
    im = data.camera()[:32, :32]
    q = (im.astype(np.uint16) * 64 // 256).astype(np.uint8)
    got = glcm_features(im, distances=(1,), angles=(0.0, np.pi / 2), levels=64, props=("contrast",))
    np.testing.assert_allclose(got, _skimage_glcm(q, 64), rtol=1e-6)


# -- colour -------------------------------------------------------------------------------------


def test_colour_keeps_float_and_scales_uint16_by_bit_depth():
    names = list(ColorFeatures(bins=4).fit(np.zeros((1, 2, 2, 3), np.uint8)).get_feature_names_out())
    mean_r, hist_r = names.index("rgb_R_mean"), names.index("rgb_R_hist0")
    f = color_features(np.full((4, 4), 0.3), bins=4)
    assert abs(f[mean_r] - 0.3) < 1e-7  # not round(0.3 * 255) / 255 = 0.30196
    im16 = np.array([[0, 4095], [2048, 1024]], np.uint16)
    f16 = color_features(im16, bins=4, bit_depth=12)
    assert abs(f16[mean_r] - (0 + 1 + 2048 / 4095 + 1024 / 4095) / 4) < 1e-6
    # histogram over [0, 1] in 4 bins: 0 -> bin 0, 1024/4095 = 0.2501 -> bin 1, 0.5001 -> bin 2, 1 -> bin 3
    np.testing.assert_allclose(f16[hist_r : hist_r + 4], [0.25, 0.25, 0.25, 0.25])
    with pytest.raises(ValueError, match="bit_depth"):
        color_features(im16)
    with pytest.raises(ValueError, match="bit_depth must be"):
        ColorFeatures(bit_depth=17).fit(np.zeros((1, 2, 2, 3), np.uint8))


# -- batches ------------------------------------------------------------------------------------


def test_mixed_dtype_list_is_not_stacked_into_one_scale():
    # a uint8 image and the same image as float in [0, 1]: stacking would read 0-255 as floats
    im8 = data.camera()[:40, :40]
    est = HandcraftedFeatures(gist=GIST(image_size=32, boundary_extension=8)).fit([im8])
    both = est.transform([im8, im8 / 255.0])
    np.testing.assert_allclose(both[0], est.transform([im8])[0])
    np.testing.assert_allclose(both[1], est.transform([im8 / 255.0])[0])
    # the float twin x / 255 has the same RGB statistics and histograms as the uint8 image
    rgb = [i for i, n in enumerate(est.get_feature_names_out()) if n.startswith("color__rgb")]
    np.testing.assert_allclose(both[0, rgb], both[1, rgb], atol=1e-6)


def test_handcrafted_uint16_needs_bit_depth_for_colour_and_glcm():
    X = np.random.default_rng(0).integers(0, 4096, (2, 24, 24, 1)).astype(np.uint16)
    with pytest.raises(ValueError, match="ColorFeatures.*bit_depth"):
        HandcraftedFeatures().fit(X)
    est = HandcraftedFeatures(
        gist=GIST(image_size=16, boundary_extension=4), color=ColorFeatures(bit_depth=12), glcm=GLCMFeatures(bit_depth=12)
    )
    out = est.fit_transform(X)
    assert out.shape[0] == 2 and np.isfinite(out).all()
