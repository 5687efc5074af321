import numpy as np
import pandas as pd
import pytest

from medfeat.classifiers import aggregate_slide_scores

SCORES = [0.1, 0.9, 0.5, 0.2, 0.3, 0.4, 0.5, 0.1]
GROUPS = ["s2", "s2", "s2", "s1", "s1", "s1", "s1", "s1"]
# s1 = [0.2, 0.3, 0.4, 0.5, 0.1], s2 = [0.1, 0.9, 0.5]


def test_max_by_hand():
    out = aggregate_slide_scores(SCORES, GROUPS)
    assert isinstance(out, pd.Series)
    assert list(out.index) == ["s1", "s2"]  # sorted groups
    assert out.to_dict() == pytest.approx({"s1": 0.5, "s2": 0.9})


def test_mean_by_hand():
    out = aggregate_slide_scores(SCORES, GROUPS, "mean")
    assert out.to_dict() == pytest.approx({"s1": 1.5 / 5, "s2": 1.5 / 3})


def test_topk_mean_by_hand_and_short_groups():
    out = aggregate_slide_scores(SCORES, GROUPS, "topk_mean", k=4)
    # s1 top 4 = 0.5, 0.4, 0.3, 0.2 -> 0.35 ; s2 has only 3 patches -> mean of all = 0.5
    assert out.to_dict() == pytest.approx({"s1": 0.35, "s2": 0.5})
    assert aggregate_slide_scores(SCORES, GROUPS, "topk_mean", k=1).to_dict() == pytest.approx(
        aggregate_slide_scores(SCORES, GROUPS, "max").to_dict()
    )


def test_quantile_by_hand():
    out = aggregate_slide_scores(SCORES, GROUPS, "quantile", q=0.75)
    # s1 sorted [0.1 .2 .3 .4 .5]: position 0.75*4 = 3 -> 0.4 ; s2 sorted [0.1 .5 .9]: position 1.5 -> 0.7
    assert out.to_dict() == pytest.approx({"s1": 0.4, "s2": 0.7})


def test_two_d_scores_aggregate_per_column():
    scores = np.column_stack([SCORES, 1 - np.asarray(SCORES)])
    out = aggregate_slide_scores(scores, GROUPS, "max")
    assert isinstance(out, pd.DataFrame) and out.shape == (2, 2)
    assert out.loc["s1"].tolist() == pytest.approx([0.5, 0.9])


def test_integer_groups():
    out = aggregate_slide_scores([1.0, 2.0, 3.0], [7, 3, 7])
    assert out.to_dict() == {3: 2.0, 7: 3.0}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="median"), "method"),
        (dict(method="topk_mean", k=0), "k must"),
        (dict(method="quantile", q=1.5), "q must"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        aggregate_slide_scores(SCORES, GROUPS, **kwargs)


def test_bad_shapes_and_nan():
    with pytest.raises(ValueError, match="groups"):
        aggregate_slide_scores([0.1, 0.2], ["a"])
    with pytest.raises(ValueError, match="NaN"):
        aggregate_slide_scores([0.1, np.nan], ["a", "a"])
    with pytest.raises(ValueError, match="empty"):
        aggregate_slide_scores([], [])
