"""The project folder (Qt-free): project.json, label files, recent projects."""

from __future__ import annotations

import json

import numpy as np
import pytest

from unet_studio.core.project import folder as proj
from unet_studio.core.errors import ImageReadError


@pytest.fixture(autouse=True)
def config_dir(tmp_path, monkeypatch):
    folder = tmp_path / "config"
    monkeypatch.setenv("UNET_STUDIO_CONFIG_DIR", str(folder))
    return folder


def test_round_trip_with_relative_and_absolute_paths(tmp_path):
    folder = tmp_path / "projét with space"
    project = proj.create_project(folder)
    inside = folder / "images" / "a.tif"
    outside = tmp_path / "elsewhere" / "a.tif"
    project.add_image(inside)
    project.add_image(outside)
    project.add_image(outside)  # no duplicate
    project.classes.append(proj.ClassInfo("mito", "#00ff00"))
    project.settings["brush"] = 7
    proj.save_project(project)
    stored = json.loads((folder / "project.json").read_text())
    assert stored["format_version"] == proj.FORMAT_VERSION
    assert [item["path"] for item in stored["images"]] == ["images/a.tif", str(outside.resolve())]
    again = proj.load_project(folder)
    assert [e.name for e in again.images] == ["a", "a_2"]
    assert again.images[0].path == inside.resolve()
    assert [c.name for c in again.classes] == ["background", "foreground", "mito"]
    assert again.settings == {"brush": 7}
    assert again.labels_path("a_2") == folder.resolve() / "labels" / "a_2_labels.tif"


@pytest.mark.parametrize("shape", [(1, 20, 30), (4, 20, 30)])
def test_labels_round_trip(tmp_path, shape):
    labels = np.random.default_rng(0).integers(0, 3, shape).astype(np.uint8)
    path = tmp_path / "labels" / "x_labels.tif"
    proj.save_labels(path, labels)
    np.testing.assert_array_equal(proj.load_labels(path, shape, n_classes=2), labels)
    assert not list(path.parent.glob(".*"))


def test_labels_that_do_not_fit_are_refused(tmp_path):
    path = tmp_path / "x_labels.tif"
    proj.save_labels(path, np.full((1, 8, 8), 5, np.uint8))
    with pytest.raises(ImageReadError, match="shape"):
        proj.load_labels(path, (1, 9, 8))
    with pytest.raises(ImageReadError, match="classes"):
        proj.load_labels(path, (1, 8, 8), n_classes=2)
    path.write_bytes(b"not a tiff")
    with pytest.raises(ImageReadError, match="cannot read"):
        proj.load_labels(path, (1, 8, 8))


@pytest.mark.parametrize("content, message", [
    ("{not json", "damaged"),
    (json.dumps({"format": "something else"}), "not a UNet Studio project"),
    (json.dumps({"format": proj.FORMAT_NAME, "format_version": 99}), "newer"),
    (json.dumps({"format": proj.FORMAT_NAME, "format_version": 1, "images": [{"name": "x"}]}), "incomplete"),
])
def test_damaged_project_files_are_explained(tmp_path, content, message):
    (tmp_path / "project.json").write_text(content)
    with pytest.raises(proj.ProjectError, match=message):
        proj.load_project(tmp_path)


def test_missing_project_and_existing_project(tmp_path):
    with pytest.raises(proj.ProjectError, match="not a UNet Studio project folder"):
        proj.load_project(tmp_path)
    proj.create_project(tmp_path / "p")
    with pytest.raises(proj.ProjectError, match="already holds"):
        proj.create_project(tmp_path / "p")


def test_recent_projects(tmp_path, config_dir):
    folders = [proj.create_project(tmp_path / f"p{i}").folder for i in range(3)]
    for folder in folders:
        proj.add_recent(folder)
    proj.add_recent(folders[0])
    assert proj.load_recent() == [folders[0], folders[2], folders[1]]
    (folders[2] / "project.json").unlink()  # gone projects are dropped
    assert proj.load_recent() == [folders[0], folders[1]]
    (config_dir / proj.RECENT_FILE).write_text("garbage")
    assert proj.load_recent() == []


def test_untitled_folders(config_dir):
    assert proj.is_untitled(None)
    assert proj.is_untitled(config_dir / "untitled" / "20260101-000000")
    assert not proj.is_untitled(config_dir / "mine")
