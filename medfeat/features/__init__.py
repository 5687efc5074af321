"""Feature extraction from image patches.

Handcrafted families, each a function on one image plus a scikit-learn transformer on NHWC
uint8 batches (or lists of images) returning float32 2-D arrays:

- :func:`lbp_histogram` / :class:`LBPHistogram`: rotation-invariant uniform LBP histograms;
- :func:`gist_descriptor` / :class:`GIST`: Oliva-Torralba GIST, as LabelMe's ``LMgist``;
- :func:`color_features` / :class:`ColorFeatures`: RGB, HSV and HED statistics and histograms;
- :func:`glcm_features` / :class:`GLCMFeatures`: grey-level co-occurrence properties;
- :class:`HandcraftedFeatures`: all of the above, names prefixed by family.

They keep the precision of their input: uint8, uint16 (colour and GLCM need ``bit_depth``) and float
images in [0, 1] are never rounded to 8 bits. Radiology values (CT Hounsfield units, 12-16 bit
radiographs) go through an intensity window first: :func:`window_image` / :class:`Window`
(``(center, width)``, CT presets such as ``"lung"``, or a percentile window) give float images in [0, 1].

Domain shift between slides (:mod:`medfeat.features.stain`, :mod:`medfeat.features.alignment`):
Reinhard, Macenko and Vahadane stain normalisers; HED and colour jitter with
:class:`AugmentedTraining`; dihedral test-time augmentation (:class:`DihedralMean`,
:class:`DihedralTTA`); per-slide feature standardisation and CORAL. Preprocessing for radiographs:
:class:`CLAHE`.

Deep features from frozen ImageNet backbones (:class:`DeepFeatures`, :func:`load_backbone`) and
multiscale context (:class:`MultiScaleFeatures`) import torch only when used.

Examples
--------
>>> import numpy as np
>>> from medfeat.features import LBPHistogram
>>> X = np.zeros((2, 16, 16, 3), np.uint8)
>>> LBPHistogram(radii_points=[(8, 1)]).fit_transform(X).shape
(2, 10)
"""

from .alignment import CORAL, SlideStandardizer, coral_align, standardize_by_group
from .backbones import layer_shapes, list_backbones, list_layers, load_backbone
from .color import ColorFeatures, color_features
from .deep import DeepFeatures, predict_imagenet
from .gist import GIST, gabor_transfer_functions, gist_descriptor
from .glcm import GLCMFeatures, glcm_features
from .handcrafted import HandcraftedFeatures
from .lbp import LBPHistogram, lbp_codes, lbp_histogram
from .multiscale import MultiScaleFeatures
from .preprocessing import CLAHE, WINDOW_PRESETS, Window, clahe, window_image
from .stain import (
    AugmentedTraining,
    ColorJitter,
    DihedralMean,
    DihedralTTA,
    HEDJitter,
    MacenkoNormalizer,
    ReinhardNormalizer,
    StainPassThroughWarning,
    VahadaneNormalizer,
    color_jitter,
    dihedral,
    hed_jitter,
    lab_statistics,
    macenko_normalize,
    macenko_stain_matrix,
    optical_density,
    reinhard_normalize,
    stained_fraction,
    vahadane_normalize,
    vahadane_stain_matrix,
)

__all__ = [
    "AugmentedTraining",
    "CLAHE",
    "CORAL",
    "ColorFeatures",
    "ColorJitter",
    "DeepFeatures",
    "DihedralMean",
    "DihedralTTA",
    "GIST",
    "GLCMFeatures",
    "HEDJitter",
    "HandcraftedFeatures",
    "LBPHistogram",
    "MacenkoNormalizer",
    "MultiScaleFeatures",
    "ReinhardNormalizer",
    "SlideStandardizer",
    "StainPassThroughWarning",
    "VahadaneNormalizer",
    "WINDOW_PRESETS",
    "Window",
    "clahe",
    "color_features",
    "color_jitter",
    "coral_align",
    "dihedral",
    "gabor_transfer_functions",
    "gist_descriptor",
    "glcm_features",
    "hed_jitter",
    "lab_statistics",
    "layer_shapes",
    "lbp_codes",
    "lbp_histogram",
    "list_backbones",
    "list_layers",
    "load_backbone",
    "macenko_normalize",
    "macenko_stain_matrix",
    "optical_density",
    "predict_imagenet",
    "reinhard_normalize",
    "stained_fraction",
    "standardize_by_group",
    "vahadane_normalize",
    "vahadane_stain_matrix",
    "window_image",
]
