"""Synthetic pyramidal slides: OpenSlide reads levels and mpp; lesion ground truth matches the pixels."""

import hashlib

import numpy as np
import pytest
from scipy import ndimage as ndi

from medfeat.slides import (
    PatchGrid,
    SlideReader,
    patch_labels,
    rasterize_annotations,
    read_patches,
    tissue_mask,
    write_synthetic_slide,
)


def test_openslide_reads_levels_and_mpp(synthetic_slide):
    import openslide

    s = synthetic_slide
    assert s.size == (4096, 3072) and s.mpp == 0.25 and len(s.lesions) == 3
    with openslide.OpenSlide(str(s.path)) as osr:
        assert osr.properties["openslide.vendor"] == "generic-tiff"
        assert float(osr.properties["openslide.mpp-x"]) == pytest.approx(0.25)
        assert float(osr.properties["openslide.mpp-y"]) == pytest.approx(0.25)
        # halved until the level fits one 256-px tile: 4096 -> 2048 -> 1024 -> 512 -> 256
        assert osr.level_dimensions == ((4096, 3072), (2048, 1536), (1024, 768), (512, 384), (256, 192))
        assert osr.level_downsamples == pytest.approx((1, 2, 4, 8, 16))


def test_lesions_and_tissue_match_the_pixels(synthetic_slide):
    s = synthetic_slide
    reader = SlideReader.open(s.path)
    d = 16  # 4 um/px
    lesion = rasterize_annotations([p for p in s.lesions], s.size, downsample=d)
    tissue_gt = rasterize_annotations(s.tissue, s.size, downsample=d)
    assert lesion.any() and (lesion <= tissue_gt).all()  # random lesions lie inside tissue
    rgb = reader.thumbnail(max_size=max(s.size) // d).astype(float)
    assert rgb.shape[:2] == lesion.shape
    grey = rgb.mean(axis=2)
    core_lesion = ndi.binary_erosion(lesion, iterations=2)
    core_normal = ndi.binary_erosion(tissue_gt & ~ndi.binary_dilation(lesion, iterations=3), iterations=2)
    background = ~ndi.binary_dilation(tissue_gt, iterations=2)
    assert grey[core_lesion].mean() < grey[core_normal].mean() - 40  # lesions are darker
    assert (rgb[core_lesion, 2] > rgb[core_lesion, 1]).mean() > 0.95  # and purple (blue > green)
    assert np.percentile(grey[background], 1) > 235  # white glass (JPEG ringing aside)
    found = tissue_mask(reader, mpp=4.0).mask
    iou = (found & tissue_gt).sum() / (found | tissue_gt).sum()
    assert iou > 0.95


def test_patch_labels_from_ground_truth(synthetic_slide):
    s = synthetic_slide
    reader = SlideReader.open(s.path)
    grid = PatchGrid.from_reader(reader, mpp=1.0, size=32, tissue="otsu")  # 128 level-0 px
    mask = rasterize_annotations(s.lesions, s.size, downsample=8)
    labels = patch_labels(grid, mask, 8)
    assert 0 < labels.sum() < len(labels)
    patches = read_patches(reader, grid).reshape(len(grid), -1).mean(axis=1)
    assert patches[labels == 1].mean() < patches[labels == 0].mean() - 30


def test_levels_are_block_means_of_level0(tmp_path):
    # Lossless tiles: away from polygon edges, level 1 is the 2x2 mean of level 0.
    s = write_synthetic_slide(tmp_path / "lossless.tif", size=(1024, 1024), lesions=0, seed=5,
                              compression="deflate", tile_size=128, tissue_fraction=0.5)
    reader = SlideReader.open(s.path)
    cx, cy = (int(v) // 2 * 2 for v in s.tissue[0].mean(axis=0))
    l0 = reader.read_region((cx - 32, cy - 32), (64, 64)).astype(float)
    l1 = reader.read_region((cx - 32, cy - 32), (32, 32), mpp=0.5).astype(float)
    means = l0.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
    assert np.abs(l1 - means).max() <= 1.0
    assert l0.std() > 5  # textured, not flat


def test_deterministic_by_seed_and_bad_args(tmp_path):
    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    a = write_synthetic_slide(tmp_path / "a.tif", size=(600, 500), seed=1, lesions=1)
    b = write_synthetic_slide(tmp_path / "b.tif", size=(600, 500), seed=1, lesions=1)
    c = write_synthetic_slide(tmp_path / "c.tif", size=(600, 500), seed=2, lesions=1)
    assert digest(a.path) == digest(b.path) != digest(c.path)
    assert all(np.array_equal(p, q) for p, q in zip(a.lesions, b.lesions))
    given = [np.array([[100.0, 100.0], [200.0, 100.0], [150.0, 180.0]])]
    explicit = write_synthetic_slide(tmp_path / "d.tif", size=(600, 500), lesions=given, levels=2)
    assert explicit.lesions[0].tolist() == given[0].tolist() and len(explicit.level_dimensions) == 2
    assert not list(tmp_path.glob("*.partial"))
    with pytest.raises(ValueError, match="compression"):
        write_synthetic_slide(tmp_path / "e.tif", size=(64, 64), compression="lzma")
    with pytest.raises(ValueError, match="tile_size"):
        write_synthetic_slide(tmp_path / "e.tif", size=(64, 64), tile_size=100)
    with pytest.raises(ValueError, match="lesions"):
        write_synthetic_slide(tmp_path / "e.tif", size=(64, 64), lesions=[np.zeros((2, 2))])
