"""The object side of training from the application: imported instance images and a painted boundary class
made into the targets and instance images the training core takes (see :mod:`unet_studio.core.labels.instances`).

Without either, training is what it was (the core finds objects as the connected pieces of the last class).
With them, the :class:`ObjectTraining` of a run maps each labelled slice to its target (boundary pixels become
background) and its objects (the slice's imported instances, and the painted object class cut by the boundary),
so that the border weights separate touching objects as ``unet-studio train --instances`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...core.labels import ObjectClasses

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["ObjectTraining", "object_training"]


@dataclass
class ObjectTraining:
    """How one training run turns painted slices into targets and objects (copied on the GUI thread).

    Attributes
    ----------
    classes : ObjectClasses
        Background, object and boundary class values.
    imported : list of numpy.ndarray or None
        The imported instances of each training item (None: none), in the order of the run's items.
    n_classes : int
        Classes the model predicts: the project's, less the boundary classes at the end of the list (they are
        trained as background, so a model of background and objects goes on fitting the project).
    """

    classes: ObjectClasses
    imported: list[np.ndarray | None]
    n_classes: int

    def prepare(self, labels: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The targets and the instance images of the run's items (their painted ``labels``)."""
        targets = [self.classes.targets(lab) for lab in labels]
        return targets, [self.classes.instances(lab, imp) for lab, imp in zip(labels, self.imported)]

    def update(self, dataset, index: int, labels: np.ndarray, imported: np.ndarray | None, accepted) -> None:
        """Push the new painted ``labels`` of item ``index`` into a running training set (thread-safe enough:
        the instance image is replaced, never mutated, before the labels' new version is published)."""
        self.imported[index] = imported
        targets = self.classes.targets(labels)
        # Classes added while training runs are unknown to this run: their pixels wait for the next.
        targets = np.where(targets > dataset.n_classes, 0, targets)
        dataset.instances[index] = self.classes.instances(labels, imported)
        dataset.update_labels(index, targets, accepted)


def object_training(session: Session, items: list[tuple[int, int]]) -> ObjectTraining | None:
    """The object side of a run on ``items`` ((image index, slice index)), or None when the project has no
    boundary class and none of those slices has imported instances (training as before)."""
    flags = [getattr(c, "boundary", False) for c in session.classes]
    imported = [session.images[i].labels.instances_slice(s) for i, s in items]
    if not any(flags) and all(imp is None for imp in imported):
        return None
    n_classes = len(flags)
    while n_classes and flags[n_classes - 1]:
        n_classes -= 1
    return ObjectTraining(ObjectClasses.of([c.name for c in session.classes], flags), imported, n_classes)
