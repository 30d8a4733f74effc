"""Blending tile predictions into one probability map, on the host or on the accelerator.

Overlap-tile prediction cuts a mirror-padded slice into tiles, predicts them in batches and blends the kept
centre of each tile into a (K, Y, X) map with weights that ramp across the overlaps. Where the blending
happens matters on a GPU: copying every batch of probabilities to the host and blending it there with
numpy left an H200 waiting, and a 4096 x 4096 slice ran at 50 megapixels/s whatever the tile size or
network (`python bench/gpu.py`), against 260 for MONAI's ``sliding_window_inference``, which blends on the
device. So on an accelerator the padded slice, the accumulated map and its weights live on the device when
they fit in a quarter of its free memory, and only the final map is copied back; on the CPU, or when they do
not fit, they live in host memory as before. Both blend in float32, tile by tile in the same order.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .tiling import TileLayout, available_memory, blend_window

log = logging.getLogger(__name__)

#: Share of the accelerator's free memory that the padded slice and the blended map may take.
DEVICE_SHARE = 0.25


def mirror_pad(image: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """Mirror (reflect) padding of a (C, Y, X) image; reflects repeatedly when the pad is wider than the image."""
    out = image
    for axis, pad in ((1, pads[0]), (2, pads[1])):
        widths = [(0, 0)] * 3
        widths[axis] = pad
        out = np.pad(out, widths, mode="reflect" if image.shape[axis] > 1 else "edge")
    return out


class TileBlender:
    """Tiles of one slice for the network, and the blend of their predictions (host or device arrays).

    Parameters
    ----------
    image : numpy.ndarray
        The normalised (C, Y, X) float32 slice.
    layout : TileLayout
        Where the tiles are, how much of each is kept, and the padding.
    n_classes : int
        K, the number of probability maps.
    blend : str
        The blending window (``InferConfig.blend``).
    device : torch.device
        Where the network runs; the blend happens there too when it is an accelerator with room for it.
    on_device : bool, optional
        Blend with torch on ``device`` (True) or with numpy on the host (False); by default on an
        accelerator with room for it.
    """

    def __init__(self, image: np.ndarray, layout: TileLayout, n_classes: int, blend: str,
                 device: torch.device, on_device: bool | None = None) -> None:
        ya, xa = layout.y, layout.x
        self.ya, self.xa, self.device = ya, xa, device
        padded = mirror_pad(image, ((ya.pad_before, ya.pad_after), (xa.pad_before, xa.pad_after)))
        windows_y = [blend_window(ya, i, blend) for i in range(ya.count)]
        windows_x = [blend_window(xa, j, blend) for j in range(xa.count)]
        shape = (n_classes, ya.length, xa.length)
        if on_device is None:
            on_device = device.type != "cpu" and self._fits(padded, shape)
        self.on_device = on_device
        if self.on_device:
            try:
                self._allocate_on_device(padded, shape, windows_y, windows_x)
                return
            except RuntimeError as exc:  # out of memory after all: the host has room
                log.info("blending on the host: %s", exc)
                self.on_device = False
        self.padded = padded
        self.acc = np.zeros(shape, np.float32)
        self.weight = np.zeros(shape[1:], np.float32)
        self.windows_y, self.windows_x = windows_y, windows_x

    def _fits(self, padded: np.ndarray, shape: tuple[int, int, int]) -> bool:
        needed = 4 * (padded.size + int(np.prod(shape)) + shape[1] * shape[2])
        return needed <= DEVICE_SHARE * available_memory(self.device)

    def _allocate_on_device(self, padded, shape, windows_y, windows_x) -> None:
        self.padded = torch.from_numpy(np.ascontiguousarray(padded)).to(self.device)
        self.acc = torch.zeros(shape, dtype=torch.float32, device=self.device)
        self.weight = torch.zeros(shape[1:], dtype=torch.float32, device=self.device)
        self.windows_y = [torch.from_numpy(w).to(self.device) for w in windows_y]
        self.windows_x = [torch.from_numpy(w).to(self.device) for w in windows_x]

    def tiles(self, chunk: list[tuple[int, int]]) -> torch.Tensor:
        """The (N, C, tile, tile) input tiles at grid positions ``chunk``, on the network's device."""
        ya, xa = self.ya, self.xa
        views = [self.padded[:, i * ya.stride : i * ya.stride + ya.tile, j * xa.stride : j * xa.stride + xa.tile]
                 for i, j in chunk]
        if self.on_device:
            return torch.stack(views)
        return torch.from_numpy(np.stack(views)).to(self.device, non_blocking=True)

    def add(self, chunk: list[tuple[int, int]], probs: torch.Tensor) -> None:
        """Blend the (N, K, h, w) predictions of the tiles at ``chunk`` into the map."""
        ya, xa = self.ya, self.xa
        probs = probs[:, :, ya.crop : ya.crop + ya.kept, xa.crop : xa.crop + xa.kept]
        if self.on_device:
            probs = probs.float()
            outer = torch.outer
        else:
            probs = probs.cpu().numpy()
            outer = np.outer
        for (i, j), tile_probs in zip(chunk, probs):
            y0, x0 = i * ya.stride, j * xa.stride
            hy, wx = min(ya.kept, ya.length - y0), min(xa.kept, xa.length - x0)
            w = outer(self.windows_y[i][:hy], self.windows_x[j][:wx])
            self.acc[:, y0 : y0 + hy, x0 : x0 + wx] += tile_probs[:, :hy, :wx] * w
            self.weight[y0 : y0 + hy, x0 : x0 + wx] += w

    def result(self) -> np.ndarray:
        """The blended (K, Y, X) float32 probabilities, in host memory."""
        self.acc /= self.weight
        if self.on_device:
            return self.acc.cpu().numpy()
        return self.acc
