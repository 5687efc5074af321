"""Pipelines: patch pipelines, slide feature stores, heatmaps, slide training, comparisons, the demo.

Composes the leaves (features, slides, evaluation, datasets) and the classifiers. Heavy libraries
(torch, openslide, h5py, matplotlib) are imported by the functions that need them.

Examples
--------
>>> from medfeat.pipelines import make_patch_pipeline
>>> [name for name, _ in make_patch_pipeline("color", "logreg").steps]
['features', 'scaler', 'classifier']
"""

from .compare import CompareResult, compare_image_folder
from .config import make_features
from .demo import run_demo
from .distributed import SlideTaskResult, extract_slide_features_many, heatmap_slides_many
from .extraction import EmptyTissueError, ExtractionResult, extract_features, extract_slide_features
from .heatmap import Heatmap, SlideHeatmap, heatmap_from_features, is_calibrated, positive_scores
from .labels import ClassRule, annotation_summary, slide_labels
from .patch import CVResult, cross_validate_groups, make_feature_transformer, make_patch_pipeline
from .persist import SavedModel, UntrustedModelError, load_model, save_model
from .slide_train import SlidePatchClassifier, SlideTrainingResult, load_training_set, train_from_feature_stores
from .store import load_slide_features
from .workflow import (
    EvaluationResult,
    HeatmapRun,
    evaluate_predictions,
    froc_from_heatmaps,
    grid_spec_for_model,
    heatmap_slides,
    predict_image_dir,
    read_thresholds,
    write_heatmap_outputs,
)

__all__ = [
    "CVResult",
    "ClassRule",
    "CompareResult",
    "EmptyTissueError",
    "EvaluationResult",
    "ExtractionResult",
    "Heatmap",
    "HeatmapRun",
    "SavedModel",
    "SlideHeatmap",
    "SlidePatchClassifier",
    "SlideTaskResult",
    "SlideTrainingResult",
    "UntrustedModelError",
    "annotation_summary",
    "compare_image_folder",
    "cross_validate_groups",
    "evaluate_predictions",
    "extract_features",
    "extract_slide_features",
    "extract_slide_features_many",
    "froc_from_heatmaps",
    "grid_spec_for_model",
    "heatmap_from_features",
    "heatmap_slides",
    "heatmap_slides_many",
    "is_calibrated",
    "load_model",
    "load_slide_features",
    "load_training_set",
    "make_feature_transformer",
    "make_features",
    "make_patch_pipeline",
    "positive_scores",
    "predict_image_dir",
    "read_thresholds",
    "run_demo",
    "save_model",
    "slide_labels",
    "train_from_feature_stores",
    "write_heatmap_outputs",
]
