"""Objects across block borders: one object, one label, one row of measurements.

Each block finds its objects alone (on its window, so that the watershed sees real context) and stores them,
cropped to the block, with labels offset by ``block.index * capacity`` (capacity: the pixels of a block, an
upper bound on its objects), so labels never clash. A second pass reads the two pixel rows along every
block face and pairs the labels that touch across it; the pairs are joined by connected components of a
graph (scipy's union-find equivalent), objects smaller than ``min_size`` in total are dropped, and the rest
are numbered 1..N in block order. A third pass rewrites each block with its final labels, and a fourth
measures each object once, in the block where its bounding box starts (the same approach as
``dask_image.ndmeasure.label`` and Cellpose's ``distributed_segmentation``, which link labels touching
across block faces).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .blockwise_plan import Block
from .postprocess import measure


@dataclass
class BlockObjects:
    """The objects of one block: ``areas`` (n,) in pixels and ``boxes`` (n, 4) ``(y0, x0, y1, x1)`` in image
    pixels (end exclusive) of local labels 1..n."""

    areas: np.ndarray
    boxes: np.ndarray

    @property
    def count(self) -> int:
        return int(len(self.areas))


def local_objects(objects: np.ndarray, origin: tuple[int, int]) -> tuple[np.ndarray, BlockObjects]:
    """Number the objects of a block's core 1..n (in order of first appearance) and describe them."""
    from scipy import ndimage
    from skimage.segmentation import relabel_sequential

    labels = relabel_sequential(np.asarray(objects))[0].astype(np.int64, copy=False)
    count = int(labels.max(initial=0))
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:].astype(np.int64)
    boxes = np.zeros((count, 4), np.int64)
    for k, found in enumerate(ndimage.find_objects(labels)):
        if found is not None:
            sy, sx = found
            boxes[k] = (sy.start + origin[0], sx.start + origin[1], sy.stop + origin[0], sx.stop + origin[1])
    return labels, BlockObjects(areas, boxes)


def face_pairs(above: np.ndarray | None, below: np.ndarray | None, left: np.ndarray | None,
               right: np.ndarray | None) -> np.ndarray:
    """(n, 2) label pairs that touch across a block's top face (``above``/``below``: the pixel rows on either
    side) and its left face (``left``/``right``: the columns), each pair once."""
    pairs = []
    for first, second in ((above, below), (left, right)):
        if first is None:
            continue
        first, second = np.asarray(first).ravel(), np.asarray(second).ravel()
        touching = (first > 0) & (second > 0) & (first != second)
        pairs.append(np.stack([first[touching], second[touching]], axis=1))
    if not pairs:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(pairs).astype(np.int64), axis=0)


@dataclass
class MergedObjects:
    """What the merge decided: per block, the final label of each of its local labels (index 0 -> 0), and per
    final object (label ``k`` at row ``k - 1``) its bounding box and the block that measures it."""

    mappings: dict[int, np.ndarray]
    boxes: np.ndarray
    home: np.ndarray

    @property
    def count(self) -> int:
        return int(len(self.boxes))

    def measured_by(self, block_index: int) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
        """Final labels measured by a block, and the (y0, y1, x0, x1) window holding all of them."""
        chosen = np.flatnonzero(self.home == block_index)
        if not chosen.size:
            return chosen + 1, None
        boxes = self.boxes[chosen]
        y0, x0 = boxes[:, 0].min(), boxes[:, 1].min()
        y1, x1 = boxes[:, 2].max(), boxes[:, 3].max()
        return chosen + 1, (int(y0), int(y1), int(x0), int(x1))


def merge_objects(blocks: Sequence[Block], objects: dict[int, BlockObjects], pairs: np.ndarray, capacity: int,
                  block_size: int, columns: int, min_size: int = 0) -> MergedObjects:
    """Join the objects that touch across block faces and number them 1..N.

    ``pairs`` holds raw (offset) labels, ``block.index * capacity + local``; ``min_size`` drops objects with
    fewer pixels in total (after joining: a small piece of an object cut by a border is kept).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    counts = np.array([objects[b.index].count for b in blocks], np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    position = {b.index: i for i, b in enumerate(blocks)}
    total = int(starts[-1])

    def node(raw: np.ndarray) -> np.ndarray:
        block_of = raw // capacity
        return starts[[position[int(i)] for i in block_of]] + raw % capacity - 1

    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    a = node(pairs[:, 0]) if len(pairs) else np.zeros(0, np.int64)
    b = node(pairs[:, 1]) if len(pairs) else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(total, total))
    n_components, component = connected_components(graph, directed=False)
    areas = np.concatenate([objects[b.index].areas for b in blocks]) if total else np.zeros(0, np.int64)
    boxes = np.concatenate([objects[b.index].boxes for b in blocks]) if total else np.zeros((0, 4), np.int64)
    area = np.bincount(component, weights=areas, minlength=n_components)
    keep = area >= max(1, min_size)
    # components are numbered by their first node, so the final labels follow block order
    final = np.zeros(n_components, np.int64)
    final[keep] = np.arange(1, int(keep.sum()) + 1)
    n_final = int(keep.sum())
    union = np.zeros((n_final, 4), np.int64)
    union[:, :2] = np.iinfo(np.int64).max
    labels = final[component]
    kept = labels > 0
    np.minimum.at(union[:, 0], labels[kept] - 1, boxes[kept, 0])
    np.minimum.at(union[:, 1], labels[kept] - 1, boxes[kept, 1])
    np.maximum.at(union[:, 2], labels[kept] - 1, boxes[kept, 2])
    np.maximum.at(union[:, 3], labels[kept] - 1, boxes[kept, 3])
    home = (union[:, 0] // block_size) * columns + union[:, 1] // block_size
    mappings = {blk.index: np.concatenate([[0], labels[starts[i]:starts[i + 1]]]).astype(np.int64)
                for i, blk in enumerate(blocks)}
    return MergedObjects(mappings, union, home)


def measure_chosen(instances: np.ndarray, chosen: np.ndarray, intensity: np.ndarray | None,
                   origin: tuple[int, int], pixel_size=None, unit: str = "") -> dict[str, np.ndarray]:
    """Measurements of the ``chosen`` labels of an instance window whose top-left pixel is ``origin`` in the
    image, with centroids and boxes in image pixels."""
    labels = np.where(np.isin(instances, chosen), instances, 0)
    table = measure(labels, intensity, pixel_size, unit)
    scale = tuple(float(v) for v in pixel_size) if pixel_size else None
    for name in list(table):
        axis = 0 if "_y" in name else 1
        if name in ("centroid_y_px", "centroid_x_px") or name.startswith("bbox_"):
            table[name] = table[name] + origin[axis]
        elif scale and name.startswith(("centroid_y_", "centroid_x_")):
            table[name] = table[name] + origin[axis] * scale[axis]
    return table


__all__ = ["BlockObjects", "MergedObjects", "face_pairs", "local_objects", "measure_chosen", "merge_objects"]
