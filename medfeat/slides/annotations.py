"""Slide annotations: ASAP / CAMELYON16 XML and GeoJSON (QuPath) polygons in level-0 pixels.

- :func:`read_annotations` reads either format into :class:`Annotation` objects;
- :func:`annotations_to_geojson` writes a GeoJSON ``FeatureCollection`` QuPath imports
  (``objectType: "annotation"``, ``classification.name`` = label);
- :func:`rasterize_annotations` draws them into a boolean mask at any downsample or mpp
  (pixel centres inside the polygon are set; holes and exclusion labels are cleared);
- :func:`patch_labels` turns a mask into 0/1 labels for a :class:`~medfeat.slides.PatchGrid`.
"""

import json
import os
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import write_text_atomic
from .grid import box_fractions

__all__ = [
    "Annotation",
    "annotation_classes",
    "annotation_patch_labels",
    "annotations_to_geojson",
    "patch_labels",
    "rasterize_annotations",
    "read_annotations",
    "resolve_annotation_classes",
]

# CAMELYON16 marks non-tumour regions inside tumour annotations with group "_2"; QuPath users
# conventionally use "Exclusion"/"Ignore*". They are cut out of the mask by default.
DEFAULT_EXCLUDE = ("_2", "Exclusion", "Ignore*")


@dataclass
class Annotation:
    """One polygon annotation.

    Attributes
    ----------
    polygon : ndarray of float64 (K, 2)
        Exterior ring, level-0 ``(x, y)``, not closed (first vertex not repeated).
    label : str
        Class: ASAP ``PartOfGroup`` or QuPath ``classification.name``.
    name : str
        Annotation name (ASAP ``Name``, GeoJSON ``properties.name``).
    holes : list of ndarray (M, 2)
        Interior rings (GeoJSON polygons with holes).
    """

    polygon: np.ndarray
    label: str = ""
    name: str = ""
    holes: list = field(default_factory=list)

    def __post_init__(self):
        self.polygon = _ring(self.polygon, "polygon")
        self.holes = [_ring(h, "hole") for h in self.holes]


# Level-0 coordinates beyond this are not pixels of any slide (and overflow int32 rasterisers): a
# corrupt or hostile file, not an annotation.
_MAX_COORD = float(2**31)


def _ring(points, what):
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be a (K, 2) array of level-0 (x, y) numbers: {exc}") from None
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{what} must be a (K, 2) array of level-0 (x, y), got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} has NaN or infinite coordinates; expected finite level-0 (x, y) pixels.")
    if arr.size and float(np.abs(arr).max()) > _MAX_COORD:
        raise ValueError(
            f"{what} has a coordinate of {float(np.abs(arr).max()):.3g}; level-0 pixel coordinates beyond "
            f"+-{_MAX_COORD:.3g} are not on any slide."
        )
    if len(arr) > 1 and np.array_equal(arr[0], arr[-1]):
        arr = arr[:-1]
    return arr


def _read_asap(path):
    # defusedxml refuses entity declarations (billion laughs, external entities) whatever the expat
    # version; expat itself decodes UTF-8 with or without a BOM and UTF-16 with a BOM.
    import xml.etree.ElementTree as ET

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import parse

    try:
        root = parse(os.fspath(path)).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{str(path)!r} is not valid XML: {exc}") from exc
    except DefusedXmlException as exc:
        raise ValueError(f"{str(path)!r}: refusing XML with entity or DTD declarations ({exc}).") from exc
    out = []
    skipped = 0
    for i, ann in enumerate(root.iter("Annotation")):
        where = f"{str(path)!r}: annotation {i} ({ann.get('Name')!r})"
        kind = ann.get("Type", "Polygon")
        coords = []
        for c in ann.iter("Coordinate"):
            try:
                coords.append((float(c.get("Order", len(coords))), float(c.get("X")), float(c.get("Y"))))
            except (TypeError, ValueError):
                raise ValueError(f"{where}: a Coordinate lacks X/Y numbers.") from None
        if kind not in ("Polygon", "Spline", "Rectangle") or len(coords) < 3:
            skipped += 1
            continue
        if not all(np.isfinite(o) for o, _, _ in coords):
            raise ValueError(f"{where}: a Coordinate has a NaN or infinite Order.")
        coords.sort(key=lambda c: c[0])
        try:
            out.append(Annotation(np.array([(x, y) for _, x, y in coords]), label=ann.get("PartOfGroup", "") or "",
                                  name=ann.get("Name", "") or ""))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if root.tag != "ASAP_Annotations" and not out:
        raise ValueError(f"{str(path)!r} is XML but not ASAP/CAMELYON16 annotations (root <{root.tag}>).")
    if skipped:
        warnings.warn(f"{str(path)!r}: skipped {skipped} non-polygon annotations (dots, point sets).", UserWarning,
                      stacklevel=3)
    return out


def _geojson_features(data, path):
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        kind = data.get("type")
        if kind == "FeatureCollection":
            features = data.get("features", [])
            if not isinstance(features, list):
                raise ValueError(f"{str(path)!r}: 'features' must be a list, got {type(features).__name__}.")
            return features
        if kind == "Feature":
            return [data]
        if kind in ("Polygon", "MultiPolygon"):
            return [{"type": "Feature", "geometry": data, "properties": {}}]
    raise ValueError(f"{str(path)!r} is not GeoJSON: expected a FeatureCollection, a Feature or a list of features.")


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _geojson_ring(ring, where):
    """A GeoJSON linear ring (list of [x, y] or [x, y, z] positions) as a (K, 2) float array."""
    if not isinstance(ring, list):
        raise ValueError(f"{where} must be a list of [x, y] positions, got {type(ring).__name__}.")
    pts = []
    for j, pos in enumerate(ring):
        if not isinstance(pos, list) or len(pos) not in (2, 3) or not all(_is_number(v) for v in pos):
            raise ValueError(f"{where}, position {j}: expected [x, y] numbers, got {str(pos)[:60]}.")
        pts.append(pos[:2])
    return _ring(pts, where)


def _read_geojson(path):
    try:
        # bytes, so json detects UTF-8 (with or without BOM), UTF-16 and UTF-32 itself
        with open(path, "rb") as fh:
            data = json.loads(fh.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise ValueError(f"{str(path)!r} is JSON nested too deeply to be GeoJSON.") from None
    out = []
    skipped = 0
    for i, feat in enumerate(_geojson_features(data, path)):
        where = f"{str(path)!r}: feature {i}"
        if feat is None:
            skipped += 1
            continue
        if not isinstance(feat, dict):
            raise ValueError(f"{where} must be a GeoJSON Feature object, got {type(feat).__name__}.")
        geom = feat.get("geometry") or {}
        props = feat.get("properties") or {}
        if not isinstance(geom, dict):
            raise ValueError(f"{where}: 'geometry' must be an object, got {type(geom).__name__}.")
        if not isinstance(props, dict):
            raise ValueError(f"{where}: 'properties' must be an object, got {type(props).__name__}.")
        cls = props.get("classification") or {}
        label = cls.get("name", "") if isinstance(cls, dict) else cls
        label = "" if label is None else str(label)
        name = props.get("name") or feat.get("id") or ""
        kind = geom.get("type")
        coords = geom.get("coordinates", [])
        if kind == "Polygon":
            polys = [coords]
        elif kind == "MultiPolygon":
            if not isinstance(coords, list):
                raise ValueError(f"{where}: MultiPolygon coordinates must be a list of polygons.")
            polys = coords
        else:
            skipped += 1
            continue
        for k, rings in enumerate(polys):
            part = where if kind == "Polygon" else f"{where}, polygon {k}"
            if not isinstance(rings, list) or not rings or not isinstance(rings[0], list) or len(rings[0]) < 3:
                raise ValueError(f"{part} has a polygon without an exterior ring of >= 3 points.")
            exterior = _geojson_ring(rings[0], f"{part}, exterior ring")
            holes = [_geojson_ring(r, f"{part}, hole {h}") for h, r in enumerate(rings[1:])]
            out.append(Annotation(exterior, label=label, name=str(name), holes=holes))
    if skipped:
        warnings.warn(f"{str(path)!r}: skipped {skipped} non-polygon features (points, lines).", UserWarning,
                      stacklevel=3)
    return out


_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff", b"\xff\xfe", b"\xfe\xff")


def _sniff(head):
    """First non-blank character of a file's start, through a BOM and UTF-16/32 (with or without BOM)."""
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom):]
            break
    # UTF-16/32 without BOM (or after it): ASCII characters interleaved with NUL bytes
    return head.replace(b"\x00", b"").lstrip()[:1]


def read_annotations(path):
    """Read polygon annotations from ASAP/CAMELYON16 XML or GeoJSON (QuPath export).

    Parameters
    ----------
    path : str or os.PathLike
        ``.xml`` (ASAP) or ``.geojson`` / ``.json``; the content decides when the suffix is unusual.

    Returns
    -------
    list of Annotation

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.xml")
    >>> _ = open(p, "w").write('<ASAP_Annotations><Annotations><Annotation Name="T1" PartOfGroup="Tumor" '
    ...     'Type="Polygon"><Coordinates><Coordinate Order="0" X="0" Y="0"/><Coordinate Order="1" X="10" Y="0"/>'
    ...     '<Coordinate Order="2" X="10" Y="5"/></Coordinates></Annotation></Annotations></ASAP_Annotations>')
    >>> [(a.name, a.label, a.polygon.shape) for a in read_annotations(p)]
    [('T1', 'Tumor', (3, 2))]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {str(path)!r} does not exist.")
    with open(path, "rb") as fh:
        head = fh.read(512)
    first = _sniff(head)
    if first == b"<":
        return _read_asap(path)
    if first in (b"{", b"["):
        return _read_geojson(path)
    raise ValueError(f"{str(path)!r} is neither ASAP XML nor GeoJSON (it starts with {head.lstrip()[:20]!r}).")


def annotations_to_geojson(annotations, path=None, *, colors=None):
    """Export annotations as a GeoJSON FeatureCollection that QuPath opens.

    Parameters
    ----------
    annotations : list of Annotation (or (K, 2) arrays)
    path : str or os.PathLike, optional
        Where to write (via a temporary file and rename); None only returns the dict.
    colors : dict, optional
        ``label -> (r, g, b)`` for QuPath's classification colour.

    Returns
    -------
    dict
        The FeatureCollection (closed rings, level-0 pixel coordinates).

    Examples
    --------
    >>> import numpy as np
    >>> gj = annotations_to_geojson([Annotation(np.array([[0, 0], [4, 0], [4, 4]]), label="Tumor")])
    >>> gj["features"][0]["geometry"]["coordinates"][0][-1], gj["features"][0]["properties"]["classification"]
    ([0.0, 0.0], {'name': 'Tumor', 'color': [200, 0, 0]})
    """
    default_colours = [(200, 0, 0), (0, 150, 0), (0, 0, 200), (200, 150, 0), (150, 0, 200)]
    colors = dict(colors or {})
    features = []
    for i, ann in enumerate(annotations):
        if not isinstance(ann, Annotation):
            ann = Annotation(ann)
        rings = [ann.polygon] + list(ann.holes)
        coords = [np.vstack([r, r[:1]]).tolist() for r in rings]
        props = {"objectType": "annotation", "isLocked": False}
        if ann.name:
            props["name"] = ann.name
        if ann.label:
            if ann.label not in colors:
                colors[ann.label] = default_colours[len(colors) % len(default_colours)]
            props["classification"] = {"name": ann.label, "color": [int(c) for c in colors[ann.label]]}
        # A random UUID per feature: QuPath keys objects by id, so fixed ids (1, 2, ...) would collide
        # when files of several slides or runs are imported into one project.
        features.append({"type": "Feature", "id": str(uuid.uuid4()),
                         "geometry": {"type": "Polygon", "coordinates": coords}, "properties": props})
    collection = {"type": "FeatureCollection", "features": features}
    if path is not None:
        write_text_atomic(path, json.dumps(collection))
    return collection


def _matches(label, patterns):
    from fnmatch import fnmatchcase

    return any(fnmatchcase(label, p) for p in patterns)


def rasterize_annotations(annotations, dimensions, *, downsample=None, mpp=None, slide_mpp=None, labels=None,
                          exclude=DEFAULT_EXCLUDE):
    """Draw annotation polygons into a boolean mask.

    Mask pixel ``(i, j)`` covers level-0 ``[j * d, (j + 1) * d) x [i * d, (i + 1) * d)`` and is set when its
    centre lies inside a polygon (and outside its holes and the excluded polygons).

    Parameters
    ----------
    annotations : list of Annotation
    dimensions : (int, int)
        Level-0 ``(width, height)`` of the slide.
    downsample : float, optional
        Level-0 pixels per mask pixel.
    mpp, slide_mpp : float, optional
        Alternatively the mask resolution and the slide's level-0 resolution (``downsample = mpp / slide_mpp``).
    labels : sequence of str, optional
        Only draw annotations with these labels (shell patterns allowed); default all but ``exclude``.
    exclude : sequence of str
        Labels (shell patterns) whose polygons are cleared from the mask, drawn after the others;
        by default CAMELYON16's ``"_2"`` and QuPath's ``"Exclusion"`` / ``"Ignore*"``.

    Returns
    -------
    ndarray of bool, shape (ceil(h / d), ceil(w / d))

    Examples
    --------
    >>> import numpy as np
    >>> m = rasterize_annotations([Annotation(np.array([[0, 0], [8, 0], [8, 8], [0, 8]]))], (16, 16), downsample=2)
    >>> m.shape, int(m.sum())
    ((8, 8), 16)
    """
    from skimage.draw import polygon as draw_polygon

    if downsample is None:
        if mpp is None or slide_mpp is None:
            raise ValueError("give downsample, or both mpp and slide_mpp, to rasterize_annotations().")
        downsample = float(mpp) / float(np.mean(np.atleast_1d(slide_mpp)))
    d = float(downsample)
    if not d > 0:
        raise ValueError(f"downsample must be positive, got {downsample!r}.")
    W, H = (int(v) for v in dimensions)
    shape = (max(1, int(np.ceil(H / d - 1e-9))), max(1, int(np.ceil(W / d - 1e-9))))
    mask = np.zeros(shape, bool)
    exclude = tuple(exclude or ())
    draw, cut = [], []
    for ann in annotations:
        if not isinstance(ann, Annotation):
            ann = Annotation(ann)
        if exclude and _matches(ann.label, exclude):
            cut.append(ann)
        elif labels is None or _matches(ann.label, labels):
            draw.append(ann)

    def fill(ring, value):
        # Pixel j's centre is at level-0 (j + 0.5) * d; skimage sets pixels whose integer
        # coordinates fall inside the polygon, so shift the vertices by half a pixel.
        rr, cc = draw_polygon(ring[:, 1] / d - 0.5, ring[:, 0] / d - 0.5, shape=shape)
        mask[rr, cc] = value

    for ann in draw:
        fill(ann.polygon, True)
        for hole in ann.holes:
            fill(hole, False)
    for ann in cut:
        fill(ann.polygon, False)
    return mask


def patch_labels(grid, mask, mask_downsample=None, min_fraction=0.5):
    """0/1 label per grid patch: 1 when at least ``min_fraction`` of its area is in ``mask``.

    Parameters
    ----------
    grid : PatchGrid
    mask : ndarray of bool (h, w) or TissueMask
        E.g. from :func:`rasterize_annotations`.
    mask_downsample : float or (float, float), optional
        Level-0 pixels per mask pixel (taken from a TissueMask, else from the slide width / mask width).
    min_fraction : float
        Area fraction threshold in (0, 1].

    Returns
    -------
    ndarray of int64 (N,)

    Examples
    --------
    >>> import numpy as np
    >>> from medfeat.slides import PatchGrid
    >>> g = PatchGrid([[0, 0], [8, 0]], mpp=1, size=8, stride=8, slide_dimensions=(16, 8), slide_mpp=(1, 1))
    >>> m = np.zeros((4, 8), bool); m[:, :3] = True
    >>> patch_labels(g, m, mask_downsample=2).tolist()
    [1, 0]
    """
    if hasattr(mask, "mask") and hasattr(mask, "downsample"):
        mask_downsample = mask.downsample if mask_downsample is None else mask_downsample
        mask = mask.mask
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D boolean array, got shape {mask.shape}.")
    if not 0 < float(min_fraction) <= 1:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction!r}.")
    if mask_downsample is None:
        W, H = grid.slide_dimensions
        mask_downsample = (W / mask.shape[1], H / mask.shape[0])
    frac = box_fractions(mask.astype(bool), mask_downsample, grid.boxes())
    return (frac >= float(min_fraction) - 1e-12).astype(np.int64)


# --- Class selection: which annotation classes are lesions, which are normal, which are ignored --------

_ROLES = ("positive", "negative", "ignore")


def _patterns(value, name):
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    try:
        out = tuple(str(v) for v in value)
    except TypeError:
        raise ValueError(f"{name} must be a list of class names (or a comma-separated string), got {value!r}.") from None
    return tuple(v for v in out if v != "")


def annotation_classes(annotations):
    """Class names found in annotations with their polygon counts and level-0 areas.

    Parameters
    ----------
    annotations : list of Annotation

    Returns
    -------
    dict of str to (int, float)
        ``{class name: (number of polygons, area in level-0 pixels^2)}``, sorted by name; unclassified
        polygons appear under ``""``. Areas are the shoelace area of the exterior minus the holes.

    Examples
    --------
    >>> import numpy as np
    >>> sq = np.array([[0, 0], [10, 0], [10, 10], [0, 10]])
    >>> annotation_classes([Annotation(sq, label="Tumor"), Annotation(sq / 2, label="Stroma")])
    {'Stroma': (1, 25.0), 'Tumor': (1, 100.0)}
    """

    def area(ring):
        x, y = ring[:, 0], ring[:, 1]
        return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))

    out = {}
    for ann in annotations:
        if not isinstance(ann, Annotation):
            ann = Annotation(ann)
        n, a = out.get(ann.label, (0, 0.0))
        out[ann.label] = (n + 1, a + area(ann.polygon) - sum(area(h) for h in ann.holes))
    return dict(sorted(out.items()))


def resolve_annotation_classes(labels, *, positive=None, negative=(), ignore=DEFAULT_EXCLUDE, source="annotations"):
    """The role (positive / negative / ignore) of each annotation class name, or a clear error.

    Names are matched exactly or as shell patterns (``"Tumor*"``), as QuPath's ``classification.name``
    and ASAP's ``PartOfGroup`` spell them. A class in no list is an error when ``positive`` is given (a
    stray "Stroma" polygon must not silently become lesion); with ``positive=None`` a single remaining
    class is taken as positive and several are an error that lists them.

    Parameters
    ----------
    labels : iterable of str
        Class names found (e.g. the keys of :func:`annotation_classes`).
    positive, negative, ignore : sequence of str, optional
        Class names (or patterns) for lesion regions, explicitly normal regions, and regions to leave out
        (patches mostly inside them get no label). ``ignore`` defaults to CAMELYON16's ``"_2"`` and
        QuPath's ``"Exclusion"`` / ``"Ignore*"``.
    source : str
        Named in error messages (e.g. the annotation file).

    Returns
    -------
    dict of str to str

    Examples
    --------
    >>> resolve_annotation_classes(["Tumor", "Stroma"], positive=["Tumor"], negative=["Stroma"])
    {'Stroma': 'negative', 'Tumor': 'positive'}
    >>> resolve_annotation_classes(["Tumor"])
    {'Tumor': 'positive'}
    """
    positive = _patterns(positive, "positive")
    negative = _patterns(negative, "negative") or ()
    ignore = _patterns(ignore, "ignore") or ()
    roles, unknown = {}, []
    for label in sorted(set(labels)):
        hits = [role for role, pats in zip(_ROLES, (positive or (), negative, ignore)) if pats and _matches(label, pats)]
        if len(hits) > 1:
            raise ValueError(f"{source}: class {label!r} matches several of positive/negative/ignore ({hits}); "
                             "each class needs one role.")
        if hits:
            roles[label] = hits[0]
        else:
            unknown.append(label)
    shown = [u if u else "(unclassified)" for u in unknown]
    if positive is not None and unknown:
        raise ValueError(
            f"{source}: annotation class(es) {shown} are in none of the positive classes {list(positive)}, negative "
            f"classes {list(negative)} or ignored classes {list(ignore)}; list each class in one of them "
            "(--positive-classes / --negative-classes / --ignore-classes)."
        )
    if positive is None:
        if len(unknown) > 1:
            raise ValueError(
                f"{source}: annotations hold several classes {shown}; say which are lesions with positive=[...] "
                "(--positive-classes) and which are normal or ignored, instead of counting every class as lesion."
            )
        for u in unknown:
            roles[u] = "positive"
    return dict(sorted(roles.items()))


def annotation_patch_labels(grid, annotations, *, positive=None, negative=(), ignore=DEFAULT_EXCLUDE,
                            outside="negative", min_fraction=0.5, source="annotations"):
    """Patch labels 1 (lesion), 0 (normal) or -1 (no label) from classified annotation polygons.

    A patch is positive when at least ``min_fraction`` of its area lies in positive regions (holes and
    ignored regions cut out), else unlabelled (-1) when at least ``min_fraction`` lies in ignored
    regions, else negative; with ``outside="ignore"`` a patch must also lie in explicitly negative
    regions to be negative (sparse annotations, where unannotated tissue is unknown).

    Parameters
    ----------
    grid : PatchGrid
    annotations : list of Annotation
    positive, negative, ignore, source
        As in :func:`resolve_annotation_classes`.
    outside : {"negative", "ignore"}, default "negative"
        What tissue outside every annotation is: normal (CAMELYON16's rule) or unknown.
    min_fraction : float, default 0.5

    Returns
    -------
    ndarray of int8 (N,)

    Examples
    --------
    >>> import numpy as np
    >>> from medfeat.slides import PatchGrid
    >>> g = PatchGrid([[0, 0], [8, 0], [16, 0]], mpp=1, size=8, stride=8, slide_dimensions=(24, 8), slide_mpp=(1, 1))
    >>> anns = [Annotation(np.array([[0, 0], [8, 0], [8, 8], [0, 8]]), label="Tumor"),
    ...         Annotation(np.array([[8, 0], [16, 0], [16, 8], [8, 8]]), label="Stroma")]
    >>> annotation_patch_labels(g, anns, positive=["Tumor"], negative=["Stroma"]).tolist()
    [1, 0, 0]
    >>> annotation_patch_labels(g, anns, positive=["Tumor"], negative=["Stroma"], outside="ignore").tolist()
    [1, 0, -1]
    """
    if outside not in ("negative", "ignore"):
        raise ValueError(f"outside must be 'negative' or 'ignore', got {outside!r}.")
    if not 0 < float(min_fraction) <= 1:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction!r}.")
    anns = [a if isinstance(a, Annotation) else Annotation(a) for a in annotations]
    roles = resolve_annotation_classes([a.label for a in anns], positive=positive, negative=negative,
                                       ignore=ignore, source=source)
    n = len(grid)
    if not anns:
        return np.full(n, 0 if outside == "negative" else -1, dtype=np.int8)
    w, h = (int(v) for v in grid.slide_dimensions)
    # Rasterise at a resolution where one patch spans >= ~8 mask pixels, so min_fraction is meaningful.
    d = max(1.0, float(grid.size_level0) / 8.0)

    def mask_of(role):
        sel = [a for a in anns if roles[a.label] == role]
        if not sel:
            return np.zeros((max(1, int(np.ceil(h / d - 1e-9))), max(1, int(np.ceil(w / d - 1e-9)))), bool)
        return rasterize_annotations(sel, (w, h), downsample=d, exclude=())

    ign = mask_of("ignore")
    pos = mask_of("positive") & ~ign
    boxes = grid.boxes()
    tol = 1e-12
    f_pos = box_fractions(pos, d, boxes)
    f_ign = box_fractions(ign, d, boxes)
    labels = np.zeros(n, dtype=np.int8)
    labels[f_ign >= float(min_fraction) - tol] = -1
    if outside == "ignore":
        neg = mask_of("negative") & ~ign & ~pos
        labels[box_fractions(neg, d, boxes) < float(min_fraction) - tol] = -1
    labels[f_pos >= float(min_fraction) - tol] = 1
    return labels
