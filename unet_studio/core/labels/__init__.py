"""Painted labels: a :class:`LabelVolume` (brush, line, fill, region writes) with stroke-grouped undo.

The public surface of the labels: the volume (``volume``), its bounded undo history (``history``), the
drawing primitives on one slice (``drawing``), label values and types (``values``) and objects: imported
instance images and the boundary class, made into training targets (``instances``).
"""

from .chunked import ChunkedLabelStore, ChunkedLabelVolume, ChunkPatch, chunked_labels_path
from .drawing import Box, union_boxes
from .history import LabelHistory
from .instances import ObjectClasses, instance_planes, instances_dtype
from .values import (LabelMapping, apply_mapping, distinct_values, label_image_kind, label_planes, labels_dtype,
                     propose_mapping)
from .volume import LabelVolume

__all__ = ["Box", "ChunkPatch", "ChunkedLabelStore", "ChunkedLabelVolume", "chunked_labels_path", "LabelHistory", "LabelMapping", "LabelVolume", "ObjectClasses", "apply_mapping", "instance_planes", "instances_dtype", "distinct_values", "label_image_kind",
           "label_planes", "labels_dtype", "propose_mapping", "union_boxes"]
