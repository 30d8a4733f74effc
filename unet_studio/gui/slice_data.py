"""What the views show of a slice besides its labels: the raw pixels (a few slices cached) and the prediction.

:class:`SliceData` reads raw slices lazily from the images' stacks (a damaged page shows blank and is
reported once through the session's ``error``) and stores each slice's prediction as (K, Y, X) uint8,
announcing a new one through ``probabilities_changed``. A big image's slice is a
:class:`~.big_image.BigSlice` (its overview read now, regions when asked), never read whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import UNetStudioError
from .big_image.source import BigSlice, is_big

if TYPE_CHECKING:
    from .session import Session

__all__ = ["SliceData"]


class SliceData:
    """Raw pixels and predictions of the session's slices; image and slice default to the current ones.

    Parameters
    ----------
    session : Session
        Whose images are read and whose signals announce errors and new predictions.
    cache_size : int
        How many raw slices stay in memory (scrolling back and forth reads no file).
    """

    def __init__(self, session: Session, cache_size: int = 6) -> None:
        self.session = session
        self.cache_size = cache_size
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def _where(self, image_index: int | None, slice_index: int | None) -> tuple[int, int]:
        image_index = self.session.current_index if image_index is None else image_index
        slice_index = self.session.current_slice if slice_index is None else slice_index
        return image_index, slice_index

    def raw(self, image_index: int | None = None, slice_index: int | None = None) -> np.ndarray:
        """The raw (C, Y, X) data of a slice, in the file's dtype (a :class:`BigSlice` for a big image)."""
        key = self._where(image_index, slice_index)
        if key not in self._cache:
            if len(self._cache) >= self.cache_size:
                self._cache.pop(next(iter(self._cache)))
            stack = self.session.images[key[0]].stack
            try:
                data = BigSlice(stack.pyramid, key[1]) if is_big(stack) else np.asarray(stack.get_slice(key[1]))
            except UNetStudioError as exc:
                if is_big(stack):  # its overview is damaged: tiles may still show, the labels stay editable
                    self.session.error.emit("Cannot show this slice", str(exc))
                    data = BigSlice(stack.pyramid, key[1], blank=True)
                    self._cache[key] = data
                    return data
                # A damaged page: the slice shows blank (its labels stay editable) and the person hears why, once.
                data = np.zeros(stack.shape[1:], stack.dtype)
                self.session.error.emit("Cannot show this slice", str(exc))
            self._cache[key] = data
        return self._cache[key]

    def normalized(self, image_index: int | None = None, slice_index: int | None = None) -> np.ndarray:
        """The slice as float32 scaled by its percentiles (what the model sees)."""
        from ..core.io import normalize_percentile

        return normalize_percentile(self.raw(image_index, slice_index))

    def forget(self) -> None:
        """Drop the cached slices (the image list changed, so indices mean other images)."""
        self._cache.clear()

    def probabilities(self, image_index: int | None = None, slice_index: int | None = None) -> np.ndarray | None:
        """The (K, Y, X) uint8 prediction of a slice, or None."""
        image_index, slice_index = self._where(image_index, slice_index)
        if not 0 <= image_index < len(self.session.images):
            return None
        return self.session.images[image_index].probabilities.get(slice_index)

    def set_probabilities(self, image_index: int, slice_index: int, probs: np.ndarray) -> None:
        """Store a (K, Y, X) prediction (float in [0, 1] or uint8) and tell the views."""
        if not 0 <= image_index < len(self.session.images):
            return
        probs = np.asarray(probs)
        if probs.dtype != np.uint8:
            probs = np.clip(np.rint(probs * 255.0), 0, 255).astype(np.uint8)
        self.session.images[image_index].probabilities[slice_index] = probs
        self.session.probabilities_changed.emit(image_index, slice_index)
