"""Annotation class selection (positive / negative / ignored classes) and the upsampling warning."""

import warnings

import numpy as np
import pytest

from medfeat.slides import (
    Annotation,
    PatchGrid,
    SlideReader,
    UpsamplingWarning,
    annotation_classes,
    annotation_patch_labels,
    resolve_annotation_classes,
)


def _square(x0, y0, s):
    return np.array([[x0, y0], [x0 + s, y0], [x0 + s, y0 + s], [x0, y0 + s]], float)


def _grid(n=6, size=10):
    # one row of n patches of 10 x 10 level-0 pixels
    coords = [[i * size, 0] for i in range(n)]
    return PatchGrid(coords, mpp=1, size=size, stride=size, slide_dimensions=(n * size, size), slide_mpp=(1, 1))


def test_stroma_polygon_is_not_lesion_unless_asked():
    # Misleading point 1: every class counted as lesion, so one "Stroma" polygon made normal patches positive.
    g = _grid()
    anns = [Annotation(_square(0, 0, 10), label="Tumor"), Annotation(_square(20, 0, 30), label="Stroma")]
    with pytest.raises(ValueError, match="several classes.*Stroma"):
        annotation_patch_labels(g, anns)
    labels = annotation_patch_labels(g, anns, positive=["Tumor"], negative=["Stroma"])
    # hand-derived: patch 0 is tumour, patches 2-4 stroma (normal), the rest unannotated tissue (normal)
    assert labels.tolist() == [1, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match=r"'Stroma'.*none of the positive classes"):
        annotation_patch_labels(g, anns, positive=["Tumor"])


def test_ignored_classes_and_sparse_annotation():
    g = _grid()
    anns = [Annotation(_square(0, 0, 10), label="Tumor"), Annotation(_square(10, 0, 10), label="Exclusion"),
            Annotation(_square(20, 0, 15), label="Normal")]
    # default ignore patterns: "Exclusion" drops patch 1; patch 3 is half normal, half unannotated
    assert annotation_patch_labels(g, anns, positive="Tumor", negative="Normal").tolist() == [1, -1, 0, 0, 0, 0]
    assert annotation_patch_labels(g, anns, positive="Tumor", negative="Normal", outside="ignore").tolist() == [
        1, -1, 0, 0, -1, -1]


def test_single_class_is_positive_and_roles_are_exclusive():
    assert resolve_annotation_classes(["Tumor"]) == {"Tumor": "positive"}
    assert resolve_annotation_classes(["", "_2"]) == {"": "positive", "_2": "ignore"}
    assert resolve_annotation_classes(["Tumor a", "Tumor b"], positive=["Tumor*"]) == {
        "Tumor a": "positive", "Tumor b": "positive"}
    with pytest.raises(ValueError, match="several of positive/negative/ignore"):
        resolve_annotation_classes(["Tumor"], positive=["Tumor"], negative=["T*"])


def test_annotation_classes_counts_and_areas():
    ring = _square(0, 0, 10)
    hole = _square(2, 2, 2)
    got = annotation_classes([Annotation(ring, label="Tumor", holes=[hole]), Annotation(_square(0, 0, 3), label="Tumor"),
                              Annotation(ring)])
    assert got == {"": (1, 100.0), "Tumor": (2, 100.0 - 4.0 + 9.0)}


def test_upsampling_is_warned_once_per_slide_and_resolution():
    # Misleading point 3: 0.5 um/px asked of a 1.0 um/px slide interpolates 2x without a word.
    img = np.full((64, 64, 3), 200, np.uint8)
    reader = SlideReader.open(img, slide_mpp=1.0)
    with pytest.warns(UpsamplingWarning, match="2x"):
        reader.read_region((0, 0), (16, 16), mpp=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UpsamplingWarning)
        reader.read_region((8, 8), (16, 16), mpp=0.5)  # same slide and resolution: no second warning
        reader.read_region((0, 0), (16, 16), mpp=1.0)  # no upsampling
        reader.read_region((0, 0), (16, 16), mpp=2.0)
    other = SlideReader.open(img.copy(), slide_mpp=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UpsamplingWarning)  # how a user silences it
        other.read_region((0, 0), (16, 16), mpp=0.25)
