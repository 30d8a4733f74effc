"""The model folder: weights as safetensors plus a self-describing ``model.json``.

Layout of a model folder::

    MODEL_DIR/
      model.json                    what is needed to predict (and the training history)
      weights-<sha256[:16]>.safetensors
      optimizer-<sha256[:16]>.safetensors   optional: the optimizer's moments at the end of training

``model.json`` names the weights file and its SHA-256 (and the optimizer file and its SHA-256, when
there is one: resuming a run restores the moments from it). Saving writes the new files first, then
replaces ``model.json`` atomically, then deletes weights and optimizer files no longer named: the replace of
``model.json`` is the single commit point, so a crash at any moment leaves the previous model or the
new one, never a mix. Loading never unpickles anything: weights go through ``safetensors`` only, and
a file that is not a valid safetensors file (a pickle payload, say) is refused. Every value of
``model.json`` is checked before it is used, and the weights against it before the network is built
(:mod:`.safe_read`); each refusal names the file and the key.

Class convention: output channel ``k`` of the network is class ``k + 1`` of a sparse label image
(0 = unlabelled), and ``class_values[k]`` is the value written for it in predicted label images
(``[1, 2]`` for an application project, ``[0, 255]`` for a model trained on 0/255 masks).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..config import DEFAULT_NORMALIZATION, ModelConfig, real_number, whole_number
from ..errors import ConfigError, ModelFileError
from ..io import write_bytes, write_text
from .safe_read import (
    MAX_DESCRIPTION_BYTES,
    MAX_TENSOR_FILE_BYTES,
    check_finite,
    check_weights_fit,
    network_layout,
    read_regular_file,
    safetensors_shapes,
)
from .unet import UNet

log = logging.getLogger(__name__)

FORMAT_NAME = "unet-studio-model"
FORMAT_VERSION = 1
META_NAME = "model.json"


@dataclass
class ModelInfo:
    """Everything a model folder says about its model, besides the weights."""

    model_config: ModelConfig
    class_values: list[int]
    class_names: list[str]
    normalization: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_NORMALIZATION))
    train_config: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: float | None = None
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    thresholds: list[float] = field(default_factory=list)  # calibrated on validation; [] = plain argmax

    def __post_init__(self) -> None:
        self.class_values = check_class_values(self.class_values)
        self.normalization = check_normalization(self.normalization)
        n = self.model_config.n_classes
        if len(self.class_values) != n or len(self.class_names) != n:
            raise ConfigError(
                f"model has {n} classes but {len(self.class_values)} class values and "
                f"{len(self.class_names)} class names"
            )
        if self.thresholds and (len(self.thresholds) != n or not all(0 <= t <= 1 for t in self.thresholds)):
            raise ConfigError(f"model has {n} classes but thresholds {self.thresholds}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_config": self.model_config.to_dict(),
            "class_values": [int(v) for v in self.class_values],
            "class_names": list(self.class_names),
            "normalization": self.normalization,
            "train_config": self.train_config,
            "history": self.history,
            "best_score": self.best_score,
            "created": self.created,
            "versions": self.versions,
            "extra": self.extra,
            "thresholds": [float(t) for t in self.thresholds],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelInfo":
        try:
            model_config = ModelConfig.from_dict(data["model_config"])
        except ConfigError as exc:
            raise ConfigError(f"model_config.{exc}") from None
        class_values = data["class_values"]
        if not isinstance(class_values, list):
            raise ConfigError(f"class_values must be a list of whole numbers, got {class_values!r}")
        return cls(
            model_config=model_config,
            class_values=class_values,
            class_names=[str(n) for n in data["class_names"]],
            normalization=data.get("normalization") or dict(DEFAULT_NORMALIZATION),
            train_config=data.get("train_config"),
            history=list(data.get("history") or []),
            best_score=data.get("best_score"),
            created=str(data.get("created", "")),
            versions=dict(data.get("versions") or {}),
            extra=dict(data.get("extra") or {}),
            thresholds=[float(t) for t in data.get("thresholds") or []],
        )


#: Label images are written as uint8, uint16 or uint32, or int32 when a value is negative
#: (``core.predict.label_dtype``): class values must fit one of them.
CLASS_VALUE_RANGE = (-(2**31), 2**32 - 1)


def check_class_values(values: list[Any]) -> list[int]:
    """``class_values`` as ints, when each is a whole number that a label image can hold; ConfigError otherwise."""
    low, high = CLASS_VALUE_RANGE
    checked = [whole_number("class_values", v, low, high) for v in values]
    if checked and min(checked) < 0 and max(checked) >= 2**31:
        raise ConfigError(f"class_values {checked} mix negative values with values of 2**31 or more, which no "
                          "label image type holds")
    return checked


def check_normalization(spec: Any) -> dict[str, Any]:
    """The ``normalization`` entry, checked: method "none", or "percentile" with 0 <= low < high <= 100."""
    if not isinstance(spec, dict):
        raise ConfigError(f"normalization must be a JSON object, got {spec!r}")
    method = spec.get("method", "percentile")
    if method == "none":
        return dict(spec)
    if method != "percentile":
        raise ConfigError(f"normalization.method must be 'percentile' or 'none', got {method!r}")
    low = real_number("normalization.low", spec.get("low", DEFAULT_NORMALIZATION["low"]), 0.0, 100.0)
    high = real_number("normalization.high", spec.get("high", DEFAULT_NORMALIZATION["high"]), 0.0, 100.0)
    if not low < high:
        raise ConfigError(f"normalization.low ({low:g}) must be below normalization.high ({high:g}): they are the "
                          "percentiles of each image that map to 0 and 1")
    return {**spec, "method": method, "low": low, "high": high}


def _versions() -> dict[str, str]:
    from ... import __version__

    return {"unet_studio": __version__, "torch": torch.__version__, "python": platform.python_version()}


def _write_tensors(folder: Path, prefix: str, tensors: dict[str, torch.Tensor]) -> tuple[str, str]:
    """Write ``tensors`` as ``<prefix>-<sha256[:16]>.safetensors`` (unless already there); return (name, sha256)."""
    from safetensors.torch import save as st_save

    state = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    blob = st_save(state, metadata={"format": FORMAT_NAME})
    digest = hashlib.sha256(blob).hexdigest()
    name = f"{prefix}-{digest[:16]}.safetensors"
    if not (folder / name).exists():
        write_bytes(folder / name, blob)
    return name, digest


def save_model(folder: str | os.PathLike, model: UNet, info: ModelInfo,
               optimizer_state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` and ``info`` to ``folder`` (created if needed) atomically; return the folder.

    ``optimizer_state``: named tensors (see :func:`~unet_studio.core.train.setup.optimizer_tensors`)
    saved beside the weights for resuming; without it, the folder keeps no optimizer file.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFileError(f"cannot create model folder {folder}: {exc.strerror or exc}") from None
    weights_name, digest = _write_tensors(folder, "weights", model.state_dict())
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "weights": weights_name,
            "weights_sha256": digest}
    optimizer_name = None
    if optimizer_state:
        optimizer_name, optimizer_digest = _write_tensors(folder, "optimizer", optimizer_state)
        meta.update({"optimizer": optimizer_name, "optimizer_sha256": optimizer_digest})
    body = info.to_dict()
    body["model_config"] = model.config.to_dict()
    body["created"] = info.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    body["versions"] = {**_versions(), **info.versions}
    meta.update(body)
    write_text(folder / META_NAME, json.dumps(meta, indent=2))
    for stale in [*folder.glob("weights-*.safetensors"), *folder.glob("optimizer-*.safetensors")]:
        if stale.name not in (weights_name, optimizer_name):
            stale.unlink(missing_ok=True)
    return folder


def load_optimizer_state(folder: str | os.PathLike) -> dict[str, torch.Tensor] | None:
    """The optimizer tensors saved with the model in ``folder``, or None when there are none.

    The optimizer state is an extra for resuming: when it is missing, damaged or does not match its
    checksum, this logs why and returns None (the run starts with fresh moments) instead of failing.
    """
    folder = Path(folder)
    try:
        _, meta = read_model_info(folder)
        name = meta.get("optimizer")
        if not isinstance(name, str) or not _plain_name(name):
            return None
        blob = _read_weights(folder / name)
        if blob is None:
            raise ModelFileError(f"{folder / name} is missing")
        return _tensors(blob, meta.get("optimizer_sha256"), folder / name, "optimizer state")
    except ModelFileError as exc:
        log.warning("%s; training starts with fresh moments", exc)
        return None


def read_model_info(folder: str | os.PathLike) -> tuple[ModelInfo, dict[str, Any]]:
    """Read and check ``model.json``; return the info and the raw metadata (format, weights file)."""
    folder = Path(folder)
    meta_path = folder / META_NAME
    if not folder.is_dir():
        raise ModelFileError(f"{folder} is not a folder; pass the model folder written by 'unet-studio train'")
    text = read_regular_file(meta_path, MAX_DESCRIPTION_BYTES, "model description")
    if text is None:
        raise ModelFileError(
            f"{folder} is not a UNet Studio model folder: {META_NAME} is missing "
            "(train a model with 'unet-studio train' or export one from the application)"
        )
    try:
        meta = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{meta_path} is unreadable or not valid JSON ({exc}); the model folder is damaged: "
                             "copy it again or train the model again") from None
    except RecursionError:
        raise ModelFileError(f"{meta_path} is nested too deeply to be a model description; the model folder is "
                             "damaged: copy it again or train the model again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{meta_path} is not a UNet Studio model description; pass the model folder written "
                             "by 'unet-studio train' or exported from the application")
    version = meta.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise ModelFileError(
            f"{folder} was written by a newer UNet Studio (model format {version}, this version reads "
            f"up to {FORMAT_VERSION}); upgrade UNet Studio to use it"
        )
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(
            f"{meta_path} has an unknown model format version ({version!r}; this version reads 1 to "
            f"{FORMAT_VERSION}): it was not written by UNet Studio or is damaged; train the model again"
        )
    try:
        info = ModelInfo.from_dict(meta)
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        detail = f"the entry {exc} is missing" if isinstance(exc, KeyError) else str(exc)
        raise ModelFileError(f"{meta_path} is incomplete or inconsistent ({detail}); copy the model folder "
                             "again or train the model again") from None
    except RecursionError:  # a deeply nested value where a flat one belongs
        raise ModelFileError(f"{meta_path} holds values nested too deeply; copy the model folder again or train "
                             "the model again") from None
    return info, meta


def _plain_name(name: str) -> bool:
    """Whether ``name`` (from model.json) is a file name inside the folder, not a path out of it."""
    return bool(name) and "/" not in name and "\\" not in name


def _tensors(blob: bytes, sha256, path: Path, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file read from ``path``, after checking it against its SHA-256."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    if hashlib.sha256(blob).hexdigest() != sha256:
        raise ModelFileError(f"{path} does not match the checksum in {META_NAME}: the file is damaged; "
                             "copy the model folder again")
    try:
        return st_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path} is not a valid safetensors {what} file ({exc}); copy the model "
                             "folder again") from None


def _read_weights(path: Path, limit: int = MAX_TENSOR_FILE_BYTES) -> bytes | None:
    """The bytes of a weights (or optimizer) file, or None when it does not exist (any other error is raised)."""
    return read_regular_file(path, limit, "weights file")


def load_model(folder: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[UNet, ModelInfo]:
    """Load a model folder without executing any code from it; return the model (eval mode) and its info."""
    folder = Path(folder)
    for attempt in range(3):
        info, meta = read_model_info(folder)
        # The network's tensors, laid out without memory: the weights must be these before anything is built.
        expected, limit = network_layout(info.model_config)
        weights_name = str(meta.get("weights", ""))
        weights_path = folder / weights_name
        blob = _read_weights(weights_path, limit) if _plain_name(weights_name) else None
        if blob is not None:
            break
        # A save running in another thread or process replaced model.json and removed these weights
        # between our two reads: the new model.json names weights that exist. Read it again.
        time.sleep(0.05 * (attempt + 1))
    if blob is None:
        raise ModelFileError(f"{folder}: the weights file {weights_name or '(none named)'} is missing; copy the "
                             f"whole model folder again ({META_NAME} and the weights-*.safetensors file beside it)")
    check_weights_fit(safetensors_shapes(blob, weights_path), expected, weights_path, folder / META_NAME)
    state = _tensors(blob, meta.get("weights_sha256"), weights_path, "weights")
    check_finite(state, weights_path)
    model = UNet.from_config(info.model_config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{weights_path} does not fit the network described in {META_NAME} "
                             f"({' '.join(str(exc).split())[:300]}); copy the model folder again") from None
    model.eval()
    return model.to(device), info
