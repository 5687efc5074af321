"""GIST: equality with LMgist (descriptors computed by the reference MATLAB code in Octave), with a
straightforward per-image port of it, and invariants (length, sign, orientation selectivity)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from medfeat.features import GIST, gabor_transfer_functions, gist_descriptor
from medfeat.features.gist import _resize_matrix

HERE = Path(__file__).parent
REF = np.load(HERE / "data" / "lmgist_octave_reference.npz")


def _load_port():
    spec = importlib.util.spec_from_file_location("lmgist_port", HERE / "lmgist_port.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fixture_images():
    """The four 256 x 256 RGB images LMgist was run on (see data/README.md)."""
    cam = data.camera()[100:356, 150:406]
    ihc = data.immunohistochemistry()[200:456, 100:356]
    ast = data.astronaut()[0:256, 128:384]
    y, x, c = np.mgrid[0:256, 0:256, 0:3]
    pattern = ((x * 7 + y * 13 + c * 50) ^ (x * y // 7)) % 256
    return np.stack([np.repeat(cam[..., None], 3, 2), ihc, ast, pattern.astype(np.uint8)])


@pytest.fixture(scope="module")
def images():
    return fixture_images()


@pytest.mark.parametrize(
    "key, kwargs",
    [
        ("gist128", {}),
        ("gist256", {"image_size": 256}),
        ("gist128_834", {"orientations_per_scale": (8, 6, 4), "n_blocks": 3, "fc_prefilt": 3}),
    ],
)
def test_matches_lmgist_octave(images, key, kwargs):
    out = GIST(**kwargs).fit_transform(images)
    assert out.shape == REF[key].shape
    assert np.abs(out - REF[key]).max() < 1e-4


def test_colour_matches_lmgist_octave(images):
    out = GIST(color=True).fit_transform(images[1:3])
    assert out.shape == (2, 1536)
    assert np.abs(out - REF["gistcolor128"]).max() < 1e-4


def test_function_form_matches_lmgist(images):
    assert np.abs(gist_descriptor(images[2]) - REF["gist128"][2]).max() < 1e-4


def test_matches_straightforward_port_on_non_square_image():
    # 200 x 300: non-integer shrink factor 0.64 (where Octave's imresize and MATLAB's differ, see
    # data/README.md); the per-image float64 port follows MATLAB like the package does.
    port = _load_port()
    rect = data.astronaut()[50:250, 20:320]
    expected = port.lmgist(rect)
    assert np.abs(gist_descriptor(rect) - expected).max() < 1e-4
    # and one block of one filter re-derived by hand: filter 9 (scale 1, orientation 1), block
    # row 2, column 1 is element 9 * 16 + 1 * 4 + 2 (blocks column-major, rows fastest)
    img = port.imresizecrop(rect.astype(np.float64).mean(axis=2), 128)
    img = 255 * (img - img.min()) / (img - img.min()).max()
    pre = np.pad(port.prefilt(img), 32, mode="symmetric")
    G = gabor_transfer_functions((8, 8, 8, 8), 192)[9]
    response = np.abs(np.fft.ifft2(np.fft.fft2(pre) * G))[32:160, 32:160]
    block = response[64:96, 32:64].mean()
    assert abs(gist_descriptor(rect)[9 * 16 + 1 * 4 + 2] - block) < 1e-5


def test_resize_weights_by_hand():
    # 8 -> 4 (factor 1/2): MATLAB's antialiased triangle gives taps [1 3 3 1] / 8 centred between
    # input pixels 2i and 2i+1; at the borders the outside taps are mirrored onto the edge pixel.
    w = _resize_matrix(8, 4)
    expected = np.array(
        [
            [4, 3, 1, 0, 0, 0, 0, 0],
            [0, 1, 3, 3, 1, 0, 0, 0],
            [0, 0, 0, 1, 3, 3, 1, 0],
            [0, 0, 0, 0, 0, 1, 3, 4],
        ]
    ) / 8
    np.testing.assert_allclose(w, expected, atol=1e-12)
    # enlarging 2 -> 4: plain bilinear at input coordinates 0.25, 0.75, 1.25, 1.75 (1-based),
    # clamped by mirroring at the borders
    np.testing.assert_allclose(_resize_matrix(2, 4), [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]], atol=1e-12)


def test_invariants():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (3, 96, 80, 3), dtype=np.uint8)
    est = GIST().fit(X)
    F = est.transform(X)
    assert F.shape == (3, 512) and F.dtype == np.float32
    assert np.all(np.isfinite(F)) and np.all(F >= 0)
    names = est.get_feature_names_out()
    assert list(names[:5]) == ["s0_o0_r0_c0", "s0_o0_r1_c0", "s0_o0_r2_c0", "s0_o0_r3_c0", "s0_o0_r0_c1"]
    assert GIST(color=True).fit(X).get_feature_names_out()[512] == "G_s0_o0_r0_c0"
    # a constant image has no structure: LMgist divides 0 by 0, medfeat returns zeros
    np.testing.assert_array_equal(gist_descriptor(np.full((64, 64), 90, np.uint8)), 0)
    # intensity rescaling to [0, 255] makes GIST invariant to contrast stretching
    im = rng.integers(0, 128, (64, 64), dtype=np.uint8)
    np.testing.assert_allclose(gist_descriptor(im * 2), gist_descriptor(im), atol=1e-5)


@pytest.mark.parametrize(
    "direction, orientation",
    # a grating varying along x has its frequency at angle 0 -> orientation 0; along y (rows) at
    # -pi/2 -> orientation 4 (filter j peaks at angle -pi j / 8, modulo pi for a real image);
    # along x + y at pi/4 = -3 pi/4 + pi -> 6; along x - y at -pi/4 -> 2
    [((1, 0), 0), ((0, 1), 4), ((1, 1), 6), ((1, -1), 2)],
)
def test_orientation_selectivity_on_gratings(direction, orientation):
    y, x = np.mgrid[0:128, 0:128]
    fx, fy = direction
    grating = 127.5 + 120 * np.cos(2 * np.pi * 12 * (fx * x + fy * y) / 128)
    g = gist_descriptor(grating.astype(np.uint8)).reshape(4, 8, 16)  # scale, orientation, block
    per_orientation = g.sum(axis=(0, 2))
    assert int(np.argmax(per_orientation)) == orientation


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": 4}, "image_size"),
        ({"orientations_per_scale": (8, 0)}, "orientations_per_scale"),
        ({"n_blocks": 0}, "n_blocks"),
        ({"fc_prefilt": -1}, "fc_prefilt"),
        ({"boundary_extension": -2}, "boundary_extension"),
        ({"color": "yes"}, "color"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GIST(**kwargs).fit(np.zeros((1, 16, 16, 1), np.uint8))
