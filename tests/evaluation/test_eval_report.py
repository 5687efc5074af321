"""HTML report: self-contained, JSON of every figure; rendered in headless Chromium when available."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from medfeat.evaluation import Report, compare_feature_sets, froc, roc_report


def _real_report(tmp_path):
    """Report from real scores: logistic regression on scikit-learn's bundled breast-cancer data."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    y = 1 - y  # malignant = positive
    Xtr, Xrest, ytr, yrest = train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)
    Xv, Xt, yv, yt = train_test_split(Xrest, yrest, test_size=0.5, random_state=0, stratify=yrest)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05)).fit(Xtr, ytr)
    val = roc_report(yv, model.decision_function(Xv), n_bootstrap=500, random_state=0)
    test = roc_report(yt, model.decision_function(Xt), thresholds=val.thresholds, n_bootstrap=500, random_state=0)
    cmp = compare_feature_sets(
        yt, {"mean radius": Xt[:, 0], "mean texture": Xt[:, 1], "logistic regression": model.decision_function(Xt)},
        n_bootstrap=300, random_state=0,
    )
    mask = np.zeros((100, 100), bool)
    mask[10:60, 10:60] = True
    fr = froc({"t": [[140, 140, 0.9], [700, 700, 0.5]], "n": [[5, 5, 0.4]]}, {"t": mask, "n": None},
              mpp=1.0, mask_downsample=8)
    heat = np.random.default_rng(0).random((30, 40))
    heat[:5] = np.nan
    rep = Report("Breast cancer (Wisconsin) baseline", description="scikit-learn's bundled breast-cancer data")
    rep.add_data_summary(yt, source="sklearn.datasets.load_breast_cancer", split="test half of a 50/25/25 split")
    rep.add_roc("Logistic regression", {"validation": val, "test": test}, caption="test thresholds fixed on validation")
    rep.add_table("Feature sets (Bar et al. style)", cmp)
    rep.add_froc("FROC (synthetic)", fr)
    rep.add_image("Heatmap", heat, "random heatmap; white = no tissue")
    rep.add_text("Thresholds were chosen on the validation quarter.", title="Notes")
    return rep, rep.save(tmp_path / "report.html"), test


def test_report_is_self_contained_with_json(tmp_path):
    from PIL import Image

    rep, paths, test = _real_report(tmp_path)
    png = tmp_path / "thumb.png"
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(png)
    rep.add_image("from file", png)
    paths = rep.save(tmp_path / "report.html")
    text = paths.html.read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"'](?!data:)", text), "external resource in the report"
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text
    assert text.count("data:image/png;base64,") == 4  # ROC, FROC, heatmap, file image
    assert "scikit-learn" in text and "torch" in text and "medfeat" in text
    data = json.loads(paths.json.read_text())
    assert [s["kind"] for s in data["sections"]] == ["data", "roc", "table", "froc", "image", "text", "image"]
    roc = data["sections"][1]["data"]["test"]
    assert roc["auc"] == pytest.approx(test.auc) and roc["operating_points"]["youden"]["fixed"] is True
    assert set(data["versions"]) >= {"medfeat", "torch", "scikit-learn"}
    assert not list(tmp_path.glob(".*.tmp"))  # temporary files renamed
    # Results with to_frame/to_dict go in as tables too (here the multi-class result).
    from medfeat.evaluation import multiclass_roc

    y3 = np.repeat([0, 1, 2], 10)
    mc = multiclass_roc(y3, np.eye(3)[y3] + np.random.default_rng(1).normal(size=(30, 3)), n_bootstrap=50)
    rep.add_table("multi-class", mc)
    assert "macro" in rep.to_html() and rep.to_dict()["sections"][-1]["data"]["macro_auc"] == mc.macro_auc
    with pytest.raises(ValueError, match="does not exist"):
        rep.add_image("missing", tmp_path / "nope.png")
    with pytest.raises(ValueError, match="must end in .html"):
        rep.save(tmp_path / "report.txt")
    with pytest.raises(ValueError, match="ROCReport"):
        rep.add_roc("bad", {"x": 1})


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_chromium() is None, reason="no chromium binary on PATH (Debian: apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    _, paths, _ = _real_report(tmp_path)
    browser = _chromium()
    common = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0",
    ]
    url = paths.html.resolve().as_uri()
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        common + [f"--user-data-dir={tmp_path / 'profile1'}", f"--screenshot={shot}", "--window-size=1200,1600", url],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.is_file(), f"no screenshot; chromium said: {run.stderr[-2000:]}"
    # Page errors (console errors, failed loads) would show up in the log; dbus noise is irrelevant.
    bad = [ln for ln in run.stderr.splitlines() if "CONSOLE" in ln or "net::ERR" in ln or "Uncaught" in ln]
    assert not bad, bad
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (1600, 1200)
    non_white = np.any(img < 245, axis=2).mean()
    assert non_white > 0.03, f"screenshot almost blank ({non_white:.1%} non-white pixels)"
    # The ROC curves are drawn in matplotlib's first colours (tab:blue #1f77b4, tab:orange #ff7f0e):
    # they appear only if the embedded PNG plot was decoded and shown.
    blue = np.all(np.abs(img - [31, 119, 180]) < 30, axis=2).sum()
    orange = np.all(np.abs(img - [255, 127, 14]) < 30, axis=2).sum()
    assert blue > 200 and orange > 200, (blue, orange)
    dom = subprocess.run(
        common + [f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    ).stdout
    assert "<table" in dom and "Operating points: test" in dom and "AUC (95% CI)" in dom
    assert dom.count("<img") == 3
