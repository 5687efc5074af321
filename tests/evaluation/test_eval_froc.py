"""FROC on synthetic masks with hand-counted lesions, ITCs, TPs and FPs; heatmap detections."""

import json

import numpy as np
import pytest

from medfeat.evaluation import detections_from_heatmap, froc, lesion_map

# Slides at 1 µm per level-0 pixel, masks at downsample 4 (4 µm per mask pixel): the 75 µm merge
# distance grows each lesion by 37.5 µm = 9.375 mask pixels; ITC = major axis < 275 µm = 68.75 px.
DS = 4


def _slide_a():
    m = np.zeros((250, 250), np.uint8)
    m[20:120, 20:120] = 1   # L1: 400 µm square
    m[20:120, 128:140] = 1  # 8 px (32 µm) from L1: merged with it
    m[150:200, 150:230] = 1  # L2: 200 x 320 µm, far from L1
    m[220:223, 20:23] = 1    # 12 µm blob: an ITC after dilation (~87 µm)
    return m


def _slide_c():
    m = np.zeros((250, 250), bool)
    m[50:150, 50:150] = True  # one lesion, never detected
    return m


def _at(row, col, p):
    return [col * DS + 2, row * DS + 2, p]


def test_lesion_map_merge_and_itc_rules():
    labels, itc = lesion_map(_slide_a(), mpp=1.0, mask_downsample=DS)
    assert labels.max() == 3  # L1 (merged with its neighbour), L2, the ITC
    assert labels[70, 70] == labels[70, 134] != 0
    assert itc == {int(labels[221, 21])}
    # 20 px (80 µm) apart: more than 75 µm, so the two stay separate lesions.
    m = np.zeros((200, 200), bool)
    m[20:120, 20:100] = True
    m[20:120, 120:190] = True
    labels2, itc2 = lesion_map(m, mpp=1.0, mask_downsample=DS)
    assert labels2.max() == 2 and not itc2
    # Dilation grows lesions: a pixel 6 px (24 µm < 37.5 µm) outside belongs to the lesion, 12 px (48 µm) not.
    assert labels[125, 70] == labels[70, 70] and labels[132, 70] == 0


def test_froc_hand_counted():
    dets = {
        "A": np.array([
            _at(70, 70, 0.9),     # TP in L1
            _at(70, 134, 0.95),   # same (merged) lesion: L1 found at 0.95
            _at(175, 190, 0.4),   # TP in L2
            _at(221, 21, 0.8),    # inside the ITC: ignored
            _at(125, 70, 0.3),    # inside L1's 37.5 µm margin: TP, lower than 0.95
            _at(20, 240, 0.7),    # background: FP
            [5000.0, 5000.0, 0.2],  # outside the mask: FP
        ]),
        "B": [[100.0, 100.0, 0.6], [300.0, 50.0, 0.1]],  # normal slide: both FPs
    }
    res = froc(dets, {"A": _slide_a(), "B": None, "C": _slide_c()}, mpp=1.0, mask_downsample=DS)
    assert (res.n_slides, res.n_normal_slides, res.n_lesions, res.n_itc) == (3, 1, 3, 1)
    assert sorted(res.tp_probabilities) == [0.4, 0.95]
    assert sorted(res.fp_probabilities) == [0.1, 0.2, 0.6, 0.7]
    a = res.per_slide.loc["A"]
    assert (a.n_lesions, a.n_itc, a.n_lesions_found, a.n_fp, a.n_detections_in_itc) == (2, 1, 2, 2, 1)
    assert res.per_slide.loc["C", "n_lesions_found"] == 0 and res.per_slide.loc["B", "n_fp"] == 2
    # Curve by hand (thresholds 0.95, 0.7, 0.6, 0.4, 0.2, 0.1; 3 slides, 3 lesions).
    np.testing.assert_allclose(res.fp_per_slide, [0, 0, 1 / 3, 2 / 3, 2 / 3, 1, 4 / 3])
    np.testing.assert_allclose(res.sensitivity, [0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3])
    expected = {0.25: 1 / 3, 0.5: 1 / 3, 1.0: 2 / 3, 2.0: 2 / 3, 4.0: 2 / 3, 8.0: 2 / 3}
    assert res.sensitivity_at == pytest.approx(expected)
    assert res.score == pytest.approx(10 / 18)
    d = json.loads(res.to_json())
    assert d["n_lesions"] == 3 and d["curve"]["thresholds"][0] is None
    assert res.to_frame().loc["FROC score (mean)", "value"] == pytest.approx(10 / 18)


def test_froc_bad_input():
    with pytest.raises(ValueError, match="missing from lesion_masks"):
        froc({"X": [[1, 1, 0.5]]}, {"A": None}, mpp=1.0)
    with pytest.raises(ValueError, match=r"\(k, 3\)"):
        froc({"A": [[1, 1]]}, {"A": None}, mpp=1.0)
    with pytest.raises(ValueError, match="mpp must be a positive number"):
        froc({}, {"A": _slide_c()}, mpp=0)


def test_detections_from_heatmap():
    h = np.zeros((6, 8))
    h[1, 2] = 0.9
    h[1, 3] = 0.85  # neighbour of a higher maximum: not a separate detection
    h[4, 6] = 0.7
    h[5, 0] = 0.5   # equal to the threshold: not kept (strictly above)
    h[0, 7] = np.nan  # no tissue
    d = detections_from_heatmap(h, 0.5, origin=(1000, 2000), stride=256)
    # Cell centre = origin + index * stride + stride / 2.
    np.testing.assert_allclose(d, [[1000 + 2 * 256 + 128, 2000 + 256 + 128, 0.9],
                                   [1000 + 6 * 256 + 128, 2000 + 4 * 256 + 128, 0.7]])
    assert len(detections_from_heatmap(h, 0.8)) == 1
    # From per-patch scores and grid coordinates (top-left), patch of 512 level-0 px on a 256 stride.
    coords = np.array([[0, 0], [256, 0], [512, 0], [0, 256], [256, 256], [512, 256], [1024, 1024]])
    p = np.array([0.1, 0.2, 0.3, 0.2, 0.6, 0.1, 0.9])
    d2 = detections_from_heatmap(p, 0.5, coords=coords, patch_size=512)
    np.testing.assert_allclose(d2, [[1024 + 256, 1024 + 256, 0.9], [256 + 256, 256 + 256, 0.6]])
    # A saturated plateau is one detection (at its centre cell), not one per cell.
    plateau = np.zeros((9, 9))
    plateau[2:5, 2:5] = 1.0
    plateau[7, 7] = 0.8
    np.testing.assert_allclose(detections_from_heatmap(plateau, 0.5), [[3.5, 3.5, 1.0], [7.5, 7.5, 0.8]])
    # min_distance=3: the 0.8 cell is within 3 cells of the plateau's corner (4, 4), so it is no maximum there.
    np.testing.assert_allclose(detections_from_heatmap(plateau, 0.5, min_distance=3), [[3.5, 3.5, 1.0]])
    with pytest.raises(ValueError, match="2-D heatmap"):
        detections_from_heatmap(np.zeros((2, 2, 2)))
