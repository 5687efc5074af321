"""Issue 10 item 9: hostile or unusual annotation files get clear errors naming the file and the feature.

Each case here was accepted silently (NaN/inf/1e30 vertices that label nothing), refused although valid
(UTF-8 BOM, UTF-16 XML and GeoJSON), or crashed with a raw AttributeError/IndexError/RecursionError at
commit 1e25e0f.
"""

import json

import numpy as np
import pytest

from medfeat.slides import Annotation, read_annotations

ASAP = (
    '<?xml version="1.0" encoding="{enc}"?><ASAP_Annotations><Annotations>'
    '<Annotation Name="T1" PartOfGroup="Tumor" Type="Polygon"><Coordinates>'
    '<Coordinate Order="0" X="0" Y="0"/><Coordinate Order="1" X="{x}" Y="0"/><Coordinate Order="2" X="10" Y="5"/>'
    "</Coordinates></Annotation></Annotations></ASAP_Annotations>"
)


def _feature(coords, label="Tumor"):
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": coords},
            "properties": {"classification": {"name": label}}}


def _collection(*features):
    return json.dumps({"type": "FeatureCollection", "features": list(features)}).encode()


SQUARE = [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]


@pytest.mark.parametrize("encoding, data", [
    ("utf-8 with BOM", b"\xef\xbb\xbf" + ASAP.format(enc="UTF-8", x=10).encode()),
    ("utf-16 with BOM", ASAP.format(enc="UTF-16", x=10).encode("utf-16")),
    ("utf-16-le without BOM", ASAP.format(enc="UTF-16", x=10).encode("utf-16-le")),
])
def test_xml_in_bom_and_utf16_encodings_is_read(tmp_path, encoding, data):
    path = tmp_path / "a.xml"
    path.write_bytes(data)
    (ann,) = read_annotations(path)
    assert ann.label == "Tumor"
    assert ann.polygon.tolist() == [[0, 0], [10, 0], [10, 5]]


@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbf" + _collection(_feature(SQUARE)),
    _collection(_feature(SQUARE)).decode().encode("utf-16"),
])
def test_geojson_with_bom_or_utf16_is_read(tmp_path, data):
    path = tmp_path / "a.geojson"
    path.write_bytes(data)
    (ann,) = read_annotations(path)
    assert ann.polygon.tolist() == [[0, 0], [10, 0], [10, 10], [0, 10]]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e30"])
def test_xml_non_finite_or_huge_vertex_names_file_and_annotation(tmp_path, value):
    path = tmp_path / "bad.xml"
    path.write_text(ASAP.format(enc="UTF-8", x=value))
    with pytest.raises(ValueError, match=r"bad\.xml.*annotation 0 \('T1'\)"):
        read_annotations(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e30])
def test_geojson_non_finite_or_huge_vertex_names_file_and_feature(tmp_path, value):
    path = tmp_path / "bad.geojson"
    bad = [[[0, 0], [value, 0], [10, 10], [0, 0]]]
    path.write_bytes(_collection(_feature(SQUARE), _feature(bad)))  # json.dumps writes NaN / Infinity
    with pytest.raises(ValueError, match=r"bad\.geojson.*feature 1"):
        read_annotations(path)


def test_annotation_object_refuses_non_finite_vertices():
    with pytest.raises(ValueError, match="NaN or infinite"):
        Annotation(np.array([[0, 0], [np.nan, 1], [2, 2]]))


@pytest.mark.parametrize("payload, where", [
    ({"type": "FeatureCollection", "features": ["abc"]}, "feature 0"),
    ({"type": "FeatureCollection", "features": {"a": 1}}, "'features' must be a list"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": [1, 2]}]}, "feature 0"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon"},
                                                 "properties": "x"}]}, "feature 0"),
    ({"type": "FeatureCollection", "features": [_feature([[1, 2, 3]])]}, "feature 0, exterior ring, position 0"),
    ({"type": "FeatureCollection", "features": [_feature([[[0, 0], [1], [2, 2]]])]}, "position 1"),
    ({"type": "FeatureCollection", "features": [_feature([[[0, 0], ["a", "b"], [2, 2]]])]}, "position 1"),
    ({"type": "FeatureCollection", "features": [_feature(SQUARE), _feature([[[0, 0], [1, 1], [2, 2]], 7])]},
     "feature 1, hole 0"),
    ({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": 5}}]}, "feature 0"),
    ({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [SQUARE, [[[0, 0]]]]}}]},
     "feature 0, polygon 1"),
])
def test_malformed_geojson_gives_value_error_naming_file_and_feature(tmp_path, payload, where):
    path = tmp_path / "m.geojson"
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="m.geojson") as info:
        read_annotations(path)
    assert where in str(info.value)


def test_deeply_nested_json_is_a_value_error_not_recursion_error(tmp_path):
    path = tmp_path / "deep.geojson"
    path.write_bytes(b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(ValueError, match="deep.geojson"):
        read_annotations(path)


def test_xml_entity_declarations_are_refused_by_defusedxml(tmp_path):
    path = tmp_path / "lol.xml"
    path.write_text('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
                    "<ASAP_Annotations>&b;</ASAP_Annotations>")
    with pytest.raises(ValueError, match=r"lol\.xml.*entity"):
        read_annotations(path)
