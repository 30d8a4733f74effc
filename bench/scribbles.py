"""Scribbles drawn from ground truth, to stand in for a person's quick strokes in benchmarks.

For a binary mask (e.g. ISBI 2012: 0 = membrane, 255 = cell interior) the strokes are the skeletons
of the membranes and of the eroded cell interiors, one pixel wide, broken into short pieces of which
only some are kept, so that they cover a small fraction of the pixels (under 5%).

Usage from other benchmarks::

    from bench.scribbles import scribble_labels
    sparse = scribble_labels(mask, fraction=0.04, seed=0)   # UNLABELLED where not annotated

or on the command line, to look at the coverage: ``python bench/scribbles.py ../shared/data/isbi2012/labels/000.tif``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy import ndimage
from skimage.morphology import disk, skeletonize

#: Value of pixels that carry no scribble (train with ``--unlabelled 128``).
UNLABELLED = 128


def _pieces(skeleton: np.ndarray, piece: int) -> tuple[np.ndarray, int]:
    """Label a skeleton broken into pieces of about ``piece`` pixels (cut on a coarse grid)."""
    cut = np.zeros_like(skeleton)
    cut[::piece, :] = True
    cut[:, ::piece] = True
    return ndimage.label(skeleton & ~cut, structure=np.ones((3, 3)))


def scribble_labels(mask: np.ndarray, foreground: int = 255, background: int = 0, fraction: float = 0.04,
                    erosion: int = 4, piece: int = 24, seed: int = 0) -> np.ndarray:
    """Sparse labels from a binary ``mask``: ``background`` strokes on the skeleton of the background
    (membranes), ``foreground`` strokes on the skeleton of the eroded foreground (cell interiors), and
    :data:`UNLABELLED` elsewhere. At most ``fraction`` of the pixels are labelled, half per class
    where each class has enough strokes.
    """
    rng = np.random.default_rng(seed)
    mask = np.asarray(mask)
    out = np.full(mask.shape, UNLABELLED, np.uint8)
    budget = int(fraction * mask.size)
    membrane = skeletonize(mask == background)
    interior = skeletonize(ndimage.binary_erosion(mask == foreground, structure=disk(erosion)))
    for skeleton, value in ((membrane, background), (interior, foreground)):
        labels, n = _pieces(skeleton, piece)
        if n == 0:
            continue
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        order = rng.permutation(np.arange(1, n + 1))
        keep = order[np.cumsum(sizes[order]) <= budget // 2]
        out[np.isin(labels, keep)] = value
    return out


def main(argv=None) -> int:
    import tifffile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("masks", nargs="+")
    parser.add_argument("--fraction", type=float, default=0.04)
    args = parser.parse_args(argv)
    for path in args.masks:
        sparse = scribble_labels(tifffile.imread(path), fraction=args.fraction)
        counts = {v: int((sparse == v).sum()) for v in (0, 255)}
        print(f"{path}: labelled {100 * (sparse != UNLABELLED).mean():.2f}% of pixels, per value {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
