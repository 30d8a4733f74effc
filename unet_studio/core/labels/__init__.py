"""Painted labels: a :class:`LabelVolume` (brush, line, fill, region writes) with stroke-grouped undo.

The public surface of the labels: the volume (``volume``), its bounded undo history (``history``), the
drawing primitives on one slice (``drawing``) and label values and types (``values``).
"""

from .drawing import Box, union_boxes
from .history import LabelHistory
from .values import fit_label_image, labels_dtype
from .volume import LabelVolume

__all__ = ["Box", "LabelHistory", "LabelVolume", "fit_label_image", "labels_dtype", "union_boxes"]
