import os
import zipfile

import numpy as np
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import FunctionTransformer

from medfeat.classifiers import decision_scores, make_classifier
from medfeat.pipelines.patch import make_patch_pipeline
from medfeat.pipelines.persist import UntrustedModelError, load_model, save_model


def _images(rng, n=16):
    y = np.repeat(["benign", "tumour"], n // 2)
    X = np.stack([np.clip(rng.normal(80 if c == "benign" else 170, 25, (20, 20, 3)), 0, 255) for c in y])
    return X.astype(np.uint8), y


class _Doubler(TransformerMixin, BaseEstimator):
    """A custom type skops does not know: a file holding it must be refused by default."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X) * 2


@pytest.mark.parametrize("clf", ["logreg", "random_forest", "xgboost", "knn"])
def test_image_pipeline_round_trip_gives_identical_scores(tmp_path, rng, clf):
    X, y = _images(rng)
    params = dict(n_estimators=10) if clf in ("random_forest", "xgboost") else None
    pipe = make_patch_pipeline("color", clf, classifier_params=params).fit(X, y)
    path = save_model(pipe, tmp_path / "model.skops", {"mpp": 0.5, "size": 20})
    assert path.is_file() and not list(tmp_path.glob("*.tmp"))
    loaded, meta = load_model(path)
    np.testing.assert_array_equal(decision_scores(loaded, X), decision_scores(pipe, X))
    assert loaded.predict(X).tolist() == pipe.predict(X).tolist()
    assert meta["mpp"] == 0.5 and meta["size"] == 20
    assert meta["pipeline"]["steps"][0][0] == "features"
    assert meta["pipeline"]["features"]["class"].endswith("ColorFeatures")
    assert meta["pipeline"]["classes"] == ["benign", "tumour"]
    assert meta["medfeat_version"] and meta["sklearn_version"]


def test_unknown_type_is_refused_unless_trusted(tmp_path, rng):
    X = rng.normal(size=(20, 3))
    y = np.repeat([0, 1], 10)
    pipe = make_patch_pipeline(_Doubler(), "logreg").fit(X, y)
    path = save_model(pipe, tmp_path / "m.skops")
    type_name = f"{_Doubler.__module__}._Doubler"
    with pytest.raises(UntrustedModelError, match="_Doubler"):
        load_model(path)
    loaded = load_model(path, trusted=[type_name]).pipeline
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    assert load_model(path, trusted=True).pipeline.predict(X).tolist() == pipe.predict(X).tolist()


def test_function_reference_is_refused(tmp_path):
    # A stored function is how a malicious file would run a command (e.g. os.system): never trusted silently.
    pipe = make_patch_pipeline(FunctionTransformer(os.system), "logreg")
    path = save_model(pipe, tmp_path / "m.skops")
    with pytest.raises(UntrustedModelError, match="system"):
        load_model(path)


def test_bad_files_and_metadata(tmp_path):
    clf = make_classifier("logreg").fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="JSON"):
        save_model(clf, tmp_path / "m.skops", {"when": object()})
    with pytest.raises(ValueError, match="not found"):
        load_model(tmp_path / "absent.skops")
    (tmp_path / "junk.skops").write_bytes(b"\x80\x04 pickle bytes, not a zip")
    with pytest.raises(ValueError, match="not a skops model"):
        load_model(tmp_path / "junk.skops")
    sio.dump(clf, tmp_path / "plain.skops")  # a skops file but no medfeat envelope
    with pytest.raises(ValueError, match="not a medfeat model"):
        load_model(tmp_path / "plain.skops")
    path = save_model(clf, tmp_path / "m.skops")
    assert zipfile.is_zipfile(path)
    with pytest.raises(ValueError, match="single string"):
        load_model(path, trusted="numpy.log1p")


def test_deep_pipeline_round_trip_holds_no_torch_object(tmp_path, rng):
    # DeepFeatures keeps only parameters in the file (its network is rebuilt from them), so the only
    # non-default type is medfeat's own estimator class, trusted by default.
    X = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    y = np.repeat([0, 1], 6)
    pipe = make_patch_pipeline("deep", "logreg", feature_params=dict(layers="blocks.1", input_size=None)).fit(
        X, y
    )
    path = save_model(pipe, tmp_path / "deep.skops", {"size": 32})
    assert sio.get_untrusted_types(file=path) == ["medfeat.features.deep.DeepFeatures"]
    with zipfile.ZipFile(path) as zf:
        assert not any("torch" in zf.read(n).decode("latin-1") for n in zf.namelist() if n.endswith(".json"))
    loaded, meta = load_model(path)
    np.testing.assert_array_equal(decision_scores(loaded, X), decision_scores(pipe, X))
    assert meta["pipeline"]["features"]["params"]["layers"] == "blocks.1"


def test_failed_atomic_write_leaves_no_file(tmp_path):
    from medfeat._checks import write_atomic

    def half_then_fail(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(tmp_path / "model.skops", half_then_fail)
    assert list(tmp_path.iterdir()) == []
