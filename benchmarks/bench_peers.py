"""medfeat against TIAToolbox's DeepFeatureExtractor, and against the forward-only ceilings, in one run.

Same slide (CMU-1-Small-Region via ``medfeat.datasets.cmu_small_region()``), same grid (224 px at
0.5 um/px, stride 112 by default -- half-overlapping, 520 patches, so that the one-off warm-up of the first
batches, about a second for every tool, does not dominate a 140-patch run -- no tissue mask), same backbone (torchvision ResNet-50 with the same random
weights: no download; TIAToolbox loads the state dict medfeat's backbone saved), batch 32, CPU only.

Every configuration runs in its own fresh Python process (the glibc malloc setting is per process and
cannot be undone), in alternating order over the repeats. End-to-end runs (both tools) extract the slide
twice in their process and time the second pass, from the first patch read to the last feature written
(model building and the first pass's warm-up excluded, ``--cold`` times the first pass instead); the
forward-only runs drop their first batch the same way.
Medians of the repeats; ratios are taken within this run only. The machine may be shared with other
jobs: the load averages are recorded beside the figures.

Configurations
- ``tiatoolbox``: TIAToolbox ``DeepFeatureExtractor(CNNBackbone("resnet50"))``, ``run(patch_mode=False)``
  on the slide, zarr output, in a separate virtual environment the script creates: a venv whose .pth file
  adds this interpreter's site-packages (so TIAToolbox runs on our torch), with ``tiatoolbox`` and the
  modules its import needs installed from PyPI with ``--no-deps``.
- ``medfeat_before``: ``extract_slide_features`` with eager PyTorch and ``MEDFEAT_TUNE_MALLOC=0``: what
  medfeat did before issue 15.
- ``medfeat_eager``: eager PyTorch with the malloc tuning: what the README install runs by default
  (``runtime="auto"`` is eager when onnxruntime is not installed).
- ``medfeat_default``: ``DeepFeatures`` defaults in *this* environment (``runtime="auto"`` decides once, in
  ``fit``: ONNX Runtime when onnxruntime is installed, i.e. with ``pip install medfeat[onnx]``, else eager;
  ``runtime_used`` in the JSON says which).
- ``medfeat_onnx``: ``runtime="onnx"`` (its export happens in ``fit``, timed apart as ``fit_seconds``).
- ``forward_*``: forward-only ceilings on pre-made normalised tensors (no reading, no preprocessing):
  eager with and without malloc tuning, ONNX Runtime fp32, int8, bf16 autocast, and ``torch.compile``
  with ``--compile``. Each also reports its feature drift against eager fp32 on the same tensors.

    python benchmarks/bench_peers.py                 # 3 repeats
    python benchmarks/bench_peers.py --quick         # 1 repeat, fewer forward batches, no TIAToolbox
    python benchmarks/bench_peers.py --tia-venv DIR  # where the TIAToolbox venv lives (created if absent)
    python benchmarks/bench_peers.py --stride 224    # the non-overlapping grid (140 patches)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 32
SIZE = 224
STRIDE = 112  # --stride
MPP = 0.5
TIA_VERSION = "2.1.3"
# What `from tiatoolbox.models.engine.deep_feature_extractor import DeepFeatureExtractor` needs beyond the
# packages medfeat's environment already has (found by importing it in a bare venv over ours).
TIA_EXTRA = ["opencv-python-headless", "umap-learn", "numba", "llvmlite", "pynndescent", "zarr", "numcodecs",
             "donfig", "google-crc32c", "SimpleITK", "universal-pathlib", "pathlib-abc", "transformers", "tokenizers",
             "regex"]
TIA_IMPORT = "from tiatoolbox.models.engine.deep_feature_extractor import DeepFeatureExtractor"


# ----------------------------------------------------------------------------------------------- workers

def _cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _save_weights(path):
    """ResNet-50 random weights (seed 0) as a plain state dict, shared by medfeat and TIAToolbox."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None)
    torch.save(model.state_dict(), path)


def _medfeat_transformer(weights, runtime, precision="auto"):
    from medfeat.features import DeepFeatures

    return DeepFeatures("torchvision:resnet50", weights=str(weights), input_size=None, batch_size=BATCH,
                        device="cpu", runtime=runtime, precision=precision)


def worker_medfeat(cfg):
    from medfeat.datasets import cmu_small_region
    from medfeat.pipelines import extract_slide_features, load_slide_features

    deep = _medfeat_transformer(cfg["weights"], cfg["runtime"])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        deep.fit(np.zeros((1, SIZE, SIZE, 3), np.uint8))  # builds the network (and exports it for "onnx")
        fit_seconds = time.perf_counter() - t0

        def extract(name):
            return extract_slide_features(cmu_small_region(), deep, mpp=MPP, size=SIZE, stride=cfg["stride"],
                                          tissue=None, out=Path(tmp) / name, batch_size=BATCH, progress=False)

        if cfg.get("warm"):
            extract("warm.h5")  # first pass, untimed: kernel selection, allocator, page cache
        t0 = time.perf_counter()
        path = extract("s.h5")
        seconds = time.perf_counter() - t0
        _, X, _, _ = load_slide_features(path)
    return {"seconds": seconds, "patches": int(len(X)), "runtime_used": deep.runtime_, "fit_seconds": fit_seconds}


def worker_forward(cfg):
    import torch

    from medfeat.features.deep import _normaliser, _prepare

    rng = np.random.default_rng(0)
    from medfeat.datasets import cmu_small_region
    from medfeat.slides import PatchGrid, SlideReader, read_patches

    with SlideReader.open(cmu_small_region()) as slide:
        grid = PatchGrid.from_reader(slide, mpp=MPP, size=SIZE, stride=cfg["stride"], tissue=None)
        idx = np.sort(rng.choice(len(grid), size=min(len(grid), BATCH * cfg["batches"]), replace=False))
        X = read_patches(slide, grid, indices=idx)
    calib = X[:64]
    deep = _medfeat_transformer(cfg["weights"], cfg["runtime"], cfg["precision"]).fit(calib)
    mean, std = _normaliser(deep.backbone_.mean, deep.backbone_.std, torch.device("cpu"))
    with torch.inference_mode():
        made = [_prepare(torch.from_numpy(X[s:s + BATCH]), None, mean, std).clone() for s in range(0, len(X), BATCH)]
    extractor = deep._ensure_model()
    alias = next(iter(deep.layers_))
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if deep.precision_ == "bf16"
                else torch.autocast("cpu", enabled=False))
    feats = []
    with torch.inference_mode(), autocast:
        feats.append(extractor(made[0])[alias].float().numpy())  # warm-up (and compilation)
        t0 = time.perf_counter()
        for t in made[1:]:
            feats.append(extractor(t)[alias].float().numpy())
        seconds = time.perf_counter() - t0
    np.save(cfg["features_out"], np.concatenate(feats))
    return {"seconds": seconds, "patches": int(sum(len(t) for t in made[1:])), "runtime_used": deep.runtime_}


def worker_tia(cfg):
    import torch
    import zarr
    from tiatoolbox.models.architecture.vanilla import CNNBackbone
    from tiatoolbox.models.engine.deep_feature_extractor import DeepFeatureExtractor
    from tiatoolbox.models.engine.io_config import IOPatchPredictorConfig

    torch.set_num_threads(_cpus())
    model = CNNBackbone("resnet50")  # weights=None by default: no download
    state = torch.load(cfg["weights"], weights_only=True)
    # CNNBackbone keeps the torchvision model minus its fc as `feat_extract`: same tensors, same order
    target = model.feat_extract.state_dict()
    source = [v for k, v in state.items() if not k.startswith("fc.")]
    assert len(source) == len(target), (len(source), len(target))
    model.feat_extract.load_state_dict(dict(zip(target, source)))
    io = IOPatchPredictorConfig(input_resolutions=[{"units": "mpp", "resolution": MPP}],
                                patch_input_shape=(SIZE, SIZE), stride_shape=(cfg["stride"], cfg["stride"]))
    engine = DeepFeatureExtractor(model=model, batch_size=BATCH, num_workers=0, device="cpu", verbose=False)
    with tempfile.TemporaryDirectory() as tmp:
        if cfg.get("warm"):  # first pass, untimed, as for medfeat
            engine.run(images=[cfg["slide"]], patch_mode=False, ioconfig=io, save_dir=Path(tmp) / "warm",
                       output_type="zarr", auto_get_mask=False)
        t0 = time.perf_counter()
        out = engine.run(images=[cfg["slide"]], patch_mode=False, ioconfig=io, save_dir=Path(tmp) / "out",
                         output_type="zarr", auto_get_mask=False)
        seconds = time.perf_counter() - t0
        path = next(iter(out.values())) if isinstance(out, dict) else out
        z = zarr.open(str(path), mode="r")
        shapes = {k: z[k].shape for k in z.array_keys()}
    n = max(s[0] for s in shapes.values())
    return {"seconds": seconds, "patches": int(n), "outputs": {k: list(v) for k, v in shapes.items()}}


WORKERS = {"medfeat": worker_medfeat, "forward": worker_forward, "tia": worker_tia}


# ----------------------------------------------------------------------------------------------- driver

def ensure_tia_venv(venv):
    """A venv over this interpreter's packages with TIAToolbox added (--no-deps); created if absent."""
    venv = Path(venv)
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", TIA_IMPORT], capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # our torch, torchvision, numpy, dask, ... come from this interpreter's site-packages, after the venv's own
    (site / "medfeat_bench_base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run(pip + [f"tiatoolbox=={TIA_VERSION}"] + TIA_EXTRA, check=True)
    check = subprocess.run([str(python), "-c", TIA_IMPORT], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"TIAToolbox does not import in {venv}:\n{check.stderr[-2000:]}")
    return python


def run_worker(python, kind, cfg, env=None):
    cmd = [str(python), os.path.abspath(__file__), "--worker", kind, json.dumps(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def drift(a, b):
    diff = np.abs(a - b)
    return {"max_abs": float(diff.max()), "max_rel_to_max": float(diff.max() / np.abs(b).max()),
            "median_rel_row_l2": float(np.median(np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)))}


def to_markdown(report):
    r = report["results"]
    lines = [
        "## medfeat vs TIAToolbox and the forward-only ceilings (CPU, ResNet-50, CMU-1-Small-Region)",
        "",
        (f"{report['machine']}; torch {report['torch']}; {report['cpus']} CPUs; grid 224 px at 0.5 um/px, stride "
         f"{report.get('stride', 224)}, no tissue mask ({r.get('medfeat_default', {}).get('patches', '?')} patches); batch 32; end to end timed on the "
         f"{report.get('end_to_end_timing', 'first pass (cold)')}; median of "
         f"{report['repeats']} repeat(s), every configuration in a fresh process, order reversed on every other repeat. Load average "
         f"before {report['load_before']}, after {report['load_after']}: {report['load_note']}"),
        "",
        "| configuration | patches/s (median) | runs (patches/s) | feature drift vs eager fp32 (max abs / max rel) |",
        "|---|---:|---|---|",
    ]
    for name, v in r.items():
        d = v.get("drift")
        dtext = f"{d['max_abs']:.2e} / {d['max_rel_to_max']:.2e}" if d else ""
        lines.append(f"| {name} | {v['patches_per_s']:.2f} | {', '.join(f'{x:.2f}' for x in v['runs'])} | {dtext} |")
    lines += ["", "Ratios (within this run):", ""]
    lines += [f"- {k}: {v:.2f}" for k, v in report["ratios"].items()]
    lines += ["", "Targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in report["targets"].items()),
              "", f"GPU: {report['gpu']}", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 3 forward batches, no TIAToolbox")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--batches", type=int, default=None, help="forward-only batches of 32 (first is warm-up)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (compiles for minutes)")
    parser.add_argument("--no-tia", action="store_true", help="skip TIAToolbox")
    parser.add_argument("--tia-venv", default=os.path.join(tempfile.gettempdir(), "medfeat-bench-tia-venv"))
    parser.add_argument("--stride", type=int, default=STRIDE,
                        help="grid stride in pixels at 0.5 um/px (default 112: 520 patches; 224: 140 patches)")
    parser.add_argument("--cold", action="store_true",
                        help="time the end-to-end runs' first pass over the slide (default: the second pass in the "
                             "same process, after an untimed warm-up pass, as the forward-only runs drop their "
                             "first batch)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, cfg = args.worker
        print(json.dumps(WORKERS[kind](json.loads(cfg))))
        return

    import torch

    from medfeat.datasets import cmu_small_region

    repeats = args.repeats or (1 if args.quick else 3)
    batches = args.batches or (3 if args.quick else 5)
    tmp = Path(tempfile.mkdtemp(prefix="medfeat-bench-peers-"))
    weights = tmp / "resnet50_seed0.pt"
    _save_weights(weights)
    slide = str(cmu_small_region())
    tia_python = None if (args.quick or args.no_tia) else ensure_tia_venv(args.tia_venv)
    off = {"MEDFEAT_TUNE_MALLOC": "0"}
    common = {"weights": str(weights), "stride": args.stride, "warm": not args.cold}
    configs = {}
    if tia_python:
        configs["tiatoolbox"] = (tia_python, "tia", {**common, "slide": slide}, off)
    configs["medfeat_before"] = (sys.executable, "medfeat", {**common, "runtime": "eager"}, off)
    # the README install's default path (no onnxruntime there: runtime="auto" is eager)
    configs["medfeat_eager"] = (sys.executable, "medfeat", {**common, "runtime": "eager"}, None)
    configs["medfeat_default"] = (sys.executable, "medfeat", {**common, "runtime": "auto"}, None)
    configs["medfeat_onnx"] = (sys.executable, "medfeat", {**common, "runtime": "onnx"}, None)
    forwards = [("eager_no_malloc_tuning", "eager", "fp32", off), ("eager", "eager", "fp32", None),
                ("onnx_fp32", "onnx", "fp32", None), ("onnx_int8", "onnx", "int8", None),
                ("eager_bf16", "eager", "bf16", None)]
    if args.compile:
        forwards.append(("compile_fp32", "compile", "fp32", None))
    for name, runtime, precision, env in forwards:
        configs[f"forward_{name}"] = (sys.executable, "forward", {
            **common, "runtime": runtime, "precision": precision, "batches": batches,
            "features_out": str(tmp / f"{name}.npy")}, env)

    load_before = [round(v, 2) for v in os.getloadavg()]
    runs = {k: [] for k in configs}
    info = {}
    order = list(configs)
    for rep in range(repeats):
        for name in (order if rep % 2 == 0 else order[::-1]):
            python, kind, cfg, env = configs[name]
            try:
                res = run_worker(python, kind, cfg, env)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:  # report, keep the other figures
                info[name] = {"error": str(exc)[-1500:]}
                print(f"[{rep + 1}/{repeats}] {name}: FAILED {str(exc)[-300:]}", flush=True)
                continue
            runs[name].append(res["patches"] / res["seconds"])
            info[name] = res
            print(f"[{rep + 1}/{repeats}] {name:28s} {runs[name][-1]:7.2f} patches/s ({res['patches']} patches, "
                  f"load {os.getloadavg()[0]:.1f})", flush=True)
    load_after = [round(v, 2) for v in os.getloadavg()]

    results = {}
    ref = np.load(tmp / "eager.npy") if (tmp / "eager.npy").exists() else None
    failed = {k: info[k]["error"] for k, v in runs.items() if not v}
    runs = {k: v for k, v in runs.items() if v}
    for name, values in runs.items():
        entry = {"patches_per_s": statistics.median(values), "runs": [round(v, 3) for v in values],
                 "patches": info[name]["patches"], "runtime_used": info[name].get("runtime_used"),
                 "fit_seconds": info[name].get("fit_seconds")}
        if name.startswith("forward_") and ref is not None:
            entry["drift"] = drift(np.load(tmp / f"{name[len('forward_'):]}.npy"), ref)
        results[name] = entry
    pps = {k: v["patches_per_s"] for k, v in results.items()}
    exact = [k for k in pps if k.startswith("forward_") and "drift" in results[k]
             and results[k]["drift"]["max_rel_to_max"] < 1e-4]
    best_exact = max(exact, key=pps.get) if exact else None
    forwards_done = [k for k in pps if k.startswith("forward_")]
    best_any = max(forwards_done, key=pps.get) if forwards_done else None
    pairs = [
        ("malloc tuning, forward-only eager (after/before)", "forward_eager", "forward_eager_no_malloc_tuning"),
        ("malloc tuning, medfeat eager end to end (after/before)", "medfeat_eager", "medfeat_before"),
        ("medfeat README install (eager) / TIAToolbox", "medfeat_eager", "tiatoolbox"),
        ("medfeat default / TIAToolbox", "medfeat_default", "tiatoolbox"),
        ("medfeat runtime='onnx' / TIAToolbox", "medfeat_onnx", "tiatoolbox"),
        ("medfeat before issue 15 / TIAToolbox", "medfeat_before", "tiatoolbox"),
        (f"medfeat README install (eager) / best exact forward-only ceiling ({best_exact})", "medfeat_eager",
         best_exact),
        (f"medfeat default / best exact forward-only ceiling ({best_exact})", "medfeat_default", best_exact),
        (f"medfeat runtime='onnx' / best exact forward-only ceiling ({best_exact})", "medfeat_onnx", best_exact),
        (f"medfeat default / best forward-only ceiling of any precision ({best_any})", "medfeat_default", best_any),
        (f"medfeat runtime='onnx' / best forward-only ceiling of any precision ({best_any})", "medfeat_onnx", best_any),
        ("forward-only onnx fp32 / eager", "forward_onnx_fp32", "forward_eager"),
        ("forward-only onnx int8 / eager", "forward_onnx_int8", "forward_eager"),
        ("forward-only bf16 / eager", "forward_eager_bf16", "forward_eager"),
    ]
    ratios = {label: pps[a] / pps[b] for label, a, b in pairs if a in pps and b in pps}
    targets = {}
    for who, key in (("README install (eager)", "medfeat_eager"), ("default", "medfeat_default"),
                     ("runtime='onnx'", "medfeat_onnx")):
        if key in pps and "tiatoolbox" in pps:
            targets[f"medfeat {who} >= 2.5x TIAToolbox"] = pps[key] >= 2.5 * pps["tiatoolbox"]
        if key in pps and best_exact:
            targets[f"medfeat {who} >= 0.9x best exact forward-only ceiling"] = pps[key] >= 0.9 * pps[best_exact]
        if key in pps and best_any:
            targets[f"medfeat {who} >= 0.9x best forward-only ceiling of any precision"] = pps[key] >= 0.9 * pps[best_any]
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": _cpus(),
        "torch": torch.__version__,
        "tiatoolbox": TIA_VERSION if tia_python else None,
        "repeats": repeats,
        "quick": args.quick,
        "load_before": load_before,
        "load_after": load_after,
        "load_note": ("absolute figures depend on whatever else the machine ran (a load average well above "
                      f"{_cpus()} means other jobs shared the cores); the ratios come from alternating runs in this "
                      "one session."),
        "stride": args.stride,
        "end_to_end_timing": "first pass (cold)" if args.cold else "second pass in the process (warm-up pass untimed)",
        "runtime_used": {k: v.get("runtime_used") for k, v in info.items() if isinstance(v, dict)},
        "gpu": "not measured: no GPU was available to this run; the GPU path (bf16/fp16 autocast, pinned-memory "
               "transfer) is only exercised for correctness on the CPU.",
        "results": results,
        "ratios": ratios,
        "failed": failed,
        "targets": targets,
    }
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    from medfeat._checks import write_text_atomic

    name = "peers_quick" if args.quick else "peers"
    write_text_atomic(args.out / f"{name}.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(args.out / f"{name}.md", to_markdown(report))
    print(f"wrote {args.out / (name + '.json')} and {args.out / (name + '.md')}")


if __name__ == "__main__":
    main()
