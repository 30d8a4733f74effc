"""Accuracy of ``unet-studio train`` on real data (issue 3), against an ilastik-style random forest.

Trains on ISBI 2012 slices 000-014 with ``unet-studio train --preset fast --time-limit 300`` (the real
CLI, in a subprocess, CPU only), once from the dense masks and once from scribbles only (thin strokes
on 5 slices, see :mod:`bench.scribbles`), predicts slices 015-019 and scores the membrane class (label
value 0) by F1 over all their pixels, three ways: plain argmax (``--thresholds 0,0``), the threshold the
model chose on its validation data (``unet-studio predict``'s default), and that with test-time
augmentation (``--tta``). The baseline is a scikit-image random-forest pixel classifier
(``multiscale_basic_features`` + ``RandomForestClassifier``) trained on the same scribbles.

Run from the repository root::

    python bench/train_accuracy.py                       # about 13 minutes on a 2-core CPU
    python bench/train_accuracy.py --time-limit 60 --skip-dense   # a quicker look

Prediction uses ``unet-studio predict`` when that command exists, else
:func:`unet_studio.core.predict.tiled.predict_probabilities` in this process; the table says which.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scribbles import UNLABELLED, scribble_labels  # noqa: E402

DATA = Path(os.environ.get("UNET_STUDIO_DATA", ROOT.parent / "shared" / "data")) / "isbi2012"
TRAIN = [f"{i:03d}" for i in range(15)]
TEST = [f"{i:03d}" for i in range(15, 20)]
SCRIBBLED = ["000", "003", "006", "009", "012"]  # 5 slices spread over the training range
MEMBRANE = 0


def membrane_f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    """F1 of the membrane class (value 0) over all pixels of the stacks."""
    p, t = predicted == MEMBRANE, truth == MEMBRANE
    tp = np.logical_and(p, t).sum()
    return float(2 * tp / (p.sum() + t.sum())) if p.sum() + t.sum() else 1.0


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def prepare(work: Path, fraction: float, seed: int) -> dict[str, float]:
    """Folders for the dense and the scribble runs and the test images; return scribble coverage."""
    for name in TRAIN:
        _link(DATA / "images" / f"{name}.tif", work / "dense" / "images" / f"{name}.tif")
        _link(DATA / "labels" / f"{name}.tif", work / "dense" / "labels" / f"{name}.tif")
    coverage = {}
    (work / "scribbles" / "labels").mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(SCRIBBLED):
        _link(DATA / "images" / f"{name}.tif", work / "scribbles" / "images" / f"{name}.tif")
        sparse = scribble_labels(tifffile.imread(DATA / "labels" / f"{name}.tif"), fraction=fraction, seed=seed + k)
        tifffile.imwrite(work / "scribbles" / "labels" / f"{name}.tif", sparse)
        coverage[name] = float((sparse != UNLABELLED).mean())
    for name in TEST:
        _link(DATA / "images" / f"{name}.tif", work / "test" / "images" / f"{name}.tif")
    return coverage


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "unet_studio", *args]


def train(images: Path, labels: Path, out: Path, args, extra=()) -> float:
    command = cli("train", "--images", str(images), "--labels", str(labels), "--out", str(out),
                  "--preset", args.preset, "--time-limit", str(args.time_limit), "--seed", str(args.seed),
                  "--device", "cpu", *extra)
    print("$", " ".join(command[2:]).replace(str(ROOT) + "/", ""), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return time.perf_counter() - started


def predict_command_available() -> bool:
    result = subprocess.run(cli("predict", "--help"), capture_output=True, text=True, cwd=ROOT)
    return result.returncode == 0


def predict(model: Path, work: Path, name: str, use_cli: bool, extra=()) -> np.ndarray:
    """Predicted label images (values of the model's classes) of the test slices, stacked."""
    out = work / f"pred-{name}"
    if use_cli:
        out.mkdir(exist_ok=True)
        command = cli("predict", "--model", str(model), "--images", str(work / "test" / "images"),
                      "--out", str(out), *extra)
        subprocess.run(command, check=True, cwd=ROOT)
        stacks = []
        for test in TEST:
            found = sorted(out.glob(f"{test}*.tif"))
            if not found:
                raise RuntimeError(f"unet-studio predict wrote no label image for {test} in {out}")
            stacks.append(tifffile.imread(found[0]))
        return np.stack(stacks)
    import torch

    from unet_studio.core.model.checkpoint import load_model
    from unet_studio.core.predict.tiled import make_normalizer, predict_probabilities

    torch.set_num_threads(2)
    net, info = load_model(model, "cpu")
    normalize = make_normalizer(info.normalization)
    values = np.asarray(info.class_values)
    preds = []
    for test in TEST:
        image = tifffile.imread(DATA / "images" / f"{test}.tif").astype(np.float32)[None]
        probs = predict_probabilities(net, normalize(image))
        preds.append(values[probs.argmax(0)])
    return np.stack(preds)


def random_forest(work: Path, seed: int) -> tuple[np.ndarray, float]:
    """The scikit-image random-forest pixel classifier on the same scribbles; return predictions and seconds."""
    from functools import partial

    from sklearn.ensemble import RandomForestClassifier
    from skimage.feature import multiscale_basic_features

    started = time.perf_counter()
    features = partial(multiscale_basic_features, intensity=True, edges=True, texture=True,
                       sigma_min=1, sigma_max=16)
    xs, ys = [], []
    for name in SCRIBBLED:
        image = tifffile.imread(DATA / "images" / f"{name}.tif").astype(np.float32) / 255
        sparse = tifffile.imread(work / "scribbles" / "labels" / f"{name}.tif")
        f = features(image)
        labelled = sparse != UNLABELLED
        xs.append(f[labelled])
        ys.append(sparse[labelled])
    forest = RandomForestClassifier(n_estimators=100, n_jobs=2, max_depth=10, max_samples=0.05, random_state=seed)
    forest.fit(np.concatenate(xs), np.concatenate(ys))
    preds = []
    for name in TEST:
        image = tifffile.imread(DATA / "images" / f"{name}.tif").astype(np.float32) / 255
        f = features(image)
        preds.append(forest.predict(f.reshape(-1, f.shape[-1])).reshape(image.shape))
    return np.stack(preds), time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=300.0)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fraction", type=float, default=0.04, help="scribble coverage per slice (< 0.05)")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
    parser.add_argument("--skip-dense", action="store_true")
    parser.add_argument("--skip-scribbles", action="store_true")
    parser.add_argument("--skip-rf", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not (DATA / "images").is_dir():
        print(f"ISBI 2012 data not found at {DATA}", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="unet-accuracy-"))
    work.mkdir(parents=True, exist_ok=True)
    coverage = prepare(work, args.fraction, args.seed)
    truth = np.stack([tifffile.imread(DATA / "labels" / f"{name}.tif") for name in TEST])
    use_cli = predict_command_available()
    how = "unet-studio predict" if use_cli else "core.inference.predict_probabilities (no predict command)"
    rows = []

    def score(kind: str, label: str, seconds: float) -> None:
        model = work / f"model-{kind}"
        if use_cli:  # plain argmax, the model's validation-chosen threshold (the default), and that with TTA
            variants = [(", argmax", ("--thresholds", "0,0")), ("", ()), (", --tta", ("--tta",))]
        else:
            variants = [(", argmax", ())]
        for suffix, extra in variants:
            f1 = membrane_f1(predict(model, work, f"{kind}{suffix.replace(' ', '')}", use_cli, extra), truth)
            rows.append((label + suffix, f1, seconds))

    if not args.skip_dense:
        seconds = train(work / "dense" / "images", work / "dense" / "labels", work / "model-dense", args)
        score("dense", "U-Net, dense masks 000-014", seconds)
    if not args.skip_scribbles:
        seconds = train(work / "scribbles" / "images", work / "scribbles" / "labels", work / "model-scribbles", args,
                        ("--unlabelled", str(UNLABELLED)))
        score("scribbles", "U-Net, scribbles only", seconds)
    if not args.skip_rf:
        preds, seconds = random_forest(work, args.seed)
        rows.append(("random forest (skimage), scribbles", membrane_f1(preds, truth), seconds))
    print()
    print(f"ISBI 2012, test slices {TEST[0]}-{TEST[-1]}, membrane (value 0) F1; preset {args.preset}, "
          f"time limit {args.time_limit:g} s, CPU threads {os.cpu_count()}; prediction: {how}")
    print(f"scribbles on slices {', '.join(SCRIBBLED)}: "
          + ", ".join(f"{100 * c:.2f}%" for c in coverage.values()) + " of the pixels")
    print(f"{'method':<48} {'membrane F1':>12} {'seconds':>9}")
    for name, f1, seconds in rows:
        print(f"{name:<48} {f1:>12.4f} {seconds:>9.1f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": [{"method": n, "membrane_f1": f, "seconds": s} for n, f, s in rows],
                                         "coverage": coverage, "prediction": how}, indent=2))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
