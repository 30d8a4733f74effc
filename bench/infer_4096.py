"""Predict a 4096 x 4096 image on this machine with the fast preset's network; print time, Mpx/s, peak memory.

Usage::

    python bench/infer_4096.py [--size 4096] [--device cpu] [--tile-size N] [--no-peer]

The image is a real one (``../shared/data/dsb2018`` nuclei tiled to the size) when the data folder is
there, else smooth noise. The weights are random: speed and memory do not depend on them. Peak memory is
the process's peak resident set size (``resource.getrusage``), which includes the Python interpreter and
the PyTorch libraries; the bar is 2 GB.

The peer, run afterwards in the same process, is the cheapest possible tiling of the same image with the
same tiles: no context, no overlap (every tile edge a visible seam). The ratio is the price of exact,
seamless overlap-tile prediction.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unet_studio.core.config import InferConfig, ModelConfig  # noqa: E402
from unet_studio.core.device import configure_cpu_threads, describe_device, select_device  # noqa: E402
from unet_studio.core.predict.tiled import (  # noqa: E402
    iter_predict, plan_tiles, probabilities_to_labels,
)
from unet_studio.core.model.unet import UNet  # noqa: E402


def peak_rss_mb() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / 1024 if sys.platform != "darwin" else usage / 2**20  # kB on Linux, bytes on macOS


def fast_network() -> tuple[UNet, str]:
    try:
        from unet_studio.core.presets import preset_configs

        config, _ = preset_configs("fast", 1, 2)
        source = "core.presets.preset_configs('fast', 1, 2)"
    except (ImportError, AttributeError):
        config = ModelConfig(in_channels=1, n_classes=2, base_channels=16, depth=4)
        source = "fallback: base 16, depth 4 (core.presets not available)"
    torch.manual_seed(0)
    return UNet.from_config(config).eval(), source


def test_image(size: int) -> tuple[np.ndarray, str]:
    folder = ROOT.parent / "shared" / "data" / "dsb2018" / "images"
    files = sorted(folder.glob("*.tif"))[:16]
    if files:
        import tifffile

        tiles = [tifffile.imread(f).astype(np.float32) for f in files]
        tiles = [t[..., 0] if t.ndim == 3 else t for t in tiles]
        side = tiles[0].shape[0]
        reps = -(-size // side)
        rows = [np.concatenate([tiles[(r * reps + c) % len(tiles)] for c in range(reps)], 1) for r in range(reps)]
        image = np.concatenate(rows, 0)[:size, :size]
        source = f"dsb2018 nuclei images tiled to {size}x{size}"
    else:
        rng = np.random.default_rng(0)
        image = rng.normal(size=(size // 16, size // 16)).astype(np.float32).repeat(16, 0).repeat(16, 1)
        source = f"smooth noise {size}x{size} (dsb2018 not found)"
    lo, hi = np.percentile(image[::7, ::7], (1.0, 99.8))
    return ((image - lo) / max(hi - lo, 1e-6)).astype(np.float32)[None], source


def run(model: UNet, image: np.ndarray, config: InferConfig) -> tuple[float, float, np.ndarray, object]:
    """Wall time, CPU time (all threads of this process), labels, last progress item."""
    start, cpu_start = time.perf_counter(), time.process_time()
    last = None
    for last in iter_predict(model, image, config):
        pass
    labels = probabilities_to_labels(last.result, [0, 255])
    return time.perf_counter() - start, time.process_time() - cpu_start, labels, last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tile-size", type=int)
    parser.add_argument("--no-peer", action="store_true", help="skip the no-context, no-overlap peer")
    args = parser.parse_args()
    configure_cpu_threads()
    device = select_device(args.device)
    model, source = fast_network()
    model = model.to(device)
    image, image_source = test_image(args.size)
    config = InferConfig(tile_size=args.tile_size, device=args.device)
    mc = model.config
    print(f"network : {source}: base {mc.base_channels}, depth {mc.depth}, {mc.padding} mode, norm {mc.norm}")
    print(f"image   : {image_source}; device {describe_device(device)}")
    rss_before = peak_rss_mb()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    seconds, cpu_seconds, labels, last = run(model, image, config)
    rss_peak = peak_rss_mb()
    layout = plan_tiles(image.shape[1:], mc, config, tile_size=max(last.tile_shape))
    mpx = image.shape[1] * image.shape[2] / 1e6
    print(f"tiles   : {layout.n_tiles} of {last.tile_shape[0]}x{last.tile_shape[1]} px "
          f"(kept {layout.y.kept} px, stride {layout.y.stride}, context {layout.y.crop} px per side), "
          f"batch {last.batch_size}")
    print(f"time    : {seconds:.1f} s for {mpx:.1f} Mpx -> {mpx / seconds:.3f} Mpx/s "
          f"(load average {load:.1f} on {os.cpu_count()} cores at the start)")
    print(f"cpu time: {cpu_seconds:.1f} core-s ({cpu_seconds / mpx:.2f} core-s/Mpx; on {torch.get_num_threads()} idle "
          f"cores about {cpu_seconds / torch.get_num_threads():.0f} s wall)")
    print(f"memory  : peak RSS {rss_peak:.0f} MB (before predicting {rss_before:.0f} MB); bar 2048 MB: "
          f"{'PASS' if rss_peak < 2048 else 'FAIL'}")
    print(f"labels  : {labels.shape} {labels.dtype}, foreground fraction {(labels == 255).mean():.3f}")

    if not args.no_peer:
        tile = max(last.tile_shape)
        peer = InferConfig(tile_size=tile, overlap=0.0, context=0, blend="uniform", device=args.device,
                           batch_size=last.batch_size)
        peer_seconds, peer_cpu, _, peer_last = run(model, image, peer)
        n_peer = plan_tiles(image.shape[1:], mc, peer, tile_size=tile).n_tiles
        print(f"peer    : no context, no overlap, {n_peer} tiles of {peer_last.tile_shape[0]} px: "
              f"{peer_seconds:.1f} s ({mpx / peer_seconds:.3f} Mpx/s), {peer_cpu:.1f} core-s; overlap-tile / peer "
              f"ratio: wall {seconds / peer_seconds:.2f}, cpu {cpu_seconds / peer_cpu:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
