"""SlideReader: level choice and resizing by mpp (pixel-exact on a planted pyramid), borders, bad input."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from medfeat.slides import MissingMPPError, PatchGrid, SlideReader, write_tiled_tiff

# Level k of the planted slide is filled with LEVEL_COLOURS[k]; a block of PLANT colour covers
# level-0 x in [256, 512), y in [128, 384) on every level (scaled by the level's downsample).
LEVEL_COLOURS = [(10, 20, 30), (60, 70, 80), (110, 120, 130)]
PLANT = (200, 40, 90)
PLANT_BOX = (256, 128, 512, 384)  # x0, y0, x1, y1 at level 0
PLANTED_SIZE = (1024, 768)  # (w, h)
PLANTED_MPP = 0.25


@pytest.fixture(scope="session")
def planted_slide(tmp_path_factory):
    w, h = PLANTED_SIZE
    levels = []
    for k, colour in enumerate(LEVEL_COLOURS):
        d = 2**k
        a = np.empty((h // d, w // d, 3), np.uint8)
        a[:] = colour
        x0, y0, x1, y1 = (v // d for v in PLANT_BOX)
        a[y0:y1, x0:x1] = PLANT
        levels.append(a)
    path = tmp_path_factory.mktemp("planted") / "planted.tif"
    write_tiled_tiff(path, levels, mpp=PLANTED_MPP, tile_size=128, compression="deflate")
    return path


def _all(img, colour):
    return bool(np.all(img == np.asarray(colour, np.uint8)))


def test_planted_pyramid_metadata(planted_slide):
    with SlideReader.open(planted_slide) as r:
        assert r.dimensions == PLANTED_SIZE
        assert r.level_count == 3
        assert r.level_downsamples == pytest.approx((1, 2, 4))
        assert r.mpp == pytest.approx((PLANTED_MPP, PLANTED_MPP))
        assert r.vendor == "generic-tiff"


@pytest.mark.parametrize(
    "mpp, level",
    [
        (None, 0),
        (0.25, 0),
        (0.49, 0),  # downsample 1.96: level 1 (2.0) would be coarser than asked
        (0.497, 1),  # downsample 1.988: level 1 within the 1 % tolerance
        (0.5, 1),
        (0.75, 1),  # downsample 3: level 1, resized
        (1.0, 2),
        (4.0, 2),  # coarser than the pyramid: coarsest level, resized
    ],
)
def test_level_choice_by_colour(planted_slide, mpp, level):
    # The background colour of each level tells which level was read; far from the planted block
    # even a resized read is exactly that colour.
    with SlideReader.open(planted_slide) as r:
        img = r.read_region((640, 512), (16, 12), mpp=mpp)
    assert img.shape == (12, 16, 3) and img.dtype == np.uint8
    assert _all(img, LEVEL_COLOURS[level])


def test_exact_level_read_places_block(planted_slide):
    # mpp 0.5 = level 1 unresized. Region from level-0 (240, 112) is level-1 (120, 56); the block
    # starts at level-1 (128, 64), i.e. output column 8 and row 8, and ends at level-1 (256, 192).
    with SlideReader.open(planted_slide) as r:
        img = r.read_region((240, 112), (160, 160), mpp=0.5)
    assert _all(img[:8, :], LEVEL_COLOURS[1]) and _all(img[:, :8], LEVEL_COLOURS[1])
    assert _all(img[8:136, 8:136], PLANT)
    assert _all(img[136:, :], LEVEL_COLOURS[1]) and _all(img[:, 136:], LEVEL_COLOURS[1])


def test_resized_read_block_edge(planted_slide):
    # mpp 0.75: downsample 3, read from level 1 (1.5 level-1 px per output px) with an area (box)
    # filter. Output column j covers level-1 [104 + 1.5 j, 105.5 + 1.5 j): columns <= 15 end at or
    # before the block's left edge (level-1 x = 128), columns >= 16 start at or after it: no mixing.
    with SlideReader.open(planted_slide) as r:
        img = r.read_region((208, 80), (32, 32), mpp=0.75)
        assert _all(img[:, :16], LEVEL_COLOURS[1]) and _all(img[:16, :], LEVEL_COLOURS[1])
        assert _all(img[16:, 16:], PLANT)
        # downsample 6 (from level 2, 1.5 px per output px) starting mid-pixel: column 0 covers level-2
        # [63.25, 64.75), half of it on the block (x >= 64): the mean of the two colours.
        mixed = r.read_region((253, 256), (4, 4), mpp=1.5)
    expected = (np.asarray(LEVEL_COLOURS[2]) + np.asarray(PLANT)) / 2
    assert np.abs(mixed[0, 0].astype(int) - expected).max() <= 1
    assert _all(mixed[:, 1:], PLANT)


def test_partly_outside_is_white(planted_slide):
    with SlideReader.open(planted_slide) as r:
        img = r.read_region((1000, 700), (64, 64))
        assert _all(img[: 768 - 700, : 1024 - 1000], LEVEL_COLOURS[0])
        assert _all(img[768 - 700 :, :], (255, 255, 255)) and _all(img[:, 1024 - 1000 :], (255, 255, 255))
        left = r.read_region((-32, -16), (64, 64), mpp=0.5)  # 2 level-0 px per output px
        assert _all(left[:8, :], (255, 255, 255)) and _all(left[:, :16], (255, 255, 255))
        assert _all(left[8:, 16:], LEVEL_COLOURS[1])


def test_entirely_outside_raises(planted_slide):
    with SlideReader.open(planted_slide) as r:
        with pytest.raises(ValueError, match="entirely outside.*planted.tif"):
            r.read_region((2000, 0), (10, 10))
        with pytest.raises(ValueError, match="entirely outside"):
            r.read_region((-100, -100), (50, 50), mpp=0.5)  # covers level-0 [-100, 0)


def test_thumbnail_and_mpp_override(planted_slide):
    with SlideReader.open(planted_slide, slide_mpp=0.3) as r:
        assert r.mpp == (0.3, 0.3)
        th = r.thumbnail(max_size=256)  # downsample 4 = level 2 exactly
        assert th.shape == (192, 256, 3)
        assert _all(th[:32, :64], LEVEL_COLOURS[2]) and _all(th[32:96, 64:128], PLANT)
        assert r.thumbnail(mpp=2.4).shape == (96, 128, 3)  # downsample 8


def test_tissue_like_patch_from_array_reader():
    grey = np.tile(np.arange(0, 200, 2, dtype=np.uint8), (50, 1))  # 50 x 100 grey ramp
    r = SlideReader.open(grey, slide_mpp=1.0)
    assert r.dimensions == (100, 50) and r.path is None and r.vendor == "array"
    out = r.read_region((10, 0), (4, 2))
    assert np.array_equal(out[..., 0], grey[:2, 10:14]) and np.array_equal(out[..., 1], out[..., 2])
    out[:] = 7  # reads are copies: writing into one leaves the slide as it was
    assert np.array_equal(r.read_region((10, 0), (4, 2))[..., 0], grey[:2, 10:14])
    # downsample 2 of a linear ramp: mean of pairs
    half = r.read_region((0, 0), (50, 25), mpp=2.0)
    assert np.abs(half[10, 5:45, 0].astype(int) - (np.arange(5, 45) * 4 + 1)).max() <= 1


def test_plain_image_mpp_from_tags_and_missing(tmp_path):
    img = np.full((40, 60, 3), 180, np.uint8)
    tagged = tmp_path / "tagged.tif"
    tifffile.imwrite(tagged, img, photometric="rgb", resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")
    assert SlideReader.open(tagged).mpp == pytest.approx((0.5, 0.5))
    screen = tmp_path / "screen.tif"  # 72 dpi: a default, not a scan resolution
    tifffile.imwrite(screen, img, photometric="rgb", resolution=(72, 72), resolutionunit="INCH")
    png = tmp_path / "tile.png"
    Image.fromarray(img).save(png)
    for path in (screen, png):
        r = SlideReader.open(path)
        assert r.vendor == "image" and r.dimensions == (60, 40) and not r.has_mpp
        assert np.array_equal(r.read_region((0, 0), (60, 40)), img)  # level-0 reads need no mpp
        with pytest.raises(MissingMPPError, match=rf"{path.name}.*mpp="):
            _ = r.mpp
        with pytest.raises(MissingMPPError, match=path.name):
            PatchGrid.from_reader(r, mpp=0.5, size=16, tissue=None)
        assert SlideReader.open(path, slide_mpp=0.5).mpp == (0.5, 0.5)


def test_bad_inputs(tmp_path, synthetic_slide):
    with pytest.raises(FileNotFoundError, match="missing.svs"):
        SlideReader.open(tmp_path / "missing.svs")
    fake = tmp_path / "fake.svs"
    fake.write_text("this is not a slide\n")
    with pytest.raises(ValueError, match="fake.svs"):
        SlideReader.open(fake)
    data = synthetic_slide.path.read_bytes()
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="truncated.tif"), SlideReader.open(truncated) as r:
        r.read_region((0, 0), r.dimensions)
    with pytest.raises(ValueError, match="mpp"):
        SlideReader.open(np.zeros((4, 4, 3), np.uint8), slide_mpp=-1)
    with pytest.raises(ValueError, match="size"):
        SlideReader.open(np.zeros((4, 4, 3), np.uint8)).read_region((0, 0), (0, 3))
    with pytest.raises(ValueError, match="channels"):
        SlideReader.open(np.zeros((4, 4, 2), np.uint8))


def test_pickle_and_reopen_give_independent_handles(planted_slide):
    import pickle

    with SlideReader.open(planted_slide, slide_mpp=0.3) as r:
        region = r.read_region((200, 100), (64, 48), mpp=0.6)
        for other in (pickle.loads(pickle.dumps(r)), r.reopen()):
            assert other._backend is not r._backend and other.mpp == (0.3, 0.3)
            assert np.array_equal(other.read_region((200, 100), (64, 48), mpp=0.6), region)
            other.close()
    with pytest.raises(ValueError, match="closed"):
        r.read_region((0, 0), (4, 4))


def test_reopen_shares_the_tile_cache_and_survives_old_openslide_and_close(planted_slide, monkeypatch):
    import openslide

    with SlideReader.open(planted_slide) as r:
        region = r.read_region((200, 100), (64, 48), mpp=0.6)
        clones = [r.reopen(), r.reopen()]
        if hasattr(openslide, "OpenSlideCache"):  # openslide-python >= 1.3 with OpenSlide >= 4.0
            assert r._backend._cache is not None
            assert all(c._backend._cache is r._backend._cache for c in clones)
        for c in clones:
            assert np.array_equal(c.read_region((200, 100), (64, 48), mpp=0.6), region)
            c.close()

    # an OpenSlide C library older than 4.0 cannot share caches: each handle keeps its own
    def too_old(capacity):
        raise openslide.OpenSlideVersionError("4.0.0")

    monkeypatch.setattr(openslide, "OpenSlideCache", too_old, raising=False)
    with SlideReader.open(planted_slide) as r, r.reopen() as clone:
        assert np.array_equal(clone.read_region((200, 100), (64, 48), mpp=0.6), region)
    # a closed reader still re-opens its slide
    with r.reopen() as again:
        assert np.array_equal(again.read_region((200, 100), (64, 48), mpp=0.6), region)
