"""Reading the files of a model folder without trusting them.

A model folder may come from anyone. Before anything is read, a file must be a regular file (a FIFO would
block forever, ``/dev/zero`` would fill memory) of a plausible size; before the network is built, the
shapes in the weights file's safetensors header must be those the network of ``model.json`` has (a
``base_channels`` of 8192 would otherwise allocate gigabytes first); and the weights must be finite (a
network with NaN weights predicts one class everywhere without a word).
"""

from __future__ import annotations

import json
import os
import stat
import struct
from collections.abc import Mapping
from pathlib import Path

import torch

from ..config import ModelConfig
from ..errors import ModelFileError
from .unet import UNet

#: ``model.json`` with a long training history is a few hundred kilobytes; anything this big is not one.
MAX_DESCRIPTION_BYTES = 64 * 2**20
#: Weights (or optimizer) file: the widest network ModelConfig allows stays well below this.
MAX_TENSOR_FILE_BYTES = 16 * 2**30
#: The JSON header of a safetensors file: about 100 bytes per tensor.
MAX_HEADER_BYTES = 16 * 2**20


def read_regular_file(path: Path, limit: int, what: str) -> bytes | None:
    """The bytes of ``path`` when it is a regular file of at most ``limit`` bytes; None when it does not exist.

    Opened without blocking and checked on the open file, so that a FIFO, a device or a symbolic link to
    one is refused instead of read. Raises :class:`ModelFileError` otherwise.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if stat.S_ISDIR(info.st_mode):
            return None
        if not stat.S_ISREG(info.st_mode):
            raise ModelFileError(f"{path} is not a regular file (a pipe, a device or a link to one): a {what} "
                                 "must be a plain file; copy the model folder again")
        if info.st_size > limit:
            raise ModelFileError(f"{path} is {info.st_size / 2**20:.0f} MiB, too large for a {what} (at most "
                                 f"{limit / 2**20:.0f} MiB); copy the model folder again")
        try:
            return handle.read(limit + 1)
        except OSError as exc:
            raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from None


def safetensors_shapes(blob: bytes, path: Path) -> dict[str, tuple[int, ...]]:
    """The tensor names and shapes listed in the header of a safetensors file (nothing is decoded but it)."""
    bad = f"{path} is not a valid safetensors file"
    if len(blob) < 8:
        raise ModelFileError(f"{bad} (it is too short); copy the model folder again")
    (length,) = struct.unpack("<Q", blob[:8])
    if length > min(MAX_HEADER_BYTES, len(blob) - 8):
        raise ModelFileError(f"{bad} (its header length {length} does not fit the file); copy the model folder again")
    try:
        header = json.loads(blob[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{bad} (its header is not valid JSON); copy the model folder again") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{bad} (its header is not a JSON object); copy the model folder again")
    shapes = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ModelFileError(f"{bad} (tensor {name!r} has no valid shape); copy the model folder again")
        shapes[name] = tuple(shape)
    return shapes


def network_layout(config: ModelConfig) -> tuple[dict[str, tuple[int, ...]], int]:
    """The tensor shapes of the network ``config`` describes, and the most bytes its weights file may have.

    The network is laid out on PyTorch's ``meta`` device, which allocates no memory whatever the sizes.
    """
    with torch.device("meta"):
        state = UNet.from_config(config).state_dict()
    shapes = {name: tuple(t.shape) for name, t in state.items()}
    data = sum(t.numel() * t.element_size() for t in state.values())
    return shapes, 2 * data + MAX_HEADER_BYTES  # room for float64 tensors and a long header


def check_weights_fit(shapes: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]],
                      weights: Path, description: Path) -> None:
    """Refuse weights whose tensors are not those of the network (``expected``, see :func:`network_layout`)."""
    if dict(shapes) == dict(expected):
        return
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    differ = [n for n in expected if n in shapes and shapes[n] != expected[n]]
    if differ:
        name = differ[0]
        detail = f"{name} is {list(shapes[name])} in the weights but {list(expected[name])} in the network"
    elif missing:
        detail = f"{len(missing)} tensor(s) of the network are not in the weights, e.g. {missing[0]}"
    else:
        detail = f"the weights hold {len(unexpected)} tensor(s) the network lacks, e.g. {unexpected[0]}"
    hint = _described_by(shapes)
    raise ModelFileError(f"{weights} does not fit the network described by model_config in {description} "
                         f"({detail}{hint}); copy the model folder again or train the model again")


def _described_by(shapes: Mapping[str, tuple[int, ...]]) -> str:
    """What the weights themselves say about in_channels, base_channels and n_classes, when they say it."""
    first, head = shapes.get("down.0.0.weight"), shapes.get("head.weight")
    if not first or not head or len(first) != 4 or len(head) != 4:
        return ""
    return (f"; the weights are of a network with in_channels {first[1]}, base_channels {first[0]} and "
            f"n_classes {head[0]}")


def check_finite(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """Refuse weights with NaN or infinite values: such a network predicts nonsense without a word."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"{path} holds NaN or infinite weights (in {name}): the model is broken (its "
                                 "training diverged, or the file was edited); train the model again")
