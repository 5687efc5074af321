"""Wall time of `medfeat compare` (compare_image_folder) on the real labelled data in ../shared/data.

Runs the default comparison (feature sets lbp, gist, color, glcm, deep [4 EfficientNet-Lite0 layers], fusion
x classifiers logreg, linear_svm, rbf_svm; 5-fold StratifiedGroupKFold; 1000 group-bootstrap resamples) on
each dataset from an empty output folder (no feature cache), then once more on the same folder (cache hit:
the resume path), and writes the stage timings and the result tables to
benchmarks/results/compare.{json,md}.

One fresh run per dataset only (a run takes minutes); the figures are single measurements on a shared
2-core machine, not medians.

Data: Kather et al. 2016 (doi:10.1038/srep27988) and Kermany et al. 2018 (doi:10.17632/rscbjbr9sj.2),
both CC BY 4.0; see ../shared/data/*/README.md.

Usage: python benchmarks/bench_compare.py [DATASET ...]
"""

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from _data import dataset_folder  # benchmarks/_data.py (scripts run with benchmarks/ on sys.path)
from medfeat.pipelines.compare import compare_image_folder

DATASETS = ("kermany_cxr_pneumonia", "kather2016_crc_texture")
RESULTS = Path(__file__).resolve().parent / "results"


def _load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def main(names):
    records = {}
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / name
            folder = dataset_folder(name)
            load_before = _load()
            t0 = time.perf_counter()
            res = compare_image_folder(folder, out, progress=False)
            fresh = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = compare_image_folder(folder, out, progress=False)
            cached = time.perf_counter() - t0
            same = again.table.drop(columns="fit_seconds").equals(res.table.drop(columns="fit_seconds"))
            records[name] = dict(
                fresh_seconds=round(fresh, 1),
                cached_rerun_seconds=round(cached, 1),
                rerun_table_identical=bool(same),
                load_average_before=round(load_before, 2),
                load_average_after=round(_load(), 2),
                timings=res.timings,
                n_rows=len(res.table),
                table_markdown=res.to_markdown(),
                notes=res.notes,
            )
            print(f"{name}: fresh {fresh:.1f} s, cached re-run {cached:.1f} s, identical table: {same}")
            print(res.to_markdown())
    meta = dict(python=platform.python_version(), cpus=os.cpu_count(), machine=platform.machine())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare.json").write_text(json.dumps(dict(meta=meta, datasets=records), indent=2))
    lines = [
        "# compare_image_folder on ../shared/data (default settings)",
        "",
        f"{meta['cpus']} CPUs, Python {meta['python']}; shared 2-core machine (see the load average for other jobs).",
        "",
        "| dataset | fresh run (s) | features (s) | CV (s) | cached re-run (s) | identical re-run |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in records.items():
        feat = sum(r["timings"]["features_seconds"].values())
        lines.append(
            f"| {name} | {r['fresh_seconds']} | {feat:.1f} | {r['timings']['cv_seconds']} | "
            f"{r['cached_rerun_seconds']} | {r['rerun_table_identical']} |"
        )
    for name, r in records.items():
        lines += ["", f"## {name}", "", f"feature seconds: {r['timings']['features_seconds']}", ""]
        lines += [r["table_markdown"]] + [f"- {n}" for n in r["notes"]]
    (RESULTS / "compare.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:] or DATASETS)
