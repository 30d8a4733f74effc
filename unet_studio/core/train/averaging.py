"""An exponential moving average of the weights a run trains (``TrainConfig.weight_average``).

The average of the last few hundred steps' weights is evaluated, previewed, kept and saved in place of the
latest weights; the optimizer goes on stepping the trained weights. Batch-norm statistics are averaged like
the weights (integer buffers, such as the count of batches seen, are copied). The first updates use a
smaller decay, ``(1 + n) / (10 + n)`` after ``n`` updates, so that the average is not anchored to the
untrained start.
"""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """The moving average of ``model``'s weights and buffers, in a copy of ``model`` (``.module``).

    Parameters
    ----------
    model
        The model being trained (its own module, not a distributed wrapper).
    decay
        The weight of the average against each new step's weights, in (0, 1).
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Move the average toward ``model``'s current weights."""
        self.updates += 1
        keep = min(self.decay, (1 + self.updates) / (10 + self.updates))
        averaged, current = [], []
        for mine, theirs in zip(self.module.state_dict().values(), model.state_dict().values(), strict=True):
            if mine.is_floating_point():
                averaged.append(mine)
                current.append(theirs.detach())
            else:
                mine.copy_(theirs)
        torch._foreach_lerp_(averaged, current, 1.0 - keep)
