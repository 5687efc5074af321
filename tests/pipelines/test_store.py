"""HDF5 feature store: contents against independent computations, resume after a crash, skipping, bad input."""

import h5py
import numpy as np
import pytest
import shapely

from medfeat.features import ColorFeatures
from medfeat.pipelines import (
    EmptyTissueError,
    extract_features,
    extract_slide_features,
    load_slide_features,
    make_features,
)
from medfeat.slides import PatchGrid, SlideReader, read_patches, write_synthetic_slide

MPP, SIZE = 1.0, 16
L0 = 32  # level-0 patch size: 16 px * 1.0 / 0.5


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    d = tmp_path_factory.mktemp("store_slides")
    # 0.5 µm/px level 0; patches of 16 px at 1 µm/px are 32 level-0 pixels wide.
    square = np.array([[256, 256], [512, 256], [512, 512], [256, 512]], float)
    return write_synthetic_slide(d / "s.tif", size=(1024, 768), mpp=0.5, lesions=[square], seed=3)


def _contents(path):
    with h5py.File(path, "r") as f:
        data = {k: f[k][()] for k in f.keys()}
        attrs = {k: f.attrs[k] for k in f.attrs.keys()}
    return data, attrs


def test_store_matches_grid_and_independent_features(slide, tmp_path):
    out = extract_slide_features(slide.path, ColorFeatures(), mpp=MPP, size=SIZE, out=tmp_path, progress=False,
                                 batch_size=16, num_workers=2)
    assert out == tmp_path / "s.h5" and out.exists()
    assert not (tmp_path / "s.h5.partial").exists()
    grid, X, labels, attrs = load_slide_features(out)

    with SlideReader.open(slide.path) as reader:
        expected_grid = PatchGrid.from_reader(reader, mpp=MPP, size=SIZE)
        patches = read_patches(reader, expected_grid)
    np.testing.assert_array_equal(grid.coords, expected_grid.coords)
    # level-0 coords lie on the lattice of the level-0 patch size
    assert np.all(grid.coords % L0 == 0)
    expected = ColorFeatures().fit(patches).transform(patches)
    np.testing.assert_allclose(X, expected, rtol=1e-6, atol=1e-6)
    assert X.dtype == np.float32 and labels is None
    assert attrs["mpp"] == 1.0 and attrs["size"] == SIZE and attrs["size_level0"] == L0
    assert attrs["slide_dimensions"] == [1024, 768] and attrs["slide_mpp"] == [0.5, 0.5]
    assert attrs["feature_names"] == list(ColorFeatures().fit(patches[:1]).get_feature_names_out())
    assert attrs["transformer_class"].endswith("ColorFeatures") and attrs["medfeat_version"]
    assert grid.size_level0 == L0 and grid.slide_path.endswith("s.tif")


def test_labels_from_annotations_match_polygon_overlap(slide, tmp_path):
    out = extract_slide_features(slide.path, ColorFeatures(), mpp=MPP, size=SIZE, out=tmp_path / "a.h5",
                                 progress=False, annotations=slide.lesions, tissue=None)
    grid, _, labels, _ = load_slide_features(out)
    lesion = shapely.Polygon(slide.lesions[0])
    # independent: exact overlap area of each level-0 patch box with the lesion square
    frac = np.array([shapely.box(x, y, x + L0, y + L0).intersection(lesion).area / L0**2 for x, y in grid.coords])
    np.testing.assert_array_equal(labels, (frac >= 0.5).astype(int))
    assert labels.sum() == (256 // L0) ** 2  # the 256 px square covers whole patches exactly


class Crash(RuntimeError):
    pass


def _crashing(transformer, after_calls):
    """Make ``transformer.transform`` raise after ``after_calls`` calls (its parameters stay the same)."""
    original = type(transformer).transform
    calls = {"n": 0, "rows": 0}

    def transform(X):
        if calls["n"] >= after_calls:
            raise Crash("simulated crash")
        calls["n"] += 1
        calls["rows"] += len(X)
        return original(transformer, X)

    transformer.transform = transform
    return calls


def test_resume_after_crash_gives_identical_store(slide, tmp_path):
    kw = dict(mpp=MPP, size=SIZE, progress=False, batch_size=8, chunk_size=8, num_workers=2)
    ref = extract_slide_features(slide.path, ColorFeatures(), out=tmp_path / "ref" / "s.h5", **kw)
    ref_data, ref_attrs = _contents(ref)
    n = len(ref_data["coords"])
    assert n > 24

    target = tmp_path / "run" / "s.h5"
    t = ColorFeatures()
    _crashing(t, after_calls=2)
    with pytest.raises(Crash):
        extract_slide_features(slide.path, t, out=target, **kw)
    partial = target.with_name("s.h5.partial")
    assert partial.exists() and not target.exists()
    with h5py.File(partial, "r") as f:
        assert int(f.attrs["n_done"]) == 16  # two finished chunks of 8 rows

    t2 = ColorFeatures()
    calls = _crashing(t2, after_calls=10**9)
    extract_slide_features(slide.path, t2, out=target, **kw)
    # only the unfinished rows were computed again (the fit batch is read, not transformed)
    assert calls["rows"] == n - 16
    data, attrs = _contents(target)
    assert data.keys() == ref_data.keys()
    for key in ref_data:
        np.testing.assert_array_equal(data[key], ref_data[key], err_msg=key)
    assert attrs.keys() == ref_attrs.keys()
    for key in ref_attrs:
        np.testing.assert_array_equal(attrs[key], ref_attrs[key], err_msg=key)


def test_partial_from_other_settings_starts_over(slide, tmp_path):
    target = tmp_path / "s.h5"
    t = ColorFeatures()
    _crashing(t, after_calls=1)
    with pytest.raises(Crash):
        extract_slide_features(slide.path, t, mpp=MPP, size=2 * SIZE, out=target, progress=False, batch_size=4,
                               chunk_size=4)
    # other patch size: the partial file must not be reused
    out = extract_slide_features(slide.path, ColorFeatures(), mpp=MPP, size=SIZE, out=target, progress=False)
    fresh = extract_slide_features(slide.path, ColorFeatures(), mpp=MPP, size=SIZE, out=tmp_path / "f.h5",
                                   progress=False)
    a, _ = _contents(out)
    b, _ = _contents(fresh)
    for key in b:
        np.testing.assert_array_equal(a[key], b[key])


def test_finished_store_is_skipped_unless_overwrite(slide, tmp_path):
    out = extract_slide_features(slide.path, ColorFeatures(), mpp=MPP, size=SIZE, out=tmp_path, progress=False)
    t = ColorFeatures()
    calls = _crashing(t, after_calls=10**9)
    extract_slide_features(slide.path, t, mpp=MPP, size=SIZE, out=tmp_path, progress=False)
    assert calls["n"] == 0
    extract_slide_features(slide.path, t, mpp=MPP, size=SIZE, out=tmp_path, progress=False, overwrite=True)
    assert calls["n"] > 0 and out.exists()


def test_multi_slide_skips_unreadable_and_finishes_others(slide, tmp_path):
    bad = tmp_path / "broken.svs"
    bad.write_text("not a slide")
    with pytest.warns(RuntimeWarning) as record:
        results = extract_features([bad, slide.path, tmp_path / "missing.tif"], ColorFeatures(), tmp_path / "out",
                                   mpp=MPP, size=SIZE, progress=False)
    messages = [str(w.message) for w in record]
    assert any("broken.svs" in m for m in messages) and any("missing.tif" in m for m in messages)
    assert [r.status for r in results] == ["failed", "written", "failed"]
    assert results[1].path.exists() and "missing.tif" in results[2].error
    again = extract_features([slide.path], ColorFeatures(), tmp_path / "out", mpp=MPP, size=SIZE, progress=False)
    assert again[0].status == "skipped"


# tissue_mask may warn that the mask is empty; the warning itself is not what this test checks
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_empty_tissue_is_a_clear_error(tmp_path):
    blank = SlideReader.open(np.full((256, 256, 3), 245, np.uint8), slide_mpp=0.5)
    with pytest.raises(EmptyTissueError, match="no patch"):
        extract_slide_features(blank, ColorFeatures(), mpp=MPP, size=SIZE, out=tmp_path / "b.h5", progress=False)
    assert not (tmp_path / "b.h5").exists()


def test_bad_input(slide, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.svs"):
        extract_slide_features(tmp_path / "nothere.svs", ColorFeatures(), out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="out must be given"):
        extract_slide_features(slide.path, ColorFeatures(), progress=False)
    with pytest.raises(ValueError, match="features must be one of"):
        extract_slide_features(slide.path, "resnet", out=tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match="feature store not found"):
        load_slide_features(tmp_path / "none.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = [1, 2]
    with pytest.raises(ValueError, match="not a medfeat feature store"):
        load_slide_features(tmp_path / "other.h5")


def test_make_features_feeds_deep_patches_at_their_own_size():
    # slide pipelines do not enlarge patches: the grid's size at mpp is the network input
    assert make_features("deep").input_size is None
    assert make_features("deep", input_size="auto").input_size == "auto"
    fusion = make_features("fusion", input_size=112)
    assert dict(fusion.transformer_list)["deep"].input_size == 112
