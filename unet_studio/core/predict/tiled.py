"""Overlap-tile prediction (Ronneberger et al. 2015, fig. 2) for images of any size.

How an image is cut into tiles (see :func:`plan_tiles`):

- Every tile has a side the network accepts without rounding (:func:`~unet_studio.core.model.unet.is_admissible`),
  at most ``InferConfig.tile_size`` (or a size chosen from the free memory), shrunk per axis so that the
  tiles just cover the image.
- The image is mirror-padded at its borders, so that pixels at the image edge see plausible context.
- **Valid-mode networks** (the paper's) lose ``margin`` pixels on each side; the output tiles are laid side
  by side so that they cover the image exactly. Tile origins sit on multiples of ``2**(depth-1)`` (the
  pooling grid), so the result equals a single whole-image pass over the mirror-padded image; output tiles
  overlap by fewer than ``2**(depth-1)`` pixels where the output size is not a multiple of it.
- **Same-mode networks** compute their tile borders from zero padding. Each tile's output loses ``context``
  pixels at its edges (by default the network's receptive-field radius, :func:`exact_context`, which makes
  every kept pixel equal to a whole-image pass), and neighbouring kept regions overlap by ``overlap`` (a
  fraction of the kept region) where they are blended with cosine (or Gaussian) weights, so that no seam
  shows even where tiles differ (group normalisation, a reduced ``context``, mixed precision). The default
  overlap is 12.5 % where tiles can differ and none where they are exact (blending equal values buys nothing).

Tiles are batched; the model (a copy with batch norm folded into the convolutions, channels-last on the
CPU and CUDA, where that layout is faster) runs in eval mode under :func:`torch.inference_mode`, with autocast on CUDA. The layout arithmetic lives
in :mod:`unet_studio.core.predict.tiling`. An out-of-memory error halves the batch, then the tile, and carries on.

Output forms: :func:`predict_probabilities` gives (K, Y, X) float32 softmax; :func:`probabilities_to_labels`
the label image in the model's class values; :func:`probabilities_to_uint8` the compact overlay form,
``round(p * 255)`` as uint8 (1/4 of the memory, error at most 1/510, enough for display).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import DEFAULT_NORMALIZATION, InferConfig, ModelConfig
from ..device import autocast_dtype, is_out_of_memory, select_device  # noqa: F401  (re-exported)
from ..errors import ConfigError, InferenceError
from ..io import tiff_memmap  # re-exported: written by predict, once here
from .blend import TileBlender
from .postprocess import label_dtype, probabilities_to_labels  # noqa: F401  (re-exported)
from .tiling import (  # noqa: F401  (re-exported: the layout is part of this module's API)
    AxisPlan,
    TileLayout,
    auto_settings,
    available_memory,
    blend_window,
    exact_context,
    plan_tiles,
    smallest_tile,
    tile_bytes,
    tiles_are_exact,
)

log = logging.getLogger(__name__)


@dataclass
class InferProgress:
    """One step of :func:`iter_predict` / :func:`iter_predict_stack`.

    ``tiles_done``/``tiles_total`` count tiles of the current slice; ``result`` is set on the last item of
    each slice: (K, Y, X) float32 softmax probabilities.
    """

    tiles_done: int
    tiles_total: int
    slice_index: int = 0
    slices_total: int = 1
    elapsed_s: float = 0.0
    tile_shape: tuple[int, int] = (0, 0)
    batch_size: int = 1
    device: str = "cpu"
    result: np.ndarray | None = None

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1] over all slices."""
        return slice_fraction(self.tiles_done, self.tiles_total, self.slice_index, self.slices_total)

    @property
    def eta_s(self) -> float | None:
        return eta_from(self.elapsed_s, self.fraction)


def slice_fraction(tiles_done: int, tiles_total: int, slice_index: int, slices_total: int) -> float:
    """Progress in [0, 1] over a stack predicted slice by slice, tile batch by tile batch."""
    per_slice = tiles_done / tiles_total if tiles_total else 1.0
    return (slice_index + per_slice) / max(1, slices_total)


def eta_from(elapsed_s: float, fraction: float) -> float | None:
    """Seconds left at the rate so far (``None`` before any progress)."""
    return elapsed_s * (1 - fraction) / fraction if fraction > 0 else None




# ----------------------------------------------------------------------------------------------- model


def _model_device(model: torch.nn.Module) -> torch.device:
    for param in model.parameters():
        return param.device
    return torch.device("cpu")


def _fold_batch_norm(net: torch.nn.Module) -> None:
    """Fold each eval-mode BatchNorm into the convolution before it (in place, on an inference copy):
    15 % less CPU time with the fast preset, same result up to float rounding."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for module in net.modules():
        if not isinstance(module, torch.nn.Sequential):
            continue
        for index in range(len(module) - 1):
            conv, norm = module[index], module[index + 1]
            if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d) and not norm.training:
                module[index] = fuse_conv_bn_eval(conv, norm)
                module[index + 1] = torch.nn.Identity()


@contextlib.contextmanager
def _ready_model(model: torch.nn.Module, config: InferConfig) -> Iterator[tuple[torch.nn.Module, torch.device]]:
    """The model in eval mode on the configured device; the caller's model keeps its device, memory format
    and training flag (a copy is made when the device or memory format must change)."""
    current = _model_device(model)
    device = current if config.device == "auto" else select_device(config.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    same_device = current.type == device.type and (device.type != "cuda" or current.index == device.index)
    # channels-last: 2.4x less CPU time per pixel with the fast preset on a 2-core x86 CPU (oneDNN), and
    # the layout tensor cores want on CUDA; done on a copy so that the caller's model stays as it was
    channels_last = device.type in ("cpu", "cuda")
    net = model
    if not same_device or channels_last:
        net = copy.deepcopy(model).to(device).eval()
        _fold_batch_norm(net)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
    was_training = model.training
    net.eval()
    try:
        yield net, device
    finally:
        if net is model:
            model.train(was_training)


# ----------------------------------------------------------------------------------------------- predicting


Predictor = Callable[[torch.Tensor], torch.Tensor]
"""A batch of (N, C, h, w) float32 tiles on the device -> (N, K, h', w') class probabilities (softmax).

The seam of the tiled predictor, as MONAI's ``sliding_window_inference`` takes a ``predictor``: the default
is the network under autocast followed by a softmax; tests pass their own (an out-of-memory error on the
first batch, a per-pixel rule)."""


class _TiledPredictor:
    """Runs tile batches; remembers a batch or tile reduced after an out-of-memory error across slices."""

    def __init__(self, net: torch.nn.Module, device: torch.device, config: InferConfig,
                 predictor: Predictor | None = None) -> None:
        self.net = net
        self.device = device
        self.config = config
        self.mc: ModelConfig = net.config  # type: ignore[assignment]
        self.amp = autocast_dtype(device, config.amp)
        self.predictor: Predictor = predictor if predictor is not None else self._softmax
        self.tile: int | None = None
        self.batch: int | None = None

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities of a batch of tiles already on the device (averaged over the 8 symmetries
        of the square with test-time augmentation)."""
        with torch.inference_mode():
            if not self.config.tta:
                return self.predictor(x)
            total = None
            for turns in range(4):  # the 8 symmetries of the square: 4 rotations, each also mirrored
                for flip in (False, True):
                    view = torch.rot90(x, turns, dims=(2, 3))
                    view = view.flip(3) if flip else view
                    probs = self.predictor(view)
                    probs = probs.flip(3) if flip else probs
                    probs = torch.rot90(probs, -turns, dims=(2, 3))
                    total = probs if total is None else total + probs
            return total / 8

    def _softmax(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type in ("cpu", "cuda"):
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            logits = self.net(x)
        with torch.inference_mode():
            return torch.softmax(logits.float(), dim=1)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp is not None:
            try:
                return torch.autocast(self.device.type, dtype=self.amp)
            except (RuntimeError, ValueError) as exc:  # an older PyTorch without autocast on this device
                log.info("no mixed precision on %s (%s); using float32", self.device, exc)
                self.amp = None
        return contextlib.nullcontext()

    def run(self, image: np.ndarray, slice_index: int = 0, slices_total: int = 1,
            start: float | None = None) -> Iterator[InferProgress]:
        start = time.perf_counter() if start is None else start
        channels, height, width = image.shape
        if self.tile is None or self.batch is None:
            self.tile, self.batch = auto_settings(self.mc, self.config, self.device)
        while True:
            layout = plan_tiles((height, width), self.mc, self.config, tile_size=self.tile)
            try:
                yield from self._run_layout(image, layout, slice_index, slices_total, start)
                return
            except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are handled
                if not is_out_of_memory(exc):
                    raise
                self._release()
                current = max(layout.tile_shape)
                smaller = max(current // 2, smallest_tile(self.mc, self.config))
                if smaller < current:
                    log.warning("out of memory with %d px tiles; retrying with %d px tiles", current, smaller)
                    self.tile = smaller
                    continue
                raise InferenceError(
                    f"out of memory even with batch 1 and {layout.y.tile}x{layout.x.tile} tiles on "
                    f"{self.device}; close other programs or use a smaller network"
                ) from None

    def _release(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _run_layout(self, image: np.ndarray, layout: TileLayout, slice_index: int, slices_total: int,
                    start: float) -> Iterator[InferProgress]:
        blender = TileBlender(image, layout, self.mc.n_classes, self.config.blend, self.device)
        tiles = [(i, j) for i in range(layout.y.count) for j in range(layout.x.count)]
        done = 0
        while done < len(tiles):
            chunk = tiles[done : done + self.batch]
            try:
                probs = self._forward(blender.tiles(chunk))
            except Exception as exc:  # noqa: BLE001
                if not is_out_of_memory(exc) or self.batch <= 1:
                    raise
                self._release()
                self.batch //= 2
                log.warning("out of memory with a batch of %d tiles; retrying with %d", len(chunk), self.batch)
                continue
            blender.add(chunk, probs)
            done += len(chunk)
            last = done == len(tiles)
            yield InferProgress(done, len(tiles), slice_index, slices_total, time.perf_counter() - start,
                                layout.tile_shape, self.batch, str(self.device),
                                blender.result() if last else None)


def _check_image(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise InferenceError(f"expected an image of shape (C, Y, X), got shape {image.shape}")
    expected = model.config.in_channels  # type: ignore[union-attr]
    if image.shape[0] != expected:
        raise InferenceError(
            f"the model expects {expected} input channel{'s' * (expected != 1)} but the image has "
            f"{image.shape[0]}; use a model trained on images like this one"
        )
    if min(image.shape[1:]) < 1:
        raise InferenceError(f"the image is empty (shape {image.shape})")
    return np.ascontiguousarray(image, dtype=np.float32)


def slice_memory(shape: Sequence[int], n_classes: int, raw_itemsize: int = 4) -> int:
    """Rough peak bytes of predicting one (C, Y, X) slice besides the network: the raw and normalised slice,
    its mirror-padded copy, the blended (K, Y, X) probabilities and their weights, and the label image."""
    channels, height, width = (int(n) for n in shape)
    per_pixel = channels * (raw_itemsize + 8) + 12 * n_classes + 16
    return height * width * per_pixel


def check_slice_memory(shape: Sequence[int], n_classes: int, raw_itemsize: int = 4, path=None) -> None:
    """Raise :class:`InferenceError` when predicting a (C, Y, X) slice of ``shape`` cannot fit in the memory
    available now (a slice is predicted whole; a stack streams slice by slice, so only one slice counts)."""
    from ..io import available_ram, format_bytes

    needed, free = slice_memory(shape, n_classes, raw_itemsize), available_ram()
    if needed > free:
        what = f"'{path}'" if path is not None else "the image"
        raise InferenceError(
            f"{what} is too large to predict here: one slice of {shape[-2]} x {shape[-1]} pixels needs about "
            f"{format_bytes(needed)} of memory, but only {format_bytes(free)} is available. Crop or downsample "
            "it (e.g. in Fiji with Image > Crop or Image > Scale) or split it into smaller images, close other "
            "programs, or use a computer with more memory")


def iter_predict(model: torch.nn.Module, image: np.ndarray, config: InferConfig = InferConfig(),
                 predictor: Predictor | None = None) -> Iterator[InferProgress]:
    """Predict a normalised (C, Y, X) image tile by tile, yielding progress after each tile batch.

    The last item has ``.result``: (K, Y, X) float32 softmax probabilities. Stop iterating (or call
    ``close()``) to cancel between tile batches. ``predictor`` (see :data:`Predictor`) replaces the
    network's forward pass and softmax on each batch of tiles; test-time augmentation wraps it.
    """
    image = _check_image(model, image)
    check_slice_memory(image.shape, model.config.n_classes, 0)  # type: ignore[union-attr]
    with _ready_model(model, config) as (net, device):
        yield from _TiledPredictor(net, device, config, predictor).run(image)


def predict_probabilities(model: torch.nn.Module, image: np.ndarray, config: InferConfig = InferConfig(),
                          predictor: Predictor | None = None) -> np.ndarray:
    """(K, Y, X) float32 softmax probabilities of a normalised (C, Y, X) (or (Y, X)) image."""
    result = None
    for progress in iter_predict(model, image, config, predictor):
        result = progress.result
    assert result is not None
    return result


def iter_predict_stack(model: torch.nn.Module, stack: Any, config: InferConfig = InferConfig(),
                       prepare: Callable[[np.ndarray], np.ndarray] | None = None,
                       predictor: Predictor | None = None) -> Iterator[InferProgress]:
    """Predict every slice of a stack, one slice in memory at a time.

    ``stack``: an :class:`~unet_studio.core.io.stack.ImageStack` (anything with ``len()`` and ``get_slice(i)``)
    or an (S, C, Y, X) array. ``prepare`` turns a raw (C, Y, X) slice into the network's input (e.g.
    :func:`make_normalizer`); without it slices are only cast to float32. Yields progress after each tile
    batch; the last item of each slice carries that slice's ``result`` (write it out and drop it).
    ``predictor``: as in :func:`iter_predict`.
    """
    get = stack.get_slice if hasattr(stack, "get_slice") else stack.__getitem__
    total = len(stack)
    shape, dtype = tuple(stack.shape), np.dtype(getattr(stack, "dtype", np.float32))
    if total and len(shape) == 4:  # before reading anything: refuse a slice that cannot fit
        check_slice_memory(shape[1:], model.config.n_classes, dtype.itemsize, getattr(stack, "path", None))  # type: ignore[union-attr]
    start = time.perf_counter()
    with _ready_model(model, config) as (net, device):
        tiled = _TiledPredictor(net, device, config, predictor)
        for index in range(total):
            raw = np.asarray(get(index))
            image = _check_image(model, prepare(raw) if prepare is not None else raw)
            yield from tiled.run(image, index, total, start)


def make_normalizer(normalization: dict[str, Any] | None) -> Callable[[np.ndarray], np.ndarray]:
    """The input normalisation a model was trained with (``ModelInfo.normalization``) as a function."""
    spec = {**DEFAULT_NORMALIZATION, **(normalization or {})}
    method = spec.get("method", "percentile")
    if method == "none":
        return lambda image: np.asarray(image, np.float32)
    if method != "percentile":
        raise ConfigError(f"unknown normalisation method {method!r} in the model folder")
    from ..io import normalize_percentile

    low, high = float(spec["low"]), float(spec["high"])
    return functools.partial(normalize_percentile, low=low, high=high)


# ----------------------------------------------------------------------------------------------- outputs


def probabilities_to_uint8(probs: np.ndarray) -> np.ndarray:
    """Compact overlay form: (K, Y, X) uint8 with value ``round(p * 255)`` (p = value / 255, error <= 1/510)."""
    out = np.multiply(probs, 255.0, dtype=np.float32)
    np.clip(out, 0, 255, out=out)
    return np.rint(out, out=out).astype(np.uint8)


__all__ = [
    "AxisPlan", "InferProgress", "Predictor", "TileLayout", "available_memory", "eta_from", "exact_context",
    "is_out_of_memory", "slice_fraction",
    "iter_predict", "iter_predict_stack", "label_dtype", "make_normalizer", "plan_tiles",
    "predict_probabilities", "probabilities_to_labels", "probabilities_to_uint8", "smallest_tile", "tile_bytes",
    "tiff_memmap", "tiles_are_exact",
]
