"""The project folder (Qt-free): project.json, label files, recent projects."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unet_studio.core import project as proj
from unet_studio.core.project.folder import FORMAT_NAME, FORMAT_VERSION
from unet_studio.core.project.user_dirs import RECENT_FILE
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
    assert stored["format_version"] == FORMAT_VERSION
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
    (json.dumps({"format": FORMAT_NAME, "format_version": 99}), "newer"),
    (json.dumps({"format": FORMAT_NAME, "format_version": 1, "images": [{"name": "x"}]}), "incomplete"),
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
    (config_dir / RECENT_FILE).write_text("garbage")
    assert proj.load_recent() == []


def test_untitled_folders(config_dir):
    assert proj.is_untitled(None)
    assert proj.is_untitled(config_dir / "untitled" / "20260101-000000")
    assert not proj.is_untitled(config_dir / "mine")


# -- hostile project.json (issue 13) -------------------------------------------------------------

def _project_json(folder, **changes):
    """A valid project.json with one image entry, changed by ``changes`` (top-level keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT_NAME, "format_version": 1, "images": [{"name": "a", "path": "a.tif"}],
            "classes": [{"name": "background", "color": "#000000"}, {"name": "cells", "color": "#ff0000"}],
            "settings": {}}
    data.update(changes)
    (folder / "project.json").write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize("name", ["../../victim/evil", "/etc/evil", "a\x00b", "..", ".hidden", "a/b", "", 5, None,
                                  "x" * 300, "C:\\evil"])
def test_image_names_that_could_leave_the_folder_are_renamed(tmp_path, name):
    """Case 9 (and a NUL in a name, case 19): every labels path stays inside the project folder."""
    folder = _project_json(tmp_path / "a" / "b" / "p", images=[{"name": name, "path": "a.tif"}])
    project = proj.load_project(folder)
    entry = project.images[0]
    assert proj.is_valid_name(entry.name) and entry.name != name
    assert project.labels_path(entry.name).parent == folder / "labels"
    assert any("name" in notice for notice in project.notices)


def test_the_layout_refuses_a_path_outside_the_folder(tmp_path):
    layout = proj.ProjectLayout(tmp_path / "p")
    for name in ("../evil", "a/../../evil", "a\x00"):
        with pytest.raises(proj.ProjectError, match="cannot name a labels file"):
            layout.labels_path(name)
    (tmp_path / "p" / "labels").mkdir(parents=True)
    (tmp_path / "p" / "labels" / "link_labels.tif").symlink_to(tmp_path / "victim.tif")
    with pytest.raises(proj.ProjectError, match="outside the project folder"):
        layout.labels_path("link")


def test_duplicate_names_get_their_own_labels_files(tmp_path):
    """Case 4: two entries named alike (also differing in case only) never share a labels file."""
    images = [{"name": "a", "path": "x/a.tif"}, {"name": "a", "path": "y/a.tif"}, {"name": "A", "path": "z/A.tif"}]
    project = proj.load_project(_project_json(tmp_path / "p", images=images))
    names = [entry.name for entry in project.images]
    assert names[0] == "a" and len({n.casefold() for n in names}) == 3
    project.add_image(tmp_path / "w" / "A.tif")
    assert len({e.name.casefold() for e in project.images}) == 4


def test_a_removed_image_keeps_its_labels_for_itself_only(tmp_path):
    """Case 7: a different image under a removed image's name gets a fresh name; the same image gets its own back."""
    project = proj.create_project(tmp_path / "p")
    entry = project.add_image(tmp_path / "x" / "a.tif", "print-of-x")
    proj.save_labels(project.labels_path(entry.name), np.ones((1, 4, 4), np.uint8))
    project.remove_image(entry)
    proj.save_project(project)
    again = proj.load_project(tmp_path / "p")
    other = again.add_image(tmp_path / "y" / "a.tif", "print-of-y")
    assert other.name != "a"
    same = again.add_image(tmp_path / "x" / "a.tif", "print-of-x")
    assert same.name == "a"
    # An orphan labels file (no record of its image at all) is never given to a new image either.
    proj.save_labels(again.labels_path("b"), np.ones((1, 4, 4), np.uint8))
    assert again.add_image(tmp_path / "b.tif").name == "b_2"


@pytest.mark.parametrize("values, n_classes", [((256, 300), 300), ((1, 65535), 65535)])
def test_labels_above_255_keep_their_values(tmp_path, values, n_classes):
    """Case 5: a uint16 labels file holding 256 or 300 is read as uint16, never wrapped by astype(uint8)."""
    labels = np.zeros((1, 4, 4), np.uint16)
    labels[0, 0, :2] = values
    path = tmp_path / "x_labels.tif"
    proj.save_labels(path, labels)
    back = proj.load_labels(path, (1, 4, 4), n_classes)
    assert back.dtype == np.uint16 and tuple(back[0, 0, :2]) == values


BAD_SETTINGS = [
    ({"classes": [{"name": "bg", "color": "#zz"}]}, "color"),
    ({"settings": {"training": 5}}, "settings.training"),
    ({"settings": {"brush_size": "big"}}, "brush_size"),
    ({"settings": {"contrast_percentiles": 5}}, "contrast_percentiles"),
    ({"settings": {"contrast_percentiles": [99, 1]}}, "contrast_percentiles"),
    ({"settings": {"overlay": {"label_opacity": "x"}}}, "label_opacity"),
    ({"settings": {"training": {"epochs": 1e20}}}, "epochs"),
    ({"settings": {"training": {"time_limit_s": float("nan")}}}, "time_limit_s"),
    ({"settings": {"overlay": {"thresholds": [0.5, "x"]}}}, "thresholds"),
    ({"settings": [1]}, "settings"),
    ({"classes": 5}, "classes"),
    ({"classes": [{"name": None, "color": "#123456"}]}, "name"),
]


@pytest.mark.parametrize("changes, key", BAD_SETTINGS)
def test_bad_values_are_dropped_with_a_notice(tmp_path, changes, key):
    """Case 19: one schema; a bad value is replaced by the default and named in a notice."""
    project = proj.load_project(_project_json(tmp_path / "p", **changes))
    assert len(project.notices) == 1 and key in project.notices[0]
    assert all(proj.ClassInfo(c.name, c.color).rgb() for c in project.classes)  # every colour is usable
    good = proj.load_project(_project_json(tmp_path / "q", settings={
        "training": {"epochs": 7, "time_limit_s": None}, "brush_size": 11, "future_key": {"x": 1},
        "contrast_percentiles": [1, 99.8], "overlay": {"label_opacity": 0.5, "thresholds": [0, 0.4]}}))
    assert good.notices == [] and good.settings["training"]["epochs"] == 7 and good.settings["future_key"] == {"x": 1}


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(images=json_values, classes=json_values, settings_value=json_values, name=st.text(max_size=30),
       path=st.text(max_size=30))
def test_any_project_json_opens_or_raises_a_project_error(tmp_path, images, classes, settings_value, name, path):
    """Property: whatever project.json holds, reading it gives a project (with valid names) or a ProjectError."""
    for value in (images, [{"name": name, "path": path}]):
        folder = tmp_path / "p"
        folder.mkdir(exist_ok=True)
        try:
            text = json.dumps({"format": FORMAT_NAME, "format_version": 1, "images": value, "classes": classes,
                               "settings": settings_value})
        except ValueError:
            continue
        (folder / "project.json").write_text(text)
        try:
            project = proj.load_project(folder)
        except proj.ProjectError:
            continue
        for entry in project.images:
            assert project.labels_path(entry.name).parent == folder / "labels"
        json.dumps(project.to_dict())  # what is read can be written back


# ---------------------------------------------------------------------- pixel size per image


def test_pixel_size_round_trips_and_older_files_have_none(tmp_path):
    project = proj.Project(folder=tmp_path / "p")
    calibrated = project.add_image(tmp_path / "a.tif")
    plain = project.add_image(tmp_path / "b.tif")
    calibrated.pixel_size, calibrated.unit = (0.5, 0.25), "µm"
    proj.save_project(project)
    data = json.loads((tmp_path / "p" / "project.json").read_text(encoding="utf-8"))
    assert data["images"][0]["pixel_size"] == [0.5, 0.25] and data["images"][0]["unit"] == "µm"
    assert "pixel_size" not in data["images"][1]  # an older version reads the file as before
    loaded = proj.load_project(tmp_path / "p")
    assert (loaded.images[0].pixel_size, loaded.images[0].unit) == ((0.5, 0.25), "µm")
    assert (loaded.images[1].pixel_size, loaded.images[1].unit) == (None, "")
    assert not loaded.notices


@pytest.mark.parametrize("size, unit", [(-1, "µm"), (0, "µm"), ("big", "µm"), ([1, 2, 3], "µm"), (1e400, "µm"),
                                        (True, "µm"), (0.5, "furlong"), (0.5, None), ({"x": 1}, "µm")])
def test_a_bad_pixel_size_is_dropped_with_a_notice(tmp_path, size, unit):
    folder = tmp_path / "p"
    folder.mkdir()
    entry = {"name": "a", "path": str(tmp_path / "a.tif"), "pixel_size": size, "unit": unit}
    (folder / "project.json").write_text(json.dumps({"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                                                     "images": [entry]}), encoding="utf-8")
    project = proj.load_project(folder)
    assert project.images[0].pixel_size is None and project.images[0].unit == ""
    assert any("pixel_size" in notice for notice in project.notices)


@pytest.mark.parametrize("size, unit, expected", [(0.65, "um", ((0.65, 0.65), "µm")),
                                                  ([0.5, 0.25], "micron", ((0.5, 0.25), "µm")),
                                                  (2, "nm", ((2.0, 2.0), "nm"))])
def test_clean_pixel_size_accepts_one_number_or_y_x_and_spellings_of_micron(size, unit, expected):
    assert proj.clean_pixel_size(size, unit) == expected
