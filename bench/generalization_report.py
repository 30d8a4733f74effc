"""Figures of :mod:`bench.generalization`: headline keys, the printed table, the :class:`BenchResult`.

A report (what :func:`bench.generalization.measure` returns) holds one record per run: data set, split,
method (``unet`` or ``rf``), seed, the time limit (ours), the measures and the seconds. Here they become
means over folds and seeds, per data set and time limit, beside the per-run values.
"""

from __future__ import annotations

import math
import statistics

from bench import BenchResult, Row

#: The time limit whose figures get the plain headline keys (the issue's 180 s).
HEADLINE_SECONDS = 180.0
#: Measures per kind of data set: pixel F1 only for membranes, objects too for nuclei.
MEASURES = {"membrane": ("f1",), "nuclei": ("f1", "ap50", "map"), "foreground": ("f1",)}


def kind_of(dataset: str) -> str:
    if dataset.startswith("isbi"):
        return "membrane"
    return "foreground" if dataset == "dsb_scribbles" else "nuclei"


def datasets_of(report: dict) -> list[str]:
    return list(dict.fromkeys(r["dataset"] for r in report["records"]))


def values(report: dict, dataset: str, method: str, measure: str, limit=None) -> list[float]:
    """The ``measure`` of every run of ``method`` on ``dataset`` (at time limit ``limit``), by split and seed."""
    runs = sorted((r for r in report["records"] if r["dataset"] == dataset and r["method"] == method
                   and (limit is None or r.get("seconds_limit") == limit) and measure in r),
                  key=lambda r: (r["split"], r["seed"]))
    return [r[measure] for r in runs]


def mean(xs) -> float | None:
    """The mean, or None for no values."""
    return statistics.fmean(xs) if xs else None


def headline(report: dict) -> dict:
    """``gen_<data set>_<measure>`` (ours) and ``gen_<data set>_rf_<measure>``: means over folds and seeds,
    at 180 s when measured (else the first limit), and ``..._<T>s`` for every limit T."""
    limits = report["seconds"]
    main_limit = HEADLINE_SECONDS if HEADLINE_SECONDS in limits else limits[0]
    out = {}
    for dataset in datasets_of(report):
        for measure in (*MEASURES[kind_of(dataset)], "seconds"):
            rf = mean(values(report, dataset, "rf", measure))
            for limit in limits:
                ours = mean(values(report, dataset, "unet", measure, limit))
                out[f"gen_{dataset}_{measure}_{limit:g}s"] = ours
                if limit == main_limit:
                    out[f"gen_{dataset}_{measure}"] = ours
            out[f"gen_{dataset}_rf_{measure}"] = rf
    return out


def table(report: dict) -> list[str]:
    """The figures as text: per data set, time limit and measure, the mean and the per-run values."""
    lines = [f"{'data set':<15} {'T (s)':>6} {'measure':<8} {'UNet Studio: mean (per split, seed)':<44} "
             f"{'random forest: mean (per split, seed)':<44} {'ratio':>6} {'s ours/rf':>10}"]
    for dataset in datasets_of(report):
        t_rf = mean(values(report, dataset, "rf", "seconds"))
        for limit in report["seconds"]:
            t_ours = mean(values(report, dataset, "unet", "seconds", limit))
            for measure in MEASURES[kind_of(dataset)]:
                ours, rf = values(report, dataset, "unet", measure, limit), values(report, dataset, "rf", measure)
                cells = [f"{mean(v):.4f} (" + " ".join(f"{x:.3f}" for x in v) + ")" if v else "-" for v in (ours, rf)]
                r = f"{mean(ours) / mean(rf):.3f}" if ours and rf and mean(rf) else "-"
                secs = f"{t_ours:.0f}/{t_rf:.0f}" if t_ours is not None and t_rf is not None else "-"
                lines.append(f"{dataset:<15} {limit:>6g} {measure:<8} {cells[0]:<44} {cells[1]:<44} {r:>6} "
                             f"{secs:>10}")
    return lines + [f"FAILED {e}" for e in report["errors"]]


def to_result(report: dict) -> BenchResult:
    """The report as a :class:`BenchResult`; ratio = geometric mean over data sets of ours/forest pixel F1."""
    h = report["headline"]
    datasets = datasets_of(report)
    ratios = [h[f"gen_{d}_f1"] / h[f"gen_{d}_rf_f1"] for d in datasets
              if h.get(f"gen_{d}_f1") and h.get(f"gen_{d}_rf_f1")]
    rows = [Row(f"{d} {m}", h.get(f"gen_{d}_{m}"), h.get(f"gen_{d}_rf_{m}"), "s" if m == "seconds" else "")
            for d in datasets for m in (*MEASURES[kind_of(d)], "seconds")]
    notes = [f"time limits {report['seconds']} s, seeds {report['seeds']}, dsb folds {report['folds']}; means over "
             "folds and seeds; ratio: geometric mean of ours/forest pixel F1 over the data sets",
             *table(report)]
    return BenchResult(name="generalization", peer="random forest pixel classifier (skimage + sklearn)",
                       ratio=math.prod(ratios) ** (1 / len(ratios)) if ratios else None, rows=rows, headline=h,
                       figures={k: v for k, v in report.items() if k != "headline"}, notes=notes)
