"""PatchGrid counts and coordinates by hand, tissue fractions on planted masks, tissue masks."""

import json

import numpy as np
import pytest

from medfeat.slides import PatchGrid, SlideReader, TissueMask, box_fractions, tissue_mask


def _reader(w, h, mpp=0.25, value=240):
    return SlideReader.open(np.full((h, w, 3), value, np.uint8), slide_mpp=mpp)


def test_grid_counts_and_coords_by_hand():
    # slide 1000 x 600 at 0.25 um/px; patches 100 px at 0.5 um/px = 200 level-0 px.
    grid = PatchGrid.from_reader(_reader(1000, 600), mpp=0.5, size=100, tissue=None)
    expected = [(x, y) for y in (0, 200, 400) for x in (0, 200, 400, 600, 800)]
    assert grid.coords.dtype == np.int64
    assert grid.coords.tolist() == [list(c) for c in expected]
    assert grid.size_level0 == 200.0 and grid.stride_level0 == 200.0 and grid.slide_dimensions == (1000, 600)
    # 1050 wide: a 6th column at x=1000 reaches past the edge (read padded white)
    assert len(PatchGrid.from_reader(_reader(1050, 600), mpp=0.5, size=100, tissue=None)) == 6 * 3
    # stride 50 px = 100 level-0 px: columns 0..800 step 100 (9), rows 0..400 (5)
    overlap = PatchGrid.from_reader(_reader(1000, 600), mpp=0.5, size=100, stride=50, tissue=None)
    assert len(overlap) == 9 * 5 and overlap.coords[:10, 0].tolist() == [0, 100, 200, 300, 400, 500, 600, 700, 800, 0]
    # non-integer level-0 size: 10 px at 0.5 um/px on a 0.3 um/px slide = 16.67 level-0 px, rounded starts
    odd = PatchGrid.from_reader(_reader(60, 16, mpp=0.3), mpp=0.5, size=10, tissue=None)
    assert odd.coords[:, 0].tolist() == [0, 17, 33, 50]  # ceil((60 - 16.67) / 16.67) + 1 = 4 columns
    assert odd.coords[:, 1].tolist() == [0, 0, 0, 0]  # one row: 16 px high, the 16.67 px patch covers it


def test_magnification_and_defaults():
    r = _reader(400, 400)
    assert PatchGrid.from_reader(r, magnification=20, size=10, tissue=None).mpp == pytest.approx(0.5)
    assert PatchGrid.from_reader(r, size=10, tissue=None).mpp == 0.5
    with pytest.raises(ValueError, match="either mpp or magnification"):
        PatchGrid.from_reader(r, mpp=0.5, magnification=20, tissue=None)
    with pytest.raises(ValueError, match="size"):
        PatchGrid.from_reader(r, size=0, tissue=None)


def test_tissue_fraction_on_planted_mask():
    r = _reader(1000, 600)
    mask = np.zeros((12, 20), bool)  # 50 level-0 px per mask pixel
    mask[0:4, 0:4] = True  # patch (0, 0) fully tissue
    mask[4:6, 4:8] = True  # patch (200, 200): y 200-300 of 200-400 -> half
    mask[8, 12] = True  # patch (600, 400): one 50x50 cell of 200x200 -> 1/16
    tm = TissueMask.from_array(mask, r)
    assert tm.downsample == (50.0, 50.0)
    grid = PatchGrid.from_reader(r, mpp=0.5, size=100, tissue=tm, min_tissue=0.0)
    frac = dict(zip(map(tuple, grid.coords.tolist()), grid.tissue))
    assert frac[(0, 0)] == pytest.approx(1.0)
    assert frac[(200, 200)] == pytest.approx(0.5)
    assert frac[(600, 400)] == pytest.approx(1 / 16)
    assert sum(frac.values()) == pytest.approx(1 + 0.5 + 1 / 16)
    half = PatchGrid.from_reader(r, mpp=0.5, size=100, tissue=tm, min_tissue=0.5)
    assert half.coords.tolist() == [[0, 0], [200, 200]] and half.tissue.tolist() == pytest.approx([1.0, 0.5])
    assert len(PatchGrid.from_reader(r, mpp=0.5, size=100, tissue=tm, min_tissue=0.6)) == 1
    # a mask given only with its mpp (12.5 um/px = 50 level-0 px at 0.25 um/px) lands the same way
    by_mpp = PatchGrid.from_reader(r, mpp=0.5, size=100, tissue=TissueMask(mask, mpp=12.5), min_tissue=0.5)
    assert by_mpp.coords.tolist() == half.coords.tolist()


def test_box_fractions_fractional_boxes():
    mask = np.zeros((2, 2), bool)
    mask[0, 0] = True  # level-0 [0, 10) x [0, 10) with downsample 10
    boxes = np.array([[5, 5, 15, 15], [0, 0, 10, 20], [-10, 0, 10, 10], [2.5, 0, 7.5, 2]])
    assert box_fractions(mask, 10, boxes).tolist() == pytest.approx([0.25, 0.5, 0.5, 1.0])


def test_subset_frame_and_attrs_round_trip():
    r = _reader(1000, 600)
    tm = TissueMask.from_array(np.ones((12, 20), bool), r)
    grid = PatchGrid.from_reader(r, mpp=0.5, size=100, tissue=tm)
    sub = grid.subset([3, 1])
    assert sub.coords.tolist() == [[600, 0], [200, 0]] and sub.mpp == grid.mpp
    assert grid.subset(np.arange(15) % 5 == 0).coords[:, 0].tolist() == [0, 0, 0]
    frame = grid.to_frame()
    assert list(frame.columns) == ["x", "y", "tissue"] and len(frame) == 15
    attrs = json.loads(json.dumps(grid.attrs()))
    back = PatchGrid.from_attrs(grid.coords, attrs)
    assert back.size_level0 == 200.0 and back.slide_mpp == (0.25, 0.25) and back.slide_dimensions == (1000, 600)
    assert back.coords.tolist() == grid.coords.tolist() and back.stride == 100
    with pytest.raises(ValueError, match="slide_mpp"):
        PatchGrid.from_attrs(grid.coords, {"mpp": 0.5, "size": 1, "stride": 1, "slide_dimensions": [1, 1]})


def _planted_tissue_image():
    img = np.full((400, 400, 3), 242, np.uint8)  # glass
    img[100:300, 100:300] = (205, 120, 175)  # H&E-pink square: 200 x 200
    img[180:220, 180:220] = 242  # a lumen inside: a hole to fill
    img[20:24, 350:354] = (150, 60, 140)  # 4 x 4 speck of debris
    return img


def test_tissue_mask_otsu_fills_holes_and_drops_specks():
    r = SlideReader.open(_planted_tissue_image(), slide_mpp=1.0)
    m = tissue_mask(r, method="otsu", mpp=4.0, min_object_um2=200.0)  # 4 um/px: 100 x 100 mask
    assert m.mask.shape == (100, 100) and m.mpp == 4.0 and m.downsample == (4.0, 4.0)
    expected = np.zeros((100, 100), bool)
    expected[25:75, 25:75] = True  # the square, its hole filled, the 16 um^2 speck removed
    assert np.array_equal(m.mask, expected)
    kept = tissue_mask(r, method="otsu", mpp=4.0, min_object_um2=0.0, fill_holes=False)
    assert kept.mask[5, 88] and not kept.mask[50, 50]


def test_tissue_mask_gray_threshold():
    img = np.full((8, 8, 3), 255, np.uint8)
    img[:4] = 201  # grey 0.788 <= 0.8: tissue
    img[4:6] = 205  # grey 0.804 > 0.8: background
    m = tissue_mask(SlideReader.open(img, slide_mpp=1.0), method="gray", mpp=1.0, min_object_um2=0, fill_holes=False)
    assert m.mask[:4].all() and not m.mask[4:].any()


def test_empty_tissue_warns_and_gives_empty_grid():
    r = _reader(800, 800, value=245)
    with pytest.warns(UserWarning, match="no tissue"):
        m = tissue_mask(r)
    assert not m.mask.any()
    with pytest.warns(UserWarning, match="no tissue"):
        grid = PatchGrid.from_reader(r, mpp=0.5, size=50)
    assert len(grid) == 0 and grid.coords.shape == (0, 2)
    with pytest.raises(ValueError, match="method"):
        tissue_mask(r, method="magic")


def test_tissue_mask_otsu_keeps_pale_tissue_beside_large_dark_lesions(tmp_path):
    # Dark lesions covering much of a small slide give optical density a heavy tail; a plain Otsu cut on
    # optical density then split dark from pale tissue and dropped most of the tissue (regression).
    from medfeat.slides import Annotation, SlideReader, rasterize_annotations, tissue_mask, write_synthetic_slide

    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    lesions = [np.c_[330 + 110 * np.cos(t), 330 + 110 * np.sin(t)], np.c_[700 + 100 * np.cos(t), 760 + 100 * np.sin(t)]]
    s = write_synthetic_slide(tmp_path / "s.tif", size=(1024, 1024), mpp=0.5, lesions=lesions, seed=0,
                              tissue_fraction=0.6, compression="deflate")
    with SlideReader.open(s.path) as reader:
        tm = tissue_mask(reader, method="otsu", mpp=8.0)
    truth = rasterize_annotations([Annotation(polygon=p, label="tissue", name="") for p in s.tissue], s.size,
                                  downsample=16.0)
    h, w = min(truth.shape[0], tm.mask.shape[0]), min(truth.shape[1], tm.mask.shape[1])
    pred, truth = tm.mask[:h, :w], truth[:h, :w].astype(bool)
    iou = (pred & truth).sum() / (pred | truth).sum()
    assert iou > 0.8, iou
