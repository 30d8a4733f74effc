"""Blockwise prediction of a big OME-Zarr: one process against a LocalCluster of 2 workers.

Usage::

    python bench/bench_blockwise.py                 # 16384 x 16384 (the issue's figure)
    python bench/bench_blockwise.py --size 32768    # memory must not grow with the image
    python bench/bench_blockwise.py --size 2048     # a quick check that it runs

Writes a SIZE x SIZE uint16 OME-Zarr (bright disks on a noisy background, chunk by chunk, never whole in
memory) into a temporary folder (or ``--work``), then predicts its labels (``--instances``: also objects
joined across blocks) with the fast preset's network (random weights: speed and memory do not depend on
them) (a) in this process (``predict_blockwise`` with no cluster) and (b) on
``distributed.LocalCluster(n_workers=2, threads_per_worker=1)`` with half the cores' PyTorch threads each.
Prints Mpx/s of both, their ratio, and the peak resident memory of each worker process (sampled every
0.2 s with psutil; the bar is 1.5 GB whatever the image size) and of the one process.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unet_studio.core.config import InferConfig  # noqa: E402
from unet_studio.core.io import create_ome_zarr  # noqa: E402
from unet_studio.core.model import ModelInfo, UNet, save_model  # noqa: E402
from unet_studio.core.predict import (  # noqa: E402
    BlockwiseConfig, ImageRef, default_threads, image_sample, percentile_scaler, predict_blockwise,
)
from unet_studio.core.presets import preset_configs  # noqa: E402

BAR_GB = 1.5


def write_image(path: Path, size: int, chunk: int = 1024) -> None:
    """Bright disks on noise, one chunk at a time."""
    level0 = create_ome_zarr(path, (size, size), np.uint16, (chunk, chunk), "yx", pixel_size=(0.5, 0.5))
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:chunk, :chunk]
    for y in range(0, size, chunk):
        for x in range(0, size, chunk):
            tile = rng.normal(300, 30, (chunk, chunk))
            for cy, cx in rng.integers(0, chunk, (40, 2)):
                tile[(yy - cy) ** 2 + (xx - cx) ** 2 <= 144] += 1500
            h, w = min(chunk, size - y), min(chunk, size - x)
            level0[y:y + h, x:x + w] = np.clip(tile[:h, :w], 0, 65535).astype(np.uint16)


def write_model(folder: Path) -> Path:
    config, _ = preset_configs("fast", 1, 2)
    torch.manual_seed(0)
    net = UNet.from_config(config).eval()
    save_model(folder, net, ModelInfo(net.config, [0, 1], ["background", "nucleus"],
                                      normalization={"method": "percentile", "low": 1.0, "high": 99.8}))
    return folder


class PeakMemory:
    """Peak resident set size of some processes, sampled every ``interval`` seconds in a thread."""

    def __init__(self, pids: list[int], interval: float = 0.2) -> None:
        import psutil

        self.processes = {pid: psutil.Process(pid) for pid in pids}
        self.peak = {pid: 0 for pid in pids}
        self.interval = interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for pid, process in self.processes.items():
                try:
                    self.peak[pid] = max(self.peak[pid], process.memory_info().rss)
                except Exception:  # noqa: BLE001 - a process that ended keeps its peak
                    pass
            self.stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def run(image_path: Path, model: Path, out: Path, config: BlockwiseConfig, client=None, pids=None,
        instances: bool = False) -> tuple[float, dict[int, int]]:
    image = ImageRef(str(image_path))  # each worker opens the image itself
    prepare = percentile_scaler(image_sample(image), 1.0, 99.8)
    targets = {"labels": out / "labels.ome.zarr"}
    if instances:
        targets["instances"] = out / "instances.ome.zarr"
    with PeakMemory(pids or [os.getpid()]) as memory:
        start = time.perf_counter()
        last = predict_blockwise(image, model, targets, config, client, prepare=prepare, overwrite=True)
        seconds = time.perf_counter() - start
    assert last.outputs, last.failures
    return seconds, memory.peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--instances", action="store_true", help="also objects, joined across blocks")
    parser.add_argument("--work", type=Path, help="folder for the image and outputs (default: a temporary one)")
    parser.add_argument("--skip-one-process", action="store_true")
    args = parser.parse_args(argv)
    import distributed

    logging.getLogger("distributed").setLevel(logging.WARNING)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_blockwise_"))
    try:
        image = work / f"image_{args.size}.ome.zarr"
        if not image.exists():
            started = time.perf_counter()
            write_image(image, args.size)
            print(f"wrote {image} ({args.size} x {args.size} uint16) in {time.perf_counter() - started:.0f} s")
        model = write_model(work / "model")
        megapixels = args.size**2 / 1e6
        infer = InferConfig()
        rows = []
        if not args.skip_one_process:
            torch.set_num_threads(default_threads(1))
            config = BlockwiseConfig(block_size=args.block_size, infer=infer, torch_threads=default_threads(1))
            seconds, peak = run(image, model, work / "one", config, instances=args.instances)
            rows.append(("one process", seconds, list(peak.values())))
        threads = default_threads(args.workers)
        cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                           dashboard_address=":0", silence_logs=logging.ERROR)
        with cluster, distributed.Client(cluster) as client:
            pids = list(client.run(os.getpid).values())
            config = BlockwiseConfig(block_size=args.block_size, infer=infer, torch_threads=threads)
            seconds, peak = run(image, model, work / "cluster", config, client, pids, args.instances)
            rows.append((f"LocalCluster({args.workers} workers x {threads} threads)", seconds, list(peak.values())))
        print(f"\nblockwise prediction of {args.size} x {args.size} ({megapixels:.0f} Mpx), blocks of "
              f"{args.block_size}, fast preset, {os.cpu_count()} CPU cores, torch {torch.__version__}")
        for name, seconds, peaks in rows:
            worst = max(peaks) / 2**30
            print(f"  {name:<40} {seconds:8.1f} s {megapixels / seconds:8.2f} Mpx/s   peak memory per process: "
                  + ", ".join(f"{p / 2**30:.2f} GB" for p in peaks)
                  + f"  ({'under' if worst < BAR_GB else 'OVER'} the {BAR_GB} GB bar)")
        if len(rows) == 2:
            print(f"  cluster / one process: {rows[0][1] / rows[1][1]:.2f}x")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
