"""MultiScaleFeatures: per-scale application, concatenation order, names, fitting modes, errors."""

import pickle

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin, clone

from medfeat.features.multiscale import MultiScaleFeatures


class ChannelMeans(TransformerMixin, BaseEstimator):
    """Tiny image transformer for the tests: per-channel mean minus the mean seen in fit (if centre)."""

    def __init__(self, centre=False):
        self.centre = centre

    def fit(self, X, y=None):
        X = np.asarray(X)
        self.offset_ = X.mean(axis=(0, 1, 2)) if self.centre else np.zeros(X.shape[-1])
        self.n_fit_images_ = len(X)
        return self

    def transform(self, X):
        return (np.asarray(X, dtype=np.float64).mean(axis=(1, 2)) - self.offset_).astype(np.float32)

    def get_feature_names_out(self, input_features=None):
        return np.asarray([f"mean_c{i}" for i in range(len(self.offset_))], dtype=object)


@pytest.fixture
def batch(rng):
    return rng.integers(0, 256, (4, 3, 8, 8, 3), dtype=np.uint8)  # 4 locations, 3 scales


def test_features_are_per_scale_blocks_in_scale_order(batch):
    ms = MultiScaleFeatures(ChannelMeans()).fit(batch)
    out = ms.transform(batch)
    expected = np.concatenate([batch[:, s].mean(axis=(1, 2)) for s in range(3)], axis=1)
    assert out.dtype == np.float32 and out.shape == (4, 9)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert ms.get_feature_names_out().tolist() == [f"scale{s}__mean_c{c}" for s in range(3) for c in range(3)]
    assert ms.n_scales_ == 3 and ms.n_features_out_ == 9


def test_shared_transformer_is_fitted_on_all_scales(batch):
    ms = MultiScaleFeatures(ChannelMeans(centre=True)).fit(batch)
    assert len(ms.transformers_) == 1 and ms.transformers_[0].n_fit_images_ == 12
    centre = batch.reshape(-1, 8, 8, 3).mean(axis=(0, 1, 2))
    expected = np.concatenate([batch[:, s].mean(axis=(1, 2)) - centre for s in range(3)], axis=1)
    np.testing.assert_allclose(ms.transform(batch), expected, rtol=1e-5, atol=1e-4)


def test_per_scale_clones_fit_their_own_scale(batch):
    inner = ChannelMeans(centre=True)
    ms = MultiScaleFeatures(inner, per_scale=True).fit(batch)
    assert len(ms.transformers_) == 3 and all(t is not inner for t in ms.transformers_)
    assert not hasattr(inner, "offset_")  # the given transformer is never fitted itself
    expected = np.concatenate(
        [batch[:, s].mean(axis=(1, 2)) - batch[:, s].mean(axis=(0, 1, 2)) for s in range(3)], axis=1
    )
    np.testing.assert_allclose(ms.transform(batch), expected, rtol=1e-5, atol=1e-4)


def test_errors(batch):
    ms = MultiScaleFeatures(ChannelMeans()).fit(batch)
    with pytest.raises(ValueError, match=r"\(N, S, H, W, C\)"):
        ms.transform(batch[:, 0])
    with pytest.raises(ValueError, match="2 scales.*fitted with 3"):
        ms.transform(batch[:, :2])
    with pytest.raises(ValueError, match="int16"):
        ms.transform(batch.astype(np.int16))
    with pytest.raises(ValueError, match="n_scales=2"):
        MultiScaleFeatures(ChannelMeans(), n_scales=2).fit(batch)
    with pytest.raises(ValueError, match="needs n_scales"):
        MultiScaleFeatures(ChannelMeans()).fit(None)
    with pytest.raises(ValueError, match="n_scales must be"):
        MultiScaleFeatures(ChannelMeans(), n_scales=0).fit(batch)
    with pytest.raises(ValueError, match="transformer must be an estimator"):
        MultiScaleFeatures("lbp").fit(batch)


def test_sklearn_contract(batch):
    from sklearn.utils import estimator_checks as ec

    ms = MultiScaleFeatures(ChannelMeans(), n_scales=3)
    assert clone(ms).get_params()["n_scales"] == 3
    for check in (ec.check_no_attributes_set_in_init, ec.check_get_params_invariance, ec.check_set_params,
                  ec.check_parameters_default_constructible, ec.check_estimator_cloneable):
        check("MultiScaleFeatures", ms)
    fitted = ms.fit(batch)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(batch), fitted.transform(batch))
    import pandas as pd

    frame = clone(ms).set_output(transform="pandas").fit(batch).transform(batch)
    assert isinstance(frame, pd.DataFrame) and frame.columns[3] == "scale1__mean_c0"


def test_with_deep_features_equals_deep_features_per_scale(rng):
    from medfeat.features.deep import DeepFeatures

    X = rng.integers(0, 256, (2, 2, 32, 32, 3), dtype=np.uint8)
    deep = DeepFeatures(layers="blocks.1", input_size=None)
    ms = MultiScaleFeatures(deep, n_scales=2).fit(None)  # DeepFeatures needs no data to fit
    out = ms.transform(X)
    single = clone(deep).fit()
    expected = np.concatenate([single.transform(X[:, 0]), single.transform(X[:, 1])], axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    names = ms.get_feature_names_out()
    assert names[0] == "scale0__efficientnet_lite0.blocks.1__avg__0"
    assert names[24] == "scale1__efficientnet_lite0.blocks.1__avg__0"
