"""Objects across block borders: one object, one label, one row of measurements.

Each block finds its objects alone (on its window, so that the watershed sees real context) and stores them,
cropped to the block, with labels offset by ``block.index * capacity`` (capacity: the pixels of a block, an
upper bound on its objects), so labels never clash, and records what it saw one pixel beyond its top and
left faces in its own labels (:func:`halos`). A second pass matches the labels in that one-pixel overlap:
the neighbour's own labels of those pixels against the block's view of them; two labels are one object when
each covers at least half of the other's pixels there (:func:`matched_across`). An object cut by the face
matches; two neighbours that touch along the face do not, even where the face runs exactly between them. The pairs are joined by
connected components of a graph (scipy's union-find equivalent), objects smaller than ``min_size`` in total
are dropped, and the rest are numbered 1..N in block order. A third pass rewrites each block with its final
labels, and a fourth measures each object once, in the block where its bounding box starts.
``dask_image.ndmeasure.label`` links every pair of labels that touch across a face; for touching objects
(nuclei in a tissue) that would join neighbours wherever a face crosses the line between them.
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


def halos(found: np.ndarray, crop: tuple[slice, slice], local: np.ndarray) -> dict[str, np.ndarray]:
    """What a block saw just outside its core: the pixel row above it (``above``) and the column left of it
    (``left``), where its window reaches there, in the block's own local labels (0: background, or an object
    of the window that does not enter the core).

    ``found`` holds the objects of the whole window, ``crop`` places the core in it and ``local`` holds the
    core's local labels (:func:`local_objects`). The merge compares them with the neighbour's own labels of
    the same pixels: one object cut by the face carries one label of each block there, two neighbours that
    touch along the face do not.
    """
    found = np.asarray(found)
    inside = found[crop]
    lookup = np.zeros(int(found.max(initial=0)) + 1, np.int64)
    lookup[inside[local > 0]] = local[local > 0]
    rows, cols = crop
    out = {}
    if rows.start > 0:
        out["above"] = lookup[found[rows.start - 1, cols]]
    if cols.start > 0:
        out["left"] = lookup[found[rows, cols.start - 1]]
    return out


def face_pairs(above: np.ndarray | None, below: np.ndarray | None, left: np.ndarray | None,
               right: np.ndarray | None) -> np.ndarray:
    """(n, 2) label pairs that are one object cut by a block's top face or its left face, each pair once.

    ``above`` holds the upper neighbour's labels of the pixel row above the face and ``below`` the block's
    labels of the same row (its halo, :func:`halos`); ``left`` and ``right`` the same for the column left of
    the left face. (For a block recorded without halos, ``below``/``right`` are its own first row/column:
    labels facing each other across the face, a weaker test.) Pairs must match (:func:`matched_across`).
    """
    pairs = [matched_across(first, second) for first, second in ((above, below), (left, right))
             if first is not None]
    if not pairs:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(pairs), axis=0)


def matched_across(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(n, 2) pairs (a, b) of labels of two blocks along one face (``first[i]`` and ``second[i]`` label the
    same pixel, or two pixels facing each other) that meet on at least half of a's pixels there and half of
    b's (background 0 is never paired)."""
    first = np.asarray(first, np.int64).ravel()
    second = np.asarray(second, np.int64).ravel()
    facing = (first > 0) & (second > 0) & (first != second)
    if not facing.any():
        return np.zeros((0, 2), np.int64)
    pairs, contacts = np.unique(np.stack([first[facing], second[facing]], axis=1), axis=0, return_counts=True)
    runs_first = dict(zip(*np.unique(first, return_counts=True)))
    runs_second = dict(zip(*np.unique(second, return_counts=True)))
    run_a = np.array([runs_first[a] for a in pairs[:, 0]])
    run_b = np.array([runs_second[b] for b in pairs[:, 1]])
    return pairs[(2 * contacts >= run_a) & (2 * contacts >= run_b)]


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


__all__ = ["BlockObjects", "MergedObjects", "face_pairs", "halos", "local_objects", "matched_across", "measure_chosen", "merge_objects"]
