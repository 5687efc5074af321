"""DICOM and 16-bit inputs: pixels against hand-computed values (rescale, windows, MONOCHROME1), real DICOM
files shipped with pydicom, multi-frame handling, folders of DICOM / 16-bit files with their groups."""

import os
import warnings

import numpy as np
import pytest
from PIL import Image

pydicom = pytest.importorskip("pydicom")

from medfeat.datasets import load_image_folder, read_dicom, write_dicom  # noqa: E402

TEST_FILES = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")


def _bundled(name):
    path = os.path.join(TEST_FILES, name)
    if not os.path.isfile(path):
        pytest.skip(f"pydicom does not ship {name}")
    return path


def test_monochrome1_rescale_and_file_window_by_hand(tmp_path):
    stored = np.array([[0, 100, 200], [1000, 2000, 4095]], np.uint16)
    path = write_dicom(tmp_path / "m1.dcm", stored, patient_id="P7", bits_stored=12, photometric="MONOCHROME1",
                       rescale=(2, -100), window=(1000, 2001), modality="DX")
    ds = pydicom.dcmread(path)  # the header as written, read by pydicom itself
    assert (ds.PhotometricInterpretation, float(ds.RescaleSlope), float(ds.RescaleIntercept)) == ("MONOCHROME1", 2, -100)
    assert ds.BitsStored == 12 and ds.pixel_array.tolist() == stored.tolist()
    # window=None: modality values 2 x - 100, not inverted
    raw = read_dicom(path, window=None)
    assert raw.pixels.tolist() == [[-100, 100, 300], [1900, 3900, 8090]] and not raw.inverted
    # auto: DICOM LINEAR window c=1000, w=2001 -> [-0.5, 1999.5], y = (v + 0.5) / 2000, then 1 - y
    im = read_dicom(path)
    expected = 1 - np.array([[0, 100.5 / 2000, 300.5 / 2000], [1900.5 / 2000, 1, 1]])
    np.testing.assert_allclose(im.pixels, expected, atol=1e-6)
    assert im.inverted and im.pixels.dtype == np.float32
    assert im.window["source"] == "file window" and im.window["function"] == "LINEAR"
    # a user window replaces the file's: (0, 400) -> [-200, 200], still inverted for MONOCHROME1
    user = read_dicom(path, window=(0, 400))
    np.testing.assert_allclose(user.pixels, 1 - np.array([[0.25, 0.75, 1], [1, 1, 1]]), atol=1e-6)
    assert im.meta["PatientID"] == "P7" and im.meta["Modality"] == "DX"
    assert "P7" not in repr(im)


def test_full_stored_range_and_percentile_by_hand(tmp_path):
    stored = np.array([[0, 2048], [4095, 1024]], np.uint16)
    path = write_dicom(tmp_path / "full.dcm", stored, bits_stored=12)
    im = read_dicom(path)  # no window in the file: 12 stored bits, [0, 4095] -> [0, 1]
    np.testing.assert_allclose(im.pixels, stored / 4095, atol=1e-6)
    assert im.window["source"] == "full range"
    # percentile 0-100 of [0, 1024, 2048, 4095]: [0, 4095]
    np.testing.assert_allclose(read_dicom(path, window="percentile:0:100").pixels, stored / 4095, atol=1e-6)


def test_ct_small_rescale_and_presets_by_hand():
    path = _bundled("CT_small.dcm")
    ds = pydicom.dcmread(path)
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, -1024.0)
    stored = ds.pixel_array.astype(np.float64)
    hu = read_dicom(path, window=None).pixels
    np.testing.assert_array_equal(hu, stored - 1024)
    # soft tissue (40, 400) -> [-160, 240]
    np.testing.assert_allclose(read_dicom(path, window=(40, 400)).pixels,
                               np.clip((stored - 1024 + 160) / 400, 0, 1), atol=1e-6)
    # lung (-600, 1500) -> [-1350, 150]
    np.testing.assert_allclose(read_dicom(path, window="lung").pixels,
                               np.clip((stored - 1024 + 1350) / 1500, 0, 1), atol=1e-6)


def test_mr_small_uses_its_own_window():
    path = _bundled("MR_small.dcm")
    ds = pydicom.dcmread(path)
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (600.0, 1600.0)
    stored = ds.pixel_array.astype(np.float64)
    np.testing.assert_allclose(read_dicom(path).pixels, np.clip((stored - 599.5) / 1599 + 0.5, 0, 1), atol=1e-6)
    # the RLE-compressed copy decodes to the same pixels
    np.testing.assert_array_equal(read_dicom(_bundled("MR_small_RLE.dcm")).pixels, read_dicom(path).pixels)


def test_jpeg2000_ct_decodes_with_its_window():
    path = _bundled("693_J2KI.dcm")  # real CT, JPEG 2000, window 40/100, intercept -1024
    try:
        im = read_dicom(path)
    except ValueError as exc:
        pytest.skip(f"no JPEG 2000 decoder here: {exc}")
    stored = pydicom.dcmread(path).pixel_array.astype(np.float64)
    np.testing.assert_allclose(im.pixels, np.clip((stored - 1024 - 39.5) / 99 + 0.5, 0, 1), atol=1e-6)


def test_multi_frame_refused_or_split_explicitly():
    path = _bundled("rtdose.dcm")  # 15 frames of 10 x 10
    with pytest.raises(ValueError, match="multi-frame.*15 frames"):
        read_dicom(path)
    assert read_dicom(path, frame=3).pixels.shape == (10, 10)
    frames = read_dicom(path, frame="all", window=None).pixels
    assert frames.shape == (15, 10, 10)
    np.testing.assert_array_equal(read_dicom(path, frame=3, window=None).pixels, frames[3])
    with pytest.raises(ValueError, match="frame=15"):
        read_dicom(path, frame=15)


def test_bad_dicom_inputs(tmp_path):
    with pytest.raises(ValueError, match="without pixel data"):
        read_dicom(_bundled("rtplan.dcm"))
    with pytest.raises(ValueError, match="applies to grey"):
        read_dicom(_bundled("SC_rgb.dcm") if os.path.isfile(os.path.join(TEST_FILES, "SC_rgb.dcm"))
                   else _bundled("SC_rgb_rle.dcm"), window="lung")
    (tmp_path / "x.dcm").write_bytes(b"nope")
    with pytest.raises(ValueError, match="x.dcm"):
        read_dicom(tmp_path / "x.dcm")
    with pytest.raises(ValueError, match="window must be"):
        read_dicom(_bundled("MR_small.dcm"), window="lungs")


def test_colour_dicom_is_scaled_by_its_bits():
    path = _bundled("SC_rgb_rle_16bit.dcm")
    stored = pydicom.dcmread(path).pixel_array.astype(np.float64)
    np.testing.assert_allclose(read_dicom(path).pixels, stored / 65535, atol=1e-6)


# -- folders ------------------------------------------------------------------------------------


def _dicom_folder(root, rng, patients=("A", "B", "C"), per_patient=2):
    for cls, level in (("normal", 1000), ("abnormal", 2500)):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for p in patients:
            for k in range(per_patient):
                px = np.clip(rng.normal(level, 300, (12, 10)), 0, 4095).astype(np.uint16)
                write_dicom(root / cls / f"{p}_{k}.dcm", px, patient_id=f"{cls}-{p}", bits_stored=12,
                            window=(2048, 4096))


def test_dicom_folder_groups_by_patient_and_records_the_policy(tmp_path, rng):
    _dicom_folder(tmp_path, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # grouped by PatientID: no "not group-aware" warning
        ds = load_image_folder(tmp_path)
    assert ds.group_column == "PatientID"
    assert sorted(set(ds.groups)) == sorted(f"{c}-{p}" for c in ("normal", "abnormal") for p in "ABC")
    assert ds.images.shape == (12, 12, 10, 1) and ds.images.dtype == np.float32
    assert ds.input_policy["formats"] == {"DICOM": 12}
    assert ds.input_policy["windows"] == {"file window center=2048 width=4096 (LINEAR)": 12}
    # pixels are the file's LINEAR window of the stored values
    first = pydicom.dcmread(ds.paths[0]).pixel_array.astype(np.float64)
    np.testing.assert_allclose(ds.images[0, ..., 0], np.clip((first - 2047.5) / 4095 + 0.5, 0, 1), atol=1e-6)
    # an explicit window and a resize
    small = load_image_folder(tmp_path, size=(6, 5), window="percentile")
    assert small.images.shape == (12, 6, 5, 1) and small.input_policy["windows"] == {"percentile 0.5-99.5": 12}
    by_study = load_image_folder(tmp_path, group_column="StudyInstanceUID")
    assert by_study.group_column == "StudyInstanceUID" and len(set(by_study.groups)) == 12


def test_dicom_folder_without_patient_ids_falls_back_to_study(tmp_path, rng):
    _dicom_folder(tmp_path, rng)
    write_dicom(tmp_path / "normal" / "anon.dcm", np.zeros((12, 10), np.uint16), patient_id="", bits_stored=12)
    with pytest.warns(UserWarning, match="no PatientID; grouping by StudyInstanceUID"):
        ds = load_image_folder(tmp_path)
    assert ds.group_column == "StudyInstanceUID"
    with pytest.raises(ValueError, match="PatientID"):
        load_image_folder(tmp_path, group_column="PatientID")


def test_sixteen_bit_png_and_tiff(tmp_path):
    import tifffile

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    png = np.array([[0, 1000], [4000, 4095]], np.uint16)
    Image.fromarray(png).save(tmp_path / "a" / "x.png")
    tif = np.zeros((2, 2, 3), np.uint16)
    tif[..., 0] = [[0, 65535], [300, 30000]]
    tifffile.imwrite(tmp_path / "b" / "y.tif", tif)
    ds = load_image_folder(tmp_path, group_column=None)
    # default rule: the full 16-bit range
    np.testing.assert_allclose(ds.images[0][..., 0], png / 65535, atol=1e-7)
    np.testing.assert_allclose(ds.images[1], tif / 65535, atol=1e-7)
    assert ds.input_policy["formats"] == {"16-bit": 2}
    # 12-bit data in a 16-bit container: bit_depth=12 divides by 4095, and a value that does not fit raises
    (tmp_path / "b" / "y.tif").unlink()
    ds12 = load_image_folder(tmp_path, group_column=None, bit_depth=12)
    np.testing.assert_allclose(ds12.images[0][..., 0], png / 4095, atol=1e-7)
    with pytest.raises(ValueError, match="bit_depth=10.*4095"):
        load_image_folder(tmp_path, group_column=None, bit_depth=10)
    # a window on the stored values, and window=None keeping the integers
    win = load_image_folder(tmp_path, group_column=None, window=(2000, 4000))
    np.testing.assert_allclose(win.images[0][..., 0], [[0, 0.25], [1, 1]], atol=1e-7)
    raw = load_image_folder(tmp_path, group_column=None, window=None)
    assert raw.images.dtype == np.uint16 and raw.images[0, ..., 0].tolist() == png.tolist()


def test_float_tiff_needs_a_window_and_mixed_folders_warn(tmp_path):
    import tifffile

    (tmp_path / "a").mkdir()
    tifffile.imwrite(tmp_path / "a" / "f.tif", np.array([[-5.0, 0.0], [5.0, 10.0]], np.float32))
    with pytest.raises(ValueError, match="f.tif.*explicit window"):
        load_image_folder(tmp_path, group_column=None)
    ds = load_image_folder(tmp_path, group_column=None, window="0,10")
    np.testing.assert_allclose(ds.images[0][..., 0], [[0, 0.5], [1, 1]], atol=1e-7)
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "a" / "g.png")
    with pytest.warns(UserWarning, match="1 8-bit file"):
        mixed = load_image_folder(tmp_path, group_column=None, window="0,10")
    assert isinstance(mixed.images, list) and mixed.images[1].dtype == np.uint8


def test_multi_frame_dicom_in_a_folder_is_refused(tmp_path):
    import shutil

    (tmp_path / "a").mkdir()
    shutil.copy(_bundled("rtdose.dcm"), tmp_path / "a" / "dose.dcm")
    with pytest.raises(ValueError, match="dose.dcm: multi-frame"):
        load_image_folder(tmp_path, group_column=None)


def test_voi_lut_sequence_by_hand(tmp_path):
    # a VOI LUT of 4 entries starting at stored value 10, 8-bit output: 10 -> 0, 11 -> 60, 12 -> 120, 13 -> 255;
    # values below the first entry take the first, above the last take the last (PS3.3 C.11.2.1.1)
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    path = write_dicom(tmp_path / "lut.dcm", np.array([[5, 10, 11], [12, 13, 40]], np.uint16), bits_stored=12,
                       window=(2000, 100))  # the LUT takes precedence over the window
    ds = pydicom.dcmread(path)
    item = Dataset()
    item.LUTDescriptor = [4, 10, 8]
    item.add_new(0x00283006, "US", [0, 60, 120, 255])  # LUTData, as US (its VR is US or OW)
    item.LUTExplanation = "test LUT"
    ds.VOILUTSequence = Sequence([item])
    ds.save_as(path)
    im = read_dicom(path)
    np.testing.assert_allclose(im.pixels, [[0, 0, 60 / 255], [120 / 255, 1, 1]], atol=1e-6)
    assert im.window["source"] == "file VOI LUT" and "test LUT" in im.window["label"]
