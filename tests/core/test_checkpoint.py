"""Model folders: round trip, atomic replacement, refusal of damaged or unsafe files (no pickle)."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from unet_studio.core.model.checkpoint import META_NAME, ModelInfo, load_model, read_model_info, save_model
from unet_studio.core.config import ModelConfig
from unet_studio.core.errors import ConfigError, ModelFileError
from unet_studio.core.model.unet import UNet


def _tiny(seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return UNet(base_channels=4, depth=2, norm="batch")


def _info(model: UNet) -> ModelInfo:
    return ModelInfo(model_config=model.config, class_values=[0, 255], class_names=["membrane", "interior"],
                     history=[{"step": 10, "loss": 0.5}])


def test_round_trip_keeps_weights_and_description(tmp_path):
    model = _tiny()
    model.down[0][1].running_mean += 1.5  # buffers travel too
    save_model(tmp_path / "m", model, _info(model))
    loaded, info = load_model(tmp_path / "m")
    assert not loaded.training
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert info.class_values == [0, 255] and info.class_names == ["membrane", "interior"]
    assert info.model_config == model.config and info.history == [{"step": 10, "loss": 0.5}]
    assert info.versions["torch"] == torch.__version__ and info.created


def test_saving_again_replaces_weights_and_leaves_one_file(tmp_path):
    first, second = _tiny(0), _tiny(1)
    save_model(tmp_path, first, _info(first))
    save_model(tmp_path, second, _info(second))
    assert len(list(tmp_path.glob("weights-*.safetensors"))) == 1
    assert not list(tmp_path.glob(".*tmp*"))
    loaded, _ = load_model(tmp_path)
    assert torch.equal(loaded.head.weight, second.head.weight)


def test_crash_between_weights_and_description_keeps_previous_model(tmp_path, monkeypatch):
    first, second = _tiny(0), _tiny(1)
    save_model(tmp_path, first, _info(first))
    from unet_studio.core.io import atomic as atomic

    real_write_text = atomic.write_text

    def crash(path, text):  # the process dies before model.json is replaced
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "write_text", crash)
    with pytest.raises(KeyboardInterrupt):
        save_model(tmp_path, second, _info(second))
    monkeypatch.setattr(atomic, "write_text", real_write_text)
    loaded, _ = load_model(tmp_path)
    assert torch.equal(loaded.head.weight, first.head.weight)


def test_pickle_payload_is_refused_and_never_runs(tmp_path):
    model = _tiny()
    save_model(tmp_path, model, _info(model))
    meta = json.loads((tmp_path / META_NAME).read_text())
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    blob = pickle.dumps({"state": Payload()})
    (tmp_path / meta["weights"]).write_bytes(blob)
    import hashlib

    meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()  # even with a matching checksum
    (tmp_path / META_NAME).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="not a valid safetensors"):
        load_model(tmp_path)
    assert not marker.exists()
    # a torch.save()d file named like our weights is refused the same way
    torch.save(model.state_dict(), tmp_path / meta["weights"])
    meta["weights_sha256"] = hashlib.sha256((tmp_path / meta["weights"]).read_bytes()).hexdigest()
    (tmp_path / META_NAME).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError):
        load_model(tmp_path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / META_NAME).unlink(), "model.json is missing"),
        (lambda d: (d / META_NAME).write_text("{not json"), "not valid JSON"),
        (lambda d: [p.unlink() for p in d.glob("weights-*")], "is missing"),
        (lambda d: [p.write_bytes(p.read_bytes()[:-10]) for p in d.glob("weights-*")], "checksum"),
        (lambda d: _edit(d, format_version=99), "newer UNet Studio"),
        (lambda d: _edit(d, format="something-else"), "not a UNet Studio model"),
        (lambda d: _edit(d, model_config={**ModelConfig(base_channels=8, depth=2, norm="batch").to_dict()}),
         "does not fit"),
        (lambda d: _edit(d, class_values=[1]), "inconsistent"),
    ],
)
def test_damaged_folders_give_clear_errors(tmp_path, damage, message):
    model = _tiny()
    save_model(tmp_path, model, _info(model))
    damage(tmp_path)
    with pytest.raises(ModelFileError, match=message):
        load_model(tmp_path)


def _edit(folder, **changes):
    meta = json.loads((folder / META_NAME).read_text())
    meta.update(changes)
    (folder / META_NAME).write_text(json.dumps(meta))


def test_not_a_folder(tmp_path):
    with pytest.raises(ModelFileError, match="not a folder"):
        read_model_info(tmp_path / "nothing")


def test_info_must_match_class_count():
    with pytest.raises(ConfigError):
        ModelInfo(model_config=ModelConfig(n_classes=3), class_values=[0, 1], class_names=["a", "b"])


def test_loading_while_another_process_saves_reads_the_new_model(tmp_path, monkeypatch):
    """model.json read just before a save replaces it names weights the save then removes: read it again."""
    from unet_studio.core.model import checkpoint as checkpoint

    first, second = _tiny(0), _tiny(1)
    save_model(tmp_path, first, _info(first))
    stale = read_model_info(tmp_path)
    save_model(tmp_path, second, _info(second))  # removes the first weights file
    calls = []

    def racing_read(folder):
        calls.append(folder)
        return stale if len(calls) == 1 else read_model_info(folder)

    monkeypatch.setattr(checkpoint, "read_model_info", racing_read)
    loaded, _ = load_model(tmp_path)
    assert len(calls) == 2 and torch.equal(loaded.head.weight, second.head.weight)
    monkeypatch.setattr(checkpoint, "read_model_info", lambda folder: stale)  # really missing: a clear error
    with pytest.raises(ModelFileError, match="weights file .* is missing"):
        load_model(tmp_path)
