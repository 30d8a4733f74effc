"""Training: folders -> training sets, patch sampling, augmentation, losses, validation, and the loop.

``train(...)`` is a generator that yields :class:`TrainProgress`; stopping the iteration stops training.
"""

from .data import TrainingSet
from .folders import load_folder, map_label_values, pair_files
from .loop import train
from .progress import Calibrator, TrainProgress, learning_rate
from .validation import calibrate_thresholds

__all__ = ["Calibrator", "TrainProgress", "TrainingSet", "calibrate_thresholds", "learning_rate", "load_folder",
           "map_label_values", "pair_files", "train"]
