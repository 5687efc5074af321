"""compare_image_folder / `medfeat compare` with the domain-shift levers, and CV with training copies."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from medfeat.cli import main
from medfeat.features import standardize_by_group
from medfeat.pipelines import cross_validate_groups
from medfeat.pipelines.compare import compare_image_folder


def _he_folder(root, rng, per_class=8):
    """Two classes (pale / dark H&E), 4 slides with different stain strengths."""
    S = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]])
    S /= np.linalg.norm(S, axis=1, keepdims=True)
    rows = []
    for c, scale in (("pale", 0.5), ("dark", 1.3)):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            slide = i % 4
            conc = rng.uniform(0, 1.2, (20, 20, 2)) * scale * (0.8 + 0.15 * slide)
            img = (255 * np.exp(-(conc @ S))).round().clip(0, 255).astype(np.uint8)
            rel = f"{c}/{c}_{i}.png"
            Image.fromarray(img).save(root / rel)
            rows.append((rel, c, f"S{slide}"))
    pd.DataFrame(rows, columns=["relative_path", "label", "source_slide"]).to_csv(root / "manifest.csv", index=False)


class _Sizes(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):
        self.n_fit_ = len(X)
        self.lr_ = LogisticRegression().fit(X, y)
        self.classes_ = self.lr_.classes_
        return self

    def predict(self, X):
        return self.lr_.predict(X)

    def predict_proba(self, X):
        return self.lr_.predict_proba(X)


def test_cross_validate_groups_adds_copies_to_training_folds_only():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (20, 2)), rng.normal(3, 1, (20, 2))]
    y = np.repeat([0, 1], 20)
    groups = np.arange(40) // 4
    copies = [X + 100.0, X - 100.0]  # far-away copies: they change the fit, never the test rows
    cv = cross_validate_groups(_Sizes(), X, y, groups, n_splits=5, train_copies=copies, return_estimators=True)
    for est, (train, test) in zip(cv.estimators, cv.splits):
        assert est.n_fit_ == 3 * len(train)
        np.testing.assert_allclose(cv.scores[test], est.predict_proba(X[test])[:, 1])
    plain = cross_validate_groups(_Sizes(), X, y, groups, n_splits=5, return_estimators=True)
    assert all(e.n_fit_ == len(tr) for e, (tr, _) in zip(plain.estimators, plain.splits))
    with pytest.raises(ValueError, match="train_copies"):
        cross_validate_groups(_Sizes(), X, y, groups, train_copies=[X[:5]])


def test_compare_with_levers_notes_caches_and_cli(tmp_path):
    rng = np.random.default_rng(0)
    _he_folder(tmp_path / "data", rng)
    kw = dict(feature_sets=["color"], classifiers=["logreg"], n_splits=4, progress=False, n_bootstrap=20)
    res = compare_image_folder(tmp_path / "data", tmp_path / "out", stain="macenko", augment="hed", n_copies=2,
                               tta=True, slide_standardize=True, **kw)
    notes = " ".join(res.notes)
    for word in ("Stain normalisation: macenko", "2 hed-jittered copies", "8 dihedral views", "Slide standardisation"):
        assert word in notes
    cached = sorted(p.name for p in (tmp_path / "out").glob("features_*.npz"))
    assert cached == ["features_color__stain-macenko__tta8.npz",
                      "features_color__stain-macenko__tta8__aug-hed-seed0.npz",
                      "features_color__stain-macenko__tta8__aug-hed-seed1.npz"]
    # slide standardisation: the table the CV saw is the per-slide standardised cached table
    with np.load(tmp_path / "out" / "features_color__stain-macenko__tta8.npz") as z:
        X = z["X"]
    from medfeat.classifiers import make_classifier
    from medfeat.datasets import load_image_folder

    ds = load_image_folder(tmp_path / "data")
    copies = []
    for k in range(2):
        with np.load(tmp_path / "out" / f"features_color__stain-macenko__tta8__aug-hed-seed{k}.npz") as z:
            copies.append(standardize_by_group(z["X"], ds.groups))
    cv = cross_validate_groups(make_classifier("logreg"), standardize_by_group(X, ds.groups), ds.labels, ds.groups,
                               n_splits=4, random_state=0, train_copies=copies)
    assert res.table["auc"].iloc[0] == pytest.approx(cv.pooled()["roc_auc"], abs=1e-6)
    with pytest.raises(ValueError, match="stain must be one of"):
        compare_image_folder(tmp_path / "data", tmp_path / "bad", stain="ruifrok", **kw)
    rc = main(["compare", str(tmp_path / "data"), "--out", str(tmp_path / "cli"), "--feature-sets", "color",
               "--classifiers", "logreg", "--cv", "4", "--n-bootstrap", "20", "--stain", "reinhard",
               "--slide-standardize", "--quiet"])
    assert rc == 0
    assert (tmp_path / "cli" / "features_color__stain-reinhard.npz").is_file()
