"""What the person asks for in the Training panel, as a typed value (no Qt): the panel makes it, the
training controller turns it into the core's configurations, the project file stores it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ...core.config import ModelConfig, TrainConfig
from ...core.errors import ConfigError
from ...core.presets import PRESETS, preset_configs, snapping_to_edges
from ...resources import STARTING_MODELS


@dataclass(frozen=True)
class TrainingRequest:
    """What the person asked for in the Training panel: a preset and the few settings shown beside it.

    Parameters
    ----------
    preset
        One of :data:`~unet_studio.core.presets.PRESETS`.
    time_limit_s
        Stop after this many seconds; None for no limit.
    epochs
        Number of epochs (the preset's steps per epoch each).
    continue_training
        Start from the project's current model instead of from scratch (its run continues).
    starting_model
        The name of a bundled starting model (:data:`~unet_studio.resources.STARTING_MODELS`) whose weights
        the run starts from (a new run: fresh history, the project's classes); "" for a new model.
    snap_to_edges
        Draw class boundaries on intensity edges where the labels are sparse
        (:func:`~unet_studio.core.presets.snapping_to_edges`).
    """

    preset: str = "fast"
    time_limit_s: float | None = 300.0
    epochs: int = 50
    continue_training: bool = False
    starting_model: str = ""
    snap_to_edges: bool = True

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            raise ConfigError(f"the time limit must be positive, got {self.time_limit_s}")
        if self.starting_model and self.starting_model not in STARTING_MODELS:
            raise ConfigError(f"unknown starting model {self.starting_model!r}: choose one of "
                              f"{', '.join(STARTING_MODELS)}")
        if not isinstance(self.snap_to_edges, bool):
            raise ConfigError(f"snap_to_edges must be true or false, got {self.snap_to_edges!r}")
        if self.starting_model and self.continue_training:
            raise ConfigError("start either from the project's model or from a starting model, not both")

    @property
    def start_from(self) -> str:
        """What the run starts from: "new", "current" (the project's model) or a starting model's name."""
        return "current" if self.continue_training else (self.starting_model or "new")

    def configs(self, in_channels: int, n_classes: int) -> tuple[ModelConfig, TrainConfig]:
        """The preset's configurations with this request's epochs, time limit and edge snapping."""
        model_config, train_config = preset_configs(self.preset, in_channels, n_classes)
        train_config = snapping_to_edges(train_config, self.snap_to_edges)
        return model_config, train_config.replace(epochs=self.epochs, time_limit_s=self.time_limit_s)

    def to_settings(self) -> dict:
        """As JSON-able project settings."""
        return asdict(self)

    @classmethod
    def from_settings(cls, settings: dict) -> TrainingRequest:
        """From project settings; a missing or bad value (a hand-edited file) takes its default."""
        request = cls()
        for field in fields(cls):
            if field.name in settings:
                try:
                    request = cls(**{**asdict(request), field.name: settings[field.name]})
                except (ConfigError, TypeError, ValueError):
                    continue
        return request


@dataclass(frozen=True)
class TrainingOutcome:
    """How a training run ended, for the Training panel to state.

    Parameters
    ----------
    state
        "done" (the run ended by itself: ``reason`` says how), "stopped" (the person stopped it) or
        "failed" (an error: ``reason`` is its message).
    steps
        Steps this run made.
    model_dir
        The model folder this run wrote, or None when it wrote nothing.
    reason
        The run's stop reason or error message.
    """

    state: str
    steps: int = 0
    model_dir: Path | None = None
    reason: str | None = None

    def text(self) -> str:
        """One line for the person: what happened and where the model is."""
        saved = f"model saved to {self.model_dir}" if self.model_dir is not None else "nothing saved"
        if self.state == "done":
            return f"Done after {_steps(self.steps)} ({self.reason or 'finished'}): {saved}"
        if self.state == "stopped":
            return f"Stopped after {_steps(self.steps)}: {saved}" if self.steps else f"Stopped: {saved}"
        return f"Training failed: {saved}"


def _steps(count: int) -> str:
    return f"{count} step" if count == 1 else f"{count} steps"
