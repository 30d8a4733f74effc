"""The U-Net of Ronneberger, Fischer and Brox (MICCAI 2015), built from small modules.

With ``padding="valid"`` and the defaults this is the paper's network exactly: 23 convolution layers
(18 3x3 convolutions, 4 2x2 up-convolutions, the 1x1 head), widths 64..1024, 572x572 in, 388x388 out,
with the contracting-path features centre-cropped before each concatenation. ``padding="same"`` pads
the 3x3 convolutions so that the output has the size of the input, which is what most users want.

``forward`` returns logits; callers apply the softmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..config import ModelConfig
from ..errors import ConfigError


def _norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        # Groups of about 8 channels; fall back to fewer groups for narrow layers.
        groups = math.gcd(channels, max(1, channels // 8)) or 1
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by (optional normalisation and) ReLU."""

    def __init__(self, in_channels: int, out_channels: int, padding: str, norm: str) -> None:
        pad = 1 if padding == "same" else 0
        bias = norm == "none"
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=pad, bias=bias),
            _norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=pad, bias=bias),
            _norm_layer(norm, out_channels),
            nn.ReLU(inplace=True),
        )


class UpSample(nn.Module):
    """2x upsampling that halves the channels: a 2x2 up-convolution, or bilinear + 1x1 convolution."""

    def __init__(self, in_channels: int, mode: str) -> None:
        super().__init__()
        out_channels = in_channels // 2
        if mode == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, out_channels, kernel_size=1),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


def center_crop(features: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop the centre ``height`` x ``width`` of an NCHW tensor (the paper's skip-connection crop)."""
    top = (features.shape[-2] - height) // 2
    left = (features.shape[-1] - width) // 2
    return features[..., top : top + height, left : left + width]


class UpBlock(nn.Module):
    """Expansive-path level: upsample, concatenate the (cropped) skip features, two 3x3 convolutions."""

    def __init__(self, in_channels: int, padding: str, norm: str, upsample: str) -> None:
        super().__init__()
        out_channels = in_channels // 2
        self.up = UpSample(in_channels, upsample)
        self.conv = DoubleConv(in_channels, out_channels, padding, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if skip.shape[-2:] != x.shape[-2:]:
            skip = center_crop(skip, x.shape[-2], x.shape[-1])
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """U-Net for per-pixel classification.

    Parameters
    ----------
    in_channels, n_classes, base_channels, depth, padding, norm, dropout, upsample
        See :class:`~unet_studio.core.config.ModelConfig`.

    Examples
    --------
    >>> net = UNet(padding="valid")          # the paper's network
    >>> net(torch.zeros(1, 1, 572, 572)).shape
    torch.Size([1, 2, 388, 388])
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 2,
        base_channels: int = 64,
        depth: int = 5,
        padding: str = "same",
        norm: str = "none",
        dropout: float = 0.0,
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        self.config = ModelConfig(
            in_channels=in_channels,
            n_classes=n_classes,
            base_channels=base_channels,
            depth=depth,
            padding=padding,
            norm=norm,
            dropout=dropout,
            upsample=upsample,
        )
        widths = [base_channels * 2**level for level in range(depth)]
        self.widths = tuple(widths)
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.down.append(DoubleConv(previous, width, padding, norm))
            previous = width
        self.pool = nn.MaxPool2d(2, 2)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.ModuleList(UpBlock(width * 2, padding, norm, upsample) for width in reversed(widths[:-1]))
        self.head = nn.Conv2d(widths[0], n_classes, kernel_size=1)
        self._init_weights()

    @classmethod
    def from_config(cls, config: ModelConfig) -> "UNet":
        return cls(**config.to_dict())

    def _init_weights(self) -> None:
        # The paper draws weights from a Gaussian with std sqrt(2/N), N = fan-in (He initialisation).
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            if level > 0:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        x = self.dropout(skips.pop())
        for block in self.up:
            x = block(x, skips.pop())
        return self.head(x)

    def output_size(self, input_size: int) -> int:
        """Output side length for an input side length (raises ConfigError if not admissible)."""
        return output_size(input_size, self.config.depth, self.config.padding)


def _valid_output(size: int, depth: int) -> int | None:
    """Output size of a valid-mode network, or None if some pooling sees an odd size or nothing is left."""
    s = size
    for _ in range(depth - 1):
        s -= 4
        if s <= 0 or s % 2:
            return None
        s //= 2
    s -= 4
    if s <= 0:
        return None
    for _ in range(depth - 1):
        s = 2 * s - 4
        if s <= 0:
            return None
    return s


def is_admissible(size: int, depth: int, padding: str) -> bool:
    """Whether a square side ``size`` passes through the network without rounding."""
    if size < 1:
        return False
    if padding == "same":
        return size % (2 ** (depth - 1)) == 0
    return _valid_output(size, depth) is not None


def output_size(size: int, depth: int, padding: str) -> int:
    """Output side length for an admissible input side length."""
    if not is_admissible(size, depth, padding):
        lower, upper = nearest_admissible(size, depth, padding)
        raise ConfigError(
            f"input size {size} does not fit a {padding}-mode U-Net of depth {depth}; "
            f"nearest admissible sizes: {lower} and {upper}"
        )
    if padding == "same":
        return size
    out = _valid_output(size, depth)
    assert out is not None
    return out


def nearest_admissible(size: int, depth: int, padding: str) -> tuple[int | None, int]:
    """The largest admissible size <= ``size`` (None if there is none) and the smallest >= ``size``."""
    lower = next((s for s in range(size, 0, -1) if is_admissible(s, depth, padding)), None)
    upper = next(s for s in range(max(size, 1), size + 2**depth * 8 + 64) if is_admissible(s, depth, padding))
    return lower, upper


def context_margin(depth: int, padding: str) -> int:
    """Pixels of context lost on each side by a valid-mode network (0 in same mode)."""
    if padding == "same":
        return 0
    smallest = nearest_admissible(1, depth, padding)[1]
    return (smallest - output_size(smallest, depth, padding)) // 2


@dataclass(frozen=True)
class SizeInfo:
    """What the network does with an input side length: see :func:`size_info`."""

    input_size: int
    admissible: bool
    output_size: int | None
    lower: int | None
    upper: int


def size_info(size: int, config: ModelConfig) -> SizeInfo:
    """For an input side length: is it admissible, its output size, and the nearest admissible sizes.

    Valid mode follows the paper's rule (every 2x2 pooling sees an even size); same mode needs a
    multiple of ``2**(depth-1)``.
    """
    lower, upper = nearest_admissible(size, config.depth, config.padding)
    ok = is_admissible(size, config.depth, config.padding)
    out = output_size(size, config.depth, config.padding) if ok else None
    return SizeInfo(size, ok, out, lower, upper)

