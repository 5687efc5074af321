"""DeepFeatures: equality with independently computed layer outputs, batch-size invariance, the
DeCAF preset, input checks and the scikit-learn contract. Small images, nothing downloaded."""

import copy
import io
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks as ec

from medfeat.features.backbones import load_backbone
from medfeat.features.deep import DeepFeatures, _normaliser, _prepare, _staged

TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def patches():
    """Four 48 px RGB crops of a real IHC image (realistic activations), uint8 NHWC."""
    from skimage import data

    image = data.immunohistochemistry()
    return np.stack([image[y:y + 48, x:x + 48] for y, x in [(0, 0), (100, 300), (250, 40), (400, 400)]])


@pytest.fixture(scope="module")
def blocks2():
    """A fitted Lite0 blocks.2 extractor shared by the tests that only transform (40 features)."""
    return DeepFeatures(layers="blocks.2", input_size=None).fit()


@pytest.fixture(scope="module")
def lite_two():
    """A fitted Lite0 extractor of two layers, blocks.3 (112) then bn2 (1280)."""
    return DeepFeatures(layers=["blocks.3", "bn2"], input_size=None).fit()


def _lite0_maps(patches, channels_last):
    """Raw maps of some Lite0 layers, computed with timm's own FX extractor, fp32."""
    from timm.layers import create_feature_extractor

    model = load_backbone("efficientnet_lite0").model
    nodes = ["blocks.2", "blocks.4.1", "bn2"]
    x = torch.from_numpy(patches).permute(0, 3, 1, 2).float() / 255.0
    x = (x - 0.5) / 0.5
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        x = x.contiguous()
    extractor = create_feature_extractor(model, return_nodes=nodes)
    with torch.no_grad():
        out = extractor(x)
    return {k: v.numpy().astype(np.float64) for k, v in out.items()}


@pytest.fixture(scope="module")
def lite0_maps(patches):
    # Same memory layout as DeepFeatures (channels-last), so that only the plumbing is compared:
    # a different layout changes the convolutions' summation order (see the NCHW test below).
    return _lite0_maps(patches, channels_last=True)


def _reference_pool(m, pool):
    if pool == "avg":
        return m.mean(axis=(2, 3))
    if pool == "max":
        return m.max(axis=(2, 3))
    if pool == "avgmax":
        return np.concatenate([m.mean(axis=(2, 3)), m.max(axis=(2, 3))], axis=1)
    if pool == "gem":
        return (np.clip(m, 1e-6, None) ** 3).mean(axis=(2, 3)) ** (1 / 3)
    return m.reshape(len(m), -1)


@pytest.mark.parametrize("pool", ["avg", "max", "avgmax", "gem", "flatten"])
def test_layers_equal_independent_feature_extractor(patches, lite0_maps, pool):
    layers = ["blocks.2", "blocks.4.1", "bn2"]
    deep = DeepFeatures(layers=layers, pool=pool, input_size=None, batch_size=4, runtime="eager").fit(patches)
    got = deep.transform(patches)
    expected = np.concatenate([_reference_pool(lite0_maps[layer], pool) for layer in layers], axis=1)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, **TOL)
    names = deep.get_feature_names_out()
    assert len(names) == got.shape[1]
    first = "max" if pool == "max" else ("avg" if pool in ("avg", "avgmax") else pool)
    assert names[0] == f"efficientnet_lite0.blocks.2__{first}__0"


def test_channels_last_differs_from_nchw_by_rounding_only(patches, lite0_maps):
    nchw = _lite0_maps(patches, channels_last=False)
    for layer, ref in nchw.items():
        np.testing.assert_allclose(lite0_maps[layer], ref, rtol=1e-4, atol=1e-4)


def test_activation_modified_in_place_later_is_read_before(patches):
    # torchvision's BasicBlock does `out = bn2(out); out += identity`: the bn2 output is overwritten
    # in place. Reading it together with a later layer must still give the bn2 values.
    from torchvision.models.feature_extraction import create_feature_extractor

    deep = DeepFeatures("torchvision:resnet18", weights=None, layers=["layer4.0.bn2", "layer4"], input_size=None).fit()
    got = deep.transform(patches)
    model = load_backbone("torchvision:resnet18", weights=None).model
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    x = torch.from_numpy(((patches.transpose(0, 3, 1, 2) / 255.0 - mean) / std).astype(np.float32))
    with torch.no_grad():  # one extractor per layer, so nothing runs after the read layer
        ref = [create_feature_extractor(model, [n])(x)[n].mean((2, 3)).numpy() for n in ("layer4.0.bn2", "layer4")]
    np.testing.assert_allclose(got, np.concatenate(ref, axis=1), **TOL)


def test_default_layer_is_the_backbones_own_embedding(patches):
    deep = DeepFeatures(input_size=None, runtime="eager").fit()
    model = deep.backbone_.model  # the same network, run through timm's own forward
    x = (torch.from_numpy(patches).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(x.contiguous(memory_format=torch.channels_last)),
                                      pre_logits=True).numpy()
    np.testing.assert_allclose(deep.transform(patches), expected, **TOL)
    assert deep.n_features_out_ == 1280


def test_results_do_not_depend_on_batch_size(patches, lite_two):
    X = np.concatenate([patches, patches[:2, ::-1]])  # 6 images: batches of 1, 4 + 2, and 6
    results = [copy.copy(lite_two).set_params(batch_size=bs).transform(X) for bs in (1, 4, 6)]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], **TOL)


def test_resize_preprocessing_matches_pil():
    from PIL import Image

    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (2, 50, 70, 3), dtype=np.uint8)
    mean, std = _normaliser((0.5,) * 3, (0.5,) * 3, torch.device("cpu"))
    with torch.no_grad():
        got = _prepare(torch.from_numpy(X), (32, 40), mean, std).numpy()
    assert got.shape == (2, 3, 32, 40)
    for i in range(2):
        ref = np.asarray(Image.fromarray(X[i]).resize((40, 32), Image.BILINEAR), dtype=np.float64)
        ref = (ref / 255.0 - 0.5) / 0.5
        # same antialiased bilinear filter; at most one grey level of rounding apart
        assert np.abs(got[i].transpose(1, 2, 0) - ref).max() <= 2 / 255 + 1e-6


def test_gpu_preprocessing_branch_agrees_with_cpu_branch():
    # The GPU path resizes in float; run it here on the CPU and compare with the uint8 path.
    rng = np.random.default_rng(2)
    X = torch.from_numpy(rng.integers(0, 256, (2, 50, 70, 3), dtype=np.uint8))
    mean, std = _normaliser((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), torch.device("cpu"))
    with torch.no_grad():
        as_uint8 = _prepare(X, (32, 40), mean, std, uint8_resize=True)
        as_float = _prepare(X, (32, 40), mean, std, uint8_resize=False)
    assert as_float.is_contiguous(memory_format=torch.channels_last)
    assert (as_float - as_uint8).abs().max() <= 1 / (255 * 0.224) + 1e-5  # rounding to uint8 only


def test_staging_buffer_is_reused_safely():
    # The CUDA path copies batches through one reused (pinned) buffer; exercise it on the CPU.
    rng = np.random.default_rng(3)
    batches = [torch.from_numpy(rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)) for n in (3, 3, 2)]
    seen = []
    for (start, staged), original in zip(_staged(enumerate(batches), torch.device("cpu"), pin=False), batches):
        assert torch.equal(staged, original)
        seen.append(staged.clone())  # what the consumer computes from, before asking for the next
    assert [len(b) for b in seen] == [3, 3, 2]


def test_input_size_auto_resizes_to_backbone_size(patches, blocks2):
    auto = DeepFeatures(layers="blocks.2").fit()
    assert auto.input_size_ == (224, 224)
    big = np.stack([np.asarray(_pil_resize(p, 224)) for p in patches[:2]])
    np.testing.assert_allclose(auto.transform(big), blocks2.transform(big), **TOL)  # 224 px already: no resize
    small = auto.transform(patches[:2])  # 48 px patches upsampled to 224 px
    assert small.shape == (2, 40) and not np.allclose(small, blocks2.transform(patches[:2]), atol=1e-3)


def _pil_resize(image, size):
    from PIL import Image

    return Image.fromarray(image).resize((size, size), Image.BILINEAR)


def test_grey_images_are_replicated_to_rgb(patches, blocks2):
    grey = patches[..., :1]
    np.testing.assert_allclose(blocks2.transform(grey), blocks2.transform(np.repeat(grey, 3, axis=3)),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(blocks2.transform(grey.astype(np.float32) / 255), blocks2.transform(grey),
                               rtol=1e-6, atol=1e-6)  # float in [0, 1] accepted


def test_lists_of_images(patches, blocks2):
    np.testing.assert_allclose(blocks2.transform(list(patches)), blocks2.transform(patches), rtol=1e-6, atol=1e-6)
    mixed = [patches[0], patches[1][:40, :30]]
    got = blocks2.transform(mixed)  # different sizes, no resize: one image per pass
    np.testing.assert_allclose(got[1], blocks2.transform(mixed[1][None])[0], **TOL)
    resized = DeepFeatures(layers="blocks.2", input_size=32).fit().transform(mixed)
    assert resized.shape == (2, 40)


def test_bar2015_preset_is_decaf_pool5_fc6_fc7(patches):
    deep = DeepFeatures.bar2015(weights=None).fit()
    assert (deep.backbone, deep.pool, deep.input_size_) == ("torchvision:alexnet", "flatten", (224, 224))
    assert deep.layer_dims_ == {"pool5": 9216, "fc6": 4096, "fc7": 4096}
    names = deep.get_feature_names_out()
    assert (names[0], names[9216], names[-1]) == ("alexnet.pool5__flatten__0", "alexnet.fc6__0", "alexnet.fc7__4095")
    F = deep.transform(patches[:2]).astype(np.float64)
    pool5, fc6, fc7 = F[:, :9216], F[:, 9216:13312], F[:, 13312:]
    clf = deep.backbone_.model.classifier
    w6, b6 = clf[1].weight.double().numpy(), clf[1].bias.double().numpy()
    w7, b7 = clf[4].weight.double().numpy(), clf[4].bias.double().numpy()
    # fc6 = ReLU(W6 pool5 + b6) with pool5 flattened as AlexNet flattens it; fc7 = ReLU(W7 fc6 + b7)
    np.testing.assert_allclose(fc6, np.maximum(pool5 @ w6.T + b6, 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fc7, np.maximum(fc6 @ w7.T + b7, 0), rtol=1e-4, atol=1e-5)
    assert (fc6 >= 0).all() and (fc6 > 0).any()


def test_bf16_precision_on_cpu_is_close_to_fp32(patches, blocks2):
    fp32 = blocks2.transform(patches)
    bf16 = DeepFeatures(layers="blocks.2", input_size=None, precision="bf16").fit().transform(patches)
    assert bf16.dtype == np.float32
    assert np.corrcoef(fp32.ravel(), bf16.ravel())[0, 1] > 0.99
    assert not np.array_equal(fp32, bf16)  # it did run in reduced precision


def test_device_auto_is_cpu_without_cuda(blocks2):
    assert blocks2.device_ == ("cuda" if torch.cuda.is_available() else "cpu")
    assert blocks2.precision_ == ("bf16" if torch.cuda.is_available() else "fp32")


def test_progress_bar(patches, blocks2, capsys):
    # progress=True is the default of every medfeat progress=; the bar shows when a call has several batches
    deep = copy.copy(blocks2).set_params(batch_size=2, progress=False)
    deep.transform(patches)
    assert "DeepFeatures" not in capsys.readouterr().err
    deep.set_params(progress=True).transform(patches)
    assert "DeepFeatures" in capsys.readouterr().err
    deep.set_params(batch_size=len(patches)).transform(patches)  # one batch: no bar
    assert "DeepFeatures" not in capsys.readouterr().err
    assert DeepFeatures().progress is True


# -- errors ----------------------------------------------------------------------------------

def test_unknown_layer_suggests_close_names():
    with pytest.raises(ValueError, match=r"'blocks\.9'.*Close names.*list_layers"):
        DeepFeatures(layers="blocks.9").fit()
    with pytest.raises(ValueError, match=r"Close names: \[.*'layer4'"):
        DeepFeatures("torchvision:resnet18", weights=None, layers="layer44").fit()


def test_unknown_backbone_lists_names():
    with pytest.raises(ValueError, match="efficientnet_lite0.*torchvision:<name>"):
        DeepFeatures(backbone="efficientnet_b99").fit()


@pytest.mark.parametrize(
    "params,match",
    [
        ({"pool": "mean"}, "pool must be one of"),
        ({"precision": "half"}, "precision must be one of"),
        ({"batch_size": 0}, "batch_size"),
        ({"input_size": "big"}, "input_size"),
        ({"input_size": (32, -1)}, "input_size"),
        ({"device": "tpu"}, "device"),
        ({"pool": "flatten", "input_size": None}, "pool='flatten' with input_size=None"),
        ({"layers": {}}, "layers"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        DeepFeatures(**{"layers": "blocks.1", **params}).fit()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when CUDA is absent")
def test_cuda_requested_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        DeepFeatures(layers="blocks.1", device="cuda").fit()


def test_bad_inputs(patches, blocks2):
    deep = blocks2
    with pytest.raises(ValueError, match=r"N x H x W x C.*X\[None\]"):
        deep.transform(patches[0])
    with pytest.raises(ValueError, match="int16"):
        deep.transform(patches.astype(np.int16))
    with pytest.raises(ValueError, match="4 channels"):
        deep.transform(np.zeros((1, 8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        deep.transform(patches.astype(np.float32))
    with pytest.raises(NotFittedError):
        DeepFeatures().transform(patches)
    flat = DeepFeatures(layers="blocks.1", pool="flatten", input_size=None).fit(patches)
    with pytest.raises(ValueError, match="fitted on"):
        flat.transform(patches[:, :32, :32])


# -- scikit-learn contract -------------------------------------------------------------------

def test_init_stores_params_and_loads_nothing():
    deep = DeepFeatures(layers=["blocks.1"], pool="max", batch_size=7)
    assert deep.get_params()["layers"] == ["blocks.1"] and deep.get_params()["batch_size"] == 7
    assert not [k for k in vars(deep) if k.endswith("_")]
    assert clone(deep).get_params() == deep.get_params()


def test_pickle_round_trip_rebuilds_the_model(patches):
    deep = DeepFeatures("torchvision:resnet18", weights=None, layers=["layer2", "layer3"], input_size=None).fit()
    before = deep.transform(patches)
    blob = pickle.dumps(deep)
    assert len(blob) < 50_000  # parameters and metadata only, no network weights
    assert b"_rebuild_tensor" not in blob and b"torch.nn" not in blob
    restored = pickle.loads(blob)
    assert not hasattr(restored, "extractor_")
    np.testing.assert_allclose(restored.transform(patches), before, **TOL)
    np.testing.assert_array_equal(restored.get_feature_names_out(), deep.get_feature_names_out())
    buf = io.BytesIO()
    pickle.dump(clone(deep), buf)  # unfitted clones pickle too


@pytest.mark.parametrize(
    "check",
    [
        ec.check_no_attributes_set_in_init,
        ec.check_get_params_invariance,
        ec.check_set_params,
        ec.check_parameters_default_constructible,
        ec.check_estimator_cloneable,
        ec.check_estimator_repr,
        ec.check_do_not_raise_errors_in_init_or_set_params,
        ec.check_estimator_tags_renamed,
        ec.check_valid_tag_types,
        ec.check_mixin_order,
    ],
    ids=lambda c: c.__name__,
)
def test_data_free_estimator_checks(check):
    check("DeepFeatures", DeepFeatures())


def test_set_output_pandas(patches, blocks2):
    import pandas as pd

    deep = copy.copy(blocks2)
    plain = deep.transform(patches)
    frame = deep.set_output(transform="pandas").transform(patches)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(deep.get_feature_names_out())
    np.testing.assert_array_equal(frame.to_numpy(), plain)


def test_in_a_pipeline_with_a_classifier(patches):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    y = np.array([0, 1, 0, 1])
    pipe = make_pipeline(DeepFeatures(layers="blocks.2", input_size=None), LogisticRegression(max_iter=500))
    pipe.fit(patches, y)
    assert pipe.predict_proba(patches).shape == (4, 2)
