"""Nucleus counts on dsb2018: watershed splitting vs plain connected components, against the ground truth.

Usage::

    python bench/instance_counts.py [--data ../shared/data] [--h 0.5] [--sigma 1.0]

The mask given to both methods is the ground-truth foreground (labels > 0), so the table measures only how
well touching nuclei are separated, not how well a network finds them. Prints one row per image and the
totals (sum of counts and sum of absolute count errors).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unet_studio.core.predict.postprocess import InstanceConfig, find_instances  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--h", type=float, default=InstanceConfig.h)
    parser.add_argument("--sigma", type=float, default=InstanceConfig.sigma)
    args = parser.parse_args()
    paths = sorted((args.data / "dsb2018" / "labels").glob("*.tif"))
    if not paths:
        print(f"no label images under {args.data / 'dsb2018' / 'labels'}", file=sys.stderr)
        return 1
    watershed = InstanceConfig(h=args.h, sigma=args.sigma)
    components = InstanceConfig(method="components")
    print(f"watershed: h {watershed.h}, sigma {watershed.sigma}, min_size {watershed.min_size}, "
          f"holes filled up to {watershed.max_hole_size} px (same clean-up for components)")
    print(f"{'image':>6} {'truth':>6} {'components':>11} {'watershed':>10}")
    totals = np.zeros(5, int)
    start = time.perf_counter()
    for path in paths:
        truth = tifffile.imread(path)
        mask = truth > 0
        n_true = len(np.unique(truth[mask]))
        n_comp = int(find_instances(mask, config=components).max())
        n_ws = int(find_instances(mask, config=watershed).max())
        totals += (n_true, n_comp, n_ws, abs(n_comp - n_true), abs(n_ws - n_true))
        print(f"{path.stem:>6} {n_true:>6} {n_comp:>11} {n_ws:>10}")
    print(f"{'total':>6} {totals[0]:>6} {totals[1]:>11} {totals[2]:>10}")
    print(f"sum of |count - truth| over {len(paths)} images: components {totals[3]}, watershed {totals[4]} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
