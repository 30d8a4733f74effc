"""The GPU path end to end: training and prediction on CUDA with mixed precision, speed against peers.

Run on a machine with an NVIDIA GPU, from the repository root::

    python bench/gpu.py --json gpu.json                 # about 7 minutes
    python bench/gpu.py --seconds 60 --skip-speed       # accuracy only, shorter

What it does, each part on its own so that one failure does not hide the others:

1. **Accuracy through the real CLI** (``unet-studio train --device cuda``, then ``unet-studio predict
   --device cuda``), on disjoint train/test splits fixed here: ISBI 2012 dense masks, train 000-009,
   test 010-019, membrane F1 over all test pixels; dsb2018 nuclei (``--instances``), train 000-039, test
   040-059, foreground F1 and AP@0.5 / mean AP@[0.5:0.95] (objects matched one to one at IoU > t, the
   DSB 2018 definition). Training uses the fast preset under a time limit; mixed precision (bfloat16 on
   GPUs that have it) and channels-last are what the trainer picks on CUDA.
2. **Training speed** against a plain PyTorch loop (:mod:`bench.bench_train`, quick set), same network,
   batch and patches, on the GPU.
3. **Prediction speed** of a 4096x4096 image against MONAI's ``sliding_window_inference`` with the same
   network, tile size and tile spacing (:mod:`bench.bench_infer`'s set-up, on the GPU): megapixels/s and
   the peak GPU memory of each, ours under autocast (what ``predict`` does), MONAI in float32 (its default)
   and under the same autocast.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import data_dir  # noqa: E402
from bench.metrics import average_precision  # noqa: E402
from bench.metrics import pixel_f1 as f1  # noqa: E402

ISBI_TRAIN, ISBI_TEST = [f"{i:03d}" for i in range(10)], [f"{i:03d}" for i in range(10, 20)]
DSB_TRAIN, DSB_TEST = [f"{i:03d}" for i in range(40)], [f"{i:03d}" for i in range(40, 60)]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "unet_studio", *args]


def run(command: list[str]) -> float:
    print("$", " ".join(command[2:]), flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    return time.perf_counter() - started


def link_pairs(src: Path, names: list[str], dst: Path, labels: bool = True) -> None:
    (dst / "images").mkdir(parents=True, exist_ok=True)
    if labels:
        (dst / "labels").mkdir(parents=True, exist_ok=True)
    for name in names:
        os.symlink(src / "images" / f"{name}.tif", dst / "images" / f"{name}.tif")
        if labels:
            os.symlink(src / "labels" / f"{name}.tif", dst / "labels" / f"{name}.tif")


def accuracy(data: Path, work: Path, seconds: float, device: str) -> dict:
    results = {}
    isbi, dsb = data / "isbi2012", data / "dsb2018"
    if (isbi / "images").is_dir():
        link_pairs(isbi, ISBI_TRAIN, work / "isbi-train")
        link_pairs(isbi, ISBI_TEST, work / "isbi-test", labels=False)
        t_train = run(cli("train", "--images", str(work / "isbi-train/images"), "--labels",
                          str(work / "isbi-train/labels"), "--out", str(work / "isbi-model"), "--preset", "fast",
                          "--time-limit", str(seconds), "--device", device))
        t_pred = run(cli("predict", "--model", str(work / "isbi-model"), "--images", str(work / "isbi-test/images"),
                         "--out", str(work / "isbi-pred"), "--device", device))
        pred = np.stack([tifffile.imread(work / "isbi-pred" / f"{n}_labels.tif") for n in ISBI_TEST])
        truth = np.stack([tifffile.imread(isbi / "labels" / f"{n}.tif") for n in ISBI_TEST])
        info = json.loads((work / "isbi-model" / "model.json").read_text())
        results["isbi_dense_membrane_f1"] = f1(pred == 0, truth == 0)
        results["isbi_train_seconds"], results["isbi_predict_seconds"] = t_train, t_pred
        history = info.get("history") or []
        results["isbi_last_history"] = history[-1] if history else None
    if (dsb / "images").is_dir():
        link_pairs(dsb, DSB_TRAIN, work / "dsb-train")
        link_pairs(dsb, DSB_TEST, work / "dsb-test", labels=False)
        t_train = run(cli("train", "--images", str(work / "dsb-train/images"), "--labels",
                          str(work / "dsb-train/labels"), "--out", str(work / "dsb-model"), "--preset", "fast",
                          "--instances", "--time-limit", str(seconds), "--device", device))
        t_pred = run(cli("predict", "--model", str(work / "dsb-model"), "--images", str(work / "dsb-test/images"),
                         "--out", str(work / "dsb-pred"), "--instances", "--device", device))
        fg, aps = [], []
        p_all, t_all = [], []
        for n in DSB_TEST:
            truth = tifffile.imread(dsb / "labels" / f"{n}.tif")
            pred_inst = tifffile.imread(work / "dsb-pred" / f"{n}_instances.tif")
            p_all.append(pred_inst > 0)
            t_all.append(truth > 0)
            aps.append(average_precision(pred_inst, truth))
        aps = np.mean(aps, axis=0)
        results["dsb_foreground_f1"] = f1(np.stack(p_all), np.stack(t_all))
        results["dsb_ap50"], results["dsb_mean_ap"] = float(aps[0]), float(aps.mean())
        results["dsb_train_seconds"], results["dsb_predict_seconds"] = t_train, t_pred
    return results


def inference_speed(size: int = 4096) -> dict:
    import torch
    from monai.inferers import sliding_window_inference

    from unet_studio.core.config import InferConfig
    from unet_studio.core.model.unet import UNet
    from unet_studio.core.predict.tiled import predict_probabilities
    from unet_studio.core.predict.tiling import plan_tiles  # noqa: F401  (documents where the layout comes from)
    from unet_studio.core.presets import preset_configs

    results = {}
    device = torch.device("cuda")
    rng = np.random.default_rng(0)
    image = rng.random((1, size, size), dtype=np.float32)
    for preset in ("fast", "classic"):
        model_config, _ = preset_configs(preset)
        torch.manual_seed(0)
        net = UNet.from_config(model_config).to(device).eval()
        config = InferConfig(device="cuda")
        predict_probabilities(net, image[:, :512, :512], config)  # warm-up
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        ours = predict_probabilities(net, image, config)
        torch.cuda.synchronize()
        t_ours = time.perf_counter() - started
        mem_ours = torch.cuda.max_memory_allocated()
        from unet_studio.core.predict import blend

        share, blend.DEVICE_SHARE = blend.DEVICE_SHARE, 0.0  # the host blend, as before 2026-11-30
        try:
            started = time.perf_counter()
            host = predict_probabilities(net, image, config)
            torch.cuda.synchronize()
            results[f"{preset}_ours_host_blend_mpx_s"] = size * size / (time.perf_counter() - started) / 1e6
        finally:
            blend.DEVICE_SHARE = share
        results[f"{preset}_device_vs_host_blend_max_abs_diff"] = float(np.abs(np.asarray(host) - ours).max())
        del host
        results[f"{preset}_ours_mpx_s"] = size * size / t_ours / 1e6
        results[f"{preset}_ours_peak_gpu_gb"] = mem_ours / 1e9
        results[f"{preset}_ours_seconds"] = t_ours
        if model_config.padding != "same":
            continue  # MONAI's sliding window needs an output the size of its input
        x = torch.from_numpy(image)[None].to(device)
        tile = 512

        def predictor(batch, net=net):
            return torch.softmax(net(batch).float(), 1)

        for label, amp in (("fp32", False), ("bf16", True)):
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                sliding_window_inference(x[..., :1024, :1024], (tile, tile), 8, predictor, overlap=0.1, mode="gaussian")
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                started = time.perf_counter()
                theirs = sliding_window_inference(x, (tile, tile), 8, predictor, overlap=0.1, mode="gaussian")
                torch.cuda.synchronize()
                t_theirs = time.perf_counter() - started
            results[f"{preset}_monai_{label}_mpx_s"] = size * size / t_theirs / 1e6
            results[f"{preset}_monai_{label}_peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1e9
            results[f"{preset}_ratio_vs_monai_{label}"] = t_theirs / t_ours
            agree = (theirs[0].argmax(0).cpu().numpy() == np.asarray(ours).argmax(0)).mean()
            results[f"{preset}_argmax_agreement_monai_{label}"] = float(agree)
            del theirs
        del net
        torch.cuda.empty_cache()
    return results


def inference_profile(size: int = 4096, top: int = 18) -> dict:
    """Where our prediction of a ``size`` x ``size`` image spends its time on the GPU (cProfile, host side)."""
    import cProfile
    import io
    import pstats

    import torch

    from unet_studio.core.config import InferConfig
    from unet_studio.core.model.unet import UNet
    from unet_studio.core.predict.tiled import iter_predict, predict_probabilities
    from unet_studio.core.presets import preset_configs

    model_config, _ = preset_configs("fast")
    torch.manual_seed(0)
    net = UNet.from_config(model_config).to("cuda").eval()
    image = np.random.default_rng(0).random((1, size, size), dtype=np.float32)
    config = InferConfig(device="cuda")
    predict_probabilities(net, image[:, :1024, :1024], config)
    last = None
    for progress in iter_predict(net, image[:, :1024, :1024], config):
        last = progress
    profiler = cProfile.Profile()
    profiler.enable()
    predict_probabilities(net, image, config)
    torch.cuda.synchronize()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    return {"tile_shape": list(last.tile_shape) if last else None, "batch": last.batch_size if last else None,
            "profile": text.getvalue().splitlines()[-(top + 8):]}


def training_speed() -> dict:
    from bench import bench_train

    result = bench_train.run(quick=True)
    return {"headline": result.headline, "notes": result.notes,
            "figures": {k: v for k, v in result.figures.items() if not isinstance(v, list)}}


def environment() -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cuda_available": torch.cuda.is_available(), "tifffile": tifffile.__version__}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["bf16"] = torch.cuda.is_bf16_supported()
    try:
        env["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                            "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=data_dir())
    parser.add_argument("--seconds", type=float, default=120.0, help="training time limit of each accuracy run")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--parts", metavar="NAME,...",
                        help="run only these parts: inference_speed, inference_profile, accuracy, training_speed")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report = {"environment": environment(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(json.dumps(report["environment"]), flush=True)
    work = Path(tempfile.mkdtemp(prefix="unet-gpu-"))
    available = {"inference_speed": inference_speed, "inference_profile": inference_profile,
                 "accuracy": lambda: accuracy(args.data, work, args.seconds, args.device),
                 "training_speed": training_speed}
    chosen = list(available) if args.parts is None else [p.strip() for p in args.parts.split(",") if p.strip()]
    if args.skip_speed:
        chosen = [p for p in chosen if p == "accuracy"]
    if args.skip_accuracy:
        chosen = [p for p in chosen if p != "accuracy"]
    unknown = [p for p in chosen if p not in available]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(available)}")
    parts = [(name, available[name]) for name in chosen]
    failed = 0
    for name, part in parts:
        started = time.perf_counter()
        try:
            report[name] = part()
        except Exception:  # noqa: BLE001  (report every part, even when one fails)
            report[name] = {"error": traceback.format_exc()}
            failed += 1
        print(f"== {name} ({time.perf_counter() - started:.0f} s)", flush=True)
        print(json.dumps(report[name], indent=1, default=str), flush=True)
        if args.json:
            args.json.write_text(json.dumps(report, indent=1, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
