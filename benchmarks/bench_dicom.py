"""Radiology input check: the Kermany chest X-rays as 8-bit JPEG and as 12-bit DICOM give the same comparison.

Every image of ``../shared/data/kermany_cxr_pneumonia`` is written as a 12-bit DICOM file
(stored = round(g * 4095 / 255); every other file MONOCHROME1 with stored 4095 - value; window centre 2048,
width 4096, whose DICOM LINEAR function maps 0..4095 onto value / 4095; PatientID from the manifest; no
manifest in the DICOM folder, so the groups come from the files). ``compare_image_folder`` then runs on both
folders with the same settings (handcrafted feature sets x logreg / RBF SVM, 5-fold StratifiedGroupKFold,
200 group-bootstrap resamples), and the AUC tables are put side by side. Accuracy, not speed: the seconds
are printed for information only (the build machines are shared).

Usage::

    python benchmarks/bench_dicom.py          # writes benchmarks/results/dicom.{json,md}
"""

import datetime
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from medfeat._checks import write_text_atomic
from _data import dataset_folder  # benchmarks/_data.py: ../shared/data or $MEDFEAT_DATA, checksums verified
from medfeat.datasets import write_dicom
from medfeat.pipelines.compare import compare_image_folder

ROOT = Path(__file__).resolve().parents[1]


def main():
    from PIL import Image

    kermany = dataset_folder("kermany_cxr_pneumonia")
    manifest = pd.read_csv(kermany / "manifest.csv", dtype=str)
    kw = dict(feature_sets=["lbp", "gist", "color", "glcm"], classifiers=["logreg", "rbf_svm"], progress=False,
              n_bootstrap=200)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        dicom = Path(tmp) / "dicom"
        for i, row in enumerate(manifest.itertuples()):
            grey = np.asarray(Image.open(kermany / row.relative_path).convert("L"), dtype=np.float64)
            v = np.round(grey * 4095 / 255).astype(np.uint16)
            mono1 = i % 2 == 1
            (dicom / row.label).mkdir(parents=True, exist_ok=True)
            write_dicom(dicom / row.label / (Path(row.relative_path).stem + ".dcm"), 4095 - v if mono1 else v,
                        patient_id=row.patient_id, bits_stored=12, modality="CR",
                        photometric="MONOCHROME1" if mono1 else "MONOCHROME2", window=(2048, 4096))
        for name, folder in (("jpeg", kermany), ("dicom", dicom)):
            t0 = time.perf_counter()
            res = compare_image_folder(folder, Path(tmp) / f"out_{name}", **kw)
            results = json.loads((Path(tmp) / f"out_{name}" / "results.json").read_text())
            out[name] = dict(
                seconds=round(time.perf_counter() - t0, 1),
                n_images=results["n_images"],
                n_groups=results["n_groups"],
                group_column=results["group_column"],
                image_input=results["image_input"],
                table=res.table[["feature_set", "classifier", "auc", "auc_ci_lo", "auc_ci_hi"]].to_dict("records"),
            )
    jpeg = {(r["feature_set"], r["classifier"]): r for r in out["jpeg"]["table"]}
    rows = []
    for r in out["dicom"]["table"]:
        j = jpeg[(r["feature_set"], r["classifier"])]
        rows.append((r["feature_set"], r["classifier"], j, r, abs(r["auc"] - j["auc"])))
    report = dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        note="Kermany CXRs (720 images) as 8-bit JPEG vs 12-bit DICOM through compare_image_folder; unit of "
             "analysis: image, grouped by patient (CIs resample patients). Shared machine: seconds are not a "
             "speed measurement.",
        max_abs_auc_difference=max(d for *_, d in rows),
        **out,
    )
    res_dir = ROOT / "benchmarks" / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(res_dir / "dicom.json", json.dumps(report, indent=2))
    lines = [
        "# Kermany chest X-rays: 8-bit JPEG vs the same images as 12-bit DICOM",
        "",
        f"{out['dicom']['n_images']} images; groups: JPEG {out['jpeg']['group_column']} "
        f"({out['jpeg']['n_groups']}), DICOM {out['dicom']['group_column']} ({out['dicom']['n_groups']}). "
        "AUC (95% group-bootstrap CI), 5-fold StratifiedGroupKFold, out-of-fold scores.",
        "",
        "| feature set | classifier | JPEG AUC | DICOM AUC | abs. difference |",
        "|---|---|---|---|---|",
    ]
    for f, c, j, d, diff in rows:
        lines.append(f"| {f} | {c} | {j['auc']:.4f} ({j['auc_ci_lo']:.3f}-{j['auc_ci_hi']:.3f}) | "
                     f"{d['auc']:.4f} ({d['auc_ci_lo']:.3f}-{d['auc_ci_hi']:.3f}) | {diff:.4f} |")
    lines += ["", f"DICOM windows applied: {out['dicom']['image_input']['windows']}; MONOCHROME1 inverted: "
              f"{out['dicom']['image_input']['inverted_monochrome1']}.", "", report["note"], ""]
    write_text_atomic(res_dir / "dicom.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
