"""Save and load trained pipelines as one safe file (skops.io), with their feature configuration.

Why skops and not pickle/joblib: unpickling runs whatever code the file names, so a model file from a
colleague, a paper's repository or a shared drive could execute arbitrary commands the moment it is
loaded. A skops file is a zip of JSON descriptions plus NumPy arrays; loading only rebuilds objects
of types that are explicitly trusted, and :func:`load_model` refuses a file holding any type outside
scikit-learn's / NumPy's safe set and medfeat's own estimators unless the caller names it (or passes
``trusted=True`` after inspecting the list in the error message).
"""

import datetime
import io
import json
import zipfile
from pathlib import Path
from typing import NamedTuple

from .._checks import json_safe, write_atomic

__all__ = [
    "DEFAULT_TRUSTED_TYPES",
    "SavedModel",
    "UntrustedModelError",
    "describe_pipeline",
    "load_model",
    "save_model",
]

_FORMAT = "medfeat-model"
_FORMAT_VERSION = 1


# scikit-learn internals that skops does not trust by default but that only hold arrays restored
# through their own Cython __setstate__ (no callable is loaded): the tree of every tree ensemble and
# the neighbour-search trees with their distance metrics.
DEFAULT_TRUSTED_TYPES = (
    "sklearn.metrics._dist_metrics.EuclideanDistance32",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance32",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance32",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.tree._tree.Tree",
)


class SavedModel(NamedTuple):
    """A loaded model: the fitted pipeline and the metadata saved with it."""

    pipeline: object
    metadata: dict


class UntrustedModelError(ValueError):
    """A model file holds object types that are not trusted; loading it could run foreign code."""


def _describe_estimator(value):
    """Hook of :func:`json_safe`: an estimator as its class path and parameters."""
    if hasattr(value, "get_params") and not isinstance(value, type):
        return {
            "class": f"{type(value).__module__}.{type(value).__qualname__}",
            "params": json_safe(value.get_params(deep=False), encode=_describe_estimator),
        }
    return json_safe.NOT_HANDLED


def describe_pipeline(pipeline):
    """JSON-able description of a pipeline: its steps, the feature step's parameters and the classes.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> describe_pipeline(make_pipeline(StandardScaler()))["steps"]
    [['standardscaler', 'sklearn.preprocessing._data.StandardScaler']]
    """
    desc = {"class": f"{type(pipeline).__module__}.{type(pipeline).__qualname__}"}
    steps = getattr(pipeline, "steps", None)
    if steps is not None:
        desc["steps"] = [[name, f"{type(step).__module__}.{type(step).__qualname__}"] for name, step in steps]
        features = dict(steps).get("features")
        if features is not None and hasattr(features, "get_params"):
            desc["features"] = json_safe(features, encode=_describe_estimator)
            names = None
            try:
                names = features.get_feature_names_out()
            except Exception:  # unfitted, or a transformer without names: the description stays partial
                names = None
            if names is not None:
                desc["n_features"] = len(names)
    classes = getattr(pipeline, "classes_", None)
    if classes is not None:
        desc["classes"] = json_safe(list(classes))
    return desc


def save_model(pipeline, path, metadata=None):
    """Save a fitted pipeline and its metadata to one ``.skops`` file.

    Parameters
    ----------
    pipeline : estimator
        Usually a fitted :class:`sklearn.pipeline.Pipeline` from
        :func:`medfeat.pipelines.make_patch_pipeline`.
    path : str or Path
        Output file (conventionally ``*.skops``). Written to a temporary name and renamed, so an
        interrupted save never leaves a truncated model behind.
    metadata : dict, optional
        JSON-serialisable information to keep with the model, e.g. ``{"mpp": 0.5, "size": 224}``.
        medfeat adds ``medfeat_version``, ``sklearn_version``, ``created`` (UTC, ISO 8601) and
        ``pipeline`` (steps, feature-step parameters, classes) unless given.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from medfeat.classifiers import make_classifier
    >>> clf = make_classifier("logreg").fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    >>> path = save_model(clf, Path(tempfile.mkdtemp()) / "m.skops", {"note": "toy"})
    >>> model, meta = load_model(path)
    >>> meta["note"], model.predict([[3.0]]).tolist()
    ('toy', [1])
    """
    import sklearn
    import skops.io as sio

    from .. import __version__

    meta = dict(metadata or {})
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"metadata must be JSON-serialisable (str keys; numbers, strings, lists, dicts): {exc}"
        ) from exc
    meta.setdefault("medfeat_version", __version__)
    meta.setdefault("sklearn_version", sklearn.__version__)
    meta.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    meta.setdefault("pipeline", describe_pipeline(pipeline))
    envelope = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        # Kept as a JSON string so that the metadata needs no trusted types to load.
        "metadata_json": json.dumps(meta),
        "pipeline": pipeline,
    }
    data = sio.dumps(envelope)
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path {str(path)!r} is a directory; expected a file name such as model.skops.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, lambda fh: fh.write(data))


def _medfeat_estimator_types():
    """Type names (``module.qualname``) of medfeat's public estimator classes: the explicit allow-list
    added to skops' trusted types. They hold parameters and fitted arrays only; the names come from
    medfeat's own ``__all__`` lists, never from the file."""
    from sklearn.base import BaseEstimator

    import medfeat.classifiers
    import medfeat.features
    import medfeat.pipelines

    names = set()
    for pkg in (medfeat.features, medfeat.classifiers, medfeat.pipelines):
        for attr in pkg.__all__:
            obj = getattr(pkg, attr)
            if isinstance(obj, type) and issubclass(obj, BaseEstimator):
                names.add(f"{obj.__module__}.{obj.__qualname__}")
    return names


def load_model(path, trusted=False):
    """Load a model saved by :func:`save_model`, refusing object types that are not trusted.

    Loading never runs code named by the file: ``skops.io`` rebuilds only the types it is told to
    trust. Trusted by default: skops' safe set (scikit-learn estimators, NumPy/SciPy containers,
    builtins), scikit-learn's tree and neighbour-search structures (``DEFAULT_TRUSTED_TYPES``), plus
    medfeat's own estimator classes (they hold parameters and arrays; e.g. a deep
    feature extractor rebuilds its network from its parameters). Anything else - a custom class, a
    function, an unknown third-party type - raises :class:`UntrustedModelError` listing the types,
    because rebuilding it could execute foreign code. Inspect the list; if you trust the file's
    source, pass those names (or ``trusted=True``).

    Parameters
    ----------
    path : str or Path
        A ``.skops`` file written by :func:`save_model`.
    trusted : bool or list of str, default=False
        False: only the default trusted types. A list: these fully qualified type names are trusted
        too (as reported by ``skops.io.get_untrusted_types``). True: trust everything in the file
        (only for files you made yourself or fully trust).

    Returns
    -------
    SavedModel
        ``(pipeline, metadata)`` named tuple.

    Raises
    ------
    UntrustedModelError
        The file holds types that are not trusted.
    ValueError
        The file is missing, not a skops zip, or not a medfeat model.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from medfeat.classifiers import make_classifier
    >>> clf = make_classifier("knn", n_neighbors=1).fit(np.array([[0.0], [1.0]]), ["a", "b"])
    >>> loaded = load_model(save_model(clf, Path(tempfile.mkdtemp()) / "m.skops"))
    >>> loaded.pipeline.predict([[0.9]]).tolist()
    ['b']
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} not found.")
    data = path.read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError(f"{path} is not a skops model file (expected a zip written by medfeat save_model).")
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # a corrupt or foreign zip: say which file
        raise ValueError(f"{path} is not a readable skops model file: {exc}") from exc
    if trusted is True:
        allowed = list(untrusted)
    else:
        if trusted is False or trusted is None:
            extra = []
        elif isinstance(trusted, str):
            raise ValueError("trusted must be True/False or a list of type names, got a single string.")
        else:
            extra = [t if isinstance(t, str) else f"{t.__module__}.{t.__qualname__}" for t in trusted]
        medfeat_types = _medfeat_estimator_types()
        allowed = [
            t for t in untrusted if t in DEFAULT_TRUSTED_TYPES or t in medfeat_types or t in extra
        ]
        refused = sorted(set(untrusted) - set(allowed))
        if refused:
            raise UntrustedModelError(
                f"{path} holds types that are not trusted: {refused}. Loading them could run code from the "
                "file's author. If you trust its source, pass load_model(path, trusted=[...those names...]) "
                "(or trusted=True)."
            )
    envelope = sio.loads(data, trusted=allowed)
    if not isinstance(envelope, dict) or envelope.get("format") != _FORMAT:
        raise ValueError(f"{path} is a skops file but not a medfeat model (no '{_FORMAT}' envelope).")
    if envelope.get("format_version", 0) > _FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer medfeat (format {envelope['format_version']}); "
            "upgrade medfeat to load it."
        )
    return SavedModel(envelope["pipeline"], json.loads(envelope["metadata_json"]))
