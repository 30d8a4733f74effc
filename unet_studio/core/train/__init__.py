"""Training: folders -> training sets, patch sampling, augmentation, losses, validation, and the loop.

``train(...)`` is a generator that yields :class:`TrainProgress`; stopping the iteration stops training.
"""

from .data import TrainingSet
from .distributed import (
    SINGLE_PROCESS,
    Ranks,
    choose_backend,
    end_process_group,
    exit_spawned_rank,
    free_port,
    launched_by_torchrun,
    ranks_from_env,
    start_process_group,
)
from .folders import load_folder, map_label_values, pair_files
from .loop import train
from .progress import Calibrator, TrainProgress, learning_rate
from .setup import StartingWeights
from .validation import calibrate_thresholds

__all__ = ["SINGLE_PROCESS", "Calibrator", "Ranks", "choose_backend", "end_process_group", "exit_spawned_rank",
           "free_port", "launched_by_torchrun", "ranks_from_env", "start_process_group",
           "StartingWeights", "TrainProgress", "TrainingSet", "calibrate_thresholds", "learning_rate",
           "load_folder", "map_label_values", "pair_files", "train"]
