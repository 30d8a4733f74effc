"""Tiled prediction of a 4096x4096 image: ours against MONAI's ``sliding_window_inference``.

Same network (the ``fast`` preset's, seeded random weights: speed and memory do not depend on them),
same input (ISBI 2012 slice 000, normalised, mirrored out to 4096x4096), same device and threads, same
tile size, same spacing of the tiles and the same number of tiles in a batch:

- ours: :func:`unet_studio.core.predict.tiled.predict_probabilities` with ``InferConfig(tile_size=T,
  batch_size=B)`` and everything else at its defaults (overlap 0.1 of the kept region, the exact
  receptive-field context discarded at each tile edge, cosine blending);
- MONAI: ``sliding_window_inference(x, roi_size=(T, T), sw_batch_size=B, predictor=softmax(model(.)),
  overlap=1 - stride/T, mode="gaussian")`` where ``stride`` is our tile spacing, so that both compute
  the same number of tiles of the same size (MONAI keeps each tile's whole output and blends it with
  Gaussian weights; it has no notion of discarding the context).

``T`` and ``B`` are what our automatic choice picks on this machine (``--tile``/``--batch`` in a child
change them). Each side runs in its own child process, so that the peak resident set size of one does
not include the other's buffers: the child builds the model and the image, warms up on a 512x512
image, resets the kernel's high-water mark (``/proc/self/clear_refs``), predicts once, and reports the
time, megapixels/s and peak RSS (absolute, and above the RSS just before predicting). The full set
alternates the two sides twice and keeps each side's best time and its largest peak.

What-if children (full set only; evidence for the inference module's owner, not our headline): ours with
the model in channels-last memory format under bfloat16 autocast on the CPU, and with batch-norm folded
into the convolutions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from bench import BenchResult, Row, data_dir, ratio, run_python

SIZE = 4096


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def test_image(size: int) -> np.ndarray:
    """(1, size, size) float32: ISBI slice 000, normalised, mirrored out to ``size``."""
    import tifffile

    from unet_studio.core.io.stack import normalize_percentile

    path = data_dir() / "isbi2012" / "images" / "000.tif"
    if path.exists():
        image = normalize_percentile(tifffile.imread(path)[None].astype(np.float32))
    else:
        rng = np.random.default_rng(0)
        image = rng.random((1, 512, 512), dtype=np.float32)
    reps = -(-size // image.shape[1])
    tiled = np.concatenate([image, image[:, ::-1]], 1)
    tiled = np.concatenate([tiled, tiled[:, :, ::-1]], 2)
    tiled = np.tile(tiled, (1, -(-reps // 2), -(-reps // 2)))
    return np.ascontiguousarray(tiled[:, :size, :size])


def fast_model():
    import torch

    from unet_studio.core.model.unet import UNet
    from unet_studio.core.presets import preset_configs

    model_config, _ = preset_configs("fast", 1, 2)
    torch.manual_seed(0)
    return UNet.from_config(model_config).eval()


def fold_batchnorm(model):
    """Fold each eval-mode BatchNorm2d into the convolution before it (what-if; returns a new model)."""
    import copy

    import torch
    from torch import nn

    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            children = list(module.children())
            for i in range(len(children) - 1):
                conv, bn = children[i], children[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                    with torch.no_grad():
                        conv.weight.mul_(scale[:, None, None, None])
                        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                        new_bias = (bias - bn.running_mean) * scale + bn.bias
                        conv.bias = nn.Parameter(new_bias)
                    module[i + 1] = nn.Identity()
    return model


def auto_settings(size: int = SIZE) -> dict:
    """The tile, batch and tile spacing our automatic choice picks for a size x size image here.

    Read from the first progress report of a real prediction (public API only), which is then cancelled.
    """
    from unet_studio.core.config import InferConfig
    from unet_studio.core.predict.tiled import iter_predict, plan_tiles

    model = fast_model()
    image = np.zeros((1, size, size), np.float32)
    run = iter_predict(model, image, InferConfig(device="cpu"))
    try:
        first = next(run)
    finally:
        run.close()
    tile = max(first.tile_shape)
    layout = plan_tiles((size, size), model.config, InferConfig(), tile_size=tile)
    return {"tile": layout.y.tile, "batch": int(first.batch_size), "stride": layout.y.stride,
            "kept": layout.y.kept, "context": layout.y.crop, "tiles": layout.n_tiles}


# ----------------------------------------------------------------------------------------------- child


def child(which: str, size: int, tile: int, batch: int, stride: int) -> dict:
    import torch

    from unet_studio.core.config import InferConfig
    from unet_studio.core.device import configure_cpu_threads

    configure_cpu_threads()
    model = fast_model()
    image = test_image(size)
    overlap = 1.0 - stride / tile

    if which in ("ours", "ours_cl_bf16", "ours_foldbn"):
        from unet_studio.core.predict.tiled import predict_probabilities

        net = model
        if which == "ours_foldbn":
            net = fold_batchnorm(model)
        if which == "ours_cl_bf16":
            net = model.to(memory_format=torch.channels_last)
        config = InferConfig(tile_size=tile, batch_size=batch, device="cpu")

        def predict(x: np.ndarray):
            if which == "ours_cl_bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return predict_probabilities(net, x, config)
            return predict_probabilities(net, x, config)
    elif which == "monai":
        from monai.inferers import sliding_window_inference

        def predictor(x):
            return torch.softmax(model(x), dim=1)

        def predict(x: np.ndarray):
            with torch.inference_mode():
                return sliding_window_inference(torch.from_numpy(x)[None], roi_size=(tile, tile),
                                                sw_batch_size=batch, predictor=predictor, overlap=overlap,
                                                mode="gaussian")
    else:
        raise ValueError(which)

    predict(np.ascontiguousarray(image[:, :512, :512]))  # warm-up (kernels, allocator)
    rss_before = _status_kb("VmRSS")
    reset_ok = reset_peak()
    start = time.perf_counter()
    out = predict(image)
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    shape = tuple(out.shape)
    return {"which": which, "seconds": seconds, "mpx_per_s": size * size / 1e6 / seconds,
            "peak_rss_mb": peak / 1024, "rss_before_mb": rss_before / 1024,
            "peak_increase_mb": (peak - rss_before) / 1024, "peak_reset": reset_ok, "output_shape": shape,
            "threads": torch.get_num_threads(), "tile": tile, "batch": batch, "overlap": overlap}


def _run_child(which: str, settings: dict, size: int, timeout: float) -> dict:
    proc = run_python(["-m", "bench.bench_infer", "--which", which, "--size", str(size), "--tile",
                       str(settings["tile"]), "--batch", str(settings["batch"]), "--stride", str(settings["stride"])],
                      timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{which} child failed (status {proc.returncode}): {proc.stderr[-1500:]}")
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------------------------- benchmark


def run(quick: bool = False) -> BenchResult:
    size = SIZE
    settings = auto_settings(size)
    repeats = 1 if quick else 2
    order = ["ours", "monai"]
    results: dict[str, list[dict]] = {"ours": [], "monai": []}
    for r in range(repeats):
        for which in (order if r % 2 == 0 else order[::-1]):
            results[which].append(_run_child(which, settings, size, timeout=600))
    what_if = {}
    for which in ("ours_cl_bf16", "ours_foldbn") if not quick else ():
        try:
            what_if[which] = _run_child(which, settings, size, timeout=600)
        except Exception as exc:  # noqa: BLE001 - evidence only
            what_if[which] = {"error": str(exc)[-500:]}

    best = {k: min(v, key=lambda d: d["seconds"]) for k, v in results.items()}
    peak = {k: max(d["peak_rss_mb"] for d in v) for k, v in results.items()}
    peak_inc = {k: max(d["peak_increase_mb"] for d in v) for k, v in results.items()}
    speedup = ratio(best["ours"]["mpx_per_s"], best["monai"]["mpx_per_s"])
    rows = [
        Row("megapixels/s (4096x4096)", best["ours"]["mpx_per_s"], best["monai"]["mpx_per_s"], "Mpx/s"),
        Row("seconds", best["ours"]["seconds"], best["monai"]["seconds"], "s"),
        Row("peak RSS", peak["ours"], peak["monai"], "MB"),
        Row("peak RSS above pre-predict RSS", peak_inc["ours"], peak_inc["monai"], "MB"),
    ]
    notes = [f"tile {settings['tile']} px, batch {settings['batch']}, tile spacing {settings['stride']} px "
             f"({settings['tiles']} tiles; our context {settings['context']} px per side, MONAI overlap "
             f"{1 - settings['stride'] / settings['tile']:.3f}, gaussian blending); each side in its own process, "
             f"best of {repeats}"]
    for which, d in what_if.items():
        if "error" in d:
            notes.append(f"what-if {which}: failed: {d['error'][:200]}")
        else:
            notes.append(f"what-if {which}: {d['mpx_per_s']:.3f} Mpx/s ({d['seconds']:.1f} s), peak RSS "
                         f"{d['peak_rss_mb']:.0f} MB -> {d['mpx_per_s'] / best['monai']['mpx_per_s']:.2f}x MONAI")
    lower_memory = peak["ours"] < peak["monai"]
    return BenchResult(name="infer", peer="MONAI sliding_window_inference", ratio=speedup, rows=rows,
                       headline={"infer_speedup_vs_monai": speedup, "infer_mpx_per_s": best["ours"]["mpx_per_s"],
                                 "infer_monai_mpx_per_s": best["monai"]["mpx_per_s"],
                                 "infer_peak_rss_mb": peak["ours"], "infer_monai_peak_rss_mb": peak["monai"],
                                 "infer_lower_peak_memory": lower_memory},
                       figures={"settings": settings, "runs": results, "what_if": what_if}, notes=notes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="one side of the inference benchmark (child process)")
    parser.add_argument("--which", required=True, choices=["ours", "monai", "ours_cl_bf16", "ours_foldbn"])
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--tile", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--stride", type=int)
    args = parser.parse_args(argv)
    settings = auto_settings(args.size) if args.tile is None else {
        "tile": args.tile, "batch": args.batch or 1, "stride": args.stride or int(args.tile * 0.75)}
    print(json.dumps(child(args.which, args.size, settings["tile"], settings["batch"], settings["stride"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
