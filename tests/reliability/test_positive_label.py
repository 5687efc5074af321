"""Issue 10 item 4: one positive-class rule everywhere, recorded in the model, and --positive-label.

At commit 1e25e0f ``train`` took the last sorted label as positive while ``heatmap`` took class 1 when
present: with labels Tumor/normal (``"normal"`` sorts after ``"Tumor"``) or 1/2 the heatmaps drew the
probability of the wrong class.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.svm import LinearSVC

from medfeat.classifiers import positive_class
from medfeat.cli import main
from medfeat.pipelines import SlideHeatmap, extract_slide_features, load_slide_features, train_from_feature_stores
from medfeat.pipelines.heatmap import positive_scores
from medfeat.slides import write_synthetic_slide

SQUARE = [[200, 200], [700, 200], [700, 700], [200, 700]]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("pos")
    out = []
    for i in range(2):
        s = write_synthetic_slide(d / f"s{i}.tif", size=(1024, 1024), mpp=0.5, lesions=[SQUARE], seed=i)
        p = extract_slide_features(s.path, "color", mpp=1.0, size=32, out=d / "f", progress=False,
                                   annotations=s.lesions, tissue="gray")
        out.append((s.path, p))
    return d, out


def _labels_csv(d, stores, names):
    rows = []
    for slide, store in stores:
        grid, _, labels, _ = load_slide_features(store)
        assert 0 < labels.sum() < len(labels)
        for (x, y), lab in zip(grid.coords, labels):
            rows.append({"slide": slide.name, "x": int(x), "y": int(y), "label": names[int(lab)]})
    path = d / f"labels_{names[1]}.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("names, positive", [({0: "normal", 1: "Tumor"}, "Tumor"), ({0: 1, 1: 2}, 2)])
def test_heatmap_draws_the_trained_positive_class(stores, names, positive):
    d, pairs = stores
    csv = _labels_csv(d, pairs, names)
    with pytest.raises(ValueError, match="positive_label"):
        train_from_feature_stores(d / "f", labels=csv, classifier="logreg", cv=2)
    res = train_from_feature_stores(d / "f", labels=csv, classifier="logreg", cv=2, positive_label=str(positive))
    assert res.model.positive_label_ == positive
    # the out-of-fold scores and the report are about the positive class (lesion patches score high)
    lesion = np.asarray(res.y == positive)
    assert roc_auc_score(lesion, res.oof_scores) > 0.9 and res.report.auc > 0.9
    slide, store = pairs[0]
    hm = SlideHeatmap(res.model, mpp=1.0, size=32, tissue="gray", progress=False).predict(slide)
    _, _, truth, _ = load_slide_features(store)
    assert np.array_equal(hm.grid.coords, load_slide_features(store)[0].coords)
    assert roc_auc_score(truth, hm.scores) > 0.9  # P(lesion), not P(background)


def test_positive_scores_follow_the_rule_for_proba_and_decision_models():
    X = np.array([[0.0], [0.2], [1.0], [1.2]])
    y = np.array(["Tumor", "Tumor", "normal", "normal"])  # Tumor is classes_[0]
    for model in (LogisticRegression().fit(X, y), LinearSVC().fit(X, y)):
        with pytest.raises(ValueError, match="positive_label"):
            positive_scores(model, X)
        s, _ = positive_scores(model, X, positive_label="Tumor")
        assert s[0] > s[3]  # Tumor rows score higher
    model = LogisticRegression().fit(X, [1, 1, 2, 2])
    s, _ = positive_scores(model, X, positive_label="2")
    assert s[3] > s[0]


def test_a_positive_label_contradicting_the_model_is_refused(stores):
    d, pairs = stores
    res = train_from_feature_stores(d / "f", classifier="logreg", cv=2)  # stored 0/1 labels: 1 is positive
    assert res.model.positive_label_ == 1
    X = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="contradicts"):
        positive_scores(res.model, X, positive_label=0)


@pytest.mark.parametrize("classes, given, expected", [
    ([0, 1], None, 1), ([False, True], None, True), ([1, 2], "2", 2), (["a", "b"], "a", "a"), ([0, 1], 0, 0),
])
def test_positive_class_rule(classes, given, expected):
    assert positive_class(classes, given) == expected


@pytest.mark.parametrize("classes, given", [([1, 2], None), (["Tumor", "normal"], None), ([0, 1], "x"),
                                            ([0, 1, 2], None)])
def test_positive_class_refuses_to_guess(classes, given):
    with pytest.raises(ValueError):
        positive_class(classes, given)


def test_cli_train_needs_positive_label_for_non_binary_labels(stores, capsys):
    d, pairs = stores
    csv = _labels_csv(d, pairs, {0: "normal", 1: "Tumor"})
    out = d / "m.skops"
    rc = main(["train", str(d / "f"), "--labels", str(csv), "--classifier", "logreg", "--cv", "2", "--out", str(out),
               "-q"])
    assert rc == 1 and "--positive-label" in capsys.readouterr().err
    rc = main(["train", str(d / "f"), "--labels", str(csv), "--classifier", "logreg", "--cv", "2", "--out", str(out),
               "-q", "--positive-label", "Tumor"])
    assert rc == 0 and out.exists()
