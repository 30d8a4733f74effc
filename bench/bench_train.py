"""Training throughput: our training loop against a plain PyTorch loop, side by side in one process.

The peer ("plain PyTorch loop") is written the way most public U-Net repositories write it: float32,
NCHW, PyTorch's default thread settings, a ``Dataset`` whose ``__getitem__`` crops and augments one
sample at a time with numpy/scipy in the main process (``DataLoader(num_workers=0)``), ``Adam``,
``F.cross_entropy`` with class weights, ``loss.item()`` every step. Its augmentation matches ours in
kind: flips and 90-degree rotations, a small rotation and scaling, the paper's elastic deformation (a
random 3x3 grid of displacements, standard deviation 10 px, upsampled with a cubic spline and applied
with ``scipy.ndimage.map_coordinates``: order 3 for the image as in the ``elasticdeform`` package and
scipy's default, order 0 for the labels), and brightness/contrast/gamma/noise. To be generous to the
peer, the rotation, scaling and elastic warp are folded into one ``map_coordinates`` call (many
repositories call ``ndimage.rotate`` and then warp again).

Both loops train the ``fast`` preset's network on 128x128 patches in batches of 8 (the preset's) from
ISBI 2012 slices 000-014 (dense labels), on the CPU (or the GPU when there is one). They alternate step
by step (A B B A ...) for a fixed time after a warm-up, each generator paused while the other runs, so
that a machine shared with other work slows both alike; samples/s is the batch over the median step
time (robust to bursts of load), and the mean-based figure is reported beside it.

Also measured: the FLOPs of one training step (``torch.utils.flop_counter.FlopCounterMode``), the
FLOP/s each loop reaches, the FLOP/s of the network's own step on fixed tensors (no data pipeline),
and the machine's float32 matmul peak (best of a few 2048x2048 products), plus what-if timings of the
network's step in channels-last and in bfloat16 autocast, alternated step by step with the float32 NCHW
step (evidence for where the next speed-up is).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from bench import BenchResult, Row, data_dir, ratio

log = logging.getLogger(__name__)

PATCH = 128
BATCH = 8


# ----------------------------------------------------------------------------------------------- data


def load_isbi(indices=range(15)) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Normalised (1, Y, X) float32 images and (Y, X) int64 labels (1 = membrane (0), 2 = interior (255))."""
    import tifffile

    from unet_studio.core.io.stack import normalize_percentile

    root = data_dir() / "isbi2012"
    if not root.is_dir():
        raise FileNotFoundError(f"ISBI 2012 data not found at {root} (set UNET_STUDIO_DATA)")
    images, labels = [], []
    for i in indices:
        image = tifffile.imread(root / "images" / f"{i:03d}.tif")
        label = tifffile.imread(root / "labels" / f"{i:03d}.tif")
        images.append(normalize_percentile(image[None].astype(np.float32)))
        labels.append(np.where(label > 127, 2, 1).astype(np.int64))
    return images, labels


# ----------------------------------------------------------------------------------------------- the peer


def plain_augment(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, sigma: float = 10.0,
                  grid: int = 3, rotate_deg: float = 15.0, scale=(0.85, 1.2)) -> tuple[np.ndarray, np.ndarray]:
    """One sample's augmentation, numpy/scipy style: (Y, X) float32 image and int labels of the same size."""
    from scipy import ndimage

    k = int(rng.integers(4))
    image, label = np.rot90(image, k), np.rot90(label, k)
    if rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    size = image.shape[0]
    # Coarse displacements, upsampled with a cubic spline (elasticdeform's way).
    coarse = rng.normal(0.0, sigma, size=(2, grid, grid))
    displacement = np.stack([ndimage.zoom(c, size / grid, order=3, mode="nearest")[:size, :size] for c in coarse])
    angle = math.radians(rng.uniform(-rotate_deg, rotate_deg))
    zoom = math.exp(rng.uniform(math.log(scale[0]), math.log(scale[1])))
    centre = (size - 1) / 2.0
    yy, xx = np.meshgrid(np.arange(size, dtype=np.float64) - centre, np.arange(size, dtype=np.float64) - centre,
                         indexing="ij")
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    coords = np.stack([cos * yy - sin * xx + centre + displacement[0],
                       sin * yy + cos * xx + centre + displacement[1]])
    image = ndimage.map_coordinates(image, coords, order=3, mode="reflect").astype(np.float32)
    label = ndimage.map_coordinates(label, coords, order=0, mode="reflect")
    if rng.random() < 0.8:
        lo, hi = image.min(), image.max()
        span = max(hi - lo, 1e-6)
        gamma = math.exp(rng.uniform(math.log(0.7), math.log(1.5)))
        image = np.clip((image - lo) / span, 0, 1) ** gamma * span + lo
        mean = image.mean()
        image = (image - mean) * math.exp(rng.uniform(math.log(0.75), math.log(1.33))) + mean
        image = image + rng.uniform(-0.1, 0.1) + rng.normal(0, rng.uniform(0, 0.03), image.shape)
    return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(label)


def make_plain_dataset(images, labels, patch: int, seed: int = 0):
    """A typical ``torch.utils.data.Dataset``: random crop + numpy/scipy augmentation in ``__getitem__``."""
    import torch
    from torch.utils.data import Dataset

    class PlainPatchDataset(Dataset):
        def __init__(self) -> None:
            self.images = [im[0] for im in images]
            self.labels = [lab - 1 for lab in labels]  # classes 0..K-1
            self.rng = np.random.default_rng(seed)

        def __len__(self) -> int:
            return 100_000

        def __getitem__(self, index: int):
            rng = self.rng
            i = int(rng.integers(len(self.images)))
            image, label = self.images[i], self.labels[i]
            top = int(rng.integers(image.shape[0] - patch + 1))
            left = int(rng.integers(image.shape[1] - patch + 1))
            crop = image[top : top + patch, left : left + patch]
            crop_labels = label[top : top + patch, left : left + patch]
            crop, crop_labels = plain_augment(crop, crop_labels, rng)
            return torch.from_numpy(crop[None]), torch.from_numpy(crop_labels.astype(np.int64))

    return PlainPatchDataset()


def plain_loop(images, labels, model_config, patch: int = PATCH, batch: int = BATCH, seed: int = 0, lr: float = 1e-3):
    """Generator: one plain training step per ``next()``; yields the loss (``loss.item()``)."""
    import torch
    from torch.nn import functional as F
    from torch.utils.data import DataLoader

    from unet_studio.core.model.unet import UNet

    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dataset = make_plain_dataset(images, labels, patch, seed)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0)
    model = UNet.from_config(model_config).to(device)
    model.train()
    counts = np.bincount(np.concatenate([lab.ravel() - 1 for lab in labels]), minlength=model_config.n_classes)
    weights = torch.tensor(counts.sum() / np.maximum(counts, 1) / model_config.n_classes, dtype=torch.float32,
                           device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    while True:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y, weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            yield loss.item()


# ----------------------------------------------------------------------------------------------- ours


def our_loop(images, labels, model_config, train_config):
    """Our ``core.training.train`` generator with validation, previews and saving out of the way."""
    from unet_studio.core.train.data import TrainingSet
    from unet_studio.core.train.loop import train

    config = train_config.replace(epochs=1000, steps_per_epoch=1000, eval_every=10**9, val_fraction=0.0,
                                  preview_every=0, time_limit_s=None, patience=10**6)
    dataset = TrainingSet(images, labels, model_config.n_classes)
    return train(dataset, model_config, config, out_dir=None)


class _StepCounter:
    """Seconds per training step from a generator that may yield once every several steps.

    Our training generator yields every step on the CPU but every 10 steps on a GPU (each yield needs the
    loss on the host, a synchronisation); its progress objects carry the step count, the plain loop
    yields once per step.
    """

    def __init__(self, generator) -> None:
        self.generator, self.last = generator, None

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.generator)

    def timed_step(self) -> float:
        start = time.perf_counter()
        item = next(self.generator)
        elapsed = time.perf_counter() - start
        step = getattr(item, "step", None)
        if step is None:
            return elapsed
        advanced = step - self.last if self.last is not None else 1
        self.last = step
        return elapsed / max(advanced, 1)


# ----------------------------------------------------------------------------------------------- FLOPs


def step_flops(model_config, batch: int, patch: int) -> int:
    """FLOPs of one forward + backward pass of the network (FlopCounterMode; convolutions and matmuls)."""
    import torch
    from torch.nn import functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from unet_studio.core.model.unet import UNet

    model = UNet.from_config(model_config)
    x = torch.randn(batch, model_config.in_channels, patch, patch)
    y = torch.randint(0, model_config.n_classes, (batch, patch, patch))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return int(counter.get_total_flops())


def matmul_peak(size: int = 2048, repeats: int = 5, dtype=None) -> float:
    """Best FLOP/s of ``size`` x ``size`` matrix products on the training device."""
    import torch

    dtype = dtype or torch.float32
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def model_step_seconds(model_config, batch: int, patch: int, steps: int, variants=None) -> dict[str, float]:
    """Median seconds of forward + loss + backward + AdamW step on fixed tensors (no data pipeline), per
    variant ``name -> (channels_last, autocast dtype or None)``; the variants alternate step by step so
    that a shared machine's load hits them alike."""
    import torch
    from torch.nn import functional as F

    from unet_studio.core.model.unet import UNet

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    variants = variants or {"fp32": (False, None)}
    setups = {}
    for name, (channels_last, dtype) in variants.items():
        torch.manual_seed(0)
        model = UNet.from_config(model_config).to(device)
        x = torch.randn(batch, model_config.in_channels, patch, patch, device=device)
        y = torch.randint(0, model_config.n_classes, (batch, patch, patch), device=device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        setups[name] = (model, x, y, torch.optim.AdamW(model.parameters(), lr=1e-3), dtype)
    times: dict[str, list[float]] = {name: [] for name in setups}
    for i in range(steps + 2):
        order = list(setups) if i % 2 == 0 else list(setups)[::-1]
        for name in order:
            model, x, y, optimizer, dtype = setups[name]
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def data_seconds_per_batch(images, labels, train_config, model_config, batches: int) -> tuple[float, float]:
    """(ours, plain) median seconds to produce one augmented batch, without the network."""
    import torch

    from unet_studio.core.train import augment as aug
    from unet_studio.core.train.data import PatchSampler
    from unet_studio.core.train.loop import admissible_patch, augment_params

    patch = admissible_patch(train_config.patch_size, model_config)
    params = augment_params(train_config)
    sampler = PatchSampler(images, labels, None, aug.crop_size(patch, params), train_config.labelled_bias,
                           np.random.default_rng(0), model_config.n_classes)
    generator = torch.Generator().manual_seed(0)
    ours, plain = [], []
    dataset = make_plain_dataset(images, labels, patch)
    for i in range(batches + 1):
        start = time.perf_counter()
        batch = sampler.sample(train_config.batch_size)
        aug.augment_batch(torch.from_numpy(batch.images), torch.from_numpy(batch.labels), None, patch, params,
                          generator)
        t_ours = time.perf_counter() - start
        start = time.perf_counter()
        samples = [dataset[j] for j in range(train_config.batch_size)]
        torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])
        t_plain = time.perf_counter() - start
        if i:
            ours.append(t_ours)
            plain.append(t_plain)
    return float(np.median(ours)), float(np.median(plain))


# ----------------------------------------------------------------------------------------------- benchmark


def run(quick: bool = False) -> BenchResult:
    import torch

    from unet_studio.core.presets import preset_configs

    model_config, train_config = preset_configs("fast", 1, 2)
    assert train_config.patch_size == PATCH and train_config.batch_size == BATCH, "the fast preset changed"
    images, labels = load_isbi()
    default_threads = torch.get_num_threads()
    # Step-by-step alternation (A B B A A B ...) for a fixed time, each generator paused while the other
    # runs, so that both loops see the same load at a fine grain on a shared machine; the headline uses
    # the median step time of each (robust to bursts of load from other processes), the mean is reported.
    warmup, budget_s = (2, 45.0) if quick else (5, 150.0)

    ours_gen = our_loop(images, labels, model_config, train_config)
    plain_gen = plain_loop(images, labels, model_config)
    ours_t, plain_t = [], []
    try:
        ours_steps, plain_steps = _StepCounter(ours_gen), _StepCounter(plain_gen)
        for _ in range(warmup):
            ours_steps.timed_step()
        threads_ours = torch.get_num_threads()
        for _ in range(warmup):
            plain_steps.timed_step()
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < budget_s or min(len(ours_t), len(plain_t)) < 4:
            pair = [(ours_steps, ours_t), (plain_steps, plain_t)]
            for counter, record in (pair if i % 2 == 0 else pair[::-1]):
                record.append(counter.timed_step())
            i += 1
    finally:
        ours_gen.close()
        plain_gen.close()
    ours_sps, plain_sps = BATCH / float(np.median(ours_t)), BATCH / float(np.median(plain_t))
    ours_mean_sps, plain_mean_sps = BATCH * len(ours_t) / sum(ours_t), BATCH * len(plain_t) / sum(plain_t)
    steps = len(ours_t)

    flops = step_flops(model_config, BATCH, PATCH)
    peak = matmul_peak()
    what_if_steps = 4 if quick else 10
    import torch as _torch

    variants = {"fp32": (False, None), "channels_last": (True, None), "bf16_autocast": (False, _torch.bfloat16),
                "channels_last_bf16": (True, _torch.bfloat16)}
    step_times = model_step_seconds(model_config, BATCH, PATCH, what_if_steps, variants)
    model_s = step_times["fp32"]
    data_ours, data_plain = data_seconds_per_batch(images, labels, train_config, model_config, 5 if quick else 15)
    figures = {
        "ours_samples_per_s": ours_sps, "plain_samples_per_s": plain_sps,
        "ours_step_s": ours_t, "plain_step_s": plain_t, "steps_each": steps,
        "ours_mean_samples_per_s": ours_mean_sps, "plain_mean_samples_per_s": plain_mean_sps,
        "speedup_from_means": ratio(ours_mean_sps, plain_mean_sps),
        "batch": BATCH, "patch": PATCH, "model_config": model_config.to_dict(),
        "torch_threads_default": default_threads, "torch_threads_ours": threads_ours,
        "gflop_per_step": flops / 1e9,
        "ours_gflops": flops * ours_sps / BATCH / 1e9, "plain_gflops": flops * plain_sps / BATCH / 1e9,
        "model_only_step_ms": model_s * 1e3, "model_only_gflops": flops / model_s / 1e9,
        "matmul_peak_gflops": peak / 1e9,
        "ours_fraction_of_matmul_peak": flops * ours_sps / BATCH / peak,
        "model_only_fraction_of_matmul_peak": flops / model_s / peak,
        "data_ms_per_batch_ours": data_ours * 1e3, "data_ms_per_batch_plain": data_plain * 1e3,
    }
    for name, seconds in step_times.items():
        if name != "fp32":
            figures[f"what_if_step_ms_{name}"] = seconds * 1e3
    if not torch.cuda.is_available():
        figures["matmul_peak_bf16_gflops"] = matmul_peak(dtype=torch.bfloat16) / 1e9
    speedup = ratio(ours_sps, plain_sps)
    rows = [
        Row("training samples/s", ours_sps, plain_sps, "samples/s"),
        Row("data ms per batch (crop + augment)", data_ours * 1e3, data_plain * 1e3, "ms"),
        Row("GFLOP/s reached", figures["ours_gflops"], figures["plain_gflops"], "GFLOP/s"),
        Row("fraction of fp32 matmul peak", figures["ours_fraction_of_matmul_peak"],
            flops * plain_sps / BATCH / peak, ""),
    ]
    notes = [
        f"fast preset network, batch {BATCH}, {PATCH}x{PATCH} patches, ISBI slices 000-014, device "
        f"{'cuda' if torch.cuda.is_available() else 'cpu'}, torch threads {threads_ours} (default {default_threads})",
        f"{steps} steps each, alternating step by step after {warmup} warm-up steps each; samples/s from the "
        f"median step time (from the means: {ours_mean_sps:.2f} vs {plain_mean_sps:.2f} samples/s, "
        f"{ratio(ours_mean_sps, plain_mean_sps):.2f}x)",
        f"one step = {flops / 1e9:.1f} GFLOP; network alone {model_s * 1e3:.0f} ms/step = "
        f"{figures['model_only_gflops']:.0f} GFLOP/s; fp32 matmul peak {peak / 1e9:.0f} GFLOP/s",
    ]
    for key in ("what_if_step_ms_channels_last", "what_if_step_ms_bf16_autocast", "what_if_step_ms_channels_last_bf16"):
        if key in figures:
            notes.append(f"{key.replace('what_if_step_ms_', 'network step in ')}: {figures[key]:.0f} ms "
                         f"(fp32 NCHW {model_s * 1e3:.0f} ms)")
    return BenchResult(name="train", peer="plain PyTorch loop (numpy/scipy per-sample augmentation)",
                       ratio=speedup, rows=rows,
                       headline={"train_speedup_vs_plain": speedup,
                                 "train_speedup_vs_plain_from_means": ratio(ours_mean_sps, plain_mean_sps),
                                 "train_samples_per_s": ours_sps,
                                 "train_plain_samples_per_s": plain_sps,
                                 "train_gflops": figures["ours_gflops"], "matmul_peak_gflops": peak / 1e9},
                       figures=figures, notes=notes)
