"""Networks built in place for tests: known outputs without training."""

from __future__ import annotations

import torch

from unet_studio.core.model import UNet


def threshold_net() -> UNet:
    """A same-mode U-Net (base 4, depth 3) whose foreground logit is 20 * (x - 0.5) of its normalised input:
    it finds bright objects (the nuclei of the bundled sample) without training."""
    net = UNet(in_channels=1, n_classes=2, base_channels=4, depth=3)
    with torch.no_grad():
        for param in net.parameters():
            param.zero_()
        for conv in (net.down[0][0], net.down[0][3], net.up[-1].conv[0], net.up[-1].conv[3]):
            conv.weight[0, 0, 1, 1] = 1.0
        net.head.weight[1, 0] = 20.0
        net.head.bias[1] = -10.0
    return net.eval()
