"""read_patches (single and multiscale) and the streaming loader iter_patch_batches."""

import numpy as np
import pytest

from medfeat.slides import PatchGrid, SlideReader, iter_patch_batches, read_patches


def _dot_slide():
    # White slide with black 4 x 4 dots centred on the centres of the 32-px patches of a 0.5 um/px grid
    # (64 level-0 px at 0.25 um/px): dot k covers level-0 [64 i + 30, 64 i + 34).
    img = np.full((256, 320, 3), 255, np.uint8)
    for y in range(0, 256, 64):
        for x in range(0, 320, 64):
            img[y + 30 : y + 34, x + 30 : x + 34] = 0
    return SlideReader.open(img, slide_mpp=0.25)


def _dark_centroid(img):
    w = 255.0 - img.astype(np.float64).mean(axis=2)
    ys, xs = np.indices(w.shape)
    return (w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()


def test_multiscale_patches_share_centre():
    reader = _dot_slide()
    grid = PatchGrid.from_reader(reader, mpp=0.5, size=32, tissue=None)
    assert grid.coords[6].tolist() == [64, 64]
    out = read_patches(reader, grid, scales=(1, 2), indices=[6])
    assert out.shape == (1, 2, 32, 32, 3)
    for s in range(2):
        cx, cy = _dark_centroid(out[0, s])
        # the dot centre (level-0 64 + 32) is the patch centre: pixel coordinate 15.5 at every scale
        assert cx == pytest.approx(15.5, abs=0.05) and cy == pytest.approx(15.5, abs=0.05)
    # scale 1 (2 level-0 px per pixel): the 4 x 4 dot is exactly the 2 x 2 centre pixels, black
    one = out[0, 0].mean(axis=2)
    assert np.all(one[15:17, 15:17] == 0) and (one < 255).sum() == 4
    # scale 2 (4 level-0 px per pixel, field of view 128 level-0 px from x = y = 32): the dot straddles
    # the corner of the 4 centre pixels, a quarter of each (the filter is symmetric): 255 * 3/4 = 191;
    # the neighbouring dots, 64 level-0 px away, straddle columns 0 and 31 and rows 0 and 31 likewise.
    wide = out[0, 1].mean(axis=2)
    assert np.abs(wide[15:17, 15:17] - 191.25).max() <= 2
    assert np.all(wide[14, 14:18] == 255) and np.all(wide[17, 14:18] == 255) and np.all(wide[14:18, 14] == 255)
    assert np.abs(wide[15:17, 0] - 191.25).max() <= 2 and np.abs(wide[15:17, 31] - 191.25).max() <= 2
    assert np.abs(wide[0, 15:17] - 191.25).max() <= 2 and np.abs(wide[31, 15:17] - 191.25).max() <= 2


def test_single_scale_equals_read_region_and_border_white():
    reader = _dot_slide()
    grid = PatchGrid.from_reader(reader, mpp=0.5, size=32, tissue=None)
    patches = read_patches(reader, grid)
    assert patches.shape == (len(grid), 32, 32, 3)
    for i in (0, 7, len(grid) - 1):
        x, y = grid.coords[i]
        assert np.array_equal(patches[i], reader.read_region((x, y), (32, 32), mpp=0.5))
    # scale 4 of the top-left patch: field of view 256 level-0 px centred at (32, 32), 8 level-0 px per
    # pixel from x = y = -96: pixels 0..11 lie outside the slide and are white; the first dot (level-0
    # [30, 34)) covers 2/8 of pixels 15 and 16 on each axis: 255 * (1 - 1/16) = 239.
    ctx = read_patches(reader, grid, scales=(1, 4), indices=[0])[0, 1].astype(float)
    assert np.all(ctx[:12] == 255) and np.all(ctx[:, :12] == 255)
    assert np.abs(ctx[15:17, 15:17] - 239.06).max() <= 2
    assert np.all(ctx[12:15] == 255) and np.all(ctx[17:23, 12:23] == 255)


def test_grid_reader_mismatch_and_bad_scales():
    reader = _dot_slide()
    grid = PatchGrid.from_reader(reader, mpp=0.5, size=32, tissue=None)
    other = SlideReader.open(np.zeros((10, 10, 3), np.uint8), slide_mpp=0.25)
    with pytest.raises(ValueError, match="grid was made for a slide"):
        read_patches(other, grid)
    with pytest.raises(ValueError, match="scales"):
        read_patches(reader, grid, scales=(1, 0))
    with pytest.raises(IndexError):
        read_patches(reader, grid, indices=[len(grid)])


@pytest.mark.parametrize("workers", [0, 1, 2, "auto"])
def test_iter_patch_batches_threads_in_order(synthetic_slide, workers):
    reader = SlideReader.open(synthetic_slide.path)
    grid = PatchGrid.from_reader(reader, mpp=1.0, size=64, tissue="otsu")
    sub = grid.subset(np.arange(min(len(grid), 45)))
    expected = read_patches(reader, sub, scales=(1, 2))
    batches = list(iter_patch_batches(synthetic_slide.path, sub, batch_size=8, scales=(1, 2), num_workers=workers))
    assert [len(b) for b in batches] == [8] * 5 + [5]
    assert np.concatenate([b.indices for b in batches]).tolist() == list(range(45))
    assert np.array_equal(np.concatenate([b.coords for b in batches]), sub.coords)
    assert np.array_equal(np.concatenate([b.images for b in batches]), expected)


def test_thread_workers_get_own_handles(synthetic_slide, monkeypatch):
    reader = SlideReader.open(synthetic_slide.path)
    grid = PatchGrid.from_reader(reader, mpp=2.0, size=32, tissue=None)
    opened = []
    original = SlideReader.reopen

    def spy(self):
        new = original(self)
        opened.append(new)
        return new

    monkeypatch.setattr(SlideReader, "reopen", spy)
    batches = iter_patch_batches(reader, grid, batch_size=4, num_workers=2, prefetch=2)
    first = next(batches)
    assert first.indices.tolist() == [0, 1, 2, 3]
    batches.close()  # stopping early shuts the workers down and closes their handles
    assert 1 <= len(opened) <= 2 and all(r._backend is None for r in opened)
    assert all(r._backend is not reader._backend for r in opened) and reader._backend is not None


def test_iter_patch_batches_processes(synthetic_slide):
    reader = SlideReader.open(synthetic_slide.path)
    grid = PatchGrid.from_reader(reader, mpp=2.0, size=32, tissue=None).subset(np.arange(20))
    batches = list(iter_patch_batches(reader, grid, batch_size=6, num_workers=2, backend="process"))
    assert [b.indices.tolist() for b in batches][-1] == [18, 19]
    assert np.array_equal(np.concatenate([b.images for b in batches]), read_patches(reader, grid))
    with pytest.raises(ValueError, match="backend"):
        next(iter_patch_batches(reader, grid, backend="gpu"))


def test_auto_num_workers_follows_the_cpu_count(monkeypatch):
    from medfeat.slides import auto_num_workers

    assert [auto_num_workers(c) for c in (1, 2, 4, 5, 8, 12, 32, 64)] == [1, 1, 1, 1, 2, 3, 8, 8]
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(12)), raising=False)
    assert auto_num_workers() == 3


@pytest.mark.parametrize("bad", ["many", -1, 1.5])
def test_iter_patch_batches_rejects_bad_num_workers(bad):
    reader = SlideReader.open(np.full((64, 64, 3), 128, np.uint8), mpp=0.5)
    grid = PatchGrid.from_reader(reader, mpp=0.5, size=32, tissue=None)
    with pytest.raises(ValueError, match="num_workers"):
        list(iter_patch_batches(reader, grid, num_workers=bad))
