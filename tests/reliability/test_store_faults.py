"""Issue 10 items 1, 2, 3, 6, 7 and the "never a final-named incomplete store" promise.

At commit 1e25e0f: a feature store could name any ``sklearn.``/``medfeat.`` callable for ``train`` to call
(code execution); a full disk published a store of zero rows under its final name; a second concurrent run
deleted the first's partial file; a different slide with the same file name was "skipped" or overwrote the
first; a partial store was resumed after its annotations were edited or its slide replaced.

The subprocess tests kill (SIGKILL, SIGINT) an extraction mid-way, run a second extraction of the same
store concurrently, and compare the final store with an uninterrupted run, array for array.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from medfeat.pipelines import extract_features, extract_slide_features, load_slide_features, train_from_feature_stores
from medfeat.slides import write_synthetic_slide

REPO = Path(__file__).resolve().parents[2]
SQUARE = [[200, 200], [700, 200], [700, 700], [200, 700]]
SETTINGS = dict(mpp=1.0, size=32, tissue=None, batch_size=16, chunk_size=16, progress=False, num_workers=1)


def _slide(path, seed=0, lesions=(SQUARE,)):
    return write_synthetic_slide(path, size=(1024, 1024), mpp=0.5, lesions=list(lesions), seed=seed)


def _same_store(a, b):
    ga, Xa, la, aa = load_slide_features(a)
    gb, Xb, lb, ab = load_slide_features(b)
    assert np.array_equal(ga.coords, gb.coords)
    assert np.array_equal(Xa, Xb)
    assert (la is None and lb is None) or np.array_equal(la, lb)
    assert aa["transformer"] == ab["transformer"]


def _partials(d):
    return sorted(p.name for p in Path(d).glob("*.partial"))


# ------------------------------------------------------------------ item 1: no code from a store


def test_store_naming_a_code_running_callable_is_refused(tmp_path):
    s = _slide(tmp_path / "s.tif")
    store = extract_slide_features(s.path, "color", out=tmp_path / "f", annotations=s.lesions, **SETTINGS)
    marker = tmp_path / "pwned"
    hostile = {"__class__": "sklearn.utils._testing.assert_run_python_script_without_output",
               "params": {"source_code": f"open({str(marker)!r}, 'w').write('x')", "pattern": ".*"}}
    with h5py.File(store, "a") as f:
        f.attrs["transformer"] = json.dumps(hostile)
    with pytest.raises(ValueError, match="refusing to rebuild 'sklearn.utils._testing"):
        train_from_feature_stores(tmp_path / "f", classifier="logreg", cv=2)
    assert not marker.exists()


@pytest.mark.parametrize("config, message", [
    ({"__class__": "medfeat.features.ColorFeatures", "params": {"evil": 1}}, "no parameter 'evil'"),
    ({"__class__": "medfeat.features.MultiScaleFeatures",
      "params": {"transformer": {"__class__": "builtins.eval", "params": {}}}}, "refusing to rebuild 'builtins.eval'"),
    ({"__class__": "sklearn.pipeline.Pipeline",
      "params": {"steps": {"__steps__": [["c", {"__class__": "medfeat.features.ColorFeatures", "params": {}}]]},
                 "memory": "/tmp/cache"}}, "memory=None"),
    ({"__class__": "medfeat.pipelines.config.estimator_from_config", "params": {}}, "refusing to rebuild"),
])
def test_rebuild_checks_class_parameters_and_nesting(config, message):
    from medfeat.pipelines.config import estimator_from_config

    with pytest.raises(ValueError, match=message):
        estimator_from_config(config)


def test_own_transformer_is_checked_against_the_store(tmp_path):
    from medfeat.features import ColorFeatures, LBPHistogram

    s = _slide(tmp_path / "s.tif")
    extract_slide_features(s.path, "color", out=tmp_path / "f", annotations=s.lesions, **SETTINGS)
    res = train_from_feature_stores(tmp_path / "f", classifier="logreg", cv=2, features=ColorFeatures())
    assert type(res.model.features).__name__ == "ColorFeatures"
    with pytest.raises(ValueError, match="not the transformer the stores were extracted with"):
        train_from_feature_stores(tmp_path / "f", classifier="logreg", cv=2, features=LBPHistogram())


# ------------------------------------------------------------------ item 2: write errors


def test_a_silently_lost_write_is_caught_before_the_rename(tmp_path, monkeypatch):
    # h5py swallowed the disk-full errors of evicted chunks: simulate rows that never reach the file
    s = _slide(tmp_path / "s.tif")
    original = h5py.Dataset.__setitem__
    calls = {"n": 0}

    def lossy(self, key, value):
        calls["n"] += 1
        if self.name == "/features" and calls["n"] % 3 == 0:
            return None  # the write is lost without an error
        return original(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", lossy)
    out = tmp_path / "f"
    with pytest.raises(OSError, match="s.h5.*differ from the rows computed"):
        extract_slide_features(s.path, "color", out=out, **SETTINGS)
    assert not (out / "s.h5").exists() and _partials(out) == []
    monkeypatch.setattr(h5py.Dataset, "__setitem__", original)
    extract_slide_features(s.path, "color", out=tmp_path / "ref", **SETTINGS)
    extract_slide_features(s.path, "color", out=out, **SETTINGS)
    _same_store(out / "s.h5", tmp_path / "ref" / "s.h5")


def _mount_tmpfs(path, size):
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode(errors='replace').strip()}")


def test_disk_full_on_a_small_tmpfs_publishes_nothing_and_exits_non_zero(tmp_path):
    s = write_synthetic_slide(tmp_path / "big.tif", size=(2048, 2048), mpp=0.5, seed=0)
    full = tmp_path / "full"
    _mount_tmpfs(full, "256k")
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.run([sys.executable, "-m", "medfeat.cli", "extract", str(s.path), "--out", str(full),
                               "--features", "lbp", "--mpp", "0.5", "--size", "32", "--tissue", "none", "-q"],
                              capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])  # not 0, not a segfault (139/-11)
        assert "No space left on device" in proc.stderr and "big.h5" in proc.stderr
        assert not (full / "big.h5").exists() and _partials(full) == []
    finally:
        subprocess.run(["umount", str(full)], check=False)


# ------------------------------------------------------------------ kill -9 / Ctrl-C / concurrent runs

SLOW = textwrap.dedent("""
    import os, signal, sys, time
    # Ctrl-C as in a terminal: a child started from a background job inherits SIGINT ignored (POSIX), and Python
    # then installs no KeyboardInterrupt handler, so the test's SIGINT would be lost (seen under `nohup ... &`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from medfeat.features import ColorFeatures
    from medfeat.pipelines import extract_slide_features
    slide, out, delay, lock_timeout, release = sys.argv[1:6]
    delay, calls = float(delay), [0]
    transform = ColorFeatures.transform
    def slow(self, X):
        time.sleep(delay)
        calls[0] += 1
        while release != "-" and calls[0] > 2 and not os.path.exists(release):
            time.sleep(0.05)  # hold the store (and its lock) until the test says so
        return transform(self, X)
    ColorFeatures.transform = slow
    extract_slide_features(slide, "color", out=out, mpp=1.0, size=32, tissue=None, batch_size=16, chunk_size=16,
                           progress=False, num_workers=1,
                           lock_timeout=None if lock_timeout == "wait" else float(lock_timeout))
    print("DONE")
""")


def _run_slow(tmp_path, slide, out, delay, lock_timeout="wait", release="-"):
    script = tmp_path / "slow_extract.py"
    script.write_text(SLOW)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, str(script), str(slide), str(out), str(delay), lock_timeout,
                             str(release)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_rows(partial, rows, proc, timeout=120):
    """Until the writer has checkpointed at least ``rows`` rows (read without HDF5's file lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if partial.exists():
            try:
                with h5py.File(partial, "r", locking=False) as f:
                    if int(f.attrs.get("n_done", 0)) >= rows:
                        return
            except (OSError, KeyError):
                pass
        time.sleep(0.05)
    raise AssertionError(f"{partial} never reached {rows} rows")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_extraction_leaves_no_final_store_and_resumes_identically(tmp_path, sig, caplog):
    s = _slide(tmp_path / "s.tif")
    ref = extract_slide_features(s.path, "color", out=tmp_path / "ref", **SETTINGS)
    out = tmp_path / "out"
    proc = _run_slow(tmp_path, s.path, out, delay=0.2)
    _wait_for_rows(out / "s.h5.partial", 48, proc)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert not (out / "s.h5").exists() and (out / "s.h5.partial").exists()
    caplog.set_level("INFO", logger="medfeat.pipelines.store")
    extract_slide_features(s.path, "color", out=out, **SETTINGS)
    assert any("resuming" in r.getMessage() for r in caplog.records)
    _same_store(out / "s.h5", ref)
    assert _partials(out) == []


def test_a_concurrent_second_run_waits_for_the_first(tmp_path):
    s = _slide(tmp_path / "s.tif")
    ref = extract_slide_features(s.path, "color", out=tmp_path / "ref", **SETTINGS)
    out = tmp_path / "out"
    release = tmp_path / "release"
    first = _run_slow(tmp_path, s.path, out, delay=0.0, release=release)  # holds the store until released
    _wait_for_rows(out / "s.h5.partial", 16, first)
    second = _run_slow(tmp_path, s.path, out, delay=0.0)
    waiting = second.stderr.readline()  # the second run says it waits (blocks until it does)
    release.write_text("go")
    out2, err2 = second.communicate(timeout=300)
    err2 = waiting + err2
    out1, err1 = first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, (err1[-2000:], err2[-2000:])
    assert "being written by another process" in err2, (out2, err2, out1, err1)
    _same_store(out / "s.h5", ref)
    assert _partials(out) == []


def test_a_concurrent_second_run_can_skip_with_a_clear_message(tmp_path):
    s = _slide(tmp_path / "s.tif")
    out = tmp_path / "out"
    release = tmp_path / "release"
    first = _run_slow(tmp_path, s.path, out, delay=0.0, release=release)
    try:
        _wait_for_rows(out / "s.h5.partial", 16, first)
        from medfeat.pipelines.store import StoreBusyError

        with pytest.warns(RuntimeWarning, match="being written by another process"):
            res = extract_features([s.path], "color", out, lock_timeout=0, **{k: v for k, v in SETTINGS.items()})
        assert res[0].status == "failed" and "skipped" in res[0].error
        with pytest.raises(StoreBusyError, match="being written by another process"):
            extract_slide_features(s.path, "color", out=out, lock_timeout=0, **SETTINGS)
    finally:
        release.write_text("go")
        first.communicate(timeout=300)
    assert first.returncode == 0 and (out / "s.h5").exists()


# ------------------------------------------------------------------ item 6: slide identity


def test_another_slide_with_the_same_name_is_refused_not_skipped(tmp_path):
    a = _slide(tmp_path / "a" / "slide.tif", seed=0)
    b = _slide(tmp_path / "b" / "slide.tif", seed=1)
    out = tmp_path / "f"
    first = extract_slide_features(a.path, "color", out=out, **SETTINGS)
    before = load_slide_features(first)[1]
    with pytest.raises(ValueError, match="another slide with the same name"):
        extract_slide_features(b.path, "color", out=out, **SETTINGS)
    assert np.array_equal(load_slide_features(first)[1], before)
    # the same slide again is skipped; a batch with both names the collision
    assert extract_slide_features(a.path, "color", out=out, **SETTINGS) == first
    with pytest.warns(RuntimeWarning):
        res = extract_features([a.path, b.path], "color", tmp_path / "g", **{k: v for k, v in SETTINGS.items()
                                                                            if k != "progress"}, progress=False)
    assert [r.status for r in res] == ["written", "failed"] and "same name" in res[1].error


def test_heatmap_refuses_slides_with_the_same_name(tmp_path, capsys):
    from medfeat.cli import main

    a = tmp_path / "a" / "slide.tif"
    b = tmp_path / "b" / "slide.svs"
    rc = main(["heatmap", str(tmp_path / "model.skops"), str(a), str(b), "--out", str(tmp_path / "h"), "-q"])
    assert rc == 1 and "same name 'slide'" in capsys.readouterr().err


# ------------------------------------------------------------------ item 7: stale partial stores


def _interrupt_after(monkeypatch, batches):
    from medfeat.features import ColorFeatures

    transform = ColorFeatures.transform
    count = {"n": 0}

    def flaky(self, X):
        count["n"] += 1
        if count["n"] > batches:
            raise KeyboardInterrupt
        return transform(self, X)

    monkeypatch.setattr(ColorFeatures, "transform", flaky)


def test_resume_after_the_annotations_changed_starts_over(tmp_path, monkeypatch):
    s = _slide(tmp_path / "s.tif", lesions=())
    ann = tmp_path / "s.geojson"
    square = {"type": "Polygon", "coordinates": [[[0, 0], [400, 0], [400, 400], [0, 400], [0, 0]]]}
    ann.write_text(json.dumps(square))
    out = tmp_path / "f"
    with monkeypatch.context() as m:
        _interrupt_after(m, 3)
        with pytest.raises(KeyboardInterrupt):
            extract_slide_features(s.path, "color", out=out, annotations=ann, **SETTINGS)
    assert (out / "s.h5.partial").exists()
    square["coordinates"] = [[[600, 600], [1000, 600], [1000, 1000], [600, 1000], [600, 600]]]
    ann.write_text(json.dumps(square))  # edited in place: same path, other content
    store = extract_slide_features(s.path, "color", out=out, annotations=ann, **SETTINGS)
    ref = extract_slide_features(s.path, "color", out=tmp_path / "ref", annotations=ann, **SETTINGS)
    _same_store(store, ref)
    grid, _, labels, _ = load_slide_features(store)
    assert labels[(grid.coords[:, 0] < 300) & (grid.coords[:, 1] < 300)].sum() == 0


def test_resume_after_the_slide_was_replaced_starts_over(tmp_path, monkeypatch):
    path = tmp_path / "s.tif"
    _slide(path, seed=0)
    out = tmp_path / "f"
    with monkeypatch.context() as m:
        _interrupt_after(m, 3)
        with pytest.raises(KeyboardInterrupt):
            extract_slide_features(path, "color", out=out, **SETTINGS)
    with h5py.File(out / "s.h5.partial", "r") as f:
        assert int(f.attrs["n_done"]) >= 32
    _slide(path, seed=1)  # another slide at the same path, same size: the same grid (tissue=None)
    store = extract_slide_features(path, "color", out=out, **SETTINGS)
    ref = extract_slide_features(path, "color", out=tmp_path / "ref", **SETTINGS)
    _same_store(store, ref)
