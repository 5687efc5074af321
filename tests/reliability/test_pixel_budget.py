"""Issue 10 items 5 and 8: pixel budget, tiled reads of unpyramided slides, truncated pyramids.

A few bytes of TIFF header can claim any size: at commit 1e25e0f a 0.7 MB tiled TIFF claiming
20000 x 20000 px without a pyramid was decoded whole for the tissue mask (5.2 GB peak), and a truncated
pyramid was silently read as a one-level image.
"""

import os
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from medfeat.slides import SlideReader, tissue_mask, write_synthetic_slide
from medfeat.slides import reader as reader_module

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _write_claiming_tiff(path, width, height, *, tiled=True, tile=256, mpp=0.5):
    """A TIFF claiming width x height RGB pixels whose every tile/strip is the same tiny zlib blob."""
    block = (tile, tile) if tiled else (16, width)
    blob = zlib.compress(np.full(block + (3,), 240, np.uint8).tobytes())
    count = -(-height // block[0]) * (-(-width // block[1]) if tiled else 1)
    kwargs = {"tile": block} if tiled else {"rowsperstrip": 16}
    res = 1e4 / mpp
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write((blob for _ in range(count)), shape=(height, width, 3), dtype=np.uint8, photometric="rgb",
                 compression="zlib", resolution=(res, res), resolutionunit="CENTIMETER", metadata=None, **kwargs)
    return path


def test_unpyramided_bomb_is_refused_before_decoding(tmp_path):
    # A few hundred kB claiming 20000 x 20000 px without a pyramid. Run in a child limited to 1.5 GiB of
    # address space: decoding it whole (the old behaviour) cannot fit, the budget refusal must come first.
    bomb = _write_claiming_tiff(tmp_path / "bomb.tif", 20000, 20000)
    assert os.path.getsize(bomb) < 2_000_000
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
        from medfeat.slides import SlideReader, tissue_mask
        reader = SlideReader.open({str(bomb)!r})
        assert reader.level_count == 1, reader.level_dimensions
        try:
            tissue_mask(reader)
        except ValueError as exc:
            print("REFUSED", exc)
            sys.exit(0)
        print("NOT REFUSED")
        sys.exit(3)
    """)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MEDFEAT_MAX_PIXELS", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "pixel budget" in proc.stdout and "bomb.tif" in proc.stdout and "MEDFEAT_MAX_PIXELS" in proc.stdout


def test_plain_image_over_the_configured_budget_is_refused_from_its_header(tmp_path, monkeypatch):
    # An untiled TIFF (OpenSlide does not read it, so it would be decoded whole) of 2000 x 2000 px.
    path = _write_claiming_tiff(tmp_path / "plain.tif", 2000, 2000, tiled=False)
    monkeypatch.setenv("MEDFEAT_MAX_PIXELS", str(10**6))
    with pytest.raises(ValueError, match=r"plain\.tif.*4,000,000 pixels.*budget of 1,000,000"):
        SlideReader.open(path)
    with pytest.raises(ValueError, match="budget of 1,000,000"):
        SlideReader.open(path, max_pixels=10**6)
    monkeypatch.delenv("MEDFEAT_MAX_PIXELS")
    assert SlideReader.open(path).dimensions == (2000, 2000)  # the default budget admits it


def test_png_over_the_budget_is_refused(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(path)
    with pytest.raises(ValueError, match=r"big\.png.*120,000 pixels"):
        SlideReader.open(path, max_pixels=100_000)


def test_one_read_over_the_budget_is_refused():
    reader = SlideReader.open(np.zeros((100, 100, 3), np.uint8), slide_mpp=1.0, max_pixels=5000)
    with pytest.raises(ValueError, match="pixel budget"):
        reader.read_region((0, 0), (80, 80))
    with pytest.raises(ValueError, match="pixel budget"):
        reader.read_region((0, 0), (40, 40), mpp=2.0)  # 40 x 40 output, but 80 x 80 level pixels decoded
    assert reader.read_region((0, 0), (50, 50)).shape == (50, 50, 3)


@pytest.mark.parametrize("bad", [0, -5, 1.5, "many"])
def test_budget_must_be_a_positive_whole_number(bad):
    with pytest.raises(ValueError, match="max_pixels"):
        SlideReader.open(np.zeros((4, 4, 3), np.uint8), max_pixels=bad)


def test_unpyramided_slide_mask_is_read_in_tiles_with_the_same_pixels(tmp_path, monkeypatch):
    # A one-level tiled TIFF (OpenSlide generic-tiff) of 3000 x 2600 px: 7.8 Mpx in one level.
    rng = np.random.default_rng(0)
    image = np.full((2600, 3000, 3), 240, np.uint8)
    image[600:1900, 500:2200] = (170, 90, 160)
    image[::7, ::5] = rng.integers(0, 255, size=image[::7, ::5].shape, dtype=np.uint8)
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, image, tile=(256, 256), photometric="rgb", compression="zlib",
                     resolution=(2e4, 2e4), resolutionunit="CENTIMETER", metadata=None)
    reads = []
    original = reader_module._OpenSlideBackend.read

    def spy(self, level, x, y, w, h):
        reads.append(w * h)
        return original(self, level, x, y, w, h)

    monkeypatch.setattr(reader_module._OpenSlideBackend, "read", spy)
    with SlideReader.open(path) as reader:
        assert reader.level_count == 1 and reader.vendor == "generic-tiff"
        thumb = reader.thumbnail(mpp=8.0)
        mask = tissue_mask(reader, mpp=8.0, min_object_um2=0)
    assert max(reads) <= 2**22, f"a single read decoded {max(reads):,} pixels"
    # Independent reference: Pillow's box filter over the whole level at once (exact 16x shrink), the area
    # beyond the slide white.
    th, tw = thumb.shape[:2]
    padded = np.full((th * 16, tw * 16, 3), 255, np.uint8)
    padded[:2600, :3000] = image
    ref = np.asarray(Image.fromarray(padded).resize((tw, th), Image.Resampling.BOX))
    assert np.abs(thumb.astype(int) - ref.astype(int)).max() <= 1
    expected = np.zeros(mask.mask.shape, bool)
    expected[600 // 16 + 1: 1900 // 16 - 1, 500 // 16 + 1: 2200 // 16 - 1] = True
    assert mask.mask[expected].all() and mask.mask.sum() <= (1900 - 600) / 16 * (2200 - 500) / 16 + 200


@pytest.mark.parametrize("fraction", [0.3, 0.8, 0.9, 0.95])
def test_truncated_pyramid_is_refused_naming_the_slide(tmp_path, fraction):
    full = write_synthetic_slide(tmp_path / "full.tif", size=(2048, 2048), mpp=0.5, seed=0).path
    with SlideReader.open(full) as reader:
        assert reader.level_count >= 3
    data = open(full, "rb").read()
    cut = tmp_path / "cut_slide.tif"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ValueError, match=r"cut_slide\.tif.*truncated"):
        SlideReader.open(cut)


def test_multi_page_tiff_openslide_refuses_warns_that_only_page_0_is_used(tmp_path):
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as tw:  # untiled pages: not a pyramid OpenSlide reads
        tw.write(np.full((64, 64, 3), 200, np.uint8), photometric="rgb")
        tw.write(np.full((32, 32, 3), 200, np.uint8), photometric="rgb")
    with pytest.warns(UserWarning, match=r"stack\.tif.*only its first page"):
        reader = SlideReader.open(path, slide_mpp=1.0)
    assert reader.dimensions == (64, 64)
