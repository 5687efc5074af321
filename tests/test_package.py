"""Package-level promises: a light `import medfeat`, lazy subpackages, and the shared input checks."""

import subprocess
import sys

import numpy as np
import pytest

import medfeat
from medfeat._checks import check_image, check_image_batch, check_multiscale_batch, optional_import, to_grey

HEAVY = ("torch", "torchvision", "timm", "openslide", "xgboost", "matplotlib", "h5py")


def _modules_after(code):
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    return {m.split(".")[0] for m in out}


def test_import_medfeat_is_light():
    loaded = _modules_after("import medfeat")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_subpackages_import_without_heavy_dependencies():
    code = "import medfeat.features, medfeat.slides, medfeat.evaluation, medfeat.classifiers, medfeat.datasets"
    loaded = _modules_after(code)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_lazy_subpackage_attribute():
    assert medfeat.features.__name__ == "medfeat.features"
    with pytest.raises(AttributeError, match="no attribute"):
        medfeat.not_a_subpackage


def test_check_image_grey_and_float_conversion():
    grey = check_image(np.array([[0.0, 0.5], [1.0, 0.2]]))
    assert grey.shape == (2, 2, 1) and grey.dtype == np.uint8
    # round(x * 255): 0.5 -> 127.5 rounds to even 128, 0.2 -> 51
    assert grey[:, :, 0].tolist() == [[0, 128], [255, 51]]


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((4, 4, 4), np.uint8), "RGBA"),
        (np.zeros((4, 4), np.uint16), "uint16"),
        (np.zeros((4, 4), np.int16), "int16.*window"),
        (np.full((4, 4), 2.0), r"\[0, 1\]"),
        (np.zeros((4, 4), bool), "boolean"),
        (np.zeros((4, 4, 2), np.uint8), "1 \\(grey\\) or 3"),
        (np.zeros((2, 4, 4, 3), np.uint8), "H x W"),
        (np.array([[np.nan]]), "NaN"),
    ],
)
def test_check_image_rejects(image, match):
    with pytest.raises(ValueError, match=match):
        check_image(image, name="patch")


def test_check_image_keep_precision():
    # uint8 is untouched in both modes; uint16 and floats pass through unrounded only when asked
    u8 = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(check_image(u8, keep_precision=True)[..., 0], u8)
    u16 = np.array([[0, 4095], [65535, 3]], np.uint16)
    out = check_image(u16, keep_precision=True)
    assert out.dtype == np.uint16 and out[..., 0].tolist() == [[0, 4095], [65535, 3]]
    f = np.array([[0.1234567, 1.0]])
    assert check_image(f, keep_precision=True)[0, 0, 0] == 0.1234567
    assert check_image(f.astype(np.float16), keep_precision=True).dtype == np.float32
    assert check_image(f)[0, 0, 0] == 31  # the default mode still rounds: round(0.1234567 * 255) = 31
    with pytest.raises(ValueError, match="int32.*window"):
        check_image(np.zeros((2, 2), np.int32), keep_precision=True)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_image_batch(np.full((1, 2, 2, 1), 1.5), keep_precision=True)
    batch = check_image_batch([u16, f], keep_precision=True)
    assert [b.dtype for b in batch] == [np.uint16, np.float64]


def test_check_image_batch_shapes_and_errors():
    assert check_image_batch(np.zeros((3, 5, 6, 1), np.uint8)).shape == (3, 5, 6, 1)
    with pytest.raises(ValueError, match="empty batch"):
        check_image_batch(np.zeros((0, 5, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="empty batch"):
        check_image_batch([])
    with pytest.raises(ValueError, match=r"X\[None\]"):
        check_image_batch(np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(ValueError, match=r"images\[1\]"):
        check_image_batch([np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.int32)], name="images")


def test_check_multiscale_batch():
    assert check_multiscale_batch(np.zeros((2, 3, 4, 4, 3), np.uint8)).shape == (2, 3, 4, 4, 3)
    with pytest.raises(ValueError, match=r"\(N, S, H, W, C\)"):
        check_multiscale_batch(np.zeros((2, 4, 4, 3), np.uint8))


def test_to_grey_is_channel_mean():
    img = np.array([[[10, 20, 60], [0, 0, 3]]], np.uint8)
    assert to_grey(img).tolist() == [[30.0, 1.0]]


def test_optional_import_message():
    with pytest.raises(ImportError, match="pip install not_a_real_pkg_xyz"):
        optional_import("not_a_real_pkg_xyz", purpose="testing")
