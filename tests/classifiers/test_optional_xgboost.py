"""xgboost is an optional extra: asking for its preset without it installed says how to install it."""

import sys

import numpy as np
import pytest

from medfeat.classifiers import list_classifiers, make_classifier


def test_xgboost_preset_without_xgboost_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "xgboost", None)  # import xgboost now raises ImportError
    assert "xgboost" in list_classifiers()
    clf = make_classifier("xgboost")  # building the estimator needs no xgboost (sklearn contract: no work in __init__)
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ImportError, match=r"'xgboost' classifier.*pip install xgboost"):
        clf.fit(X, y)
    # the other presets are unaffected
    assert make_classifier("logreg").fit(X, y).score(X, y) > 0.5
