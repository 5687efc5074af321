"""Whole-slide images: reading by resolution, tissue masks, patch grids, patch loading, synthetic slides.

Coordinates are level-0 pixels, top-left ``(x, y)``; resolution is asked for in microns per pixel.
OpenSlide is imported only when a slide file is opened.

Examples
--------
>>> import numpy as np
>>> from medfeat.slides import SlideReader, PatchGrid, read_patches
>>> reader = SlideReader.open(np.full((64, 64, 3), 200, np.uint8), slide_mpp=0.25)
>>> grid = PatchGrid.from_reader(reader, mpp=0.5, size=16, tissue=None)
>>> read_patches(reader, grid).shape
(4, 16, 16, 3)
"""

from .annotations import (
    Annotation,
    annotation_classes,
    annotation_patch_labels,
    annotations_to_geojson,
    patch_labels,
    rasterize_annotations,
    read_annotations,
    resolve_annotation_classes,
)
from .grid import PatchGrid, box_fractions
from .patches import PatchBatch, auto_num_workers, iter_patch_batches, read_patches
from .reader import MissingMPPError, SlideReader, UpsamplingWarning
from .spec import DEFAULT_BATCH_SIZE, DEFAULT_NUM_WORKERS, GridSpec, check_batch_size
from .synthetic import SyntheticSlide, write_synthetic_slide, write_tiled_tiff
from .tissue import TissueMask, tissue_mask

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_NUM_WORKERS",
    "GridSpec",
    "Annotation",
    "MissingMPPError",
    "PatchBatch",
    "PatchGrid",
    "SlideReader",
    "SyntheticSlide",
    "TissueMask",
    "UpsamplingWarning",
    "annotation_classes",
    "annotation_patch_labels",
    "annotations_to_geojson",
    "auto_num_workers",
    "box_fractions",
    "check_batch_size",
    "iter_patch_batches",
    "patch_labels",
    "rasterize_annotations",
    "read_annotations",
    "read_patches",
    "resolve_annotation_classes",
    "tissue_mask",
    "write_synthetic_slide",
    "write_tiled_tiff",
]
