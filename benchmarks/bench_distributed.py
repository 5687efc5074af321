"""Scale-out benchmark: slides/hour of ``extract_slide_features_many`` in-process, on 1 and on 2 Dask workers.

Synthetic JPEG pyramidal slides (seeded), deep features (EfficientNet-Lite0, offline weights, eager PyTorch
so every image goes through the same kernels and the stores can be compared byte for byte), one task per
slide. Configurations run in alternating order (in-process, 1 worker, 2 workers, then reversed, ...) so a
change in the machine's load hits them alike; the figure to read is the ratio of medians measured in one
run. Each Dask run uses a LocalCluster like ``--scheduler local:N`` (N processes x 1 thread, torch threads =
cores // N, 2 reader threads per task); the cluster start-up is timed apart from the slides, since a real
job starts its workers once for hundreds of slides.

Every Dask run's stores are compared with the in-process run's (datasets and attributes array-equal, and
file bytes) and the result is recorded.

Usage: ``python benchmarks/bench_distributed.py [--slides 4] [--repeats 2] [--quick]``.
Writes benchmarks/results/distributed.json and distributed.md.
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _same_store(a, b):
    import h5py
    import numpy as np

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        if sorted(fa) != sorted(fb) or sorted(fa.attrs) != sorted(fb.attrs):
            return False
        return all(np.array_equal(fa[k][()], fb[k][()]) for k in fa) and all(
            np.array_equal(fa.attrs[k], fb.attrs[k]) for k in fa.attrs)


def _features():
    from medfeat.features import DeepFeatures

    return DeepFeatures(runtime="eager", batch_size=32)


def _run(config, slides, out, settings):
    """One timed run; returns wall seconds of the slides (cluster start-up apart) and per-slide records."""
    import distributed

    from medfeat.pipelines import extract_slide_features_many

    startup = 0.0
    cluster = client = None
    if config != "in-process":
        n = int(config.split(":")[1])
        t0 = time.perf_counter()
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address="127.0.0.1:0", memory_limit="3GiB")
        client = distributed.Client(cluster)
        client.wait_for_workers(n, timeout=300)
        startup = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        res = extract_slide_features_many(slides, _features(), out, client=client, progress=False, retries=0,
                                          **settings)
        wall = time.perf_counter() - t0
    finally:
        if client is not None:
            client.close()
            cluster.close()
    bad = [r for r in res if r.status != "written"]
    if bad:
        raise RuntimeError(f"{config}: {bad}")
    return {"wall_s": wall, "startup_s": startup, "slides_per_hour": len(slides) * 3600.0 / wall,
            "task_s": [round(r.seconds, 2) for r in res], "workers": sorted({r.worker for r in res}),
            "loadavg": os.getloadavg()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slides", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2, help="rounds of the three configurations")
    ap.add_argument("--slide-size", type=int, nargs=2, default=(4096, 3072), help="level-0 width height (0.5 um/px)")
    ap.add_argument("--quick", action="store_true", help="2 slides of 2048 x 1536, one round (smoke test)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if args.quick:
        args.slides, args.repeats, args.slide_size = 2, 1, (2048, 1536)

    from medfeat._checks import write_atomic
    from medfeat.slides import write_synthetic_slide

    settings = dict(mpp=1.0, size=64, batch_size=32, reader_threads=2)
    work = Path(tempfile.mkdtemp(prefix="medfeat-bench-dist-"))
    try:
        slides = [write_synthetic_slide(work / f"slide{i}.tif", size=tuple(args.slide_size), mpp=0.5, lesions=2,
                                        seed=i).path for i in range(args.slides)]
        configs = ["in-process", "local:1", "local:2"]
        runs = {c: [] for c in configs}
        identical = {c: [] for c in configs if c != "in-process"}
        reference = None
        k = 0
        for rep in range(args.repeats):
            order = configs if rep % 2 == 0 else configs[::-1]
            for config in order:
                out = work / f"run{k}-{config.replace(':', '')}"
                k += 1
                r = _run(config, slides, out, settings)
                runs[config].append(r)
                print(f"{config:10s} {r['wall_s']:7.1f} s  {r['slides_per_hour']:7.1f} slides/h  "
                      f"(start-up {r['startup_s']:.1f} s, load {r['loadavg'][0]:.1f})", flush=True)
                if config == "in-process" and reference is None:
                    reference = out
                elif config != "in-process":
                    identical[config].append(out)
        # compare after all runs (the reference exists by then whatever the order)
        checks = {}
        for config, outs in identical.items():
            arrays, md5 = True, True
            for out in outs:
                for s in slides:
                    name = f"{Path(s).stem}.h5"
                    arrays &= _same_store(out / name, reference / name)
                    md5 &= _md5(out / name) == _md5(reference / name)
            checks[config] = {"arrays_and_attrs_equal": bool(arrays), "bytes_equal": bool(md5)}
        import h5py

        with h5py.File(reference / f"{Path(slides[0]).stem}.h5", "r") as f:
            patches_per_slide = int(f.attrs["n_patches"])
        med = {c: statistics.median(r["slides_per_hour"] for r in runs[c]) for c in configs}
        # pairwise ratios of runs of the same round, then their median
        pair = [b["slides_per_hour"] / a["slides_per_hour"] for a, b in zip(runs["local:1"], runs["local:2"])]
        results = {
            "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "note": "2-core machine shared with other engineers' jobs during the run (see loadavg per run); "
                    "figures are medians, the ratio is of runs in the same round, in alternating order",
            "slides": args.slides, "slide_level0_size": list(args.slide_size), "patches_per_slide": patches_per_slide,
            "settings": {**settings, "features": "DeepFeatures(runtime='eager') efficientnet_lite0, native 64 px"},
            "runs": runs,
            "median_slides_per_hour": med,
            "ratio_2_vs_1_workers": {"median_of_rounds": statistics.median(pair), "per_round": pair},
            "ratio_1_worker_vs_in_process": med["local:1"] / med["in-process"],
            "identical_to_in_process": checks,
            "startup_s_median": {c: statistics.median(r["startup_s"] for r in runs[c]) for c in configs[1:]},
        }
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(results, indent=2, default=float) + "\n"
        write_atomic(out_dir / "distributed.json", lambda fh: fh.write(text.encode()))
        lines = [
            "# Scale-out: slides/hour on this machine",
            "",
            f"{args.slides} synthetic slides ({args.slide_size[0]} x {args.slide_size[1]} px at 0.5 um/px, "
            f"{patches_per_slide} tissue patches of 64 px at 1 um/px per slide), deep features (EfficientNet-Lite0, "
            "eager PyTorch), one Dask task per slide. " + results["note"] + ".",
            "",
            "| configuration | median slides/hour | runs | cluster start-up (s) |",
            "|---|---|---|---|",
        ]
        for c in configs:
            su = f"{results['startup_s_median'][c]:.1f}" if c in results["startup_s_median"] else "-"
            lines.append(f"| {c} | {med[c]:.0f} | {len(runs[c])} | {su} |")
        lines += [
            "",
            f"2 workers vs 1 worker: **{results['ratio_2_vs_1_workers']['median_of_rounds']:.2f}x** (median of "
            f"per-round ratios {', '.join(f'{x:.2f}' for x in pair)}); 1 worker vs in-process: "
            f"{results['ratio_1_worker_vs_in_process']:.2f}x.",
            "",
            "Stores of every Dask run against the in-process run: " + "; ".join(
                f"{c}: arrays+attrs {'equal' if v['arrays_and_attrs_equal'] else 'DIFFERENT'}, bytes "
                f"{'equal' if v['bytes_equal'] else 'different'}" for c, v in checks.items()) + ".",
            "",
            "Load average (1 min) at the end of each run: "
            + ", ".join(f"{c} {r['loadavg'][0]:.1f}" for c in configs for r in runs[c]) + ".",
            "",
        ]
        md = "\n".join(lines)
        write_atomic(out_dir / "distributed.md", lambda fh: fh.write(md.encode()))
        print(md)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":  # LocalCluster starts worker processes that re-import this file
    sys.exit(main())
