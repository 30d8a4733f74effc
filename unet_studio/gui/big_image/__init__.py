"""Images bigger than memory in the application: opened from their pyramid, shown tile by tile, painted into
a chunked label store (see :mod:`.source` and :mod:`.view`; the labels: :mod:`unet_studio.core.labels.chunked`)."""

from .source import BIG_SLICE_BYTES, BigImageStack, BigSlice, PyramidSource, is_big, open_pyramid, open_stack
from .view import LabelOverlay, PyramidView, TILE_PX

__all__ = ["BIG_SLICE_BYTES", "BigImageStack", "BigSlice", "LabelOverlay", "PyramidSource", "PyramidView", "TILE_PX",
           "is_big", "open_pyramid", "open_stack"]
