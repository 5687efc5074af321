"""Patch labels for training: from annotation polygons over a patch grid, or from a labels CSV.

Slides, annotation files, feature stores and CSV rows are matched by the slide's file stem
(:func:`slide_stem`): ``tumor_001.tif`` <-> ``tumor_001.xml`` <-> ``tumor_001.h5`` <-> ``slide=tumor_001``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = [
    "ANNOTATION_SUFFIXES",
    "annotations_id",
    "find_annotation",
    "label_patches",
    "labels_from_annotations",
    "read_labels_csv",
    "slide_stem",
    "store_labels",
]

#: Annotation files looked for beside a slide's stem, in this order.
ANNOTATION_SUFFIXES = (".xml", ".geojson", ".json")


def slide_stem(slide):
    """File name of ``slide`` without its last suffix; None for an in-memory slide.

    ``slide`` is a path or an object with a ``path`` (a SlideReader).

    Examples
    --------
    >>> slide_stem("/data/tumor_001.tif"), slide_stem("tumor_001")
    ('tumor_001', 'tumor_001')
    """
    path = getattr(slide, "path", None) if not isinstance(slide, (str, os.PathLike)) else slide
    if path is None:
        return None
    name = Path(path).name
    return name.rsplit(".", 1)[0] if "." in name else name


def find_annotation(stem, annotations_dir):
    """The annotation file ``<annotations_dir>/<stem>{.xml,.geojson,.json}``, or None.

    ``stem`` is a slide's :func:`slide_stem` (taken as given: ``"a.b"`` looks for ``a.b.xml``).

    Examples
    --------
    >>> find_annotation("tumor_001", None) is None
    True
    """
    if annotations_dir is None:
        return None
    for ext in ANNOTATION_SUFFIXES:
        candidate = Path(annotations_dir) / f"{stem}{ext}"
        if candidate.exists():
            return candidate
    return None


def labels_from_annotations(grid, annotations, min_fraction=0.5):
    """0/1 label of every patch of ``grid``: 1 when at least ``min_fraction`` of it lies in the polygons.

    Parameters
    ----------
    grid : medfeat.slides.PatchGrid
    annotations : list of Annotation
        Level-0 polygons (an empty list labels every patch 0).
    min_fraction : float

    Returns
    -------
    ndarray of int8, shape (len(grid),)
    """
    from medfeat import slides as ms

    w, h = (int(v) for v in grid.slide_dimensions)
    if not annotations:
        return np.zeros(len(grid), dtype=np.int8)
    # Rasterise at a resolution where one patch spans >= ~8 mask pixels, so min_fraction is meaningful.
    downsample = max(1.0, float(grid.size_level0) / 8.0)
    mask = ms.rasterize_annotations(annotations, (w, h), downsample=downsample)
    labels = ms.patch_labels(grid, mask, downsample, min_fraction=min_fraction)
    return np.asarray(labels).astype(np.int8)


def label_patches(grid, annotations):
    """Patch labels (0/1) from an annotation file or a list of polygons over ``grid``; None without any.

    Examples
    --------
    >>> label_patches(None, None) is None
    True
    """
    if annotations is None:
        return None
    from medfeat import slides as ms

    if isinstance(annotations, (str, os.PathLike)):
        annotations = ms.read_annotations(annotations)
    return labels_from_annotations(grid, list(annotations))


def annotations_id(annotations):
    """What a store records about the annotations it was labelled with (path or polygon count)."""
    if annotations is None:
        return None
    if isinstance(annotations, (str, os.PathLike)):
        return os.path.abspath(os.fspath(annotations))
    return f"{len(list(annotations))} polygons"


def read_labels_csv(path):
    """A labels CSV as a DataFrame with columns ``slide`` (file stem), ``label`` and optional ``x``, ``y``.

    Column names are matched case-insensitively; a slide may be named by its file path or its stem.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels.csv"
    >>> _ = p.write_text("Slide,Label\\n/data/t1.tif,1\\n")
    >>> read_labels_csv(p).to_dict("records")
    [{'slide': 't1', 'label': 1}]
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"labels CSV not found: {path}")
    df = pd.read_csv(path)
    cols = {c.lower(): c for c in df.columns}
    if "slide" not in cols or "label" not in cols:
        raise ValueError(f"labels CSV {path} must have columns 'slide' and 'label' (and 'x', 'y' for patch labels); "
                         f"got {list(df.columns)}.")
    df = df.rename(columns={cols[k]: k for k in ("slide", "label", "x", "y") if k in cols})
    df["slide"] = [slide_stem(str(s)) for s in df["slide"]]
    return df


def store_labels(stem, grid, stored_labels=None, *, annotations_dir=None, labels_df=None):
    """(labels, keep) for the patches of one store, or None when nothing labels it.

    The first source that applies: the labels CSV rows of the slide (``slide,x,y,label`` patch labels
    by level-0 top-left, or one ``slide,label`` for every patch); the annotation file of the slide in
    ``annotations_dir`` (no file: every patch negative, as in CAMELYON16); the ``labels`` stored in
    the store. ``keep`` marks the patches that have a label.
    """
    if labels_df is not None:
        rows = labels_df[labels_df["slide"] == stem]
        if rows.empty:
            return None
        if "x" in rows.columns and "y" in rows.columns and rows["x"].notna().all():
            lookup = {(int(x), int(y)): lab for x, y, lab in zip(rows["x"], rows["y"], rows["label"])}
            coords = np.asarray(grid.coords)
            labs = [lookup.get((int(x), int(y))) for x, y in coords]
            keep = np.array([v is not None for v in labs])
            return np.array([v if v is not None else -1 for v in labs], dtype=object), keep
        if rows["label"].nunique() > 1:
            raise ValueError(f"labels CSV gives slide {stem!r} several slide-level labels: {sorted(rows['label'].unique())}.")
        return np.array([rows["label"].iloc[0]] * len(grid), dtype=object), np.ones(len(grid), bool)
    if annotations_dir is not None:
        from medfeat.slides import read_annotations

        ann = find_annotation(stem, annotations_dir)
        # a slide without an annotation file is a negative (normal) slide, as in CAMELYON16
        annotations = read_annotations(ann) if ann is not None else []
        return labels_from_annotations(grid, annotations).astype(object), np.ones(len(grid), bool)
    if stored_labels is not None:
        return stored_labels.astype(object), np.ones(len(grid), bool)
    return None
