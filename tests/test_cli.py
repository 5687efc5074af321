"""The `medfeat` command, run in subprocesses: help, one-line errors, extract -> train -> heatmap -> evaluate."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medfeat.classifiers import list_classifiers
from medfeat.cli import build_parser, main
from medfeat.slides import annotations_to_geojson, read_annotations, write_synthetic_slide

SUBCOMMANDS = ["backbones", "layers", "extract", "train", "heatmap", "evaluate", "compare", "demo"]


def run(*args, cwd):
    proc = subprocess.run([sys.executable, "-m", "medfeat.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def _circle(cx, cy, r, n=48):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(a), cy + r * np.sin(a)])


def assert_one_line_error(rc, err, *needles):
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("medfeat: error: ") and "Traceback" not in err
    for n in needles:
        assert n in lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "slides").mkdir()
    (d / "ann").mkdir()
    lesions = {"a": [_circle(330, 330, 110), _circle(700, 760, 100)], "b": [_circle(720, 300, 110)]}
    for i, (name, polys) in enumerate(lesions.items()):
        s = write_synthetic_slide(d / "slides" / f"{name}.tif", size=(1024, 1024), mpp=0.5, lesions=polys, seed=i,
                                  tissue_fraction=0.6)
        annotations_to_geojson(s.lesions, d / "ann" / f"{name}.geojson")
    (d / "slides" / "broken.svs").write_text("this is not a slide")
    return d


def test_help_of_every_subcommand(capsys, tmp_path):
    rc, out, _ = run("--help", cwd=tmp_path)
    assert rc == 0 and all(s in out for s in SUBCOMMANDS)
    for sub in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([sub, "--help"])
        assert exc.value.code == 0
        assert f"usage: medfeat {sub}" in capsys.readouterr().out
    assert build_parser().parse_args(["extract", "x.svs", "--out", "o"]).mpp == 0.5


def test_bad_input_gives_one_line_errors(data, tmp_path, capsys):
    rc, _, err = run("extract", "missing.svs", "--out", tmp_path / "f", cwd=tmp_path)
    assert_one_line_error(rc, err, "missing.svs")
    rc, _, err = run("extract", cwd=tmp_path)  # usage error
    assert rc == 2
    assert_one_line_error(rc, err, "--out")
    # the same error path in-process (cheaper than more subprocesses)
    rc = main(["heatmap", str(tmp_path / "nomodel.skops"), str(data / "slides" / "a.tif"), "--out", str(tmp_path)])
    assert_one_line_error(rc, capsys.readouterr().err, "nomodel.skops")
    (tmp_path / "p.csv").write_text("a,b\n1,2\n")
    rc = main(["evaluate", str(tmp_path / "p.csv"), "--out", str(tmp_path / "r.html")])
    assert_one_line_error(rc, capsys.readouterr().err, "y_true")


def test_empty_tissue_slide_is_reported(tmp_path):
    Image.fromarray(np.full((512, 512, 3), 243, np.uint8)).save(tmp_path / "blank.png")
    rc, _, err = run("extract", "blank.png", "--out", "f", "--slide-mpp", "0.5", "--features", "color",
                     "--quiet", cwd=tmp_path)
    assert rc == 1
    assert "blank.png" in err and "no patch" in err and "Traceback" not in err


def test_extract_train_heatmap_evaluate(data, tmp_path):
    slides = data / "slides"
    common = ["--mpp", "1", "--size", "32", "--tissue", "gray", "--quiet"]
    # an unreadable slide among good ones: reported and skipped, the others finish, exit code 1
    rc, out, err = run("extract", slides / "a.tif", slides / "broken.svs", slides / "b.tif", "--out", "feats",
                       "--features", "color", "--annotations", data / "ann", *common, cwd=tmp_path)
    assert rc == 1, err
    assert "skipped" in err and "broken.svs" in err and "1 of 3 slides failed" in err
    assert (tmp_path / "feats" / "a.h5").exists() and (tmp_path / "feats" / "b.h5").exists()

    rc, out, err = run("train", "feats", "--annotations", data / "ann", "--classifier", "logreg", "--out",
                       "model.skops", cwd=tmp_path)
    assert rc == 0, err
    assert "model written to" in out and (tmp_path / "model.skops").exists()

    rc, out, err = run("heatmap", "model.skops", slides / "b.tif", "--out", "hm", "--quiet", cwd=tmp_path)
    assert rc == 0, err
    for ext in (".png", ".geojson", ".npy"):
        assert (tmp_path / "hm" / f"b{ext}").exists()
    scores = pd.read_csv(tmp_path / "hm" / "b_scores.csv")
    assert list(scores.columns) == ["x", "y", "score", "group"] and scores["score"].between(0, 1).all()
    assert json.loads((tmp_path / "hm" / "b.npy.json").read_text())["mpp"] == 1.0
    regions = read_annotations(tmp_path / "hm" / "b.geojson")
    assert len(regions) >= 1  # the planted lesion of b is found
    arr = np.load(tmp_path / "hm" / "b.npy")
    assert arr.shape == (16, 16) and np.isfinite(arr).sum() == len(scores)

    # evaluate the heatmap scores against labels from the annotation (patch centre inside the lesion)
    import shapely

    lesion = shapely.Polygon(_circle(720, 300, 110))
    y = shapely.contains_xy(lesion, scores["x"] + 32, scores["y"] + 32).astype(int)
    pd.DataFrame({"y_true": y, "y_score": scores["score"]}).to_csv(tmp_path / "pred.csv", index=False)
    rc, out, err = run("evaluate", "pred.csv", "--out", "report.html", "--n-bootstrap", "200", cwd=tmp_path)
    assert rc == 0, err
    assert (tmp_path / "report.html").exists()
    figures = json.loads((tmp_path / "report.json").read_text())
    assert "AUC" in out or "auc" in out.lower()
    assert figures

    # single-class labels: one-line error, non-zero exit
    pd.DataFrame({"slide": ["a", "b"], "label": [0, 0]}).to_csv(tmp_path / "one.csv", index=False)
    rc, _, err = run("train", "feats", "--labels", "one.csv", "--out", "m2.skops", cwd=tmp_path)
    assert_one_line_error(rc, err, "single class")


def test_backbones_lists_the_offline_default(capsys):
    # in-process: the subcommand imports torchvision, which other test files import in this process anyway
    assert main(["backbones"]) == 0
    assert "efficientnet_lite0" in capsys.readouterr().out.split()
    assert main(["layers", "no_such_backbone", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("medfeat: error: ") and "no_such_backbone" in err[0]


def test_compare_on_a_tiny_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls, level in (("dark", 70), ("bright", 180)):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            img = np.clip(rng.normal(level, 25, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / "imgs" / cls / f"{i}.png")
    rc, _, err = run("compare", "imgs", "--out", "cmp", "--feature-sets", "color", "--classifiers", "logreg",
                       "--cv", "3", "--n-bootstrap", "0", "--quiet", cwd=tmp_path)
    assert rc == 0, err
    assert (tmp_path / "cmp" / "report.html").exists() and (tmp_path / "cmp" / "table.md").exists()
    rc, _, err = run("compare", "no_such_dir", "--out", "cmp2", cwd=tmp_path)
    assert_one_line_error(rc, err, "no_such_dir")


def test_train_classifier_choices_are_the_presets():
    # The CLI spells the names out (importing medfeat.classifiers pulls in scikit-learn and would slow
    # `medfeat --help`), so this keeps them in step with make_classifier.
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices["train"]._actions if a.dest == "classifier")
    assert list(action.choices) == list_classifiers()


@pytest.mark.parametrize("value, expected", [(None, None), ("native", None), ("auto", "auto"), ("96", 96)])
def test_extract_input_size_defaults_to_the_patch_size(value, expected):
    from medfeat.cli import _features_from_args

    argv = ["extract", "s.svs", "--out", "o"] + ([] if value is None else ["--input-size", value])
    transformer = _features_from_args(build_parser().parse_args(argv))
    assert transformer.get_params()["input_size"] == expected
