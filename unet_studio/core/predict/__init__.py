"""Prediction: overlap-tile inference, post-processing (thresholds, instances, measurements) and export.

This package never imports :mod:`unet_studio.core.train`. The names that need PyTorch (inference and
export) load on first use, so that post-processing alone (the application's overlay) does not import it at
start-up, as scikit-image's lazy loading does.
"""

import importlib

from .instances import (
    INSTANCE_MODES,
    INSTANCE_OUTPUT_KEY,
    THREE_CLASS_NAMES,
    Matching,
    instance_classes,
    instance_mode,
    instance_output_description,
    match_instances,
    objects_from_probabilities,
    objects_of_slice,
    resolve_instance_mode,
    three_class_instances,
)
from .postprocess import (
    InstanceConfig,
    calibrated_overlay_thresholds,
    find_instances,
    foreground_classes,
    label_dtype,
    measure,
    probabilities_to_labels,
    table_to_csv,
    write_measurements_csv,
)

_LAZY = {
    "ExportConfig": "export", "ExportProgress": "export", "OUTPUT_SUFFIXES": "export", "export_image": "export",
    "ZARR_OUTPUT_SUFFIXES": "export",
    "output_paths": "export", "InferProgress": "tiled", "Predictor": "tiled", "check_slice_memory": "tiled",
    "iter_predict": "tiled", "iter_predict_stack": "tiled", "make_normalizer": "tiled",
    "predict_probabilities": "tiled", "probabilities_to_uint8": "tiled", "smallest_tile": "tiled",
    # blockwise prediction of big images (Dask)
    "BlockwiseConfig": "blockwise", "BlockwiseProgress": "blockwise", "iter_blockwise": "blockwise",
    "predict_blockwise": "blockwise", "work_folder": "blockwise", "image_sample": "blockwise_plan",
    "PercentileScaler": "blockwise_plan", "default_threads": "blockwise_tasks", "model_loads": "blockwise_tasks",
    "percentile_scaler": "blockwise_plan", "ImageRef": "blockwise_plan",
    "open_client": "dask_client", "close_client": "dask_client", "blockwise_scaler": "dask_client",
    "local_workers": "dask_client", "NEEDS_DASK": "dask_client", "CONNECT_TIMEOUT_S": "dask_client",
    "LOCAL_CLUSTER": "dask_client",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "INSTANCE_MODES", "INSTANCE_OUTPUT_KEY", "THREE_CLASS_NAMES", "Matching", "instance_classes", "instance_mode",
    "instance_output_description", "match_instances", "objects_from_probabilities", "objects_of_slice",
    "resolve_instance_mode",
    "three_class_instances",
    "ExportConfig", "ExportProgress", "InferProgress", "InstanceConfig", "OUTPUT_SUFFIXES", "Predictor", "ZARR_OUTPUT_SUFFIXES",
    "calibrated_overlay_thresholds", "check_slice_memory", "export_image", "find_instances", "foreground_classes", "iter_predict",
    "iter_predict_stack", "label_dtype", "make_normalizer", "measure", "output_paths", "predict_probabilities",
    "probabilities_to_labels", "probabilities_to_uint8", "smallest_tile", "table_to_csv", "write_measurements_csv",
    "BlockwiseConfig", "BlockwiseProgress", "ImageRef", "PercentileScaler", "default_threads", "image_sample",
    "iter_blockwise", "model_loads", "percentile_scaler", "predict_blockwise", "work_folder",
    "open_client", "close_client", "blockwise_scaler", "local_workers", "NEEDS_DASK", "CONNECT_TIMEOUT_S",
    "LOCAL_CLUSTER",
]
