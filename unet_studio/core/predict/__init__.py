"""Prediction: overlap-tile inference, post-processing (thresholds, instances, measurements) and export.

This package never imports :mod:`unet_studio.core.train`.
"""

from .postprocess import InstanceConfig, find_instances, measure, probabilities_to_labels, table_to_csv
from .tiled import InferProgress, iter_predict, iter_predict_stack, make_normalizer, predict_probabilities

__all__ = [
    "InferProgress", "InstanceConfig", "find_instances", "iter_predict", "iter_predict_stack",
    "make_normalizer", "measure", "predict_probabilities", "probabilities_to_labels", "table_to_csv",
]
