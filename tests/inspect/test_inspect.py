"""medfeat.inspect: saliency against finite differences and receptive fields, occlusion on hand-built
models, activations against the pooled features, embeddings and plotting helpers."""

import copy
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import VarianceThreshold
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.svm import SVC, LinearSVC

from medfeat.features import DeepFeatures, LBPHistogram
from medfeat.inspect import (
    embed_2d,
    layer_activations,
    linear_head,
    occlusion_map,
    plot_channels,
    plot_embedding,
    plot_overlay,
    saliency,
)

TINY = "timm:test_resnet"  # timm's test network: 3x3 convs, 16-96 channels, random (seeded) weights


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (12, 24, 24, 3), dtype=np.uint8)
    X[6:] = np.clip(X[6:].astype(int) + 60, 0, 255).astype(np.uint8)  # brighter second class
    return X, np.repeat([0, 1], 6)


@pytest.fixture(scope="module")
def tiny_pipeline(images):
    X, y = images
    deep = DeepFeatures(TINY, weights=None, layers="layer1", input_size=None)
    pipe = Pipeline([("features", deep), ("scaler", StandardScaler()), ("pca", PCA(5, whiten=True)),
                     ("clf", LogisticRegression(C=10.0))])
    return pipe.fit(X, y)


def _reference_score(pipe, x):
    """The pipeline's score of one float64 HWC image in [0, 1], computed without medfeat's forward code:
    torchvision's feature extractor on a float64 copy of the network, normalisation and average pooling
    by hand, then the head's own decision_function."""
    import torch
    from torchvision.models.feature_extraction import create_feature_extractor

    deep = pipe.named_steps["features"]
    if not hasattr(pipe, "_ref_net"):
        net = copy.deepcopy(deep.backbone_.model).double().eval()
        pipe._ref_net = create_feature_extractor(net, {"layer1": "f"})
    mean = torch.tensor(deep.backbone_.mean, dtype=torch.float64)[:, None, None]
    std = torch.tensor(deep.backbone_.std, dtype=torch.float64)[:, None, None]
    t = (torch.from_numpy(x).permute(2, 0, 1) - mean) / std
    with torch.no_grad():
        f = pipe._ref_net(t[None])["f"].mean((2, 3)).numpy()
    return float(pipe[1:].decision_function(f)[0])


def test_saliency_matches_central_finite_differences(images, tiny_pipeline):
    X, _ = images
    grad = saliency(tiny_pipeline, X[:2], reduce=None)
    assert grad.shape == (2, 24, 24, 3) and grad.dtype == np.float32
    rng = np.random.default_rng(1)
    h = 1e-4
    for i in range(2):
        x = X[i].astype(np.float64) / 255.0
        scale = np.abs(grad[i]).max()
        assert scale > 0
        picks = [tuple(rng.integers(0, n) for n in (24, 24, 3)) for _ in range(12)]
        picks.append(tuple(int(v) for v in np.unravel_index(np.abs(grad[i]).argmax(), grad[i].shape)))
        for p in picks:
            up, down = x.copy(), x.copy()
            up[p] += h
            down[p] -= h
            fd = (_reference_score(tiny_pipeline, up) - _reference_score(tiny_pipeline, down)) / (2 * h)
            assert abs(grad[i][p] - fd) <= 1e-3 * max(abs(fd), scale), (i, p, grad[i][p], fd)
        # and along a random direction over all pixels at once (a smaller step: moving every pixel
        # crosses ReLU / max-pool switches sooner; float64 keeps the difference exact enough)
        v = rng.normal(size=x.shape)
        hv = 1e-7
        fd = (_reference_score(tiny_pipeline, x + hv * v) - _reference_score(tiny_pipeline, x - hv * v)) / (2 * hv)
        assert float(np.sum(grad[i] * v)) == pytest.approx(fd, rel=1e-3)


def test_saliency_target_and_reduction(images, tiny_pipeline):
    X, _ = images
    pos = saliency(tiny_pipeline, X[:2], reduce=None)
    neg = saliency(tiny_pipeline, X[:2], reduce=None, target=0)
    np.testing.assert_allclose(neg, -pos, rtol=1e-6)
    np.testing.assert_allclose(saliency(tiny_pipeline, X[:2]), np.abs(pos).max(axis=-1), rtol=1e-6)
    with pytest.raises(ValueError, match="not a class"):
        saliency(tiny_pipeline, X[:1], target=7)


def test_saliency_is_zero_outside_the_receptive_field(images):
    X, y = images
    X = X[:, :16, :16]
    # conv1.3 of the tiny net: a 3x3 stride-2 conv (padding 1), BN, ReLU, a 3x3 stride-1 conv (padding 1).
    # Its output cell (0, 0) sees cells 0..1 of the first conv, which see input rows/cols 0..3.
    deep = DeepFeatures(TINY, weights=None, layers="conv1.3", pool="flatten", input_size=None)
    pipe = make_pipeline(deep, LogisticRegression(max_iter=500)).fit(X, y)
    clf = pipe[-1]
    n_ch, side = 16, 8  # flatten order is C, H, W
    keep = np.arange(n_ch) * side * side  # cell (0, 0) of every channel
    coef = np.zeros_like(clf.coef_)
    coef[0, keep] = np.random.default_rng(2).normal(size=keep.size)
    clf.coef_ = coef  # a hand-built linear head reading one spatial cell
    grad = saliency(pipe, X[:3], reduce=None)
    assert np.all(grad[:, 4:, :, :] == 0) and np.all(grad[:, :, 4:, :] == 0)
    assert np.all(np.abs(grad[:, :4, :4, :]).max(axis=(1, 2, 3)) > 0)


def test_saliency_with_a_separate_head_and_grey_images(images):
    X, y = images
    grey = X.mean(axis=-1, keepdims=True).astype(np.uint8)
    deep = DeepFeatures(TINY, weights=None, layers=["layer1", "layer2"], input_size=32).fit(grey)
    head = make_pipeline(StandardScaler(), VarianceThreshold(), LinearSVC()).fit(deep.transform(grey), y)
    g = saliency(head, grey[:2], features=deep, reduce=None)
    assert g.shape == (2, 24, 24, 1)  # at the input size, through the resize to 32 px
    assert np.abs(g).max() > 0


@pytest.mark.parametrize("head, match", [
    (SVC(kernel="rbf"), "kernel='rbf' is not linear"),
    (RandomForestClassifier(n_estimators=3, random_state=0), "RandomForestClassifier"),
    (make_pipeline(Normalizer(), LogisticRegression()), "Normalizer"),
])
def test_saliency_refuses_heads_without_a_linear_score(images, head, match):
    X, y = images
    deep = DeepFeatures(TINY, weights=None, layers="layer1", input_size=None)
    pipe = make_pipeline(deep, head).fit(X, y)
    with pytest.raises(TypeError, match=match) as err:
        saliency(pipe, X[:1])
    assert "occlusion_map" in str(err.value)


def test_saliency_refuses_handcrafted_features(images):
    X, y = images
    pipe = make_pipeline(LBPHistogram(radii_points=[(8, 1)]), LogisticRegression()).fit(X, y)
    with pytest.raises(TypeError, match="not differentiable"):
        saliency(pipe, X[:1])


def test_linear_head_reproduces_decision_functions():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 6)) * [1, 10, 0.1, 1, 5, 1]
    y3 = rng.integers(0, 3, 60)
    for model, y in [
        (make_pipeline(StandardScaler(), PCA(4, whiten=True), LinearSVC()), (X[:, 0] > 0).astype(int)),
        (make_pipeline(StandardScaler(), LogisticRegression()), y3),
        (make_pipeline(PCA(3), SVC(kernel="linear")), (X[:, 1] > 0).astype(int)),
    ]:
        model.fit(X, y)
        lin = linear_head(model)
        expected = np.atleast_2d(model.decision_function(X).T).T
        np.testing.assert_allclose(X @ lin.coef.T + lin.intercept, expected, rtol=1e-9, atol=1e-9)


class TopLeftMean(ClassifierMixin, BaseEstimator):
    """Decision = mean grey level of the top-left 8 x 8 pixels (no predict_proba)."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, X):
        return np.asarray(X, dtype=np.float64)[:, :8, :8].mean(axis=(1, 2, 3))


class Brightness3(ClassifierMixin, BaseEstimator):
    """Three classes; P = softmax of (-mean, 0, mean) of the right half, scaled."""

    def fit(self, X, y):
        self.classes_ = np.array(["dark", "mid", "bright"])
        return self

    def predict_proba(self, X):
        m = np.asarray(X, dtype=np.float64)[:, :, 8:].mean(axis=(1, 2, 3)) / 255.0
        z = np.stack([-m, 0 * m, m], axis=1)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)


def test_occlusion_on_a_hand_built_model():
    white = np.full((16, 16, 3), 255, np.uint8)
    model = TopLeftMean().fit(None, None)
    m = occlusion_map(model, white, window=4, stride=4, baseline=0)
    # a 4x4 black square inside the 8x8 region lowers its mean by 255 * 16 / 64 = 63.75
    expected = np.zeros((16, 16))
    expected[:8, :8] = 63.75
    np.testing.assert_allclose(m, expected)
    m2 = occlusion_map(model, white, window=4, stride=2, baseline=0)
    assert m2[0, 0] == pytest.approx(63.75)  # covered by the window at (0, 0) only
    assert m2[15, 15] == 0.0
    # pixel (8, 8): windows at (6|8, 6|8); only (6, 6) overlaps the region, by 2 x 2 pixels
    assert m2[8, 8] == pytest.approx(255 * 4 / 64 / 4)
    # the mean-colour baseline of a flat image changes nothing
    np.testing.assert_array_equal(occlusion_map(model, white, window=4, stride=4), 0.0)


def test_occlusion_multiclass_target_and_errors():
    img = np.zeros((16, 16, 3), np.uint8)
    img[:, 8:] = 200
    model = Brightness3().fit(None, None)
    m = occlusion_map(model, img, window=8, stride=8, baseline=0)  # default target: predicted class, bright
    assert np.all(m[:, :8] == 0) and np.all(m[:, 8:] > 0)
    dark = occlusion_map(model, img, window=8, stride=8, baseline=0, target="dark")
    assert np.all(dark[:, 8:] < 0)
    with pytest.raises(ValueError, match="larger than the image"):
        occlusion_map(model, img, window=32)
    with pytest.raises(ValueError, match="one image"):
        occlusion_map(model, np.stack([img, img]))
    with pytest.raises(ValueError, match="not a class"):
        occlusion_map(model, img, target="purple")


def test_layer_activations_pool_to_the_transform_features(images):
    X, _ = images
    deep = DeepFeatures(TINY, weights=None, layers=["conv1.0", "layer1"], input_size=None).fit(X)
    maps = layer_activations(X[:3], deep, batch_size=2)
    assert list(maps) == ["conv1.0", "layer1"]
    assert maps["conv1.0"].shape == (3, 16, 12, 12)  # 3x3 stride-2 conv, 16 channels, on 24 px
    assert maps["layer1"].shape == (3, 32, 6, 6)  # then a stride-2 max pool
    pooled = np.concatenate([maps[a].mean(axis=(2, 3)) for a in maps], axis=1)
    np.testing.assert_allclose(pooled, deep.transform(X[:3]), rtol=1e-5, atol=1e-6)
    only = layer_activations(X[0], deep, layers="layer2")  # one image; the extractor itself is unchanged
    assert list(only) == ["layer2"] and only["layer2"].shape[0] == 1 and deep.layers == ["conv1.0", "layer1"]
    with pytest.raises(TypeError, match="DeepFeatures"):
        layer_activations(X, LBPHistogram())


def test_embed_2d_separates_clusters_and_checks_input():
    rng = np.random.default_rng(4)
    X = np.r_[rng.normal(0, 1, (25, 8)), rng.normal(4, 1, (25, 8))]
    lab = np.repeat([0, 1], 25)
    for method in ("pca", "tsne"):
        z = embed_2d(X, method)
        assert z.shape == (50, 2) and np.all(np.isfinite(z))
        d = ((z[:, None] - z[None]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        assert np.mean(lab[d.argmin(1)] == lab) == 1.0  # every point's neighbour is of its own cluster
    with pytest.raises(ValueError, match="method"):
        embed_2d(X, "mds")
    with pytest.raises(ValueError, match="NaN"):
        embed_2d(np.full((5, 3), np.nan))
    try:
        import umap  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install umap-learn"):
            embed_2d(X, "umap")


def test_plot_helpers_draw_into_given_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5)
    try:
        img = np.zeros((8, 8, 3), np.uint8)
        assert plot_overlay(img, np.ones((8, 8)), axes[0], colorbar=False) is axes[0]
        assert len(axes[0].images) == 2
        z = np.arange(8.0).reshape(4, 2)
        plot_embedding(z, ["a", "a", "b", "b"], axes[1], markers=["s1", "s2", "s1", "s2"])
        assert sorted(t.get_text() for t in axes[1].get_legend().get_texts()) == ["a / s1", "a / s2", "b / s1", "b / s2"]
        act = np.zeros((5, 3, 3))
        act[3] = 2.0
        act[1] = 1.0
        drawn = plot_channels(act, axes=axes[2:], channels=None)
        assert [a.get_title() for a in drawn] == ["ch 3", "ch 1", "ch 0"]  # largest mean first (3 axes given)
    finally:
        plt.close(fig)


def test_import_medfeat_inspect_is_light():
    code = "import medfeat.inspect, sys; print(' '.join(sorted(sys.modules)))"
    loaded = {m.split(".")[0] for m in subprocess.run([sys.executable, "-c", code], capture_output=True,
                                                       text=True, check=True).stdout.split()}
    assert not loaded & {"torch", "matplotlib", "umap", "timm"}
