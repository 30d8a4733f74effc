"""Where ISBI 2012's membrane labels lie relative to the membranes in the images (a check of the data,
not a speed benchmark).

Membranes are dark. For each shift (dy, dx) of the label mask by whole pixels, the mean image intensity
under the shifted mask is lowest where mask and membranes line up; a parabola through the shifts -1, 0
and +1 along each axis places that minimum to a fraction of a pixel. A positive dy means that the
membranes in the images lie below (further down the rows than) their labels. Flips and 90-degree
rotations during training hide such an offset from the network, which is why the fast preset trains
its last quarter without them (see ``unet_studio/core/train/loop.py``).

Run from the repository root::

    python bench/label_offset.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import data_dir  # noqa: E402

DATA = data_dir() / "isbi2012"


def mean_under_mask(images: np.ndarray, masks: np.ndarray, dy: int, dx: int, margin: int = 4) -> float:
    """Mean of ``images`` under ``masks`` shifted by (dy, dx) pixels, away from the wrapped-around edges."""
    inner = (slice(None), slice(margin, -margin), slice(margin, -margin))
    shifted = np.roll(masks, (dy, dx), axis=(1, 2))
    return float(images[inner][shifted[inner]].mean())


def vertex(below: float, centre: float, above: float) -> float:
    """Position of the minimum of the parabola through (-1, below), (0, centre), (1, above)."""
    curvature = below - 2 * centre + above
    return 0.0 if curvature <= 0 else (below - above) / (2 * curvature)


def offset(indices) -> tuple[float, float]:
    images = np.stack([tifffile.imread(DATA / "images" / f"{i:03d}.tif").astype(np.float32) for i in indices])
    masks = np.stack([tifffile.imread(DATA / "labels" / f"{i:03d}.tif") == 0 for i in indices])
    dy = vertex(*(mean_under_mask(images, masks, d, 0) for d in (-1, 0, 1)))
    dx = vertex(*(mean_under_mask(images, masks, 0, d) for d in (-1, 0, 1)))
    return dy, dx


def main() -> int:
    if not (DATA / "images").is_dir():
        print(f"ISBI 2012 data not found in {DATA}; set UNET_STUDIO_DATA to the folder that holds isbi2012/",
              file=sys.stderr)
        return 1
    for name, indices in (("training slices 000-014", range(15)), ("test slices 015-019", range(15, 20))):
        dy, dx = offset(indices)
        print(f"{name}: the membranes in the images lie {dy:+.2f} px down and {dx:+.2f} px right of their labels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
