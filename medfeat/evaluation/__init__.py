"""Evaluation: ROC with DeLong / bootstrap CIs, operating points, paired tests, FROC, HTML reports.

Examples
--------
>>> import numpy as np
>>> from medfeat.evaluation import delong_auc_ci
>>> round(delong_auc_ci([0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9]).auc, 4)
0.8889
"""

from .compare import FeatureSetComparison, compare_feature_sets, markdown_table
from .delong import (
    AUCCI,
    ClusteredAUCTest,
    DeLongTest,
    clustered_auc_ci,
    clustered_auc_covariance,
    clustered_auc_test,
    delong_auc_ci,
    delong_covariance,
    delong_test,
)
from .froc import FROCResult, detections_from_heatmap, froc, lesion_map
from .multiclass import MulticlassROC, multiclass_roc
from .report import Report, ReportPaths
from .roc import OperatingPoint, ROCReport, group_scores, roc_report, slide_level_roc

__all__ = [
    "AUCCI",
    "ClusteredAUCTest",
    "DeLongTest",
    "FROCResult",
    "FeatureSetComparison",
    "MulticlassROC",
    "OperatingPoint",
    "ROCReport",
    "Report",
    "ReportPaths",
    "clustered_auc_ci",
    "clustered_auc_covariance",
    "clustered_auc_test",
    "compare_feature_sets",
    "delong_auc_ci",
    "delong_covariance",
    "delong_test",
    "detections_from_heatmap",
    "froc",
    "group_scores",
    "lesion_map",
    "markdown_table",
    "multiclass_roc",
    "roc_report",
    "slide_level_roc",
]
