"""What a training run starts from: the model (new, resumed from a model folder with its history and
classes and the optimizer moments saved with it, or fine-tuned from the weights of a starting model,
:class:`StartingWeights`), the patch size, the augmentation ranges, the border weight maps, the model's place
on the device and its optimizer (used by :mod:`.loop`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from . import augment as aug
from ..config import ModelConfig, TrainConfig
from .data import TrainingSet
from ..errors import DataError
from .losses import border_weight_map
from ..model import ModelInfo, UNet, load_model, load_optimizer_state, nearest_admissible

log = logging.getLogger(__name__)


def augment_params(config: TrainConfig) -> aug.AugmentParams | None:
    """The augmentation ranges for a training configuration (None: augmentation off)."""
    if not config.augment:
        return None
    return aug.AugmentParams(elastic_sigma=config.elastic_sigma, elastic_grid=config.elastic_grid,
                             scale=tuple(config.scale_range), p_intensity=0.8 if config.intensity_augment else 0.0)


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


@dataclass(frozen=True)
class StartingWeights:
    """A model folder whose weights only start a run (``train(..., init_from=StartingWeights(...))``).

    Unlike resuming (``init_from`` a folder), the run keeps the model's architecture and normalisation but
    starts a fresh history at step 0 with fresh optimizer moments, and saves the caller's class values and
    names: a starting model fine-tuned on a person's labels becomes their model.

    Attributes
    ----------
    folder
        The model folder.
    label
        How messages name it ("the nuclei model"); default "the model in FOLDER".
    """

    folder: Path
    label: str = ""

    def __str__(self) -> str:
        return str(self.folder)

    @property
    def name(self) -> str:
        return self.label or f"the model in {self.folder}"


def resume_moments(init_from) -> dict[str, torch.Tensor] | None:
    """The optimizer moments a run starting from ``init_from`` restores: a resumed folder's, else none."""
    if init_from is None or isinstance(init_from, StartingWeights):
        return None
    return load_optimizer_state(init_from)


def _classes_text(info: ModelInfo) -> str:
    names = list(info.class_names)
    if len(names) == 2:
        return f"background and one class ({names[1]})"
    return f"{len(names)} classes ({', '.join(names)})"


def _check_start(start: StartingWeights, info: ModelInfo, dataset: TrainingSet, class_names) -> None:
    """Refuse a starting model whose input channels or number of classes differ from the training data's."""
    cfg = info.model_config
    if cfg.in_channels != dataset.in_channels:
        raise DataError(f"{start.name} takes images with {cfg.in_channels} channel(s) but these images have "
                        f"{dataset.in_channels}: train from scratch (a new model) instead")
    if cfg.n_classes != dataset.n_classes:
        have = f" ({', '.join(class_names)})" if class_names and len(class_names) == dataset.n_classes else ""
        raise DataError(f"{start.name} takes {cfg.in_channels} channel(s) and predicts {_classes_text(info)}; "
                        f"the labels here have {dataset.n_classes} classes{have}: train from scratch "
                        "(a new model) instead")


def _start_from(start: StartingWeights, dataset: TrainingSet, class_names) -> tuple[UNet, ModelInfo]:
    """The starting model's network, and a description that carries over only its normalisation."""
    model, info = load_model(start.folder, "cpu")
    _check_start(start, info, dataset, class_names)
    previous = ModelInfo(model_config=model.config, class_values=list(info.class_values),
                         class_names=list(info.class_names), normalization=info.normalization,
                         extra={"starting_model": start.label or str(start.folder)})
    return model, previous


def build_model(dataset: TrainingSet, model_config: ModelConfig, init_from, class_values, class_names):
    """The model to train, new, loaded from ``init_from`` (a folder: resumed), or started from the weights
    of a :class:`StartingWeights`: (model, history, step offset, class values, class names, the ModelInfo
    the run continues or None)."""
    history, offset, previous = [], 0, None
    if isinstance(init_from, StartingWeights):
        model, previous = _start_from(init_from, dataset, class_names)
    elif init_from is not None:
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
