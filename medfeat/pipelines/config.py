"""Feature transformers by name, and the JSON configuration that rebuilds them.

:func:`make_features` is the one feature factory of the slide pipelines: it turns a preset name (or a
transformer) into the unfitted transformer a run uses, wrapping it for several fields of view.
:func:`estimator_config` describes an estimator as JSON (class path + ``get_params(deep=False)``, nested
estimators recursively); feature stores record it, and :func:`estimator_from_config` rebuilds the same
transformer at training and prediction time.
"""

from __future__ import annotations

import importlib
import json
import os

import numpy as np

from .._checks import json_safe

__all__ = [
    "RUNTIME_PARAMS",
    "canonical_json",
    "estimator_config",
    "estimator_from_config",
    "feature_names",
    "make_features",
    "param_to_json",
    "set_batch_size",
    "strip_runtime",
]


def make_features(features="deep", *, backbone=None, layers=None, scales=(1,), batch_size=None, input_size=None):
    """Build a feature transformer from a name.

    Parameters
    ----------
    features : {"deep", "handcrafted", "fusion", "lbp", "gist", "color", "glcm"} or transformer
        A preset of :func:`medfeat.pipelines.make_feature_transformer` (``"deep"``: DeepFeatures,
        EfficientNet-Lite0 offline weights by default; ``"handcrafted"``: LBP + GIST + colour + GLCM;
        ``"fusion"``: both). A transformer instance is returned as given (wrapped for several scales).
    backbone : str, optional
        Backbone name for the deep features (default: DeepFeatures' default).
    layers : str or list of str, optional
        Layer node names for the deep features (default: the backbone's pooled final features).
    scales : tuple of float
        Fields of view; with more than one the transformer is wrapped in
        :class:`medfeat.features.MultiScaleFeatures`.
    batch_size : int, optional
        Inference batch size for the deep features.
    input_size : None, "auto", int or (int, int), default None
        Size the deep features resize patches to. None (the slide-pipeline policy) feeds patches to
        the network at their own size: the grid's ``size`` at ``mpp`` already is the resolution asked
        for, so resizing would change it, and enlarging a 64 px patch to 224 px costs ~12x the
        compute for no new detail. ``"auto"`` is the backbone's training size (224 px for Lite0).

    Returns
    -------
    transformer
        An unfitted scikit-learn transformer taking NHWC uint8 batches.

    Examples
    --------
    >>> make_features("handcrafted").__class__.__name__
    'HandcraftedFeatures'
    """
    import medfeat.features as mf

    from .patch import FEATURE_PRESETS, make_feature_transformer

    if isinstance(features, str):
        if features not in FEATURE_PRESETS:
            raise ValueError(f"features must be one of {list(FEATURE_PRESETS)} or a transformer, got {features!r}.")
        deep_kw = {}
        if backbone is not None:
            deep_kw["backbone"] = backbone
        if layers is not None:
            deep_kw["layers"] = layers
        if batch_size is not None:
            deep_kw["batch_size"] = int(batch_size)
        deep_kw["input_size"] = input_size
        if features == "deep":
            transformer = make_feature_transformer("deep", **deep_kw)
        elif features == "fusion":
            transformer = make_feature_transformer("fusion", deep=deep_kw)
        else:
            transformer = make_feature_transformer(features)
    elif hasattr(features, "transform"):
        transformer = features
    else:
        raise ValueError(f"features must be one of {list(FEATURE_PRESETS)} or a transformer, got {features!r}.")
    if len(tuple(scales)) > 1 and type(transformer).__name__ != "MultiScaleFeatures":
        transformer = mf.MultiScaleFeatures(transformer)
    return transformer


# --------------------------------------------------------------------------------------------------------
# estimator <-> JSON
# --------------------------------------------------------------------------------------------------------


def _encode_param(value):
    """:func:`json_safe` hook for parameter values: tuples, (name, estimator) steps and estimators keep
    enough structure to be rebuilt; floats stay as they are (a NaN parameter must come back as NaN)."""
    if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) and hasattr(v[1], "get_params")
        for v in value
    ):
        # (name, estimator) lists of FeatureUnion / Pipeline
        return {"__steps__": [[n, estimator_config(e)] for n, e in value]}
    if isinstance(value, tuple):
        return {"__tuple__": [json_safe(v, encode=_encode_param) for v in value]}
    if hasattr(value, "get_params") and not isinstance(value, type):
        return estimator_config(value)
    plain = (type(None), bool, str, int, np.integer, np.bool_, list, dict, os.PathLike)
    if not isinstance(value, plain):
        return {"__repr__": repr(value)}
    return json_safe.NOT_HANDLED


def _from_jsonable(value):
    if isinstance(value, list):
        return [_from_jsonable(v) for v in value]
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(_from_jsonable(v) for v in value["__tuple__"])
        if "__steps__" in value:
            return [(n, estimator_from_config(c)) for n, c in value["__steps__"]]
        if "__class__" in value:
            return estimator_from_config(value)
        if "__repr__" in value:
            raise ValueError(f"cannot rebuild a parameter stored only as its repr: {value['__repr__']}")
        return {k: _from_jsonable(v) for k, v in value.items()}
    return value


def param_to_json(value):
    """JSON-able form of one parameter value, as :func:`estimator_config` stores it.

    Examples
    --------
    >>> param_to_json(("a", 1.5))
    {'__tuple__': ['a', 1.5]}
    """
    return json_safe(value, encode=_encode_param)


def estimator_config(estimator):
    """JSON-able description of an estimator: its class path and ``get_params(deep=False)``.

    Nested estimators (e.g. the transformer inside ``MultiScaleFeatures`` or the steps of a
    ``FeatureUnion``) are described recursively.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> estimator_config(StandardScaler())["__class__"]
    'sklearn.preprocessing._data.StandardScaler'
    """
    cls = type(estimator)
    params = estimator.get_params(deep=False)
    return {"__class__": f"{cls.__module__}.{cls.__qualname__}", "params": {k: param_to_json(v) for k, v in params.items()}}


_TRUSTED_PREFIXES = ("medfeat.", "sklearn.")


def estimator_from_config(config):
    """Rebuild an (unfitted) estimator from :func:`estimator_config`'s output.

    Only classes from ``medfeat`` and ``sklearn`` are rebuilt, so a store cannot make this import
    arbitrary modules.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> estimator_from_config(estimator_config(StandardScaler(with_mean=False)))
    StandardScaler(with_mean=False)
    """
    path = config["__class__"]
    if not path.startswith(_TRUSTED_PREFIXES):
        raise ValueError(f"refusing to rebuild estimator class {path!r}: only medfeat and sklearn classes are allowed.")
    module_name, _, qualname = path.rpartition(".")
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    params = {k: _from_jsonable(v) for k, v in config["params"].items()}
    return obj(**params)


#: Parameters that change how features are computed, not their values: a resumed run may differ in them.
RUNTIME_PARAMS = ("batch_size", "progress", "n_jobs")


def strip_runtime(config):
    """``config`` without the :data:`RUNTIME_PARAMS` (at any depth).

    Examples
    --------
    >>> strip_runtime({"params": {"batch_size": 8, "layers": "bn2"}})
    {'params': {'layers': 'bn2'}}
    """
    if isinstance(config, dict):
        return {k: strip_runtime(v) for k, v in config.items() if k not in RUNTIME_PARAMS}
    if isinstance(config, list):
        return [strip_runtime(v) for v in config]
    return config


def canonical_json(obj):
    """JSON text with sorted keys, for comparing configurations.

    Examples
    --------
    >>> canonical_json({"b": 1, "a": [2]})
    '{"a": [2], "b": 1}'
    """
    return json.dumps(obj, sort_keys=True, default=str)


def feature_names(transformer, n_features):
    """The transformer's ``get_feature_names_out()`` when it has ``n_features`` of them, else
    ``feature0 ... feature<n-1>`` (names are metadata; a transformer without them still works).

    Examples
    --------
    >>> feature_names(object(), 2)
    ['feature0', 'feature1']
    """
    try:
        names = np.asarray(transformer.get_feature_names_out(), dtype=object)
        if len(names) == n_features:
            return [str(n) for n in names]
    except Exception:  # noqa: BLE001 - names are metadata; a transformer without them still works
        pass
    return [f"feature{i}" for i in range(n_features)]


def set_batch_size(transformer, batch_size):
    """Set every ``batch_size`` parameter of ``transformer`` (nested ones too: the CNN inside
    ``MultiScaleFeatures`` or a fusion ``FeatureUnion``) to ``batch_size``; returns the names set.

    The batch size changes how many patches go through the network at once, not the features, so it is
    a runtime setting (:data:`RUNTIME_PARAMS`), not part of a store's configuration.

    Examples
    --------
    >>> from sklearn.pipeline import FeatureUnion
    >>> from sklearn.preprocessing import StandardScaler
    >>> set_batch_size(StandardScaler(), 8)
    []
    """
    if not hasattr(transformer, "get_params"):
        return []
    names = [k for k in transformer.get_params(deep=True) if k == "batch_size" or k.endswith("__batch_size")]
    if names:
        transformer.set_params(**{k: int(batch_size) for k in names})
    return names
