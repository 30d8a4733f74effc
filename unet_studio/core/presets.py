"""Named starting points for a new model: ``fast`` (useful within a minute on a laptop CPU) and ``classic``
(the paper's network, which wants a GPU). The measurements behind the ``fast`` preset's choices are in
``docs/MEASUREMENTS.md``.
"""

from __future__ import annotations

from .config import ModelConfig, TrainConfig
from .errors import ConfigError

PRESETS = ("fast", "classic")

#: ``TrainConfig.edge_smoothness`` that snaps sparse labels' class boundaries to intensity edges (the fast
#: preset's; ``train --snap-to-edges``, the Training panel's "Snap to edges").
SNAP_TO_EDGES = 3.0


def preset_configs(name: str, in_channels: int = 1, n_classes: int = 2) -> tuple[ModelConfig, TrainConfig]:
    """The (ModelConfig, TrainConfig) of preset ``name`` ("fast" or "classic")."""
    if name == "fast":
        model = ModelConfig(in_channels=in_channels, n_classes=n_classes, base_channels=16, depth=4,
                            padding="same", norm="batch", upsample="transpose")
        train = TrainConfig(preset="fast", patch_size=128, batch_size=8, epochs=40, steps_per_epoch=50,
                            learning_rate=3e-3, weight_decay=1e-4, loss="ce", class_balance_power=0.5,
                            eval_every=50, patience=20, preview_every=25, val_fraction=0.1, elastic_sigma=3.0,
                            orientation_until=0.75, unlabelled_loss="pseudo", unlabelled_weight=1.0,
                            unlabelled_from=0.1, edge_smoothness=SNAP_TO_EDGES)
        return model, train
    if name == "classic":
        model = ModelConfig(in_channels=in_channels, n_classes=n_classes, base_channels=64, depth=5,
                            padding="valid", norm="none", dropout=0.5, upsample="transpose")
        train = TrainConfig(preset="classic", patch_size=572, batch_size=1, epochs=100, steps_per_epoch=100,
                            learning_rate=1e-4, weight_decay=0.0, eval_every=200, patience=10,
                            preview_every=100, warmup_steps=100)
        return model, train
    raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")


def snapping_to_edges(train_config: TrainConfig, snap: bool = True) -> TrainConfig:
    """``train_config`` with (``snap``) or without class boundaries drawn to intensity edges where labels are
    sparse (``train --snap-to-edges`` / ``--no-snap-to-edges``, the Training panel's "Snap to edges"). On the
    validation images of ``bench/generalization.py``: ISBI scribbles membrane F1 0.802 against 0.772 without;
    dsb2018 nuclei scribbles 0.832 against 0.846 on one set of 10 images and 0.896 against 0.779 on another
    (``docs/MEASUREMENTS.md``)."""
    return train_config.replace(edge_smoothness=SNAP_TO_EDGES if snap else 0.0)


def for_instances(train_config: TrainConfig) -> TrainConfig:
    """How a preset trains on objects (``train --instances``, objects painted in the application): the paper's
    border weights between touching objects, and Dice + cross-entropy (chosen on validation images of the
    nuclei, see ``docs/MEASUREMENTS.md``)."""
    return train_config.replace(use_border_weights=True, loss="dice_ce")
