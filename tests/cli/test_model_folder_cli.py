"""Hostile model folders through the real ``unet-studio predict`` (issue 13, cases 12, 14, 15, 21).

Each runs in a fresh interpreter, as a person would run it: one line on stderr naming the file and what is
wrong, exit status 2, no traceback, no hang, and nothing written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from unet_studio.core.model import ModelInfo, UNet, save_model

META = "model.json"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    tifffile.imwrite(folder / "a.tif", (np.random.default_rng(0).random((32, 32)) * 1000).astype(np.uint16))
    return folder


def _model(folder: Path, weights_change=None) -> dict:
    torch.manual_seed(0)
    net = UNet(base_channels=4, depth=2, norm="batch")
    if weights_change is not None:
        with torch.no_grad():
            weights_change(net)
    save_model(folder, net, ModelInfo(net.config, [0, 255], ["background", "foreground"]))
    return json.loads((folder / META).read_text())


def _edit(folder: Path, change) -> Path:
    meta = _model(folder)
    change(meta)
    (folder / META).write_text(json.dumps(meta))
    return folder / META


def _fifo_weights(folder: Path) -> Path:
    meta = _model(folder)
    weights = folder / meta["weights"]
    weights.unlink()
    os.mkfifo(weights)
    return weights


def _nan_weights(folder: Path) -> Path:
    meta = _model(folder, lambda net: net.head.weight.fill_(float("nan")))
    return folder / meta["weights"]


CASES = {
    "weights are a FIFO": (_fifo_weights, "is not a regular file"),
    "base_channels 8192": (lambda d: _edit(d, lambda m: m["model_config"].update(base_channels=8192)),
                           "model_config.base_channels must be between 1 and 4096"),
    "in_channels 1e9": (lambda d: _edit(d, lambda m: m["model_config"].update(in_channels=1e9)),
                        "model_config.in_channels must be a whole number"),
    "class value 2**70": (lambda d: _edit(d, lambda m: m.update(class_values=[0, 2**70])), "class_values"),
    "low 99 high 1": (lambda d: _edit(d, lambda m: m.update(normalization={"method": "percentile", "low": 99,
                                                                           "high": 1})),
                      r"normalization.low \(99\) must be below normalization.high \(1\)"),
    "NaN weights": (_nan_weights, "NaN or infinite weights"),
}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX feature")
@pytest.mark.parametrize("case", list(CASES))
def test_predict_refuses_a_hostile_model_folder_with_one_line(tmp_path, images, case):
    make, message = CASES[case]
    folder = tmp_path / "model"
    blamed = make(folder)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "unet_studio", "predict", "--model", str(folder),
                             "--images", str(images), "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("unet-studio predict: error:")]
    assert len(lines) == 1, result.stderr
    assert re.search(message, lines[0]) and str(blamed) in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir())

