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


def _report(args, slides, configs, runs, outs, settings, out_dir, *, complete):
    """Write distributed.json / .md from the runs so far; returns the Markdown."""
    import h5py

    from medfeat._checks import write_atomic

    done = [c for c in configs if runs[c]]
    reference = outs["in-process"][0] if outs["in-process"] else None
    checks = {}
    if reference is not None:
        for config in done:
            if config == "in-process":
                continue
            arrays, md5 = True, True
            for out in outs[config]:
                for s in slides:
                    name = f"{Path(s).stem}.h5"
                    arrays &= _same_store(out / name, reference / name)
                    md5 &= _md5(out / name) == _md5(reference / name)
            checks[config] = {"arrays_and_attrs_equal": bool(arrays), "bytes_equal": bool(md5)}
    some = outs[done[0]][0] if done else None
    patches = None
    if some is not None:
        with h5py.File(some / f"{Path(slides[0]).stem}.h5", "r") as f:
            patches = int(f.attrs["n_patches"])
    med = {c: statistics.median(r["slides_per_hour"] for r in runs[c]) for c in done}
    pair = [b["slides_per_hour"] / a["slides_per_hour"] for a, b in zip(runs["local:1"], runs["local:2"])]
    results = {
        "complete": complete,
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "note": "2-core machine shared with other engineers' jobs during the run (see loadavg per run); "
                "figures are medians, the 2-vs-1 ratio pairs runs of the same round, rounds alternate the order",
        "slides": len(slides), "slide_level0_size": list(args.slide_size), "patches_per_slide_first": patches,
        "settings": {**settings, "features": "DeepFeatures(runtime='eager', batch_size=32), efficientnet_lite0, "
                                            "native 64 px input"},
        "runs": runs,
        "median_slides_per_hour": med,
        "ratio_2_vs_1_workers": {"median_of_rounds": statistics.median(pair) if pair else None, "per_round": pair},
        "ratio_1_worker_vs_in_process": (med["local:1"] / med["in-process"]
                                         if "local:1" in med and "in-process" in med else None),
        "identical_to_in_process": checks,
        "startup_s_median": {c: statistics.median(r["startup_s"] for r in runs[c]) for c in done if c != "in-process"},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, default=float) + "\n"
    write_atomic(out_dir / "distributed.json", lambda fh: fh.write(text.encode()))
    lines = [
        "# Scale-out: slides/hour on this machine" + ("" if complete else " (partial: run still going)"),
        "",
        f"{len(slides)} synthetic slides ({args.slide_size[0]} x {args.slide_size[1]} px at 0.5 um/px, "
        f"{patches} tissue patches of 64 px at 1 um/px in the first), deep features (EfficientNet-Lite0, eager "
        "PyTorch), one Dask task per slide. " + results["note"] + ".",
        "",
        "| configuration | median slides/hour | runs | cluster start-up (s) | task seconds per slide (first run) |",
        "|---|---|---|---|---|",
    ]
    for c in done:
        su = f"{results['startup_s_median'][c]:.1f}" if c in results["startup_s_median"] else "-"
        tasks = ", ".join(f"{t:.0f}" for t in runs[c][0]["task_s"])
        lines.append(f"| {c} | {med[c]:.0f} | {len(runs[c])} | {su} | {tasks} |")
    lines.append("")
    if pair:
        lines.append(f"2 workers vs 1 worker: **{results['ratio_2_vs_1_workers']['median_of_rounds']:.2f}x** "
                     f"(per round: {', '.join(f'{x:.2f}' for x in pair)}).")
    if results["ratio_1_worker_vs_in_process"] is not None:
        lines.append(f"1 worker vs in-process: {results['ratio_1_worker_vs_in_process']:.2f}x.")
    if checks:
        lines += ["", "Stores of the Dask runs against the in-process run: " + "; ".join(
            f"{c}: datasets+attributes {'equal' if v['arrays_and_attrs_equal'] else 'DIFFERENT'}, file bytes "
            f"{'equal' if v['bytes_equal'] else 'different'}" for c, v in checks.items()) + "."]
    lines += ["", "Load average (1 min) at the end of each run: "
              + ", ".join(f"{c} {r['loadavg'][0]:.1f}" for c in done for r in runs[c]) + ".", ""]
    md = "\n".join(lines)
    write_atomic(out_dir / "distributed.md", lambda fh: fh.write(md.encode()))
    return md


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

    from medfeat.slides import write_synthetic_slide

    settings = dict(mpp=1.0, size=64, batch_size=32, reader_threads=2)
    work = Path(tempfile.mkdtemp(prefix="medfeat-bench-dist-"))
    try:
        slides = [write_synthetic_slide(work / f"slide{i}.tif", size=tuple(args.slide_size), mpp=0.5, lesions=2,
                                        seed=i).path for i in range(args.slides)]
        configs = ["in-process", "local:1", "local:2"]
        runs = {c: [] for c in configs}
        outs = {c: [] for c in configs}
        k = 0
        for rep in range(args.repeats):
            order = configs if rep % 2 == 0 else configs[::-1]
            for config in order:
                out = work / f"run{k}-{config.replace(':', '')}"
                k += 1
                r = _run(config, slides, out, settings)
                runs[config].append(r)
                outs[config].append(out)
                print(f"{config:10s} {r['wall_s']:7.1f} s  {r['slides_per_hour']:7.1f} slides/h  "
                      f"(start-up {r['startup_s']:.1f} s, load {r['loadavg'][0]:.1f})", flush=True)
                # results so far, rewritten after every run (a long run on a busy machine still leaves figures)
                _report(args, slides, configs, runs, outs, settings, Path(args.out), complete=False)
        print(_report(args, slides, configs, runs, outs, settings, Path(args.out), complete=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":  # LocalCluster starts worker processes that re-import this file
    sys.exit(main())
