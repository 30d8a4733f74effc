"""``python -m bench``: run the benchmarks side by side with their peers and print the ratios.

Usage::

    python -m bench --quick --json r.json     # the quick set (under 10 minutes on a 2-core CPU)
    python -m bench                            # the full set (longer runs, more repeats)
    python -m bench --only train,infer         # some of them
    python -m bench --only soak                # the opt-in 30-minute soak (--quick: 1 minute)
    python -m bench --list                     # what there is

Each benchmark runs in its own child process by default (``--in-process`` runs them here), so that
thread settings, Qt and memory high-water marks of one do not leak into the next, and a crash or a
time-out of one is reported while the others go on. The JSON holds the issue's headline keys at the
top level, the targets and whether they are met, every benchmark's absolute figures, the date, the
machine and the load average at the start and the end (the machine may be shared).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import (BENCHMARKS, HEADLINE_KEYS, HIDDEN, OPT_IN, TARGETS, BenchResult, check_target, git_revision,
               loadavg, machine_info, python_child_env, utc_now)

#: Per-benchmark time limits in seconds (quick, full).
TIME_LIMITS = {"train": (300, 900), "infer": (300, 1200), "paint": (150, 400), "stall": (180, 500),
               "startup": (120, 300), "scribbles": (360, 900), "soak": (600, 2700), "generalization": (900, 5400),
               "selftest": (60, 60), "selftest_fail": (60, 60)}


def _registry() -> dict[str, str]:
    return {**BENCHMARKS, **OPT_IN, **HIDDEN}


def resolve(spec: str):
    module_name, func_name = spec.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the quick set: shorter runs, fewer repeats")
    parser.add_argument("--json", metavar="FILE", help="write the figures to FILE (JSON)")
    parser.add_argument("--only", metavar="NAME,...", help="run only these benchmarks (comma-separated)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--in-process", action="store_true",
                        help="run the benchmarks in this process (default: one child process each)")
    parser.add_argument("--timeout", type=float, metavar="S", help="time limit per benchmark (child mode)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the figures as a Markdown table (README)")
    parser.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    registry = _registry()
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in registry]
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(registry)}")
        args.names = names
    else:
        args.names = list(BENCHMARKS)
    return args


# ----------------------------------------------------------------------------------------------- running


def run_in_process(name: str, quick: bool) -> dict:
    """Run one benchmark here; return its entry (result dict, or an error)."""
    start = time.perf_counter()
    try:
        result: BenchResult = resolve(_registry()[name])(quick=quick)
        entry = {"ok": True, **result.to_dict()}
    except Exception as exc:  # noqa: BLE001 - one failure must not stop the others
        entry = {"ok": False, "name": name, "error": f"{type(exc).__name__}: {exc}",
                 "traceback": traceback.format_exc()}
    entry["seconds"] = round(time.perf_counter() - start, 2)
    return entry


def run_in_child(name: str, quick: bool, timeout: float) -> dict:
    """Run one benchmark in a child Python process with a time limit."""
    import subprocess

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="unet-bench-") as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "bench", "--child", name, "--child-out", str(out)]
        if quick:
            command.append("--quick")
        try:
            proc = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], capture_output=True,
                                  text=True, timeout=timeout, env=python_child_env())
        except subprocess.TimeoutExpired as exc:
            tail = (exc.stderr or b"")
            tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
            return {"ok": False, "name": name, "error": f"timed out after {timeout:.0f} s",
                    "stderr_tail": tail[-2000:], "seconds": round(time.perf_counter() - start, 2)}
        if out.exists():
            entry = json.loads(out.read_text())
        else:
            entry = {"ok": False, "name": name,
                     "error": f"the child process ended with status {proc.returncode} and no result"}
        if not entry.get("ok"):
            entry["stderr_tail"] = proc.stderr[-2000:]
        entry["seconds"] = round(time.perf_counter() - start, 2)
        return entry


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def print_entry(entry: dict, stream=None) -> None:
    stream = stream or sys.stdout
    name = entry.get("name", "?")
    if not entry.get("ok"):
        print(f"[{name}] FAILED after {entry.get('seconds', 0):.0f} s: {entry.get('error')}", file=stream)
        return
    ratio = entry.get("ratio")
    ratio_text = f"{ratio:.2f}x" if ratio is not None else "n/a"
    print(f"[{name}] {ratio_text} vs {entry['peer']}  ({entry.get('seconds', 0):.0f} s)", file=stream)
    rows = entry.get("rows", [])
    if rows:
        width = max(len(r["what"]) for r in rows)
        print(f"    {'':<{width}}  {'UNet Studio':>16}  {'peer':>16}", file=stream)
        for r in rows:
            print(f"    {r['what']:<{width}}  {_fmt(r['ours'], r['unit']):>16}  {_fmt(r['peer'], r['unit']):>16}",
                  file=stream)
    for note in entry.get("notes", []):
        print(f"    - {note}", file=stream)
    stream.flush()


def summary(entries: dict[str, dict]) -> dict:
    """Headline keys from all entries, and the targets with met / missed / not measured."""
    headline: dict = {key: None for key in HEADLINE_KEYS}
    for entry in entries.values():
        if entry.get("ok"):
            headline.update(entry.get("headline", {}))
    targets = {}
    for key, (op, bound) in TARGETS.items():
        met = check_target(key, headline)
        targets[key] = {"value": headline.get(key), "target": f"{op} {bound}", "met": met}
    return {"headline": headline, "targets": targets}


def print_summary(report: dict, stream=None) -> None:
    stream = stream or sys.stdout
    print("\nheadline                   value        target              status", file=stream)
    for key, t in report["targets"].items():
        status = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        print(f"  {key:<24} {_fmt(t['value']):>10}   {t['target']:<18}  {status}", file=stream)
    rf = report["headline"].get("rf_scribble_f1")
    if rf is not None:
        print(f"  {'rf_scribble_f1':<24} {_fmt(rf):>10}", file=stream)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, spec in BENCHMARKS.items():
            print(f"{name:<10} {spec}")
        for name, spec in OPT_IN.items():
            print(f"{name:<10} {spec}  (opt-in: --only {name})")
        return 0
    if args.child:
        entry = run_in_process(args.child, args.quick)
        Path(args.child_out).write_text(json.dumps(entry, indent=1, default=str))
        if not entry["ok"]:
            print(entry.get("traceback", entry.get("error")), file=sys.stderr)
        return 0 if entry["ok"] else 1

    started = time.perf_counter()
    report = {"date": utc_now(), "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
              "quick": args.quick, "git": git_revision(), "loadavg_start": loadavg(),
              "benchmarks_run": args.names}
    print(f"UNet Studio benchmarks ({'quick' if args.quick else 'full'} set) {report['date']}; "
          f"load average at start {report['loadavg_start']}", flush=True)
    entries: dict[str, dict] = {}
    for name in args.names:
        limits = TIME_LIMITS.get(name, (300, 900))
        timeout = args.timeout or limits[0 if args.quick else 1]
        entry = (run_in_process(name, args.quick) if args.in_process
                 else run_in_child(name, args.quick, timeout))
        entries[name] = entry
        print_entry(entry)
    report["loadavg_end"] = loadavg()
    report["duration_s"] = round(time.perf_counter() - started, 1)
    report["machine"] = machine_info() if not all(n in HIDDEN for n in args.names) else _light_machine()
    result = summary(entries)
    report.update(result["headline"])
    report["targets"] = result["targets"]
    report["benchmarks"] = entries
    print_summary(result)
    print(f"\ntotal {report['duration_s']:.0f} s; load average at end {report['loadavg_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        print(f"wrote {args.json}")
    if args.markdown:
        Path(args.markdown).write_text(markdown(report))
        print(f"wrote {args.markdown}")
    return 0 if all(e.get("ok") for e in entries.values()) else 1


def markdown(report: dict) -> str:
    """The figures as Markdown: one line per benchmark row, then the headline keys and their targets."""
    m = report.get("machine", {})
    lines = [f"Figures of `{report['command']}` on {report['date'][:10]} ({m.get('cpu')}, {m.get('cores')} cores, "
             f"torch {m.get('torch')}, device {m.get('device')}; load average {report.get('loadavg_start')} at the "
             f"start, {report.get('loadavg_end')} at the end).", "",
             "| benchmark | measure | UNet Studio | peer | ratio |", "|---|---|---|---|---|"]
    for name, entry in report.get("benchmarks", {}).items():
        if not entry.get("ok"):
            lines.append(f"| {name} | failed: {entry.get('error', '')[:80]} | | | |")
            continue
        ratio_text = f"{entry['ratio']:.2f}x" if entry.get("ratio") is not None else "-"
        for i, row in enumerate(entry.get("rows", [])):
            first = f"{name} (peer: {entry['peer']})"
            lines.append(f"| {first if i == 0 else ''} | {row['what']} | {_fmt(row['ours'], row['unit'])} | "
                         f"{_fmt(row['peer'], row['unit'])} | {ratio_text if i == 0 else ''} |")
    lines += ["", "| headline | value | target | met |", "|---|---|---|---|"]
    for key, t in report.get("targets", {}).items():
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| `{key}` | {_fmt(t['value'])} | {t['target']} | {met} |")
    if report.get("rf_scribble_f1") is not None:
        lines.append(f"| `rf_scribble_f1` | {_fmt(report['rf_scribble_f1'])} | (peer) | |")
    return "\n".join(lines) + "\n"


def _light_machine() -> dict:
    """Machine info without importing torch (the self test stays fast)."""
    from bench import cores, cpu_model

    return {"cpu": cpu_model(), "cores": cores(), "torch": None, "device": "cpu"}


if __name__ == "__main__":
    sys.exit(main())
