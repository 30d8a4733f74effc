"""Where a segmentation's pixel errors lie: on the outlines of the true objects, or away from them.

A foreground F1 of 0.89 on nuclei of about 140 px can mean outlines drawn one pixel off everywhere (a
convention of where an outline lies) or whole nuclei missed and spurious blobs. This splits the false
positives and false negatives of predicted masks by their distance to the true outline:

- ``wide``: false positives within ``--band`` px outside a true object (its outline drawn too far out);
- ``spurious``: false positives farther out (blobs where there is no object);
- ``tight``: false negatives within ``--band`` px inside a true object's edge (its outline drawn too far in);
- ``missed``: false negatives deeper inside (object interiors, whole objects missed);

and prints, per folder of predictions, the F1, the F1 if the outline-band errors were gone, the mean outward
shift of the outlines in pixels (``(wide - tight) / outline length``), and the F1 after growing or shrinking
the predicted masks by one pixel: what a one-pixel convention is worth against these annotations. No
training; used in ``docs/MEASUREMENTS.md`` on the predictions ``bench/generalization.py --work DIR`` keeps
(``predicted-0`` folders of the network, ``forest-*`` folders of the random forest).

Usage::

    python bench/outline_errors.py --truth ../shared/data/dsb2018/labels DIR [DIR ...]

Each DIR holds ``STEM_labels.tif`` (or ``STEM.tif``) predictions; foreground is any non-zero label value (or
``--foreground V``); the truth is any non-zero label (instances or masks).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

BAND = 2


def truth_maps(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """What :func:`split_errors` needs of a true mask, computed once per image: (mask, distance of background
    pixels to the nearest object, distance of object pixels to the nearest background, outline length)."""
    truth = np.asarray(truth, bool)
    outline = truth & ~ndimage.binary_erosion(truth, border_value=1)
    return (truth, ndimage.distance_transform_edt(~truth), ndimage.distance_transform_edt(truth),
            int(outline.sum()))


def split_errors(pred: np.ndarray, truth, band: int = BAND) -> dict[str, int]:
    """Counts of true positives and of the four kinds of errors (see the module docstring) of one image;
    ``truth`` is a mask or its :func:`truth_maps`."""
    truth, outside, inside, outline = truth if isinstance(truth, tuple) else truth_maps(truth)
    pred = np.asarray(pred, bool)
    fp, fn = pred & ~truth, ~pred & truth
    return {"tp": int((pred & truth).sum()), "wide": int((fp & (outside <= band)).sum()),
            "spurious": int((fp & (outside > band)).sum()), "tight": int((fn & (inside <= band)).sum()),
            "missed": int((fn & (inside > band)).sum()), "outline": outline,
            "truth": int(truth.sum()), "pred": int(pred.sum())}


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / max(2 * tp + fp + fn, 1)


def summed(counts: list[dict[str, int]]) -> dict[str, int]:
    return {k: sum(c[k] for c in counts) for k in counts[0]}


def f1_of(total: dict[str, int]) -> float:
    return f1(total["tp"], total["wide"] + total["spurious"], total["tight"] + total["missed"])


def summarise(counts: list[dict[str, int]], grown: list[dict[str, int]], shrunk: list[dict[str, int]]) -> dict:
    """The figures of a folder from its per-image counts (and those of its masks grown / shrunk by 1 px)."""
    total = summed(counts)
    return {"f1": f1_of(total), "f1_outlines_right": f1(total["tp"] + total["tight"], total["spurious"],
                                                         total["missed"]),
            "shift_px": (total["wide"] - total["tight"]) / max(total["outline"], 1),
            "f1_grown_1px": f1_of(summed(grown)), "f1_shrunk_1px": f1_of(summed(shrunk)),
            "predicted_over_truth": total["pred"] / max(total["truth"], 1),
            **{f"{k}_share": total[k] / max(total["truth"], 1) for k in ("wide", "spurious", "tight", "missed")}}


def prediction_path(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}_labels.tif", f"{stem}.tif"):
        if (folder / name).is_file():
            return folder / name
    return None


def measure(folders: list[Path], truth_dir: Path, band: int = BAND, foreground: int | None = None) -> dict:
    """Per folder, :func:`summarise` over the images it and ``truth_dir`` both have."""
    import tifffile

    truths = {}  # each true image read and measured once, whatever the number of folders
    report = {}
    for folder in folders:
        counts, grown, shrunk = [], [], []
        for truth_path in sorted(truth_dir.glob("*.tif")):
            path = prediction_path(folder, truth_path.stem)
            if path is None:
                continue
            if truth_path not in truths:
                truths[truth_path] = truth_maps(tifffile.imread(truth_path) > 0)
            labels = tifffile.imread(path)
            pred = labels != 0 if foreground is None else labels == foreground
            for into, mask in ((counts, pred), (grown, ndimage.binary_dilation(pred)),
                               (shrunk, ndimage.binary_erosion(pred))):
                into.append(split_errors(mask, truths[truth_path], band))
        if counts:
            report[str(folder)] = {"images": len(counts), **summarise(counts, grown, shrunk)}
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders of predicted labels")
    parser.add_argument("--truth", type=Path, required=True, help="folder of true labels (STEM.tif)")
    parser.add_argument("--band", type=int, default=BAND, help=f"outline band in pixels (default {BAND})")
    parser.add_argument("--foreground", type=int, help="the predicted foreground value (default: non-zero)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if not args.truth.is_dir():
        print(f"error: no folder {args.truth}; give the data set's labels folder with --truth", file=sys.stderr)
        return 2
    report = measure(args.folders, args.truth, args.band, args.foreground)
    if not report:
        print("error: no prediction matched a truth image by name (STEM_labels.tif or STEM.tif)", file=sys.stderr)
        return 2
    print(f"{'predictions':40s} {'n':>3s} {'F1':>6s} {'F1 outl.':>8s} {'shift':>6s} {'+1px':>6s} {'-1px':>6s} "
          f"{'pred/true':>9s} {'wide':>6s} {'spur.':>6s} {'tight':>6s} {'missed':>6s}")
    for folder, r in report.items():
        print(f"{Path(folder).name[-40:]:40s} {r['images']:3d} {r['f1']:6.3f} {r['f1_outlines_right']:8.3f} "
              f"{r['shift_px']:+6.2f} {r['f1_grown_1px']:6.3f} {r['f1_shrunk_1px']:6.3f} "
              f"{r['predicted_over_truth']:9.2f} {r['wide_share']:6.3f} {r['spurious_share']:6.3f} "
              f"{r['tight_share']:6.3f} {r['missed_share']:6.3f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
