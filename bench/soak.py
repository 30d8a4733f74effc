"""Soak: train, predict, post-process and edit labels over and over for a long time; report memory growth
and every failure. Opt-in (not in the default or quick set)::

    python -m bench --only soak              # 30 minutes (--quick: 1 minute)
    python bench/soak.py --minutes 30 --json soak.json
    python bench/soak.py --minutes 3 --train-seconds 4 --gui   # the GUI-side session (offscreen Qt)

What one cycle does is in ``bench/soak_cycles.py``: ours is a person's session through the core API
(strokes, fill, undo/redo; training with previews and validation, stopped as the Stop button does or at
its time limit, every other cycle continuing from the saved model; loading the model folder; overlap-tile
prediction of four images read from TIFF files, one of them cancelled and restarted now and then;
instances, measurements and the export files written atomically; "accept prediction"; autosave; the
cycle's edits undone). With ``--gui`` the same session runs through the real main window (offscreen):
the training and prediction controllers, their worker threads, the overlay. The peer ("plain PyTorch
loop") trains the same network for the same time with a bare loop on random crops, saves and loads it
with ``torch.save``/``torch.load``, predicts the same images with a whole-image forward pass, labels the
objects with scikit-image and writes the same kinds of files with ``tifffile`` and ``csv``.

How it is measured. Each side runs in its own child process for the whole soak (memory is per process,
so a leak is charged to the side that has it; ``bench/soak_worker.py``); the parent tells them to run one
cycle at a time, alternating (A B B A ...), so that both see the same load on a shared machine and each
cycle has the machine to itself. After each cycle the child collects garbage (``gc.collect()``) and
reports its resident set size (``VmRSS`` and ``RssAnon`` of ``/proc/self/status``), open file
descriptors (``/proc/self/fd``), threads, and the number of Python objects the garbage collector
tracks. The first ``--warmup`` cycles (4; 1 with ``--quick``) fill the allocator's caches, load lazily
imported modules, build the first model folder and take each path of the cycle once (fresh and
continued training, a cancelled prediction, a training that ends at its time limit): they are not part
of the baseline. Memory growth = (median RSS of the last ``n`` cycles) / (median of the first ``n``
after the warm-up) - 1, with ``n`` = a quarter of the cycles, 1 to 5, which is robust to the ups and
downs of single cycles; the least-squares trend (MB per hour, over the second half of the cycles from
12 on: a leak keeps climbing after the allocator's plateau) is reported beside it. The ratio is the
peer's end/start RSS over ours (> 1: ours grew less). At the end each child reports the Python object
types whose counts grew most since the baseline, its RSS before and after ``malloc_trim(0)`` (how much
of it is free memory the allocator keeps) and, with ``--tracemalloc``, the source lines whose live
allocations grew most. Every exception in a cycle is caught with its traceback and counted as a
failure, and so are wrong or missing outputs (probabilities that do not sum to 1, a model folder with
stray weights files, temporary files left behind, undo that does not restore the labels); the soak
goes on. A child that dies or stops answering is a failure too: that side stops, the other goes on.

On a machine shared with other work, give both sides one thread (``--threads 1``): PyTorch's threads
wait for each other and a busy core slows every step many times over.
"""

from __future__ import annotations

if not __package__:  # run as a script: python bench/soak.py
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))
    __package__ = "bench"

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from bench import BenchResult, Row, ratio
from bench.soak_cycles import SoakSettings
from bench.soak_worker import SIDES, ChildWorker, LocalWorker

PEER = "plain PyTorch loop (bare training loop on random crops, whole-image forward pass)"


# ----------------------------------------------------------------------------------------------- the soak


def growth_window(n: int) -> int:
    """How many cycles the start and end medians take: a quarter of the cycles, 1 to 5."""
    return max(1, min(5, n // 4))


def summarise(samples: list[dict], warmup: int) -> dict:
    """Figures of one side from its per-cycle reports (warm-up cycles excluded from the baseline)."""
    counted = [s for s in samples[warmup:] if "probe" in s]
    failures = [s for s in samples if not s.get("ok")]
    out = {"cycles": len(counted), "warmup_cycles": min(warmup, len(samples)), "failures": len(failures),
           "failure_list": [{"cycle": s.get("cycle"), "error": s.get("error"), "traceback": s.get("traceback")}
                            for s in failures]}
    if not counted:
        return out
    n = growth_window(len(counted))

    def series(key):
        return np.array([s["probe"][key] if s["probe"].get(key) is not None else np.nan for s in counted], float)

    for key in ("rss_mb", "anon_mb", "fds", "threads", "py_objects"):
        values = series(key)
        first, last = float(np.median(values[:n])), float(np.median(values[-n:]))
        out[key] = {"start": first, "end": last, "max": float(np.nanmax(values)), "change": last - first,
                    "growth_pct": 100.0 * (last - first) / first if first else None}
    times = np.array([s["t"] for s in counted], float)
    rss = series("rss_mb")
    # A trend from a handful of cycles is mostly the noise of single cycles: only from 6 on. From 12 on,
    # over the second half: the RSS often climbs to a plateau (the allocator's high-water mark) in the
    # first cycles, and a leak is what keeps climbing after that.
    half = len(counted) // 2 if len(counted) >= 12 else 0
    out["rss_slope_cycles"] = len(counted) - half
    out["rss_slope_mb_per_h"] = (float(np.polyfit(times[half:], rss[half:], 1)[0] * 3600)
                                 if len(counted) >= 6 else None)
    out["window"] = n
    out["cycle_seconds_median"] = float(np.median([s["seconds"] for s in counted]))
    steps = [s["stats"].get("steps") for s in counted if s.get("stats", {}).get("steps")]
    out["steps_median"] = float(np.median(steps)) if steps else None
    out["series"] = {"t": times.round(1).tolist(), "rss_mb": rss.round(1).tolist(),
                     "anon_mb": series("anon_mb").round(1).tolist(), "fds": series("fds").tolist(),
                     "threads": series("threads").tolist(), "py_objects": series("py_objects").tolist()}
    return out


class _Soak:
    """The parent's side of a soak: starts the workers, alternates their cycles, records what they say."""

    def __init__(self, settings: SoakSettings, sides: list[str], warmup: int, in_process: bool, trace: bool, log):
        self.settings, self.sides, self.warmup, self.log = settings, sides, warmup, log
        self.in_process, self.trace = in_process, trace
        self.samples: dict[str, list[dict]] = {s: [] for s in sides}
        self.start_probe: dict[str, dict] = {}
        self.diagnostics: dict[str, dict] = {}
        self.stopped: dict[str, str] = {}   # side -> why it stopped (a crash, a hang, a failed start)
        self.workers: dict = {}
        self.started = time.perf_counter()

    def fail(self, side: str, cycle: int | None, error: str, details: str = "") -> None:
        """A failure outside a cycle's own try (the worker died, hung or did not start): the side stops."""
        self.samples[side].append({"cycle": cycle, "ok": False, "error": error[:2000], "traceback": details})
        self.stopped[side] = error[:4000]
        self.log(f"[soak] {side} stopped ({'cycle %s' % cycle if cycle is not None else 'outside a cycle'}): "
                 f"{error[:300]}")

    def start(self, workdir: Path) -> None:
        timeout = max(300.0, 30 * self.settings.train_seconds)
        for side in self.sides:  # both children start before either is waited for: their imports overlap
            folder = workdir / side
            folder.mkdir()
            try:
                self.workers[side] = (LocalWorker(side, self.settings, folder, self.trace) if self.in_process
                                      else ChildWorker(side, self.settings, folder, self.trace, timeout))
            except Exception as exc:  # noqa: BLE001
                self.fail(side, None, f"could not start: {type(exc).__name__}: {exc}", traceback.format_exc())
        for side, worker in self.workers.items():
            try:
                answer = worker.ready()
            except RuntimeError as exc:
                answer = {"ready": False, "error": str(exc)}
            if answer.get("ready"):
                self.start_probe[side] = answer["probe"]
            else:
                self.fail(side, None, f"could not start: {answer.get('error')}", answer.get("traceback", ""))

    def request(self, side: str, command: str, cycle: int | None = None) -> dict | None:
        try:
            return self.workers[side].handle(command)
        except RuntimeError as exc:  # the child died or hung (ChildWorker)
            self.fail(side, cycle, str(exc))
            return None

    def cycle(self, side: str) -> None:
        index = len(self.samples[side])
        if index == self.warmup and self.request(side, "mark") is None:
            return
        answer = self.request(side, f"cycle {index}", index)
        if answer is None:
            return
        answer["t"] = time.perf_counter() - self.started
        self.samples[side].append(answer)
        p = answer["probe"]
        status = "ok" if answer["ok"] else f"FAILED {answer.get('error')}"
        self.log(f"[soak] {answer['t']:7.0f} s  {side:<5} cycle {index:3d}{' (warm-up)' if index < self.warmup else ''}"
                 f"  {answer['seconds']:5.1f} s  RSS {p['rss_mb']:7.1f} MB  anon {p['anon_mb']:7.1f} MB  "
                 f"fds {p['fds']}  threads {p['threads']}  objects {p['py_objects']}  "
                 f"steps {answer['stats'].get('steps')}  {status}")

    def run(self, minutes: float, cycles: int | None) -> None:
        deadline = self.started + minutes * 60
        target = None if cycles is None else self.warmup + cycles

        def wanted(side: str, in_time: bool) -> bool:
            done = len(self.samples[side])
            if side in self.stopped:
                return False
            if target is not None:
                return done < target
            return in_time or done < self.warmup + 2

        rounds = 0
        while True:
            in_time = time.perf_counter() < deadline  # once per round: both sides get as many cycles
            if not any(wanted(s, in_time) for s in self.sides):
                break
            for side in self.sides if rounds % 2 == 0 else self.sides[::-1]:  # A B B A ...
                if wanted(side, in_time):
                    self.cycle(side)
            rounds += 1
        for side in self.sides:
            if side not in self.stopped and len(self.samples[side]) > self.warmup:
                answer = self.request(side, "final")
                if answer is not None:
                    self.diagnostics[side] = answer

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()


def soak(settings: SoakSettings, minutes: float, *, cycles: int | None = None, warmup: int = 4,
         gui: bool = False, in_process: bool = False, trace: bool = False, log=None) -> dict:
    """Run both sides, alternating cycles, for ``minutes`` (or ``warmup + cycles`` cycles each); return
    the report (settings, per-side summaries, diagnostics)."""
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    ours_side = "gui" if gui else "ours"
    run = _Soak(settings, [ours_side, "plain"], warmup, in_process, trace, log)
    with tempfile.TemporaryDirectory(prefix="unet-soak-") as tmp:
        try:
            run.start(Path(tmp))
            run.run(minutes, cycles)
        finally:
            run.close()
    summaries = {side: summarise(run.samples[side], warmup) for side in run.sides}
    for side, why in run.stopped.items():
        summaries[side]["stopped"] = why
    return {"settings": settings.to_dict(), "minutes": minutes, "warmup": warmup, "in_process": in_process,
            "sides": run.sides, "ours_side": ours_side, "seconds": time.perf_counter() - run.started,
            "start_probe": run.start_probe, "summaries": summaries, "diagnostics": run.diagnostics}


# ----------------------------------------------------------------------------------------------- report


def _get(summary: dict, key: str, field: str):
    value = summary.get(key)
    return value.get(field) if isinstance(value, dict) else None


def to_result(report: dict) -> BenchResult:
    ours, peer = (report["summaries"][s] for s in report["sides"])
    ours_growth, peer_growth = _get(ours, "rss_mb", "growth_pct"), _get(peer, "rss_mb", "growth_pct")
    rel = None
    if ours_growth is not None and peer_growth is not None:
        rel = ratio(1 + peer_growth / 100, 1 + ours_growth / 100)
    ours_failures, peer_failures = ours.get("failures", 0), peer.get("failures", 0)
    n = ours.get("window", 1)
    rows = [
        Row("RSS growth, start -> end of the soak", ours_growth, peer_growth, "%"),
        Row(f"RSS after the warm-up (median of {n} cycles)", _get(ours, "rss_mb", "start"),
            _get(peer, "rss_mb", "start"), "MB"),
        Row(f"RSS at the end (median of {n} cycles)", _get(ours, "rss_mb", "end"), _get(peer, "rss_mb", "end"), "MB"),
        Row("largest RSS after a cycle", _get(ours, "rss_mb", "max"), _get(peer, "rss_mb", "max"), "MB"),
        Row(f"RSS trend (least squares, last {ours.get('rss_slope_cycles', 0)} cycles)", ours.get("rss_slope_mb_per_h"),
            peer.get("rss_slope_mb_per_h"), "MB/h"),
        Row("anonymous memory growth", _get(ours, "anon_mb", "growth_pct"), _get(peer, "anon_mb", "growth_pct"), "%"),
        Row("open file descriptors, change", _get(ours, "fds", "change"), _get(peer, "fds", "change"), ""),
        Row("threads, change", _get(ours, "threads", "change"), _get(peer, "threads", "change"), ""),
        Row("Python objects, change", _get(ours, "py_objects", "change"), _get(peer, "py_objects", "change"), ""),
        Row("cycles after the warm-up", ours.get("cycles"), peer.get("cycles"), ""),
        Row("failures", ours_failures, peer_failures, ""),
        Row("seconds per cycle (median)", ours.get("cycle_seconds_median"), peer.get("cycle_seconds_median"), "s"),
        Row("training steps per cycle (median)", ours.get("steps_median"), peer.get("steps_median"), ""),
    ]
    settings = report["settings"]
    where = ("both sides in one process (figures are the process's)" if report["in_process"]
             else "one child process per side")
    notes = [f"{report['seconds'] / 60:.1f} minutes, {report['warmup']} warm-up cycle(s) per side, cycles alternating "
             f"(A B B A ...), {where}; "
             f"{settings['train_seconds']:g} s of training per cycle, {len(settings['predict_slices'])} ISBI slices"
             f"{' + a %d px mosaic' % settings['mosaic'] if settings['mosaic'] else ''} predicted per cycle; "
             f"ours: {SIDES[report['ours_side']]}",
             "ratio = peer's end/start RSS over ours (> 1: ours grew less)"]
    for side in report["sides"]:
        s = report["summaries"][side]
        for failure in s.get("failure_list", [])[:3]:
            notes.append(f"{side} failure in cycle {failure['cycle']}: {failure['error']}")
        if "stopped" in s:
            notes.append(f"{side} stopped early: {s['stopped'][:300]}")
        growth = report["diagnostics"].get(side, {}).get("object_growth", [])[:4]
        if growth:
            notes.append(f"{side}: Python object types that grew most: "
                         + ", ".join(f"{g['type']} +{g['grew']} ({g['count']})" for g in growth))
        trim = report["diagnostics"].get(side, {}).get("malloc_trim")
        if trim:
            notes.append(f"{side}: at the end, malloc_trim(0) takes the RSS from {trim['rss_mb_before']:.0f} to "
                         f"{trim['rss_mb_after']:.0f} MB (free memory the allocator kept)")
        traced = report["diagnostics"].get(side, {}).get("tracemalloc_growth", [])[:3]
        if traced:
            notes.append(f"{side}: allocations that grew most: "
                         + "; ".join(f"{t['where']} +{t['kb']} kB" for t in traced))
    headline = {"soak_memory_growth_pct": ours_growth, "soak_failures": ours_failures,
                "soak_peer_memory_growth_pct": peer_growth, "soak_cycles": ours.get("cycles"),
                "soak_minutes": round(report["seconds"] / 60, 1),
                "soak_rss_slope_mb_per_h": ours.get("rss_slope_mb_per_h"),
                "soak_fd_change": _get(ours, "fds", "change"), "soak_thread_change": _get(ours, "threads", "change")}
    return BenchResult(name="soak", peer=PEER, ratio=rel, rows=rows, headline=headline, figures=report, notes=notes)


def run(quick: bool = False) -> BenchResult:
    """The registered benchmark: 30 minutes (1 with ``quick``) with the default settings."""
    settings = SoakSettings(train_seconds=3.0 if quick else 8.0)
    return to_result(soak(settings, 1.0 if quick else 30.0, warmup=1 if quick else 4))


# ----------------------------------------------------------------------------------------------- command line


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/soak.py", description=__doc__.split(". Opt-in")[0] + ".")
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to soak (default 30)")
    parser.add_argument("--quick", action="store_true", help="a 1-minute smoke run (3 s of training per cycle)")
    parser.add_argument("--cycles", type=int,
                        help="run this many cycles per side after the warm-up (ignores --minutes)")
    parser.add_argument("--warmup", type=int, help="warm-up cycles per side, not in the baseline (default 4, quick 1)")
    parser.add_argument("--train-seconds", type=float, help="seconds of training per cycle (default 8, quick 3)")
    parser.add_argument("--threads", type=int, help="PyTorch threads on both sides (default: one per core)")
    parser.add_argument("--tiny", action="store_true", help="a tiny network and small patches (tests)")
    parser.add_argument("--no-mosaic", action="store_true", help="predict only the ISBI slices, not the 1024 px mosaic")
    parser.add_argument("--gui", action="store_true", help="our side through the real main window (offscreen Qt)")
    parser.add_argument("--in-process", action="store_true", help="both sides in this process (tests, debugging)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also report the source lines whose allocations grew (slows the cycles down)")
    parser.add_argument("--json", metavar="FILE", help="write the figures to FILE (JSON)")
    parser.add_argument("--quiet", action="store_true", help="no line per cycle")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from bench import git_revision, loadavg, machine_info, utc_now
    from bench.__main__ import print_entry

    minutes = 1.0 if args.quick and args.minutes == 30.0 else args.minutes
    settings = SoakSettings(train_seconds=args.train_seconds or (3.0 if args.quick else 8.0), threads=args.threads,
                            tiny=args.tiny, mosaic=0 if args.no_mosaic else SoakSettings.mosaic)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 4)
    load_start = loadavg()
    report = soak(settings, minutes, cycles=args.cycles, warmup=warmup, gui=args.gui, in_process=args.in_process,
                  trace=args.tracemalloc, log=(lambda text: None) if args.quiet else None)
    result = to_result(report)
    entry = {"ok": True, **result.to_dict(), "seconds": round(report["seconds"], 1)}
    print_entry(entry)
    for side in report["sides"]:
        for failure in report["summaries"][side].get("failure_list", []):
            print(f"\n{side}, cycle {failure['cycle']}: {failure['error']}\n{failure.get('traceback') or ''}")
    if args.json:
        out = {"date": utc_now(), "command": "python bench/soak.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "git": git_revision(), "machine": machine_info(), "loadavg_start": load_start,
               "loadavg_end": loadavg(), **result.headline, "benchmarks": {"soak": entry}}
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
        print(f"wrote {args.json}")
    failures = result.headline["soak_failures"]
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
