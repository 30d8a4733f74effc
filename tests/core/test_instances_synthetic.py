"""Objects from three-class outputs, on synthetic scenes whose objects are known: touching discs, touching rods
at several angles, curved filaments, a dense monolayer (with and without gaps).

(a) Ideal probability maps (the three-class encoding of the true objects, sharp or blurred) go through the
post-processing: the count must be exact and every object found with a minimum IoU. (b) A tiny network is
trained on one synthetic image and predicts another: the count must be close.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from unet_studio.core.config import ModelConfig, TrainConfig
from unet_studio.core.errors import ConfigError, DataError
from unet_studio.core.predict import (
    THREE_CLASS_NAMES,
    InstanceConfig,
    find_instances,
    instance_classes,
    instance_mode,
    match_instances,
    objects_from_probabilities,
    predict_probabilities,
    resolve_instance_mode,
    three_class_instances,
)
from unet_studio.core.train import TrainingSet, map_label_values, train

#: Smallest IoU of a found object with its true object: sharp maps, and maps blurred by 1 pixel (which moves
#: the edge of a thin rod or filament by about a pixel on each side).
MIN_IOU = {0.0: 0.9, 1.0: 0.75}


# ------------------------------------------------------------------------------------------ scenes


def _claim(labels: np.ndarray, shape_mask: np.ndarray, distance: np.ndarray, best: np.ndarray, label: int) -> None:
    """Give ``label`` the pixels of ``shape_mask`` closer to its skeleton than to any earlier object's."""
    take = shape_mask & (distance < best)
    labels[take] = label
    best[take] = distance[take]


def touching_discs(shape=(96, 96), radius=9, spacing=17, jitter=0, seed=0) -> np.ndarray:
    """A grid of discs closer than their diameter: each pixel goes to the nearest centre (straight contacts)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    best = np.full(shape, np.inf)
    label = 0
    for r in range(radius + 2, shape[0] - radius - 1, spacing):
        for c in range(radius + 2, shape[1] - radius - 1, spacing):
            label += 1
            rr, cc = r + rng.integers(-jitter, jitter + 1), c + rng.integers(-jitter, jitter + 1)
            distance = np.hypot(rows - rr, cols - cc)
            _claim(labels, distance <= radius, distance, best, label)
    return labels


def _segment_distance(rows, cols, start, end) -> np.ndarray:
    (r0, c0), (r1, c1) = start, end
    dr, dc = r1 - r0, c1 - c0
    t = np.clip(((rows - r0) * dr + (cols - c0) * dc) / max(dr * dr + dc * dc, 1e-9), 0, 1)
    return np.hypot(rows - (r0 + t * dr), cols - (c0 + t * dc))


def touching_rods(angle_deg: float, shape=(96, 96), length=34, half_width=3.2) -> np.ndarray:
    """Three rods (capsules) at ``angle_deg``: two side by side touching along their length, and a third
    touching the end of one of them, end to end."""
    rows, cols = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    best = np.full(shape, np.inf)
    a = np.deg2rad(angle_deg)
    along, across = np.array([np.sin(a), np.cos(a)]), np.array([np.cos(a), -np.sin(a)])
    centre = np.array(shape) / 2 - along * length * 0.45
    gap = 2 * half_width  # axes this far apart: the rods touch along their length
    centres = [centre - across * gap / 2, centre + across * gap / 2,
               centre - across * gap / 2 + along * (length + 2 * half_width)]
    for label, mid in enumerate(centres, start=1):
        start, end = mid - along * length / 2, mid + along * length / 2
        distance = _segment_distance(rows, cols, start, end)
        _claim(labels, distance <= half_width, distance, best, label)
    return labels


def curved_filaments(shape=(96, 96), half_width=2.2) -> np.ndarray:
    """Two long arcs (quarter circles) and an S-shaped filament; the two arcs touch along part of their length."""
    rows, cols = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    best = np.full(shape, np.inf)
    curves = []
    for radius in (30.0, 30.0 + 2 * half_width):  # concentric arcs, touching
        t = np.linspace(0.05, 1.45, 200)
        curves.append(np.stack([8 + radius * np.sin(t), 8 + radius * np.cos(t)], 1))
    t = np.linspace(0, 1, 300)
    curves.append(np.stack([50 + 40 * t, 60 + 12 * np.sin(2 * np.pi * t)], 1))  # an S
    for label, points in enumerate(curves, start=1):
        on_curve = np.zeros(shape, bool)
        idx = np.round(points).astype(int)
        keep = (idx >= 0).all(1) & (idx[:, 0] < shape[0]) & (idx[:, 1] < shape[1])
        on_curve[idx[keep, 0], idx[keep, 1]] = True
        distance = ndi.distance_transform_edt(~on_curve)
        _claim(labels, distance <= half_width, distance, best, label)
    return labels


def monolayer(shape=(96, 96), cell=16, gap=False, seed=0) -> np.ndarray:
    """Voronoi cells of a jittered grid filling the image; with ``gap``, a 1-pixel background line between cells."""
    rng = np.random.default_rng(seed)
    centres = [(r + rng.uniform(-3, 3), c + rng.uniform(-3, 3))
               for r in range(cell // 2, shape[0], cell) for c in range(cell // 2, shape[1], cell)]
    rows, cols = np.indices(shape)
    distances = np.stack([np.hypot(rows - r, cols - c) for r, c in centres])
    labels = (np.argmin(distances, 0) + 1).astype(np.int32)
    if gap:
        edge = np.zeros(shape, bool)
        edge[:-1] |= labels[:-1] != labels[1:]
        edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
        labels[edge] = 0
    return labels


def ideal_probabilities(labels: np.ndarray, blur: float = 0.0) -> np.ndarray:
    """The three-class encoding of ``labels`` as one-hot probabilities, optionally blurred (sums stay 1)."""
    classes = instance_classes(labels)
    probs = np.stack([(classes == k).astype(np.float32) for k in range(3)])
    if blur:
        probs = np.stack([ndi.gaussian_filter(p, blur) for p in probs])
        probs /= probs.sum(0, keepdims=True)
    return probs


SCENES = {
    "discs": touching_discs(),
    "discs_jittered": touching_discs(jitter=2, seed=3),
    **{f"rods_{angle}": touching_rods(angle) for angle in (0, 20, 45, 70, 90, 135)},
    "filaments": curved_filaments(),
    "monolayer": monolayer(),
    "monolayer_gaps": monolayer(gap=True, seed=1),
}


# ------------------------------------------------------------------------------------------ encoding


def test_scenes_have_touching_objects():
    """The scenes are what they claim: objects that touch one another (else they test nothing)."""
    for name, labels in SCENES.items():
        right = (labels[:, :-1] > 0) & (labels[:, 1:] > 0) & (labels[:, :-1] != labels[:, 1:])
        down = (labels[:-1] > 0) & (labels[1:] > 0) & (labels[:-1] != labels[1:])
        assert right.any() or down.any() or name == "monolayer_gaps", name


def test_instance_classes_marks_boundaries_and_keeps_an_interior_in_every_object():
    for name, labels in SCENES.items():
        classes = instance_classes(labels)
        assert classes.dtype == np.uint8 and set(np.unique(classes)) <= {0, 1, 2}
        np.testing.assert_array_equal(classes == 0, labels == 0)
        for label in np.unique(labels[labels > 0]):
            assert (classes[labels == label] == 1).any(), (name, label)  # every object keeps an interior
        # no interior pixel touches another object or the background (4-neighbours)
        padded = np.pad(labels, 1, mode="edge")
        for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            neighbour = padded[1 + dr: 1 + dr + labels.shape[0], 1 + dc: 1 + dc + labels.shape[1]]
            assert not ((classes == 1) & (neighbour != labels)).any(), name


def test_boundary_width_adapts_to_thin_objects():
    labels = np.zeros((40, 40), np.int32)
    labels[5:25, 5:20] = 1  # thick: a 2-pixel boundary
    labels[5:25, 25:28] = 2  # 3 pixels wide: a 1-pixel boundary, a 1-pixel interior
    labels[30, 5:30] = 3  # 1 pixel wide: all interior
    classes = instance_classes(labels)
    assert (classes[15, 5:20] == [2, 2] + [1] * 11 + [2, 2]).all()
    assert (classes[15, 25:28] == [2, 1, 2]).all()
    assert (classes[30, 6:29] == 1).all()
    assert instance_classes(np.zeros((5, 5), np.int32)).max() == 0


def test_instance_labels_become_three_classes_for_training():
    raw = [touching_discs((40, 40), radius=7, spacing=12)]
    mapped, values = map_label_values(raw, instances=True, instance_output="three_class")
    assert values == [0, 1, 2]
    np.testing.assert_array_equal(mapped[0], instance_classes(raw[0]).astype(np.int64) + 1)
    mapped, values = map_label_values(raw, instances=True)  # the default: distance
    assert values == [0, 1] and set(np.unique(mapped[0])) == {1, 2}
    # object numbers saved as floats are fine; fractions are not
    as_float, _ = map_label_values([raw[0].astype(np.float32)], instances=True, instance_output="three_class")
    np.testing.assert_array_equal(as_float[0], instance_classes(raw[0]).astype(np.int64) + 1)
    with pytest.raises(DataError, match="whole numbers"):
        map_label_values([raw[0] + np.float32(0.5)], instances=True)


# ------------------------------------------------------------------------------------------ (a) ideal maps


@pytest.mark.parametrize("blur", [0.0, 1.0])
@pytest.mark.parametrize("name", sorted(SCENES))
def test_ideal_maps_give_every_object_exactly(name, blur):
    truth = SCENES[name]
    objects = three_class_instances(ideal_probabilities(truth, blur), config=InstanceConfig(min_size=0))
    match = match_instances(objects, truth)
    n_true = len(np.unique(truth[truth > 0]))
    assert int(objects.max()) == n_true, (name, objects.max(), n_true)
    assert match.tp == n_true and match.fp == 0, match
    assert match.best_iou.min() >= MIN_IOU[blur], (name, match.best_iou.min())


def test_distance_seeds_cut_rods_and_filaments_that_interior_seeds_keep_whole():
    """Why the three-class output exists: maxima of the distance transform along a rod or a filament seed
    several objects, the interiors one each."""
    cut = 0
    for name in ("rods_0", "rods_45", "rods_135", "filaments"):
        truth = SCENES[name]
        n_true = len(np.unique(truth[truth > 0]))
        cut += int(find_instances(truth > 0, config=InstanceConfig(min_size=0)).max()) != n_true
        assert int(three_class_instances(ideal_probabilities(truth), config=InstanceConfig(min_size=0)).max()) == n_true
    assert cut >= 1


def test_h_maxima_seeds_split_interiors_that_touch():
    truth = touching_discs((48, 80), radius=12, spacing=21)
    probs = ideal_probabilities(truth)
    # the boundary between the two discs is missed: their interiors merge into one seed
    probs[1] = np.where(truth > 0, np.maximum(probs[1], probs[2]), 0)
    probs[2] = 0
    assert three_class_instances(probs, config=InstanceConfig(min_size=0)).max() < truth.max()
    split = three_class_instances(probs, config=InstanceConfig(min_size=0, seed_h=2.0))
    assert split.max() == truth.max()


def test_foreground_without_interior_still_makes_an_object():
    probs = np.zeros((3, 20, 20), np.float32)
    probs[0] = 1
    probs[:, 5:8, 5:9] = np.array([0.0, 0.2, 0.8])[:, None, None]  # boundary only: no seed above 0.5
    objects = three_class_instances(probs, config=InstanceConfig(min_size=0))
    assert objects.max() == 1 and (objects > 0).sum() == 12


def test_uint8_probabilities_and_empty_images():
    truth = SCENES["discs"]
    probs = (ideal_probabilities(truth) * 255).astype(np.uint8)
    assert three_class_instances(probs).max() == truth.max()
    empty = np.zeros((3, 10, 10), np.float32)
    empty[0] = 1
    assert three_class_instances(empty).max() == 0


def test_match_instances():
    truth = np.zeros((10, 10), np.int32)
    truth[:5, :5], truth[5:, 5:] = 4, 9
    pred = np.zeros_like(truth)
    pred[:5, :4] = 1  # IoU 0.8 with object 4
    pred[0, 9] = 2  # a false positive
    match = match_instances(pred, truth)
    assert (match.tp, match.fp, match.fn) == (1, 1, 1)
    np.testing.assert_allclose(match.best_iou, [0.8, 0.0])
    assert match_instances(pred, truth, 0.85).tp == 0
    with pytest.raises(ConfigError):
        match_instances(pred, truth, 0.3)


def test_instance_mode_comes_from_the_model_description():
    described = {"instance_output": {"mode": "three_class"}}
    assert instance_mode(THREE_CLASS_NAMES, described) == "three_class"
    assert instance_mode(["background", "foreground"], {}) == "distance"
    assert instance_mode(THREE_CLASS_NAMES, {}) == "distance"  # three classes by chance are not an instance model
    assert resolve_instance_mode("auto", THREE_CLASS_NAMES, described) == "three_class"
    assert resolve_instance_mode("distance", THREE_CLASS_NAMES, described) == "distance"
    with pytest.raises(ConfigError, match="distance mode"):
        resolve_instance_mode("three_class", ["background", "foreground"], {})


def test_objects_from_probabilities_dispatches():
    truth = SCENES["rods_45"]
    probs = ideal_probabilities(truth)
    mask = truth > 0
    config = InstanceConfig(min_size=0)
    three = objects_from_probabilities(probs, mask, [1, 2], "three_class", config)
    assert three.max() == truth.max()
    components = objects_from_probabilities(probs, mask, [1, 2], "three_class", InstanceConfig(method="components"))
    assert components.max() == 1  # the three rods touch: one connected piece
    with pytest.raises(ConfigError, match="three-class"):
        objects_from_probabilities(probs[:2], mask, [1], "three_class", config)


# ------------------------------------------------------------------------------------------ (b) a tiny network


def _render(labels: np.ndarray, seed: int) -> np.ndarray:
    """A fluorescence-like image of ``labels``: objects bright in their middle, dimmer at their edge (as
    nuclei and bacteria are), on a noisy background."""
    rng = np.random.default_rng(seed)
    depth = np.zeros(labels.shape, np.float32)
    for label in np.unique(labels[labels > 0]):
        inside = labels == label
        d = ndi.distance_transform_edt(inside)
        depth[inside] = np.minimum(d[inside] / 3.0, 1.0)
    image = 0.15 + 0.75 * depth + rng.normal(0, 0.05, labels.shape)
    return ndi.gaussian_filter(image, 0.7).astype(np.float32)


def _scene(seed: int) -> np.ndarray:
    """Touching discs and touching rods side by side in one 96 x 192 image."""
    discs = touching_discs((96, 96), radius=9, spacing=17, jitter=2, seed=seed)
    rods = touching_rods(30 + 40 * seed, (96, 96))
    return np.concatenate([discs, np.where(rods > 0, rods + discs.max(), 0)], axis=1)


def test_a_tiny_network_trained_on_touching_objects_counts_them(tmp_path):
    torch.manual_seed(0)
    truth_train, truth_test = _scene(0), _scene(1)
    labels, values = map_label_values([truth_train], instances=True, instance_output="three_class")
    dataset = TrainingSet([_render(truth_train, 0)[None]], labels, len(values), instances=[truth_train])
    config = TrainConfig(patch_size=48, batch_size=4, epochs=1, steps_per_epoch=150, eval_every=50,
                         preview_every=1000, val_fraction=0.0, seed=0, device="cpu", learning_rate=1e-2,
                         warmup_steps=5, num_threads=1, use_border_weights=True, instance_output="three_class",
                         amp=False)
    model_config = ModelConfig(base_channels=4, depth=3, norm="batch")
    *_, last = train(dataset, model_config, config, out_dir=tmp_path / "m", class_values=values,
                     class_names=list(THREE_CLASS_NAMES))
    assert last.done and last.step == 150, (last.stop_reason, last.step)
    from unet_studio.core.model import load_model

    model, info = load_model(tmp_path / "m")
    assert info.class_names == list(THREE_CLASS_NAMES) and info.class_values == [0, 1, 2]
    assert instance_mode(info.class_names, info.extra) == "three_class"
    probs = predict_probabilities(model, _render(truth_test, 1)[None])
    objects = three_class_instances(probs)
    n_true = int(truth_test.max())
    match = match_instances(objects, truth_test)
    assert abs(int(objects.max()) - n_true) <= max(2, n_true // 8), (objects.max(), n_true)
    assert match.tp >= 0.75 * n_true, match
