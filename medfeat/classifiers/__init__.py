"""Classifier presets for frozen features and patch-to-slide score aggregation.

Importing this package does not import xgboost (the ``"xgboost"`` preset imports it when fitted).

Examples
--------
>>> from medfeat.classifiers import make_classifier
>>> make_classifier("rbf_svm").steps[-1][1].kernel
'rbf'
"""

from .aggregate import aggregate_slide_scores
from .positive import class_scores, positive_class, positive_scores
from .presets import XGBoostClassifier, decision_scores, list_classifiers, make_classifier

__all__ = [
    "XGBoostClassifier",
    "aggregate_slide_scores",
    "class_scores",
    "decision_scores",
    "list_classifiers",
    "make_classifier",
    "positive_class",
    "positive_scores",
]
