"""What the Training panel tells a person (issue 17, items 2 and 9), driven through the real window.

Item 2: a validation score says what it was computed on, too few held-out labels give "not enough held-out
labels to validate" instead of F1 1.000, accepted predictions are never validated on (unless painted over),
and the validation plot has sensible axes. Item 9: the progress bar follows time when a time limit ends the
run, the end of a run is always stated (no leftover ETA), and a second run's curves continue the first's.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtWidgets
from PySide6.QtTest import QTest

from gui_helpers import mouse_stroke, paint_two_classes, tiny_configs
from unet_studio.gui.controllers.training_request import TrainingRequest


def _train(window, qtbot, request=None, **changes):
    """Start a run with tiny configurations (``changes`` to the training's), wait until it has ended."""
    window.training.config_hook = lambda m, t: tiny_configs(m, t, **changes)
    request = request or TrainingRequest(preset="fast", time_limit_s=None, epochs=4)
    reports = []
    window.training.progressed.connect(reports.append)
    with qtbot.waitSignal(window.training.ended, timeout=120000) as ended:
        window.training_panel.start_requested.emit(request)
    window.training.progressed.disconnect(reports.append)
    return reports, ended.args[0]


def _paint_thick_classes(window):
    """Strokes of both classes, thick enough that each class has plenty of held-out pixels."""
    window.tools.set_brush_size(15)
    window.session.set_active_class(0)
    mouse_stroke(window, [(20, 20), (20, 230), (235, 230)])
    window.session.set_active_class(1)
    mouse_stroke(window, [(120, 60), (180, 60), (180, 160)])


# ------------------------------------------------------------------ item 2: validation honesty

def test_a_few_strokes_give_no_score_but_say_why(window, qtbot, sample_512):
    window.open_image(sample_512)
    window.tools.set_brush_size(3)
    window.session.set_active_class(0)
    mouse_stroke(window, [(30, 30), (30, 60)])  # background, top-left tile
    window.session.set_active_class(1)
    mouse_stroke(window, [(300, 300), (300, 330)])  # a nucleus stroke, bottom-right tile
    reports, outcome = _train(window, qtbot)
    panel = window.training_panel
    text = panel.validation_label.text()
    assert "not enough held-out labels to validate" in text and "F1" not in text, text
    assert "each class needs" in text  # and why, shortly
    xs, _ = panel.f1_curve.getData()
    assert xs is None or len(xs) == 0  # no meaningless point on the plot, which says why it is empty
    assert "too few labels" in panel.val_plot.getPlotItem().titleLabel.text
    assert all(r.best_score is None for r in reports)  # no meaningless "best": the latest model is kept
    assert outcome.model_dir is not None and (outcome.model_dir / "model.json").is_file()
    window.session.discard_untitled()


def test_a_score_says_how_many_pixels_of_which_slice(window, qtbot, sample):
    window.open_image(sample)  # two 256 x 256 slices: one is held out
    _paint_thick_classes(window)
    window.session.set_current_slice(1)
    _paint_thick_classes(window)
    reports, _ = _train(window, qtbot)
    val = next(r.val for r in reversed(reports) if r.val is not None)
    assert val["enough"] and val["pixels"] > 1000
    text = window.training_panel.validation_label.text()
    assert f"on {val['pixels']:,} px of 1 slice (" in text and "F1 " in text, text
    assert window.session.images[0].name in text
    # The validation plot: y from 0 to 1, x from step 0 to the last step, whatever the points.
    (x0, x1), (y0, y1) = window.training_panel.val_plot.getViewBox().viewRange()
    assert -0.1 <= y0 <= 0.0 and 1.0 <= y1 <= 1.1
    assert x0 <= 0.0 and x1 >= reports[-1].step
    window.session.discard_untitled()


def test_accepted_predictions_are_never_validated_on(window, qtbot, sample):
    window.open_image(sample)
    paint_two_classes(window)
    window.session.set_current_slice(1)
    paint_two_classes(window)
    painted = [int((state_slice > 0).sum()) for state_slice in window.session.current.labels.data]
    _train(window, qtbot, preview_every=1)
    assert window.session.slices.probabilities() is not None  # the preview of the visible slice
    window.accept_prediction()
    labels = window.session.current.labels
    assert (labels.data[1] > 0).all()  # the whole slice is labelled now
    flags = labels.accepted_slice(1)
    assert flags is not None and flags.sum() > 256 * 256 - painted[1] - 10
    # Painting over accepted pixels makes them the person's; undo gives them back to the prediction.
    window.session.set_active_class(1)
    window.tools.set_brush_size(9)
    mouse_stroke(window, [(240, 10), (240, 100)])
    assert not labels.accepted[1, 240, 50]
    QTest.keyClick(window, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert labels.accepted[1, 240, 50]
    reports, _ = _train(window, qtbot)
    evaluations = [r.val for r in reports if r.val is not None]
    assert evaluations
    for val in evaluations:  # scored on painted pixels only (one slice of strokes at most)
        assert val["pixels"] <= max(painted)
    window.session.discard_untitled()


# ------------------------------------------------------------------ item 9: training status

def test_under_a_time_limit_the_bar_follows_time_and_the_end_is_stated(window, qtbot, sample_512):
    window.open_image(sample_512)
    paint_two_classes(window)
    panel = window.training_panel
    bars = []
    window.training.progressed.connect(lambda p: bars.append((p.done, panel.progress_bar.value(),
                                                              panel.progress_bar.maximum(),
                                                              panel.progress_bar.text())))
    request = TrainingRequest(preset="fast", time_limit_s=2.0, epochs=4)
    # 100 000 steps would take far longer than the 2 s limit: the time limit is what ends this run.
    reports, outcome = _train(window, qtbot, request, epochs=10_000, steps_per_epoch=10, time_limit_s=2.0)
    running = [b for b in bars if not b[0]]
    assert running and all(b[2] == 1000 for b in running), running[:3]  # time, not steps
    assert any(0 < b[1] < 1000 for b in running) and "/ 0:02" in running[-1][3]
    assert outcome.state == "done" and "time limit" in outcome.reason
    assert panel.progress_bar.value() == panel.progress_bar.maximum()
    status = panel.status_label.text()
    assert status.startswith(f"Done after {reports[-1].step} steps (time limit reached): model saved to "), status
    assert "ETA" not in panel.progress_bar.text()
    window.session.discard_untitled()


def test_after_stop_the_panel_says_stopped_and_where_the_model_is(window, qtbot, sample_512):
    window.open_image(sample_512)
    paint_two_classes(window)
    panel = window.training_panel
    window.training.config_hook = lambda m, t: tiny_configs(m, t, epochs=1000)
    with qtbot.waitSignal(window.training.progressed, timeout=60000, check_params_cb=lambda p: p.step >= 5):
        panel.start_requested.emit(TrainingRequest(preset="fast", time_limit_s=None, epochs=1000))
    assert "ETA" in panel.progress_bar.text()
    with qtbot.waitSignal(window.training.ended, timeout=30000) as ended:
        qtbot.mouseClick(panel.train_button, QtCore.Qt.MouseButton.LeftButton)  # "Stop"
    outcome = ended.args[0]
    assert outcome.state == "stopped" and outcome.steps >= 5
    model_dir = window.session.project.model_dir
    assert panel.status_label.text() == f"Stopped after {outcome.steps} steps: model saved to {model_dir}"
    assert "ETA" not in panel.progress_bar.text() and panel.progress_bar.text().startswith("stopped at step")
    assert (model_dir / "model.json").is_file()
    window.session.discard_untitled()


def test_a_second_run_continues_the_step_axis_of_both_plots(window, qtbot, sample):
    window.open_image(sample)
    _paint_thick_classes(window)
    window.session.set_current_slice(1)
    _paint_thick_classes(window)
    panel = window.training_panel
    first, _ = _train(window, qtbot, epochs=2)
    xs1, _ = panel.loss_plot.points("loss")
    f1_xs1, _ = panel.val_plot.points("mean F1")
    assert xs1[-1] == first[-1].step and f1_xs1
    window.training_panel.set_start_from("current")
    second, _ = _train(window, qtbot, TrainingRequest(preset="fast", time_limit_s=None, epochs=4,
                                                      continue_training=True), epochs=2)
    xs, _ = panel.loss_plot.points("loss")
    f1_xs, _ = panel.val_plot.points("mean F1")
    assert xs[: len(xs1)] == xs1  # the first run's points stay
    assert xs[len(xs1)] == xs1[-1] + second[0].step and xs[-1] == xs1[-1] + second[-1].step
    assert f1_xs[-1] > xs1[-1]  # validation continues on the same axis
    # Both plots mark where the second run starts, and share their x range from step 0 to the last.
    assert [line.value() for line in panel.loss_plot.run_lines] == [xs1[-1]]
    assert [line.value() for line in panel.val_plot.run_lines] == [xs1[-1]]
    (lx0, lx1), _ = panel.loss_plot.getViewBox().viewRange()
    (vx0, vx1), _ = panel.val_plot.getViewBox().viewRange()
    assert np.allclose([lx0, lx1], [vx0, vx1]) and lx0 <= 0 and lx1 >= xs[-1]
    window.session.discard_untitled()


# ------------------------------------------------------------------ a fresh run never loses the previous model

def test_a_fresh_run_keeps_the_model_it_replaces_and_restore_puts_it_back(window, qtbot, tmp_path, sample):
    from unet_studio.core.project import has_previous_model

    window.open_project(tmp_path / "project")
    window.open_image(sample)
    paint_two_classes(window)
    _train(window, qtbot)
    current = window.session.project.model_dir
    first = (current / "model.json").read_text()
    assert not window.training.kept_previous  # nothing to keep before the first run
    _train(window, qtbot)  # from scratch again: the first model goes to models/previous
    second = (current / "model.json").read_text()
    assert window.training.kept_previous and has_previous_model(window.session.project.layout)
    assert (window.session.project.layout.previous_model_dir / "model.json").read_text() == first
    assert "Restore Previous Model" in window.statusBar().currentMessage()
    window.restore_previous_model()
    assert (current / "model.json").read_text() == first
    assert (window.session.project.layout.previous_model_dir / "model.json").read_text() == second
    # Continuing from the current model keeps nothing (it starts from that model).
    _train(window, qtbot, TrainingRequest(preset="fast", time_limit_s=None, epochs=4, continue_training=True))
    assert not window.training.kept_previous
    assert (window.session.project.layout.previous_model_dir / "model.json").read_text() == second


def test_restore_without_a_previous_model_says_why(window, tmp_path, sample):
    window.open_project(tmp_path / "project")
    window.open_image(sample)
    window.show_error = lambda title, text: window.asked.append((title, text))
    action = next(a for menu in window.menuBar().findChildren(QtWidgets.QMenu) for a in menu.actions()
                  if a.text().replace("&", "") == "Restore Previous Model")
    action.trigger()
    assert window.asked and "no previous model" in window.asked[-1][1]
