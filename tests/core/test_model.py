"""The U-Net of Ronneberger et al. 2015: architecture, sizes, gradients, and learning on real data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from unet_studio.core.config import ModelConfig
from unet_studio.core.errors import ConfigError
from unet_studio.core.model.unet import (
    UNet,
    context_margin,
    is_admissible,
    nearest_admissible,
    output_size,
    size_info,
)


def test_paper_network_has_23_convolutions_and_maps_572_to_388():
    net = UNet(in_channels=1, n_classes=2, base_channels=64, depth=5, padding="valid")
    assert sum(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in net.modules()) == 23
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in net.modules()) == 4
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 1  # shared, applied 4 times
    with torch.no_grad():
        out = net(torch.zeros(1, 1, 572, 572))
    assert out.shape == (1, 2, 388, 388)
    assert context_margin(5, "valid") == 92  # pixels of context lost on each side


def test_paper_channel_widths():
    net = UNet(padding="valid")
    assert net.widths == (64, 128, 256, 512, 1024)
    down_out = [block[3].out_channels for block in net.down]
    assert down_out == [64, 128, 256, 512, 1024]
    ups = [block.up.up for block in net.up]
    assert [(u.in_channels, u.out_channels, u.kernel_size, u.stride) for u in ups] == [
        (1024, 512, (2, 2), (2, 2)),
        (512, 256, (2, 2), (2, 2)),
        (256, 128, (2, 2), (2, 2)),
        (128, 64, (2, 2), (2, 2)),
    ]
    assert net.head.kernel_size == (1, 1) and net.head.in_channels == 64 and net.head.out_channels == 2
    # Every 3x3 convolution is unpadded in the paper's network.
    convs3 = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) == 18 and all(m.padding == (0, 0) for m in convs3)


def test_same_mode_keeps_256():
    net = UNet(base_channels=8, depth=5, padding="same")
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 256, 256)).shape == (1, 2, 256, 256)


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_same_mode_every_admissible_size_maps_to_itself(depth):
    net = UNet(base_channels=2, depth=depth, padding="same").eval()
    step = 2 ** (depth - 1)
    sizes = [s for s in range(step, 8 * step + 1, step)]
    for size in sizes:
        assert is_admissible(size, depth, "same")
        assert output_size(size, depth, "same") == size
        with torch.no_grad():
            out = net(torch.zeros(1, 1, size, size + step))
        assert out.shape[-2:] == (size, size + step)


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_valid_mode_admissible_sizes_match_the_network(depth):
    net = UNet(base_channels=2, depth=depth, padding="valid").eval()
    lower, upper = nearest_admissible(100, depth, "valid")
    for size in {s for s in (lower, upper) if s}:
        with torch.no_grad():
            out = net(torch.zeros(1, 1, size, size))
        assert out.shape[-1] == output_size(size, depth, "valid")
        # every 2x2 pooling saw an even size: the skip crop is symmetric
        assert (size - out.shape[-1]) % 2 == 0


def test_size_helper_reports_nearest_admissible_sizes():
    config = ModelConfig(padding="valid")
    info = size_info(570, config)
    assert not info.admissible and info.output_size is None
    assert info.upper == 572 and info.lower is not None and info.lower < 570
    assert size_info(572, config).output_size == 388
    same = size_info(250, ModelConfig(depth=5))
    assert (same.lower, same.upper) == (240, 256)
    with pytest.raises(ConfigError, match="nearest admissible"):
        output_size(570, 5, "valid")


@pytest.mark.parametrize(
    "options",
    [
        {"norm": "batch"},
        {"norm": "group"},
        {"dropout": 0.5},
        {"upsample": "bilinear"},
        {"padding": "valid", "upsample": "bilinear", "norm": "group"},
    ],
)
def test_options_build_and_gradients_reach_first_layer(options):
    net = UNet(in_channels=2, n_classes=3, base_channels=4, depth=3, **options)
    size = 92 if options.get("padding") == "valid" else 64
    x = torch.randn(2, 2, size, size)
    out = net(x)
    assert out.shape[:2] == (2, 3)
    out.mean().backward()
    first = net.down[0][0].weight
    assert first.grad is not None and float(first.grad.abs().sum()) > 0


def test_config_round_trip_and_validation():
    config = ModelConfig(in_channels=3, n_classes=4, base_channels=16, depth=4, norm="batch", dropout=0.5)
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    net = UNet.from_config(config)
    assert net.config == config
    with pytest.raises(ConfigError):
        ModelConfig(padding="reflect")
    with pytest.raises(ConfigError):
        ModelConfig(depth=0)
    # unknown keys from a newer version are ignored
    assert ModelConfig.from_dict({**config.to_dict(), "future_option": 1}) == config


def test_tiny_unet_overfits_a_real_isbi_crop(data_dir):
    import tifffile

    torch.manual_seed(0)
    image = tifffile.imread(data_dir / "isbi2012/images/000.tif")[200:264, 200:264].astype(np.float32)
    labels = tifffile.imread(data_dir / "isbi2012/labels/000.tif")[200:264, 200:264]
    target = torch.from_numpy((labels < 128).astype(np.int64))[None]  # 1 = membrane
    x = torch.from_numpy((image - image.mean()) / image.std())[None, None]
    net = UNet(base_channels=8, depth=3)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    first_loss = None
    for _ in range(300):
        optimiser.zero_grad()
        loss = loss_fn(net(x), target)
        loss.backward()
        optimiser.step()
        first_loss = first_loss if first_loss is not None else loss.item()
    with torch.no_grad():
        accuracy = float((net(x).argmax(1) == target).float().mean())
    assert loss.item() < 0.2 * first_loss
    assert accuracy > 0.97
