"""Slide heatmaps: end-to-end AUC on planted lesions, lattice geometry, GeoJSON round trip, TTA, exports."""

import numpy as np
import pytest
import shapely
from PIL import Image
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import roc_auc_score

from medfeat.features import HandcraftedFeatures
from medfeat.pipelines import (
    Heatmap,
    SlideHeatmap,
    extract_slide_features,
    heatmap_from_features,
    train_from_feature_stores,
)
from medfeat.slides import (
    PatchGrid,
    SlideReader,
    rasterize_annotations,
    read_annotations,
    read_patches,
    write_synthetic_slide,
)

MPP, SIZE, L0 = 1.0, 32, 64  # 32 px at 1 µm/px on a 0.5 µm/px slide: 64 level-0 px
TISSUE = "gray"


def _circle(cx, cy, r, n=48):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(a), cy + r * np.sin(a)])


def _overlap_labels(grid, lesions, size0):
    """Independent patch labels: exact area overlap of each patch box with the lesion polygons >= 0.5."""
    union = shapely.union_all([shapely.Polygon(p) for p in lesions])
    return np.array([shapely.box(x, y, x + size0, y + size0).intersection(union).area / size0**2 >= 0.5
                     for x, y in grid.coords]).astype(int)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("heatmap_e2e")
    layouts = {
        "train_a": [_circle(330, 330, 110), _circle(700, 760, 100)],
        "train_b": [_circle(720, 300, 110), _circle(300, 720, 100)],
        "test": [_circle(320, 640, 110), _circle(720, 360, 100)],
    }
    slides = {name: write_synthetic_slide(d / f"{name}.tif", size=(1024, 1024), mpp=0.5, lesions=polys, seed=i,
                                          tissue_fraction=0.6)
              for i, (name, polys) in enumerate(layouts.items())}
    transformer = HandcraftedFeatures()
    # Liu et al.'s grey-level tissue mask: Otsu on optical density would split the dark planted lesions from
    # the pale synthetic tissue when lesions cover a large part of a small slide.
    stores = {name: extract_slide_features(s.path, transformer, mpp=MPP, size=SIZE, out=d / "features",
                                           annotations=s.lesions, progress=False, tissue=TISSUE)
              for name, s in slides.items()}
    result = train_from_feature_stores([stores["train_a"], stores["train_b"]], classifier="logreg")
    return slides, stores, result


def test_end_to_end_heatmap_auc_on_planted_lesions(trained):
    slides, stores, result = trained
    test = slides["test"]
    assert result.model.tissue == TISSUE
    hm = result.model.heatmap(test.path, progress=False)
    y = _overlap_labels(hm.grid, test.lesions, L0)
    assert 10 < y.sum() < len(y) - 10
    assert hm.kind == "probability" and np.all((hm.scores >= 0) & (hm.scores <= 1))
    assert roc_auc_score(y, hm.scores) > 0.95
    # the same scores from the stored features (no re-extraction)
    from_store = heatmap_from_features(stores["test"], result.model.classifier_)
    np.testing.assert_array_equal(from_store.coords, hm.coords)
    np.testing.assert_allclose(from_store.scores, hm.scores, atol=1e-6)


def _toy_grid(coords, dims=(256, 256)):
    return PatchGrid(np.asarray(coords), mpp=MPP, size=SIZE, stride=SIZE, slide_dimensions=dims,
                     slide_mpp=(0.5, 0.5))


def test_to_array_places_scores_on_the_stride_lattice(tmp_path):
    grid = _toy_grid([[0, 0], [64, 0], [128, 64]], dims=(200, 130))
    hm = Heatmap([0.1, 0.2, 0.3], grid)
    arr = hm.to_array()
    assert arr.shape == (3, 4)  # ceil(130 / 64), ceil(200 / 64)
    assert arr[0, 0] == 0.1 and arr[0, 1] == 0.2 and arr[1, 2] == 0.3
    assert np.isnan(arr).sum() == 12 - 3
    saved = np.load(hm.to_npy(tmp_path / "h.npy"))
    np.testing.assert_array_equal(saved, arr)


def test_geojson_round_trips_through_the_annotation_reader(tmp_path):
    coords = [[c * L0, r * L0] for r in range(5) for c in range(5)]
    grid = _toy_grid(coords, dims=(5 * L0, 5 * L0))
    hot = np.zeros((5, 5))
    hot[0:3, 0:3] = 0.9  # a 3 x 3 ring ...
    hot[1, 1] = 0.2  # ... with a hole
    hot[4, 4] = 0.8  # and a separate single cell
    hm = Heatmap(hot.ravel(), grid)
    path = hm.to_geojson(tmp_path / "h.geojson", threshold=0.5)
    anns = read_annotations(path)
    assert len(anns) == 2
    polys = sorted((shapely.Polygon(a.polygon, a.holes) for a in anns), key=lambda p: p.area)
    assert polys[0].area == L0**2 and polys[1].area == 8 * L0**2
    assert len(polys[1].interiors) == 1
    mask = rasterize_annotations(anns, grid.slide_dimensions, downsample=L0)
    np.testing.assert_array_equal(mask, hot >= 0.5)


class QuadrantScore(ClassifierMixin, BaseEstimator):
    """P(positive) = mean of the top-left quadrant / 255: not rotation invariant."""

    def fit(self, X, y=None):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        X = np.asarray(X, float)
        h, w = X.shape[1] // 2, X.shape[2] // 2
        q = X[:, :h, :w].mean(axis=(1, 2, 3)) / 255.0
        return np.column_stack([1 - q, q])


def test_tta_averages_the_eight_rotations_and_flips(trained):
    slides, _, _ = trained
    path = slides["test"].path
    model = QuadrantScore().fit(None)
    plain = SlideHeatmap(model, mpp=MPP, size=SIZE, tissue=TISSUE, progress=False).predict(path)
    tta = SlideHeatmap(model, mpp=MPP, size=SIZE, tissue=TISSUE, tta=True, progress=False).predict(path)
    with SlideReader.open(path) as reader:
        patches = read_patches(reader, tta.grid).astype(float)
    # the 8 dihedral transforms bring each quadrant to the top-left exactly twice: the average is the
    # mean of the four quadrant means, i.e. the whole-patch mean for even sizes
    np.testing.assert_allclose(tta.scores, patches.mean(axis=(1, 2, 3)) / 255.0, atol=1e-9)
    np.testing.assert_allclose(plain.scores, patches[:, :16, :16].mean(axis=(1, 2, 3)) / 255.0, atol=1e-9)
    assert tta.tta and not plain.tta


def test_detections_are_patch_centres_in_level0(tmp_path):
    coords = [[c * L0, r * L0] for r in range(4) for c in range(4)]
    scores = np.full(16, 0.1)
    scores[1 * 4 + 2] = 0.9  # row 1, column 2
    hm = Heatmap(scores, _toy_grid(coords))
    det = hm.detections(threshold=0.5)
    np.testing.assert_allclose(det, [[2 * L0 + L0 / 2, 1 * L0 + L0 / 2, 0.9]])


def test_png_overlay_draws_over_the_thumbnail(trained, tmp_path):
    _, stores, result = trained
    hm = heatmap_from_features(stores["test"], result.model.classifier_)
    with_thumb = np.asarray(Image.open(hm.to_png(tmp_path / "a.png")).convert("RGB"))
    without = np.asarray(Image.open(hm.to_png(tmp_path / "b.png", overlay=False)).convert("RGB"))
    assert with_thumb.shape == without.shape and with_thumb.shape[0] > 200
    assert not np.array_equal(with_thumb, without)
    assert not list(tmp_path.glob("*.partial*"))


def test_heatmap_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.tif"):
        SlideHeatmap(QuadrantScore().fit(None), progress=False).predict(tmp_path / "nothere.tif")
    with pytest.raises(ValueError, match="one value per grid patch"):
        Heatmap([0.1, 0.2], _toy_grid([[0, 0]]))
