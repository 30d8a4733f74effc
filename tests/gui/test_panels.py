"""TrainingPanel, OverlayPanel and DisplayPanel: controls write the view state, the panels follow it."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore

from unet_studio.core.errors import ConfigError
from unet_studio.core.train import TrainProgress
from unet_studio.gui.controllers.training_request import TrainingRequest
from unet_studio.gui.panels.display_panel import DisplayPanel
from unet_studio.gui.panels.overlay_panel import OverlayPanel
from unet_studio.gui.panels.training_panel import TrainingPanel, format_duration
from unet_studio.gui.view_state import COMPOSITE, ViewState

LEFT = QtCore.Qt.MouseButton.LeftButton


def progress(step, total=100, **fields):
    base = dict(step=step, total_steps=total, epoch=1, loss=1.0 / (step + 1), lr=1e-3, samples_per_s=10.0,
                elapsed_s=5.0, eta_s=75.0)
    base.update(fields)
    return TrainProgress(**base)


@pytest.fixture
def training_panel(qtbot):
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    return panel


@pytest.fixture
def view():
    return ViewState()


@pytest.fixture
def overlay_panel(qtbot, view):
    panel = OverlayPanel(view)
    qtbot.addWidget(panel)
    panel.set_classes(["membrane", "interior", "nucleus"], ["#ff0000", (0, 255, 0), None])
    return panel


# ---------------------------------------------------------------------- TrainingPanel


def test_train_click_emits_settings_from_the_widgets(qtbot, training_panel):
    panel = training_panel
    panel.preset_combo.setCurrentText("classic")
    panel.minutes_spin.setValue(2)
    panel.seconds_spin.setValue(30)
    panel.epochs_spin.setValue(7)
    panel.set_start_from("current")
    with qtbot.waitSignal(panel.start_requested, timeout=1000) as blocker:
        qtbot.mouseClick(panel.train_button, LEFT)
    assert blocker.args == [TrainingRequest("classic", time_limit_s=150.0, epochs=7, continue_training=True)]


def test_snap_to_edges_is_a_checkbox_that_reaches_the_training_configuration(qtbot, training_panel):
    panel = training_panel
    assert panel.snap_check.isChecked()  # on by default, as in the fast preset
    qtbot.mouseClick(panel.snap_check, LEFT, pos=QtCore.QPoint(8, panel.snap_check.height() // 2))  # its box
    with qtbot.waitSignal(panel.start_requested, timeout=1000) as blocker:
        qtbot.mouseClick(panel.train_button, LEFT)
    request = blocker.args[0]
    assert not request.snap_to_edges
    assert request.configs(in_channels=1, n_classes=2)[1].edge_smoothness == 0.0
    assert TrainingRequest().configs(in_channels=1, n_classes=2)[1].edge_smoothness == 3.0
    assert TrainingRequest("classic").configs(in_channels=1, n_classes=2)[1].edge_smoothness == 3.0
    assert TrainingRequest.from_settings(request.to_settings()) == request  # saved with the project
    assert TrainingRequest.from_settings({"snap_to_edges": "no"}).snap_to_edges  # hand-edited: the default
    panel.set_settings(TrainingRequest())
    assert panel.snap_check.isChecked()


def test_zero_time_limit_means_none(qtbot, training_panel):
    training_panel.minutes_spin.setValue(0)
    training_panel.seconds_spin.setValue(0)
    assert training_panel.settings().time_limit_s is None
    training_panel.set_settings(TrainingRequest("fast", time_limit_s=61, epochs=3))
    assert training_panel.settings() == TrainingRequest("fast", time_limit_s=61.0, epochs=3)


def test_training_request_makes_the_preset_configs_and_reads_settings():
    request = TrainingRequest("fast", time_limit_s=90.0, epochs=3)
    model_config, train_config = request.configs(in_channels=2, n_classes=3)
    assert (model_config.in_channels, model_config.n_classes) == (2, 3)
    assert (train_config.preset, train_config.epochs, train_config.time_limit_s) == ("fast", 3, 90.0)
    assert TrainingRequest.from_settings(request.to_settings()) == request
    # A hand-edited project: bad values take their defaults, good ones stay.
    assert TrainingRequest.from_settings({"preset": "huge", "epochs": 0, "time_limit_s": 30}) == \
        TrainingRequest(time_limit_s=30)
    with pytest.raises(ConfigError, match="unknown preset"):
        TrainingRequest("huge")


def test_set_running_toggles_button_and_stop_emits(qtbot, training_panel):
    panel = training_panel
    panel.set_running(True)
    assert panel.train_button.text() == "Stop" and panel.train_button.isEnabled()
    assert not panel.preset_combo.isEnabled() and not panel.epochs_spin.isEnabled()
    with qtbot.assertNotEmitted(panel.start_requested):
        with qtbot.waitSignal(panel.stop_requested, timeout=1000):
            qtbot.mouseClick(panel.train_button, LEFT)
    assert not panel.train_button.isEnabled()  # stopping: no double clicks
    panel.set_running(False)
    assert panel.train_button.text() == "Train" and panel.train_button.isEnabled()
    assert panel.preset_combo.isEnabled() and panel.start_combo.isEnabled()


def test_show_progress_updates_bar_text_and_loss_curve(training_panel):
    panel = training_panel
    for step in (10, 20, 30):
        panel.show_progress(progress(step, eta_s=125.0))
    assert panel.progress_bar.maximum() == 100
    assert panel.progress_bar.value() == 30
    assert panel.progress_bar.text() == "step 30/100 · ETA 2:05"
    xs, ys = panel.loss_curve.getData()
    np.testing.assert_array_equal(xs, [10, 20, 30])
    np.testing.assert_allclose(ys, [1 / 11, 1 / 21, 1 / 31])
    panel.show_progress(progress(30))  # the same step again (e.g. a validation item) adds no point
    assert len(panel.loss_curve.getData()[0]) == 3
    panel.show_progress(progress(40, loss=float("nan")))  # a NaN loss is not plotted
    assert len(panel.loss_curve.getData()[0]) == 3


def test_show_progress_validation_curves_and_text(training_panel):
    panel = training_panel
    val = {"mean_f1": 0.8, "mean_iou": 0.7, "loss": 0.25, "f1": [0.8], "iou": [0.7]}
    panel.show_progress(progress(50, val=val, best_score=0.8))
    panel.show_progress(progress(100, val={"mean_f1": 0.9, "mean_iou": 0.85}, best_score=0.9))
    xs, ys = panel.f1_curve.getData()
    np.testing.assert_array_equal(xs, [50, 100])
    np.testing.assert_allclose(ys, [0.8, 0.9])
    np.testing.assert_allclose(panel.iou_curve.getData()[1], [0.7, 0.85])
    assert "F1 0.900" in panel.validation_label.text() and "IoU 0.850" in panel.validation_label.text()
    assert "kept model 0.900" in panel.validation_label.text()


def test_show_progress_done(training_panel):
    panel = training_panel
    panel.show_progress(progress(3, total=0, eta_s=None, device="CPU (1 thread)"))
    assert panel.progress_bar.text() == "step 3/? · ETA -:--"
    assert panel.device_label.text() == "Device: CPU (1 thread)"
    panel.show_progress(progress(60, done=True, stop_reason="stopped by user", model_dir="/tmp/m"))
    assert "stopped by user" in panel.status_label.text() and "model saved to /tmp/m" in panel.status_label.text()
    assert panel.progress_bar.text() == "done · step 60/100"  # no ETA is left once a run is done (issue 17)
    assert panel.progress_bar.value() == panel.progress_bar.maximum()


def test_show_progress_tells_about_a_smaller_batch(training_panel):
    training_panel.show_progress(progress(20, notice="out of memory with 8 patches per step; going on with 4"))
    assert "going on with 4" in training_panel.status_label.text()


def test_device_error_and_reset(training_panel):
    panel = training_panel
    panel.set_device_text("CPU (2 threads)")
    assert panel.device_label.text() == "Device: CPU (2 threads)"
    panel.show_progress(progress(10, val={"mean_f1": 0.5, "mean_iou": 0.4}))
    panel.show_error("loss became NaN at step 12")
    assert not panel.error_label.isHidden()
    assert panel.error_label.text() == "loss became NaN at step 12"
    panel.reset()
    assert panel.error_label.isHidden()
    assert panel.progress_bar.value() == 0
    xs, _ = panel.loss_curve.getData()
    assert xs is None or len(xs) == 0
    assert panel.validation_label.text() == "Validation: -"


def test_format_duration():
    assert format_duration(0) == "0:00"
    assert format_duration(65.4) == "1:05"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(None) == "-:--"
    assert format_duration(float("inf")) == "-:--"


# ---------------------------------------------------------------------- OverlayPanel


def test_set_classes_fills_the_combo(overlay_panel, view):
    panel = overlay_panel
    assert [panel.class_combo.itemText(i) for i in range(panel.class_combo.count())] == [
        "membrane",
        "interior",
        "nucleus",
    ]
    assert not panel.class_combo.itemIcon(0).isNull() and panel.class_combo.itemIcon(2).isNull()
    assert view.thresholds == (0.5, 0.5, 0.5)
    assert view.prediction_class == 2  # the first time: the last class (the objects) is shown
    panel.class_combo.setCurrentIndex(1)
    panel.set_classes(["a", "b"], ["#112233", "#445566"])
    assert panel.class_combo.count() == 2 and view.prediction_class == 1
    assert view.thresholds == (0.5, 0.5)


def test_label_controls_write_the_view_state(overlay_panel, view):
    panel = overlay_panel
    panel.label_opacity_slider.setValue(80)
    assert view.label_opacity == pytest.approx(0.8)
    panel.labels_visible_check.click()
    assert view.labels_visible is False


def test_prediction_controls_write_the_view_state(overlay_panel, view):
    panel = overlay_panel
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("off"))
    assert view.prediction_mode == "off"
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("argmax"))
    assert view.prediction_mode == "argmax"
    assert panel.mode_combo.currentText() == "Labels"  # not the jargon "Argmax"
    panel.class_combo.setCurrentIndex(1)
    assert view.prediction_class == 1
    panel.prediction_opacity_slider.setValue(25)
    assert view.prediction_opacity == pytest.approx(0.25)


def test_threshold_is_per_class(overlay_panel, view):
    panel = overlay_panel
    panel.class_combo.setCurrentIndex(1)
    panel.threshold_slider.setValue(70)
    assert view.thresholds == (0.5, pytest.approx(0.7), 0.5)
    assert panel.threshold_label.text() == "0.70"
    panel.class_combo.setCurrentIndex(0)  # the slider shows class 0's threshold and changes nothing
    assert panel.threshold_slider.value() == 50
    assert view.thresholds == (0.5, pytest.approx(0.7), 0.5)
    panel.class_combo.setCurrentIndex(1)
    assert panel.threshold_slider.value() == 70


def test_buttons_emit_and_busy_state(qtbot, overlay_panel):
    panel = overlay_panel
    with qtbot.waitSignal(panel.accept_requested, timeout=1000):
        qtbot.mouseClick(panel.accept_button, LEFT)
    assert not panel.cancel_button.isEnabled()
    with qtbot.waitSignal(panel.predict_all_requested, timeout=1000):
        qtbot.mouseClick(panel.predict_all_button, LEFT)
    panel.set_busy(True)
    assert not panel.predict_all_button.isEnabled() and panel.cancel_button.isEnabled()
    panel.set_progress(3, 8)
    assert (panel.progress_bar.value(), panel.progress_bar.maximum()) == (3, 8)
    with qtbot.waitSignal(panel.cancel_requested, timeout=1000):
        qtbot.mouseClick(panel.cancel_button, LEFT)
    panel.set_busy(False)
    assert panel.predict_all_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_the_panel_follows_the_view_state_without_echo(overlay_panel, view):
    """A change made elsewhere (a restored project, a finished training) shows, and reaches the state once."""
    panel = overlay_panel
    changes = []
    view.connect(lambda name, value: changes.append(name))
    settings = {"overlay": {"labels_visible": False, "label_opacity": 0.3, "prediction_mode": "argmax",
                            "prediction_class": 0, "prediction_opacity": 0.9, "thresholds": [0.1, 0.2, 0.35]},
                "contrast_percentiles": [2.0, 98.0]}
    view.apply_settings(settings)
    assert sorted(changes) == sorted(["labels_visible", "label_opacity", "prediction_mode", "prediction_class",
                                      "prediction_opacity", "thresholds", "contrast"])
    assert view.to_settings() == settings
    assert not panel.labels_visible_check.isChecked() and panel.label_opacity_slider.value() == 30
    assert panel.mode_combo.currentData() == "argmax" and panel.class_combo.currentIndex() == 0
    assert panel.prediction_opacity_slider.value() == 90 and panel.threshold_slider.value() == 10


def test_display_panel_mirrors_channel_and_contrast(qtbot, view):
    panel = DisplayPanel(view)
    qtbot.addWidget(panel)
    panel.set_channels(["dapi", "actin"])
    assert panel.channel_combo.count() == 3 and panel.channel_combo.isEnabled()
    panel.channel_combo.setCurrentIndex(panel.channel_combo.findData(COMPOSITE))
    assert view.channel == COMPOSITE
    panel.high_spin.setValue(90.0)
    assert view.contrast == (1.0, 90.0)
    panel.low_spin.setValue(95.0)  # low above high: not a contrast, the state keeps the last good one
    assert view.contrast == (1.0, 90.0)
    view.update(contrast=(5.0, 95.0), channel=1)
    assert (panel.low_spin.value(), panel.high_spin.value()) == (5.0, 95.0)
    assert panel.channel_combo.currentData() == 1


# ---------------------------------------------------------------------- ViewState (no Qt)


def test_view_state_notifies_each_changed_field_once():
    view = ViewState()
    seen = []
    view.connect(lambda name, value: seen.append((name, value)))
    assert view.update(label_opacity=1.5, labels_visible=True) == ["label_opacity"]  # clamped; visible unchanged
    assert seen == [("label_opacity", 1.0)]
    assert view.update(label_opacity=1.0) == []
    with pytest.raises(ValueError, match="prediction mode"):
        view.update(prediction_mode="rainbow")
    with pytest.raises(ValueError, match="contrast"):
        view.update(contrast=(50, 10))
    with pytest.raises(KeyError):
        view.update(colour="red")


def test_view_state_follows_the_classes():
    view = ViewState()
    view.set_class_count(2)
    assert view.thresholds == (0.5, 0.5) and view.prediction_class == 1
    view.set_threshold(1, 0.8)
    view.set_class_count(3)  # a class added: its threshold starts at 0.5, the shown class stays
    assert view.thresholds == (0.5, 0.8, 0.5) and view.prediction_class == 1
    view.set_class_count(1)
    assert view.thresholds == (0.5,) and view.prediction_class == 0
    view.set_threshold(5, 0.1)  # a class it does not know: nothing changes
    assert view.thresholds == (0.5,)


def test_show_progress_takes_the_real_train_progress(training_panel):
    item = TrainProgress(
        step=5, total_steps=40, epoch=1, loss=0.7, lr=1e-3, samples_per_s=12.0, elapsed_s=3.0, eta_s=24.0,
        val={"mean_f1": 0.6, "mean_iou": 0.45, "loss": 0.5, "f1": [0.6], "iou": [0.45]}, best_score=0.6,
        device="cpu",
    )
    training_panel.show_progress(item)
    assert training_panel.progress_bar.text() == "step 5/40 · ETA 0:24"
    np.testing.assert_allclose(training_panel.loss_curve.getData()[1], [0.7])
    np.testing.assert_allclose(training_panel.f1_curve.getData()[1], [0.6])
    assert "12.0 samples/s" in training_panel.status_label.text()
