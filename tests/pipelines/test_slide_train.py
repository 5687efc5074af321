"""Training from feature stores: labels from CSVs and annotations, group-aware CV, single class, persistence."""

import numpy as np
import pandas as pd
import pytest
import shapely

from medfeat.features import ColorFeatures
from medfeat.pipelines import (
    ClassRule,
    SlidePatchClassifier,
    extract_slide_features,
    load_model,
    load_slide_features,
    load_training_set,
    save_model,
    train_from_feature_stores,
)
from medfeat.slides import SlideReader, annotations_to_geojson, read_patches, write_synthetic_slide

MPP, SIZE, L0 = 1.0, 16, 32


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("slide_train")
    out = {}
    for i, name in enumerate(["s0", "s1", "s2", "s3"]):
        s = write_synthetic_slide(d / f"{name}.tif", size=(768, 768), mpp=0.5, lesions=2, seed=10 + i)
        out[name] = (s, extract_slide_features(s.path, ColorFeatures(), mpp=MPP, size=SIZE, out=d / "feats",
                                               progress=False))
    return d, out


def test_slide_level_labels_csv(stores, tmp_path):
    d, out = stores
    csv = tmp_path / "labels.csv"
    # slides named by full path or by stem both work
    pd.DataFrame({"slide": [str(out["s0"][0].path), "s1", "s2"], "label": [1, 0, 1]}).to_csv(csv, index=False)
    with pytest.warns(RuntimeWarning, match="s3.h5"):
        _, y, groups, used, _ = load_training_set(d / "feats", labels=csv)
    sizes = {k: len(load_slide_features(p)[1]) for k, (_, p) in out.items()}
    assert len(y) == sizes["s0"] + sizes["s1"] + sizes["s2"] and [p.stem for p in used] == ["s0", "s1", "s2"]
    expected = {"s0": 1, "s1": 0, "s2": 1}
    assert all(y[groups == g].tolist() == [expected[g]] * sizes[g] for g in expected)


def test_patch_level_labels_csv_selects_rows(stores, tmp_path):
    d, out = stores
    grid, F, _, _ = load_slide_features(out["s1"][1])
    pick = [0, 3, 5]
    csv = tmp_path / "patch.csv"
    pd.DataFrame({"slide": "s1", "x": grid.coords[pick, 0], "y": grid.coords[pick, 1], "label": [1, 0, 1]}).to_csv(
        csv, index=False)
    with pytest.warns(RuntimeWarning):
        X, y, groups, _, _ = load_training_set(d / "feats", labels=csv)
    np.testing.assert_array_equal(X, F[pick])
    assert y.tolist() == [1, 0, 1] and set(groups) == {"s1"}


def test_annotation_labels_and_unannotated_slide_is_negative(stores, tmp_path):
    d, out = stores
    ann = tmp_path / "ann"
    ann.mkdir()
    for name in ("s0", "s1", "s2"):
        annotations_to_geojson(out[name][0].lesions, ann / f"{name}.geojson")
    # s3 has no annotation file: an error unless the rule (or a labels CSV) says it is a normal slide
    with pytest.raises(FileNotFoundError, match="'s3'.*--unannotated"):
        load_training_set(d / "feats", annotations=ann)
    (tmp_path / "normal.csv").write_text("slide,label\ns3,0\n")
    _, y_csv, groups_csv, _, _ = load_training_set(d / "feats", annotations=ann, labels=tmp_path / "normal.csv")
    _, y, groups, _, _ = load_training_set(d / "feats", annotations=ann, rule=ClassRule(unannotated="negative"))
    np.testing.assert_array_equal(y_csv, y)
    np.testing.assert_array_equal(groups_csv, groups)
    for name in ("s0", "s1", "s2"):
        grid = load_slide_features(out[name][1])[0]
        union = shapely.union_all([shapely.Polygon(p) for p in out[name][0].lesions])
        frac = np.array([shapely.box(x, yy, x + L0, yy + L0).intersection(union).area / L0**2 for x, yy in grid.coords])
        # rasterised at L0 / 8 px per mask pixel: agree with the exact overlap except within a pixel of 0.5
        clear = np.abs(frac - 0.5) > 0.1
        np.testing.assert_array_equal(y[groups == name][clear], (frac >= 0.5)[clear].astype(int))
    assert y[groups == "s3"].sum() == 0 and (groups == "s3").sum() > 0


def test_group_aware_cv_never_puts_a_slide_on_both_sides(stores, tmp_path, monkeypatch):
    import sklearn.model_selection as ms

    d, _ = stores
    folds = []

    class Recording(ms.StratifiedGroupKFold):
        def split(self, X, y=None, groups=None):
            for train, test in super().split(X, y, groups):
                folds.append((np.asarray(groups)[train], np.asarray(groups)[test]))
                yield train, test

    # training runs the one group-aware CV engine, cross_validate_groups, which splits with this class
    monkeypatch.setattr("medfeat.pipelines.patch.StratifiedGroupKFold", Recording)
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"slide": ["s0", "s1", "s2", "s3"], "label": [1, 0, 1, 0]}).to_csv(csv, index=False)
    res = train_from_feature_stores(d / "feats", labels=csv, classifier="logreg", cv=5)
    # 2 slides per class bound the folds to 2
    assert len(folds) == 2
    for train_groups, test_groups in folds:
        assert not set(train_groups) & set(test_groups)
    assert res.oof_scores is not None and res.oof_scores.shape == res.y.shape
    assert res.report.n_groups == 4
    assert f"trained on {len(res.y)} patches from 4 slides" in res.summary() and "\n" not in repr(res)


def test_single_class_is_a_clear_error(stores, tmp_path):
    d, _ = stores
    csv = tmp_path / "one.csv"
    pd.DataFrame({"slide": ["s0", "s1"], "label": [1, 1]}).to_csv(csv, index=False)
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="single class"):
        train_from_feature_stores(d / "feats", labels=csv)
    # both given: CSV rows win; s2 is in neither, so it is an error by default
    with pytest.raises(FileNotFoundError, match="'s2'"):
        load_training_set(d / "feats", labels=csv, annotations=tmp_path)
    with pytest.raises(FileNotFoundError, match="labels CSV not found"):
        load_training_set(d / "feats", labels=tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="no feature stores"):
        load_training_set(tmp_path, labels=csv)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"name": ["s0"], "y": [1]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="'slide' and 'label'"):
        load_training_set(d / "feats", labels=bad)


def test_trained_model_scores_raw_patches_and_survives_save_load(stores, tmp_path):
    d, out = stores
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"slide": ["s0", "s1", "s2", "s3"], "label": [1, 0, 1, 0]}).to_csv(csv, index=False)
    res = train_from_feature_stores(d / "feats", labels=csv, classifier="logreg", cv=2)
    model = res.model
    assert isinstance(model, SlidePatchClassifier)
    assert (model.mpp, model.size, model.stride, tuple(model.scales)) == (MPP, SIZE, SIZE, (1.0,))
    # scoring raw patches re-computes the stored features: same scores as the classifier on the store rows
    s0 = out["s0"]
    grid, F, _, _ = load_slide_features(s0[1])
    with SlideReader.open(s0[0].path) as reader:
        patches = read_patches(reader, grid)
    np.testing.assert_allclose(model.predict_proba(patches), model.classifier_.predict_proba(F), atol=1e-6)
    loaded = load_model(save_model(model, tmp_path / "m.skops")).pipeline
    np.testing.assert_array_equal(loaded.predict_proba(patches), model.predict_proba(patches))
