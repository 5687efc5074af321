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

from .backbones import list_backbones, list_layers, load_backbone
from .color import ColorFeatures, color_features
from .deep import DeepFeatures, predict_imagenet
from .gist import GIST, gabor_transfer_functions, gist_descriptor
from .glcm import GLCMFeatures, glcm_features
from .handcrafted import HandcraftedFeatures
from .lbp import LBPHistogram, lbp_codes, lbp_histogram
from .multiscale import MultiScaleFeatures
from .preprocessing import WINDOW_PRESETS, Window, window_image

__all__ = [
    "ColorFeatures",
    "DeepFeatures",
    "GIST",
    "GLCMFeatures",
    "HandcraftedFeatures",
    "LBPHistogram",
    "MultiScaleFeatures",
    "WINDOW_PRESETS",
    "Window",
    "color_features",
    "gabor_transfer_functions",
    "gist_descriptor",
    "glcm_features",
    "lbp_codes",
    "lbp_histogram",
    "list_backbones",
    "list_layers",
    "load_backbone",
    "predict_imagenet",
    "window_image",
]
