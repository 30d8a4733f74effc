"""What a training run starts from: the model (new, or resumed from a model folder with its history and
classes, and the optimizer moments saved with it), the patch size, the augmentation ranges, the border
weight maps, the model's place on the device and its optimizer (used by :mod:`.loop`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy import ndimage

from . import augment as aug
from ..config import ModelConfig, TrainConfig
from .data import TrainingSet
from ..errors import DataError
from .losses import border_weight_map
from ..model import UNet, load_model, nearest_admissible

log = logging.getLogger(__name__)


def augment_params(config: TrainConfig) -> aug.AugmentParams | None:
    """The augmentation ranges for a training configuration (None: augmentation off)."""
    if not config.augment:
        return None
    return aug.AugmentParams(elastic_sigma=config.elastic_sigma, elastic_grid=config.elastic_grid,
                             p_intensity=0.8 if config.intensity_augment else 0.0)


def admissible_patch(size: int, model_config: ModelConfig) -> int:
    """The admissible input side nearest below ``size`` (or above, when there is none below)."""
    lower, upper = nearest_admissible(size, model_config.depth, model_config.padding)
    return lower if lower is not None else upper


def border_maps(dataset: TrainingSet, labels: list[np.ndarray], config: TrainConfig) -> list[np.ndarray] | None:
    """Per-image border weight maps (the paper's w0, sigma) of the label images, or None when they are off."""
    if not config.use_border_weights:
        return None
    maps = []
    for index, label in enumerate(labels):
        if dataset.instances is not None:
            instances = dataset.instances[index]
        else:  # objects: connected components of the last class (e.g. cell interiors)
            instances, _ = ndimage.label(label == dataset.n_classes)
        maps.append(border_weight_map(instances, config.border_weight_w0, config.border_weight_sigma))
    return maps


def build_model(dataset: TrainingSet, model_config: ModelConfig, init_from, class_values, class_names):
    """The model to train, new or loaded from ``init_from``: (model, history, step offset, class values,
    class names, the loaded ModelInfo or None)."""
    history, offset, previous = [], 0, None
    if init_from is not None:
        model, previous = load_model(init_from, "cpu")
        cfg = model.config
        if cfg.in_channels != dataset.in_channels or cfg.n_classes != dataset.n_classes:
            raise DataError(
                f"the model in {init_from} takes {cfg.in_channels} channel(s) and predicts {cfg.n_classes} "
                f"classes, but the training data has {dataset.in_channels} channel(s) and "
                f"{dataset.n_classes} classes; train a new model instead of continuing this one")
        history = list(previous.history)
        offset = int(previous.extra.get("steps", history[-1]["step"] if history else 0))
        class_values = class_values or previous.class_values
        class_names = class_names or previous.class_names
    else:
        cfg = model_config.replace(in_channels=dataset.in_channels, n_classes=dataset.n_classes)
        model = UNet.from_config(cfg)
    class_values = list(class_values or range(1, dataset.n_classes + 1))
    class_names = list(class_names or [f"class {v}" for v in class_values])
    if len(class_values) != dataset.n_classes or len(class_names) != dataset.n_classes:
        raise DataError(f"{dataset.n_classes} classes but {len(class_values)} class values and "
                        f"{len(class_names)} class names")
    return model, history, offset, class_values, class_names, previous


_MOMENTS = ("step", "exp_avg", "exp_avg_sq")


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The Adam(W) moments of ``optimizer`` as flat named tensors ("<parameter index>.<name>"), for saving.

    Empty when there is nothing worth keeping: no step taken yet, or a moment that is not finite.
    """
    out = {}
    for index, state in optimizer.state_dict()["state"].items():
        for name in _MOMENTS:
            if name not in state:
                return {}
            value = torch.as_tensor(state[name]).detach()
            if not torch.isfinite(value).all():
                return {}
            out[f"{index}.{name}"] = value
    return out


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> bool:
    """Load moments saved by :func:`optimizer_tensors` into ``optimizer``, all or nothing.

    Returns False (and changes nothing) when they do not fit its parameters: another network, or
    another optimizer.
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if len(tensors) != len(_MOMENTS) * len(params):
        return False
    state = {}
    for index, param in enumerate(params):
        step, avg, avg_sq = (tensors.get(f"{index}.{name}") for name in _MOMENTS)
        if step is None or avg is None or avg_sq is None or step.numel() != 1:
            return False
        if avg.shape != param.shape or avg_sq.shape != param.shape:
            return False
        # Same device, dtype and memory format (channels-last) as the parameter.
        state[index] = {"step": step.reshape(()).to(torch.float32),
                        "exp_avg": torch.empty_like(param).copy_(avg),
                        "exp_avg_sq": torch.empty_like(param).copy_(avg_sq)}
    state_dict = optimizer.state_dict()
    state_dict["state"] = state
    optimizer.load_state_dict(state_dict)
    return True


def place_model(model: UNet, device: torch.device) -> tuple[UNet, bool]:
    """The model on ``device`` for training, and whether its batches should be channels-last too."""
    model = model.to(device)
    # Channels-last pays on CUDA and on the CPU (oneDNN): 205 vs 249 ms per fast-preset step here.
    channels_last = device.type in ("cuda", "cpu")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return model, channels_last


def make_optimizer(model: UNet, config: TrainConfig, resume_moments: dict[str, torch.Tensor] | None,
                   init_from=None) -> torch.optim.Optimizer:
    """AdamW over the model's parameters, with the moments saved in ``init_from`` when they fit."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    if resume_moments:
        if restore_optimizer(optimizer, resume_moments):
            log.info("resuming with the optimizer state saved in %s", init_from)
        else:
            log.warning("the optimizer state in %s does not fit this network; starting with fresh moments",
                        init_from)
    return optimizer
