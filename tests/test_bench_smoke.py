"""Smoke tests of the benchmark runner (bench/): argument parsing, JSON writing, failure isolation, and
one step of the plain PyTorch baseline loop. Fast (a few seconds); the real benchmarks are `python -m bench`."""

from __future__ import annotations

import collections
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


# ----------------------------------------------------------------------------------------------- soak


def _cheap_probes(monkeypatch):
    """Fixed figures instead of the soak's memory probes (which walk every Python object)."""
    from bench import soak_worker

    figures = {"rss_mb": 100.0, "anon_mb": 50.0, "hwm_mb": 100.0, "threads": 1, "py_threads": 1, "fds": 3,
               "py_objects": 10}
    monkeypatch.setattr(soak_worker, "probe", lambda: dict(figures))
    monkeypatch.setattr(soak_worker, "type_counts", collections.Counter)
    monkeypatch.setattr(soak_worker, "trimmed_rss", lambda: None)


def _soak_data_or_skip():
    pytest.importorskip("torch")
    if not (bench.data_dir() / "isbi2012" / "images").is_dir():
        pytest.skip(f"ISBI 2012 data not found under {bench.data_dir()}")


def test_soak_is_opt_in_and_registered():
    args = runner.parse_args(["--only", "soak"])
    assert args.names == ["soak"]
    assert "soak" not in runner.parse_args([]).names and "soak" not in runner.parse_args(["--quick"]).names
    assert "soak" in runner.TIME_LIMITS


def test_soak_runs_cycles_and_reports_growth_in_process():
    """Two cycles of each side (tiny network, one predicted image) in this process: growth, no failure."""
    _soak_data_or_skip()
    from bench.soak import soak, to_result
    from bench.soak_cycles import SoakSettings

    settings = SoakSettings(train_seconds=0.3, train_slices=(0, 1), predict_slices=(15,), mosaic=0, strokes=2,
                            tiny=True, threads=1, preview_every=2, eval_every=3)
    report = soak(settings, 0, cycles=2, warmup=0, in_process=True, log=lambda text: None)
    result = to_result(report)
    ours, peer = report["summaries"]["ours"], report["summaries"]["plain"]
    assert ours["failures"] == 0 and peer["failures"] == 0, ours["failure_list"] + peer["failure_list"]
    assert ours["cycles"] == 2 and peer["cycles"] == 2
    assert ours["rss_mb"]["start"] > 0 and ours["rss_mb"]["growth_pct"] is not None
    assert result.headline["soak_failures"] == 0
    assert result.headline["soak_memory_growth_pct"] == ours["rss_mb"]["growth_pct"]
    assert result.ratio is not None and result.ratio > 0
    assert "object_growth" in report["diagnostics"]["ours"]
    assert any(row.what.startswith("RSS growth") for row in result.rows)


def test_soak_counts_a_failing_cycle_and_goes_on(monkeypatch):
    from bench import soak as soak_module
    from bench import soak_worker
    from bench.soak_cycles import SoakSettings

    calls = []

    class FakeSession:
        def __init__(self, side):
            self.side = side

        def cycle(self, index):
            if self.side == "plain":
                calls.append(index)
                if index == 1:
                    raise RuntimeError("boom in cycle 1")
            return {"steps": 1}

        def close(self):
            pass

    monkeypatch.setattr(soak_worker, "make_session", lambda side, settings, workdir: FakeSession(side))
    _cheap_probes(monkeypatch)
    report = soak_module.soak(SoakSettings(), 0, cycles=3, warmup=0, in_process=True, log=lambda text: None)
    plain = report["summaries"]["plain"]
    assert calls == [0, 1, 2] and plain["failures"] == 1
    assert "boom in cycle 1" in plain["failure_list"][0]["error"]
    assert "Traceback" in plain["failure_list"][0]["traceback"]
    assert report["summaries"]["ours"]["failures"] == 0


def test_soak_growth_is_median_of_first_and_last_cycles():
    from bench.soak import growth_window, summarise

    assert [growth_window(n) for n in (1, 3, 8, 40)] == [1, 1, 2, 5]
    samples = [{"ok": True, "t": float(i), "seconds": 1.0, "stats": {"steps": 3},
                "probe": {"rss_mb": rss, "anon_mb": rss / 2, "fds": 5, "threads": 3, "py_objects": 100}}
               for i, rss in enumerate([500, 100, 102, 98, 100, 104, 106, 104, 150, 105])]
    summary = summarise(samples, warmup=2)  # 8 counted: window 2, start median(102, 98), end median(150, 105)
    assert summary["cycles"] == 8 and summary["window"] == 2
    assert summary["rss_mb"]["start"] == 100 and summary["rss_mb"]["end"] == 127.5
    assert summary["rss_mb"]["growth_pct"] == pytest.approx(27.5)
    assert summary["fds"]["change"] == 0


@pytest.mark.slow
def test_soak_command_line_with_child_processes(tmp_path):
    """The default mode: each side in its own child process, through the command line, with --json."""
    _soak_data_or_skip()
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, "bench/soak.py", "--tiny", "--no-mosaic", "--cycles", "2", "--warmup", "1",
                           "--train-seconds", "0.5", "--threads", "1", "--quiet", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["soak_failures"] == 0 and report["soak_memory_growth_pct"] is not None
    assert report["benchmarks"]["soak"]["figures"]["summaries"]["plain"]["cycles"] == 2
    assert "vs plain PyTorch loop" in proc.stdout


def test_soak_reports_a_side_that_cannot_start(monkeypatch):
    from bench import soak_worker
    from bench.soak import soak, to_result
    from bench.soak_cycles import SoakSettings

    class FakeSession:
        def cycle(self, index):
            return {"steps": 1}

        def close(self):
            pass

    def make(side, settings, workdir):
        if side == "ours":
            raise OSError("no such file: model.json")
        return FakeSession()

    monkeypatch.setattr(soak_worker, "make_session", make)
    _cheap_probes(monkeypatch)
    report = soak(SoakSettings(), 0, cycles=2, warmup=0, in_process=True, log=lambda text: None)
    ours = report["summaries"]["ours"]
    assert ours["failures"] == 1 and "no such file" in ours["stopped"] and ours["cycles"] == 0
    assert report["summaries"]["plain"]["cycles"] == 2
    result = to_result(report)
    assert result.headline["soak_failures"] == 1 and result.headline["soak_memory_growth_pct"] is None


def test_generalization_metrics_and_splits():
    """bench/metrics.py on two touching discs (matched, split, merged: exact DSB AP values), and the
    generalisation benchmark's fixed splits: train and test disjoint, folds covering dsb2018 once."""
    from bench import forest, generalization
    from bench.metrics import DSB_THRESHOLDS, average_precision, match_objects, mean_average_precision, pixel_f1

    yy, xx = np.mgrid[:64, :96]
    disc_a = (yy - 32) ** 2 + (xx - 30) ** 2 <= 12 ** 2
    disc_b = (yy - 32) ** 2 + (xx - 55) ** 2 <= 12 ** 2  # the same disc shifted: equal areas, touching
    assert not (disc_a & disc_b).any() and (disc_a[:, 42] & disc_b[:, 43]).any()
    truth = disc_a * 1 + disc_b * 2
    assert list(average_precision(disc_a * 9 + disc_b * 4, truth)) == [1.0] * 10  # matched, ids with gaps
    merged = (truth > 0).astype(np.int32)  # IoU with either disc exactly 0.5: not a match
    assert list(average_precision(merged, truth)) == [0.0] * 10 and match_objects(merged, truth) == (0, 1, 2)
    split = truth.copy()
    split[disc_a & (xx >= 35)] = 3  # disc A cut into a large left part (id 1) and a small right part
    share = (disc_a & (xx < 35)).sum() / disc_a.sum()
    assert 0.5 < share < 0.95 and match_objects(split, truth, 0.5) == (2, 1, 0)
    expected = [2 / 3 if share > t else 1 / 4 for t in DSB_THRESHOLDS]  # TP/(TP+FP+FN): 2/(2+1+0), 1/(1+2+1)
    assert np.allclose(average_precision(split, truth), expected) and expected[0] == 2 / 3 and expected[-1] == 1 / 4
    assert list(mean_average_precision([truth, merged], [truth, truth])) == [0.5] * 10
    empty = np.zeros_like(truth)
    assert average_precision(empty, empty)[0] == 1.0 and average_precision(empty, truth)[0] == 0.0
    assert pixel_f1(merged > 0, truth > 0) == 1.0 and pixel_f1(disc_a, truth > 0) == 2 / 3
    assert pixel_f1(empty > 0, empty > 0) == 1.0
    speck = disc_a.copy()
    speck[0:2, 0:2] = True  # 4 pixels: under the forest's minimum object size
    assert forest.objects(speck).max() == 1 and (forest.objects(speck) == 1).sum() == disc_a.sum()

    isbi_train, isbi_test = generalization.isbi_split()
    assert not set(isbi_train) & set(isbi_test) and len(isbi_test) == 10
    tests = []
    for fold in range(3):
        train, test = generalization.dsb_split(fold)
        assert not set(train) & set(test) and len(train) == 40 and len(test) == 20
        tests += test
    assert sorted(tests) == generalization.names(0, 60)  # each image is tested in exactly one fold
    for test_set in generalization.plan(generalization.DATASETS, (0, 1, 2)):
        if test_set.folder == test_set.training.folder:
            assert not set(test_set.stems) & set(test_set.training.stems), test_set
    for split in ("validation", "validation2"):  # inside the training split: never a test image
        for test_set in generalization.plan(generalization.DATASETS, (0, 1, 2), split):
            fold = int(test_set.split.split()[1]) if test_set.dataset.startswith("dsb") else None
            held_out = generalization.dsb_split(fold)[1] if fold is not None else isbi_test
            assert not set(test_set.stems) & set(held_out) and not set(test_set.training.stems) & set(held_out)
            assert not set(test_set.stems) & set(test_set.training.stems), test_set
    first, second = (generalization.plan(["dsb_scribbles"], (0,), split)[0] for split in ("validation", "validation2"))
    assert not set(first.stems) & set(second.stems) and first.training.mode == "scribbles"
    assert "generalization" in bench.OPT_IN and "generalization" in runner.TIME_LIMITS
    args = generalization.parse_args(["--predict-args=--tta", "--train-args", "--set weight_average=0.99"])
    assert args.predict_args == "--tta" and args.train_args == "--set weight_average=0.99"
    assert "generalization" not in runner.parse_args(["--quick"]).names


def test_nuclei_scribbles_lie_inside_the_nuclei_and_away_from_them(tmp_path):
    import tifffile
    from scipy import ndimage

    from bench import generalization

    yy, xx = np.mgrid[:128, :128]
    instances = np.zeros((128, 128), np.uint16)
    for index, (y, x) in enumerate([(30, 30), (30, 90), (90, 40), (95, 100)], start=1):
        instances[(yy - y) ** 2 + (xx - x) ** 2 <= 12 ** 2] = index
    (tmp_path / "dsb2018" / "labels").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "dsb2018" / "labels" / "020.tif", instances)
    training = generalization.Training("dsb_scribbles_f0", "dsb2018", ("020",), "scribbles")
    strokes = generalization.training_labels(training, tmp_path, "020", 0)
    nuclei, unlabelled = instances > 0, strokes == generalization.UNLABELLED
    inner = ndimage.binary_erosion(nuclei, iterations=generalization.NUCLEUS_EROSION)
    assert (strokes == generalization.FOREGROUND).any() and (strokes == 0).any()
    assert np.all(inner[strokes == generalization.FOREGROUND])  # nucleus strokes keep off the outlines
    assert not np.any(nuclei[strokes == 0])  # background strokes never touch a nucleus
    assert unlabelled.mean() > 0.9  # a few per cent of the pixels are labelled


def test_outline_errors_tell_outlines_off_by_a_pixel_from_missed_and_spurious_objects(tmp_path):
    import tifffile
    from scipy import ndimage

    from bench import generalization, outline_errors

    yy, xx = np.mgrid[:96, :96]
    truth = np.zeros((96, 96), np.uint16)
    for index, (y, x) in enumerate([(24, 24), (24, 70), (70, 30)], start=1):
        truth[(yy - y) ** 2 + (xx - x) ** 2 <= 9 ** 2] = index
    nuclei = truth > 0
    wide = ndimage.binary_dilation(nuclei)  # every outline one pixel too far out
    counts = outline_errors.split_errors(wide, nuclei)
    assert counts["wide"] == (wide & ~nuclei).sum() > 0
    assert counts["spurious"] == counts["tight"] == counts["missed"] == 0
    blob = (yy - 75) ** 2 + (xx - 75) ** 2 <= 4 ** 2  # a spurious object, the third nucleus missed
    other = (nuclei & (truth != 3)) | blob
    counts = outline_errors.split_errors(other, nuclei)
    assert counts["spurious"] == blob.sum() and counts["wide"] == 0
    assert counts["tight"] + counts["missed"] == (truth == 3).sum() and counts["missed"] > counts["tight"]

    (tmp_path / "truth").mkdir()
    tifffile.imwrite(tmp_path / "truth" / "000.tif", truth)
    test = generalization.TestSet("dsb_scribbles", "fold 0", "dsb2018", ("000",),
                                  generalization.Training("dsb_scribbles_f0", "dsb2018", ("001",), "scribbles"),
                                  "foreground")
    generalization.save_labels(tmp_path, test.training, test, {0: [np.where(wide, 255, 0)]})
    folder = tmp_path / "forest-dsb_scribbles_f0-dsb_scribbles-seed0"
    report = outline_errors.measure([folder], tmp_path / "truth")[str(folder)]
    assert report["images"] == 1 and report["f1"] < 0.95
    assert report["f1_outlines_right"] == 1.0 and report["f1_shrunk_1px"] == 1.0
    assert 1.0 <= report["shift_px"] < 1.5 and report["f1_grown_1px"] < report["f1"]
    assert outline_errors.main([str(folder), "--truth", str(tmp_path / "truth"), "--json",
                                str(tmp_path / "r.json")]) == 0
    assert outline_errors.main([str(folder), "--truth", str(tmp_path / "nowhere")]) == 2
