"""Fetchers: pinned checksums, offline mirrors, named corrupt/missing files, downloads from a loopback mirror."""

import functools
import hashlib
import http.server
import shutil
import threading

import numpy as np
import pandas as pd
import pytest

from medfeat.datasets import (
    DataIntegrityError,
    fetch_kather2016,
    fetch_kermany2018,
    fetch_openslide_testdata,
    get_data_home,
    load_image_folder,
)


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "fetch, folder, group_column",
    [(fetch_kather2016, "kather2016_crc_texture", "source_slide"),
     (fetch_kermany2018, "kermany_cxr_pneumonia", "patient_id")],
)
def test_fetch_from_local_copy_equals_the_local_folder(shared_data, fetch, folder, group_column, monkeypatch):
    # Any network access would be a bug here: make pooch unusable.
    monkeypatch.setitem(__import__("sys").modules, "pooch", None)
    got = fetch(data_home=shared_data, download_if_missing=False, progress=False)
    # Independent expectation: the local copy read through its own manifest.csv.
    ref = load_image_folder(shared_data / folder, group_column=group_column)
    manifest = pd.read_csv(shared_data / folder / "manifest.csv", dtype=str)
    assert got.group_column == group_column
    np.testing.assert_array_equal(got.labels, ref.labels)
    np.testing.assert_array_equal(got.groups, ref.groups)
    np.testing.assert_array_equal(got.images, ref.images)
    assert [p.name for p in got.paths] == [p.name for p in ref.paths]
    # Checksums: every returned file hashes to the manifest's SHA-256.
    sha = dict(zip(manifest["relative_path"], manifest["sha256"]))
    for path in got.paths[:: max(1, len(got.paths) // 25)]:
        assert _sha256(path) == sha[path.relative_to((shared_data / folder).resolve()).as_posix()]


def test_kather_groups_are_the_slides_named_in_the_file_names(shared_data):
    df = fetch_kather2016(data_home=shared_data, download_if_missing=False, return_paths=True)
    assert len(df) == 480 and df["label"].nunique() == 8
    # The slide is derivable from the original file name: <hex>_CRC-Prim-HE-NN_<sub>.tif_Row_...
    derived = df["relative_path"].str.extract(r"_(CRC-Prim-HE-\d\d)")[0]
    assert (derived == df["source_slide"]).all()
    assert sorted(df["source_slide"].unique()) == [f"CRC-Prim-HE-0{i}" for i in (1, 2, 4, 6, 7, 9)]


@pytest.fixture
def kermany_mirror(shared_data, tmp_path):
    """A writable copy of the local Kermany data, laid out as a data home."""
    home = tmp_path / "home"
    shutil.copytree(shared_data / "kermany_cxr_pneumonia", home / "kermany_cxr_pneumonia")
    return home


def test_corrupted_file_is_detected_and_named(kermany_mirror):
    victim = kermany_mirror / "kermany_cxr_pneumonia" / "PNEUMONIA" / sorted(
        p.name for p in (kermany_mirror / "kermany_cxr_pneumonia" / "PNEUMONIA").iterdir())[3]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(DataIntegrityError) as info:
        fetch_kermany2018(data_home=kermany_mirror, download_if_missing=False, progress=False)
    msg = str(info.value)
    assert "1 corrupted, 0 missing" in msg
    assert str(victim) in msg and hashlib.sha256(bytes(data)).hexdigest() in msg


def test_missing_file_names_the_file_its_url_and_where_to_put_it(kermany_mirror):
    victim = kermany_mirror / "kermany_cxr_pneumonia" / "NORMAL" / "IM-0001-0001.jpeg"
    victim.unlink()
    with pytest.raises(DataIntegrityError) as info:
        fetch_kermany2018(data_home=kermany_mirror, download_if_missing=False, progress=False)
    msg = str(info.value)
    assert "0 corrupted, 1 missing" in msg
    assert f"missing: {victim}" in msg
    assert msg.count("dataset/test/NORMAL/IM-0001-0001.jpeg") == 1  # the pinned source path, in the URL


@pytest.fixture
def loopback_mirror(shared_data, tmp_path):
    """An HTTP server on 127.0.0.1 serving the local Kermany files under their source-repository paths."""
    served = tmp_path / "served"
    manifest = pd.read_csv(shared_data / "kermany_cxr_pneumonia" / "manifest.csv", dtype=str)
    for rel, src in zip(manifest["relative_path"], manifest["source_path_in_repo"]):
        (served / src).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "kermany_cxr_pneumonia" / rel, served / src)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_download_from_a_mirror_verifies_and_fills_the_data_home(loopback_mirror, shared_data, tmp_path):
    pytest.importorskip("pooch")
    _, url = loopback_mirror
    home = tmp_path / "empty-home"
    got = fetch_kermany2018(data_home=home, base_url=url, return_paths=True, progress=False)
    assert len(got) == 720
    local = shared_data / "kermany_cxr_pneumonia"
    for rel in got["relative_path"][::37]:
        assert (home / "kermany_cxr_pneumonia" / rel).read_bytes() == (local / rel).read_bytes()
    assert not list(home.rglob("*.part")) and not list(home.rglob("tmp*"))  # no temporary files left


def test_a_mirror_serving_other_bytes_is_refused_and_leaves_no_file(loopback_mirror, tmp_path):
    pytest.importorskip("pooch")
    served, url = loopback_mirror
    bad = served / "dataset" / "test" / "NORMAL" / "IM-0001-0001.jpeg"
    bad.write_bytes(b"not the pinned image")
    home = tmp_path / "home2"
    with pytest.raises(DataIntegrityError, match="IM-0001-0001.jpeg.*does not match its pinned SHA-256"):
        fetch_kermany2018(data_home=home, base_url=url, return_paths=True, progress=False)
    assert not (home / "kermany_cxr_pneumonia" / "NORMAL" / "IM-0001-0001.jpeg").exists()


def test_unreachable_mirror_gives_a_clear_error(tmp_path):
    pytest.importorskip("pooch")
    with pytest.raises(DataIntegrityError, match="cannot download http://127.0.0.1:9/"):
        fetch_openslide_testdata(data_home=tmp_path, base_url="http://127.0.0.1:9/", progress=False)


def test_openslide_testdata_from_a_local_mirror(tmp_path):
    from medfeat.datasets import cmu_small_region

    try:
        src = cmu_small_region()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    dest = tmp_path / "openslide-testdata" / "Aperio" / "CMU-1-Small-Region.svs"
    dest.parent.mkdir(parents=True)
    shutil.copyfile(src, dest)
    assert fetch_openslide_testdata(data_home=tmp_path, download_if_missing=False) == dest.resolve()
    with pytest.raises(ValueError, match="name must be one of"):
        fetch_openslide_testdata("CMU-1.svs", data_home=tmp_path)


def test_data_home_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDFEAT_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env"
    assert get_data_home(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("MEDFEAT_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_data_home() == tmp_path / "xdg" / "medfeat"


def test_manifest_argument_of_load_image_folder(shared_data):
    root = shared_data / "kermany_cxr_pneumonia"
    manifest = pd.read_csv(root / "manifest.csv", dtype=str).iloc[[0, 5, 400]]
    ds = load_image_folder(root, manifest=manifest, group_column="patient_id")
    assert ds.labels.tolist() == manifest["label"].tolist()
    assert ds.groups.tolist() == manifest["patient_id"].tolist()
    with pytest.raises(ValueError, match="manifest 'nope.csv' is not a file"):
        load_image_folder(root, manifest="nope.csv")
