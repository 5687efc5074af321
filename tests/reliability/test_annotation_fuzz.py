"""Bounded-time fuzzing of the annotation readers (issue 10 item 9), with hypothesis.

Property: whatever bytes a ``.xml`` / ``.geojson`` file holds, :func:`read_annotations` either returns
annotations whose vertices are finite level-0 pixels, or raises ``ValueError`` naming the file. Any other
exception (AttributeError, IndexError, RecursionError, TypeError ...) is a bug. The inputs are generated
from GeoJSON/ASAP skeletons with hostile leaves (NaN, inf, 1e30, strings, nesting, missing keys), in
several encodings, plus random truncation. ``derandomize`` keeps CI runs reproducible and the example
counts keep the whole module to a few seconds.
"""

import json
import os
import tempfile
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfeat.slides import Annotation, read_annotations

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

numbers = st.one_of(
    st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 100, 1e30, -1e30, float("nan"), float("inf")]),
)
json_leaf = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8))
json_any = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                        max_leaves=20)
position = st.one_of(st.lists(numbers, min_size=2, max_size=3), json_any)
ring = st.one_of(st.lists(position, min_size=0, max_size=6), json_any)
polygon = st.one_of(st.lists(ring, min_size=0, max_size=3), json_any)
geometry = st.one_of(
    st.fixed_dictionaries({"type": st.just("Polygon"), "coordinates": polygon}),
    st.fixed_dictionaries({"type": st.just("MultiPolygon"), "coordinates": st.one_of(st.lists(polygon, max_size=3),
                                                                                     json_any)}),
    st.fixed_dictionaries({"type": st.sampled_from(["Point", "LineString", None, 3])}),
    json_any,
)
properties = st.one_of(
    st.fixed_dictionaries({}, optional={"classification": st.one_of(
        st.fixed_dictionaries({"name": json_leaf}), json_any), "name": json_leaf}),
    json_any,
)
feature = st.one_of(st.fixed_dictionaries({"type": st.just("Feature"), "geometry": geometry},
                                          optional={"properties": properties, "id": json_leaf}), json_any)
document = st.one_of(
    st.fixed_dictionaries({"type": st.just("FeatureCollection"),
                           "features": st.one_of(st.lists(feature, max_size=4), json_any)}),
    st.lists(feature, max_size=4),
    feature,
    geometry,
    json_any,
)
encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"])


def _check(data, suffix):
    fd, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                anns = read_annotations(path)
        except ValueError as exc:
            assert os.path.basename(path) in str(exc), f"error does not name the file: {exc}"
            return
        for ann in anns:
            assert isinstance(ann, Annotation)
            for arr in [ann.polygon, *ann.holes]:
                assert arr.ndim == 2 and arr.shape[1] == 2 and arr.dtype == np.float64
                assert np.all(np.isfinite(arr)) and (arr.size == 0 or np.abs(arr).max() <= 2.0**31)
    finally:
        os.unlink(path)


@FUZZ
@given(doc=document, encoding=encodings, cut=st.one_of(st.none(), st.integers(0, 400)))
def test_geojson_reader_never_raises_anything_but_value_error(doc, encoding, cut):
    data = json.dumps(doc, allow_nan=True).encode(encoding)
    _check(data if cut is None else data[:cut], ".geojson")


attr_value = st.one_of(numbers.map(repr), st.text(max_size=6), st.sampled_from(["nan", "inf", "1e30", "", "-0"]))


@st.composite
def asap_documents(draw):
    parts = ['<?xml version="1.0" encoding="{enc}"?>', "<ASAP_Annotations><Annotations>"]
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["Polygon", "Spline", "Rectangle", "Dot", "PointSet"]))
        parts.append(f'<Annotation Name="A{i}" Type="{kind}" PartOfGroup="_0"><Coordinates>')
        for j in range(draw(st.integers(0, 5))):
            attrs = {"Order": str(j), "X": "1", "Y": "1"}
            for key in draw(st.lists(st.sampled_from(["Order", "X", "Y"]), max_size=3)):
                attrs[key] = draw(attr_value)
            if draw(st.booleans()) and draw(st.booleans()):
                attrs.pop(draw(st.sampled_from(["Order", "X", "Y"])))
            from xml.sax.saxutils import quoteattr

            parts.append("<Coordinate " + " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items()) + "/>")
        parts.append("</Coordinates></Annotation>")
    parts.append("</Annotations></ASAP_Annotations>")
    return "".join(parts)


@FUZZ
@given(doc=asap_documents(), encoding=st.sampled_from(["UTF-8", "UTF-16"]), bom=st.booleans(),
       cut=st.one_of(st.none(), st.integers(0, 300)))
def test_asap_reader_never_raises_anything_but_value_error(doc, encoding, bom, cut):
    codec = {"UTF-8": "utf-8-sig" if bom else "utf-8", "UTF-16": "utf-16" if bom else "utf-16-le"}[encoding]
    data = doc.replace("{enc}", encoding).encode(codec)
    _check(data if cut is None else data[:cut], ".xml")


@FUZZ
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".xml", ".geojson", ".json"]))
def test_arbitrary_bytes_give_value_error_or_annotations(data, suffix):
    _check(data, suffix)


def test_fuzz_property_catches_a_hostile_file():
    # the property is not vacuous: a NaN vertex must be refused (not returned), a valid one returned
    bad = json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [float("nan"), 0], [1, 1]]]}).encode()
    _check(bad, ".geojson")
    fd, path = tempfile.mkstemp(suffix=".geojson")
    with os.fdopen(fd, "wb") as fh:
        fh.write(bad)
    try:
        import pytest

        with pytest.raises(ValueError, match="NaN"):
            read_annotations(path)
    finally:
        os.unlink(path)
