"""Throughput of frozen-CNN feature extraction: DeepFeatures vs a plain loop vs the forward-only ceiling.

For each backbone, on 224 px uint8 RGB patches (crops of skimage's immunohistochemistry image),
all in one run with the three methods interleaved in every repeat (so machine noise hits them alike):

(a) ``DeepFeatures(backbone, batch_size=32, device="cpu")`` — the default layer, average pooled;
(b) the plain eval loop a user would write: torchvision transforms per image from the ndarray
    (``ToTensor`` -> ``Resize(224)`` -> ``Normalize``), ``torch.stack`` batches of 32, NCHW fp32,
    ``torch.no_grad()``, the model with its classifier removed (same features as (a));
(c) the forward-only ceiling: the very module (a) runs (FX extractor, channels-last, fp32) on
    pre-made normalised tensors, batches of 32, ``torch.inference_mode()`` — no preprocessing;
(c') for reference, the plain model's forward alone on pre-made NCHW fp32 tensors.

Medians of the repeats are reported; the features of (a) and (b) are checked to agree. Results go to
benchmarks/results/deep.json and deep.md (written to a temporary name, then renamed).

    python benchmarks/bench_deep.py            # lite0, resnet18, resnet50; 5 repeats of 64 patches
    python benchmarks/bench_deep.py --quick    # lite0 and resnet18; 3 repeats of 32 patches
"""

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from medfeat._checks import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 32
SIZE = 224
BACKBONES = [
    ("efficientnet_lite0", "DEFAULT"),  # offline package weights
    ("torchvision:resnet18", None),  # weights=None: same speed, no download
    ("torchvision:resnet50", None),
]


def make_patches(n, seed=0):
    from skimage import data

    image = data.immunohistochemistry()  # 512 x 512 RGB
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, image.shape[0] - SIZE, n)
    xs = rng.integers(0, image.shape[1] - SIZE, n)
    return np.stack([image[y:y + SIZE, x:x + SIZE] for y, x in zip(ys, xs)])


def plain_model(name, weights):
    """The network a user would write by hand: classifier removed, NCHW, fp32."""
    import torch

    from medfeat.features.backbones import load_backbone

    bb = load_backbone(name, weights=weights)
    model = bb.model
    if name.startswith("torchvision:"):
        model.fc = torch.nn.Identity()
        forward = model
    else:  # timm: forward_features + global pool, without the classifier
        def forward(x):
            return model.forward_head(model.forward_features(x), pre_logits=True)
    return bb, forward


def run_plain(forward, bb, X):
    """(b) per-image torchvision transforms, then batches of 32, NCHW fp32 under no_grad."""
    import torch
    from torchvision import transforms

    tf = transforms.Compose([
        transforms.ToTensor(),
        transforms.Resize(SIZE, antialias=True),
        transforms.Normalize(bb.mean, bb.std),
    ])
    feats = []
    with torch.no_grad():
        for start in range(0, len(X), BATCH):
            batch = torch.stack([tf(image) for image in X[start:start + BATCH]])
            feats.append(forward(batch))
    return torch.cat(feats).numpy()


def run_ceiling(module, tensors):
    import torch

    with torch.inference_mode():
        for t in tensors:
            module(t)


def measure(name, weights, X, repeats):
    import torch

    from medfeat.features.deep import DeepFeatures, _normaliser, _prepare

    deep = DeepFeatures(name, weights=weights, batch_size=BATCH, device="cpu").fit()
    bb, forward = plain_model(name, weights)
    mean, std = _normaliser(bb.mean, bb.std, torch.device("cpu"))
    with torch.inference_mode():
        made_cl = [_prepare(torch.from_numpy(X[s:s + BATCH]), None, mean, std).clone()
                   for s in range(0, len(X), BATCH)]
    made_nchw = [t.contiguous() for t in made_cl]
    extractor = deep.extractor_

    methods = {
        "deepfeatures": lambda: deep.transform(X),
        "plain_loop": lambda: run_plain(forward, bb, X),
        "forward_only_ceiling": lambda: run_ceiling(extractor, made_cl),
        "plain_forward_only_nchw": lambda: run_ceiling(forward, made_nchw),
    }
    # Same features from (a) and (b): the comparison is like for like.
    a, b = deep.transform(X[:4]), run_plain(forward, bb, X[:4])
    agreement = float(np.max(np.abs(a - b)))
    for fn in methods.values():  # warm-up (oneDNN primitive caches, allocator)
        fn()
    times = {k: [] for k in methods}
    for _ in range(repeats):
        for key, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    n = len(X)
    out = {
        "backbone": name,
        "weights": weights,
        "layer": list(deep.layers_.values()),
        "n_features": deep.n_features_out_,
        "max_abs_diff_deepfeatures_vs_plain": agreement,
        "patches_per_s": {k: n / statistics.median(v) for k, v in times.items()},
        "runs_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
    }
    pps = out["patches_per_s"]
    out["speedup_vs_plain_loop"] = pps["deepfeatures"] / pps["plain_loop"]
    out["fraction_of_ceiling"] = pps["deepfeatures"] / pps["forward_only_ceiling"]
    return out


def to_markdown(report):
    lines = [
        "## Deep features throughput (CPU)",
        "",
        (f"{report['machine']}; torch {report['torch']}, {report['threads']} threads; {report['n_patches']} "
        f"patches of {SIZE} px, batch {BATCH}, median of {report['repeats']} interleaved repeats. "
        f"Load average {report['load_before']} before, {report['load_after']} after: "
        "the 2 cores may be shared with other jobs (see the load average), so absolute figures are noisy."),
        "",
        "| backbone | (a) DeepFeatures | (b) plain loop | (c) forward-only ceiling | (c') plain NCHW forward | a/b | a/c |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        p = r["patches_per_s"]
        lines.append(
            f"| {r['backbone']} | {p['deepfeatures']:.1f} | {p['plain_loop']:.1f} | {p['forward_only_ceiling']:.1f} | "
            f"{p['plain_forward_only_nchw']:.1f} | {r['speedup_vs_plain_loop']:.2f}x | {r['fraction_of_ceiling']:.2f} |"
        )
    lines += [
        "",
        "Patches per second. (a) and (b) produce the same features (max abs difference "
        + ", ".join(f"{r['max_abs_diff_deepfeatures_vs_plain']:.1e}" for r in report["results"])
        + "). (c) is the module (a) runs, on pre-made channels-last tensors; (c') is the plain model on pre-made "
        "NCHW tensors, which shows how much of a/b comes from the channels-last layout rather than preprocessing.",
        "",
        f"GPU: {report['gpu']}",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="lite0 and resnet18 only, 32 patches, 3 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    repeats = args.repeats or (3 if args.quick else 5)
    n = 32 if args.quick else 64
    backbones = BACKBONES[:2] if args.quick else BACKBONES
    X = make_patches(n)
    load_before = [round(v, 2) for v in os.getloadavg()]
    results = []
    for name, weights in backbones:
        r = measure(name, weights, X, repeats)
        p = r["patches_per_s"]
        print(f"{name:24s} deep {p['deepfeatures']:7.1f}  plain {p['plain_loop']:7.1f}  ceiling "
              f"{p['forward_only_ceiling']:7.1f}  plain-fwd {p['plain_forward_only_nchw']:7.1f}  patches/s  "
              f"a/b {r['speedup_vs_plain_loop']:.2f}x  a/c {r['fraction_of_ceiling']:.2f}", flush=True)
        results.append(r)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs".replace("  ", " "),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "n_patches": n,
        "repeats": repeats,
        "quick": args.quick,
        "load_before": load_before,
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "gpu": "none measured: no GPU was available to this run (CUDA not present)."
        if not torch.cuda.is_available() else "CUDA present but this script measures the CPU only.",
        "note": "The 2 cores may be shared with other jobs: see load_before and load_after.",
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "deep.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(args.out / "deep.md", to_markdown(report))
    print(f"wrote {args.out / 'deep.json'} and {args.out / 'deep.md'}")


if __name__ == "__main__":
    main()
