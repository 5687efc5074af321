"""Feature transformers by name, and the JSON configuration that rebuilds them.

:func:`make_features` is the one feature factory of the slide pipelines: it turns a preset name (or a
transformer) into the unfitted transformer a run uses, wrapping it for several fields of view.
:func:`estimator_config` describes an estimator as JSON (class path + ``get_params(deep=False)``, nested
estimators recursively); feature stores record it, and :func:`estimator_from_config` rebuilds the same
transformer at training and prediction time, but only classes on an explicit allow-list with JSON-typed
parameters (a store is a file people exchange: it must not name code to run).
"""

from __future__ import annotations

import json
import os

import numpy as np

from .._checks import json_safe

__all__ = [
    "ALLOWED_FEATURE_CLASSES",
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


def make_features(features="deep", *, backbone=None, layers=None, scales=(1,), batch_size=None, input_size=None,
                  weights="DEFAULT"):
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
    weights : "DEFAULT", None or path, default "DEFAULT"
        Weights of the deep backbone: its pretrained ImageNet weights, a random (seeded) initialisation
        (None), or a local checkpoint file (loaded with ``torch.load(weights_only=True)``).

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

    if (backbone is not None or layers is not None) and features not in ("deep", "fusion"):
        raise ValueError(f"backbone/layers apply to the deep or fusion features, not {features!r}.")
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
        if weights != "DEFAULT":
            deep_kw["weights"] = weights
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


# The only classes a configuration read from a file (a feature store) may rebuild: medfeat's feature
# transformers and scikit-learn's two containers. Their constructors only store parameters (the
# scikit-learn contract), and every parameter is checked to be plain JSON data or a nested configuration
# that is itself on this list. Names are looked up in this table, never imported: a store naming
# ``sklearn.utils...`` or any other callable is refused, whatever the file says.
ALLOWED_FEATURE_CLASSES = (
    "CLAHE",
    "ColorFeatures",
    "DeepFeatures",
    "DihedralMean",
    "GIST",
    "GLCMFeatures",
    "HandcraftedFeatures",
    "LBPHistogram",
    "MultiScaleFeatures",
)
_ALLOWED_SKLEARN = ("FeatureUnion", "Pipeline")
_MAX_DEPTH = 32


def _allowed_classes():
    """``recorded class path -> class`` for the allow-list (the module path and the public path)."""
    import sklearn.pipeline

    import medfeat.features as mf

    table = {}
    for name in ALLOWED_FEATURE_CLASSES:
        cls = getattr(mf, name)
        table[f"medfeat.features.{name}"] = cls
        table[f"{cls.__module__}.{cls.__qualname__}"] = cls
    for name in _ALLOWED_SKLEARN:
        cls = getattr(sklearn.pipeline, name)
        table[f"sklearn.pipeline.{name}"] = cls
        table[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return table


def _param_names(cls):
    import inspect

    sig = inspect.signature(cls.__init__)
    return {n for n, p in sig.parameters.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _rebuild(value, where, table, depth):
    """A parameter value from its JSON form: plain data, tuples, (name, estimator) steps and nested
    allow-listed estimators; anything else is refused."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where}: configuration nested deeper than {_MAX_DEPTH} levels.")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_rebuild(v, f"{where}[{i}]", table, depth + 1) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected JSON data, got {type(value).__name__}.")
    if "__class__" in value:
        return _build(value, where, table, depth + 1)
    if "__tuple__" in value:
        items = value["__tuple__"]
        if set(value) != {"__tuple__"} or not isinstance(items, list):
            raise ValueError(f"{where}: malformed tuple {str(value)[:80]}.")
        return tuple(_rebuild(v, f"{where}[{i}]", table, depth + 1) for i, v in enumerate(items))
    if "__steps__" in value:
        steps = value["__steps__"]
        if set(value) != {"__steps__"} or not isinstance(steps, list) or not all(
                isinstance(st, list) and len(st) == 2 and isinstance(st[0], str) and isinstance(st[1], dict)
                for st in steps):
            raise ValueError(f"{where}: malformed (name, estimator) steps.")
        return [(n, _build(c, f"{where}[{n!r}]", table, depth + 1)) for n, c in steps]
    if "__repr__" in value:
        raise ValueError(f"{where}: cannot rebuild a parameter stored only as its repr: {str(value['__repr__'])[:80]}")
    if not all(isinstance(k, str) for k in value):
        raise ValueError(f"{where}: expected a JSON object with text keys.")
    return {k: _rebuild(v, f"{where}[{k!r}]", table, depth + 1) for k, v in value.items()}


def _build(config, where, table, depth):
    if not isinstance(config, dict) or not isinstance(config.get("__class__"), str) or not isinstance(
            config.get("params", {}), dict):
        raise ValueError(f"{where}: expected an estimator configuration {{'__class__': str, 'params': {{...}}}}.")
    path = config["__class__"]
    cls = table.get(path)
    if cls is None:
        raise ValueError(
            f"{where}: refusing to rebuild {path!r}: only medfeat's feature transformers "
            f"({', '.join(ALLOWED_FEATURE_CLASSES)}) and sklearn's FeatureUnion/Pipeline are rebuilt from a "
            "file. For another transformer pass your own (train_from_feature_stores(features=...)); it is "
            "checked against the recorded configuration instead."
        )
    known = _param_names(cls)
    params = {}
    for key, val in config.get("params", {}).items():
        if key not in known:
            raise ValueError(f"{where}: {cls.__name__} has no parameter {key!r}.")
        params[key] = _rebuild(val, f"{where}.{key}", table, depth + 1)
    if cls.__name__ == "Pipeline" and params.get("memory") is not None:
        # joblib caching at a path read from the file would load pickles from there
        raise ValueError(f"{where}: a Pipeline rebuilt from a file must have memory=None, got {params['memory']!r}.")
    return cls(**params)


def estimator_from_config(config):
    """Rebuild an (unfitted) feature transformer from :func:`estimator_config`'s output, safely.

    The configuration usually comes from a file (a feature store someone shared), so nothing in it is
    imported or called by name: the class must be on an explicit allow-list (medfeat's feature
    transformers, ``ALLOWED_FEATURE_CLASSES``, and sklearn's ``FeatureUnion``/``Pipeline`` holding them),
    every parameter must be one the class's constructor takes, and every value must be JSON data
    (numbers, text, lists, objects, tuples) or a nested configuration that passes the same checks.

    Raises
    ------
    ValueError
        Naming the refused class or parameter.

    Examples
    --------
    >>> from medfeat.features import LBPHistogram
    >>> estimator_from_config(estimator_config(LBPHistogram(radii_points=((8, 1),))))
    LBPHistogram(radii_points=((8, 1),))
    >>> estimator_from_config({"__class__": "sklearn.utils._testing.SomeCallable", "params": {}})
    Traceback (most recent call last):
    ...
    ValueError: transformer: refusing to rebuild 'sklearn.utils._testing.SomeCallable': ...
    """
    try:
        return _build(config, "transformer", _allowed_classes(), 0)
    except RecursionError:
        raise ValueError("transformer: configuration nested too deeply.") from None


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
