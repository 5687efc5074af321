"""compare: not-group-aware warning kept in the results, best-of-N marked optimistic, nested grouped CV,
grouping by file-name pattern, the chosen model saved and applied by predict_image_dir."""

import json

import numpy as np
import pytest
from PIL import Image

from medfeat.pipelines import compare_image_folder, predict_image_dir


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    rng = np.random.default_rng(0)
    # 12 persons, 3 images each; a person's images share a brightness offset (correlated within person)
    for person in range(12):
        cls = "pneumonia" if person % 2 else "normal"
        off = rng.normal(0, 25)
        (root / cls).mkdir(exist_ok=True)
        for k in range(3):
            level = (140 if cls == "pneumonia" else 110) + off
            img = np.clip(rng.normal(level, 30, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / cls / f"person{person}_{k}.png")
    return root


def test_ungrouped_compare_says_so_and_marks_best_of_n(folder, tmp_path):
    # Misleading point 8: without a manifest CV is not group-aware (a warning that scrolled away, then a
    # reassuring note) and the best of N configurations was reported on the same out-of-fold scores.
    with pytest.warns(UserWarning, match="NOT GROUP-AWARE"):
        res = compare_image_folder(folder, tmp_path / "a", ["color", "glcm"], ["logreg", "knn"], n_splits=3,
                                   progress=False, group_column=None, n_bootstrap=0)
    assert res.notes[0].startswith("NOT GROUP-AWARE")
    assert not any("no group on both sides" in n for n in res.notes)
    assert any(n.startswith("Best of 4") and "optimistic" in n for n in res.notes)
    saved = json.loads((tmp_path / "a" / "results.json").read_text())
    assert saved["nested"]["outer_folds"] == 3 and len(saved["nested"]["chosen"]) == 3
    assert "NOT GROUP-AWARE" in (tmp_path / "a" / "table.md").read_text()


def test_group_regex_nested_cv_saved_model_and_predict(folder, tmp_path):
    res = compare_image_folder(folder, tmp_path / "b", ["color", "lbp"], ["logreg"], n_splits=3, progress=False,
                               group_regex=r"person(\d+)_", n_bootstrap=200)
    saved = json.loads((tmp_path / "b" / "results.json").read_text())
    assert saved["n_groups"] == 12
    nested = saved["nested"]
    assert 0.0 <= nested["auc"] <= 1.0 and set(nested["chosen"]) <= {"color + logreg", "lbp + logreg"}
    assert any("Nested grouped CV" in n for n in res.notes)
    model = tmp_path / "b" / "model.skops"
    assert model.exists() and res.files["model"] == model
    # predict: the saved pipeline on the raw images reproduces a fit of the same classifier on the features
    df = predict_image_dir(model, folder, tmp_path / "pred.csv")
    assert len(df) == 36 and set(df["y_true"]) == {"normal", "pneumonia"}
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(df["y_true"] == "pneumonia", df["score"]) > 0.7  # resubstitution, sanity only
    side = json.loads((tmp_path / "pred.csv.json").read_text())
    assert "not a probability" in side["score_name"]
    with pytest.raises(ValueError, match="does not match"):
        compare_image_folder(folder, tmp_path / "c", ["color"], ["logreg"], n_splits=3, progress=False,
                             group_regex=r"patient(\d+)", n_bootstrap=0)
