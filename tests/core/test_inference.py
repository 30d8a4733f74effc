"""Overlap-tile inference: tiled output equals a whole-image pass, layouts, out-of-memory fallback, stacks."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from unet_studio.core.predict import tiled as inference
from unet_studio.core.config import InferConfig
from unet_studio.core.errors import ConfigError, InferenceError
from unet_studio.core.predict.tiled import (
    exact_context,
    iter_predict,
    iter_predict_stack,
    plan_tiles,
    predict_probabilities,
    probabilities_to_labels,
    probabilities_to_uint8,
    tiff_memmap,
)
from unet_studio.core.model.unet import UNet, context_margin, nearest_admissible


def tiny_net(seed: int = 0, **kwargs) -> UNet:
    torch.manual_seed(seed)
    params = dict(in_channels=1, n_classes=3, base_channels=4, depth=3)
    params.update(kwargs)
    return UNet(**params).eval()


def whole_image(model: UNet, image: np.ndarray, config: InferConfig) -> np.ndarray:
    """One forward pass over the whole mirror-padded image (the reference the tiles must reproduce)."""
    mc = model.config
    margin = context_margin(mc.depth, mc.padding)
    before = plan_tiles(image.shape[1:], mc, config).y.pad_before  # margin + discarded context
    pads = []
    for n in image.shape[1:]:
        side = nearest_admissible(n + 2 * before, mc.depth, mc.padding)[1]
        pads.append((before, side - n - before))
    padded = np.pad(image, ((0, 0), *pads), mode="reflect")
    with torch.inference_mode():
        out = torch.softmax(model(torch.from_numpy(padded)[None]), 1)[0].numpy()
    crop = before - margin
    return out[:, crop : crop + image.shape[1], crop : crop + image.shape[2]]


@pytest.fixture(scope="module")
def odd_image() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.normal(size=(1, 171, 133)).astype(np.float32)


@pytest.mark.parametrize("net_kwargs", [
    {}, {"upsample": "bilinear"}, {"norm": "batch"}, {"depth": 4},
], ids=["transpose", "bilinear", "batchnorm", "depth4"])
@pytest.mark.parametrize("tile, overlap", [(96, 0.0), (128, 0.25), (160, 0.5)])
def test_tiled_equals_whole_image(net_kwargs, tile, overlap, odd_image):
    model = tiny_net(**net_kwargs)
    if model.config.depth == 4:
        tile += 48  # a deeper network needs more context per tile
    config = InferConfig(tile_size=tile, overlap=overlap)
    layout = plan_tiles(odd_image.shape[1:], model.config, config)
    assert layout.n_tiles > 1 and max(layout.tile_shape) <= tile
    tiled = predict_probabilities(model, odd_image, config)
    assert tiled.shape == (3, 171, 133) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled.sum(0), 1.0, atol=1e-5)
    assert np.abs(tiled - whole_image(model, odd_image, config)).max() < 1e-4
    # the inference copy folds batch norm into the convolutions; the caller's model is left as it was
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == (model.config.norm == "batch")


@pytest.mark.parametrize("blend", ["cosine", "gaussian", "uniform"])
def test_blend_modes_keep_exact_tiles(blend, odd_image):
    model = tiny_net()
    config = InferConfig(tile_size=96, overlap=0.3, blend=blend)
    assert np.abs(predict_probabilities(model, odd_image, config) - whole_image(model, odd_image, config)).max() < 1e-4


def test_without_context_tiles_differ(odd_image):
    """The exactness above is not trivial: dropping the context makes tile borders differ."""
    model = tiny_net()
    exact = predict_probabilities(model, odd_image, InferConfig(tile_size=64, overlap=0.0))
    rough = predict_probabilities(model, odd_image, InferConfig(tile_size=64, overlap=0.0, context=0, blend="uniform"))
    assert np.abs(exact - rough).max() > 1e-3


@pytest.mark.parametrize("shape", [(37, 23), (1, 9), (64, 64)])
def test_image_smaller_than_one_tile(shape):
    model = tiny_net()
    image = np.random.default_rng(2).normal(size=(1, *shape)).astype(np.float32)
    config = InferConfig(tile_size=256)
    assert plan_tiles(shape, model.config, config).n_tiles == 1
    probs = predict_probabilities(model, image, config)
    assert probs.shape == (3, *shape)
    assert np.abs(probs - whole_image(model, image, config)).max() < 1e-4


def test_two_dimensional_input_is_one_channel():
    model = tiny_net()
    image = np.random.default_rng(3).normal(size=(40, 50)).astype(np.float32)
    np.testing.assert_array_equal(predict_probabilities(model, image), predict_probabilities(model, image[None]))


@pytest.mark.parametrize("depth, tile", [(3, 92), (3, 150), (4, 180)])
def test_valid_mode_output_tiles_cover_image_exactly(depth, tile, odd_image):
    model = tiny_net(padding="valid", depth=depth)
    config = InferConfig(tile_size=tile, overlap=0.5)  # overlap is not used in valid mode
    layout = plan_tiles(odd_image.shape[1:], model.config, config)
    grid = 2 ** (depth - 1)
    cover = np.zeros(odd_image.shape[1:], int)
    for axis in (layout.y, layout.x):
        assert axis.pad_before == context_margin(depth, "valid")
        assert axis.tile - axis.kept == 2 * context_margin(depth, "valid")  # output = what the network returns
        assert axis.stride % grid == 0 and 0 <= axis.kept - axis.stride < grid  # side by side on the pool grid
    for top, left in layout.origins():
        cover[top : top + layout.y.kept, left : left + layout.x.kept] += 1
    assert cover.min() >= 1 and layout.n_tiles > 1
    assert (layout.y.count - 1) * layout.y.stride + layout.y.kept >= odd_image.shape[1]
    tiled = predict_probabilities(model, odd_image, config)
    assert np.abs(tiled - whole_image(model, odd_image, config)).max() < 1e-4


def test_tile_too_small_says_what_fits():
    with pytest.raises(ConfigError, match="at least"):
        plan_tiles((300, 300), UNet(1, 2, 4, depth=5).config, InferConfig(tile_size=64))


def _oom() -> BaseException:
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return oom("CUDA out of memory. Tried to allocate 2.00 GiB") if oom else RuntimeError("CUDA out of memory")


def softmax_of(model: UNet):
    """The plain predictor: the network and a softmax (what the tiled predictor runs by default)."""
    return lambda x: torch.softmax(model(x), dim=1)


def test_out_of_memory_halves_the_batch_and_carries_on(odd_image):
    model = tiny_net()
    config = InferConfig(tile_size=96, batch_size=4)
    expected = predict_probabilities(model, odd_image, config)
    calls = []

    def failing_once(x):
        calls.append(len(x))
        if len(calls) == 1:
            raise _oom()
        return softmax_of(model)(x)

    items = list(iter_predict(model, odd_image, config, predictor=failing_once))
    assert calls[0] == 4 and max(calls[1:]) == 2
    assert items[-1].batch_size == 2
    np.testing.assert_allclose(items[-1].result, expected, atol=1e-5)


def test_out_of_memory_with_batch_one_halves_the_tile(odd_image):
    model = tiny_net()
    seen = []

    def small_tiles_only(x):
        seen.append(x.shape[-1])
        if x.shape[-1] > 64:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return softmax_of(model)(x)

    config = InferConfig(tile_size=160, batch_size=1)
    items = list(iter_predict(model, odd_image, config, predictor=small_tiles_only))
    assert seen[0] > 64 and max(items[-1].tile_shape) <= 64
    assert np.abs(items[-1].result - whole_image(model, odd_image, config)).max() < 1e-4


def test_out_of_memory_at_the_smallest_tile_is_reported(odd_image):
    def always_oom(x):
        raise _oom()

    with pytest.raises(InferenceError, match="out of memory"):
        predict_probabilities(tiny_net(), odd_image, InferConfig(tile_size=128, batch_size=2), always_oom)


def test_other_errors_are_not_swallowed(odd_image):
    def broken(x):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        predict_probabilities(tiny_net(), odd_image, InferConfig(tile_size=96), broken)


def test_the_default_predictor_is_the_network_and_a_softmax(odd_image):
    model = tiny_net()
    config = InferConfig(tile_size=96)
    np.testing.assert_allclose(predict_probabilities(model, odd_image, config),
                               predict_probabilities(model, odd_image, config, softmax_of(model)), atol=1e-5)


def test_progress_per_batch_and_cancel(odd_image):
    model = tiny_net()
    model.train()
    config = InferConfig(tile_size=96, batch_size=2)
    n_tiles = plan_tiles(odd_image.shape[1:], model.config, config).n_tiles
    items = list(iter_predict(model, odd_image, config))
    assert len(items) == -(-n_tiles // 2)
    assert [p.tiles_done for p in items] == sorted(p.tiles_done for p in items)
    assert items[-1].tiles_done == items[-1].tiles_total == n_tiles and items[-1].fraction == 1.0
    assert all(p.result is None for p in items[:-1]) and items[-1].result is not None
    assert model.training  # the caller's training flag is restored
    assert all(p.is_contiguous() for p in model.parameters())  # and its memory format (a copy ran channels-last)

    gen = iter_predict(model, odd_image, config)
    first = next(gen)
    gen.close()  # cancel between tile batches
    assert first.result is None and first.tiles_done == 2 and model.training


def test_wrong_channel_count_is_a_clear_error():
    with pytest.raises(InferenceError, match="expects 1 input channel but the image has 3"):
        predict_probabilities(tiny_net(), np.zeros((3, 32, 32), np.float32))


def test_stack_slice_by_slice():
    model = tiny_net()
    rng = np.random.default_rng(4)
    stack = rng.integers(0, 1000, size=(3, 1, 45, 61)).astype(np.uint16)

    def prepare(raw):
        return (raw.astype(np.float32) - 500) / 300

    results = {}
    indices = []
    for progress in iter_predict_stack(model, stack, InferConfig(tile_size=64), prepare=prepare):
        indices.append(progress.slice_index)
        assert progress.slices_total == 3
        if progress.result is not None:
            results[progress.slice_index] = progress.result
    assert sorted(results) == [0, 1, 2] and indices == sorted(indices)
    for index, probs in results.items():
        np.testing.assert_allclose(probs, predict_probabilities(model, prepare(stack[index]), InferConfig(tile_size=64)))


def test_labels_in_model_class_values_and_thresholds():
    probs = np.array([[[0.7, 0.4, 0.2]], [[0.3, 0.6, 0.8]]], np.float32)  # background, foreground
    labels = probabilities_to_labels(probs, [0, 255])
    assert labels.dtype == np.uint8 and labels.tolist() == [[0, 255, 255]]
    assert probabilities_to_labels(probs, [0, 255], thresholds=(0, 0.7)).tolist() == [[0, 0, 255]]
    assert probabilities_to_labels(probs, [0, 255], thresholds=(0, 0.25)).tolist() == [[255, 255, 255]]
    assert probabilities_to_labels(probs, [1, 2], thresholds=(0.9, 0.9)).tolist() == [[1, 1, 1]]
    assert probabilities_to_labels(probs, [1, 300]).dtype == np.uint16
    with pytest.raises(ConfigError):
        probabilities_to_labels(probs, [0, 255], thresholds=(0.5,))


def test_uint8_overlay_form():
    probs = np.array([0.0, 1 / 255, 0.5, 0.998, 1.0], np.float32).reshape(1, 1, 5)
    out = probabilities_to_uint8(probs)
    assert out.dtype == np.uint8 and out.ravel().tolist() == [0, 1, 128, 254, 255]


def test_auto_settings_fit_the_memory_budget():
    model = tiny_net(base_channels=16, depth=4)
    config = InferConfig(memory_limit_mb=64)
    tile, batch = inference.auto_settings(model.config, config, torch.device("cpu"))
    assert inference.tile_bytes((tile, tile), model.config, batch) <= 64 * 2**20
    big_tile, _ = inference.auto_settings(model.config, InferConfig(memory_limit_mb=4096), torch.device("cpu"))
    assert big_tile > tile
    assert inference.available_memory(torch.device("cpu")) > 0


def test_exact_context_matches_the_paper_margin():
    # Same-mode reach of the paper's depth-5 network: its valid-mode margin (92) plus pool-grid rounding.
    assert 92 <= exact_context(UNet(depth=5, base_channels=1).config) <= 96
    assert exact_context(UNet(padding="valid", base_channels=1).config) == 0


def test_tiff_memmap_is_atomic(tmp_path):
    target = tmp_path / "out.tif"
    with pytest.raises(KeyError):
        with tiff_memmap(target, (2, 8, 9), np.uint8, "ZYX") as data:
            data[0] = 1
            raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []
    with tiff_memmap(target, (2, 8, 9), np.uint8, "ZYX", pixel_size=(0.5, 0.5), unit="um") as data:
        data[1] = 7
    read = tifffile.imread(target)
    assert read.shape == (2, 8, 9) and read[1].min() == 7 and read[0].max() == 0
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_cosine_windows_sum_to_one_across_overlaps():
    plan = inference.AxisPlan(length=300, tile=120, kept=100, stride=80, count=4, pad_before=10, pad_after=10, crop=10)
    total = np.zeros(plan.stride * (plan.count - 1) + plan.kept)
    for index in range(plan.count):
        w = inference.blend_window(plan, index, "cosine")
        assert w.min() > 0 and w.max() == pytest.approx(1.0)
        total[index * plan.stride : index * plan.stride + plan.kept] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)  # a partition of unity: the blend is a weighted mean
    assert inference.blend_window(plan, 0, "cosine")[0] == 1.0  # no ramp towards the image border


def test_default_overlap_only_where_tiles_can_differ():
    exact = tiny_net().config
    group = tiny_net(norm="group", base_channels=8).config
    assert inference.tiles_are_exact(exact) and not inference.tiles_are_exact(group)
    assert not inference.tiles_are_exact(exact, InferConfig(context=4))
    shape = (300, 300)
    assert plan_tiles(shape, exact, InferConfig(tile_size=96)).y.kept - plan_tiles(shape, exact, InferConfig(tile_size=96)).y.stride < 4
    group_plan = plan_tiles(shape, group, InferConfig(tile_size=96)).y
    assert group_plan.kept - group_plan.stride >= 0.125 * group_plan.kept - 4


def test_normalizer_from_model_info():
    raw = np.arange(1000, dtype=np.uint16).reshape(1, 25, 40)
    scaled = inference.make_normalizer({"method": "percentile", "low": 0.0, "high": 100.0})(raw)
    assert scaled.dtype == np.float32 and scaled.min() == 0.0 and scaled.max() == pytest.approx(1.0)
    assert inference.make_normalizer({"method": "none"})(raw).max() == 999.0
    with pytest.raises(ConfigError, match="unknown normalisation"):
        inference.make_normalizer({"method": "zscore-magic"})



@pytest.mark.parametrize("padding", ["same", "valid"])
def test_test_time_augmentation_maps_each_view_back(padding):
    """With a per-pixel "network", every view mapped back lands on the pixels it came from: TTA == plain."""
    views = []
    net = tiny_net(padding=padding)

    def pointwise(x):  # softmax of (x, 2x, -x): a function of each pixel's own value only
        views.append(x.clone())
        logits = torch.cat([x, 2 * x, -x], dim=1)
        if padding == "valid":
            margin = context_margin(net.config.depth, "valid")
            logits = logits[..., margin:-margin, margin:-margin]
        return torch.softmax(logits, dim=1)

    net = tiny_net(padding=padding)
    image = np.random.default_rng(5).normal(size=(1, 61, 47)).astype(np.float32)
    config = InferConfig(tile_size=64 if padding == "same" else 92)
    plain = predict_probabilities(net, image, config, pointwise)
    n_plain = len(views)
    views.clear()
    got = predict_probabilities(net, image, config.replace(tta=True), pointwise)
    assert len(views) == 8 * n_plain
    first = views[0][0, 0].numpy()
    seen = {tuple(np.round(v[0, 0].numpy(), 5).ravel()[:50]) for v in views[:8]}
    assert len(seen) == 8  # eight different views of the same tile
    assert all(sorted(v[0, 0].shape) == sorted(first.shape) for v in views[:8])
    np.testing.assert_allclose(got, plain, atol=1e-6)


def test_test_time_augmentation_with_a_real_network():
    net = tiny_net(3)
    image = np.random.default_rng(5).normal(size=(1, 61, 47)).astype(np.float32)
    plain = predict_probabilities(net, image, InferConfig(tile_size=64))
    got = predict_probabilities(net, image, InferConfig(tile_size=64, tta=True))
    assert got.shape == plain.shape == (3, 61, 47)
    np.testing.assert_allclose(got.sum(0), 1.0, atol=1e-5)
    assert np.abs(got - plain).max() > 1e-3  # an untrained net is far from symmetric: the average differs


def test_networks_that_need_wide_context_get_tiles_that_are_mostly_output(monkeypatch):
    from unet_studio.core.predict import tiling as tiling
    from unet_studio.core.presets import preset_configs

    monkeypatch.setattr(tiling, "available_memory", lambda device: 16 * 2**30)
    classic, _ = preset_configs("classic")
    tile, _ = inference.auto_settings(classic, InferConfig(), torch.device("cpu"))
    layout = plan_tiles((2048, 2048), classic, InferConfig(), tile)
    assert tile >= 512 and layout.y.kept >= 0.6 * layout.y.tile  # at 256 px only 68 of 256 px were kept
    assert inference.tile_bytes((tile, tile), classic) <= 2 * 2**30
    fast, _ = preset_configs("fast")
    fast_tile, _ = inference.auto_settings(fast, InferConfig(), torch.device("cpu"))
    assert fast_tile == 512 and inference.tile_bytes((fast_tile, fast_tile), fast) <= 2**30


@pytest.mark.parametrize("blend", ["cosine", "gaussian", "uniform"])
def test_blending_with_torch_on_the_device_equals_blending_on_the_host(blend, odd_image):
    """The accelerator path (padded slice, map and weights as torch tensors) gives the host path's map."""
    from unet_studio.core.predict.blend import TileBlender

    model = tiny_net()
    config = InferConfig(tile_size=96, overlap=0.25, blend=blend)
    layout = plan_tiles(odd_image.shape[1:], model.config, config)
    assert layout.n_tiles > 4
    tiles = [(i, j) for i in range(layout.y.count) for j in range(layout.x.count)]
    results = []
    for on_device in (False, True):
        blender = TileBlender(odd_image, layout, 3, blend, torch.device("cpu"), on_device=on_device)
        assert blender.on_device is on_device
        for start in range(0, len(tiles), 3):  # uneven batches, as after an out-of-memory halving
            chunk = tiles[start : start + 3]
            batch = blender.tiles(chunk)
            assert isinstance(batch, torch.Tensor) and batch.shape[1:] == (1, *layout.tile_shape)
            with torch.inference_mode():
                blender.add(chunk, torch.softmax(model(batch), 1))
        results.append(blender.result())
    host, device = results
    assert isinstance(device, np.ndarray) and device.dtype == np.float32 and device.shape == (3, 171, 133)
    np.testing.assert_allclose(device, host, atol=1e-6)
    np.testing.assert_allclose(host, predict_probabilities(model, odd_image, config), atol=1e-5)
