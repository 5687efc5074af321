"""Annotations: ASAP XML and GeoJSON reading, GeoJSON export round trip, rasterisation, patch labels."""

import json

import numpy as np
import pytest

from medfeat.slides import (
    Annotation,
    PatchGrid,
    annotations_to_geojson,
    patch_labels,
    rasterize_annotations,
    read_annotations,
)

ASAP_XML = """<?xml version="1.0"?>
<ASAP_Annotations>
  <Annotations>
    <Annotation Name="Annotation 0" Type="Polygon" PartOfGroup="_0" Color="#F4FA58">
      <Coordinates>
        <Coordinate Order="2" X="400" Y="400" />
        <Coordinate Order="0" X="0" Y="0" />
        <Coordinate Order="3" X="0" Y="400" />
        <Coordinate Order="1" X="400" Y="0" />
      </Coordinates>
    </Annotation>
    <Annotation Name="Annotation 1" Type="Polygon" PartOfGroup="_2" Color="#64FE2E">
      <Coordinates>
        <Coordinate Order="0" X="100" Y="100" />
        <Coordinate Order="1" X="200" Y="100" />
        <Coordinate Order="2" X="200" Y="200" />
        <Coordinate Order="3" X="100" Y="200" />
      </Coordinates>
    </Annotation>
    <Annotation Name="Dot 1" Type="Dot" PartOfGroup="None">
      <Coordinates><Coordinate Order="0" X="5" Y="5" /></Coordinates>
    </Annotation>
  </Annotations>
  <AnnotationGroups><Group Name="_0" PartOfGroup="None" Color="#FF0000"><Attributes /></Group></AnnotationGroups>
</ASAP_Annotations>
"""


def test_read_asap_xml_orders_vertices(tmp_path):
    path = tmp_path / "tumor_001.xml"
    path.write_text(ASAP_XML)
    with pytest.warns(UserWarning, match="skipped 1 non-polygon"):
        anns = read_annotations(path)
    assert [(a.name, a.label) for a in anns] == [("Annotation 0", "_0"), ("Annotation 1", "_2")]
    assert anns[0].polygon.tolist() == [[0, 0], [400, 0], [400, 400], [0, 400]]


def test_rasterize_camelyon_exclusion_and_counts(tmp_path):
    path = tmp_path / "tumor_001.xml"
    path.write_text(ASAP_XML)
    with pytest.warns(UserWarning):
        anns = read_annotations(path)
    # downsample 10 on a 1000 x 800 slide: 100 x 80 mask; the 400 x 400 tumour square covers pixel
    # centres 5, 15, ..., 395 -> 40 x 40 pixels; the "_2" square [100, 200)^2 cuts out 10 x 10.
    mask = rasterize_annotations(anns, (1000, 800), downsample=10)
    assert mask.shape == (80, 100) and mask.dtype == bool
    assert mask.sum() == 40 * 40 - 10 * 10
    assert mask[:40, :40].sum() == mask.sum() and not mask[10:20, 10:20].any()
    kept = rasterize_annotations(anns, (1000, 800), downsample=10, exclude=())
    assert kept.sum() == 40 * 40
    only = rasterize_annotations(anns, (1000, 800), mpp=5.0, slide_mpp=0.5, labels=["_2"], exclude=())
    assert only.sum() == 10 * 10


def test_geojson_round_trip_and_qupath_shape(tmp_path):
    square = Annotation(np.array([[10.5, 20.0], [110.5, 20.0], [110.5, 120.0], [10.5, 120.0]]), label="Tumor",
                        name="t1", holes=[np.array([[40.0, 50.0], [60.0, 50.0], [60.0, 70.0]])])
    tri = Annotation(np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]), label="Stroma")
    path = tmp_path / "out.geojson"
    gj = annotations_to_geojson([square, tri], path)
    on_disk = json.loads(path.read_text())
    assert on_disk == gj and on_disk["type"] == "FeatureCollection"
    f0 = on_disk["features"][0]
    assert f0["type"] == "Feature" and f0["geometry"]["type"] == "Polygon"
    assert f0["properties"]["objectType"] == "annotation" and f0["properties"]["classification"]["name"] == "Tumor"
    ring = f0["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] == [10.5, 20.0] and len(ring) == 5  # closed ring
    back = read_annotations(path)
    assert [(a.label, a.name) for a in back] == [("Tumor", "t1"), ("Stroma", on_disk["features"][1]["id"])]
    assert np.array_equal(back[0].polygon, square.polygon) and np.array_equal(back[0].holes[0], square.holes[0])
    assert np.array_equal(back[1].polygon, tri.polygon)
    # XML -> annotations -> GeoJSON -> annotations keeps the polygons
    xml = tmp_path / "a.xml"
    xml.write_text(ASAP_XML)
    with pytest.warns(UserWarning):
        from_xml = read_annotations(xml)
    annotations_to_geojson(from_xml, tmp_path / "a.geojson")
    again = read_annotations(tmp_path / "a.geojson")
    assert [a.label for a in again] == ["_0", "_2"]
    assert all(np.array_equal(a.polygon, b.polygon) for a, b in zip(from_xml, again))


def test_geojson_multipolygon_and_holes(tmp_path):
    doc = [{"type": "Feature", "properties": {"classification": {"name": "Tumor"}, "name": "m"},
            "geometry": {"type": "MultiPolygon", "coordinates": [
                [[[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]], [[20, 20], [40, 20], [40, 40], [20, 40], [20, 20]]],
                [[[200, 0], [300, 0], [300, 50], [200, 50], [200, 0]]],
            ]}},
           {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [1, 2]}}]
    path = tmp_path / "qupath.json"
    path.write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="non-polygon"):
        anns = read_annotations(path)
    assert len(anns) == 2 and all(a.label == "Tumor" for a in anns) and len(anns[0].holes) == 1
    mask = rasterize_annotations(anns, (400, 100), downsample=1)
    assert mask.sum() == 100 * 100 - 20 * 20 + 100 * 50


def test_patch_labels_min_fraction():
    grid = PatchGrid([[0, 0], [100, 0], [200, 0], [300, 0]], mpp=0.5, size=100, stride=100,
                     slide_dimensions=(400, 100), slide_mpp=(0.5, 0.5))
    mask = np.zeros((10, 40), bool)  # downsample 10
    mask[:, 0:10] = True  # patch 0: 100 %
    mask[:, 10:15] = True  # patch 1: 50 %
    mask[:5, 20:24] = True  # patch 2: 20 %
    assert patch_labels(grid, mask, 10).tolist() == [1, 1, 0, 0]
    assert patch_labels(grid, mask, 10, min_fraction=0.2).tolist() == [1, 1, 1, 0]
    assert patch_labels(grid, mask).tolist() == [1, 1, 0, 0]  # downsample from the slide size
    with pytest.raises(ValueError, match="min_fraction"):
        patch_labels(grid, mask, 10, min_fraction=0)


def test_bad_annotation_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.xml"):
        read_annotations(tmp_path / "nope.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<ASAP_Annotations><Annotations>")
    with pytest.raises(ValueError, match="bad.xml"):
        read_annotations(bad)
    txt = tmp_path / "notes.geojson"
    txt.write_text("hello")
    with pytest.raises(ValueError, match="notes.geojson"):
        read_annotations(txt)
    with pytest.raises(ValueError, match="downsample"):
        rasterize_annotations([], (10, 10))
