"""Time to a useful model from scribbles: the U-Net after 60 s of CPU training against a random forest.

The interactive loop's real measure. Both learn from the same scribbles (thin strokes drawn from the
ISBI 2012 ground truth by :mod:`bench.scribbles` on 5 slices, under 5% of their pixels) and are scored
on slices 015-019 by membrane F1 (label value 0) over all pixels:

- ours: ``unet-studio train --preset fast --time-limit 60 --unlabelled 128`` (the real CLI, CPU),
  then prediction of the test slices (``unet-studio predict`` when it exists);
- peer: the ilastik-style random-forest pixel classifier (``skimage.feature.multiscale_basic_features``
  + ``sklearn.ensemble.RandomForestClassifier``) of bench/train_accuracy.py, trained on the same
  scribbles.

Everything here reuses bench/train_accuracy.py (the training issue's accuracy script): its data
preparation, its CLI calls, its prediction and its random forest, so the two benchmarks measure the
same thing. The wall-clock seconds of each are reported beside the F1 (the random forest's include its
feature computation and prediction; ours the CLI start-up, 60 s of training and the prediction).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import BenchResult, Row, ratio

TIME_LIMIT_S = 60.0


def run(quick: bool = False) -> BenchResult:
    import tifffile

    from bench import train_accuracy as ta

    if not (ta.DATA / "images").is_dir():
        raise FileNotFoundError(f"ISBI 2012 data not found at {ta.DATA} (set UNET_STUDIO_DATA)")
    work = Path(tempfile.mkdtemp(prefix="unet-bench-scribbles-"))
    try:
        args = argparse.Namespace(time_limit=TIME_LIMIT_S, preset="fast", seed=0)
        coverage = ta.prepare(work, 0.04, args.seed)
        truth = np.stack([tifffile.imread(ta.DATA / "labels" / f"{name}.tif") for name in ta.TEST])
        use_cli = ta.predict_command_available()

        started = time.perf_counter()
        train_s = ta.train(work / "scribbles" / "images", work / "scribbles" / "labels", work / "model-scribbles",
                           args, ("--unlabelled", str(ta.UNLABELLED)))
        predicted = ta.predict(work / "model-scribbles", work, "scribbles", use_cli)
        ours_s = time.perf_counter() - started
        ours_f1 = ta.membrane_f1(predicted, truth)

        rf_pred, rf_s = ta.random_forest(work, args.seed)
        rf_f1 = ta.membrane_f1(rf_pred, truth)
        history = _history(work / "model-scribbles")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [Row("membrane F1, slices 015-019", ours_f1, rf_f1, ""),
            Row("wall-clock seconds (train + predict)", ours_s, rf_s, "s")]
    notes = [f"scribbles on slices {', '.join(ta.SCRIBBLED)} cover "
             + ", ".join(f"{100 * c:.2f}%" for c in coverage.values()) + " of their pixels",
             f"U-Net: fast preset, --time-limit {TIME_LIMIT_S:g} s on the CPU (CLI wall time {train_s:.0f} s), "
             f"prediction by {'unet-studio predict' if use_cli else 'core.inference.predict_probabilities'}"
             + (f"; {history['steps']} steps" if history.get("steps") else ""),
             "random forest: bench/train_accuracy.random_forest (100 trees, depth 10, features sigma 1-16)"]
    return BenchResult(name="scribbles", peer="random forest pixel classifier (skimage + sklearn)",
                       ratio=ratio(ours_f1, rf_f1), rows=rows,
                       headline={"scribble_f1_60s": ours_f1, "rf_scribble_f1": rf_f1,
                                 "scribble_unet_seconds": ours_s, "rf_seconds": rf_s},
                       figures={"coverage": coverage, "train_cli_seconds": train_s, "history": history},
                       notes=notes)


def _history(model_dir: Path) -> dict:
    """Steps and last history entry of the model folder (best effort; the format is the core's)."""
    try:
        from unet_studio.core.model.checkpoint import read_model_info

        info = read_model_info(model_dir)
        if isinstance(info, tuple):  # (ModelInfo, raw metadata)
            info = info[0]
        last = info.history[-1] if info.history else {}
        return {"steps": info.extra.get("steps"), "best_score": info.best_score, "last": last}
    except Exception as exc:  # noqa: BLE001 - context only
        return {"error": str(exc)}
