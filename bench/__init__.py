"""Benchmarks that measure UNet Studio side by side with a named peer, in the same run.

Every benchmark runs the peer and UNet Studio on the same machine, data, network and settings, and
returns a :class:`BenchResult`: the ratio against the peer (always "how many times better we are", so
> 1 means we win) with the absolute figures of both beside it. ``python -m bench`` runs them (see
``bench/__main__.py``); each module here documents how its peer is written and why that is fair.

Registry: :data:`BENCHMARKS` maps a benchmark's name to ``"module:function"``; the function takes
``quick: bool`` and returns a :class:`BenchResult`. :data:`OPT_IN` holds long benchmarks that run only
when named (``--only soak``). ``selftest`` is a trivial benchmark (no torch, no Qt) that the smoke test
uses to exercise the runner; it is not part of the default set.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> "module:function"; run in this order.
BENCHMARKS: dict[str, str] = {
    "train": "bench.bench_train:run",
    "infer": "bench.bench_infer:run",
    "paint": "bench.bench_gui:run_paint",
    "stall": "bench.bench_gui:run_stall",
    "startup": "bench.bench_gui:run_startup",
    "scribbles": "bench.bench_scribbles:run",
}
#: Opt-in benchmarks: not in the default or quick set, run with ``--only NAME`` (long runs).
OPT_IN: dict[str, str] = {
    "soak": "bench.soak:run",
    "generalization": "bench.generalization:run",
}
#: Benchmarks that exist for testing the runner only (run with ``--only``).
HIDDEN: dict[str, str] = {
    "selftest": "bench:selftest",
    "selftest_fail": "bench:selftest_fail",
}

#: Headline keys of issue 6 and the targets they are held to (op, value).
TARGETS: dict[str, tuple[str, float | str]] = {
    "train_speedup_vs_plain": (">=", 1.5),
    "infer_speedup_vs_monai": (">=", 1.5),
    "paint_dab_ms_8192": ("<", 5.0),
    "gui_max_stall_ms": ("<", 100.0),
    "cold_start_s": ("<", 2.0),
    "scribble_f1_60s": (">", "rf_scribble_f1"),
    # issue 7, the opt-in soak benchmark (not measured by the default set)
    "soak_memory_growth_pct": ("<", 5.0),
    "soak_failures": ("<=", 0),
}
HEADLINE_KEYS = ("train_speedup_vs_plain", "infer_speedup_vs_monai", "paint_dab_ms_8192", "gui_max_stall_ms",
                 "cold_start_s", "scribble_f1_60s", "rf_scribble_f1", "soak_memory_growth_pct", "soak_failures")


@dataclass
class Row:
    """One line of a benchmark's table: what, our figure, the peer's figure, the unit."""

    what: str
    ours: float | None
    peer: float | None
    unit: str


@dataclass
class BenchResult:
    """What a benchmark returns.

    ``ratio`` is "times better than the peer" (ours/peer for a speed, peer/ours for a time);
    ``headline`` holds the issue's JSON keys this benchmark fills; ``figures`` any other absolute
    figures (they go into the JSON under the benchmark's name); ``notes`` how it was measured.
    """

    name: str
    peer: str
    ratio: float | None
    rows: list[Row] = field(default_factory=list)
    headline: dict[str, float | None] = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "BenchResult":
        rows = [Row(**r) for r in data.get("rows", [])]
        return cls(name=data["name"], peer=data["peer"], ratio=data.get("ratio"), rows=rows,
                   headline=dict(data.get("headline", {})), figures=dict(data.get("figures", {})),
                   notes=list(data.get("notes", [])))


# ----------------------------------------------------------------------------------------------- helpers


def data_dir() -> Path:
    """The shared real data (``../shared/data`` beside the checkout, or ``$UNET_STUDIO_DATA``)."""
    return Path(os.environ.get("UNET_STUDIO_DATA", ROOT.parent / "shared" / "data"))


def loadavg() -> list[float] | None:
    try:
        with open("/proc/loadavg", encoding="ascii") as handle:
            return [float(v) for v in handle.read().split()[:3]]
    except OSError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info() -> dict:
    """CPU model, cores, memory, torch version and device (torch is imported here)."""
    info = {"cpu": cpu_model(), "cores": cores(), "python": platform.python_version(),
            "platform": platform.platform()}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    info["memory_gb"] = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["device"] = f"cuda ({torch.cuda.get_device_name(0)})"
        else:
            info["device"] = "cpu"
    except ImportError:
        info["torch"] = None
        info["device"] = "cpu"
    return info


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def median(values) -> float:
    values = [float(v) for v in values]
    return statistics.median(values) if values else float("nan")


def ratio(ours: float | None, peer: float | None) -> float | None:
    """ours / peer, None when either is missing or the peer is 0."""
    if ours is None or peer is None or not peer or math.isnan(ours) or math.isnan(peer):
        return None
    return float(ours) / float(peer)


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def check_target(key: str, values: dict) -> bool | None:
    """Whether headline ``key`` meets its target given all headline ``values`` (None: not measured)."""
    if key not in TARGETS:
        return None
    op, bound = TARGETS[key]
    value = values.get(key)
    if isinstance(bound, str):
        bound = values.get(bound)
    if value is None or bound is None:
        return None
    return {">=": value >= bound, ">": value > bound, "<": value < bound, "<=": value <= bound}[op]


class Stopwatch:
    """``with Stopwatch() as sw: ...; sw.seconds``."""

    def __enter__(self) -> "Stopwatch":
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def python_child_env(**extra: str) -> dict:
    """Environment for a child Python process that imports this checkout's ``bench`` and package."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def run_python(code_or_args: list[str], timeout: float, **env: str) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` (this interpreter) with the checkout on the path; capture the output."""
    return subprocess.run([sys.executable, *code_or_args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=python_child_env(**env))


# ----------------------------------------------------------------------------------------------- self test


def selftest(quick: bool = True) -> BenchResult:
    """A trivial benchmark for testing the runner: sums with a loop versus ``sum()``."""
    values = list(range(20000))
    with Stopwatch() as ours:
        sum(values)
    with Stopwatch() as peer:
        total = 0
        for v in values:
            total += v
    return BenchResult(name="selftest", peer="python for-loop", ratio=ratio(peer.seconds, ours.seconds),
                       rows=[Row("sum of 20000 ints", ours.seconds * 1e3, peer.seconds * 1e3, "ms")],
                       headline={"selftest_value": 1.0}, notes=["runner self test"])


def selftest_fail(quick: bool = True) -> BenchResult:
    raise RuntimeError("selftest_fail: this benchmark always fails (runner test)")
