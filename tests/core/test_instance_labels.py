"""Objects in painted labels (issue 16, item 4): imported instance images and a painted boundary class made into
the targets and border weights the command line trains on (``load_folder(..., instances=True)``)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from unet_studio.core import project as proj
from unet_studio.core.config import TrainConfig
from unet_studio.core.errors import DataError
from unet_studio.core.labels import LabelVolume, ObjectClasses, instance_planes
from unet_studio.core.train import TrainingSet, load_folder
from unet_studio.core.train.setup import border_maps

WEIGHTS = TrainConfig(use_border_weights=True)


def touching_discs(size: int = 64, gap: bool = True) -> np.ndarray:
    """Two discs that touch along x = size // 2 (with a one-pixel background line there when ``gap``)."""
    yy, xx = np.mgrid[:size, :size]
    half = size // 2
    left = (yy - half) ** 2 + (xx - half + 12) ** 2 <= 14 ** 2
    right = (yy - half) ** 2 + (xx - half - 12) ** 2 <= 14 ** 2
    objects = np.zeros((size, size), np.uint16)
    objects[left & (xx < half)] = 1
    objects[right & (xx > half if gap else xx >= half)] = 2
    return objects


def test_roles_of_the_classes():
    assert ObjectClasses.of(["background", "foreground"], [False, False]) == ObjectClasses(1, 2, ())
    assert ObjectClasses.of(["background", "cells", "boundary"], [False, False, True]) == ObjectClasses(1, 2, (3,))
    assert ObjectClasses.of(["boundary", "bg", "nuclei"], [True, False, False]) == ObjectClasses(2, 3, (1,))
    with pytest.raises(DataError, match="no object class"):
        ObjectClasses.of(["background", "boundary"], [False, True])


def test_a_painted_boundary_line_cuts_a_blob_into_two_objects_trained_as_background():
    roles = ObjectClasses(1, 2, (3,))
    objects = touching_discs()
    painted = np.where(objects > 0, 2, 1).astype(np.uint8)
    painted[touching_discs(gap=False) > 0] = 2  # the person paints foreground over both discs, gap included
    line = (painted == 2) & (np.arange(64)[None, :] == 32)
    assert line.any()
    painted[line] = 3  # ... and a boundary line between them
    targets = roles.targets(painted)
    np.testing.assert_array_equal(targets, np.where(objects > 0, 2, 1))  # the line is background
    found = roles.instances(painted)
    assert found.max() == 2 and set(np.unique(found[objects == 1])) == {found[32, 25]}
    assert found[32, 25] != found[32, 40]
    without_line = roles.instances(np.where(painted == 3, 2, painted))
    assert without_line.max() == 1  # one blob without the boundary


def test_painted_objects_beside_imported_instances_get_their_own_numbers():
    roles = ObjectClasses(1, 2)
    imported = touching_discs(gap=False)
    labels = np.where(imported > 0, 2, 1).astype(np.uint8)
    labels[0:4, 0:4] = 2  # painted after the import
    labels[32, 20] = 1  # erased from an imported object
    found = roles.instances(labels, imported)
    np.testing.assert_array_equal(found[:4, :4], 3)
    assert found[32, 20] == 0 and found[32, 40] == 2 and found[32, 25] == 1


def test_instance_planes_renumber_and_refuse_non_objects():
    planes = instance_planes({0: np.array([[0, 7000], [40000, 7000]], np.int32)})
    np.testing.assert_array_equal(planes[0], [[0, 1], [2, 1]])
    with pytest.raises(DataError, match="fractions"):
        instance_planes({0: np.array([[0.5, 1.0]])})
    with pytest.raises(DataError, match="negative"):
        instance_planes({0: np.array([[-1, 1]])})


def test_instances_are_one_undo_step_with_the_labels():
    volume = LabelVolume(shape=(2, 8, 8))
    objects = np.zeros((8, 8), np.uint16)
    objects[1:3, 1:3], objects[5:7, 5:7] = 1, 2
    volume.set_slices({1: np.where(objects > 0, 2, 1).astype(np.uint8)}, {1: objects})
    np.testing.assert_array_equal(volume.instances_slice(1), objects)
    assert volume.instances_slice(0) is None
    volume.undo()
    assert volume.instances_slice(1) is None and not volume.data.any()
    volume.redo()
    np.testing.assert_array_equal(volume.instances_slice(1), objects)
    volume.set_slices({1: np.ones((8, 8), np.uint8)})  # labels imported over it: the objects go
    assert volume.instances_slice(1) is None
    volume.undo()
    np.testing.assert_array_equal(volume.instances_slice(1), objects)


def test_instances_are_saved_and_read_back(tmp_path):
    objects = np.zeros((2, 8, 8), np.uint32)
    objects[1, 1:3, 1:3], objects[1, 5:7, 5:7] = 1, 70000
    path = tmp_path / "labels" / "a_instances.tif"
    proj.save_instances(path, objects)
    back = proj.load_instances(path, (2, 8, 8))
    np.testing.assert_array_equal(back, objects)
    assert proj.load_instances(path, (3, 8, 8)) is None  # another image's: ignored, never used
    proj.save_instances(path, np.zeros((2, 8, 8), np.uint16))
    assert not path.exists()
    layout = proj.ProjectLayout(tmp_path)
    assert layout.instances_path("a") == tmp_path / "labels" / "a_instances.tif"


def test_boundary_flag_is_kept_in_project_json(tmp_path):
    project = proj.create_project(tmp_path / "p")
    project.classes.append(proj.ClassInfo("boundary", "#ffffff", boundary=True))
    proj.save_project(project)
    back = proj.load_project(tmp_path / "p")
    assert [c.boundary for c in back.classes] == [False, False, True]


@pytest.mark.parametrize("boundary", [False, True])
def test_targets_and_weights_equal_the_command_line(tmp_path, boundary):
    """What the application trains on after an instance import (or painting foreground plus a boundary line)
    equals what ``load_folder(..., instances=True)`` builds from the same files: targets and border weights."""
    rng = np.random.default_rng(0)
    objects = touching_discs()
    image = (objects > 0) * 100 + rng.integers(0, 30, objects.shape)
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    tifffile.imwrite(tmp_path / "images" / "a.tif", image.astype(np.uint16))
    tifffile.imwrite(tmp_path / "labels" / "a.tif", objects)
    cli, values, _ = load_folder(tmp_path / "images", tmp_path / "labels", instances=True)
    assert values == [0, 1]

    roles = ObjectClasses(1, 2, (3,) if boundary else ())
    if boundary:  # painted: foreground over both discs, a boundary line where they touch
        painted = np.where(touching_discs(gap=False) > 0, 2, 1).astype(np.uint8)
        painted[(objects == 0) & (painted == 2)] = 3
        imported = None
    else:  # File > Import Labels as objects: background/foreground classes and the instances kept
        painted = np.where(objects > 0, 2, 1).astype(np.uint8)
        imported = instance_planes({0: objects})[0]
    app = TrainingSet(cli.images, [roles.targets(painted)], 2 + boundary,
                      instances=[roles.instances(painted, imported)])
    np.testing.assert_array_equal(app.labels[0], cli.labels[0])
    app_weights = border_maps(app, app.labels, WEIGHTS)[0]
    cli_weights = border_maps(cli, cli.labels, WEIGHTS)[0]
    np.testing.assert_allclose(app_weights, cli_weights)
    assert cli_weights[32, 32] > 0.9 * WEIGHTS.border_weight_w0  # the gap between the discs weighs high
