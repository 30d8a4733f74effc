"""Training data: label conventions, pairing by file name, the biased sampler, validation splits."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import tifffile

from unet_studio.core.train.data import PatchSampler, TrainingSet, split_validation
from unet_studio.core.train.folders import load_folder, map_label_values, pair_files
from unet_studio.core.errors import DataError


def test_dense_labels_every_value_is_a_class():
    raw = [np.array([[0, 255], [255, 255]], np.uint8), np.array([[0, 0], [0, 255]], np.uint8)]
    mapped, values = map_label_values(raw)
    assert values == [0, 255]
    np.testing.assert_array_equal(mapped[0], [[1, 2], [2, 2]])
    np.testing.assert_array_equal(mapped[1], [[1, 1], [1, 2]])


def test_sparse_labels_ignore_the_unlabelled_value():
    raw = [np.array([[0, 3, 0], [1, 0, 3]], np.uint16)]
    mapped, values = map_label_values(raw, unlabelled=0)
    assert values == [1, 3]
    np.testing.assert_array_equal(mapped[0], [[0, 2, 0], [1, 0, 2]])
    # Another 'unlabelled' value: 3 is ignored, 0 becomes a class.
    mapped, values = map_label_values(raw, unlabelled=3)
    assert values == [0, 1]
    np.testing.assert_array_equal(mapped[0], [[1, 0, 1], [2, 1, 0]])


def test_instance_labels_become_background_and_foreground():
    raw = [np.array([[0, 1, 2], [0, 7, 7]], np.uint16)]
    mapped, values = map_label_values(raw, instances=True)  # the default: distance
    assert values == [0, 1]
    np.testing.assert_array_equal(mapped[0], [[1, 2, 2], [1, 2, 2]])
    # three_class: background, interior, boundary (objects this small are all boundary or all interior)
    mapped, values = map_label_values(raw, instances=True, instance_output="three_class")
    assert values == [0, 1, 2] and set(np.unique(mapped[0])) <= {1, 2, 3}


@pytest.mark.parametrize("raw, unlabelled, message", [
    ([np.zeros((4, 4), np.uint8)], 0, "no labelled pixel"),
    ([np.full((4, 4), 5, np.uint8)], None, "single class"),
    ([np.arange(64, dtype=np.uint16).reshape(8, 8)], None, "too many"),
])
def test_unusable_labels_are_refused(raw, unlabelled, message):
    with pytest.raises(DataError, match=message):
        map_label_values(raw, unlabelled)


def _write(folder, name, array):
    folder.mkdir(exist_ok=True)
    tifffile.imwrite(folder / name, array, photometric="minisblack")


def test_pairing_by_file_name_with_label_suffixes(tmp_path):
    for name in ("a.tif", "b.tif"):
        _write(tmp_path / "img", name, np.zeros((8, 8), np.uint8))
    _write(tmp_path / "lab", "a.tif", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "lab", "b_labels.tif", np.zeros((8, 8), np.uint8))
    pairs = pair_files(tmp_path / "img", tmp_path / "lab")
    assert [(i.name, l.name) for i, l in pairs] == [("a.tif", "a.tif"), ("b.tif", "b_labels.tif")]
    _write(tmp_path / "img", "c.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="no label image .* for c.tif"):
        pair_files(tmp_path / "img", tmp_path / "lab")


def test_load_folder_flattens_stacks_and_checks_shapes(tmp_path):
    rng = np.random.default_rng(0)
    _write(tmp_path / "img", "s.tif", rng.integers(0, 4000, (4, 32, 40)).astype(np.uint16))
    _write(tmp_path / "lab", "s.tif", rng.integers(0, 3, (4, 32, 40)).astype(np.uint8))
    dataset, values, names = load_folder(tmp_path / "img", tmp_path / "lab", unlabelled=0)
    assert len(dataset) == 4 and dataset.images[0].shape == (1, 32, 40)
    assert values == [1, 2] and len(names) == 2
    assert dataset.images[0].dtype == np.float32 and float(dataset.images[0].max()) <= 1.5
    _write(tmp_path / "lab", "s.tif", np.ones((4, 32, 41), np.uint8))
    with pytest.raises(DataError, match="same size"):
        load_folder(tmp_path / "img", tmp_path / "lab")


def test_training_set_checks_and_thread_safe_updates():
    images = [np.zeros((1, 16, 16), np.float32)]
    with pytest.raises(DataError, match="do not match"):
        TrainingSet(images, [np.zeros((16, 15), np.int64)], 2)
    dataset = TrainingSet(images, [np.zeros((16, 16), np.int64)], 2)
    errors = []

    def paint():
        try:
            for k in range(50):
                dataset.update_labels(0, np.full((16, 16), 1 + k % 2))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=paint)
    thread.start()
    for _ in range(50):
        labels, _ = dataset.snapshot()
        assert len(np.unique(labels[0])) == 1  # never half-written
    thread.join()
    assert not errors and dataset.version == 50
    with pytest.raises(DataError):
        dataset.update_labels(0, np.full((16, 16), 3))  # class 3 of 2
    dataset.set_preview_image(np.ones((16, 16), np.float32))
    assert dataset.preview_image.shape == (1, 16, 16)


def test_sampler_is_biased_toward_sparse_strokes():
    image = np.random.default_rng(0).random((1, 256, 256), dtype=np.float32)
    labels = np.zeros((256, 256), np.int64)
    labels[200, 20:40] = 1  # one short stroke of each class, far apart
    labels[30:50, 220] = 2
    sampler = PatchSampler([image], [labels], None, crop=48, labelled_bias=0.9,
                           rng=np.random.default_rng(1), n_classes=2)
    batch = sampler.sample(400)
    assert batch.images.shape == (400, 1, 48, 48) and batch.labels.shape == (400, 48, 48)
    has = [(batch.labels == k).any(axis=(1, 2)) for k in (1, 2)]
    # Uniform crops would hit a stroke about 10% of the time; biased, about 90% (half per class).
    assert 0.35 < has[0].mean() < 0.6 and 0.35 < has[1].mean() < 0.6
    # Crops are exact windows of the image: the labelled pixels carry the same image values.
    rows, cols = np.nonzero(labels == 1)
    assert set(np.round(batch.images[:, 0][batch.labels == 1], 6)) <= set(np.round(image[0][rows, cols], 6))


def test_sampler_mirrors_images_smaller_than_the_crop():
    image = np.arange(100, dtype=np.float32).reshape(1, 10, 10)
    sampler = PatchSampler([image], [np.ones((10, 10), np.int64)], None, crop=40, labelled_bias=0.5,
                           rng=np.random.default_rng(0), n_classes=2)
    batch = sampler.sample(4)
    assert batch.images.shape == (4, 1, 40, 40) and (batch.labels == 1).all()


def test_validation_split_holds_out_images_or_tiles():
    rng = np.random.default_rng(0)
    labels = [np.ones((64, 64), np.int64) for _ in range(5)]
    split = split_validation(labels, 0.2, rng)
    assert len(split.held_out) == 1
    train = split.train_labels(labels)
    assert sum(not lab.any() for lab in train) == 1
    # One image: tiles are held out and unlabelled for training.
    single = [np.ones((512, 512), np.int64)]
    split = split_validation(single, 0.25, rng, tile=128)
    assert not split.held_out and len(split.val_items) == 4
    train = split.train_labels(single)[0]
    for _, window in split.val_items:
        assert not train[window].any()
    assert train.sum() == 512 * 512 - 4 * 128 * 128
    assert split_validation(labels, 0.0, rng).val_items == []


# ------------------------------------------------------------------------------- pairing (issue 13, case 3)

def _pairs(images, labels):
    return [(i.name, l.name) for i, l in pair_files(images, labels)]


def test_pairing_uses_the_whole_stem(tmp_path):
    for n in (1, 2, 3):
        _write(tmp_path / "img", f"cell.{n}.tif", np.zeros((8, 8), np.uint8))
        _write(tmp_path / "lab", f"cell.{n}.tif" if n < 3 else f"cell.{n}_mask.tif", np.full((8, 8), n, np.uint8))
    _write(tmp_path / "img", "d.ome.tif", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "lab", "d_labels.tif", np.zeros((8, 8), np.uint8))
    assert _pairs(tmp_path / "img", tmp_path / "lab") == [
        ("cell.1.tif", "cell.1.tif"), ("cell.2.tif", "cell.2.tif"), ("cell.3.tif", "cell.3_mask.tif"),
        ("d.ome.tif", "d_labels.tif")]


def test_letter_case_is_matched_exactly_first_and_never_shared(tmp_path):
    _write(tmp_path / "img", "A.tif", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "lab", "a_labels.tif", np.zeros((8, 8), np.uint8))
    assert _pairs(tmp_path / "img", tmp_path / "lab") == [("A.tif", "a_labels.tif")]  # no exact match: any case
    _write(tmp_path / "img", "a.tif", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "lab", "A.tif", np.zeros((8, 8), np.uint8))
    assert _pairs(tmp_path / "img", tmp_path / "lab") == [("A.tif", "A.tif"), ("a.tif", "a_labels.tif")]
    (tmp_path / "lab" / "a_labels.tif").unlink()
    with pytest.raises(DataError, match="a.tif has no label image of its own .* A.tif labels A.tif"):
        pair_files(tmp_path / "img", tmp_path / "lab")


@pytest.mark.parametrize("images, labels, message", [
    (["a.tif"], ["a_labels.tif", "a_mask.tif"], "a.tif matches several label images .*a_labels.tif, a_mask.tif"),
    (["a.png", "a.tif"], ["a.tif"], "a.png and a.tif both pair with the label image a.tif"),
])
def test_ambiguous_pairs_are_refused(tmp_path, images, labels, message):
    for name in images:
        _write(tmp_path / "img", name, np.zeros((8, 8), np.uint8))
    for name in labels:
        _write(tmp_path / "lab", name, np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=message):
        pair_files(tmp_path / "img", tmp_path / "lab")


def test_one_folder_for_images_and_labels_never_pairs_an_image_with_itself(tmp_path):
    for name in ("x.tif", "y.tif", "y_labels.tif"):
        _write(tmp_path / "both", name, np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="no label image in .* for x.tif"):
        pair_files(tmp_path / "both", tmp_path / "both")
    (tmp_path / "both" / "x.tif").unlink()
    assert _pairs(tmp_path / "both", tmp_path / "both") == [("y.tif", "y_labels.tif")]


# ------------------------------------------------------------------ label values that never wrap (case 17)

@pytest.mark.parametrize("value", [2**32, 2**32 + 5, 2**63 + 1, -(2**31) - 1])
def test_label_values_no_label_image_can_hold_are_refused(value):
    dtype = np.uint64 if value > 0 else np.int64
    raw = [np.array([[1, value], [1, 1]], dtype), np.array([[1, 1], [1, 2]], np.uint8)]
    with pytest.raises(DataError, match=f"holds the value {value}, outside"):
        map_label_values(raw)


def test_large_label_values_keep_their_exact_values():
    raw = [np.array([[0, 2**32 - 1], [2**31 + 3, 0]], np.uint64), np.array([[0, 7]], np.int16)]
    mapped, values = map_label_values(raw, unlabelled=0)
    assert values == [7, 2**31 + 3, 2**32 - 1]  # not rounded through float64, not wrapped
    np.testing.assert_array_equal(mapped[0], [[0, 3], [2, 0]])
    np.testing.assert_array_equal(mapped[1], [[0, 1]])


def test_training_refuses_labels_of_2_to_the_32_before_it_starts(tmp_path):
    rng = np.random.default_rng(0)
    _write(tmp_path / "img", "a.tif", rng.integers(0, 4000, (16, 16)).astype(np.uint16))
    _write(tmp_path / "lab", "a.tif", np.where(rng.random((16, 16)) > 0.5, 2**32 + 5, 1).astype(np.uint64))
    with pytest.raises(DataError, match="4294967301"):
        load_folder(tmp_path / "img", tmp_path / "lab")
