"""Evaluation benchmark: wall time of roc_report (2000-resample bootstrap), DeLong and FROC.

Run: python benchmarks/bench_evaluation.py  -> benchmarks/results/evaluation.{json,md}
Medians of REPEATS runs measured in one process. The build machine has 2 shared cores and other
engineers were running jobs at the same time, so absolute figures are noisy upper bounds.
"""

import json
import platform
import time
from pathlib import Path

import numpy as np

from medfeat.evaluation import delong_auc_ci, delong_test, froc, roc_report

REPEATS = 5
OUT = Path(__file__).parent / "results"


def _median_time(fn):
    fn()  # warm-up
    ts = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main():
    rng = np.random.default_rng(0)
    rows = []
    for n in (1000, 3000, 10000):
        y = (rng.random(n) < 0.4).astype(int)
        s = y + rng.normal(size=n)
        g = rng.integers(0, max(10, n // 50), n)
        rows.append({"case": f"roc_report, n={n}, 2000 resamples, 3 operating points",
                     "seconds": _median_time(lambda y=y, s=s: roc_report(y, s, random_state=0))})
        rows.append({"case": f"roc_report, n={n}, {g.max() + 1} groups, 2000 group resamples",
                     "seconds": _median_time(lambda y=y, s=s, g=g: roc_report(y, s, groups=g, random_state=0))})
    for n in (10_000, 100_000):
        y = (rng.random(n) < 0.4).astype(int)
        a, b = y + rng.normal(size=n), y + rng.normal(size=n)
        rows.append({"case": f"delong_auc_ci, n={n}", "seconds": _median_time(lambda y=y, a=a: delong_auc_ci(y, a))})
        rows.append({"case": f"delong_test (paired), n={n}", "seconds": _median_time(lambda y=y, a=a, b=b: delong_test(y, a, b))})
    masks, dets = {}, {}
    for i in range(20):
        m = np.zeros((2000, 2000), bool)
        for _ in range(5):
            r, c = rng.integers(0, 1900, 2)
            m[r:r + rng.integers(5, 100), c:c + rng.integers(5, 100)] = True
        masks[f"s{i}"] = m if i % 2 else None
        dets[f"s{i}"] = np.column_stack([rng.random((200, 2)) * 64000, rng.random(200)])
    rows.append({"case": "froc, 20 slides (10 normal), 2000x2000 masks at downsample 32, 200 detections each",
                 "seconds": _median_time(lambda: froc(dets, masks, mpp=0.243, mask_downsample=32))})

    meta = {"python": platform.python_version(), "machine": platform.machine(), "repeats": REPEATS,
            "note": "2 cores, possibly shared with other jobs"}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "evaluation.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    md = ["| case | median seconds |", "|---|---|"] + [f"| {r['case']} | {r['seconds']:.3f} |" for r in rows]
    (OUT / "evaluation.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
