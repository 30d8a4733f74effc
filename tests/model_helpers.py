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


#: Min-max normalisation of the whole image (percentiles 0 and 100): the threshold network sees 0..1.
MIN_MAX = {"method": "percentile", "low": 0.0, "high": 100.0}


def save_threshold_model(folder, class_values=(0, 1), normalization=MIN_MAX):
    """:func:`threshold_net` saved as a model folder (classes background and nucleus); returns ``folder``."""
    from unet_studio.core.model import ModelInfo, save_model

    net = threshold_net()
    save_model(folder, net, ModelInfo(net.config, class_values=list(class_values),
                                      class_names=["background", "nucleus"], normalization=dict(normalization)))
    return folder


#: The normalisation the stand-in starting model was "trained" with: not the default, so a test sees it kept.
STAND_IN_NORMALIZATION = {"method": "percentile", "low": 0.5, "high": 99.5}


def write_starting_model(models_dir, name: str = "nuclei", n_classes: int = 2, moments: bool = True):
    """A stand-in for a bundled starting model, written as ``models_dir/name`` (point ``UNET_STUDIO_MODELS``
    at ``models_dir``): :func:`threshold_net` (it finds the bright nuclei of the sample before any training),
    classes background and nucleus (values 0 and 1, as ``train --instances`` writes them), a history of its
    own and, with ``moments``, optimizer moments that fit it (which a run started from it must not use).
    Returns the model folder."""
    from pathlib import Path

    from unet_studio.core.model import ModelInfo, save_model

    net = threshold_net()
    if n_classes != 2:
        net = UNet(in_channels=1, n_classes=n_classes, base_channels=4, depth=3).eval()
    names = ["background", "nucleus"] if n_classes == 2 else [f"class {i}" for i in range(n_classes)]
    info = ModelInfo(model_config=net.config, class_values=list(range(n_classes)), class_names=names,
                     normalization=dict(STAND_IN_NORMALIZATION),
                     history=[{"step": 5000, "epoch": 50, "loss": 0.1}], extra={"steps": 5000})
    state = None
    if moments:
        state = {}
        for index, param in enumerate(net.parameters()):
            state.update({f"{index}.step": torch.tensor(5000.0), f"{index}.exp_avg": torch.full_like(param, 0.5),
                          f"{index}.exp_avg_sq": torch.full_like(param, 1e-12)})
    return save_model(Path(models_dir) / name, net, info, optimizer_state=state)
