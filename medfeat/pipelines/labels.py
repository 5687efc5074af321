"""Patch labels for training: from annotation polygons over a patch grid, or from a labels CSV.

Slides, annotation files, feature stores and CSV rows are matched by the slide's file stem
(:func:`slide_stem`): ``tumor_001.tif`` <-> ``tumor_001.xml`` <-> ``tumor_001.h5`` <-> ``slide=tumor_001``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "ANNOTATION_SUFFIXES",
    "ClassRule",
    "annotation_summary",
    "annotations_id",
    "check_unique_stems",
    "find_annotation",
    "label_patches",
    "labels_from_annotations",
    "read_labels_csv",
    "slide_labels",
    "slide_stem",
    "store_labels",
]

#: Annotation files looked for beside a slide's stem, in this order.
ANNOTATION_SUFFIXES = (".xml", ".geojson", ".json")
_UNANNOTATED = ("negative", "skip", "error")


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


def check_unique_stems(slides):
    """Refuse slides that share a file stem: their outputs (stores, heatmaps) are named by it and would
    overwrite or be mistaken for each other.

    Raises
    ------
    ValueError
        Naming the slides that collide.

    Examples
    --------
    >>> check_unique_stems(["/a/s1.svs", "/b/s2.svs", "/a/s1.svs"])
    >>> check_unique_stems(["/a/s1.svs", "/b/s1.tif"])
    Traceback (most recent call last):
    ...
    ValueError: slides /a/s1.svs and /b/s1.tif have the same name 's1', so their outputs would overwrite each other; process them into separate output directories or rename one.
    """
    seen = {}
    for slide in slides:
        stem = slide_stem(slide)
        first = seen.setdefault(stem, slide)
        if os.path.abspath(os.fspath(first)) != os.path.abspath(os.fspath(slide)):
            raise ValueError(
                f"slides {os.fspath(first)} and {os.fspath(slide)} have the same name {stem!r}, so their outputs "
                "would overwrite each other; process them into separate output directories or rename one."
            )


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


def labels_from_annotations(grid, annotations, min_fraction=0.5, rule=None):
    """Label of every patch of ``grid``: 1 lesion, 0 normal, -1 no label (an ignored class).

    A patch is positive when at least ``min_fraction`` of it lies in polygons of the positive classes of
    ``rule`` (see :func:`medfeat.slides.annotation_patch_labels`; by default the single class found, and
    several classes without a positive list are an error, so a "Stroma" polygon never becomes lesion).

    Parameters
    ----------
    grid : medfeat.slides.PatchGrid
    annotations : list of Annotation
        Level-0 polygons (an empty list labels every patch 0).
    min_fraction : float
    rule : ClassRule, optional

    Returns
    -------
    ndarray of int8, shape (len(grid),)
    """
    from medfeat import slides as ms

    rule = rule or ClassRule()
    return ms.annotation_patch_labels(grid, list(annotations), positive=rule.positive, negative=rule.negative,
                                      ignore=rule.ignore, outside=rule.outside, min_fraction=min_fraction)


def label_patches(grid, annotations, rule=None):
    """Patch labels (1/0/-1) from an annotation file or a list of polygons over ``grid``; None without any.

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
    return labels_from_annotations(grid, list(annotations), rule=rule)


def annotations_id(annotations):
    """What a store records about the annotations it was labelled with: their source (path or polygon
    count) and a SHA-256 of their content, so a partial store is not resumed with edited annotations.

    Examples
    --------
    >>> import numpy as np
    >>> from medfeat.slides import Annotation
    >>> annotations_id([Annotation(np.array([[0, 0], [4, 0], [4, 4]]), label="Tumor")])["source"]
    '1 polygons'
    """
    import hashlib
    import json

    if annotations is None:
        return None
    if isinstance(annotations, (str, os.PathLike)):
        with open(annotations, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        return {"source": os.path.abspath(os.fspath(annotations)), "sha256": digest}
    annotations = list(annotations)
    content = [[getattr(a, "label", ""), np.asarray(getattr(a, "polygon", a), float).tolist(),
                [np.asarray(h, float).tolist() for h in getattr(a, "holes", [])]] for a in annotations]
    digest = hashlib.sha256(json.dumps(content).encode()).hexdigest()
    return {"source": f"{len(annotations)} polygons", "sha256": digest}


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


def store_labels(stem, grid, stored_labels=None, *, annotations_dir=None, labels_df=None, rule=None):
    """(labels, keep) for the patches of one store, or None when nothing labels it.

    The first source that applies: the labels CSV rows of the slide (so a CSV can declare an unannotated
    slide normal) (``slide,x,y,label`` patch labels
    by level-0 top-left, or one ``slide,label`` for every patch); the annotation file of the slide in
    ``annotations_dir``, by the classes of ``rule`` (no file: by ``rule.unannotated``, an error by
    default); the ``labels`` stored in the store. ``keep`` marks the patches that have a label (not -1).
    """
    rows = labels_df[labels_df["slide"] == stem] if labels_df is not None else None
    if rows is not None and rows.empty and annotations_dir is None:
        return None
    if rows is not None and not rows.empty:
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
        labels = slide_labels(stem, grid, annotations_dir, rule)
        if labels is None:
            return None
        return labels.astype(object), labels != -1
    if stored_labels is not None:
        stored = np.asarray(stored_labels)
        keep = stored != -1 if stored.dtype.kind in "iuf" else np.ones(len(grid), bool)
        return stored.astype(object), keep
    return None


@dataclass(frozen=True)
class ClassRule:
    """Which annotation classes are lesion, normal or ignored, and what a slide without annotations is.

    Parameters
    ----------
    positive, negative, ignore : tuple of str, optional
        Class names (QuPath ``classification.name`` / ASAP ``PartOfGroup``, shell patterns allowed); see
        :func:`medfeat.slides.resolve_annotation_classes`. ``positive=None`` accepts a single class as
        positive and refuses several.
    unannotated : {"error", "negative", "skip"}, default "error"
        A slide with no annotation file: an error (a misspelt file name must not turn a tumour slide into
        a normal one), a normal slide (every patch negative, as in CAMELYON16), or left out.
    outside : {"negative", "ignore"}, default "negative"
        Tissue outside every polygon of an annotated slide.

    Examples
    --------
    >>> ClassRule(positive=("Tumor",), negative=("Stroma",), unannotated="negative").unannotated
    'negative'
    """

    positive: tuple | None = None
    negative: tuple = ()
    ignore: tuple = ("_2", "Exclusion", "Ignore*")
    unannotated: str = "error"
    outside: str = "negative"

    def __post_init__(self):
        if self.unannotated not in _UNANNOTATED:
            raise ValueError(f"unannotated must be one of {list(_UNANNOTATED)}, got {self.unannotated!r}.")
        if self.outside not in ("negative", "ignore"):
            raise ValueError(f"outside must be 'negative' or 'ignore', got {self.outside!r}.")
        for name in ("positive", "negative", "ignore"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, tuple(v.strip() for v in value.split(",") if v.strip()))
            elif value is not None:
                object.__setattr__(self, name, tuple(str(v) for v in value))

    def to_dict(self):
        return {"positive": None if self.positive is None else list(self.positive), "negative": list(self.negative),
                "ignore": list(self.ignore), "unannotated": self.unannotated, "outside": self.outside}


def slide_labels(stem, grid, annotations_dir, rule=None):
    """Patch labels (1 lesion, 0 normal, -1 none) of one slide from its annotation file, by ``rule``.

    Parameters
    ----------
    stem : str
        The slide's file stem; its annotations are ``<annotations_dir>/<stem>{.xml,.geojson,.json}``.
    grid : medfeat.slides.PatchGrid
    annotations_dir : str or path
    rule : ClassRule, optional

    Returns
    -------
    ndarray of int8 or None
        None when the slide has no annotation file and ``rule.unannotated == "skip"``.

    Raises
    ------
    FileNotFoundError
        No annotation file and ``rule.unannotated == "error"`` (the default).
    """
    from medfeat.slides import annotation_patch_labels, read_annotations

    rule = rule or ClassRule()
    path = find_annotation(stem, annotations_dir)
    if path is None:
        if rule.unannotated == "error":
            raise FileNotFoundError(
                f"slide {stem!r} has no annotation file {stem}.xml/.geojson/.json in {str(annotations_dir)!r}; if it is "
                "a normal slide say so with --unannotated negative (or list it in a labels CSV), or leave it out "
                "with --unannotated skip."
            )
        if rule.unannotated == "skip":
            return None
        return np.zeros(len(grid), dtype=np.int8)
    return annotation_patch_labels(grid, read_annotations(path), positive=rule.positive, negative=rule.negative,
                                   ignore=rule.ignore, outside=rule.outside, source=str(path))


def annotation_summary(stems, annotations_dir, rule=None):
    """Classes found per slide with their role under ``rule``: the table to read before training.

    Parameters
    ----------
    stems : iterable of str
        Slide file stems.
    annotations_dir : str or path
    rule : ClassRule, optional

    Returns
    -------
    pandas.DataFrame
        One row per (slide, class): ``slide``, ``file``, ``class``, ``polygons``, ``area_px`` (level 0) and
        ``role`` (positive / negative / ignore / "unlisted" when the rule does not place it, or, for a
        slide without a file, what ``unannotated`` makes of it).

    Examples
    --------
    >>> import tempfile
    >>> annotation_summary(["s1"], tempfile.mkdtemp(), ClassRule(unannotated="negative")).to_dict("records")
    [{'slide': 's1', 'file': '', 'class': '(none)', 'polygons': 0, 'area_px': 0.0, 'role': 'no annotation file: negative'}]
    """
    import pandas as pd

    from medfeat.slides import annotation_classes, read_annotations, resolve_annotation_classes

    rule = rule or ClassRule()
    rows = []
    for stem in stems:
        path = find_annotation(stem, annotations_dir)
        if path is None:
            rows.append({"slide": stem, "file": "", "class": "(none)", "polygons": 0, "area_px": 0.0,
                         "role": f"no annotation file: {rule.unannotated}"})
            continue
        classes = annotation_classes(read_annotations(path))
        try:
            roles = resolve_annotation_classes(classes, positive=rule.positive, negative=rule.negative,
                                               ignore=rule.ignore, source=str(path))
        except ValueError:
            roles = {}
        if not classes:
            rows.append({"slide": stem, "file": path.name, "class": "(none)", "polygons": 0, "area_px": 0.0,
                         "role": "no polygons: all negative"})
        for label, (n, area) in classes.items():
            rows.append({"slide": stem, "file": path.name, "class": label if label else "(unclassified)",
                         "polygons": n, "area_px": round(float(area), 1), "role": roles.get(label, "unlisted")})
    return pd.DataFrame(rows, columns=["slide", "file", "class", "polygons", "area_px", "role"])
