"""`medfeat compare` on folders of DICOM files, end to end: groups from PatientID, the window policy in the
outputs, no identifier in any written file; the Kermany chest X-rays written as 12-bit DICOM (MONOCHROME1
and MONOCHROME2) with their patient ids when the shared data is present."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("pydicom")

from medfeat.datasets import load_image_folder, write_dicom  # noqa: E402
from medfeat.pipelines.compare import compare_image_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _no_identifier_in(out, identifiers):
    """Every file under ``out`` (tables, JSON, HTML, feature caches) is free of the given strings."""
    for f in out.rglob("*"):
        if f.is_file():
            blob = f.read_bytes()
            for ident in identifiers:
                assert ident.encode() not in blob, f"{ident!r} written into {f}"


def _assert_patient_level_folds(res, groups):
    for cv in res.cv.values():
        for g in np.unique(groups):
            assert len(np.unique(cv.fold[groups == g])) == 1, "a patient sits in two test folds"


def _synthetic_dicom_folder(root, rng, n_patients=6, per_patient=2):
    """12-bit 'radiographs': the abnormal class has a brighter, coarser texture; every other patient is stored
    MONOCHROME1 (values inverted in the file) so the reader's inversion is exercised."""
    ids = []
    for cls, (level, grain) in (("normal", (1500, 2)), ("pneumonia", (2300, 4))):
        (root / cls).mkdir(parents=True)
        for p in range(n_patients):
            pid = f"PAT-{cls[:3].upper()}-{p:04d}"
            ids.append(pid)
            for k in range(per_patient):
                coarse = rng.normal(0, 300, (32 // grain, 32 // grain))
                img = np.clip(level + np.kron(coarse, np.ones((grain, grain))) + rng.normal(0, 40, (32, 32)), 0, 4095)
                img = img.astype(np.uint16)
                mono1 = p % 2 == 1
                write_dicom(root / cls / f"{p}_{k}.dcm", 4095 - img if mono1 else img, patient_id=pid,
                            bits_stored=12, photometric="MONOCHROME1" if mono1 else "MONOCHROME2",
                            window=(2048, 4096), modality="DX")
    return ids


@pytest.mark.filterwarnings("ignore:Zero-width intervals")
def test_dicom_folder_through_compare_with_patient_groups(tmp_path, rng):
    data = tmp_path / "dicoms"
    ids = _synthetic_dicom_folder(data, rng)
    out = tmp_path / "out"
    res = compare_image_folder(data, out, ["lbp", "gist", "color", "glcm"], ["logreg"], n_splits=3,
                               progress=False, n_bootstrap=50)
    results = json.loads((out / "results.json").read_text())
    assert results["group_column"] == "PatientID" and results["n_groups"] == 12
    policy = results["image_input"]
    assert policy["formats"] == {"DICOM": 24} and policy["window"] == "auto"
    assert policy["windows"] == {"file window center=2048 width=4096 (LINEAR)": 24}
    assert policy["inverted_monochrome1"] == 12 and policy["dtypes"] == {"float32": 24}
    assert any(n.startswith("Image input: 24 DICOM") for n in res.notes)
    assert "Image input" in (out / "table.md").read_text()
    groups = load_image_folder(data).groups
    _assert_patient_level_folds(res, groups)
    assert res.table["auc"].max() > 0.9  # a planted difference
    _no_identifier_in(out, ids)
    # a re-run with another window does not reuse the cached features
    again = compare_image_folder(data, out, ["color"], ["logreg"], n_splits=3, progress=False, n_bootstrap=50,
                                 window="percentile")
    assert again.timings["cached"]["color"] is False
    assert json.loads((out / "results.json").read_text())["image_input"]["window"] == "percentile"


def test_compare_cli_window_flag(tmp_path, rng):
    data = tmp_path / "dicoms"
    ids = _synthetic_dicom_folder(data, rng, n_patients=4, per_patient=1)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "medfeat.cli", "compare", str(data), "--out", str(out), "--feature-sets", "glcm",
           "--classifiers", "logreg", "--cv", "2", "--n-bootstrap", "20", "--window", "1500,3000", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr
    policy = json.loads((out / "results.json").read_text())["image_input"]
    assert policy["window"] == "1500,3000" and policy["windows"] == {"center=1500 width=3000": 8}
    _no_identifier_in(out, ids)
    bad = subprocess.run(cmd[:-3] + ["--window", "lungs", "--quiet"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=600)
    assert bad.returncode != 0 and "window must be" in bad.stderr


def test_kermany_chest_xrays_as_dicom_through_compare(tmp_path, shared_data):
    KERMANY = shared_data / "kermany_cxr_pneumonia"
    if not (KERMANY / "manifest.csv").is_file():
        pytest.skip(f"shared Kermany chest X-ray data absent from {shared_data}")
    # The real CXRs (8-bit JPEG) written as 12-bit DICOM: stored = round(g * 4095 / 255), every other file
    # MONOCHROME1 (stored 4095 - v), window centre 2048 width 4096 (LINEAR maps 0..4095 onto v / 4095), and the
    # manifest's patient id as PatientID. No manifest is written: the groups must come from the DICOM files.
    manifest = pd.read_csv(KERMANY / "manifest.csv", dtype=str)
    pick = pd.concat([g.head(30) for _, g in manifest.groupby("label")])
    data = tmp_path / "cxr"
    originals = {}
    for i, row in enumerate(pick.itertuples()):
        grey = np.asarray(Image.open(KERMANY / row.relative_path).convert("L"), dtype=np.float64)
        v = np.round(grey * 4095 / 255).astype(np.uint16)
        mono1 = i % 2 == 1
        (data / row.label).mkdir(parents=True, exist_ok=True)
        target = data / row.label / (Path(row.relative_path).stem + ".dcm")
        write_dicom(target, 4095 - v if mono1 else v, patient_id=row.patient_id, bits_stored=12, modality="CR",
                    photometric="MONOCHROME1" if mono1 else "MONOCHROME2", window=(2048, 4096))
        originals[target.resolve()] = grey / 255
    ds = load_image_folder(data)
    assert ds.group_column == "PatientID"
    assert len(set(ds.groups)) == pick["patient_id"].nunique()
    for path, image in zip(ds.paths, ds.images):
        # the windowed, re-inverted pixels are the JPEG's grey levels to the 12-bit quantisation
        np.testing.assert_allclose(image[..., 0], originals[path], atol=0.5 / 4095 + 1e-6)
    out = tmp_path / "out"
    res = compare_image_folder(data, out, ["gist", "lbp", "deep"], ["logreg"], n_splits=3, progress=False,
                               n_bootstrap=100, deep_layers=["bn2"])
    results = json.loads((out / "results.json").read_text())
    assert results["group_column"] == "PatientID" and results["n_groups"] == pick["patient_id"].nunique()
    assert results["image_input"]["formats"] == {"DICOM": 60}
    assert results["image_input"]["inverted_monochrome1"] == 30
    _assert_patient_level_folds(res, ds.groups)
    assert res.table["auc"].max() > 0.8  # NORMAL vs PNEUMONIA is an easy task (AUC 0.98 on all 720 images)
    _no_identifier_in(out, pick["patient_id"].tolist())


def _linear_window(x, center, width):
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR VOI function onto [0, 1], written out from the standard."""
    x = np.asarray(x, np.float64)
    lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    return np.where(x <= lo, 0.0, np.where(x > hi, 1.0, (x - (center - 0.5)) / (width - 1) + 0.5))


def test_real_cr_chest_dicom_from_the_sample_set(tmp_path, rng):
    # RG1 of the NEMA compressed-image test set, shipped by the PyPI package pydicom-data (a test extra, installed
    # with the README's command; nothing is downloaded): a CR chest radiograph, 1955 x 1841, 15 bits stored,
    # MONOCHROME1, PatientID 9RG1, window centre 15000 width 30000, stored uncompressed (UNCR) and as lossless
    # JPEG 2000 (J2KR).
    import pydicom
    from pydicom.data import get_testdata_file

    uncr, j2kr = Path(get_testdata_file("RG1_UNCR.dcm")), Path(get_testdata_file("RG1_J2KR.dcm"))
    raw = pydicom.dcmread(uncr)
    assert (raw.Modality, raw.BodyPartExamined, raw.PhotometricInterpretation) == ("CR", "CHEST", "MONOCHROME1")
    stored = raw.pixel_array
    from medfeat.datasets import read_dicom

    im = read_dicom(uncr)
    # the file's window, then MONOCHROME1 inverted (high stored values are dark), against the standard's formula
    expected = 1.0 - _linear_window(stored, 15000.0, 30000.0)
    np.testing.assert_allclose(im.pixels, expected, atol=1e-6)
    # and a hand-computed pixel: the darkest-stored pixel (874) is near white: 1 - ((874 - 14999.5)/29999 + 0.5)
    np.testing.assert_allclose(im.pixels.flat[np.argmin(stored)], 1 - ((874 - 14999.5) / 29999 + 0.5), atol=1e-6)
    assert im.meta["PatientID"] == "9RG1"
    # the lossless JPEG 2000 copy decodes to the same image
    np.testing.assert_array_equal(read_dicom(j2kr).pixels, im.pixels)

    # compare end to end: the real radiograph (both encodings, one patient) beside 12 synthetic patients
    data = tmp_path / "dicoms"
    ids = _synthetic_dicom_folder(data, rng)
    for src in (uncr, j2kr):
        (data / "pneumonia" / src.name).write_bytes(src.read_bytes())
    ds = load_image_folder(data)
    assert ds.group_column == "PatientID"
    real = np.array([Path(p).name.startswith("RG1_") for p in ds.paths])
    assert real.sum() == 2 and set(np.asarray(ds.groups)[real]) == {"9RG1"}
    out = tmp_path / "out"
    res = compare_image_folder(data, out, ["lbp", "gist", "deep"], ["logreg"], n_splits=3, progress=False,
                               n_bootstrap=50, deep_layers=["bn2"])
    results = json.loads((out / "results.json").read_text())
    assert results["group_column"] == "PatientID" and results["n_groups"] == 13
    policy = results["image_input"]
    assert policy["formats"] == {"DICOM": 26}
    assert policy["inverted_monochrome1"] == 12 + 2
    assert policy["windows"]["file window center=15000 width=30000 (LINEAR)"] == 2
    _assert_patient_level_folds(res, np.asarray(ds.groups))
    _no_identifier_in(out, ids + ["9RG1", "CompressedSamples", raw.StudyInstanceUID])
