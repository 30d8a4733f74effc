"""How far the object step alone can go: objects made from *perfect* pixels, scored like the benchmark.

The generalisation benchmark scores the U-Net's objects (AP@0.5 and mean AP@[0.5:0.95], the DSB 2018
metric). Two things limit them: the pixels (foreground, or background / interior / boundary) and the step
that turns pixels into objects. This script removes the first: it feeds each object step the ground truth's
own pixels and scores the objects it makes against the ground-truth objects. What it prints is the ceiling
of each step on these images, whatever the network:

- ``components``: connected components of the true foreground (the random forest's peer);
- ``distance``: the default distance mode (h-maxima seeded watershed of the true foreground's distance map,
  :func:`unet_studio.core.predict.find_instances` with its defaults);
- ``three_class``: the three-class mode fed one-hot background / interior / boundary maps made from the true
  objects (:func:`unet_studio.core.predict.instance_classes`, as training makes them);
- ``three_class, 1 px out`` / ``1 px in``: the same, with every true object grown (into background only) or
  shrunk by one pixel before the maps are made: what a one-pixel error along every outline costs the
  metric on nuclei of this size, with perfect splitting.

Each row also gives the foreground F1 of the objects' pixels (the benchmark's pixel measure): for the
``1 px`` rows, what an outline one pixel off all round costs the pixel F1 by itself.

No training, deterministic, about a minute::

    python bench/instance_ceiling.py            # dsb2018 (all 60 images: the union of the 3 test folds), dsb2018_large
    python bench/instance_ceiling.py --json ceiling.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.metrics import DSB_THRESHOLDS, mean_average_precision, pixel_f1  # noqa: E402
from unet_studio.core.predict import (  # noqa: E402
    InstanceConfig, find_instances, instance_classes, three_class_instances,
)

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
STEPS = ("components", "distance", "three_class", "three_class, 1 px out", "three_class, 1 px in")
SETS = {"dsb": ("dsb2018", 60), "dsb_large": ("dsb2018_large", 30)}


def objects(truth: np.ndarray, step: str) -> np.ndarray:
    """The objects ``step`` makes from the perfect pixels of ``truth`` (an instance image)."""
    foreground = truth > 0
    if step == "components":
        return find_instances(foreground, None, InstanceConfig(method="components"))
    if step == "distance":
        return find_instances(foreground, None, InstanceConfig())
    if step.endswith("out"):
        grown = ndimage.grey_dilation(truth, size=3)
        truth = np.where(truth > 0, truth, grown)
    elif step.endswith("in"):
        signed = np.where(truth > 0, truth.astype(np.int64), -1)  # background below every object
        truth = np.where(ndimage.grey_erosion(signed, size=3) == signed, truth, 0)
    classes = instance_classes(truth)  # 0 background, 1 interior, 2 boundary
    probs = np.stack([(classes == k).astype(np.float32) for k in range(3)])
    return three_class_instances(probs, classes > 0, InstanceConfig())


def run(data: Path) -> dict:
    out = {}
    for key, (folder, count) in SETS.items():
        truths = [tifffile.imread(data / folder / "labels" / f"{i:03d}.tif") for i in range(count)]
        out[key] = {}
        for step in STEPS:
            made = [objects(t, step) for t in truths]
            ap = mean_average_precision(made, truths)
            f1 = pixel_f1(np.concatenate([(m > 0).ravel() for m in made]),
                          np.concatenate([(t > 0).ravel() for t in truths]))
            out[key][step] = {"ap50": float(ap[0]), "map": float(ap.mean()),
                              "ap75": float(ap[list(DSB_THRESHOLDS).index(0.75)]), "f1": float(f1)}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not (args.data / "dsb2018").is_dir():
        print(f"no dsb2018 folder under {args.data}: give --data", file=sys.stderr)
        return 2
    result = run(args.data)
    print(f"{'images':<12}{'object step (perfect pixels)':<30}{'AP@0.5':>8}{'AP@0.75':>9}{'mean AP':>9}{'fg F1':>8}")
    for key, steps in result.items():
        for step, figures in steps.items():
            print(f"{key:<12}{step:<30}{figures['ap50']:>8.3f}{figures['ap75']:>9.3f}{figures['map']:>9.3f}{figures['f1']:>8.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
