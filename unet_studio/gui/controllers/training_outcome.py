"""What the Training panel says about a run: how it ended (:class:`RunRecord`), and where its validation
pixels lie (:func:`describe_items`). No Qt: the training controller feeds these from its worker's signals."""

from __future__ import annotations

from pathlib import Path

from .training_request import TrainingOutcome


def model_stamp(model_dir: Path | None) -> tuple[int, int] | None:
    """Identity of the model file in ``model_dir`` (inode, modification time), or None when there is none.

    A save replaces the file atomically, so the stamp changes exactly when a run wrote a model.
    """
    if model_dir is None:
        return None
    try:
        stat = (Path(model_dir) / "model.json").stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


class RunRecord:
    """The reports of one run, as far as its ending is concerned: last step, final report, error.

    Parameters
    ----------
    model_stamp
        :func:`model_stamp` of the model folder before the run (to tell whether the run saved).
    """

    def __init__(self, model_stamp: tuple[int, int] | None = None) -> None:
        self.stamp_before = model_stamp
        self.steps = 0
        self.final = None  # the TrainProgress with done=True, when the run ended by itself
        self.error: str | None = None

    def record(self, progress) -> None:
        """Note one TrainProgress."""
        self.steps = max(self.steps, int(progress.step))
        if progress.done:
            self.final = progress

    def fail(self, message: str, details: str = "") -> None:
        """Note the error that ended the run."""
        self.error = message

    def outcome(self, model_dir: Path | None) -> TrainingOutcome:
        """How the run ended, once its worker has finished; ``model_dir`` is where it saves."""
        stamp = model_stamp(model_dir)
        saved = model_dir if stamp is not None and stamp != self.stamp_before else None
        if self.error is not None:
            return TrainingOutcome("failed", self.steps, saved, self.error)
        if self.final is not None:
            return TrainingOutcome("done", self.steps, saved or self.final.model_dir, self.final.stop_reason)
        return TrainingOutcome("stopped", self.steps, saved, "stopped")


def describe_items(session, items: list[tuple[int, int]], indices: list[int]) -> str:
    """Which images and slices the training-set ``indices`` are, e.g. "2 slices (stack.tif: 1, 3)".

    ``items`` maps training-set indices to (image index, slice index) of the session; slices are
    numbered from 1, as the slice slider shows them.
    """
    by_image: dict[int, list[int]] = {}
    for index in indices:
        if 0 <= index < len(items):
            image_index, slice_index = items[index]
            by_image.setdefault(image_index, []).append(slice_index)
    if not by_image:
        return ""
    parts, count = [], 0
    for image_index, slices in sorted(by_image.items()):
        state = session.images[image_index] if image_index < len(session.images) else None
        name = state.name if state is not None else f"image {image_index + 1}"
        count += len(slices)
        single = state is not None and state.labels.shape[0] == 1
        parts.append(name if single else f"{name}: " + ", ".join(str(s + 1) for s in sorted(slices)))
    noun = "slice" if count == 1 else "slices"
    return f"{count} {noun} ({'; '.join(parts)})"
