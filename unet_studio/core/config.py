"""The configuration of a model, a training run and a prediction, as frozen dataclasses every front end shares.

It is also the one home of the default input normalisation (:data:`DEFAULT_NORMALIZATION`) and of the
checks of numbers read from files (:func:`whole_number`, :func:`real_number`). Each config converts to and
from plain JSON-able dicts (:class:`ConfigDict`); ``from_dict`` ignores unknown keys so that a model folder
written by a newer version still loads, and rejects bad values with
:class:`~unet_studio.core.errors.ConfigError` whose message names the key.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")

#: How images are scaled before the network sees them, unless a model folder says otherwise: each
#: channel's 1st percentile maps to 0 and its 99.8th to 1. Read-only; take ``dict(DEFAULT_NORMALIZATION)``.
DEFAULT_NORMALIZATION: Mapping[str, Any] = MappingProxyType({"method": "percentile", "low": 1.0, "high": 99.8})

#: Largest sizes a model description may ask for: far above any useful U-Net, far below an allocation that
#: exhausts memory (a hostile or mistyped ``model.json`` is refused before anything is built).
MAX_CHANNELS = 4096  # in_channels, n_classes, and the widest layer (base_channels * 2**(depth - 1))


def whole_number(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int when it is a whole number (not a bool, not a float) in ``[low, high]``.

    Raises :class:`ConfigError` naming ``name`` otherwise.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    try:
        number = operator.index(value)  # ints and numpy integers; never 4.0 or "4"
    except TypeError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {number}")
    return number


def real_number(name: str, value: Any, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a finite float in ``[low, high]`` (not a bool or a string); :class:`ConfigError` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        span = "" if math.isinf(low) and math.isinf(high) else f" between {low:g} and {high:g}"
        raise ConfigError(f"{name} must be a finite number{span}, got {value!r}")
    return number


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            continue
        if isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from None


class ConfigDict:
    """Conversion of a frozen config dataclass to and from a plain JSON-able dict, and ``replace``."""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return _from_dict(cls, data)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class ModelConfig(ConfigDict):
    """Architecture of a U-Net (Ronneberger et al. 2015).

    Parameters
    ----------
    in_channels, n_classes
        Input image channels and output classes (logits per class).
    base_channels
        Width of the first level; each level down doubles it (64 -> 1024 in the paper).
    depth
        Number of resolution levels (5 in the paper: 4 poolings).
    padding
        ``"same"``: padded convolutions, output size = input size. ``"valid"``: the paper's unpadded ones.
    norm
        ``"none"`` (the paper), ``"batch"`` or ``"group"`` normalisation after each 3x3 convolution.
    dropout
        Dropout probability at the end of the contracting path (the paper used 0.5).
    upsample
        ``"transpose"``: 2x2 up-convolution (the paper); ``"bilinear"``: bilinear upsampling followed by
        a 1x1 convolution that halves the channels (no checkerboard artefacts, fewer parameters).
    """

    in_channels: int = 1
    n_classes: int = 2
    base_channels: int = 64
    depth: int = 5
    padding: str = "same"
    norm: str = "none"
    dropout: float = 0.0
    upsample: str = "transpose"

    def __post_init__(self) -> None:
        for name, high in (("in_channels", MAX_CHANNELS), ("n_classes", MAX_CHANNELS),
                           ("base_channels", MAX_CHANNELS), ("depth", 8)):
            # Frozen: normalise numpy integers to int through object.__setattr__.
            object.__setattr__(self, name, whole_number(name, getattr(self, name), 1, high))
        widest = self.base_channels * 2 ** (self.depth - 1)
        if widest > MAX_CHANNELS:
            raise ConfigError(f"base_channels {self.base_channels} at depth {self.depth} makes layers "
                              f"{widest} channels wide, more than the {MAX_CHANNELS} this tool builds")
        object.__setattr__(self, "dropout", real_number("dropout", self.dropout, 0.0, 1.0))
        for name in ("padding", "norm", "upsample"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {getattr(self, name)!r}")
        if self.padding not in ("same", "valid"):
            raise ConfigError(f"padding must be 'same' or 'valid', got {self.padding!r}")
        if self.norm not in ("none", "batch", "group"):
            raise ConfigError(f"norm must be 'none', 'batch' or 'group', got {self.norm!r}")
        if self.upsample not in ("transpose", "bilinear"):
            raise ConfigError(f"upsample must be 'transpose' or 'bilinear', got {self.upsample!r}")
        if not self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


UNLABELLED_LOSSES = ("off", "pseudo", "consistency")


@dataclass(frozen=True)
class TrainConfig(ConfigDict):
    """How to train. Owned by :mod:`unet_studio.core.train.loop`; see its docs for each field."""

    preset: str = "fast"
    patch_size: int = 128
    batch_size: int = 8
    epochs: int = 50
    steps_per_epoch: int = 50
    time_limit_s: float | None = None
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    # Evaluate, keep and save a moving average of the weights with this decay (0: the latest weights);
    # see core/train/averaging.py.
    weight_average: float = 0.0
    schedule: str = "cosine"  # "cosine" (warm-up, then cosine decay to 1%) or "constant"
    warmup_steps: int = 20
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    loss: str = "ce"  # "ce" or "dice_ce"
    # The pixels sparse labels leave unlabelled (see core/train/unlabelled.py): "off"; "pseudo": the network's
    # own confident predictions there are targets; "consistency": confident predictions on one view are the
    # targets of a second, differently perturbed view. Weight of that loss, confidence threshold, and the
    # share of the run after which it starts.
    unlabelled_loss: str = "off"
    unlabelled_weight: float = 0.5
    unlabelled_threshold: float = 0.9
    unlabelled_from: float = 0.25
    # With sparse labels: weight of the loss that gives neighbouring pixels of similar intensity the same
    # class (0: off), and the intensity difference (normalised units) at which that stops mattering (0: the
    # batch's own contrast); see edge_smoothness_loss in core/train/unlabelled.py.
    edge_smoothness: float = 0.0
    edge_sigma: float = 0.0
    class_balance: bool = True
    class_balance_power: float = 0.5  # 1: inverse class frequency (the paper's w_c), 0.5: softer
    border_weight_w0: float = 10.0
    border_weight_sigma: float = 5.0
    use_border_weights: bool = False
    # "three_class": the labels are background / interior / boundary made from instance images, and the
    # model folder says so (core.predict.instances); "" otherwise.
    instance_output: str = ""
    labelled_bias: float = 0.9
    augment: bool = True
    intensity_augment: bool = True  # brightness, contrast, gamma, noise (geometric ones follow `augment`)
    elastic_sigma: float = 10.0
    scale_range: tuple[float, float] = (0.85, 1.2)  # random zoom of the patches (log-uniform; >1 shrinks objects)
    elastic_grid: int = 3
    # Flips and 90-degree rotations during this fraction of the run (1: all of it); see core/train/loop.py.
    orientation_until: float = 1.0
    patience: int = 10
    eval_every: int = 50
    preview_every: int = 25
    amp: bool = True
    num_threads: int | None = None
    # Choosing thresholds and the kept model on the validation data (see core/train/loop.py):
    # at least this many labelled validation pixels before thresholds are calibrated on them;
    calibration_min_pixels: int = 500_000
    # validation labels covering at least this share of their pixels count as full masks;
    dense_fraction: float = 0.9
    # on sparse validation labels and in a run's upright part, scores this close to the best are ties;
    score_tie: float = 0.005
    # fewer held-out labelled pixels than this in some class: no validation score (see core/train/validation.py).
    min_val_pixels_per_class: int = 100

    def __post_init__(self) -> None:
        for name in ("time_limit_s", "learning_rate", "weight_decay", "class_balance_power", "border_weight_w0",
                     "border_weight_sigma", "labelled_bias", "elastic_sigma", "dense_fraction", "score_tie",
                     "unlabelled_weight", "unlabelled_threshold", "unlabelled_from", "weight_average",
                     "edge_smoothness", "edge_sigma"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, real_number(name, value))
        object.__setattr__(self, "seed", whole_number("seed", self.seed, 0, 2**32 - 1))
        if self.patch_size < 8:
            raise ConfigError(f"patch_size must be at least 8, got {self.patch_size}")
        if self.batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not (self.edge_smoothness >= 0.0 and self.edge_sigma >= 0.0):
            raise ConfigError(f"edge_smoothness and edge_sigma must be at least 0 (edge_sigma 0: automatic), got "
                              f"{self.edge_smoothness} and {self.edge_sigma}")
        if not 0.0 <= self.weight_average < 1.0:
            raise ConfigError(f"weight_average must be in [0, 1) (0: off), got {self.weight_average}")
        if not 0.0 <= self.orientation_until <= 1.0:
            raise ConfigError(f"orientation_until must be in [0, 1], got {self.orientation_until}")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.min_val_pixels_per_class < 1:
            raise ConfigError(f"min_val_pixels_per_class must be at least 1, got {self.min_val_pixels_per_class}")
        if self.epochs < 1 or self.steps_per_epoch < 1 or self.eval_every < 1 or self.patience < 1:
            raise ConfigError("epochs, steps_per_epoch, eval_every and patience must be at least 1")
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            raise ConfigError(f"time_limit_s must be positive, got {self.time_limit_s}")
        if not isinstance(self.scale_range, (tuple, list)) or len(self.scale_range) != 2:
            raise ConfigError(f"scale_range must be two numbers (low, high), got {self.scale_range!r}")
        low, high = (real_number("scale_range", v) for v in self.scale_range)
        if not 0.1 <= low <= high <= 10.0:
            raise ConfigError(f"scale_range must be two numbers with 0.1 <= low <= high <= 10, got {low}, {high}")
        object.__setattr__(self, "scale_range", (low, high))
        if self.unlabelled_loss not in UNLABELLED_LOSSES:
            raise ConfigError(f"unlabelled_loss must be one of {', '.join(UNLABELLED_LOSSES)}, got "
                              f"{self.unlabelled_loss!r}")
        if not (0.0 <= self.unlabelled_weight and 0.0 < self.unlabelled_threshold < 1.0
                and 0.0 <= self.unlabelled_from <= 1.0):
            raise ConfigError("unlabelled_weight must be at least 0, unlabelled_threshold in (0, 1) and "
                              "unlabelled_from in [0, 1]")
        if self.loss not in ("ce", "dice_ce"):
            raise ConfigError(f"loss must be 'ce' or 'dice_ce', got {self.loss!r}")
        if self.instance_output not in ("", "three_class"):
            raise ConfigError(f"instance_output must be '' or 'three_class', got {self.instance_output!r}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu, cuda or mps, got {self.device!r}")


@dataclass(frozen=True)
class InferConfig(ConfigDict):
    """How to predict. Owned by :mod:`unet_studio.core.predict.tiled` (see its module docs for the tiling).

    tile_size
        Largest tile side in pixels (rounded down to a size the network accepts); ``None`` chooses from
        the memory available.
    overlap
        Fraction of each tile's kept output shared with its neighbour and blended (same-mode networks;
        valid-mode tiles are exact and laid edge to edge). ``None``: 0.125 where tiles can differ (group
        normalisation, a reduced ``context``), none where they are exact.
    context
        Pixels of each same-mode tile's output discarded at its edges; ``None``: the network's
        receptive-field radius, which makes tiled output equal to a whole-image pass. Smaller is faster and
        relies on the blending to hide seams.
    batch_size
        Tiles per forward pass; ``None`` chooses from the memory available.
    device
        ``auto`` uses the device the model is on; ``cpu``, ``cuda``, ``cuda:N``, ``mps`` move a copy there.
    blend
        ``cosine`` ramps over the overlaps, ``gaussian`` weights centred on each tile, ``uniform`` plain mean.
    amp
        Mixed precision where the device gains from it (CUDA, MPS).
    tta
        Test-time augmentation: average the predictions of the 8 flips and 90-degree rotations of each
        tile (8 times slower; usually a little more accurate, with smoother boundaries).
    thresholds
        Optional per-class probability thresholds (empty: plain argmax); see
        :func:`~unet_studio.core.predict.tiled.probabilities_to_labels`.
    memory_limit_mb
        Memory the automatic tile and batch choice may plan for (``None``: from the free memory).
    """

    tile_size: int | None = None
    overlap: float | None = None
    context: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    blend: str = "cosine"
    amp: bool = True
    tta: bool = False
    thresholds: tuple[float, ...] = field(default_factory=tuple)
    memory_limit_mb: float | None = None

    def __post_init__(self) -> None:
        if self.overlap is not None and not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.tile_size is not None and self.tile_size < 8:
            raise ConfigError(f"tile_size must be at least 8, got {self.tile_size}")
        if self.context is not None and self.context < 0:
            raise ConfigError(f"context must be at least 0, got {self.context}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.blend not in ("cosine", "gaussian", "uniform"):
            raise ConfigError(f"blend must be 'cosine', 'gaussian' or 'uniform', got {self.blend!r}")
        if any(not 0.0 <= float(t) <= 1.0 for t in self.thresholds):
            raise ConfigError(f"thresholds must lie in [0, 1], got {self.thresholds}")
        if self.memory_limit_mb is not None and self.memory_limit_mb <= 0:
            raise ConfigError(f"memory_limit_mb must be positive, got {self.memory_limit_mb}")
        if self.device not in ("auto", "cpu", "cuda", "mps") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu, cuda or mps, got {self.device!r}")
