"""Smoke tests of the benchmark runner (bench/): argument parsing, JSON writing, failure isolation, and
one step of the plain PyTorch baseline loop. Fast (a few seconds); the real benchmarks are `python -m bench`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench  # noqa: E402
from bench import __main__ as runner  # noqa: E402


def test_parse_args_defaults_and_only():
    args = runner.parse_args([])
    assert args.names == list(bench.BENCHMARKS) and not args.quick and args.json is None
    args = runner.parse_args(["--quick", "--only", "train, infer", "--json", "r.json"])
    assert args.quick and args.names == ["train", "infer"] and args.json == "r.json"


def test_parse_args_rejects_unknown_names(capsys):
    with pytest.raises(SystemExit):
        runner.parse_args(["--only", "nonesuch"])
    assert "unknown benchmark" in capsys.readouterr().err


def test_headline_keys_have_targets_or_are_context():
    for key in bench.TARGETS:
        assert key in bench.HEADLINE_KEYS
    assert bench.check_target("scribble_f1_60s", {"scribble_f1_60s": 0.8, "rf_scribble_f1": 0.7}) is True
    assert bench.check_target("paint_dab_ms_8192", {"paint_dab_ms_8192": 7.0}) is False
    assert bench.check_target("cold_start_s", {}) is None


def test_in_process_run_writes_json_and_isolates_failures(tmp_path, monkeypatch, capsys):
    def fake(quick=False):
        return bench.BenchResult(name="fake", peer="a peer", ratio=2.0,
                                 rows=[bench.Row("speed", 2.0, 1.0, "it/s")],
                                 headline={"train_speedup_vs_plain": 2.0, "cold_start_s": 1.0},
                                 figures={"quick": quick}, notes=["a note"])

    def broken(quick=False):
        raise ValueError("boom")

    monkeypatch.setitem(bench.HIDDEN, "fake", "tests.fake:fake")
    monkeypatch.setitem(bench.HIDDEN, "broken", "tests.fake:broken")
    registry = {"tests.fake:fake": fake, "tests.fake:broken": broken}
    monkeypatch.setattr(runner, "resolve", lambda spec: registry[spec])
    out = tmp_path / "r.json"
    status = runner.main(["--quick", "--in-process", "--only", "broken,fake", "--json", str(out)])
    assert status == 1  # one failed
    report = json.loads(out.read_text())
    assert report["quick"] is True
    assert report["train_speedup_vs_plain"] == 2.0 and report["cold_start_s"] == 1.0
    assert report["infer_speedup_vs_monai"] is None  # headline keys are always there
    assert report["targets"]["train_speedup_vs_plain"]["met"] is True
    assert report["targets"]["cold_start_s"]["met"] is True
    assert report["benchmarks"]["broken"]["ok"] is False and "boom" in report["benchmarks"]["broken"]["error"]
    assert report["benchmarks"]["fake"]["figures"] == {"quick": True}
    for key in ("date", "machine", "loadavg_start", "loadavg_end"):
        assert key in report
    assert {"cpu", "cores", "device"} <= set(report["machine"])
    printed = capsys.readouterr().out
    assert "2.00x vs a peer" in printed and "FAILED" in printed


def test_child_process_runner(tmp_path):
    """The default mode: each benchmark in a child process (the self-test benchmarks: no torch, no Qt)."""
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "selftest,selftest_fail",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["benchmarks"]["selftest"]["ok"] is True
    assert report["benchmarks"]["selftest"]["ratio"] > 0
    assert report["benchmarks"]["selftest_fail"]["ok"] is False
    assert "always fails" in report["benchmarks"]["selftest_fail"]["error"]


def test_plain_baseline_loop_runs_one_step():
    pytest.importorskip("torch")
    from bench.bench_train import plain_augment, plain_loop
    from unet_studio.core.config import ModelConfig

    rng = np.random.default_rng(0)
    image = rng.random((32, 32), dtype=np.float32)
    label = (image > 0.5).astype(np.int64)
    out_image, out_label = plain_augment(image, label, rng)
    assert out_image.shape == (32, 32) and out_image.dtype == np.float32
    assert set(np.unique(out_label)) <= {0, 1}

    images = [rng.random((1, 48, 48), dtype=np.float32) for _ in range(2)]
    labels = [rng.integers(1, 3, (48, 48)) for _ in range(2)]
    config = ModelConfig(in_channels=1, n_classes=2, base_channels=4, depth=2, norm="batch")
    loop = plain_loop(images, labels, config, patch=32, batch=2)
    try:
        loss = next(loop)
    finally:
        loop.close()
    assert np.isfinite(loss)
