"""Frozen ImageNet CNN layer embeddings as a scikit-learn transformer (Bar et al. 2015, DeCAF).

:class:`DeepFeatures` turns NHWC ``uint8`` image batches into pooled activations of any layer(s) of
a backbone from :mod:`medfeat.features.backbones`. The network is built in ``fit`` (nothing heavy in
``__init__``) and rebuilt after unpickling rather than pickled.

How a batch is processed (all tensor operations on the whole batch, no per-image PIL work):

0. float images in [0, 1] (e.g. radiographs windowed by :func:`medfeat.features.window_image` or
   read from DICOM by :func:`medfeat.datasets.load_image_folder`) are converted to ``uint8`` with
   ``round(x * 255)``, the 8-bit values an ImageNet network was trained on; 16-bit images are refused
   (window them first). So a radiograph goes: window -> [0, 1] -> 8 bits -> ``/ 255`` -> ImageNet
   mean/std normalisation;
1. the ``uint8`` NHWC slice is wrapped without a copy (``torch.from_numpy``; on CUDA it goes
   through a pinned buffer and a non-blocking copy);
2. it is viewed as NCHW, which is already channels-last in memory, and resized as ``uint8`` with
   antialiased bilinear interpolation when the patch size differs from the input size;
3. it is converted to float32 and normalised in place with torchvision's arithmetic (bit for bit
   ``ToTensor`` + ``Normalize``); the NHWC result is the channels-last NCHW input of the network;
4. the network is a torchvision ``create_feature_extractor`` graph cut after the last requested
   layer, with each requested activation pooled as soon as it is computed (so later in-place
   operations cannot alter it and big maps are not kept alive), under ``torch.inference_mode``,
   with bf16 autocast on CUDA;
5. pooled vectors are written into a preallocated float32 output: memory is bounded by one batch.

torch, torchvision and timm are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import namedtuple

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from medfeat._checks import check_image, check_image_batch, check_positive_int

from ._base import stack_if_same_shape
from ._malloc import tune_malloc

__all__ = ["DeepFeatures", "ImageNetPrediction", "predict_imagenet"]

logger = logging.getLogger(__name__)

_POOLS = ("avg", "max", "avgmax", "gem", "flatten")
_PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
_RUNTIMES = ("auto", "eager", "compile", "onnx")
_INT8_CALIBRATION_IMAGES = 64  # images of fit(X) used to calibrate int8 activation ranges
_GEM_P = 3.0  # generalised-mean exponent of Radenovic et al. (their fixed default)
_GEM_EPS = 1e-6

ImageNetPrediction = namedtuple("ImageNetPrediction", ["index", "name", "probability"])
ImageNetPrediction.__doc__ = "One of the top-k ImageNet classes of an image: class index, class name, softmax probability."


def _pool(x, mode):
    """Pool one activation to (N, D) float32.

    4-D maps are NCHW (pooled over H, W; ``flatten`` keeps C, H, W order, as AlexNet's own
    classifier does); 3-D tensors are (N, tokens, C) and pooled over tokens; 2-D vectors are kept.
    Called inside the extractor graph right after the layer, so the result must not alias ``x``.
    """
    import torch

    if x.dtype != torch.float32:
        x = x.float()  # pool bf16/fp16 activations in fp32
    if mode == "raw" or x.ndim == 2:  # "raw": the activation itself (used to probe shapes)
        return x.clone()
    if x.ndim not in (3, 4):
        raise ValueError(f"cannot pool an activation of shape {tuple(x.shape)}; expected 2-D, 3-D or 4-D.")
    if mode == "flatten":
        return x.contiguous().flatten(1).clone() if x.ndim == 4 else x.flatten(1).clone()
    dims = (2, 3) if x.ndim == 4 else (1,)
    if mode == "avg":
        return x.mean(dims)
    if mode == "max":
        return x.amax(dims)
    if mode == "avgmax":
        return torch.cat([x.mean(dims), x.amax(dims)], dim=1)
    # gem: activations below eps are clamped (the usual GeM definition, meant for post-ReLU maps).
    return x.clamp(min=_GEM_EPS).pow(_GEM_P).mean(dims).pow(1.0 / _GEM_P)


def _build_extractor(backbone, layers, pool):
    """A module mapping a normalised NCHW batch to {alias: pooled (N, D) tensor}.

    ``layers`` maps output aliases to layer names. Uses torchvision's ``create_feature_extractor``
    (with timm's leaf modules) and appends the pooling to the traced graph.
    """
    import torch
    from torchvision.models.feature_extraction import create_feature_extractor

    model = backbone.model.eval()
    backbone.layers  # noqa: B018 - traces once; sets backbone.traceable
    if not backbone.traceable:
        return _HookExtractor(model, layers, pool)
    return_nodes = {node: alias for alias, node in layers.items()}
    graph_module = create_feature_extractor(
        model, return_nodes=return_nodes, tracer_kwargs=backbone.tracer_kwargs or None, suppress_diff_warning=True
    )
    graph_module.eval()
    graph = graph_module.graph
    output = next(n for n in graph.nodes if n.op == "output")
    outputs = output.args[0]
    pooled = {}
    for alias, node in outputs.items():
        with graph.inserting_after(node):
            pooled[alias] = graph.call_function(_pool, (node, pool))
    output.args = ({alias: pooled[alias] for alias in layers},)
    graph.lint()
    # A plain GraphModule over the eval graph: DualGraphModule would swap graphs on .train().
    return torch.fx.GraphModule(graph_module, graph, class_name=f"{type(model).__name__}Features")


def _set_pool(extractor, pool):
    """Switch the pooling of a built extractor (fit probes shapes with "raw", then pools)."""
    if isinstance(extractor, _HookExtractor):
        extractor.pool = pool
        return extractor
    for node in extractor.graph.nodes:
        if node.op == "call_function" and node.target is _pool:
            node.args = (node.args[0], pool)
    extractor.recompile()
    return extractor


class _HookExtractor:
    """Fallback for models FX cannot trace: forward hooks pool each named module's output.

    Used only when tracing fails (Backbone.traceable is False); unlike the FX graph it runs the
    whole forward pass, since a hook cannot stop the model after the last requested layer.
    """

    def __init__(self, model, layers, pool):
        modules = dict(model.named_modules())
        self.model = model
        self.layers = layers
        self.pool = pool
        self._store = {}
        self._handles = []
        for alias, name in layers.items():
            self._handles.append(modules[name].register_forward_hook(self._hook(alias)))

    def _hook(self, alias):
        def hook(module, args, output):
            self._store[alias] = _pool(output, self.pool)

        return hook

    def to(self, *args, **kwargs):
        self.model.to(*args, **kwargs)
        return self

    def __call__(self, x):
        self._store = {}
        self.model(x)
        return {alias: self._store[alias] for alias in self.layers}


def _resolve_device(device):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:<i>' or 'mps', got {device!r}.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use device='auto' or 'cpu'.")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device={device!r} but MPS is not available here; use device='auto' or 'cpu'.")
    return dev


def _resolve_precision(precision, device):
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}.")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def _resolve_runtime(runtime, precision, device):
    """(runtime, precision) actually used; ``"auto"`` runtime is the fastest exact path available.

    On the CPU that is ONNX Runtime fp32 when onnxruntime is installed (features within
    ``EXACT_RTOL`` of eager fp32, measured faster: benchmarks/results/peers.md), else eager PyTorch.
    int8 runs only through ONNX Runtime on the CPU; bf16/fp16 only through PyTorch (autocast).
    """
    from ._runtime import onnxruntime_available

    if runtime not in _RUNTIMES:
        raise ValueError(f"runtime must be one of {_RUNTIMES}, got {runtime!r}.")
    precision = _resolve_precision(precision, device)
    if device.type != "cpu":
        if runtime == "onnx" or precision == "int8":
            raise ValueError(
                f"runtime={runtime!r}, precision={precision!r} on {device.type}: ONNX Runtime and int8 run on the "
                "CPU here (device='cpu'); on a GPU use runtime 'eager' or 'compile' with precision 'bf16'/'fp16'."
            )
        return ("eager" if runtime == "auto" else runtime), precision
    if precision == "int8":
        if runtime not in ("auto", "onnx"):
            raise ValueError(f"precision='int8' runs through ONNX Runtime: use runtime='onnx' (or 'auto'), "
                             f"not {runtime!r}.")
        return "onnx", precision
    if precision in ("bf16", "fp16"):
        if runtime == "onnx":
            raise ValueError(f"runtime='onnx' runs fp32 or int8 on the CPU, not precision={precision!r}; use "
                             "runtime='eager' or 'compile' for bf16/fp16 autocast.")
        return ("eager" if runtime == "auto" else runtime), precision
    if runtime == "auto":
        return ("onnx" if onnxruntime_available() else "eager"), precision
    return runtime, precision


def _autocast(precision, device):
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def _cpu_threads(device):
    """Use at most the CPUs this process may run on (containers often report the host's count)."""
    import torch

    if device.type != "cpu" or not hasattr(os, "sched_getaffinity"):
        yield
        return
    before = torch.get_num_threads()
    wanted = max(1, min(before, len(os.sched_getaffinity(0))))
    if wanted != before:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if wanted != before:
            torch.set_num_threads(before)


def _normaliser(mean, std, device):
    """Per-channel (mean, std) tensors, broadcasting over an NHWC batch."""
    import torch

    mean = torch.tensor(mean, dtype=torch.float32, device=device)
    std = torch.tensor(std, dtype=torch.float32, device=device)
    return mean, std


def _prepare(batch, size, mean, std, uint8_resize=None):
    """uint8 NHWC tensor -> normalised float32 NCHW tensor in channels-last memory.

    ``size`` is (h, w) or None. Grey (C=1) is replicated to 3 channels. ``uint8_resize``
    (default: on the CPU only) resizes before the float conversion; the GPU path resizes in float.
    The arithmetic is torchvision's ``ToTensor`` + ``Normalize`` (``x / 255``, then ``- mean``,
    then ``/ std``, each rounded to float32), so features are bit for bit those of that reference
    pipeline (one ulp of input difference grows to ~1e-5 in deep layers). The passes run in place
    on the NHWC batch seen as (N*H, W*3) rows, so the per-channel constants broadcast along a long
    contiguous row and vectorise (broadcasting a length-3 last axis, or a fused mixed-dtype
    ``addcmul``, measured several times slower); in all they cost about 1 % of a Lite0 forward pass.
    """
    import torch
    import torch.nn.functional as F

    x = batch.permute(0, 3, 1, 2)  # NCHW view of NHWC memory = channels_last
    if uint8_resize is None:
        uint8_resize = x.device.type == "cpu"
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        if uint8_resize:
            # uint8 antialiased bilinear has a dedicated fast CPU kernel (same filter as PIL's resize)
            # and moves 4x fewer bytes than resizing float32.
            x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
        else:
            x = F.interpolate(x.float(), size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    x = x.permute(0, 2, 3, 1)  # NHWC, contiguous
    if x.shape[-1] == 1:
        x = x.expand(-1, -1, -1, 3)  # grey -> RGB
    x = x.to(torch.float32, memory_format=torch.contiguous_format)
    n, h, w, c = x.shape
    rows = x.view(n * h, w * c)
    rows.div_(255.0)
    rows.sub_(mean.repeat(w)).div_(std.repeat(w))
    return x.permute(0, 3, 1, 2)  # NHWC memory = channels-last NCHW


def _staged(batches, device, pin):
    """Copy (start, uint8 batch) pairs to ``device`` through one reused (pinned, if ``pin``) buffer.

    The host-to-device copy is non-blocking. Reusing the buffer for the next batch is safe because
    the consumer reads each batch's features back with a synchronising ``.cpu()`` before asking
    for the next one.
    """
    import torch

    buffer = None
    for start, batch in batches:
        if buffer is None or buffer.shape[1:] != batch.shape[1:] or buffer.shape[0] < len(batch):
            buffer = torch.empty(tuple(batch.shape), dtype=batch.dtype)
            if pin:
                buffer = buffer.pin_memory()
        staged = buffer[: len(batch)]
        staged.copy_(batch)
        yield start, staged.to(device, non_blocking=pin)


def _batch_size_for_memory(free_bytes, per_image_bytes, fraction=0.5, cap=1024):
    """Images per batch so that a batch uses at most ``fraction`` of ``free_bytes`` (between 1 and ``cap``)."""
    return int(max(1, min(cap, (free_bytes * fraction) // max(1, per_image_bytes))))


def _as_batch(X, name="X"):
    """Checked batch: a uint8 NHWC array, or a list of HWC arrays stacked when they share a shape."""
    return stack_if_same_shape(check_image_batch(X, name=name))


class DeepFeatures(TransformerMixin, BaseEstimator):
    """Frozen ImageNet CNN layer activations, pooled, as features (Bar et al. 2015; DeCAF).

    Parameters
    ----------
    backbone : str, default "efficientnet_lite0"
        A name from :func:`~medfeat.features.list_backbones`: ``"efficientnet_lite0/1/2"`` (offline
        ImageNet weights), ``"torchvision:<name>"``, ``"timm:<name>"``.
    weights : str, path or None, default "DEFAULT"
        See :func:`~medfeat.features.load_backbone`: ``"DEFAULT"``, a weights/tag name, ``None``
        (random, seeded) or a local checkpoint path.
    layers : str, sequence of str, dict or None, default None
        Layer(s) to read, by FX node name or module path (see :func:`~medfeat.features.list_layers`);
        several are concatenated in the given order. A dict maps short aliases, used in the feature
        names, to layer names. None: the backbone's final feature map (its pooled embedding).
    pool : {"avg", "max", "avgmax", "gem", "flatten"}, default "avg"
        How a C x H x W map becomes a vector: global average, max, both concatenated (avg block then
        max block), generalised mean (p=3, on values clamped at 1e-6), or ``"flatten"`` (C*H*W
        values in C, H, W order, for fc-like use of a conv map). Token outputs (N, L, C) are pooled
        over tokens; vector outputs (e.g. fc layers) are used as they are.
    input_size : "auto", int, (int, int) or None, default "auto"
        Size images are resized to (antialiased bilinear): ``"auto"`` is the backbone's size (224
        for Lite0); None keeps the patch size (no resize).
    batch_size : int or "auto", default 32
        Images per forward pass; memory use is bounded by one batch. ``"auto"``: 32 on the CPU; on a
        GPU as many as half its free memory holds, from the peak memory of a probe batch of 2 at fit
        time (at most 1024).
    device : str, default "auto"
        ``"auto"`` uses CUDA when available, else the CPU; or ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    precision : {"auto", "fp32", "bf16", "fp16", "int8"}, default "auto"
        ``"auto"`` is bf16 autocast on CUDA and fp32 on the CPU. ``"bf16"``/``"fp16"``: PyTorch autocast
        (fast on GPUs and CPUs with AVX-512 BF16/AMX; slow on others). ``"int8"``: static post-training
        quantisation run by ONNX Runtime on the CPU, activation ranges calibrated on the images given to
        ``fit`` (required); features move by a few percent (see benchmarks/README.md). Features are
        always returned as float32.
    runtime : {"auto", "eager", "compile", "onnx"}, default "auto"
        What runs the network. ``"eager"``: PyTorch, channels-last. ``"compile"``: ``torch.compile``
        (Inductor, frozen weights; the first batch pays a compilation of tens of seconds; needs a C++
        compiler on the CPU). ``"onnx"``: exported to ONNX and run by ONNX Runtime on the CPU
        (``pip install medfeat[onnx]``; export takes a few seconds in ``fit``). ``"auto"``: on the CPU,
        ONNX Runtime for fp32/int8 when onnxruntime is installed, else ``"eager"``; on a GPU ``"eager"``.
        fp32 runtimes agree with eager fp32 to a relative ``1e-4`` of the features' largest value
        (measured: about 1e-6). ``"auto"`` decides once, in ``fit``, from the configuration and the
        installed packages only, never from how many images came: the features of an image do not depend
        on the order of the slides, on where a run resumed or on how slides were spread over workers.
        Installing ``medfeat[onnx]`` therefore makes every CPU fit pay the export (seconds to a minute).
        ``runtime_`` says which one runs.
    progress : bool, default True
        Show a tqdm bar over batches when a ``transform`` call has more than one batch (the default of
        every medfeat ``progress=``; a pipeline that feeds one batch at a time shows its own bar).

    Attributes
    ----------
    backbone_ : Backbone
        The loaded network (rebuilt lazily after unpickling).
    layers_ : dict
        Alias -> layer name actually used.
    input_size_ : tuple of int or None
        (h, w) images are resized to.
    layer_dims_ : dict
        Alias -> number of features of that layer.
    n_features_out_ : int
        Total number of features.
    device_, precision_, runtime_ : str
        Resolved device, precision and runtime.
    int8_model_ : bytes
        Only with ``precision="int8"``: the calibrated quantised ONNX model (kept in pickles, since it
        cannot be rebuilt without the calibration images).

    See Also
    --------
    list_backbones, list_layers : what can be used.
    MultiScaleFeatures : the same at several scales around one centre.
    predict_imagenet : what the backbone thinks an image is.

    Notes
    -----
    Grey images (C=1) are replicated to RGB. ``transform`` returns the same numbers whatever the
    batch size (up to float rounding). Pickles hold parameters and fitted metadata only; the network
    is rebuilt from ``backbone``/``weights`` on first use after loading (so a checkpoint path must
    still exist there).

    On the CPU the first fit or transform tunes glibc's malloc for large activations (see
    ``medfeat/features/_malloc.py``: freed activations stay in the heap instead of being unmapped and
    page-faulted in again every batch, worth ~1.2-1.5x on ResNet-50); ``MEDFEAT_TUNE_MALLOC=0`` in the
    environment switches it off.

    References
    ----------
    .. [1] Bar Y, Diamant I, Wolf L, Greenspan H. Deep learning with non-medical training used for chest
       pathology identification. Proc. SPIE Medical Imaging 9414 (2015). doi:10.1117/12.2083124
    .. [2] Tan M, Le QV. EfficientNet: rethinking model scaling for convolutional neural networks.
       ICML (2019).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    >>> deep = DeepFeatures(layers="blocks.2", input_size=None).fit(X)
    >>> deep.transform(X).shape
    (2, 40)
    >>> deep.get_feature_names_out()[0]
    'efficientnet_lite0.blocks.2__avg__0'
    """

    def __init__(
        self,
        backbone="efficientnet_lite0",
        weights="DEFAULT",
        layers=None,
        pool="avg",
        input_size="auto",
        batch_size=32,
        device="auto",
        precision="auto",
        runtime="auto",
        progress=True,
    ):
        self.backbone = backbone
        self.weights = weights
        self.layers = layers
        self.pool = pool
        self.input_size = input_size
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.runtime = runtime
        self.progress = progress

    @classmethod
    def bar2015(cls, weights="DEFAULT", **params):
        """DeCAF layers of Bar et al. (2015): AlexNet pool5 (9216), fc6 and fc7 after ReLU (4096 each).

        ``torchvision:alexnet`` at 224 px, ``layers={"pool5": "avgpool", "fc6": "classifier.2",
        "fc7": "classifier.5"}``, ``pool="flatten"``: 17408 features named ``alexnet.pool5__flatten__*``,
        ``alexnet.fc6__*``, ``alexnet.fc7__*``. (torchvision's ``avgpool`` is the identity on the 6x6
        pool5 map at 224 px and is what fc6 reads.) The default ImageNet weights are downloaded into
        the torch cache when online; pass a local file or ``weights=None`` otherwise.

        Parameters
        ----------
        weights : optional
            As for :class:`DeepFeatures`.
        **params
            Other :class:`DeepFeatures` parameters (``batch_size``, ``device``, ...).

        Examples
        --------
        >>> deep = DeepFeatures.bar2015(weights=None).fit()
        >>> deep.n_features_out_
        17408
        """
        settings = {
            "backbone": "torchvision:alexnet",
            "layers": {"pool5": "avgpool", "fc6": "classifier.2", "fc7": "classifier.5"},
            "pool": "flatten",
            "input_size": 224,
        }
        settings.update(params)
        return cls(weights=weights, **settings)

    # -- fitting -------------------------------------------------------------------------------
    def _validate_params(self, X=None):
        if self.pool not in _POOLS:
            raise ValueError(f"pool must be one of {_POOLS}, got {self.pool!r}.")
        if self.batch_size != "auto":
            check_positive_int(self.batch_size, "batch_size")
        if self.precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {self.precision!r}.")
        if _resolve_runtime(self.runtime, self.precision, _resolve_device(self.device))[1] == "int8" and X is None:
            raise ValueError("precision='int8' calibrates its activation ranges on images: call fit(X) with a few "
                             "dozen representative images.")
        if self.input_size != "auto":
            self._resolve_size(None)
        if isinstance(self.layers, dict) and (not self.layers or not all(isinstance(k, str) and k for k in self.layers)):
            raise ValueError(f"layers as a dict must map non-empty alias strings to layer names, got {self.layers!r}.")
        if self.pool == "flatten" and self.input_size is None and X is None:
            raise ValueError(
                "pool='flatten' with input_size=None: the number of features depends on the image size; "
                "call fit(X) with sample images or set input_size."
            )

    def _resolve_size(self, backbone):
        size = self.input_size
        if isinstance(size, str):
            if size != "auto":
                raise ValueError(f"input_size must be 'auto', an int, (h, w) or None, got {size!r}.")
            return (backbone.input_size, backbone.input_size)
        if size is None:
            return None
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            size = (int(size), int(size))
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in size)):
            raise ValueError(f"input_size must be 'auto', a positive int, (h, w) or None, got {self.input_size!r}.")
        return (int(size[0]), int(size[1]))

    def _layer_map(self, backbone):
        if isinstance(self.layers, dict):  # aliases checked in _validate_params
            names = backbone.resolve_layers(tuple(self.layers.values()))
            return dict(zip(self.layers.keys(), names))
        names = backbone.resolve_layers(self.layers)
        return {name: name for name in names}

    def _load(self):
        from medfeat.features.backbones import load_backbone

        backbone = load_backbone(self.backbone, weights=self.weights)
        return backbone, self._layer_map(backbone)

    def _to_device(self, extractor):
        """Move the extractor to the target device, channels-last."""
        import torch

        device = _resolve_device(self.device)
        tune_malloc()
        if isinstance(extractor, torch.nn.Module):
            extractor = extractor.to(device=device, memory_format=torch.channels_last)
        else:
            extractor.model.to(device=device, memory_format=torch.channels_last)
        return device, extractor

    def _runtime_extractor(self, extractor, runtime, size, calibration=None):
        """The callable that runs the network with ``runtime`` (eager: ``extractor`` itself)."""
        import torch

        from . import _runtime

        if runtime == "eager":
            return extractor
        if runtime == "compile":
            return _runtime.compile_extractor(extractor)
        if not isinstance(extractor, torch.nn.Module):
            raise ValueError(f"runtime='onnx' needs a traceable model; {self.backbone!r} is run through forward "
                             "hooks (use runtime='eager').")
        aliases = list(self.layers_)
        if getattr(self, "int8_model_", None) is not None:
            return _runtime.OrtExtractor(self.int8_model_, aliases)
        model = _runtime.export_onnx(extractor, aliases, size)
        if calibration is not None:
            self.int8_model_ = model = _runtime.quantize_int8(model, calibration)
        return _runtime.OrtExtractor(model, aliases)

    def _calibration(self, X, mean, std):
        """Normalised NHWC float32 batches of the first images of X, as transform would prepare them."""
        import torch

        X = X[:_INT8_CALIBRATION_IMAGES]
        batches = []
        with torch.inference_mode():
            for _, batch in self._batches(X, 16):
                batches.append(_prepare(batch, self.input_size_, mean, std).permute(0, 2, 3, 1).numpy().copy())
        return batches

    def fit(self, X=None, y=None):
        """Build the network. No learning: ``X`` is only used for its patch size when ``input_size=None``.

        Parameters
        ----------
        X : ndarray (N, H, W, C), list of images, or None
            Optional sample batch.
        y : ignored

        Returns
        -------
        self
        """
        import torch

        self._validate_params(X)
        tune_malloc()
        backbone, layers = self._load()
        size = self._resolve_size(backbone)
        probe = size
        if X is not None:
            X = _as_batch(X)
            if size is None and not isinstance(X, list):
                probe = X.shape[1:3]
            elif size is None and self.pool == "flatten":
                raise ValueError("pool='flatten' with input_size=None needs images of one size; X has several sizes.")
        if probe is None:  # input_size=None and no X: pooled sizes do not depend on the size
            probe = (backbone.input_size, backbone.input_size)
        extractor = _build_extractor(backbone, layers, "raw")
        # Shapes from one blank image on the CPU, before the model moves to its device. Pooled
        # sizes do not depend on the image size, so a small probe does unless the model insists
        # on its own size (ViT).
        small = probe if self.pool == "flatten" else (min(probe[0], 64), min(probe[1], 64))
        try:
            raw = _probe(backbone, extractor, small)
        except Exception:  # any failure at the small size (e.g. a fixed-size ViT): retry at the real one
            if small == tuple(probe):
                raise
            raw = _probe(backbone, extractor, probe)
        device, extractor = self._to_device(_set_pool(extractor, self.pool))
        self.backbone_ = backbone
        self.layers_ = layers
        self.input_size_ = size
        self.device_ = str(device)
        self.runtime_, self.precision_ = _resolve_runtime(self.runtime, self.precision, device)
        self.int8_model_ = None
        self.probe_size_ = tuple(int(v) for v in probe)
        calibration = None
        if self.precision_ == "int8":
            mean, std = _normaliser(backbone.mean, backbone.std, torch.device("cpu"))
            calibration = self._calibration(X, mean, std)
        try:
            self.extractor_ = self._runtime_extractor(extractor, self.runtime_, probe, calibration)
        except Exception as exc:  # noqa: BLE001 - "auto" only: eager gives the same features
            if self.runtime != "auto" or self.runtime_ == "eager":
                raise
            # Some networks do not export to ONNX (e.g. AlexNet's adaptive pooling at odd sizes): the
            # automatic choice falls back to eager PyTorch, which the user did not rule out.
            logger.warning("ONNX export of %s failed (%s); runtime='auto' uses eager PyTorch", self.backbone, exc)
            self.runtime_ = "eager"
            self.extractor_ = self._runtime_extractor(extractor, "eager", probe, calibration)
        self.layer_ndims_ = {alias: int(raw[alias].ndim) for alias in layers}
        self.layer_dims_ = {alias: int(_pool(raw[alias], self.pool).shape[1]) for alias in layers}
        self.n_features_out_ = int(sum(self.layer_dims_.values()))
        self.batch_size_ = self._auto_batch_size(device) if self.batch_size == "auto" else int(self.batch_size)
        return self

    def _auto_batch_size(self, device):
        """batch_size="auto": 32 on the CPU; on CUDA from the memory one image takes in a probe batch."""
        import torch

        if device.type != "cuda":
            return 32
        size = self.input_size_ or self.probe_size_
        mean, std = _normaliser(self.backbone_.mean, self.backbone_.std, device)
        probe = torch.zeros((2, size[0], size[1], 3), dtype=torch.uint8, device=device)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.inference_mode(), _autocast(self.precision_ if self.runtime_ != "onnx" else "fp32", device):
            self.extractor_(_prepare(probe, None, mean, std))
        per_image = max(1, (torch.cuda.max_memory_allocated(device) - base) // 2)
        free, _ = torch.cuda.mem_get_info(device)
        return _batch_size_for_memory(free, per_image)

    def __getstate__(self):
        state = self.__dict__.copy()
        # The network is rebuilt from (backbone, weights) after unpickling: pickles stay small and
        # never hold torch objects.
        for key in ("backbone_", "extractor_"):
            state.pop(key, None)
        return state

    def _ensure_model(self):
        if getattr(self, "extractor_", None) is None:  # unpickled: rebuild from the parameters
            backbone, layers = self._load()
            device, extractor = self._to_device(_build_extractor(backbone, layers, self.pool))
            self.backbone_, self.device_ = backbone, str(device)
            if getattr(self, "runtime_", None) is None:  # pickled by an older medfeat
                self.runtime_, self.int8_model_ = "eager", None
            if device.type != "cpu" and self.runtime_ == "onnx":  # e.g. pickled on a CPU host
                self.runtime_ = "eager"
            if self.precision_ != "int8":
                self.precision_ = _resolve_precision(self.precision, device)  # e.g. pickled on a GPU host
            self.extractor_ = self._runtime_extractor(extractor, self.runtime_, self.probe_size_)
        return self.extractor_

    # -- transform -----------------------------------------------------------------------------
    def transform(self, X):
        """Pooled activations of the chosen layers.

        Parameters
        ----------
        X : ndarray of shape (N, H, W, C) or list of images
            uint8 (or float in [0, 1]) RGB or grey patches.

        Returns
        -------
        ndarray of float32, shape (N, n_features_out)
        """
        import torch

        check_is_fitted(self, "n_features_out_")
        X = _as_batch(X)
        self._ensure_model()
        extractor = self.extractor_

        device = torch.device(self.device_)
        mean, std = _normaliser(self.backbone_.mean, self.backbone_.std, device)
        n = len(X)
        out = np.empty((n, self.n_features_out_), dtype=np.float32)
        aliases = list(self.layers_)
        bs = int(self.batch_size) if self.batch_size != "auto" else int(getattr(self, "batch_size_", 32))
        from .._checks import progress_bar

        batches = self._batches(X, bs)
        if device.type != "cpu":
            batches = _staged(batches, device, pin=device.type == "cuda")
        # One compiled graph for every batch: pad a short last batch (rows are independent in eval mode).
        pad_to = bs if self.runtime_ == "compile" else None
        with torch.inference_mode(), _cpu_threads(device), progress_bar(
            total=n, disable=not self.progress or n <= bs, desc="DeepFeatures", unit="img"
        ) as bar:
            for start, batch in batches:
                self._check_size(batch)
                m = len(batch)
                if pad_to is not None and m < pad_to:
                    batch = torch.cat([batch, batch[-1:].expand(pad_to - m, *batch.shape[1:])])
                with _autocast(self.precision_ if self.runtime_ != "onnx" else "fp32", device):
                    feats = extractor(_prepare(batch, self.input_size_, mean, std))
                block = torch.cat([feats[a].float() for a in aliases], dim=1) if len(aliases) > 1 else feats[aliases[0]]
                out[start:start + m] = block[:m].float().cpu().numpy()
                bar.update(m)
        return out

    def forward_tensor(self, x, *, pooled=True):
        """Layer outputs of a float image tensor, with autograd on: the differentiable path used by
        :mod:`medfeat.inspect` (saliency, activation maps).

        The same steps as :meth:`transform`, in float32 throughout: grey replicated to RGB, resized
        to ``input_size_`` (antialiased bilinear, in float where ``transform`` resizes ``uint8`` on the
        CPU, so features differ from ``transform`` by that rounding only), normalised, run through the
        layers without autocast and outside ``torch.inference_mode``.

        Parameters
        ----------
        x : torch.Tensor of shape (N, H, W, C), floating point
            Images scaled to [0, 1] (``uint8 / 255``), C = 1 or 3, on any device.
        pooled : bool, default True
            True: each layer's pooled (N, D) block, as ``transform`` concatenates them; False: the raw
            activation (e.g. an (N, C, h, w) map).

        Returns
        -------
        dict of str to torch.Tensor
            Alias -> float32 tensor on ``device_``, in ``layers_`` order.

        Examples
        --------
        >>> import numpy as np, torch
        >>> X = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
        >>> deep = DeepFeatures(layers="blocks.2", input_size=None).fit(X)
        >>> x = torch.from_numpy(X / 255.0).float().requires_grad_()
        >>> deep.forward_tensor(x)["blocks.2"].sum().backward()
        >>> x.grad.shape, deep.forward_tensor(x, pooled=False)["blocks.2"].shape
        (torch.Size([1, 32, 32, 3]), torch.Size([1, 40, 4, 4]))
        """
        import torch
        import torch.nn.functional as F

        check_is_fitted(self, "n_features_out_")
        if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise ValueError(
                "x must be a floating-point torch tensor of shape (N, H, W, C) with C = 1 or 3 and values in "
                f"[0, 1], got {type(x).__name__} {tuple(getattr(x, 'shape', ()))}."
            )
        extractor = self._ensure_model()
        if not pooled:
            extractor = _build_extractor(self.backbone_, self.layers_, "raw")
        elif self.runtime_ != "eager":  # ONNX Runtime and compiled graphs have no autograd
            extractor = _build_extractor(self.backbone_, self.layers_, self.pool)
        device = torch.device(self.device_)
        mean, std = _normaliser(self.backbone_.mean, self.backbone_.std, device)
        x = x.to(device=device, dtype=torch.float32)
        if x.shape[-1] == 1:
            x = x.expand(-1, -1, -1, 3)
        x = x.permute(0, 3, 1, 2)
        if self.input_size_ is not None and tuple(x.shape[-2:]) != tuple(self.input_size_):
            x = F.interpolate(x, size=tuple(self.input_size_), mode="bilinear", antialias=True, align_corners=False)
        elif self.pool == "flatten" and self.input_size_ is None and tuple(x.shape[-2:]) != self.probe_size_:
            self._check_size(x.permute(0, 2, 3, 1))
        x = ((x - mean[:, None, None]) / std[:, None, None]).contiguous(memory_format=torch.channels_last)
        try:
            with _cpu_threads(device):
                out = extractor(x)
        finally:
            if isinstance(extractor, _HookExtractor) and not pooled:
                for handle in extractor._handles:  # the raw hooks must not stay on the shared model
                    handle.remove()
        return {alias: out[alias] for alias in self.layers_}

    def _batches(self, X, bs):
        """Yield (start, uint8 NHWC tensor); lists of mixed sizes are resized per image first."""
        import torch

        if not isinstance(X, list):
            for start in range(0, len(X), bs):
                yield start, torch.from_numpy(np.ascontiguousarray(X[start:start + bs]))
            return
        if self.input_size_ is None:
            if self.pool == "flatten":
                raise ValueError("X holds images of different sizes; pool='flatten' needs one size (set input_size).")
            for i, image in enumerate(X):  # no common size: one image per forward pass
                yield i, torch.from_numpy(np.ascontiguousarray(image))[None]
            return
        for start in range(0, len(X), bs):
            chunk = [_resize_uint8(torch.from_numpy(np.ascontiguousarray(im)), self.input_size_) for im in X[start:start + bs]]
            channels = {t.shape[-1] for t in chunk}
            if len(channels) > 1:  # mixed grey and RGB in one list: promote grey to RGB
                chunk = [t.expand(-1, -1, 3) if t.shape[-1] == 1 else t for t in chunk]
            yield start, torch.stack(chunk)

    def _check_size(self, batch):
        if self.pool == "flatten" and self.input_size_ is None and tuple(batch.shape[1:3]) != self.probe_size_:
            raise ValueError(
                f"X has {tuple(batch.shape[1:3])} images but this pool='flatten' extractor was fitted on "
                f"{self.probe_size_}: the number of features depends on the size. Fit on images of this size "
                "or set input_size."
            )

    def get_feature_names_out(self, input_features=None):
        """Names ``<arch>.<layer>__<pool>__<i>`` (``<arch>.<layer>__<i>`` for vector layers).

        ``avgmax`` gives ``__avg__<i>`` for the first half and ``__max__<i>`` for the second.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self, "n_features_out_")
        arch = self._arch()
        names = []
        for alias, dim in self.layer_dims_.items():
            prefix = f"{arch}.{alias}"
            if self.layer_ndims_[alias] == 2:
                names.extend(f"{prefix}__{i}" for i in range(dim))
            elif self.pool == "avgmax":
                half = dim // 2
                names.extend(f"{prefix}__avg__{i}" for i in range(half))
                names.extend(f"{prefix}__max__{i}" for i in range(half))
            else:
                names.extend(f"{prefix}__{self.pool}__{i}" for i in range(dim))
        return np.asarray(names, dtype=object)

    def _arch(self):
        name = str(self.backbone)
        return name.split(":", 1)[1].split(".")[0] if ":" in name else name

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # image batches (N, H, W, C), not tables
        tags.input_tags.three_d_array = True
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = []  # always float32
        return tags


def _probe(backbone, raw, size):
    """Raw activations of one blank image of ``size`` on the CPU, to learn each layer's shape."""
    import torch

    mean, std = _normaliser(backbone.mean, backbone.std, torch.device("cpu"))
    blank = torch.zeros((1, size[0], size[1], 3), dtype=torch.uint8)
    with torch.inference_mode(), _cpu_threads(torch.device("cpu")):
        return raw(_prepare(blank, None, mean, std))


def _resize_uint8(image, size):
    """Resize one HWC uint8 tensor to ``size`` (h, w) with the batch path's interpolation."""
    import torch.nn.functional as F

    if tuple(image.shape[:2]) == tuple(size):
        return image
    x = image.permute(2, 0, 1)[None]
    x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return x[0].permute(1, 2, 0).contiguous()


def _center_square(image):
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top:top + side, left:left + side]


def predict_imagenet(images, top_k=5, backbone="efficientnet_lite0", weights="DEFAULT", batch_size=32, device="auto"):
    """Top-k ImageNet classes of images: a sanity check of a backbone and its preprocessing.

    Each image is centre-cropped to a square, resized (antialiased bilinear) to the backbone's input
    size, normalised as the backbone expects and classified by its ImageNet head (fp32).

    Parameters
    ----------
    images : ndarray or list
        One image (H x W grey or H x W x C) or a batch (N x H x W x C array or list of images),
        uint8 or float in [0, 1]. A batch of grey images must be N x H x W x 1.
    top_k : int, default 5
        Number of classes per image.
    backbone, weights : optional
        As for :func:`~medfeat.features.load_backbone`; the head must have the 1000 ImageNet classes.
    batch_size : int, default 32
    device : str, default "auto"

    Returns
    -------
    list of list of ImageNetPrediction
        Per image, ``top_k`` ``(index, name, probability)`` tuples, most probable first.

    Examples
    --------
    >>> from skimage import data
    >>> top = predict_imagenet(data.chelsea(), top_k=3)[0]
    >>> any(p.name in ("tabby", "tiger cat", "Egyptian cat") for p in top)
    True
    """
    import torch

    from medfeat.features.backbones import load_backbone

    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= 1000:
        raise ValueError(f"top_k must be an integer in [1, 1000], got {top_k!r}.")
    check_positive_int(batch_size, "batch_size")
    arr = images if isinstance(images, (list, tuple)) else np.asarray(images)
    if not isinstance(arr, (list, tuple)) and arr.ndim in (2, 3):
        batch = [check_image(arr, name="images")]
    else:
        batch = check_image_batch(arr, name="images")
    bb = load_backbone(backbone, weights=weights)
    if bb.categories is None or len(bb.categories) != 1000:
        raise ValueError(f"backbone {bb.name!r} has no 1000-class ImageNet head; predict_imagenet needs one.")
    dev = _resolve_device(device)
    model = bb.model.to(device=dev, memory_format=torch.channels_last)
    mean, std = _normaliser(bb.mean, bb.std, dev)
    size = (bb.input_size, bb.input_size)
    results = []
    with torch.inference_mode(), _cpu_threads(dev):
        for start in range(0, len(batch), batch_size):
            chunk = [
                _resize_uint8(torch.from_numpy(np.ascontiguousarray(_center_square(im))), size).expand(-1, -1, 3)
                for im in batch[start:start + batch_size]
            ]
            x = _prepare(torch.stack(chunk).to(dev), None, mean, std)
            prob = torch.softmax(model(x).float(), dim=1).cpu()
            values, indices = prob.topk(int(top_k), dim=1)
            for vals, idxs in zip(values.tolist(), indices.tolist()):
                results.append([ImageNetPrediction(i, bb.categories[i], v) for i, v in zip(idxs, vals)])
    return results
