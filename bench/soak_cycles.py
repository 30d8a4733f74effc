"""What one cycle of the soak benchmark does (see ``bench/soak.py``), on each side.

- :class:`CoreSession` ("ours"): what a person's session does over and over, through the core API the
  application uses: brush strokes, a flood fill, undo and redo on the images' label volumes; training
  the fast preset's network for a few seconds (``core.training.train``, with previews of the visible
  slice, validation, label edits pushed into the running training), stopped as the Stop button does
  (closing the generator; every fourth cycle ends at its own time limit instead), every other cycle
  continuing from the saved model; loading the model folder back; overlap-tile prediction of several
  images read from TIFF files (one prediction cancelled and started again every third cycle); the
  overlay form, "accept prediction" into the labels; instances, measurements and the export files
  (labels, probabilities, instances, CSV) written atomically; the labels autosaved. The cycle's label
  edits are undone at its end, so that the labels (and what is trained on) stay the same from cycle to
  cycle and the undo history stays at the size of one cycle's edits.
- :class:`PlainSession` ("plain PyTorch loop"): the same network trained for the same time with a bare
  loop (random crops, ``Adam``, ``F.cross_entropy``, a whole-image preview now and then), ``torch.save``
  and ``torch.load(weights_only=True)``, a plain whole-image forward pass of the same images, argmax,
  ``skimage.measure.label`` + ``regionprops_table``, ``tifffile.imwrite`` and a CSV.
- :class:`GuiSession` (``--gui``, ours only): the real main window, offscreen: strokes through the
  session, Train and Stop through the training controller (worker thread, previews in the overlay),
  Predict all and Export through the prediction controller.

Each ``cycle(i)`` returns a small dict of what it did (steps, previews, objects, ...) and raises on a
failure; ``check`` functions raise :class:`SoakCheckError` when an output is missing or wrong.
"""

from __future__ import annotations

import csv
import functools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

#: ISBI 2012 slices: trained on (scribbles), predicted (files read each cycle).
TRAIN_SLICES = (0, 1, 2, 3)
PREDICT_SLICES = (15, 16, 17)


class SoakCheckError(AssertionError):
    """An output of a cycle is missing or wrong (counted as a failure like any exception)."""


@dataclass
class SoakSettings:
    """What one cycle does; the same for both sides (see ``bench/soak.py`` for the defaults)."""

    train_seconds: float = 8.0
    train_slices: tuple[int, ...] = TRAIN_SLICES
    predict_slices: tuple[int, ...] = PREDICT_SLICES
    mosaic: int = 1024             # side of an extra image (ISBI slice 018 mirrored out), 0: none
    preview_every: int = 5
    eval_every: int = 10
    strokes: int = 6
    threads: int | None = None
    tiny: bool = False             # a tiny network and small patches (tests)
    model_overrides: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SoakSettings":
        data = dict(data)
        for key in ("train_slices", "predict_slices"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def configs(self):
        """(ModelConfig, TrainConfig): the fast preset, or a tiny network for tests."""
        from unet_studio.core.presets import preset_configs

        model_config, train_config = preset_configs("fast", 1, 2)
        if self.tiny:
            model_config = model_config.replace(base_channels=4, depth=2)
            train_config = train_config.replace(patch_size=64, batch_size=2)
        if self.model_overrides:
            model_config = model_config.replace(**self.model_overrides)
        return model_config, train_config


# ----------------------------------------------------------------------------------------------- data


def isbi_root() -> Path:
    from bench import data_dir

    root = data_dir() / "isbi2012"
    if not (root / "images").is_dir():
        raise FileNotFoundError(f"ISBI 2012 data not found at {root} (set UNET_STUDIO_DATA)")
    return root


def scribbles(index: int) -> np.ndarray:
    """(Y, X) uint8 sparse labels of ISBI slice ``index``: 1 = membrane, 2 = cell interior, 0 = none (a new copy)."""
    return _scribbles(index).copy()


@functools.lru_cache(maxsize=None)
def _scribbles(index: int) -> np.ndarray:
    import tifffile

    from bench.scribbles import UNLABELLED, scribble_labels

    truth = tifffile.imread(isbi_root() / "labels" / f"{index:03d}.tif")
    sparse = scribble_labels(truth, fraction=0.04, seed=index)
    return np.where(sparse == UNLABELLED, 0, np.where(sparse == 0, 1, 2)).astype(np.uint8)


def input_files(settings: SoakSettings, workdir: Path) -> list[Path]:
    """The images predicted each cycle: ISBI slices (in place, read-only) and the mosaic (written once)."""
    import tifffile

    root = isbi_root()
    files = [root / "images" / f"{i:03d}.tif" for i in settings.predict_slices]
    if settings.mosaic:
        tile = tifffile.imread(root / "images" / "018.tif")
        block = np.concatenate([tile, tile[::-1]], 0)
        block = np.concatenate([block, block[:, ::-1]], 1)
        reps = -(-settings.mosaic // block.shape[0])
        mosaic = np.ascontiguousarray(np.tile(block, (reps, reps))[: settings.mosaic, : settings.mosaic])
        path = workdir / "inputs" / f"mosaic{settings.mosaic}.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, mosaic, compression="zlib")
        files.append(path)
    return files


def stroke_path(rng: np.random.Generator, shape: tuple[int, int], points: int = 12) -> list[tuple[float, float]]:
    """A wandering brush path of ``points`` positions inside an image of ``shape``."""
    height, width = shape
    y, x = rng.uniform(20, height - 20), rng.uniform(20, width - 20)
    path = [(y, x)]
    for _ in range(points - 1):
        y = float(np.clip(y + rng.normal(0, 12), 0, height - 1))
        x = float(np.clip(x + rng.normal(0, 12), 0, width - 1))
        path.append((y, x))
    return path


def check_folder_clean(folder: Path) -> None:
    """No temporary file of an atomic write is left behind."""
    leftovers = [p.name for p in folder.rglob(".*.tmp*")]
    if leftovers:
        raise SoakCheckError(f"temporary files left in {folder}: {leftovers[:5]}")


def check_model_folder(folder: Path) -> None:
    weights = sorted(p.name for p in folder.glob("weights-*.safetensors"))
    if len(weights) != 1 or not (folder / "model.json").is_file():
        raise SoakCheckError(f"model folder {folder}: expected model.json and one weights file, got {weights}")
    check_folder_clean(folder)


def check_probabilities(probs: np.ndarray, shape: tuple[int, int]) -> None:
    if probs.shape[1:] != shape or not np.isfinite(probs).all():
        raise SoakCheckError(f"probabilities of shape {probs.shape} for an image of {shape}, or not finite")
    total = probs.sum(0)
    if abs(float(total.min()) - 1) > 1e-3 or abs(float(total.max()) - 1) > 1e-3:
        raise SoakCheckError(f"probabilities do not sum to 1 ({total.min():.4f}..{total.max():.4f})")


# ----------------------------------------------------------------------------------------------- ours


class CoreSession:
    """Our side: the application's session, driven through the core API (see the module docstring)."""

    name = "ours"

    def __init__(self, settings: SoakSettings, workdir: Path) -> None:
        from unet_studio.core.io import stack as io
        from unet_studio.core.labels import LabelVolume

        self.settings = settings
        self.workdir = Path(workdir)
        self.model_dir = self.workdir / "project" / "models" / "current"
        self.export_dir = self.workdir / "export"
        self.labels_dir = self.workdir / "project" / "labels"
        self.export_dir.mkdir(parents=True, exist_ok=True)
        self.labels_dir.mkdir(parents=True, exist_ok=True)
        root = isbi_root()
        # The project's images: the training slices (with scribbles) and the ones to predict.
        self.train_files = [root / "images" / f"{i:03d}.tif" for i in settings.train_slices]
        self.predict_files = input_files(settings, self.workdir)
        self.volumes: dict[str, LabelVolume] = {}
        for index, path in zip(settings.train_slices, self.train_files):
            self.volumes[path.stem] = LabelVolume(data=scribbles(index))
        for path in self.predict_files:
            with io.read_image(path) as stack:
                self.volumes[path.stem] = LabelVolume(shape=(len(stack), *stack.shape[-2:]))
        self.overlays: dict[str, np.ndarray] = {}   # the session's probability overlays (uint8)
        self.rng = np.random.default_rng(0)

    # -- the cycle ----------------------------------------------------------------------------------

    def cycle(self, index: int) -> dict:
        settings = self.settings
        edits = self._paint(index)
        train = self._train(index)
        predict = self._predict_and_export(index)
        edits += self._accept_prediction()
        self._autosave()
        undone = self._undo_cycle(edits)
        history = sum(v.history_bytes for v in self.volumes.values())
        return {**train, **predict, "edits": len(edits), "undone": undone, "undo_history_kb": history / 1024,
                "train_seconds": settings.train_seconds}

    def _paint(self, index: int) -> list[str]:
        """Strokes and a fill on a training image, a few undos and redos; returns the edited images
        (one entry per undo item left)."""
        rng = self.rng
        name = self.train_files[index % len(self.train_files)].stem
        volume = self.volumes[name]
        edited = []
        for _ in range(self.settings.strokes):
            before = volume.version
            volume.begin_stroke(0)
            path = stroke_path(rng, volume.shape[1:])
            value = int(rng.integers(0, 3))  # 0 erases
            for a, b in zip(path[:-1], path[1:]):
                volume.paint_line(0, a, b, float(rng.uniform(1.5, 6)), value)
            volume.end_stroke()
            if volume.version != before:  # a stroke that changed nothing leaves no undo item
                edited.append(name)
        for _ in range(2):
            if edited and volume.undo() is not None:
                edited.pop()
        if volume.can_redo and volume.redo() is not None:
            edited.append(name)
        # A flood fill on an image nobody trains on (its labels are empty: the fill covers it all).
        other = self.volumes[self.predict_files[index % len(self.predict_files)].stem]
        if other.fill(0, 10, 10, 1) is not None:
            edited.append(self.predict_files[index % len(self.predict_files)].stem)
        return edited

    def _dataset(self):
        from unet_studio.core.io import stack as io
        from unet_studio.core.train.data import TrainingSet

        images, labels = [], []
        for path in self.train_files:  # as the training controller does: its own copy of each file
            with io.read_image(path) as stack:
                images.append(io.normalize_percentile(stack.get_slice(0)))
            labels.append(self.volumes[path.stem].data[0].copy())
        return TrainingSet(images, labels, 2), images

    def _train(self, index: int) -> dict:
        from unet_studio.core.predict.tiled import probabilities_to_uint8
        from unet_studio.core.train.loop import train

        settings = self.settings
        dataset, images = self._dataset()
        dataset.set_preview_image(images[index % len(images)])
        model_config, train_config = settings.configs()
        ends_itself = index % 4 == 3
        changes = {"seed": index, "preview_every": settings.preview_every, "eval_every": settings.eval_every,
                   "time_limit_s": settings.train_seconds if ends_itself else settings.train_seconds * 10,
                   "num_threads": settings.threads}
        train_config = train_config.replace(**changes)
        resume = index % 2 == 1 and (self.model_dir / "model.json").is_file()
        run = train(dataset, model_config, train_config, out_dir=self.model_dir,
                    init_from=self.model_dir if resume else None, class_values=[1, 2],
                    class_names=["membrane", "interior"])
        start = time.perf_counter()
        steps = previews = evaluations = 0
        pushed = False
        last = None
        try:
            for progress in run:
                last = progress
                steps = progress.step
                if progress.preview is not None:
                    previews += 1
                    # The session shows the preview as the overlay of the visible slice (uint8 form).
                    self.overlays["preview"] = probabilities_to_uint8(progress.preview)
                evaluations += progress.val is not None
                elapsed = time.perf_counter() - start
                if not pushed and elapsed > settings.train_seconds / 2:
                    # A stroke painted while training runs reaches the training set (the controller's push).
                    name = self.train_files[0].stem
                    volume = self.volumes[name]
                    if volume.paint_disk(0, 100 + index % 300, 100, 4, 2) is not None:
                        dataset.update_labels(0, volume.data[0].copy())
                        volume.undo()
                    pushed = True
                if progress.done or (not ends_itself and elapsed >= settings.train_seconds):
                    break
        finally:
            run.close()  # the Stop button: the generator saves the best model so far as it closes
        if last is None or steps == 0:
            raise SoakCheckError("training yielded nothing")
        check_model_folder(self.model_dir)
        return {"steps": steps, "previews": previews, "evaluations": evaluations, "resumed": resume,
                "stop": (last.stop_reason if last.done else "stopped")}

    def _predict_and_export(self, index: int) -> dict:
        import tifffile

        from unet_studio.core.io import stack as io
        from unet_studio.core.predict import postprocess as post
        from unet_studio.core.model.checkpoint import load_model
        from unet_studio.core.config import InferConfig
        from unet_studio.core.device import select_device
        from unet_studio.core.predict.tiled import iter_predict, make_normalizer, probabilities_to_uint8

        model, info = load_model(self.model_dir, select_device("auto"))  # as the prediction controller does
        normalize = make_normalizer(info.normalization)
        objects = cancelled = tiles = 0
        for n, path in enumerate(self.predict_files):
            with io.read_image(path) as stack:
                raw = stack.get_slice(0)
                size = (stack.pixel_size, stack.unit or None)
            image = normalize(raw)
            if index % 3 == 2 and n == len(self.predict_files) - 1:
                run = iter_predict(model, image, InferConfig())
                next(run)
                run.close()  # Cancel, then predict again
                cancelled += 1
            probs = None
            for item in iter_predict(model, image, InferConfig()):
                tiles = max(tiles, item.tiles_total)
                if item.result is not None:
                    probs = item.result
            check_probabilities(probs, image.shape[1:])
            self.overlays[path.stem] = probabilities_to_uint8(probs)
            labels = post.probabilities_to_labels(probs, info.class_values)
            instances = post.find_instances(labels == info.class_values[-1], probs[-1])
            table = post.measure(instances, raw, *size)
            objects += int(instances.max())
            stem = self.export_dir / path.stem
            io.write_labels(f"{stem}_labels.tif", labels, *size)
            io.write_probabilities(f"{stem}_probabilities.tif", probs, *size, class_names=info.class_names)
            io.write_labels(f"{stem}_instances.tif", instances, *size)
            post.write_measurements_csv(f"{stem}_measurements.csv", [({}, table)])
            if tifffile.imread(f"{stem}_labels.tif").shape != labels.shape:
                raise SoakCheckError(f"{stem}_labels.tif does not read back")
        check_folder_clean(self.export_dir)
        del model
        return {"images_predicted": len(self.predict_files), "objects": objects, "cancelled": cancelled,
                "max_tiles": tiles}

    def _accept_prediction(self) -> list[str]:
        """"Accept prediction" on the first predicted image: its overlay becomes its labels."""
        name = self.predict_files[0].stem
        overlay = self.overlays[name]
        values = (np.argmax(overlay, 0) + 1).astype(np.uint8)
        volume = self.volumes[name]
        before = volume.version
        volume.set_region(0, (0, values.shape[0], 0, values.shape[1]), values)
        return [name] if volume.version != before else []

    def _autosave(self) -> None:
        from unet_studio.core.project.folder import save_labels

        for name, volume in self.volumes.items():
            save_labels(self.labels_dir / f"{name}.tif", volume.data)
        check_folder_clean(self.labels_dir)

    def _undo_cycle(self, edited: list[str]) -> int:
        """Undo this cycle's edits (newest first): the labels return to where the cycle started."""
        undone = 0
        for name in reversed(edited):
            if self.volumes[name].undo() is not None:
                undone += 1
        if undone != len(edited):
            raise SoakCheckError(f"undid {undone} of {len(edited)} edits")
        return undone

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------------------------- peer


class PlainSession:
    """The peer: the same cycle with a bare PyTorch loop and plain library calls."""

    name = "plain"

    def __init__(self, settings: SoakSettings, workdir: Path) -> None:
        import tifffile
        import torch

        self.settings = settings
        self.workdir = Path(workdir)
        (self.workdir / "export").mkdir(parents=True, exist_ok=True)
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        root = isbi_root()
        self.images = [self._normalize(tifffile.imread(root / "images" / f"{i:03d}.tif"))
                       for i in settings.train_slices]
        # class k+1 -> target k, unlabelled -> -1 (ignored by the loss)
        self.targets = [scribbles(i).astype(np.int64) - 1 for i in settings.train_slices]
        self.predict_files = input_files(settings, self.workdir)
        self.weights_path = self.workdir / "model.pt"
        self.overlays: dict[str, np.ndarray] = {}
        self.rng = np.random.default_rng(0)

    @staticmethod
    def _normalize(image: np.ndarray) -> np.ndarray:
        image = image.astype(np.float32)
        low, high = np.percentile(image, (1.0, 99.8))
        return ((image - low) / max(high - low, 1e-6))[None].astype(np.float32)

    def _model(self):
        from unet_studio.core.model.unet import UNet

        model_config, _ = self.settings.configs()
        return UNet.from_config(model_config).to(self.device)

    def _forward_whole(self, model, image: np.ndarray):
        import torch
        from torch.nn import functional as F

        multiple = 2 ** (model.config.depth - 1)
        height, width = image.shape[-2:]
        pad_y, pad_x = (-height) % multiple, (-width) % multiple
        x = torch.from_numpy(image)[None].to(self.device)
        if pad_y or pad_x:
            x = F.pad(x, (0, pad_x, 0, pad_y), mode="reflect")
        with torch.no_grad():
            return torch.softmax(model(x)[0, :, :height, :width], 0).cpu().numpy()

    def cycle(self, index: int) -> dict:
        import torch
        from torch.nn import functional as F

        settings = self.settings
        model_config, train_config = settings.configs()
        patch, batch = train_config.patch_size, train_config.batch_size
        model = self._model()
        resume = index % 2 == 1 and self.weights_path.is_file()
        if resume:
            model.load_state_dict(torch.load(self.weights_path, weights_only=True))
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        rng = self.rng
        steps = previews = 0
        start = time.perf_counter()
        while time.perf_counter() - start < settings.train_seconds or steps == 0:
            xs, ys = [], []
            for _ in range(batch):
                i = int(rng.integers(len(self.images)))
                top = int(rng.integers(self.images[i].shape[1] - patch + 1))
                left = int(rng.integers(self.images[i].shape[2] - patch + 1))
                xs.append(self.images[i][:, top : top + patch, left : left + patch])
                ys.append(self.targets[i][top : top + patch, left : left + patch])
            x = torch.from_numpy(np.stack(xs)).to(self.device)
            y = torch.from_numpy(np.stack(ys)).to(self.device)
            loss = F.cross_entropy(model(x), y, ignore_index=-1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            loss.item()  # what a plain loop prints or logs (and the sync it costs)
            if steps % settings.preview_every == 0:
                model.eval()
                self.overlays["preview"] = self._forward_whole(model, self.images[index % len(self.images)])
                model.train()
                previews += 1
        torch.save(model.state_dict(), self.weights_path)
        del model, optimizer
        model = self._model()
        model.load_state_dict(torch.load(self.weights_path, weights_only=True))
        model.eval()
        objects = self._predict(model)
        return {"steps": steps, "previews": previews, "resumed": resume, "images_predicted": len(self.predict_files),
                "objects": objects, "train_seconds": settings.train_seconds}

    def _predict(self, model) -> int:
        import tifffile
        from skimage.measure import label, regionprops_table
        from skimage.morphology import remove_small_objects

        objects = 0
        for path in self.predict_files:
            raw = tifffile.imread(path)
            probs = self._forward_whole(model, self._normalize(raw))
            check_probabilities(probs, raw.shape)
            self.overlays[path.stem] = probs
            labels = (np.argmax(probs, 0) + 1).astype(np.uint8)
            try:  # objects under 10 pixels go, as in ours (scikit-image >= 0.26 names the bound max_size)
                foreground = remove_small_objects(labels == 2, max_size=9)
            except TypeError:
                foreground = remove_small_objects(labels == 2, min_size=10)
            instances = label(foreground, connectivity=1)
            table = regionprops_table(instances, intensity_image=raw,
                                      properties=("label", "area", "centroid", "bbox", "intensity_mean"))
            objects += int(instances.max())
            stem = self.workdir / "export" / path.stem
            tifffile.imwrite(f"{stem}_labels.tif", labels)
            tifffile.imwrite(f"{stem}_probabilities.tif", probs.astype(np.float32))
            tifffile.imwrite(f"{stem}_instances.tif", instances.astype(np.uint16))
            with open(f"{stem}_measurements.csv", "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(list(table))
                writer.writerows(zip(*table.values()))
        return objects

    def close(self) -> None:
        pass
