"""Throughput of the handcrafted feature families against plain per-patch loops.

For each family (LBP, GIST, colour, GLCM) and patch size (128 and 224 px) this measures, in one
run, patches per second of

- ``medfeat``: the transformer with ``n_jobs=1`` and with ``n_jobs=2`` (2 cores);
- ``baseline``: what one writes without medfeat, one patch at a time in a Python loop:
  skimage's ``local_binary_pattern`` + ``np.histogram`` for LBP; the straightforward per-image
  NumPy port of LabelMe's LMgist (``tests/features/lmgist_port.py``, Gabor bank built once as
  LMgist does) for GIST; ``rgb2hsv``/``rgb2hed`` + moments + ``np.histogram`` for colour;
  ``graycomatrix``/``graycoprops`` for GLCM.

Each figure is the median of several repeats; within a repeat the baseline and medfeat run in turn. Patches are crops of skimage's bundled
immunohistochemistry image. GIST resizes every patch to its default ``image_size`` 128.

Usage::

    python benchmarks/bench_handcrafted.py            # full run, writes benchmarks/results/handcrafted.{json,md}
    python benchmarks/bench_handcrafted.py --quick    # a few seconds, same outputs
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "features"))

import lmgist_port  # noqa: E402  (the straightforward LMgist port, kept beside the tests)

from medfeat.features import GIST, ColorFeatures, GLCMFeatures, LBPHistogram  # noqa: E402
from medfeat._checks import write_text_atomic  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def make_patches(n, size, seed=0):
    from skimage import data
    from skimage.transform import resize

    src = data.immunohistochemistry()  # 512 x 512 RGB
    if size > 256:
        src = (resize(src, (1024, 1024), order=1, anti_aliasing=False) * 255).round().astype(np.uint8)
    rng = np.random.default_rng(seed)
    h, w = src.shape[:2]
    ys = rng.integers(0, h - size + 1, n)
    xs = rng.integers(0, w - size + 1, n)
    return np.stack([src[y : y + size, x : x + size] for y, x in zip(ys, xs)])


# -- plain per-patch baselines ------------------------------------------------------------------
def baseline_lbp(X, pairs=((8, 1), (16, 2), (24, 3))):
    from skimage.feature import local_binary_pattern

    out = []
    for im in X:
        grey = np.round(im.astype(np.float64).mean(axis=2)).astype(np.uint8)
        feats = []
        for P, R in pairs:
            codes = local_binary_pattern(grey, P, R, "uniform")
            hist, _ = np.histogram(codes, bins=P + 2, range=(0, P + 2))
            feats.append(hist / codes.size)
        out.append(np.concatenate(feats))
    return np.array(out)


_BANK = {}


def baseline_gist(X):
    bank = _BANK.setdefault("g", lmgist_port.create_gabor((8, 8, 8, 8), 192))
    return np.array([lmgist_port.lmgist(im, bank=bank) for im in X])


def baseline_color(X, bins=16):
    from scipy.stats import skew
    from skimage.color import rgb2hed, rgb2hsv

    from skimage.color import hed_from_rgb

    # HED histogram range as documented in medfeat.features.color
    hed_hi = np.log(1 / 255) / np.log(1e-6) * np.clip(hed_from_rgb, 0, None).sum(axis=0)
    out = []
    for im in X:
        rgb = im / 255.0
        feats = []
        for values, hi in ((rgb, (1, 1, 1)), (rgb2hsv(rgb), (1, 1, 1)), (rgb2hed(rgb), hed_hi)):
            for ch in range(3):
                v = values[..., ch].ravel()
                hist, _ = np.histogram(np.clip(v, 0, hi[ch]), bins=bins, range=(0, hi[ch]))
                feats += [v.mean(), v.std(), skew(v), *(hist / v.size)]
        out.append(feats)
    return np.array(out)


def baseline_glcm(X):
    from skimage.feature import graycomatrix, graycoprops

    props = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
    out = []
    for im in X:
        grey = np.round(im.astype(np.float64).mean(axis=2)).astype(np.uint8)
        q = (grey.astype(np.int64) * 64 // 256).astype(np.uint8)
        P = graycomatrix(q, (1, 2, 4), (0, np.pi / 4, np.pi / 2, 3 * np.pi / 4), levels=64, symmetric=True, normed=True)
        out.append(np.concatenate([graycoprops(P, p).ravel() for p in props]))
    return np.array(out)


FAMILIES = {
    "lbp": (LBPHistogram, baseline_lbp, "skimage local_binary_pattern + np.histogram, per patch"),
    "gist": (GIST, baseline_gist, "straightforward per-image NumPy port of LMgist (float64, numpy.fft)"),
    "color": (ColorFeatures, baseline_color, "skimage rgb2hsv/rgb2hed + numpy/scipy moments + np.histogram, per patch"),
    "glcm": (GLCMFeatures, baseline_glcm, "skimage graycomatrix + graycoprops, per patch"),
}


def timed(funcs, X, repeats):
    """Median patches/s (wall clock) and median CPU ms per patch (all threads) of each function.

    The functions are run in turn within each repeat (baseline, n_jobs=1, n_jobs=2, baseline,
    ...), so that the load from other jobs on the shared machine hits them alike.
    """
    for func in funcs:
        func(X[:2])  # warm-up: caches, imports, thread pools
    wall = [[] for _ in funcs]
    cpu = [[] for _ in funcs]
    for _ in range(repeats):
        for k, func in enumerate(funcs):
            t0, c0 = time.perf_counter(), time.process_time()
            func(X)
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return [
        (len(X) / statistics.median(w), 1000 * statistics.median(c) / len(X)) for w, c in zip(wall, cpu)
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few patches and repeats (smoke run)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 7)
    n_images = {128: 16, 224: 8} if args.quick else {128: 96, 224: 48}

    load_start = os.getloadavg()[0]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    rows = []
    for size in args.sizes:
        X = make_patches(n_images.get(size, 32), size)
        for fam in args.families:
            cls, baseline, baseline_desc = FAMILIES[fam]
            row = {"family": fam, "patch_size": size, "n_patches": len(X), "repeats": repeats, "baseline": baseline_desc}
            ests = [cls(n_jobs=n_jobs).fit(X[:1]) for n_jobs in (1, 2)]
            (ref, ref_cpu), *ours = timed([baseline] + [e.transform for e in ests], X, repeats)
            row["baseline_patches_per_s"] = ref
            row["baseline_cpu_ms_per_patch"] = ref_cpu
            for n_jobs, (rate, cpu) in zip((1, 2), ours):
                row[f"medfeat_n_jobs{n_jobs}_patches_per_s"] = rate
                row[f"medfeat_n_jobs{n_jobs}_cpu_ms_per_patch"] = cpu
                row[f"speedup_n_jobs{n_jobs}"] = rate / ref
            row["cpu_time_ratio_n_jobs1"] = ref_cpu / row["medfeat_n_jobs1_cpu_ms_per_patch"]
            # same numbers as the baseline (the GIST port is float64, medfeat float32)
            diff = float(np.abs(cls().fit(X[:1]).transform(X[:4]) - baseline(X[:4])).max())
            row["max_abs_diff_vs_baseline"] = diff
            rows.append(row)
            print(
                f"{fam:6s} {size:4d}px  baseline {ref:8.1f}/s   medfeat n_jobs=1 {row['medfeat_n_jobs1_patches_per_s']:8.1f}/s"
                f" ({row['speedup_n_jobs1']:.2f}x)   n_jobs=2 {row['medfeat_n_jobs2_patches_per_s']:8.1f}/s"
                f" ({row['speedup_n_jobs2']:.2f}x)   CPU ms/patch {ref_cpu:.1f} vs {row['medfeat_n_jobs1_cpu_ms_per_patch']:.1f}"
                f"   max|diff| {diff:.1e}",
                flush=True,
            )

    meta = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "note": "2-core machine, possibly shared with other jobs (see the load averages); medians of repeats",
        "load_average_1min_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        # CPU seconds this process got per wall second over the whole run (2.0 = both cores)
        "cpu_share": round((time.process_time() - cpu0) / (time.perf_counter() - wall0), 2),
    }
    try:
        import scipy
        import skimage

        meta["scipy"], meta["skimage"] = scipy.__version__, skimage.__version__
    except ImportError:  # pragma: no cover
        pass
    write_results(args.out, meta, rows)


def write_results(out_dir, meta, rows):
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "handcrafted.json", json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    lines = [
        "# Handcrafted features throughput (patches/s)",
        "",
        f"{meta['date_utc']}, {meta['cpu_count']} cores, numpy {meta['numpy']}"
        + (" (quick run)" if meta["quick"] else "")
        + f". {meta['note']} (1-min load average {meta['load_average_1min_start_end'][0]} at the start,"
        f" {meta['load_average_1min_start_end'][1]} at the end; this process got {meta['cpu_share']} CPU-seconds"
        " per second on average, 2.0 being both cores).",
        "",
        "Patches/s are wall-clock medians; CPU ms/patch is the median process CPU time per patch (all threads),",
        "less sensitive to the other jobs on the machine. max abs diff: medfeat vs the baseline's features.",
        "",
        "| family | patch px | baseline (plain loop) | medfeat n_jobs=1 | medfeat n_jobs=2 | speed-up n_jobs=1 | speed-up n_jobs=2"
        " | CPU ms/patch baseline | CPU ms/patch medfeat | max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['patch_size']} | {r['baseline_patches_per_s']:.1f} | {r['medfeat_n_jobs1_patches_per_s']:.1f}"
            f" | {r['medfeat_n_jobs2_patches_per_s']:.1f} | {r['speedup_n_jobs1']:.2f}x | {r['speedup_n_jobs2']:.2f}x"
            f" | {r['baseline_cpu_ms_per_patch']:.2f} | {r['medfeat_n_jobs1_cpu_ms_per_patch']:.2f}"
            f" | {r['max_abs_diff_vs_baseline']:.1e} |"
        )
    lines += ["", "Baselines:"] + sorted({f"- {r['family']}: {r['baseline']}" for r in rows}) + [""]
    write_text_atomic(out_dir / "handcrafted.md", "\n".join(lines))


if __name__ == "__main__":
    main()
