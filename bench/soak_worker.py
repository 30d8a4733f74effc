"""The soak's workers (see ``bench/soak.py``): one side of the soak, in a child process or in this one.

The parent sends one request per line on the child's stdin (``cycle N``, ``mark``, ``final``, ``quit``);
the child answers each with one line ``SOAK {json}`` on its stdout (anything else it prints goes to its
log). After every cycle the answer carries :func:`probe`: RSS, anonymous RSS, open file descriptors,
threads and tracked Python objects, measured after ``gc.collect()``. ``mark`` remembers the Python object
counts (and a tracemalloc snapshot) at the baseline; ``final`` reports what grew since, and the RSS
before and after ``malloc_trim(0)``.

Child command line (the parent builds it)::

    python -m bench.soak_worker --side ours --settings '{...}' --workdir DIR [--tracemalloc]
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import selectors
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from bench import ROOT, python_child_env
from bench.soak_cycles import SoakSettings

PREFIX = "SOAK "
SIDES = {"ours": "our session (core API)", "gui": "our session (main window, offscreen)",
         "plain": "plain PyTorch loop"}


# ----------------------------------------------------------------------------------------------- probes


def _status() -> dict[str, int]:
    values = {}
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


def probe() -> dict:
    """Memory, file descriptors, threads and Python objects of this process, after a garbage collection."""
    gc.collect()
    status = _status()
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = None
    return {"rss_mb": status.get("VmRSS", 0) / 1024, "anon_mb": status.get("RssAnon", 0) / 1024,
            "hwm_mb": status.get("VmHWM", 0) / 1024, "threads": status.get("Threads", threading.active_count()),
            "py_threads": threading.active_count(), "fds": fds, "py_objects": len(gc.get_objects())}


def trimmed_rss() -> dict | None:
    """RSS before and after glibc's ``malloc_trim(0)`` (free memory the allocator holds goes back to the
    system): how much of the RSS is retained free memory rather than live data. None off glibc."""
    import ctypes

    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    before = probe()["rss_mb"]
    trim(0)
    return {"rss_mb_before": before, "rss_mb_after": _status().get("VmRSS", 0) / 1024}


def _our_frame(frames) -> str:
    """The innermost frame in this project's code (unet_studio/, bench/), else the innermost one."""
    for frame in reversed(frames):  # tracemalloc lists the outermost frame first
        if f"{os.sep}unet_studio{os.sep}" in frame.filename or f"{os.sep}bench{os.sep}" in frame.filename:
            return f"{frame.filename}:{frame.lineno}"
    return str(frames[-1]) if len(frames) else "?"


def type_counts() -> collections.Counter:
    gc.collect()
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


# ----------------------------------------------------------------------------------------------- worker


def make_session(side: str, settings: SoakSettings, workdir: Path):
    from bench import soak_cycles

    if side == "ours":
        return soak_cycles.CoreSession(settings, workdir)
    if side == "plain":
        return soak_cycles.PlainSession(settings, workdir)
    if side == "gui":
        from bench.soak_gui import GuiSession

        return GuiSession(settings, workdir)
    raise ValueError(f"unknown side {side!r}")


class Worker:
    """One side, in this process: runs cycles and answers the parent's requests (see :func:`worker_main`)."""

    def __init__(self, side: str, settings: SoakSettings, workdir: Path, trace: bool = False) -> None:
        self.side, self.trace = side, trace
        self.session = make_session(side, settings, workdir)
        self.mark_counts: collections.Counter | None = None
        self.mark_snapshot = None

    def handle(self, command: str) -> dict:
        name, _, arg = command.partition(" ")
        if name == "cycle":
            start = time.perf_counter()
            try:
                stats, error = self.session.cycle(int(arg)), None
            except Exception as exc:  # noqa: BLE001 - a soak counts failures and goes on
                stats, error = {}, {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            seconds = time.perf_counter() - start
            return {"cycle": int(arg), "ok": error is None, **(error or {}), "seconds": seconds, "stats": stats,
                    "probe": probe()}
        if name == "mark":
            self.mark_counts = type_counts()
            if self.trace:
                import tracemalloc

                # Traced from the baseline on (what is alive at the end and was allocated since is the
                # growth); frames enough to reach our code from numpy and torch. Slows cycles down.
                tracemalloc.start(8)
                self.mark_snapshot = tracemalloc.take_snapshot()
            return {"ok": True, "probe": probe()}
        if name == "final":
            return {"ok": True, **self.diagnostics()}
        raise ValueError(f"unknown command {command!r}")

    def diagnostics(self) -> dict:
        out: dict = {}
        if self.mark_counts is not None:
            now = type_counts()
            grown = {k: now[k] - self.mark_counts.get(k, 0) for k in now}
            top = sorted(((v, k) for k, v in grown.items() if v > 0), reverse=True)[:12]
            out["object_growth"] = [{"type": k, "count": now[k], "grew": v} for v, k in top]
        out["malloc_trim"] = trimmed_rss()
        if self.trace and self.mark_snapshot is not None:
            import tracemalloc

            diff = tracemalloc.take_snapshot().compare_to(self.mark_snapshot, "traceback")
            out["tracemalloc_growth"] = [{"where": _our_frame(d.traceback), "kb": round(d.size_diff / 1024, 1),
                                          "blocks": d.count_diff} for d in diff[:12] if d.size_diff > 0]
        return out

    def close(self) -> None:
        self.session.close()


def worker_main(side: str, settings: SoakSettings, workdir: Path, trace: bool) -> int:
    """Child process: build the session, then answer one request per line on stdin (one JSON line each)."""
    out = sys.stdout
    sys.stdout = sys.stderr  # only protocol lines on the real stdout
    try:
        worker = Worker(side, settings, workdir, trace)
    except Exception as exc:  # noqa: BLE001
        out.write(PREFIX + json.dumps({"ready": False, "error": f"{type(exc).__name__}: {exc}",
                                       "traceback": traceback.format_exc()}) + "\n")
        out.flush()
        return 1
    out.write(PREFIX + json.dumps({"ready": True, "probe": probe(), "pid": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        command = line.strip()
        if not command or command == "quit":
            break
        out.write(PREFIX + json.dumps(worker.handle(command), default=str) + "\n")
        out.flush()
    worker.close()
    return 0


class ChildWorker:
    """A side in a child process (the default): the same requests over a pipe, with a time limit each."""

    def __init__(self, side: str, settings: SoakSettings, workdir: Path, trace: bool, timeout: float) -> None:
        self.side, self.timeout = side, timeout
        self.log_path = workdir / "worker.log"
        command = [sys.executable, "-m", "bench.soak_worker", "--side", side, "--settings",
                   json.dumps(settings.to_dict()), "--workdir", str(workdir)]
        if trace:
            command.append("--tracemalloc")
        env = python_child_env()
        if side == "gui":
            env.setdefault("QT_QPA_PLATFORM", "offscreen")
            env["UNET_STUDIO_CONFIG_DIR"] = str(workdir / "config")
        self.log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1, env=env)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)

    def ready(self) -> dict:
        return self._read(self.timeout)

    def handle(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read(self.timeout)

    def _read(self, timeout: float) -> dict:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                self.kill()
                raise RuntimeError(f"{self.side}: no answer within {timeout:.0f} s (killed){self._tail()}")
            if not self.selector.select(left):
                continue
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(10)
                raise RuntimeError(f"{self.side}: the child process ended (status {self.proc.returncode})"
                                   f"{self._tail()}")
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX):])

    def _tail(self) -> str:
        self.log.flush()
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")[-1500:]
        except OSError:
            text = ""
        return f"; its last output:\n{text}" if text else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(60)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        finally:
            self.selector.close()
            self.log.close()


class LocalWorker(Worker):
    """A side in this process (``--in-process``: for tests; memory figures are then the process's)."""

    def ready(self) -> dict:
        return {"ready": True, "probe": probe(), "pid": os.getpid()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="one side of the soak benchmark (started by bench/soak.py)")
    parser.add_argument("--side", required=True, choices=sorted(SIDES))
    parser.add_argument("--settings", required=True, help="SoakSettings as JSON")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args(argv)
    return worker_main(args.side, SoakSettings.from_dict(json.loads(args.settings)), Path(args.workdir),
                       args.tracemalloc)


if __name__ == "__main__":
    sys.exit(main())
