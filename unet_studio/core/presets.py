"""Named starting points: ``fast`` (useful within a minute on a laptop CPU) and ``classic`` (the paper).

``fast`` was chosen from measurements on a 2-core CPU (see the closing note of issue 3): a width-16,
depth-4 U-Net with batch normalisation and 2x2 up-convolutions, 128x128 patches in batches of 8
(about 60 samples/s on an idle 2-core CPU with bfloat16), AdamW at 3e-3 with a cosine decay over the run (or over
the time limit), cross-entropy with softened class balancing (ISBI dense masks, seeds 0 and 1: membrane F1
0.8225 and 0.8184, against 0.8195 and 0.8103 with Dice + cross-entropy), 10% of the images held out for validation
(one of ISBI's 15 training slices: 14 for training gave membrane F1 0.816 against 0.805 with 12, one run
each), and elastic displacements of 3 px standard deviation instead of the paper's 10 px: the paper's
3x3 grid spans a 572 px tile, ours a 128 px patch, where 10 px stretches the tissue (and the thickness
of its membranes) four times as much; 3 px gave ISBI membrane F1 0.8247, 0.8213 and 0.8177 for seeds
0, 1, 2 against 0.8228, 0.8172 and 0.8085 with 10 px, in paired runs. The last quarter of a fast run
has no flips or 90-degree rotations (``orientation_until``, see :mod:`.training`): ISBI's membranes are
traced about 0.6 px above their centre line, which a network trained with flips cannot learn; final
models of paired runs, seeds 0, 1, 2: membrane F1 0.8266, 0.8283, 0.8263 against 0.8247, 0.8213, 0.8177
(ISBI 2012; a network trained without any flips scored 0.8127 on seed 0); on dsb2018 nuclei, labels
without such a convention, 0.8523 and 0.8496 against 0.8520 and 0.8457 (foreground F1, 120 s, seeds 0
and 1). ``classic`` is the
paper's network: widths 64..1024, unpadded convolutions, 2x2 up-convolutions, dropout 0.5 at the end
of the contracting path, one large tile per step; slow without a GPU.
"""

from __future__ import annotations

from .config import ModelConfig, TrainConfig
from .errors import ConfigError

PRESETS = ("fast", "classic")


def preset_configs(name: str, in_channels: int = 1, n_classes: int = 2) -> tuple[ModelConfig, TrainConfig]:
    """The (ModelConfig, TrainConfig) of preset ``name`` ("fast" or "classic")."""
    if name == "fast":
        model = ModelConfig(in_channels=in_channels, n_classes=n_classes, base_channels=16, depth=4,
                            padding="same", norm="batch", upsample="transpose")
        train = TrainConfig(preset="fast", patch_size=128, batch_size=8, epochs=40, steps_per_epoch=50,
                            learning_rate=3e-3, weight_decay=1e-4, loss="ce", class_balance_power=0.5,
                            eval_every=50, patience=20, preview_every=25, val_fraction=0.1, elastic_sigma=3.0,
                            orientation_until=0.75)
        return model, train
    if name == "classic":
        model = ModelConfig(in_channels=in_channels, n_classes=n_classes, base_channels=64, depth=5,
                            padding="valid", norm="none", dropout=0.5, upsample="transpose")
        train = TrainConfig(preset="classic", patch_size=572, batch_size=1, epochs=100, steps_per_epoch=100,
                            learning_rate=1e-4, weight_decay=0.0, eval_every=200, patience=10,
                            preview_every=100, warmup_steps=100)
        return model, train
    raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
