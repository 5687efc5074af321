"""The demo's report: patches grouped by slide, slide-level figures, one validation-fixed Youden point,
the CMU heatmap captioned out of domain, FROC from few lesions flagged (a quick run, small slides)."""

import json

import pytest

from medfeat.pipelines import run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    res = run_demo(out, quick=True, progress=False, verbose=False)
    return res, json.loads((out / "report.json").read_text())


def _section(report, kind, contains):
    hits = [s for s in report["sections"] if s["kind"] == kind and contains in (s.get("name") or s.get("title") or "")]
    assert hits, f"no {kind} section containing {contains!r}"
    return hits[0]


@pytest.mark.slow
def test_demo_patch_figures_are_clustered_and_slide_level_is_shown(demo):
    res, report = demo
    for fs in ("deep", "handcrafted"):
        patch = _section(report, "roc", f"{fs}: test slides, patch level")["data"]
        (rep,) = patch.values()
        assert rep["ci_method"].startswith("clustered") and rep["n_groups"] == 6 and rep["unit"] == "patch"
        slide = _section(report, "roc", f"{fs}: test slides, slide level")["data"]
        (srep,) = slide.values()
        assert srep["n_samples"] == 6 and srep["unit"] == "slide"
        assert res.slide_auc[fs] == pytest.approx(srep["auc"])


@pytest.mark.slow
def test_demo_has_one_youden_fixed_on_validation(demo):
    # Misleading point 4: the page showed two "Youden" sensitivities, one re-chosen on the test slides.
    _, report = demo
    table = _section(report, "table", "Deep vs handcrafted")["data"]
    for fs in ("deep", "handcrafted"):
        (patch,) = _section(report, "roc", f"{fs}: test slides, patch level")["data"].values()
        ops = [op for op in patch["operating_points"].values() if "youden" in op["name"]]
        assert len(ops) == 1 and ops[0]["fixed"]
        tab_op = table["reports"][fs]["operating_points"]["youden"]
        assert tab_op["fixed"] and tab_op["threshold"] == pytest.approx(ops[0]["threshold"])
        assert tab_op["sensitivity"] == pytest.approx(ops[0]["sensitivity"])
    assert any("clustered" in n for n in table["notes"])


@pytest.mark.slow
def test_demo_cmu_heatmap_is_captioned_out_of_domain(demo):
    # Misleading point 9: a "P(lesion)" heatmap on the real skin slide from a model of synthetic blobs.
    res, report = demo
    for fs in ("deep", "handcrafted"):
        side = json.loads((res.out_dir / "heatmaps" / f"cmu_small_region_{fs}.png.json").read_text())
        assert "Out of domain" in side["caption"] and "no ground truth" in side["caption"]
        assert "not a probability" in side["score_name"]
        img = _section(report, "image", f"cmu_small_region_{fs}")["data"]
        assert "Out of domain" in img["caption"]
    warnings_text = _section(report, "text", "Warnings")["data"]["text"]
    assert "Only 6 groups" in warnings_text
