"""Painted labels: a :class:`LabelVolume` (brush, line, fill, region writes) with stroke-grouped undo.

The public surface of the labels: the volume (``volume``), its bounded undo history (``history``), the
drawing primitives on one slice (``drawing``) and label values and types (``values``).
"""

from .drawing import Box, union_boxes
from .history import LabelHistory
from .values import (LabelMapping, apply_mapping, distinct_values, label_image_kind, label_planes, labels_dtype,
                     propose_mapping)
from .volume import LabelVolume

__all__ = ["Box", "LabelHistory", "LabelMapping", "LabelVolume", "apply_mapping", "distinct_values", "label_image_kind",
           "label_planes", "labels_dtype", "propose_mapping", "union_boxes"]
