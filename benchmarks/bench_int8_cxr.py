"""What int8 quantisation does to a downstream result: Kermany chest X-rays, NORMAL vs PNEUMONIA.

The 720 images of ``../shared/data/kermany_cxr_pneumonia`` (CC BY 4.0, Kermany et al. 2018; 224 px JPEG,
patient ids in the manifest) go through ``DeepFeatures()`` (EfficientNet-Lite0, offline weights, pooled
final features) (and with ``--resnet50`` a ResNet-50 trunk with fixed random weights), each in eager fp32, ONNX Runtime
fp32 and ONNX Runtime int8. int8 activation ranges are calibrated on 64 images chosen at random from the
whole set (calibration sees no labels). The same classifier (standardise + logistic regression) is
cross-validated with the same 5-fold StratifiedGroupKFold split by patient; the unit of analysis is the
image, CIs are clustered by patient (out-of-fold scores pooled over the folds), and the int8 vs fp32
difference is a paired DeLong test on the same out-of-fold images (it ignores the patient clustering:
read its p-value as optimistic).

    python benchmarks/bench_int8_cxr.py            # writes results/int8_cxr.json and .md
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kermany_cxr_pneumonia"


def out_of_fold_scores(X, y, groups, seed=0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    cv = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
    return cross_val_predict(model, X, y, groups=groups, cv=cv, method="decision_function")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--cache", type=Path, default=None, help="directory to keep computed features in")
    parser.add_argument("--resnet50", action="store_true", help="also a ResNet-50 trunk (random weights; slow)")
    args = parser.parse_args(argv)
    if not args.data.exists():
        raise SystemExit(f"dataset not found: {args.data}")

    from medfeat._checks import write_text_atomic
    from medfeat.datasets import load_image_folder
    from medfeat.evaluation import delong_test, roc_report
    from medfeat.features import DeepFeatures

    data = load_image_folder(args.data)
    images = np.stack([np.broadcast_to(im, im.shape[:2] + (3,)) if im.shape[-1] == 1 else im for im in data.images])
    labels = np.asarray(data.labels)
    positive = "PNEUMONIA" if labels.dtype.kind in "OUS" else data.classes.index("PNEUMONIA")
    y = (labels == positive).astype(int)
    assert 0 < y.sum() < len(y), "expected both classes"
    groups = np.asarray(data.groups)
    calib = images[np.random.default_rng(0).choice(len(images), 64, replace=False)]
    load_before = [round(v, 2) for v in os.getloadavg()]
    backbones = {"efficientnet_lite0 (ImageNet)": dict(backbone="efficientnet_lite0")}
    if args.resnet50:
        backbones["resnet50 (random weights)"] = dict(backbone="torchvision:resnet50", weights=None)
    results = {}
    for bname, kw in backbones.items():
        feats = {}
        for name, params in {"eager_fp32": dict(runtime="eager"), "onnx_fp32": dict(runtime="onnx"),
                             "onnx_int8": dict(runtime="onnx", precision="int8")}.items():
            cached = args.cache / f"{kw['backbone'].replace(':', '_')}_{name}.npy" if args.cache else None
            if cached is not None and cached.exists():
                feats[name] = np.load(cached)
                continue
            t0 = time.perf_counter()
            deep = DeepFeatures(**kw, **params).fit(calib)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            feats[name] = deep.transform(images)
            print(f"{bname} {name}: fit {fit_s:.1f} s, transform {time.perf_counter() - t0:.1f} s", flush=True)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.save(cached, feats[name])
        ref = feats["eager_fp32"]
        rows = {}
        scores = {}
        for name, F in feats.items():
            diff = np.abs(F - ref)
            scores[name] = out_of_fold_scores(F, y, groups)
            rep = roc_report(y, scores[name], groups=groups, random_state=0)
            rows[name] = {
                "max_abs_diff": float(diff.max()),
                "max_rel_diff": float(diff.max() / np.abs(ref).max()),
                "median_row_rel_l2": float(np.median(np.linalg.norm(F - ref, axis=1) / np.linalg.norm(ref, axis=1))),
                "auc": float(rep.auc), "auc_ci": [float(v) for v in rep.auc_ci],
            }
        for name in ("onnx_fp32", "onnx_int8"):
            test = delong_test(y, scores[name], scores["eager_fp32"])
            rows[name]["delta_auc_vs_eager_fp32"] = rows[name]["auc"] - rows["eager_fp32"]["auc"]
            rows[name]["delong_p_vs_eager_fp32"] = float(test.p_value)
        results[bname] = rows
        for name, r in rows.items():
            print(f"  {name:11s} AUC {r['auc']:.4f} [{r['auc_ci'][0]:.3f}, {r['auc_ci'][1]:.3f}]  max rel diff "
                  f"{r['max_rel_diff']:.2e}  median row rel L2 {r['median_row_rel_l2']:.2e}", flush=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": "Kermany et al. 2018 paediatric chest X-rays (CC BY 4.0), 720 images, NORMAL vs PNEUMONIA",
        "n_images": int(len(y)), "n_patients": int(len(np.unique(groups))),
        "unit": "image; 5-fold StratifiedGroupKFold by patient; AUC CIs clustered by patient",
        "classifier": "StandardScaler + LogisticRegression(C=0.1)",
        "calibration": "64 images drawn at random (seed 0) from the whole set, no labels",
        "load_before": load_before, "load_after": [round(v, 2) for v in os.getloadavg()],
        "results": results,
    }
    lines = ["## int8 and ONNX Runtime features on Kermany chest X-rays (downstream AUC)", "",
             f"{report['dataset']}, {report['n_patients']} patients. {report['unit']}; {report['classifier']}. "
             f"int8 calibration: {report['calibration']}. The paired DeLong p-value ignores the patient clustering "
             "(optimistic).", "",
             "| backbone | runtime | AUC (95% CI) | ΔAUC vs eager fp32 | DeLong p | max abs diff | max rel diff | median row rel L2 |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for bname, rows in results.items():
        for name, r in rows.items():
            delta = f"{r['delta_auc_vs_eager_fp32']:+.4f}" if "delta_auc_vs_eager_fp32" in r else ""
            p = f"{r['delong_p_vs_eager_fp32']:.3f}" if "delong_p_vs_eager_fp32" in r else ""
            lines.append(f"| {bname} | {name} | {r['auc']:.4f} ({r['auc_ci'][0]:.3f}-{r['auc_ci'][1]:.3f}) | {delta} | {p} | "
                         f"{r['max_abs_diff']:.2e} | {r['max_rel_diff']:.2e} | {r['median_row_rel_l2']:.2e} |")
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "int8_cxr.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(args.out / "int8_cxr.md", "\n".join(lines) + "\n")
    print(f"wrote {args.out / 'int8_cxr.json'} and {args.out / 'int8_cxr.md'}")


if __name__ == "__main__":
    main()
