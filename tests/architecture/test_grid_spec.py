"""GridSpec: one definition of the slide-grid settings, recorded in stores and models and read back."""

import dataclasses
import json

import h5py
import numpy as np
import pytest

from medfeat.features import ColorFeatures
from medfeat.pipelines import (
    SlideHeatmap,
    SlidePatchClassifier,
    extract_slide_features,
    load_slide_features,
    train_from_feature_stores,
)
from medfeat.slides import GridSpec, PatchGrid, SlideReader, write_synthetic_slide


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    d = tmp_path_factory.mktemp("spec")
    square = [[200, 200], [600, 200], [600, 600], [200, 600]]
    return [write_synthetic_slide(d / f"s{i}.tif", size=(1024, 1024), mpp=0.5, lesions=[square], seed=i)
            for i in range(2)]


def test_defaults_are_the_documented_ones():
    spec = GridSpec()
    assert (spec.mpp, spec.magnification, spec.size, spec.stride, spec.step) == (0.5, None, 224, None, 224)
    assert (spec.tissue, spec.min_tissue, spec.tissue_mpp, spec.scales) == ("otsu", 0.5, 8.0, (1.0,))
    # the class attributes are the same defaults (functions use them as their keyword defaults)
    assert all(getattr(GridSpec, f.name) == getattr(spec, f.name) for f in dataclasses.fields(GridSpec))


@pytest.mark.parametrize("kwargs, message", [
    (dict(size=0), "size must be a positive integer"),
    (dict(size=2.5), "size must be a positive integer"),
    (dict(stride=-1), "stride must be a positive integer"),
    (dict(mpp=0), "mpp must be a positive number"),
    (dict(mpp=float("nan")), "mpp must be a positive number"),
    (dict(mpp=0.5, magnification=20), "either mpp or magnification"),
    (dict(tissue="triangle"), "tissue must be one of"),
    (dict(min_tissue=1.5), r"min_tissue must be in \[0, 1\]"),
    (dict(tissue_mpp=-2), "tissue_mpp must be a positive number"),
    (dict(scales=()), "at least one field-of-view"),
    (dict(scales=(1, -2)), "scales must be a positive number"),
])
def test_bad_settings_are_refused_naming_the_setting(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GridSpec(**kwargs)


def test_spec_is_frozen_and_round_trips_through_json():
    spec = GridSpec(magnification=10, size=64, stride=32, tissue=None, min_tissue=0.25, scales=(1, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.size = 3
    d = json.loads(spec.to_json())
    assert d == {"mpp": None, "magnification": 10.0, "size": 64, "stride": 32, "tissue": "none",
                 "min_tissue": 0.25, "tissue_mpp": 8.0, "scales": [1.0, 2.0]}
    assert GridSpec.from_dict(d) == spec
    assert GridSpec.build(spec, mpp=1.0).magnification is None
    with pytest.raises(TypeError, match="unknown grid setting"):
        spec.replace(patch_size=3)


def test_make_grid_matches_patch_grid_from_reader(slides):
    with SlideReader.open(slides[0].path) as reader:
        spec = GridSpec(mpp=1.0, size=32, stride=16, tissue="gray", min_tissue=0.3, tissue_mpp=4.0)
        a = spec.make_grid(reader)
        b = PatchGrid.from_reader(reader, mpp=1.0, size=32, stride=16, tissue="gray", min_tissue=0.3, tissue_mpp=4.0)
    np.testing.assert_array_equal(a.coords, b.coords)
    assert len(a) > 0 and a.stride == 16 and a.size_level0 == 64


def test_store_records_the_spec_and_old_stores_still_load(slides, tmp_path):
    spec = GridSpec(mpp=1.0, size=32, tissue="gray", min_tissue=0.3)
    out = extract_slide_features(slides[0].path, ColorFeatures(), grid=spec, out=tmp_path / "a.h5", progress=False)
    with h5py.File(out, "r") as f:
        recorded = json.loads(f.attrs["grid_spec"])
        assert recorded == spec.to_dict()
        # the separate attributes stores always had agree with the spec
        assert (f.attrs["mpp"], f.attrs["size"], f.attrs["stride"]) == (1.0, 32, 32)
        assert (f.attrs["tissue"], f.attrs["min_tissue"], list(f.attrs["scales"])) == ("gray", 0.3, [1.0])
    _, _, _, attrs = load_slide_features(out)
    assert GridSpec.from_dict(attrs["grid_spec"]) == spec
    # the same grid from individual settings gives the same store contents
    out2 = extract_slide_features(slides[0].path, ColorFeatures(), mpp=1.0, size=32, tissue="gray", min_tissue=0.3,
                                  out=tmp_path / "b.h5", progress=False)
    np.testing.assert_array_equal(load_slide_features(out2)[0].coords, load_slide_features(out)[0].coords)

    # a store written before grid_spec existed: the attribute is absent, the spec comes from the others
    with h5py.File(out2, "a") as f:
        del f.attrs["grid_spec"]
    _, _, _, old = load_slide_features(out2)
    assert GridSpec.from_dict(old["grid_spec"]).replace(stride=None) == spec


def test_model_carries_the_store_spec_into_heatmaps(slides, tmp_path):
    spec = GridSpec(mpp=1.0, size=32, tissue="gray", min_tissue=0.3)
    for s in slides:
        extract_slide_features(s.path, "color", grid=spec, out=tmp_path / "f", progress=False, annotations=s.lesions)
    result = train_from_feature_stores(tmp_path / "f", classifier="logreg")
    model = result.model
    assert model.grid_spec == spec.replace(stride=spec.step)
    hm = model.heatmap(slides[0].path, progress=False)
    with SlideReader.open(slides[0].path) as reader:
        expected = spec.make_grid(reader)
    np.testing.assert_array_equal(hm.grid.coords, expected.coords)
    # SlideHeatmap with no grid takes the model's own
    assert SlideHeatmap(model, progress=False).grid == model.grid_spec
    # and a model rebuilt from the spec's dict (what model metadata holds) is the same grid
    again = SlidePatchClassifier.from_grid_spec(None, None, model.grid_spec.to_dict())
    assert again.grid_spec == model.grid_spec


def test_old_slide_reader_keyword_still_works_with_a_deprecation_warning():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.warns(DeprecationWarning, match="slide_mpp"):
        reader = SlideReader.open(img, mpp=0.5)
    assert reader.mpp == (0.5, 0.5)
    with pytest.raises(ValueError, match="not both"):
        SlideReader.open(img, mpp=0.5, slide_mpp=0.5)
