"""Where labels came from: the accepted-prediction flags kept beside a :class:`~.volume.LabelVolume`.

"Accept prediction" copies the model's answer into the labels. Those pixels are not evidence of how good a
model is (the model agrees with them by construction), so a validation must never score on them; they may
still be trained on. A pixel stays flagged until a person paints over it, erases it, fills it or imports
labels over it; undo and redo restore the flags with the labels (the flag changes are recorded in the same
undo item, as ``Change(layer="accepted")``).

The functions here work on the boxes of the changes an edit has just made, so their cost follows the edit.
"""

from __future__ import annotations

import numpy as np

from .history import Change


def clear_edited(flags: np.ndarray, data: np.ndarray, changes: list[Change]) -> list[Change]:
    """Clear the flags of the pixels that ``changes`` (label changes, ``values`` = before) changed.

    Parameters
    ----------
    flags
        ``(S, Y, X)`` booleans, edited in place.
    data
        ``(S, Y, X)`` labels after the edit.
    changes
        The edit's label changes.

    Returns
    -------
    list of Change
        The flag changes (old flags), for the undo item.
    """
    # Edited pixels lose their flag; the others keep theirs.
    return _update(flags, data, changes, lambda region, new, old: region & (new == old))


def mark_accepted(flags: np.ndarray, data: np.ndarray, changes: list[Change]) -> list[Change]:
    """Flag the labelled pixels that ``changes`` (an accepted prediction's label changes) changed.

    Pixels whose label the prediction left as it was keep their flag (a stroke the model agrees with
    stays the person's); returns the flag changes (old flags), for the undo item.
    """
    return _update(flags, data, changes, lambda region, new, old: np.where(new != old, new != 0, region))


def _update(flags: np.ndarray, data: np.ndarray, changes: list[Change], rule) -> list[Change]:
    """Set the flags in each label change's box to ``rule(flags, labels after, labels before)``; return the
    flag changes (old flags) of the boxes where they changed, for the undo item."""
    out = []
    for change in changes:
        if change.layer != "labels":
            continue
        y0, y1, x0, x1 = change.box
        region = flags[change.slice_index, y0:y1, x0:x1]
        target = rule(region, data[change.slice_index, y0:y1, x0:x1], change.values)
        if not np.array_equal(target, region):
            out.append(Change(change.slice_index, change.box, region.copy(), layer="accepted"))
            region[...] = target
    return out
