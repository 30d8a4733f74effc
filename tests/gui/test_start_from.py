"""Training panel "Start from": a bundled starting model (a stand-in here, ``UNET_STUDIO_MODELS``) gives a
prediction before the first training step, its weights start the run, and the choice is kept in the project."""

from __future__ import annotations

import json

import pytest
import tifffile
from PySide6 import QtCore
from PySide6.QtTest import QTest

from gui_helpers import paint_two_classes, tiny_configs
from unet_studio.core.model import load_model

STEPS, LR = 6, 1e-3



@pytest.fixture
def image(tmp_path, sample_stack):
    path = tmp_path / "images" / "nuclei.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, sample_stack[0])
    return path


def _choose_nuclei_with_the_keyboard(panel, qtbot) -> None:
    combo = panel.start_combo
    assert panel.start_from() == "new"
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus, timeout=2000)
    QTest.keyClick(combo, QtCore.Qt.Key.Key_Down)  # "new model" -> "nuclei model (bundled)"
    assert combo.currentText() == "nuclei model (bundled)" and panel.start_from() == "nuclei"


def test_start_from_nuclei_previews_at_once_and_fine_tunes_its_weights(window, qtbot, tmp_path, image,
                                                                       starting_models):
    from unet_studio.gui.main_window import MainWindow

    folder = tmp_path / "project"
    assert window.open_project(folder)
    window.open_image(image)
    paint_two_classes(window)
    window.training.config_hook = lambda m, t: tiny_configs(m, t, epochs=1, steps_per_epoch=STEPS, eval_every=STEPS,
                                                            learning_rate=LR, warmup_steps=1)
    panel = window.training_panel
    assert not panel.continue_available()  # no model in this project yet
    _choose_nuclei_with_the_keyboard(panel, qtbot)
    steps_before_preview = []
    window.training.progressed.connect(lambda p: steps_before_preview.append(p.step))
    with qtbot.waitSignal(window.training.preview_shown, timeout=60000) as shown:
        QTest.mouseClick(panel.train_button, QtCore.Qt.MouseButton.LeftButton)
    assert shown.args == [0, 0]
    assert steps_before_preview == []  # the starting model's prediction, before the first training step
    probabilities = window.session.slices.probabilities(0, 0)
    bright = tifffile.imread(image) > 128
    assert probabilities[1][bright].mean() > 0.7 * 255 and probabilities[1][~bright].mean() < 0.05 * 255  # nuclei
    with qtbot.waitSignal(window.training.finished, timeout=120000) as finished:
        pass
    assert finished.args == [True]

    start, _ = load_model(starting_models / "nuclei")
    tuned, info = load_model(window.session.model_dir)
    assert tuned.config == start.config  # the starting model's network (depth 3), not tiny_configs' (depth 2)
    before, after = start.state_dict(), tuned.state_dict()
    moved = max(float((after[k] - before[k]).abs().max()) for k in before if before[k].is_floating_point())
    assert 0 < moved < 4 * STEPS * LR  # started from its weights, and fine-tuned them
    assert info.class_names == [c.name for c in window.session.classes] and info.class_values == [1, 2]
    meta = json.loads((window.session.model_dir / "model.json").read_text())
    assert meta["extra"]["steps"] == STEPS and all(e["step"] <= STEPS for e in meta["history"])
    # the next Train continues the fine-tuned model instead of starting from the bundled weights again
    assert panel.continue_available() and panel.start_from() == "current"
    panel.set_start_from("nuclei")  # a person who wants the bundled start again chooses it

    window.close()  # saves the project, with the panel's settings
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.open_project(folder)
    assert again.training_panel.start_from() == "nuclei"
    assert again.training_panel.start_combo.currentText() == "nuclei model (bundled)"
    again.close()


def test_a_project_of_three_classes_is_told_to_train_from_scratch(window, qtbot, image, starting_models):
    window.open_image(image)
    window.session.class_editing.add("debris", "#00ff00")
    paint_two_classes(window)
    window.training_panel.set_start_from("nuclei")
    with qtbot.waitSignal(window.training.failed, timeout=60000) as failed:
        window.training_panel.train_button.click()
    qtbot.waitUntil(lambda: not window.training.is_running(), timeout=10000)
    message = failed.args[0]
    assert "the nuclei model takes 1 channel(s) and predicts background and one class (nucleus)" in message
    assert "3 classes" in message and "train from scratch" in message
    assert window.training_panel.error_label.text() == message
    window.session.discard_untitled()


def test_this_projects_model_is_offered_only_with_a_model(window, image):
    panel = window.training_panel
    window.open_image(image)
    panel.set_start_from("current")
    panel.set_continue_available(False)
    assert panel.start_from() == "new" and not panel.continue_available()
    panel.set_continue_available(True)
    panel.set_start_from("current")
    request = panel.settings()
    assert request.continue_training and request.starting_model == "" and request.start_from == "current"
    window.session.discard_untitled()
