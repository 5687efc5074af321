"""Execution back-ends of :class:`medfeat.features.DeepFeatures` besides eager PyTorch.

- ``"onnx"``: the traced extractor (pooling included) exported with ``torch.onnx.export`` and run by
  ONNX Runtime's CPU provider, fp32 or int8 (static post-training quantisation, QDQ format, per-channel
  weights, activation ranges calibrated on the images given to ``fit``). ONNX Runtime fuses batch norm
  into convolutions and uses its own blocked-layout kernels; on the 2-core development machines it
  was the fastest exact path (benchmarks/results/peers.md).
- ``"compile"``: ``torch.compile`` (Inductor) with weight freezing; batches are padded to the batch size
  so one compiled graph serves every batch.

onnxruntime is an optional dependency (``pip install medfeat[onnx]``); torch and onnxruntime are imported
inside functions only.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np

from medfeat._checks import optional_import

# Relative feature tolerance of an "exact-enough" runtime: max |f - f_eager_fp32| / max |f_eager_fp32|.
# fp32 re-orderings (ONNX Runtime, Inductor) stay near 1e-6; bf16 (~1e-2) and int8 (~4e-2) do not.
EXACT_RTOL = 1e-4


def onnxruntime_available():
    """True when onnxruntime can be imported (cheap: looks the package up without importing it)."""
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def _ort():
    return optional_import("onnxruntime", purpose="DeepFeatures(runtime='onnx'); or pip install medfeat[onnx]")


class _NHWCWrapper:
    """Builds a module mapping a normalised NHWC float batch to the pooled outputs, in alias order."""

    @staticmethod
    def make(extractor, aliases):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.extractor = extractor

            def forward(self, x):
                out = self.extractor(x.permute(0, 3, 1, 2))
                return tuple(out[a] for a in aliases)

        return Wrapped().eval()


def export_onnx(extractor, aliases, size):
    """ONNX bytes of ``extractor`` taking an (N, H, W, 3) normalised float32 batch.

    The batch dimension is dynamic; so are H and W when the traced model allows it (pooled outputs
    do not depend on them). Uses the TorchScript-based exporter, which traces a fixed graph in seconds;
    the new dynamo exporter took far longer on the same models and gave the same numbers.
    """
    import torch

    module = _NHWCWrapper.make(extractor, aliases)
    h, w = (int(v) for v in size)
    sample = torch.zeros((2, h, w, 3), dtype=torch.float32)
    outputs = [f"out{i}" for i in range(len(aliases))]
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings of the exporter
        torch.onnx.export(
            module, (sample,), buffer, dynamo=False, input_names=["x"], output_names=outputs,
            dynamic_axes={"x": {0: "n", 1: "h", 2: "w"}, **{o: {0: "n"} for o in outputs}},
            opset_version=17, do_constant_folding=True,
        )
    return buffer.getvalue()


def _cpu_count():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _has_vnni():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split()
                    return "avx512_vnni" in flags or "avx_vnni" in flags
    except OSError:
        pass
    return False


def quantize_int8(model_bytes, calibration):
    """Static int8 quantisation (QDQ, per-channel weights) calibrated on ``calibration`` batches.

    ``calibration`` is a list of (n, h, w, 3) float32 arrays. Without VNNI instructions, x86 int8
    kernels can saturate; weights are then quantised to 7 bits (``reduce_range``), as ONNX Runtime advises.
    """
    import tempfile

    _ort()
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"x": np.ascontiguousarray(b, dtype=np.float32)} for b in calibration])

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory(prefix="medfeat-int8-") as tmp:
        src, pre, dst = (os.path.join(tmp, n) for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        with open(src, "wb") as f:
            f.write(model_bytes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(src, pre, skip_symbolic_shape=True)
            quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            reduce_range=not _has_vnni())
        with open(dst, "rb") as f:
            return f.read()


class OrtExtractor:
    """Callable like the torch extractor: channels-last NCHW float tensor -> {alias: (N, D) tensor}."""

    def __init__(self, model_bytes, aliases, threads=None):
        ort = _ort()
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or _cpu_count())
        options.inter_op_num_threads = 1
        # Idle ONNX Runtime threads spin by default: that steals the cores the slide readers need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        self.aliases = list(aliases)

    def __call__(self, x):
        import torch

        # x is NCHW over NHWC memory (see deep._prepare): the NHWC view is contiguous, no copy.
        nhwc = x.permute(0, 2, 3, 1)
        if not nhwc.is_contiguous():
            nhwc = nhwc.contiguous()
        outs = self.session.run(None, {"x": nhwc.detach().numpy()})
        return {a: torch.from_numpy(o) for a, o in zip(self.aliases, outs)}


def compile_extractor(extractor):
    """``torch.compile`` (Inductor, frozen weights) of the extractor; compiled on the first batch."""
    import torch

    return torch.compile(extractor, options={"freezing": True})
