"""Tile layout for overlap-tile prediction: sizes, positions, blending windows and memory estimates.

See :mod:`unet_studio.core.predict.tiled` for the strategy; this module is the pure arithmetic behind it
(no tensors are run here).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from ..config import InferConfig, ModelConfig
from ..device import autocast_dtype
from ..errors import ConfigError
from ..model import context_margin, is_admissible

MAX_AUTO_TILE = 1024
_CPU_ACTIVATION_BUDGET = 1 << 30  # bytes; keeps a 4096x4096 prediction far under 2 GB on the CPU
# Networks that need much context around each tile (the paper's: 92 px each side) waste most of a small
# tile's work on that context (a 256 px tile of the classic preset keeps 68x68 px, a 512 px one 328x328,
# 3.8 times less work per pixel): they may use twice the memory on the CPU to reach 512 px tiles.
_CPU_WIDE_CONTEXT_BUDGET = 2 << 30


def exact_context(config: ModelConfig) -> int:
    """Pixels at each edge of a same-mode tile whose output depends on the tile's zero padding.

    Follows the zero-padding "contamination" through the network: each 3x3 convolution at scale ``s``
    moves it ``s`` pixels inwards, pooling rounds it up to its grid, bilinear upsampling reads one more
    coarse pixel. Discarding this many pixels makes tiled output equal to a whole-image pass (0 in valid
    mode, where nothing is padded).
    """
    if config.padding == "valid":
        return 0
    depth = config.depth
    reach = 0
    skips = []
    for level in range(depth):
        scale = 2**level
        if level > 0:
            reach = math.ceil(reach / scale) * scale
        reach += 2 * scale
        skips.append(reach)
    for level in reversed(range(depth - 1)):
        scale = 2**level
        if config.upsample == "bilinear":
            reach += 2 * scale
        reach = max(reach, skips[level]) + 2 * scale
    return reach


@functools.lru_cache(maxsize=64)
def _admissible_sizes(depth: int, padding: str, limit: int) -> tuple[int, ...]:
    return tuple(s for s in range(1, limit + 1) if is_admissible(s, depth, padding))


@dataclass(frozen=True)
class AxisPlan:
    """Tiling of one axis: network input ``tile``, kept output ``kept`` at stride ``stride``, ``count`` tiles.

    ``pad_before`` mirror pixels precede the image; tile ``i`` reads padded pixels ``[i*stride, i*stride+tile)``
    and its kept output covers image pixels ``[i*stride, i*stride+kept)``; ``crop`` is where the kept part
    starts in the network's output.
    """

    length: int
    tile: int
    kept: int
    stride: int
    count: int
    pad_before: int
    pad_after: int
    crop: int


@dataclass(frozen=True)
class TileLayout:
    """How an image of ``shape`` (Y, X) is cut into tiles; see :func:`plan_tiles`."""

    y: AxisPlan
    x: AxisPlan

    @property
    def tile_shape(self) -> tuple[int, int]:
        return self.y.tile, self.x.tile

    @property
    def n_tiles(self) -> int:
        return self.y.count * self.x.count

    def origins(self) -> list[tuple[int, int]]:
        """Tile origins (top, left) in padded coordinates, row by row."""
        return [(i * self.y.stride, j * self.x.stride) for i in range(self.y.count) for j in range(self.x.count)]


def _plan_axis(length: int, tile_max: int, mc: ModelConfig, context: int, overlap: float) -> AxisPlan | None:
    grid = 2 ** (mc.depth - 1)
    margin = context_margin(mc.depth, mc.padding)
    reach = margin + context  # image pixels consumed by each side of a tile
    best = None
    for tile in _admissible_sizes(mc.depth, mc.padding, max(tile_max, 1)):
        kept = tile - 2 * reach
        if kept < grid:
            continue
        if mc.padding == "valid":
            stride = kept // grid * grid
        else:
            stride = max(grid, int(kept * (1.0 - overlap)) // grid * grid)
        count = 1 if length <= kept else math.ceil((length - kept) / stride) + 1
        cost = count * tile
        if best is None or cost <= best[0]:  # ties go to the larger tile (fewer, bigger batches)
            best = (cost, tile, kept, stride, count)
    if best is None:
        return None
    _, tile, kept, stride, count = best
    padded = (count - 1) * stride + tile
    return AxisPlan(length, tile, kept, stride, count, reach, padded - length - reach, context)


def effective_context(model_config: ModelConfig, config: InferConfig) -> int:
    if model_config.padding == "valid":
        return 0
    return exact_context(model_config) if config.context is None else int(config.context)


def tiles_are_exact(model_config: ModelConfig, config: InferConfig = InferConfig()) -> bool:
    """Whether tiled output equals a whole-image pass: valid mode, or enough context and no group norm
    (group normalisation uses statistics of the whole tile)."""
    if model_config.norm == "group":
        return False
    return model_config.padding == "valid" or effective_context(model_config, config) >= exact_context(model_config)


def smallest_tile(model_config: ModelConfig, config: InferConfig = InferConfig()) -> int:
    """The smallest tile side that keeps at least one pooling cell of output per tile."""
    reach = context_margin(model_config.depth, model_config.padding) + effective_context(model_config, config)
    grid = 2 ** (model_config.depth - 1)
    return next(s for s in range(2 * reach + grid, 2 * reach + 8 * grid + 512)
                if is_admissible(s, model_config.depth, model_config.padding) and s - 2 * reach >= grid)


def plan_tiles(shape: tuple[int, int], model_config: ModelConfig, config: InferConfig = InferConfig(),
               tile_size: int | None = None) -> TileLayout:
    """Lay tiles over an image of ``shape`` (Y, X) for a network; ``tile_size`` overrides the config's.

    Raises :class:`ConfigError` when the tile is too small for the network.
    """
    tile_max = tile_size or config.tile_size or MAX_AUTO_TILE
    context = effective_context(model_config, config)
    overlap = config.overlap if config.overlap is not None else (0.0 if tiles_are_exact(model_config, config) else 0.125)
    plans = [_plan_axis(int(n), tile_max, model_config, context, overlap) for n in shape]
    if plans[0] is None or plans[1] is None:
        raise ConfigError(
            f"tile size {tile_max} is too small for this network ({model_config.padding} mode, depth "
            f"{model_config.depth}, {context} px context per side); use a tile size of at least "
            f"{smallest_tile(model_config, config)}"
        )
    return TileLayout(plans[0], plans[1])


def blend_window(plan: AxisPlan, index: int, blend: str) -> np.ndarray:
    """1-D blending weights over the kept part of tile ``index`` (ramps only towards existing neighbours)."""
    w = np.ones(plan.kept, np.float32)
    ramp = plan.kept - plan.stride
    if plan.count == 1 or ramp <= 0 or blend == "uniform":
        return w
    if blend == "gaussian":
        pos = np.arange(plan.kept, dtype=np.float64) - (plan.kept - 1) / 2
        g = np.exp(-0.5 * (pos / (plan.kept / 8)) ** 2)
        g = np.maximum(g / g.max(), 1e-3).astype(np.float32)
        half = plan.kept // 2
        if index > 0:
            w[:half] = g[:half]
        if index < plan.count - 1:
            w[half:] = g[half:]
        return w
    up = np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp).astype(np.float32) ** 2
    if index > 0:
        w[:ramp] = up
    if index < plan.count - 1:
        w[plan.kept - ramp:] *= up[::-1]
    return w


def available_memory(device: torch.device) -> int:
    """Bytes free for inference: free GPU memory on CUDA, ``MemAvailable`` of the machine otherwise."""
    if device.type == "cuda":
        with contextlib.suppress(RuntimeError):
            return int(torch.cuda.mem_get_info(device)[0])
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return 2 << 30


def tile_bytes(tile: tuple[int, int], model_config: ModelConfig, batch: int = 1, bytes_per_value: int = 4) -> int:
    """Rough peak memory of a forward pass: about 10 feature maps of the top level's width live at once,
    the deeper levels add as much again (each has twice the channels on a quarter of the pixels)."""
    pixels = tile[0] * tile[1] * batch
    return pixels * bytes_per_value * (20 * model_config.base_channels + 2 * model_config.in_channels
                                       + 4 * model_config.n_classes)


def auto_settings(model_config: ModelConfig, config: InferConfig, device: torch.device) -> tuple[int, int]:
    """(largest tile side, batch size) that fit the memory budget."""
    free = available_memory(device)
    reach = context_margin(model_config.depth, model_config.padding) + effective_context(model_config, config)
    if config.memory_limit_mb:
        budget = int(config.memory_limit_mb * 2**20)
    elif device.type == "cuda":
        budget = int(free * 0.6)
    else:
        cap = _CPU_WIDE_CONTEXT_BUDGET if reach > 64 else _CPU_ACTIVATION_BUDGET
        budget = min(int(free * 0.3), cap)
    vbytes = 2 if autocast_dtype(device, config.amp) is not None else 4
    tile = config.tile_size
    if tile is None:
        # Measured on a 2-core CPU with the fast preset: 512 px tiles run at ~1.1 Mpx/s, 1024 px tiles at
        # half that (the feature maps fall out of the caches); deep networks need larger tiles for their context.
        preferred = MAX_AUTO_TILE if device.type != "cpu" or reach > 64 else 512
        tile = 64
        while tile * 2 <= preferred and tile_bytes((tile * 2, tile * 2), model_config, 1, vbytes) <= budget:
            tile *= 2
        tile = max(tile, smallest_tile(model_config, config))
    batch = config.batch_size
    if batch is None:
        # the CPU gains little from batching large tiles; a GPU wants several tiles in flight
        cap = 16 if device.type == "cuda" else max(1, min(4, (512 * 512) // (tile * tile)))
        per_tile = max(1, tile_bytes((tile, tile), model_config, 1, vbytes))
        batch = int(max(1, min(cap, budget // per_tile)))
    return int(tile), int(batch)
