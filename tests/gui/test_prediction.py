"""Predict, accept the prediction, overlays and export from the main window."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from gui_helpers import labels_of, mouse_stroke, threshold_model


def _tiny_model(window, in_channels=1):
    """A tiny (untrained, seeded) model in the project's model folder: enough to exercise prediction."""
    import torch

    from unet_studio.core.model.checkpoint import ModelInfo, save_model
    from unet_studio.core.config import ModelConfig
    from unet_studio.core.model.unet import UNet

    torch.manual_seed(0)
    config = ModelConfig(in_channels=in_channels, n_classes=len(window.session.classes), base_channels=4, depth=2)
    info = ModelInfo(config, [1, 2], [c.name for c in window.session.classes])
    window.session.ensure_folder()
    save_model(window.session.project.model_dir, UNet.from_config(config), info)
    window.session.notify_model_changed()


@pytest.fixture
def hela(window, tmp_path, data_dir):
    """The real HeLa time-lapse (10 x 700 x 1100) in a project with a tiny model."""
    window.open_project(tmp_path / "project")
    window.open_image(data_dir / "hela_timelapse" / "hela_02_t10.tif")
    _tiny_model(window)
    return window


@pytest.fixture
def hela_crop(window, tmp_path, data_dir):
    """A 10 x 160 x 224 crop of the HeLa time-lapse (fast to predict) in a project with a tiny model."""
    stack = tifffile.imread(data_dir / "hela_timelapse" / "hela_02_t10.tif")
    path = tmp_path / "hela crop.tif"
    tifffile.imwrite(path, stack[:, 300:460, 400:624], metadata={"axes": "TYX"})
    window.open_project(tmp_path / "project")
    window.open_image(path)
    _tiny_model(window)
    return window


def test_predict_all_fills_every_slice(hela_crop, qtbot):
    window = hela_crop
    with qtbot.waitSignal(window.prediction.finished, timeout=120000) as blocker:
        window.overlay_panel.predict_all_button.click()
        assert not window.overlay_panel.predict_all_button.isEnabled()
    assert blocker.args[0].startswith("predicted 10")
    state = window.session.current
    assert sorted(state.probabilities) == list(range(10))
    probs = state.probabilities[4]
    assert probs.shape == (2, 160, 224) and probs.dtype == np.uint8
    assert window.canvas.prediction_item.image is not None
    assert window.overlay_panel.predict_all_button.isEnabled()


def test_cancel_prediction(hela, qtbot):
    window = hela
    window.prediction.predict("all")
    with qtbot.waitSignal(window.prediction.progressed, timeout=30000):
        pass
    with qtbot.waitSignal(window.prediction.finished, timeout=10000) as blocker:
        window.overlay_panel.cancel_button.click()
    assert blocker.args == ["cancelled"]
    assert len(window.session.current.probabilities) < 10


def test_accept_prediction_is_one_undoable_stroke(hela, qtbot):
    window = hela
    mouse_stroke(window, [(5, 5), (5, 50)])
    with qtbot.waitSignal(window.prediction.finished, timeout=60000):
        window.prediction.predict("slice")
    expected = np.argmax(window.session.slices.probabilities(), axis=0) + 1
    before = labels_of(window).copy()
    window.overlay_panel.accept_button.click()
    np.testing.assert_array_equal(labels_of(window), expected)
    window.session.editing.undo()
    np.testing.assert_array_equal(labels_of(window), before)


def test_overlay_modes_opacity_and_threshold(window, data_dir):
    window.open_image(data_dir / "isbi2012" / "images" / "000.tif")
    probs = np.zeros((2, 512, 512), np.float32)
    probs[1, :, 256:] = 0.9
    probs[1, :, :256] = 0.3
    probs[0] = 1 - probs[1]
    window.session.slices.set_probabilities(0, 0, probs)
    panel, item = window.overlay_panel, window.canvas.prediction_item
    assert window.view_state.prediction_mode == "probability" and window.view_state.prediction_class == 1
    np.testing.assert_array_equal(item.image[0, :2], [round(0.3 * 255)] * 2)
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("argmax"))
    assert item.image[0, 0] == 1 and item.image[0, 300] == 2
    panel.threshold_slider.setValue(panel.threshold_slider.maximum())  # foreground needs p >= 1.0
    assert item.image[0, 300] == 1
    panel.prediction_opacity_slider.setValue(panel.prediction_opacity_slider.maximum() // 4)
    assert item.opacity() == pytest.approx(0.25, abs=0.02)
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("off"))
    assert not item.isVisible()
    panel.labels_visible_check.setChecked(False)
    assert not any(tile.isVisible() for tile in window.canvas.label_tiles.values())


def test_export_writes_the_cli_outputs(hela_crop, qtbot, tmp_path):
    window = hela_crop
    mouse_stroke(window, [(100, 100), (100, 200)])
    out = tmp_path / "export folder"
    with qtbot.waitSignal(window.prediction.finished, timeout=120000):
        window.prediction.export(out, scope="image")
    assert window.last_error is None
    name = window.session.current.name
    assert name == "hela_crop"
    for suffix in ("labels.tif", "probabilities.tif", "instances.tif", "measurements.csv", "annotations.tif"):
        assert (out / f"{name}_{suffix}").is_file(), suffix
    assert tifffile.imread(out / f"{name}_labels.tif").shape == (10, 160, 224)
    assert tifffile.imread(out / f"{name}_probabilities.tif").shape == (10, 2, 160, 224)
    assert tifffile.imread(out / f"{name}_annotations.tif")[0, 100, 150] == 2
    assert (out / "model" / "model.json").is_file()
    assert (out / f"{name}_measurements.csv").read_text().startswith("slice,label,")


def test_export_with_test_time_augmentation_predicts_again(hela_crop, qtbot, tmp_path):
    window = hela_crop
    outputs = {}
    for tta in (False, True):
        out = tmp_path / f"tta-{tta}"
        with qtbot.waitSignal(window.prediction.finished, timeout=120000):
            window.actions.export(out, {"probabilities"}, "image", tta=tta)
        assert window.last_error is None
        outputs[tta] = tifffile.imread(out / "hela_crop_probabilities.tif")
    assert outputs[True].shape == outputs[False].shape == (10, 2, 160, 224)
    np.testing.assert_allclose(outputs[True].sum(1), 1.0, atol=1e-4)
    assert np.abs(outputs[True] - outputs[False]).max() > 1e-3  # the 8-view average is not the plain pass


def test_predict_without_a_model_says_so(window, data_dir):
    window.open_image(data_dir / "isbi2012" / "images" / "000.tif")
    window.overlay_panel.predict_all_button.click()
    assert not window.prediction.is_running()
    assert "no model" in window.last_error[1]


def test_cli_and_file_export_write_the_same_bytes(window, qtbot, tmp_path, sample_stack):
    import subprocess
    import sys

    image = tmp_path / "nuclei.tif"
    tifffile.imwrite(image, sample_stack, imagej=True, metadata={"axes": "ZYX"})
    window.open_project(tmp_path / "project")
    window.open_image(image)
    threshold_model(window)
    gui_out, cli_out = tmp_path / "gui", tmp_path / "cli"
    with qtbot.waitSignal(window.prediction.finished, timeout=120000):
        window.actions.export(gui_out, {"labels", "probabilities", "instances", "measurements"}, "image")
    assert window.last_error is None
    result = subprocess.run([sys.executable, "-m", "unet_studio", "predict", "--model",
                             str(window.session.model_dir), "--images", str(image), "--out", str(cli_out),
                             "--probabilities", "--instances", "--measure"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in gui_out.iterdir())
    assert names == sorted(p.name for p in cli_out.iterdir()) == [
        "nuclei_instances.tif", "nuclei_labels.tif", "nuclei_measurements.csv", "nuclei_probabilities.tif"]
    for name in names:
        assert (gui_out / name).read_bytes() == (cli_out / name).read_bytes(), name
    instances = tifffile.imread(gui_out / "nuclei_instances.tif")
    assert instances.shape == (2, 256, 256) and instances.max() > 5  # objects of the foreground class


def test_export_of_a_time_lapse_keeps_its_frames(window, qtbot, tmp_path, sample_stack):
    image = tmp_path / "movie.tif"
    tifffile.imwrite(image, sample_stack, imagej=True, metadata={"axes": "TYX", "unit": "um"}, resolution=(2.0, 2.0))
    window.open_project(tmp_path / "project")
    window.open_image(image)
    threshold_model(window)
    out = tmp_path / "export"
    with qtbot.waitSignal(window.prediction.finished, timeout=120000):
        window.actions.export(out, {"labels", "probabilities", "instances", "annotations"}, "image")
    assert window.last_error is None
    for name in ("labels", "probabilities", "instances", "annotations"):
        with tifffile.TiffFile(out / f"movie_{name}.tif") as tif:
            meta = tif.imagej_metadata
            assert meta.get("frames") == 2 and "slices" not in meta, (name, meta)
            assert tif.pages[0].tags["XResolution"].value == (2, 1), name
