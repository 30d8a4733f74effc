"""The project lock that tells a crashed session from a clean close (core.recovery)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from unet_studio.core import project as proj
from unet_studio.core.project import recovery
from unet_studio.core.project.layout import LOCK_FILE


def _lock_of(folder, pid, host=None, start=None) -> None:
    lock = {"pid": pid, "host": host or socket.gethostname(), "start": start, "opened": time.time()}
    (folder / LOCK_FILE).write_text(json.dumps(lock))


@pytest.fixture
def project_folder(tmp_path):
    folder = tmp_path / "project"
    proj.create_project(folder)
    proj.save_labels(folder / "labels" / "a_labels.tif", np.eye(8, dtype=np.uint8))
    return folder


@pytest.fixture
def sleeper():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


def _ended_pid() -> int:
    result = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(result.stdout)


def test_claim_and_clean_release(project_folder):
    assert recovery.claim(project_folder) is None  # never opened before
    assert recovery.read_lock(project_folder)["pid"] == os.getpid()
    assert recovery.claim(project_folder) is None  # ours: reopening is not a crash
    recovery.release(project_folder)
    assert not (project_folder / LOCK_FILE).exists()
    assert recovery.claim(project_folder) is None


def test_lock_of_an_ended_process_is_a_crash_and_its_temporary_files_go(project_folder):
    _lock_of(project_folder, _ended_pid())
    temporary = project_folder / "labels" / ".a_labels.x1y2.tmp.tif"
    temporary.write_bytes(b"half a TIFF")
    previous = recovery.claim(project_folder)
    assert previous is not None and previous.crashed
    assert previous.last_saved == pytest.approx((project_folder / "labels" / "a_labels.tif").stat().st_mtime)
    assert len(previous.last_saved_text()) == 8  # HH:MM:SS, today
    assert not temporary.exists() and (project_folder / "labels" / "a_labels.tif").exists()
    assert recovery.read_lock(project_folder)["pid"] == os.getpid()


def test_lock_of_a_running_process_is_not_a_crash(project_folder, sleeper):
    _lock_of(project_folder, sleeper.pid, start=recovery.process_start(sleeper.pid))
    temporary = project_folder / "labels" / ".a_labels.x1y2.tmp.tif"
    temporary.write_bytes(b"being written")
    previous = recovery.claim(project_folder)
    assert previous is not None and previous.running and temporary.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_killed_unreaped_and_reused_pids_count_as_ended(project_folder, sleeper):
    _lock_of(project_folder, sleeper.pid, start="1")  # the pid now belongs to a later process
    assert recovery.previous_session(project_folder).crashed
    sleeper.send_signal(signal.SIGKILL)
    time.sleep(0.2)  # killed, not yet reaped by its parent: a zombie
    _lock_of(project_folder, sleeper.pid)
    assert recovery.previous_session(project_folder).crashed


def test_lock_from_another_computer_is_assumed_running(project_folder):
    _lock_of(project_folder, 1, host="another-computer.example")
    assert recovery.previous_session(project_folder).running


def test_crashed_untitled_projects_newest_first(tmp_path, sleeper):
    base = tmp_path / "untitled"
    folders = {}
    for name, pid in (("old", _ended_pid()), ("new", _ended_pid()), ("running", sleeper.pid), ("clean", None)):
        folders[name] = folder = base / name
        proj.create_project(folder)
        proj.save_labels(folder / "labels" / "a_labels.tif", np.zeros((4, 4), np.uint8))
        if pid is not None:
            _lock_of(folder, pid)
    past = time.time() - 3600
    os.utime(folders["old"] / "labels" / "a_labels.tif", (past, past))
    os.utime(folders["old"] / "project.json", (past, past))
    found = recovery.crashed_untitled_projects(base)
    assert [p.folder for p in found] == [folders["new"], folders["old"]]
    assert not recovery.has_labels(folders["new"])
    proj.save_labels(folders["new"] / "labels" / "a_labels.tif", np.ones((4, 4), np.uint8))
    assert recovery.has_labels(folders["new"])
    assert recovery.crashed_untitled_projects(tmp_path / "absent") == []


@pytest.mark.parametrize("lock", [
    {"pid": 2**63}, {"pid": 2**31}, {"pid": -5}, {"pid": True}, {"pid": 1.5}, {"pid": "x"}, {"pid": None},
    {"pid": 1, "host": 5}, {"pid": 1, "host": ""}, [1, 2], "\x00garbage{", "x" * 100_000, "[" * 100_000,
])
def test_a_damaged_lock_is_a_stale_lock(project_folder, lock):
    """Issue 13 case 18: a lock with pid 2**63 or garbage is a crashed session's lock, never a crash here."""
    if isinstance(lock, dict):
        lock = {"host": socket.gethostname(), **lock}
    (project_folder / LOCK_FILE).write_text(lock if isinstance(lock, str) else json.dumps(lock))
    previous = recovery.claim(project_folder)
    assert previous is None or previous.crashed
    assert recovery.read_lock(project_folder)["pid"] == os.getpid()  # the project is ours now
