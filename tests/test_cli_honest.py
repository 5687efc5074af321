"""CLI polish from the review: --weights PATH|none, backbones PATTERN, every default in --help, a closed pipe."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medfeat.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ("--tissue {otsu,gray,none} tissue detection (none: every patch) (default: otsu)",
                 "--min-tissue MIN_TISSUE minimum tissue fraction of a patch (default: 0.5)",
                 "--batch-size BATCH_SIZE patches per batch, read together and passed through the CNN together "
                 "(default: 64)", "(default: default)"):
        assert text in out


def test_backbones_pattern_and_closed_pipe(capsys):
    assert main(["backbones", "lite"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("efficientnet_lite0") and "offline" in out[0]
    assert all("lite" in line.split("\t")[0] for line in out)
    assert main(["backbones", "no-such-backbone"]) == 1
    # `medfeat backbones | head -1`: the reader closes the pipe early; no traceback, no error line
    proc = subprocess.run(f"{sys.executable} -m medfeat.cli backbones | head -1", shell=True, capture_output=True,
                          text=True, env=ENV, timeout=300)
    assert proc.stdout.startswith("efficientnet_lite0")
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr


def test_extract_with_random_or_local_weights(tmp_path, capsys):
    import torch
    import torchvision

    from medfeat.pipelines import load_slide_features
    from medfeat.slides import write_synthetic_slide

    s = write_synthetic_slide(tmp_path / "s.tif", size=(512, 512), mpp=1.0, lesions=0, seed=0)
    common = ["extract", str(s.path), "--features", "deep", "--backbone", "torchvision:resnet18", "--mpp", "1",
              "--size", "64", "--tissue", "none", "--quiet"]
    assert main(common + ["--out", str(tmp_path / "rand"), "--weights", "none"]) == 0
    ckpt = tmp_path / "r18.pth"
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), ckpt)
    assert main(common + ["--out", str(tmp_path / "ckpt"), "--weights", str(ckpt)]) == 0
    _, a, _, _ = load_slide_features(tmp_path / "rand" / "s.h5")
    _, b, _, _ = load_slide_features(tmp_path / "ckpt" / "s.h5")
    assert a.shape == b.shape == (64, 512) and not np.allclose(a, b)  # different weights, different features
    assert main(common + ["--out", str(tmp_path / "x"), "--weights", str(tmp_path / "missing.pth")]) == 1
    assert "missing.pth" in capsys.readouterr().err


def test_workflow_subcommands_exist():
    sub = build_parser()._subparsers._group_actions[0].choices
    assert {"froc", "predict", "evaluate", "heatmap"} <= set(sub)


def test_layers_show_channels_and_stride(capsys):
    # ResNet-18 (He et al. 2016): layer1..layer4 have 64, 128, 256, 512 channels at strides 4, 8, 16, 32
    assert main(["layers", "torchvision:resnet18"]) == 0
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert [rows[f"layer{i}"] for i in range(1, 5)] == [["64", "4"], ["128", "8"], ["256", "16"], ["512", "32"]]
    assert rows["fc"] == ["1000", "-"]
