"""DeepFeatures runtimes and precisions (eager, compile, ONNX Runtime fp32/int8) and the malloc tuning.

Features of every exact runtime are checked against eager fp32 on the same images; int8 against eager with
a loose bound and a correlation. ONNX tests skip when onnxruntime is not installed; the compile test
(the non-eager path available wherever torch is) skips only without a C++ compiler.
"""

import os
import pickle
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from medfeat.features import DeepFeatures
from medfeat.features.deep import _resolve_runtime

torch = pytest.importorskip("torch")

TINY = dict(backbone="torchvision:resnet18", weights=None, input_size=None, batch_size=4)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


# -- resolution rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "runtime, precision, device, onnx, expected",
    [
        ("auto", "auto", "cpu", True, ("onnx", "fp32")),
        ("auto", "auto", "cpu", False, ("eager", "fp32")),
        ("auto", "int8", "cpu", True, ("onnx", "int8")),
        ("auto", "bf16", "cpu", True, ("eager", "bf16")),
        ("compile", "fp16", "cpu", True, ("compile", "fp16")),
        ("eager", "auto", "cpu", True, ("eager", "fp32")),
        ("auto", "auto", "cuda", True, ("eager", "bf16")),
        ("compile", "fp32", "cuda", True, ("compile", "fp32")),
    ],
)
def test_runtime_resolution(monkeypatch, runtime, precision, device, onnx, expected):
    from medfeat.features import _runtime

    monkeypatch.setattr(_runtime, "onnxruntime_available", lambda: onnx)
    assert _resolve_runtime(runtime, precision, torch.device(device)) == expected


@pytest.mark.parametrize(
    "runtime, precision, device, match",
    [
        ("eager", "int8", "cpu", "int8.*ONNX Runtime"),
        ("onnx", "bf16", "cpu", "fp32 or int8"),
        ("onnx", "fp32", "cuda", "CPU"),
        ("auto", "int8", "cuda", "CPU"),
        ("tensorrt", "fp32", "cpu", "runtime must be one of"),
        ("eager", "int4", "cpu", "precision must be one of"),
    ],
)
def test_runtime_resolution_errors(runtime, precision, device, match):
    with pytest.raises(ValueError, match=match):
        _resolve_runtime(runtime, precision, torch.device(device))


def test_int8_needs_calibration_images():
    with pytest.raises(ValueError, match="calibrates"):
        DeepFeatures(precision="int8").fit()


# -- non-eager runtimes against eager fp32 ---------------------------------------------------------------


@pytest.fixture(scope="module")
def eager_ref(images):
    return DeepFeatures(runtime="eager", layers="layer1", **TINY).fit(images).transform(images)


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="torch.compile needs a C++ compiler")
def test_compile_matches_eager_and_pads_the_last_batch(images, eager_ref):
    # 5 images in batches of 4: the second batch is padded to 4 and cut back
    deep = DeepFeatures(runtime="compile", layers="layer1", **TINY).fit(images)
    assert deep.runtime_ == "compile"
    out = deep.transform(images)
    assert out.shape == eager_ref.shape
    assert _rel(out, eager_ref) < 1e-4


def test_onnx_matches_eager_and_survives_pickling(images, eager_ref):
    pytest.importorskip("onnxruntime")
    deep = DeepFeatures(runtime="onnx", layers="layer1", **TINY).fit(images)
    assert (deep.runtime_, deep.precision_) == ("onnx", "fp32")
    out = deep.transform(images)
    assert _rel(out, eager_ref) < 1e-4
    # the same rows one by one (dynamic batch axis) and after a pickle round trip (re-exported)
    assert _rel(np.concatenate([deep.transform(images[i:i + 1]) for i in range(len(images))]), eager_ref) < 1e-4
    again = pickle.loads(pickle.dumps(deep))
    np.testing.assert_allclose(again.transform(images), out, rtol=0, atol=1e-6)


def test_auto_decides_once_in_fit_whatever_the_number_of_images(monkeypatch, images, eager_ref):
    # The runtime must not change with the images seen: otherwise an image's features would depend on
    # the order of the slides, on where a run resumed and on how slides were spread over workers.
    import sys

    pytest.importorskip("onnxruntime")
    deep = DeepFeatures(layers="layer1", **TINY).fit(images)  # runtime="auto", CPU, onnxruntime installed
    assert deep.runtime_ == "onnx"
    first = deep.transform(images)
    for _ in range(3):
        np.testing.assert_array_equal(deep.transform(images), first)
    assert deep.runtime_ == "onnx"
    assert _rel(first, eager_ref) < 1e-4
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed: "auto" is eager, bit for bit
    plain = DeepFeatures(layers="layer1", **TINY).fit(images)
    assert plain.runtime_ == "eager"
    np.testing.assert_array_equal(plain.transform(images), eager_ref)


def test_onnx_other_input_size(images):
    # the exported graph has dynamic height and width: a different patch size still works
    pytest.importorskip("onnxruntime")
    deep = DeepFeatures(runtime="onnx", layers="layer2", **TINY).fit(images)
    big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)
    ref = DeepFeatures(runtime="eager", layers="layer2", **TINY).fit(images).transform(big)
    assert _rel(deep.transform(big), ref) < 1e-4


def test_int8_is_close_to_fp32_and_keeps_its_calibration(images, eager_ref):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    calib = np.concatenate([images, images[:, ::-1], images[:, :, ::-1]])
    deep = DeepFeatures(precision="int8", layers="layer1", **TINY).fit(calib)
    assert (deep.runtime_, deep.precision_) == ("onnx", "int8")
    assert isinstance(deep.int8_model_, bytes)
    out = deep.transform(images)
    # quantisation moves features by a few percent, not more; they stay the same features
    assert _rel(out, eager_ref) < 0.25
    assert np.corrcoef(out.ravel(), eager_ref.ravel())[0, 1] > 0.98
    # the calibrated model travels in the pickle (it cannot be rebuilt without the calibration images)
    again = pickle.loads(pickle.dumps(deep))
    np.testing.assert_array_equal(again.transform(images), out)


def test_bf16_autocast_on_cpu_is_close(images, eager_ref):
    out = DeepFeatures(runtime="eager", precision="bf16", layers="layer1", **TINY).fit(images).transform(images)
    assert 0 < _rel(out, eager_ref) < 0.1  # bf16 has 8 bits of mantissa: different, but close


def test_batch_size_auto():
    from medfeat.features.deep import _batch_size_for_memory

    # half of 8 GiB free at 100 MiB per image: 40 images; never below 1 or above the cap
    assert _batch_size_for_memory(8 << 30, 100 << 20) == 40
    assert _batch_size_for_memory(1 << 20, 100 << 20) == 1
    assert _batch_size_for_memory(80 << 30, 1 << 20) == 1024
    deep = DeepFeatures(runtime="eager", layers="layer1", **{**TINY, "batch_size": "auto"}).fit()
    assert deep.batch_size_ == 32  # on the CPU
    with pytest.raises(ValueError, match="batch_size"):
        DeepFeatures(batch_size="big").fit()


# -- malloc tuning ----------------------------------------------------------------------------------------

_MALLOC_PROBE = textwrap.dedent("""
    import ctypes, json, sys
    class Mallinfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = Mallinfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    def mmapped_by_64mib_block():
        before = libc.mallinfo2().hblkhd
        p = libc.malloc(64 << 20)
        grown = libc.mallinfo2().hblkhd - before
        libc.free(p)
        return grown
    import medfeat.features
    from medfeat.features import _malloc
    out = {"after_import": _malloc.malloc_tuning(), "mmapped_before": mmapped_by_64mib_block()}
    if sys.argv[1] == "fit":
        import numpy as np
        from medfeat.features import DeepFeatures
        DeepFeatures("torchvision:resnet18", weights=None, layers="layer1", input_size=None, runtime="eager").fit()
    else:
        _malloc.tune_malloc()
    out["applied"] = _malloc.malloc_tuning()
    out["mmapped_after"] = mmapped_by_64mib_block()
    print(json.dumps(out))
""")


def _malloc_probe(mode, env):
    import json

    proc = subprocess.run([sys.executable, "-c", _MALLOC_PROBE, mode], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_malloc_tuning_keeps_big_blocks_in_the_heap():
    import ctypes

    if not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("glibc < 2.33 has no mallinfo2 to observe the allocator with")
    on = _malloc_probe("fit", {"MEDFEAT_TUNE_MALLOC": "1"})
    # importing medfeat changes nothing; glibc serves a 64 MiB block by mmap by default
    assert on["after_import"] is None
    assert on["mmapped_before"] >= 64 << 20
    # the first DeepFeatures fit tunes malloc: the same block now comes from the heap
    assert on["applied"]["mmap_threshold"] > 64 << 20
    assert on["mmapped_after"] == 0
    off = _malloc_probe("tune", {"MEDFEAT_TUNE_MALLOC": "0"})
    assert off["applied"] is None
    assert off["mmapped_after"] >= 64 << 20


def test_auto_falls_back_to_eager_when_the_export_fails(monkeypatch, images, eager_ref):
    # runtime="auto" may pick ONNX Runtime, but a network that does not export must still work (eager);
    # an explicit runtime="onnx" keeps the error.
    pytest.importorskip("onnxruntime")
    original = DeepFeatures._runtime_extractor

    def no_export(self, extractor, runtime, *args, **kwargs):
        if runtime == "onnx":
            raise RuntimeError("cannot export adaptive_avg_pool2d")
        return original(self, extractor, runtime, *args, **kwargs)

    monkeypatch.setattr(DeepFeatures, "_runtime_extractor", no_export)
    deep = DeepFeatures(layers="layer1", **TINY).fit(images)
    assert deep.runtime_ == "eager"
    np.testing.assert_array_equal(deep.transform(images), eager_ref)
    with pytest.raises(RuntimeError, match="cannot export"):
        DeepFeatures(runtime="onnx", layers="layer1", **TINY).fit(images)
