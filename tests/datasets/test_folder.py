import numpy as np
import pytest
from PIL import Image

from medfeat.datasets import ImageFolder, load_image_folder


def _save(path, array, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)


@pytest.fixture
def folder(tmp_path, rng):
    """Two classes, four formats, one grey image, one ignored text file, one hidden file."""
    rgb = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    _save(tmp_path / "benign" / "p1_a.png", rgb)
    _save(tmp_path / "benign" / "p1_b.tif", rgb)
    _save(tmp_path / "benign" / "p2_a.bmp", grey)
    _save(tmp_path / "malignant" / "p3_a.PNG", rgb)
    _save(tmp_path / "malignant" / "sub" / "p4_a.tiff", rgb)
    (tmp_path / "malignant" / "notes.txt").write_text("not an image")
    _save(tmp_path / "malignant" / ".hidden.png", rgb)
    return tmp_path, rgb, grey


def test_scan_without_manifest_warns_and_uses_stems(folder):
    root, rgb, grey = folder
    with pytest.warns(UserWarning, match="NOT be group-aware"):
        ds = load_image_folder(root)
    assert isinstance(ds, ImageFolder) and len(ds) == 5
    assert ds.classes == ["benign", "malignant"]
    assert ds.labels.tolist() == ["benign"] * 3 + ["malignant"] * 2
    assert ds.groups.tolist() == [
        "benign/p1_a",
        "benign/p1_b",
        "benign/p2_a",
        "malignant/p3_a",
        "malignant/sub/p4_a",
    ]
    assert ds.images.shape == (5, 10, 12, 3) and ds.images.dtype == np.uint8
    # lossless formats round-trip exactly; the grey BMP is copied into 3 equal channels
    np.testing.assert_array_equal(ds.images[0], rgb)
    np.testing.assert_array_equal(ds.images[1], rgb)
    np.testing.assert_array_equal(ds.images[2], np.repeat(grey[:, :, None], 3, axis=2))
    assert all(p.is_absolute() and p.is_file() for p in ds.paths)


def test_callable_and_none_groups(folder, recwarn):
    root, _, _ = folder
    ds = load_image_folder(root, group_column=lambda rel: rel.split("/")[-1].split("_")[0])
    assert ds.groups.tolist() == ["p1", "p1", "p2", "p3", "p4"]
    load_image_folder(root, group_column=None)
    assert not [w for w in recwarn if "group-aware" in str(w.message)]


def test_resize_and_mixed_sizes(tmp_path, rng):
    _save(tmp_path / "a" / "x.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    _save(tmp_path / "b" / "y.png", np.full((6, 9, 3), 200, np.uint8))
    ds = load_image_folder(tmp_path, group_column=None)
    assert isinstance(ds.images, list) and [im.shape for im in ds.images] == [(8, 8, 3), (6, 9, 3)]
    ds = load_image_folder(tmp_path, size=(4, 5), group_column=None)
    assert ds.images.shape == (2, 4, 5, 3)
    assert np.all(ds.images[1] == 200)  # a constant image stays constant under bilinear resizing


def test_manifest_defines_labels_and_groups(tmp_path, rng):
    img = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
    for rel in ("A/1.png", "A/2.png", "B/3.png", "B/4.png"):
        _save(tmp_path / rel, img)
    (tmp_path / "manifest.csv").write_text(
        "relative_path,label,source_slide,patient_id\n"
        "A/1.png,A,s1,P1\nA/2.png,A,s2,P1\nB/3.png,B,s3,P2\nB/4.png,B,s4,P3\n"
    )
    ds = load_image_folder(tmp_path)
    assert ds.group_column == "patient_id"  # patient is preferred over slide
    assert ds.groups.tolist() == ["P1", "P1", "P2", "P3"]
    ds = load_image_folder(tmp_path, group_column="source_slide")
    assert ds.groups.tolist() == ["s1", "s2", "s3", "s4"]
    with pytest.raises(ValueError, match="'donor'.*columns"):
        load_image_folder(tmp_path, group_column="donor")


def test_manifest_errors(tmp_path, rng):
    _save(tmp_path / "A" / "1.png", rng.integers(0, 256, (5, 5, 3), dtype=np.uint8))
    (tmp_path / "manifest.csv").write_text("relative_path,label\nA/1.png,A\nA/missing.png,A\n")
    with pytest.raises(ValueError, match="missing.png"):
        load_image_folder(tmp_path, group_column=None)
    (tmp_path / "manifest.csv").write_text("path,label\nA/1.png,A\n")
    with pytest.raises(ValueError, match="relative_path"):
        load_image_folder(tmp_path)


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red, but fully transparent on the left half
    rgba[:, 2:, 3] = 255
    _save(tmp_path / "a" / "x.png", rgba)
    im = load_image_folder(tmp_path, group_column=None).images[0]
    assert im[0, 0].tolist() == [255, 255, 255] and im[0, 3].tolist() == [255, 0, 0]
    # 16-bit files are windowed, not refused: tests/datasets/test_radiology.py


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        load_image_folder(tmp_path)
    (tmp_path / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="x.png"):
        load_image_folder(tmp_path, group_column=None)
    with pytest.raises(ValueError, match="size"):
        load_image_folder(tmp_path, size=(0, 3))
    with pytest.raises(ValueError, match="manifest"):
        load_image_folder(tmp_path, group_column="patient_id")



def test_real_kather_folder_matches_its_readme(shared_data):
    root = shared_data / "kather2016_crc_texture"
    if not root.is_dir():
        pytest.skip(f"{root} absent")
    ds = load_image_folder(root)
    # README: 8 classes x 60 tiles, 150 x 150 RGB, 6 source slides, 08_EMPTY only from HE-06.
    assert ds.images.shape == (480, 150, 150, 3)
    assert ds.group_column == "source_slide"
    assert sorted(set(ds.groups)) == [f"CRC-Prim-HE-0{i}" for i in (1, 2, 4, 6, 7, 9)]
    assert {c: int((ds.labels == c).sum()) for c in ds.classes} == {c: 60 for c in ds.classes}
    assert set(ds.groups[ds.labels == "08_EMPTY"]) == {"CRC-Prim-HE-06"}
