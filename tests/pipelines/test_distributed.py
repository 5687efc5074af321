"""Many slides on Dask distributed: same stores as the single-process path, worker death, failures, fsspec.

Clusters here are small (2 workers x 1 thread, loopback only) and every wait is bounded; the machine is
shared. The reference for every comparison is the single-process ``extract_features`` / ``SlideHeatmap``.
"""

import csv
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from medfeat.features import ColorFeatures
from medfeat.pipelines import SlideHeatmap, extract_features, extract_slide_features_many, heatmap_slides_many
from medfeat.slides import write_synthetic_slide

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

ROOT = Path(__file__).resolve().parents[2]
KW = dict(mpp=1.0, size=32, batch_size=16, chunk_size=16)  # small chunks: many flushes, resumable partials
CLI_KW = ["--features", "color", "--mpp", "1.0", "--size", "32", "--batch-size", "64"]
TIMEOUT = 300


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist_slides")
    return [write_synthetic_slide(d / f"slide{i}.tif", size=(1024, 768), mpp=0.5, lesions=1, seed=i).path
            for i in range(4)]


@pytest.fixture(scope="module")
def reference(slides, tmp_path_factory):
    """Single-process stores with the settings of the Python-API tests."""
    out = tmp_path_factory.mktemp("dist_ref")
    res = extract_features(slides, ColorFeatures(), out, progress=False, **KW)
    assert [r.status for r in res] == ["written"] * 4
    return out


@pytest.fixture(scope="module")
def reference_cli(slides, tmp_path_factory):
    """Single-process stores with the settings of CLI_KW (what `medfeat extract` without --scheduler writes)."""
    out = tmp_path_factory.mktemp("dist_ref_cli")
    res = extract_features(slides, ColorFeatures(), out, progress=False, mpp=1.0, size=32, batch_size=64)
    assert [r.status for r in res] == ["written"] * 4
    return out


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes on loopback, shared by the tests that need processes."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0", memory_limit="2GiB")
    c = distributed.Client(cluster)
    try:
        c.wait_for_workers(2, timeout=120)
        yield c
    finally:
        c.close()
        cluster.close()


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _h5(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}, {k: f.attrs[k] for k in f.attrs}


def _assert_same_store(a, b):
    da, aa = _h5(a)
    db, ab = _h5(b)
    assert sorted(da) == sorted(db) and sorted(aa) == sorted(ab)
    for k in da:
        np.testing.assert_array_equal(da[k], db[k], err_msg=k)
    for k in aa:
        np.testing.assert_array_equal(aa[k], ab[k], err_msg=k)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "TQDM_DISABLE": "1"}


def _cli(*args, timeout=TIMEOUT):
    return subprocess.run([sys.executable, "-m", "medfeat.cli", *map(str, args)], capture_output=True, text=True,
                          env=_env(), timeout=timeout, cwd=ROOT)


def _summary(out, name="extract-summary"):
    with open(Path(out) / f"{name}.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    doc = json.loads((Path(out) / f"{name}.json").read_text())
    return {Path(r["slide"]).stem: r for r in rows}, doc


# ---------------------------------------------------------------------------------------------------------
# in this process (client=None): the same runner without Dask
# ---------------------------------------------------------------------------------------------------------


def test_in_process_matches_single_process_and_reports_failures(slides, reference, tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff")
    res = extract_slide_features_many([*slides[:2], bad], ColorFeatures(), tmp_path / "out", retries=1,
                                      progress=False, **KW)
    assert [r.status for r in res] == ["written", "written", "failed"]
    assert [r.attempts for r in res] == [1, 1, 2]  # the broken slide was tried 1 + retries times
    assert res[2].path is None and res[2].error
    for s in slides[:2]:
        assert _md5(tmp_path / "out" / f"{Path(s).stem}.h5") == _md5(reference / f"{Path(s).stem}.h5")
    rows, doc = _summary(tmp_path / "out")
    assert rows["broken"]["status"] == "failed" and rows["broken"]["attempts"] == "2"
    assert rows["broken"]["error"] == res[2].error
    assert (doc["n_slides"], doc["n_written"], doc["n_failed"]) == (3, 2, 1)
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_bad_arguments_are_named(slides, tmp_path):
    with pytest.raises(ValueError, match="slides is empty"):
        extract_slide_features_many([], "color", tmp_path)
    with pytest.raises(ValueError, match="out_dir must be given"):
        extract_slide_features_many(slides, "color", None)
    with pytest.raises(ValueError, match="retries"):
        extract_slide_features_many(slides, "color", tmp_path, retries=-1)
    twin = tmp_path / "other" / Path(slides[0]).name
    with pytest.raises(ValueError, match="same file name"):
        extract_slide_features_many([slides[0], twin], "color", tmp_path)
    with pytest.raises(ValueError, match="local:N"):
        extract_slide_features_many(slides, "color", tmp_path, client="local:zero", progress=False)


def test_missing_dask_gives_install_hint(slides, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"medfeat\[dask\]"):
        extract_slide_features_many(slides, "color", tmp_path, client="local:2", progress=False)


def test_import_medfeat_pipelines_and_cli_do_not_import_dask():
    code = "import medfeat, medfeat.pipelines, medfeat.cli, sys; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True,
                         timeout=120).stdout.split()
    assert not {m.split(".")[0] for m in out} & {"dask", "distributed", "fsspec"}


def test_local_workers_are_spread_over_the_gpus(monkeypatch):
    torch = pytest.importorskip("torch")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from medfeat.features import DeepFeatures
    from medfeat.pipelines.distributed import _place

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    # LocalCluster workers are named 0..N-1: worker 3 of a 2-GPU host takes cuda:1
    assert _place(DeepFeatures(), 3).device == "cuda:1"
    pipe = _place(make_pipeline(DeepFeatures(), LogisticRegression()), 2)
    assert pipe.get_params()["deepfeatures__device"] == "cuda:0"
    assert _place(DeepFeatures(device="cpu"), 1).device == "cpu"  # an explicit device is kept
    assert _place(DeepFeatures(), "tcp://10.0.0.5:4242").device == "auto"  # one-GPU-per-worker cluster
    assert _place(ColorFeatures(), 1).get_params() == ColorFeatures().get_params()


# ---------------------------------------------------------------------------------------------------------
# fsspec outputs (memory filesystem; a threads-only cluster shares it with this process)
# ---------------------------------------------------------------------------------------------------------


def test_fsspec_url_output_equals_local_store_and_is_atomic(slides, reference, tmp_path, monkeypatch):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    url = f"memory://medfeat-test-{os.getpid()}/feats"
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1,
                            dashboard_address="127.0.0.1:0") as c:
        res = extract_slide_features_many(slides[:2], ColorFeatures(), url, client=c, progress=False,
                                          scratch_dir=tmp_path / "scratch", **KW)
    assert [r.status for r in res] == ["written"] * 2
    root = url.split("://", 1)[1]
    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))
    assert names == ["extract-summary.csv", "extract-summary.json", "slide0.h5", "slide1.h5"]
    for s in slides[:2]:
        stem = Path(s).stem
        path = res[slides.index(s)].path
        assert path.startswith("memory://") and path.endswith(f"/feats/{stem}.h5")
        assert hashlib.md5(fs.cat_file(f"{root}/{stem}.h5")).hexdigest() == _md5(reference / f"{stem}.h5")
    # uploaded stores leave the scratch space (the per-store lock files of the extraction may stay)
    assert not [p for p in (tmp_path / "scratch").rglob("*") if p.name.endswith((".h5", ".partial"))]

    # a failed upload leaves neither the final object nor its temporary one
    def broken_mv(*args, **kwargs):
        raise OSError("upload interrupted")

    monkeypatch.setattr(type(fs), "mv", broken_mv)
    url2 = f"{url}-2"
    res = extract_slide_features_many(slides[:1], ColorFeatures(), url2, retries=0, progress=False, summary=None,
                                      scratch_dir=tmp_path / "scratch", **KW)
    assert res[0].status == "failed" and "upload interrupted" in res[0].error
    assert not fs.exists(url2.split("://", 1)[1]) or fs.ls(url2.split("://", 1)[1], detail=False) == []
    # the finished local store stays in scratch: a later attempt uploads it without recomputing
    monkeypatch.undo()
    res = extract_slide_features_many(slides[:1], ColorFeatures(), url2, progress=False, summary=None,
                                      scratch_dir=tmp_path / "scratch", **KW)
    assert res[0].status == "written"
    assert hashlib.md5(fs.cat_file(f"{url2.split('://', 1)[1]}/slide0.h5")).hexdigest() == \
        _md5(reference / "slide0.h5")
    fs.rm(f"medfeat-test-{os.getpid()}", recursive=True)


# ---------------------------------------------------------------------------------------------------------
# worker processes
# ---------------------------------------------------------------------------------------------------------


class CountingColor(ColorFeatures):
    """ColorFeatures that appends its process id to a file each time it is fitted (= model built)."""

    def __init__(self, bins=16, n_jobs=None, log_file=None):
        super().__init__(bins=bins, n_jobs=n_jobs)
        self.log_file = log_file

    def fit(self, X, y=None):
        with open(self.log_file, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return super().fit(X, y)


class ExitDuringExtraction(distributed.WorkerPlugin):
    """Kill the first worker process that sees a partial store in ``out_dir`` (hard exit, once)."""

    def __init__(self, out_dir, marker):
        self.out_dir, self.marker = str(out_dir), str(marker)

    def setup(self, worker):
        if os.path.exists(self.marker):
            return

        def watch():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if worker.state.executing_count and any(p.endswith(".h5.partial") for p in os.listdir(self.out_dir)):
                    try:
                        os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                    except FileExistsError:
                        return
                    os._exit(1)
                time.sleep(0.002)

        threading.Thread(target=watch, daemon=True).start()


@pytest.fixture
def by_value():
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


def test_each_worker_builds_its_model_once(client, slides, tmp_path, by_value):
    log = tmp_path / "fits.log"
    res = extract_slide_features_many(slides, CountingColor(log_file=str(log)), tmp_path / "out", client=client,
                                      progress=False, **KW)
    assert [r.status for r in res] == ["written"] * 4
    fits = log.read_text().split()
    workers = {r.worker for r in res}
    assert set(client.run(os.getpid).keys()) >= workers
    # one build per worker process that ran slides, not one per slide
    assert len(fits) == len(set(fits)) == len(workers) <= 2


def test_rerun_skips_finished_stores_and_resumes_partial_ones(client, slides, reference, tmp_path):
    out = tmp_path / "out"
    first = extract_slide_features_many(slides[:3], ColorFeatures(), out, client=client, progress=False, **KW)
    assert [r.status for r in first] == ["written"] * 3
    finished = (out / "slide0.h5").stat().st_mtime_ns
    # slide1: an interrupted run left a partial store with half of its rows marked done
    (out / "slide1.h5").rename(out / "slide1.h5.partial")
    with h5py.File(out / "slide1.h5.partial", "a") as f:
        n = int(f.attrs["n_patches"])
        f.attrs["n_done"] = (n // 2) // 16 * 16
        f["features"][f.attrs["n_done"]:] = -1  # rows after n_done must be recomputed, not kept
        del f.attrs["complete"]
    (out / "slide2.h5").unlink()
    again = extract_slide_features_many(slides[:3], ColorFeatures(), out, client=client, progress=False, **KW)
    assert [r.status for r in again] == ["skipped", "written", "written"]
    assert (out / "slide0.h5").stat().st_mtime_ns == finished
    for stem in ("slide1", "slide2"):
        _assert_same_store(out / f"{stem}.h5", reference / f"{stem}.h5")


def test_killed_worker_is_replaced_and_results_are_identical(client, slides, reference, tmp_path, by_value):
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "killed"
    pids_before = set(client.run(os.getpid).values())
    client.register_plugin(ExitDuringExtraction(out, marker), name="exit-once")
    try:
        res = extract_slide_features_many(slides, ColorFeatures(), out, client=client, progress=False, **KW)
    finally:
        client.unregister_worker_plugin("exit-once")
    assert marker.exists(), "no worker was killed: the test did not test anything"
    client.wait_for_workers(2, timeout=120)
    assert set(client.run(os.getpid).values()) != pids_before  # a new worker process replaced the dead one
    assert [r.status for r in res] == ["written"] * 4
    for s in slides:
        stem = Path(s).stem
        _assert_same_store(out / f"{stem}.h5", reference / f"{stem}.h5")
    assert not list(out.glob("*.partial"))


def test_heatmaps_on_workers_equal_single_process(client, slides, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
    model = make_pipeline(ColorFeatures(), LogisticRegression()).fit(train, train.mean(axis=(1, 2, 3)) > 127)
    res = heatmap_slides_many(model, slides[1:3], tmp_path / "maps", client=client, mpp=1.0, size=32,
                              progress=False)
    assert [r.status for r in res] == ["written"] * 2 and len(res[0].outputs) == 4
    for s in slides[1:3]:
        expected = SlideHeatmap(model, mpp=1.0, size=32, progress=False).predict(s)
        np.testing.assert_array_equal(np.load(tmp_path / "maps" / f"{Path(s).stem}.npy"), expected.to_array())
    rows, doc = _summary(tmp_path / "maps", "heatmap-summary")
    assert doc["n_written"] == 2 and set(rows) == {"slide1", "slide2"}


# ---------------------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------------------


def test_cli_scale_out_options():
    from medfeat.cli import build_parser

    for cmd in (["extract", "s.tif", "--out", "o"], ["heatmap", "m.skops", "s.tif", "--out", "o"]):
        args = build_parser().parse_args(cmd)
        assert (args.scheduler, args.reader_threads, args.retries) == (None, "auto", 2)
        args = build_parser().parse_args([*cmd, "--workers", "3", "--scheduler", "local:2", "--retries", "0"])
        assert (args.scheduler, args.reader_threads, args.retries) == ("local:2", 3, 0)  # --workers: old name
        assert build_parser().parse_args([*cmd, "--reader-threads", "4"]).reader_threads == 4


def test_cli_local_cluster_equals_single_process_and_isolates_failures(slides, reference_cli, tmp_path):
    single = reference_cli
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(b"II*\x00garbage")
    out = tmp_path / "dask"
    r = _cli("extract", *slides, bad, "--out", out, *CLI_KW, "--scheduler", "local:2", "--retries", "1")
    assert r.returncode == 1, r.stderr  # one slide failed: non-zero, the others are written
    assert "1 of 5 slides failed" in r.stderr and "corrupt.tif" in r.stderr
    assert "Dask dashboard: http://127.0.0.1:" in r.stderr  # the LocalCluster's, on a free port
    for s in slides:
        stem = Path(s).stem
        assert _md5(out / f"{stem}.h5") == _md5(single / f"{stem}.h5"), stem  # byte-identical HDF5
    rows, doc = _summary(out)
    assert rows["corrupt"]["status"] == "failed" and rows["corrupt"]["attempts"] == "2" and rows["corrupt"]["error"]
    assert [rows[Path(s).stem]["status"] for s in slides] == ["written"] * 4
    assert doc["scheduler"] == "local:2" and doc["n_failed"] == 1


def test_cli_against_real_scheduler_and_worker_processes(slides, reference_cli, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from medfeat.pipelines import save_model

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    # loopback only: --no-dashboard still serves /health on 0.0.0.0:8787 unless given an address
    common = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--host", "127.0.0.1"]
    logs = [open(tmp_path / "scheduler.log", "w"), open(tmp_path / "worker.log", "w")]
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--port", str(port), *common],
                                      env=_env(), stdout=logs[0], stderr=subprocess.STDOUT))
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nworkers", "1",
                                       "--nthreads", "1", "--memory-limit", "2GiB", *common],
                                      env=_env(), stdout=logs[1], stderr=subprocess.STDOUT))
        with distributed.Client(address, timeout="60s") as c:
            c.wait_for_workers(1, timeout=120)
        single = reference_cli
        out = tmp_path / "dask"
        r = _cli("extract", *slides[:2], "--out", out, *CLI_KW, "--scheduler", address)
        assert r.returncode == 0, r.stderr
        assert "Dask dashboard" not in r.stderr  # the scheduler runs without one: no dead link printed
        for s in slides[:2]:
            stem = Path(s).stem
            assert _md5(out / f"{stem}.h5") == _md5(single / f"{stem}.h5")
        rows, doc = _summary(out)
        assert doc["scheduler"] == address and {rows[k]["worker"] for k in rows} != {"local"}

        rng = np.random.default_rng(1)
        train = rng.integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
        model = make_pipeline(ColorFeatures(), LogisticRegression()).fit(train, train.mean(axis=(1, 2, 3)) > 127)
        save_model(model, tmp_path / "m.skops", metadata={"mpp": 1.0, "size": 32})
        maps = tmp_path / "maps"
        r = _cli("heatmap", tmp_path / "m.skops", slides[0], "--out", maps, "--scheduler", address, "-q")
        assert r.returncode == 0, r.stderr
        expected = SlideHeatmap(model, mpp=1.0, size=32, progress=False).predict(slides[0])
        np.testing.assert_allclose(np.load(maps / "slide0.npy"), expected.to_array(), rtol=0, atol=1e-12)
        assert {p.name for p in maps.iterdir()} >= {"slide0.png", "slide0.geojson", "slide0_scores.csv"}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=30)
        for fh in logs:
            fh.close()
