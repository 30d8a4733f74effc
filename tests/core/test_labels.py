"""LabelVolume: painting, filling, tight boxes, stroke-grouped undo/redo, bounded history."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from unet_studio.core.labels import (LabelMapping, LabelVolume, apply_mapping, distinct_values, label_image_kind,
                                     labels_dtype, propose_mapping)


def disk_reference(shape, y, x, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - y) ** 2 + (xx - x) ** 2 <= max(radius, 0.5) ** 2


def box_of(mask):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


@pytest.mark.parametrize("radius", [0, 1, 2.5, 7])
@pytest.mark.parametrize("centre", [(20, 20), (0, 3), (39, 39)])
def test_paint_disk_matches_reference_and_box_is_tight(radius, centre):
    volume = LabelVolume(shape=(1, 40, 40))
    box = volume.paint_disk(0, *centre, radius, 3)
    expected = disk_reference((40, 40), *centre, radius)
    np.testing.assert_array_equal(volume.data[0] == 3, expected)
    assert box == box_of(expected)
    assert volume.version == 1


def test_paint_disk_returns_none_when_nothing_changes():
    volume = LabelVolume(shape=(1, 10, 10))
    volume.paint_disk(0, 5, 5, 2, 1)
    version = volume.version
    assert volume.paint_disk(0, 5, 5, 2, 1) is None
    assert volume.paint_disk(0, 50, 50, 2, 1) is None  # outside the slice
    assert volume.version == version
    assert volume.paint_disk(0, 5, 5, 1, 0) is not None  # erasing changes


def test_paint_line_has_no_gaps_on_a_long_fast_move():
    volume = LabelVolume(shape=(1, 300, 300))
    box = volume.paint_line(0, (10, 5), (290, 280), 0, 1)  # one mouse move across the image
    painted = volume.data[0] == 1
    components, n = ndi.label(painted, structure=np.ones((3, 3)))
    assert n == 1
    # every row and column that the segment crosses holds painted pixels
    assert painted[10:291].any(axis=1).all()
    assert painted[:, 5:281].any(axis=0).all()
    assert box == box_of(painted) == (10, 291, 5, 281)


def test_paint_line_is_the_capsule():
    volume = LabelVolume(shape=(1, 60, 80))
    volume.paint_line(0, (10, 10), (40, 70), 4, 2)
    yy, xx = np.mgrid[:60, :80].astype(float)
    a, b = np.array([10.0, 10.0]), np.array([40.0, 70.0])
    d = b - a
    t = np.clip(((yy - a[0]) * d[0] + (xx - a[1]) * d[1]) / (d @ d), 0, 1)
    dist2 = (yy - a[0] - t * d[0]) ** 2 + (xx - a[1] - t * d[1]) ** 2
    np.testing.assert_array_equal(volume.data[0] == 2, dist2 <= 16 + 1e-9)


def test_paint_line_on_a_huge_slice_touches_only_a_thin_band():
    volume = LabelVolume(shape=(1, 8192, 8192))
    short = volume.paint_line(0, (4000, 4000), (4010, 4030), 3, 1)
    assert short == (3997, 4014, 3997, 4034)
    assert volume.history_bytes <= (4014 - 3997) * (4034 - 3997)
    volume.paint_line(0, (0, 0), (8191, 8191), 5, 2)  # one diagonal across the whole slice
    # its undo item holds a band of small boxes, not the 64 MB bounding box of the segment
    assert volume.history_bytes < 2_000_000
    assert (volume.data[0, ::97, ::97] == 2).sum() > 0
    volume.undo()
    assert not (volume.data == 2).any()
    assert volume.data.sum() == np.count_nonzero(volume.data)  # label 1 still there


def test_fill_four_connected_region():
    volume = LabelVolume(shape=(1, 12, 12))
    volume.data[0, 3:9, 3:9] = 1
    volume.data[0, 4:8, 4:8] = 0  # a hole inside a ring of 1
    volume.data[0, 9, 9] = 0  # only diagonally next to the ring: not part of the hole
    box = volume.fill(0, 5, 5, 2)
    assert box == (4, 8, 4, 8)
    assert (volume.data[0, 4:8, 4:8] == 2).all()
    assert (volume.data[0] == 2).sum() == 16
    assert volume.fill(0, 5, 5, 2) is None  # already that value
    assert volume.fill(0, -1, 5, 2) is None


def test_fill_large_region_grows_its_window():
    volume = LabelVolume(shape=(1, 1500, 1300))
    volume.paint_line(0, (0, 700), (1499, 700), 1, 1)  # a wall splitting the slice
    box = volume.fill(0, 750, 10, 3)
    assert box == (0, 1500, 0, 699)
    assert (volume.data[0, :, :699] == 3).all()
    assert not (volume.data[0, :, 702:] == 3).any()


def test_fill_on_a_real_image_region(data_dir):
    tifffile = pytest.importorskip("tifffile")
    image = tifffile.imread(data_dir / "isbi2012" / "labels" / "000.tif")
    labels = np.where(image > 127, 1, 2).astype(np.uint8)  # 1 = cell interior, 2 = membrane
    volume = LabelVolume(data=labels.copy())
    components, _ = ndi.label(labels == 1)  # 4-connected
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    biggest = int(np.argmax(sizes))
    y, x = np.argwhere(components == biggest)[0]
    box = volume.fill(0, y, x, 3)
    expected = components == biggest
    np.testing.assert_array_equal(volume.data[0] == 3, expected)
    assert box == box_of(expected)
    np.testing.assert_array_equal(volume.data[0][~expected], labels[~expected])
    volume.undo()
    np.testing.assert_array_equal(volume.data[0], labels)


def test_set_region_writes_and_clips():
    volume = LabelVolume(shape=(2, 10, 10))
    values = np.full((4, 4), 5, np.uint8)
    assert volume.set_region(1, (8, 12, -2, 2), values) == (8, 10, 0, 2)
    assert (volume.data[1, 8:, :2] == 5).all() and volume.data.sum() == 5 * 4
    assert volume.undo() == (1, (8, 10, 0, 2))
    assert volume.data.sum() == 0
    with pytest.raises(ValueError):
        volume.set_region(0, (0, 2, 0, 2), np.full((2, 2), 300))


def test_stroke_is_one_undo_item_and_undo_redo_survive_slice_changes():
    volume = LabelVolume(shape=(3, 50, 50))
    volume.begin_stroke(0)
    points = [(5, 5), (5, 30), (30, 30), (40, 10)]
    for start, end in zip(points[:-1], points[1:]):
        volume.paint_line(0, start, end, 2, 1)
    volume.end_stroke()
    after_first = volume.data.copy()
    volume.begin_stroke(2)
    volume.paint_disk(2, 25, 25, 5, 2)
    volume.end_stroke()
    volume.fill(1, 0, 0, 3)  # outside a stroke: its own item
    after_all = volume.data.copy()

    slice_index, box = volume.undo()
    assert slice_index == 1 and box == (0, 50, 0, 50)
    assert volume.undo() == (2, (20, 31, 20, 31))
    np.testing.assert_array_equal(volume.data, after_first)
    slice_index, box = volume.undo()
    assert slice_index == 0 and box == box_of(after_first[0] == 1)
    assert not volume.data.any() and not volume.can_undo and volume.can_redo
    assert volume.undo() is None

    for _ in range(3):
        volume.redo()
    np.testing.assert_array_equal(volume.data, after_all)
    assert volume.redo() is None
    assert volume.version == 3 + 1 + 1 + 3 + 3  # 3 lines, disk, fill, 3 undos, 3 redos


def test_new_edit_clears_redo():
    volume = LabelVolume(shape=(1, 20, 20))
    volume.paint_disk(0, 5, 5, 2, 1)
    volume.paint_disk(0, 15, 15, 2, 1)
    volume.undo()
    assert volume.can_redo
    volume.begin_stroke(0)
    volume.paint_disk(0, 10, 10, 1, 2)
    assert not volume.can_redo
    volume.end_stroke()
    assert volume.redo() is None
    volume.undo()
    volume.undo()
    assert not volume.data.any()


def test_history_is_bounded_and_drops_oldest():
    volume = LabelVolume(shape=(1, 100, 100), max_undo_bytes=1000)
    for i in range(10):
        volume.set_region(0, (i * 10, i * 10 + 10, 0, 30), np.full((10, 30), i + 1))  # 300 bytes each
    assert volume.history_bytes <= 1000
    undone = 0
    while volume.undo() is not None:
        undone += 1
    assert undone == 3
    # the oldest edits stay, the newest three are undone
    assert (volume.data[0, :70, :30] > 0).all() and not volume.data[0, 70:].any()
    volume.redo()
    volume.set_region(0, (0, 100, 0, 100), np.full((100, 100), 9))  # one edit over the whole budget
    assert not volume.can_undo and not volume.can_redo and volume.history_bytes == 0
    assert (volume.data == 9).all()


def test_stroke_on_another_slice_starts_a_new_item_and_bad_values_raise():
    volume = LabelVolume(shape=(2, 10, 10))
    volume.begin_stroke(0)
    volume.paint_disk(0, 2, 2, 1, 1)
    volume.paint_disk(1, 2, 2, 1, 1)
    volume.end_stroke()
    assert volume.undo()[0] == 1
    assert volume.undo()[0] == 0
    with pytest.raises(ValueError):
        volume.paint_disk(0, 2, 2, 1, 65536)
    with pytest.raises(ValueError):
        volume.paint_disk(0, 2, 2, 1, -1)
    with pytest.raises(IndexError):
        volume.paint_disk(2, 2, 2, 1, 1)


def test_construct_from_data_and_dtype():
    labels = np.zeros((8, 9), np.uint16)
    volume = LabelVolume(data=labels, dtype=np.uint16)
    assert volume.shape == (1, 8, 9) and volume.data.dtype == np.uint16
    volume.paint_disk(0, 4, 4, 1, 1000)
    assert labels[4, 4] == 1000  # same memory, no copy
    with pytest.raises(ValueError):
        LabelVolume()
    with pytest.raises(ValueError):
        LabelVolume(shape=(2, 3), dtype=np.float32)


@pytest.mark.parametrize("value", [256, 300, 65535])
def test_values_above_255_widen_the_volume_and_never_wrap(value):
    """Issue 13 case 5: class 256 of a project with more than 255 classes is kept, not stored as 0."""
    volume = LabelVolume(shape=(1, 10, 10))
    volume.begin_stroke(0)
    volume.paint_disk(0, 2, 2, 1, 1)
    volume.paint_disk(0, 6, 6, 1, value)  # in the same stroke: the stroke goes on in the wider dtype
    volume.end_stroke()
    assert volume.data.dtype == np.uint16 and volume.data[0, 6, 6] == value and volume.data[0, 2, 2] == 1
    volume.undo()
    assert not volume.data.any()
    volume.redo()
    assert volume.data[0, 6, 6] == value


def test_data_that_does_not_fit_the_dtype_is_refused_not_wrapped():
    labels = np.array([[0, 256, 300]], np.uint16)
    assert LabelVolume(data=labels).data.dtype == np.uint16  # the data's own dtype by default
    with pytest.raises(ValueError, match="do not fit"):
        LabelVolume(data=labels, dtype=np.uint8)
    assert labels_dtype(255) == np.uint8 and labels_dtype(256) == np.uint16
    with pytest.raises(ValueError):
        labels_dtype(65536)


# ---------------------------------------------------------------------- fill bounded by intensity (issue 17, item 4)


def two_blobs(size=120):
    """A dark image with two bright squares of texture (a nucleus-like speckle) far apart."""
    rng = np.random.default_rng(0)
    image = rng.normal(20, 3, (size, size)).astype(np.float32)
    image[20:50, 20:50] += 150 + rng.normal(0, 8, (30, 30))
    image[70:100, 70:100] += 150 + rng.normal(0, 8, (30, 30))
    return image


def test_fill_with_intensity_stays_in_the_clicked_blob():
    image = two_blobs()
    volume = LabelVolume(shape=(1, 120, 120))
    box = volume.fill(0, 35, 35, 2, intensity=image, tolerance=40.0)
    filled = volume.data[0] == 2
    assert box == (20, 50, 20, 50)  # the first square only, whole (texture holes filled)
    assert filled[20:50, 20:50].all() and filled.sum() == 900
    # Without intensity the fill takes every unlabelled pixel (the old behaviour).
    volume.undo()
    assert volume.fill(0, 35, 35, 2) == (0, 120, 0, 120)


def test_fill_with_intensity_stops_at_labels_of_other_classes():
    image = two_blobs()
    volume = LabelVolume(shape=(1, 120, 120))
    volume.paint_line(0, (20, 35), (49, 35), 0.5, 1)  # a line of class 1 across the first square
    volume.fill(0, 30, 25, 2, intensity=image, tolerance=40.0)
    filled = volume.data[0] == 2
    assert filled[20:50, 20:35].all() and not filled[:, 35:].any()
    assert (volume.data[0][:, 35][20:50] == 1).all()


def test_fill_on_a_label_recolours_that_label_only():
    image = two_blobs()
    volume = LabelVolume(shape=(1, 120, 120))
    volume.data[0, 10:60, 10:60] = 1
    volume.fill(0, 35, 35, 3)  # no intensity: the connected label, bright and dark parts alike
    assert (volume.data[0, 10:60, 10:60] == 3).all() and (volume.data[0] == 3).sum() == 2500


@pytest.mark.parametrize("tolerance, low, high", [([40.0, 40.0], 850, 900), ([40.0, 1.0], 1, 60)])
def test_fill_tolerance_is_per_channel(tolerance, low, high):
    image = two_blobs()
    noise = np.random.default_rng(1).normal(0, 20, image.shape).astype(np.float32)
    channels = np.stack([image, noise])
    volume = LabelVolume(shape=(1, 120, 120))
    volume.fill(0, 35, 35, 1, intensity=channels, tolerance=tolerance)
    assert low <= (volume.data[0] == 1).sum() <= high  # a tight second channel stops the fill


def test_fill_region_does_not_change_labels_and_nan_seed_is_safe():
    image = two_blobs()
    volume = LabelVolume(shape=(1, 120, 120))
    box, mask = volume.fill_region(0, 35, 35, 1, image, 40.0)
    assert volume.data.max() == 0 and volume.version == 0 and mask.sum() == 900
    image[80, 80] = np.nan
    box, mask = volume.fill_region(0, 80, 80, 1, image, 40.0)
    assert mask.sum() >= 1 and mask.sum() < 120 * 120 / 2


def test_intensity_fill_grows_its_window_on_a_big_image():
    image = np.zeros((1500, 1300), np.float32)
    image[:, 700:] = 100.0  # a bright half
    volume = LabelVolume(shape=(1, 1500, 1300))
    box = volume.fill(0, 750, 10, 3, intensity=image, tolerance=10.0)
    assert box == (0, 1500, 0, 700)
    assert (volume.data[0, :, :700] == 3).all() and not (volume.data[0, :, 700:] == 3).any()


# ---------------------------------------------------------------------- import: file values -> classes (item 3)


@pytest.mark.parametrize("found, n_classes, kind, values, others", [
    ([0, 255], 2, "mask", {0: 1, 255: 2}, 0),                      # Fiji binary mask
    ([0, 1, 2], 2, "classes", {0: 0, 1: 1, 2: 2}, 0),              # the project's own convention
    ([0, 1], 3, "classes", {0: 0, 1: 1}, 0),
    ([0, 85, 170, 255], 4, "levels", {0: 1, 85: 2, 170: 3, 255: 4}, 0),
    ([10, 20], 3, "levels", {0: 1, 10: 1, 20: 2}, 0),              # no 0: the first classes in order
    (list(range(300)), 2, "instances", {0: 1}, 2),                 # objects: all non-zero -> foreground
    ([0, 3, 9, 12], 2, "instances", {0: 1, 3: 2, 9: 2, 12: 2}, 2),
    ([0, 255], 1, "mask", {0: 1, 255: 1}, 0),
])
def test_propose_mapping(found, n_classes, kind, values, others):
    found = np.array(found)
    assert label_image_kind(found, n_classes) == kind
    assert propose_mapping(found, n_classes) == LabelMapping(values, others)


def test_propose_mapping_zero_unlabelled_keeps_the_other_values():
    proposal = propose_mapping(np.array([0, 255]), 2, zero_is_background=False)
    assert proposal == LabelMapping({0: 0, 255: 2}, 0)
    assert propose_mapping(np.array([0, 1, 2]), 2, zero_is_background=True).values[0] == 1


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, bool])
def test_apply_mapping_matches_a_per_value_reference(dtype):
    rng = np.random.default_rng(3)
    top = {np.uint8: 255, np.uint16: 65535, np.int32: 2**31 - 1, np.int64: 2**40, bool: 1}[dtype]
    pool = np.unique(np.array([0, 1, 7, top // 2, top], dtype=np.int64)).astype(dtype)
    data = rng.choice(pool, size=(3, 17, 19))
    mapping = LabelMapping({int(pool[0]): 1, int(pool[-1]): 2}, others=0)
    out = apply_mapping(data, mapping)
    expected = np.vectorize(lambda v: mapping.values.get(int(v), mapping.others))(data)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8 and out.shape == data.shape
    assert list(distinct_values(data)) == sorted(set(int(v) for v in data.ravel()))


def test_apply_mapping_others_and_wide_classes():
    data = np.array([[0, 5], [70000, 9]], np.int32)
    np.testing.assert_array_equal(apply_mapping(data, LabelMapping({0: 0}, others=2)), [[0, 2], [2, 2]])
    wide = apply_mapping(data, LabelMapping({5: 300}))
    assert wide.dtype == np.uint16 and wide[0, 1] == 300 and wide.sum() == 300


def test_set_slices_is_one_undo_item_over_every_slice():
    volume = LabelVolume(shape=(3, 8, 8))
    volume.paint_disk(1, 4, 4, 2, 1)
    before = volume.data.copy()
    planes = {0: np.full((8, 8), 2, np.uint8), 1: before[1].copy(), 2: np.ones((8, 8), np.uint8)}
    changed = volume.set_slices(planes)
    assert sorted(changed) == [0, 2]  # slice 1 was already so
    assert (volume.data[0] == 2).all() and (volume.data[2] == 1).all()
    assert volume.undo() == (0, (0, 8, 0, 8))
    np.testing.assert_array_equal(volume.data, before)
    assert volume.undo() is not None and volume.data.max() == 0  # the disk painted before: its own item
    volume.redo()
    volume.redo()
    assert (volume.data[2] == 1).all()
