"""Crash safety: the real application, killed with SIGKILL while painting and while training.

Each round starts ``crash_driver.py`` (the application through ``unet_studio.gui.app.main``) on the same
project, lets it work, and kills it (at a random moment, or the moment a temporary file of an atomic
write appears, i.e. while a save is being written). After each kill the files on disk must load, hold
every stroke up to the last completed autosave and lose at most the last moments; the next round (a
fresh process) reopens the project through the real open path and sees the crash notice. Finally the
project is reopened in this process through the window. Untitled projects left by a crash are offered
for recovery at start.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PySide6 import QtWidgets

from crash_driver import stroke_cell
from gui_helpers import labels_of, mouse_stroke
from unet_studio.core import project as proj
from unet_studio.core.project import recovery
from unet_studio.core.project.layout import LABELS_DIR, LOCK_FILE, MODEL_DIR

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

Button = QtWidgets.QMessageBox.StandardButton
DRIVER = Path(__file__).with_name("crash_driver.py")
AUTOSAVE_MS, MAX_DELAY_MS = 200, 600   # the driver's autosave timing (the application's: 2000, 5000)
#: A stroke older than this at the kill must be on disk: the longest autosave wait plus time to write it
#: on a busy shared machine.
LOSS_BOUND_S = MAX_DELAY_MS / 1000 + 1.5
CRASH_NOTICE = "UNet Studio did not close cleanly"


# ----------------------------------------------------------------------------- child processes

def _env(config_dir: Path) -> dict:
    return dict(os.environ, QT_QPA_PLATFORM="offscreen", UNET_STUDIO_CONFIG_DIR=str(config_dir))


@contextlib.contextmanager
def _child(args: list[str], config_dir: Path, stderr_path: Path):
    """The driver in a child process; always killed and reaped on the way out."""
    with open(stderr_path, "ab") as stderr:
        child = subprocess.Popen([sys.executable, str(DRIVER), *map(str, args)], env=_env(config_dir),
                                 stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            yield child
        finally:
            if child.poll() is None:
                child.kill()
            child.wait(30)


def _events(log: Path) -> list[tuple[str, int, float]]:
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        event, value, stamp = line.split()
        rows.append((event, int(value), float(stamp)))
    return rows


def _wait_for(child, log: Path, stderr_path: Path, event: str, timeout: float = 60.0, count: int = 1):
    """Wait until LOG holds ``count`` lines of ``event``; fail with the child's stderr if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [row for row in _events(log) if row[0] == event]
        if len(rows) >= count:
            return rows
        if any(row[0].startswith("failed") for row in _events(log)) or child.poll() is not None:
            break
        time.sleep(0.02)
    tail = stderr_path.read_text(errors="replace")[-3000:] if stderr_path.exists() else ""
    pytest.fail(f"no '{event}' from the child (exit {child.poll()}); log {_events(log)[-5:]}\n{tail}")


def _temporary_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp*")) if folder.is_dir() else []


def _kill_while_writing(child, folder: Path, timeout: float = 5.0) -> bool:
    """SIGKILL the child the moment a temporary file of an atomic write shows up in ``folder``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with os.scandir(folder) as entries:
            if any(entry.name.startswith(".") and ".tmp" in entry.name for entry in entries):
                child.send_signal(signal.SIGKILL)
                return True
    return False


def _kill(child) -> float:
    child.send_signal(signal.SIGKILL)
    killed = time.time()
    child.wait(30)
    return killed


# ----------------------------------------------------------------------------- painting

@dataclass
class PaintHistory:
    """What the rounds painted. Strokes are numbered across rounds; one that a kill lost stays lost."""

    image: Path
    shape: tuple[int, int, int]
    on_disk: set[int] = field(default_factory=set)   # strokes in the labels file after the last kill
    painted: int = 0                                 # strokes 0..painted-1 were completed
    saves: int = 0                                   # completed autosaves, all rounds
    kills_while_writing: int = 0                     # kills that left a temporary file behind
    rounds: list[str] = field(default_factory=list)

    def present(self, labels: np.ndarray) -> set[int]:
        return {k for k in range(self.painted + 2) if _has_stroke(labels, k, self.shape[2])}


def _has_stroke(labels: np.ndarray, k: int, width: int) -> bool:
    y, x, value = stroke_cell(k, width)
    return int(labels[0, y, x]) == value


def _labels_on_disk(folder: Path, history: PaintHistory) -> np.ndarray:
    path = proj.Project(folder=folder).labels_path(history.image.stem)
    return proj.load_labels(path, history.shape, n_classes=2)  # raises if unreadable or damaged


def _paint_round(tmp_path: Path, config_dir: Path, folder: Path, history: PaintHistory, how: str) -> None:
    """One child: paint continuously, get killed ``how`` ("random" or "writing"), then check the file."""
    number, first = len(history.rounds), history.painted
    log, stderr = tmp_path / f"paint-{number}.log", tmp_path / f"paint-{number}.stderr"
    args = ["paint", folder, log, "--first", first, "--autosave-ms", AUTOSAVE_MS, "--max-delay-ms", MAX_DELAY_MS]
    if number == 0:
        args += ["--image", history.image]
    labels_dir = folder / LABELS_DIR
    with _child(args, config_dir, stderr) as child:
        opened = _wait_for(child, log, stderr, "opened")
        # From the second round on, the project was left by a killed process: the window says so.
        assert opened[0][1] == int(number > 0), "crash notice missing, or shown after a clean close"
        # Two autosaves while strokes keep coming without a pause (the timer is not pushed back forever).
        _wait_for(child, log, stderr, "saved", timeout=15, count=2)
        if how == "writing":
            assert _kill_while_writing(child, labels_dir), "no autosave was written within 5 s"
            killed_at = time.time()
            child.wait(30)
        else:
            time.sleep(random.uniform(0.05, 1.2))
            killed_at = _kill(child)
    assert child.returncode == -signal.SIGKILL
    history.rounds.append(how)
    history.kills_while_writing += how == "writing" and bool(_temporary_files(labels_dir))
    rows = _events(log)
    strokes = [(k, stamp) for event, k, stamp in rows if event == "stroke"]
    saved = [k for event, k, _ in rows if event == "saved"]
    history.painted = max([k + 1 for k, _ in strokes] + [first])
    history.saves += len(saved)

    present = history.present(_labels_on_disk(folder, history))
    required = history.on_disk | set(range(first, max(saved, default=first)))
    missing = sorted(required - present)
    assert not missing, f"strokes of completed autosaves are missing after the kill: {missing[:10]}"
    old = {k for k, done in strokes if done < killed_at - LOSS_BOUND_S}
    lost = sorted(old - present)
    assert not lost, f"strokes finished more than {LOSS_BOUND_S:.1f} s before the kill were lost: {lost[:10]}"
    assert history.painted + 1 not in present, "a stroke that was never painted is in the file"
    history.on_disk = present


def _run_paint_rounds(tmp_path, config_dir, data_dir, rounds: list[str]) -> tuple[Path, PaintHistory]:
    # The HeLa stack (10 x 700 x 1100): its labels take long enough to write for kills to land inside.
    history = PaintHistory(image=data_dir / "hela_timelapse" / "hela_02_t10.tif", shape=(10, 700, 1100))
    folder = tmp_path / "painted project"
    for how in rounds:
        _paint_round(tmp_path, config_dir, folder, history, how)
    return folder, history


def _reopen_and_check(window, folder: Path, history: PaintHistory) -> None:
    assert window.open_project(folder)
    assert window.last_error is not None and window.last_error[0] == CRASH_NOTICE
    assert "were restored" in window.last_error[1]
    assert not _temporary_files(folder / LABELS_DIR), "temporary files of the killed write are left"
    assert history.present(window.session.current.labels.data) == history.on_disk
    window.close()
    assert recovery.read_lock(folder) is None  # closed cleanly: no crash notice next time


def test_kill_while_painting_keeps_every_autosaved_stroke(window, tmp_path, user_dirs, data_dir):
    started = time.perf_counter()
    folder, history = _run_paint_rounds(tmp_path, user_dirs, data_dir, ["random", "writing"])
    assert history.kills_while_writing >= 1, "no kill landed inside an autosave write"
    assert len(history.on_disk) > 10
    _reopen_and_check(window, folder, history)
    print(f"\n{len(history.rounds)} kills, {history.painted} strokes, {len(history.on_disk)} on disk, "
          f"{history.saves} autosaves, {history.kills_while_writing} kills inside a write: "
          f"{time.perf_counter() - started:.1f} s")


@pytest.mark.slow
def test_kill_while_painting_many_times(window, tmp_path, user_dirs, data_dir):
    rounds = ["random", "writing"] * 5
    folder, history = _run_paint_rounds(tmp_path, user_dirs, data_dir, rounds)
    assert history.kills_while_writing >= 1
    _reopen_and_check(window, folder, history)
    print(f"\n{history.kills_while_writing} of {rounds.count('writing')} kills landed inside a write")


@pytest.fixture
def sample_copy(tmp_path):
    """``sample_copy(name)``: the bundled sample image copied as ``images/NAME`` (no shared data needed)."""
    import shutil

    from unet_studio.resources import sample_image_path

    def copy(name: str) -> Path:
        path = tmp_path / "images" / name
        path.parent.mkdir(exist_ok=True)
        if not path.exists():
            shutil.copyfile(sample_image_path(), path)
        return path
    return copy


def test_a_long_drag_is_autosaved_before_it_ends(window, qtbot, tmp_path, sample_copy):
    """A crash in the middle of one long stroke loses only its last moments, not the whole stroke."""
    folder = tmp_path / "dragged"
    assert window.open_project(folder)
    window.open_image(sample_copy("000.tif"))
    window.session.save_now()
    window.session.autosaver.set_delays(100, 300)
    saves = []
    window.session.saved.connect(saves.append)
    tools, deadline, x = window.tools, time.monotonic() + 1.5, 20
    tools.press(100, x)
    while time.monotonic() < deadline and x < 500:  # moving all the time: the timer is never idle long
        x += 1
        tools.move(100, x)
        qtbot.wait(10)
    assert saves, "no autosave during a 1.5 s drag"
    on_disk = tifffile.imread(folder / "labels" / "000_labels.tif")[0]  # slice 0 of the sample's two
    assert on_disk[100, 20] == 2 and on_disk[100, 20:x].sum() > 0
    tools.release()


# ----------------------------------------------------------------------------- training

def _labelled_project(folder: Path, data_dir: Path) -> Path:
    """A project with one ISBI slice and sparse labels from its ground truth (interior 1, membrane 2)."""
    image = data_dir / "isbi2012" / "images" / "000.tif"
    project = proj.create_project(folder)
    entry = project.add_image(image)
    proj.save_project(project)
    truth = tifffile.imread(data_dir / "isbi2012" / "labels" / "000.tif")
    labels = np.where(truth == 255, 1, 2).astype(np.uint8)
    sparse = np.zeros_like(labels)
    sparse[100:160], sparse[300:340, 50:450] = labels[100:160], labels[300:340, 50:450]
    proj.save_labels(project.labels_path(entry.name), sparse)
    return folder


def _check_model_folder(model_dir: Path, earlier=None):
    """The model folder loads (checksum, every tensor) and its history is whole; return its info."""
    from unet_studio.core.model.checkpoint import load_model

    _, info = load_model(model_dir)
    steps = [entry["step"] for entry in info.history]
    assert steps and steps == sorted(set(steps)), f"history out of order: {steps}"
    assert info.extra["steps"] == steps[-1]  # the weights and the history are of the same save
    meta = json.loads((model_dir / "model.json").read_text())
    assert (model_dir / meta["weights"]).is_file()
    if earlier is not None:
        # Continued after the crash: from the last saved model, its history kept.
        assert info.history[:len(earlier.history)] == earlier.history and steps[-1] > earlier.extra["steps"]
    return info


def _train_round(tmp_path, config_dir, folder: Path, number: int, how: str, resume: bool) -> bool:
    """One child: train (continuing the project's model when ``resume``), get killed ``how``; True when
    the kill landed inside a save."""
    log, stderr = tmp_path / f"train-{number}.log", tmp_path / f"train-{number}.stderr"
    model_dir = folder / MODEL_DIR
    args = ["train", folder, log] + (["--resume"] if resume else [])
    with _child(args, config_dir, stderr) as child:
        opened = _wait_for(child, log, stderr, "opened")
        assert opened[0][1] == int(number > 0), "crash notice missing, or shown after a clean close"
        _wait_for(child, log, stderr, "model", timeout=120)
        if how == "writing":
            assert _kill_while_writing(child, model_dir, timeout=20), "no model was saved within 20 s"
            child.wait(30)
        else:
            time.sleep(random.uniform(0.0, 1.0))
            _kill(child)
    assert child.returncode == -signal.SIGKILL
    return _save_interrupted(model_dir)


def _save_interrupted(model_dir: Path) -> bool:
    """Whether the kill landed inside a model save: a temporary file, or new weights not yet named."""
    named = json.loads((model_dir / "model.json").read_text())["weights"]
    return bool(_temporary_files(model_dir)) or any(p.name != named for p in model_dir.glob("weights-*"))


def _run_train_rounds(tmp_path, config_dir, data_dir, rounds: list[str]) -> tuple[Path, list, int]:
    """Train and kill once per round (each later round continues the model); return folder, infos, kills
    inside a save."""
    folder = _labelled_project(tmp_path / "trained project", data_dir)
    infos, inside = [], 0
    for number, how in enumerate(rounds):
        inside += _train_round(tmp_path, config_dir, folder, number, how, resume=number > 0)
        infos.append(_check_model_folder(folder / MODEL_DIR, earlier=infos[-1] if infos else None))
    return folder, infos, inside


def _reopen_with_model(window, qtbot, folder: Path) -> None:
    model_dir = folder / MODEL_DIR
    assert window.open_project(folder)
    assert window.last_error is not None and window.last_error[0] == CRASH_NOTICE
    assert window.session.model_dir == model_dir
    assert not _temporary_files(model_dir), "temporary files of the killed save are left"
    assert window.training_panel.continue_available()
    with qtbot.waitSignal(window.prediction.finished, timeout=60000):
        window.prediction.predict("slice")
    assert window.session.slices.probabilities() is not None


def test_kill_while_training_keeps_the_last_good_model(window, qtbot, tmp_path, user_dirs, data_dir):
    started = time.perf_counter()
    folder, infos, inside = _run_train_rounds(tmp_path, user_dirs, data_dir, ["writing"])
    _reopen_with_model(window, qtbot, folder)
    print(f"\nkilled while training ({inside} kill inside a save), {len(infos[-1].history)} evaluations "
          f"kept: {time.perf_counter() - started:.1f} s")


@pytest.mark.slow
def test_kill_while_training_and_continue_many_times(window, qtbot, tmp_path, user_dirs, data_dir):
    folder, infos, inside = _run_train_rounds(tmp_path, user_dirs, data_dir,
                                              ["random", "writing", "random", "writing", "random"])
    assert inside >= 1 and len(infos[-1].history) > len(infos[0].history)
    _reopen_with_model(window, qtbot, folder)
    print(f"\n{inside} of 5 kills landed inside a model save; history {len(infos[0].history)} -> "
          f"{len(infos[-1].history)} evaluations")


# ----------------------------------------------------------------------------- untitled projects

def _start_application(monkeypatch, qtbot, answers: dict):
    """Run ``unet_studio.gui.app.main()`` (no arguments) up to its event loop; return the window and questions."""
    from unet_studio.gui import app
    from unet_studio.gui.main_window import MainWindow

    asked = []

    def ask(self, title, text, buttons, default):
        asked.append((title, text))
        return answers.get(title, default)

    monkeypatch.setattr(MainWindow, "ask", ask)
    monkeypatch.setattr(MainWindow, "preload_compute_modules", lambda self, delay_ms=1000: None)
    monkeypatch.setattr(QtWidgets.QApplication, "exec", lambda self: 0)
    before = set(QtWidgets.QApplication.topLevelWidgets())
    assert app.main() == 0
    window = next(w for w in QtWidgets.QApplication.topLevelWidgets()
                  if isinstance(w, MainWindow) and w not in before)
    qtbot.addWidget(window)
    return window, [title for title, _ in asked], asked


def _close(window, answer) -> None:
    window.ask = lambda title, text, buttons, default: answer
    window.close()
    assert not window.isVisible()


def _paint_untitled_and_kill(tmp_path, config_dir, image: Path) -> tuple[Path, np.ndarray]:
    log, stderr = tmp_path / "untitled.log", tmp_path / "untitled.stderr"
    args = ["paint", "untitled", log, "--image", image, "--autosave-ms", AUTOSAVE_MS, "--max-delay-ms", MAX_DELAY_MS]
    with _child(args, config_dir, stderr) as child:
        _wait_for(child, log, stderr, "saved", count=2, timeout=15)
        _kill(child)
    [folder] = list((config_dir / "untitled").iterdir())
    labels = tifffile.imread(folder / "labels" / f"{image.stem}_labels.tif")
    assert labels.any()
    return folder, labels


def test_untitled_project_of_a_killed_session_is_offered_at_start(monkeypatch, qtbot, tmp_path, user_dirs,
                                                                  sample_copy):
    from unet_studio.resources import sample_image_path

    image = sample_copy("000.tif")
    folder, labels = _paint_untitled_and_kill(tmp_path, user_dirs, image)

    window, asked, questions = _start_application(monkeypatch, qtbot, {"Recover unsaved labels?": Button.Open})
    assert asked == ["Recover unsaved labels?"]
    assert "000.tif" in questions[0][1] and "autosaved at" in questions[0][1]
    assert window.session.folder == folder.resolve() and window.session.is_untitled
    np.testing.assert_array_equal(labels_of(window, 0), labels.reshape(-1, *labels.shape[-2:])[0])
    assert window.last_error is None  # the question said it all: no second notice
    assert window.session.current.entry.path == image.resolve()
    _close(window, Button.Discard)  # asked "Save the project?": discard
    assert not folder.exists()

    window, asked, _ = _start_application(monkeypatch, qtbot, {})
    assert asked == [] and window.session.current.entry.path == sample_image_path().resolve()
    _close(window, Button.Discard)


def _crashed_untitled(window, qtbot, points) -> Path:
    """An untitled project with labels whose session "crashed": its lock names a process that ended."""
    window.session.autosaver.set_delays(50)
    with qtbot.waitSignal(window.session.saved, timeout=5000):
        mouse_stroke(window, points)
    folder = window.session.folder
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = json.loads((folder / LOCK_FILE).read_text())
    lock.update(pid=int(ended.stdout), start=None)
    (folder / LOCK_FILE).write_text(json.dumps(lock))
    window.session.project.folder = None  # this window lets go of it without cleaning up: as if killed
    window.session.discarded = True
    return folder


def test_recovery_choices_discard_and_ignore(window, monkeypatch, qtbot, user_dirs, sample_copy):
    window.open_image(sample_copy("001.tif"))
    crashed = _crashed_untitled(window, qtbot, [(20, 20), (20, 60)])
    assert [p.folder for p in recovery.crashed_untitled_projects(user_dirs / "untitled")] == [crashed]

    window, asked, _ = _start_application(monkeypatch, qtbot, {"Recover unsaved labels?": Button.Ignore})
    assert asked == ["Recover unsaved labels?"] and crashed.exists()  # kept for the next start
    assert window.session.folder != crashed
    _close(window, Button.Discard)
    window, asked, _ = _start_application(monkeypatch, qtbot, {"Recover unsaved labels?": Button.Discard})
    assert asked == ["Recover unsaved labels?"] and not crashed.exists()
    _close(window, Button.Discard)


def test_cleanly_closed_projects_are_not_offered(window, monkeypatch, qtbot, tmp_path, user_dirs, sample_copy):
    image = sample_copy("001.tif")
    window.open_image(image)  # untitled, no labels: autosaved (image list only), removed on close
    window.session.save_in_background()
    window.session.wait_for_writer()
    scratch = window.session.folder
    assert recovery.read_lock(scratch)["pid"] == os.getpid()
    titled = tmp_path / "titled"
    assert window.open_project(titled)
    assert not scratch.exists()
    window.open_image(image)
    mouse_stroke(window, [(10, 10), (10, 40)])
    _close(window, Button.Discard)
    assert recovery.read_lock(titled) is None and not list((user_dirs / "untitled").iterdir())

    window, asked, _ = _start_application(monkeypatch, qtbot, {})
    assert asked == []
    assert window.open_project(titled) and window.last_error is None  # no crash notice either
    assert labels_of(window)[10, 25] == 2
    _close(window, Button.Discard)


def test_project_open_in_another_running_session_is_reported(window, tmp_path):
    folder = tmp_path / "shared project"
    assert window.open_project(folder)
    window.close()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = {"pid": other.pid, "host": recovery.socket.gethostname(), "start": None, "opened": time.time()}
        (folder / LOCK_FILE).write_text(json.dumps(lock))
        (folder / "labels" / ".000_labels.abc.tmp.tif").write_bytes(b"being written by the other one")
        assert window.open_project(folder)
        assert window.last_error[0] == "Project open elsewhere" and str(other.pid) in window.last_error[1]
        assert (folder / "labels" / ".000_labels.abc.tmp.tif").exists()  # not ours to clean up
    finally:
        other.kill()
        other.wait()
