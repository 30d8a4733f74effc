"""Model folders: round trip, atomic replacement, refusal of damaged or unsafe files (no pickle)."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    real_replace = os.replace

    def crash(source, target):  # the process dies before model.json is replaced
        if os.path.basename(target) == META_NAME:
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_model(tmp_path, second, _info(second))
    monkeypatch.setattr(os, "replace", real_replace)
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


# --------------------------------------------------------------------------- hostile model folders (issue 13)

def _saved(folder):
    model = _tiny()
    save_model(folder, model, _info(model))
    return json.loads((folder / META_NAME).read_text())


def _set(key_path, value):
    def edit(meta):
        node = meta
        for key in key_path[:-1]:
            node = node[key]
        node[key_path[-1]] = value
    return edit


@pytest.mark.parametrize("edit, key", [
    (_set(["model_config", "base_channels"], 8192), "model_config.base_channels"),
    (_set(["model_config", "in_channels"], 1e9), "model_config.in_channels"),
    (_set(["model_config", "in_channels"], 10**9), "model_config.in_channels"),
    (_set(["model_config", "base_channels"], 4.0), "model_config.base_channels"),
    (_set(["model_config", "depth"], True), "model_config.depth"),
    (_set(["model_config", "dropout"], "x"), "model_config.dropout"),
    (_set(["model_config", "base_channels"], 4096), "base_channels 4096 at depth 2"),  # the widest layer
    (_set(["class_values"], [0, 2**70]), "class_values"),
    (_set(["class_values"], [0, float("inf")]), "class_values"),
    (_set(["class_values"], [0, 2.5]), "class_values"),
    (_set(["class_values"], "0, 255"), "class_values"),
    (_set(["normalization", "low"], "x"), "normalization.low"),
    (_set(["normalization"], {"method": "percentile", "low": 99, "high": 1}), "normalization.low"),
    (_set(["normalization"], {"method": "percentile", "low": float("nan"), "high": 99}), "normalization.low"),
    (_set(["normalization"], {"method": "zscore"}), "normalization.method"),
    (_set(["normalization"], 5), "normalization"),
])
def test_hostile_model_descriptions_name_the_file_and_the_key(tmp_path, edit, key):
    meta = _saved(tmp_path)
    edit(meta)
    (tmp_path / META_NAME).write_text(json.dumps(meta))  # json writes inf and nan as Infinity and NaN
    with pytest.raises(ModelFileError) as caught:
        load_model(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / META_NAME) in message and key in message, message
    assert "\n" not in message


def test_deeply_nested_model_json_is_refused(tmp_path):
    meta = _saved(tmp_path)
    text = json.dumps(meta)[:-1] + ', "extra_value": ' + "[" * 200_000 + "]" * 200_000 + "}"
    (tmp_path / META_NAME).write_text(text)
    with pytest.raises(ModelFileError, match="nested too deeply"):
        load_model(tmp_path)


def test_a_network_too_big_for_its_weights_is_refused_before_it_is_built(tmp_path):
    """Within the size bounds but not the network of the weights: found from the weights' header."""
    meta = _saved(tmp_path)
    meta["model_config"].update(base_channels=512, depth=4)  # about 1.5 GB of weights if it were built
    (tmp_path / META_NAME).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"does not fit the network described by model_config in .*model.json "
                                             r"\(down.0.0.weight is \[4, 1, 3, 3\] in the weights but \[512, 1, 3, 3\]"
                                             r".*base_channels 4"):
        load_model(tmp_path)


def _replace_weights(folder, make):
    meta = json.loads((folder / META_NAME).read_text())
    weights = folder / meta["weights"]
    weights.unlink()
    make(weights)
    return weights


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX feature")
@pytest.mark.parametrize("make", [os.mkfifo if hasattr(os, "mkfifo") else None,
                                  lambda path: path.symlink_to("/dev/zero")], ids=["fifo", "dev-zero"])
def test_weights_that_are_not_regular_files_are_refused_without_reading(tmp_path, make):
    _saved(tmp_path)
    weights = _replace_weights(tmp_path, make)
    with pytest.raises(ModelFileError, match="is not a regular file"):
        load_model(tmp_path)
    assert str(weights) in str(pytest.raises(ModelFileError, load_model, tmp_path).value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX feature")
def test_a_model_json_that_is_a_fifo_is_refused_without_reading(tmp_path):
    _saved(tmp_path)
    (tmp_path / META_NAME).unlink()
    os.mkfifo(tmp_path / META_NAME)
    with pytest.raises(ModelFileError, match="not a regular file"):
        read_model_info(tmp_path)


def test_weights_larger_than_the_network_needs_are_refused_without_reading(tmp_path):
    meta = _saved(tmp_path)
    weights = tmp_path / meta["weights"]
    with open(weights, "r+b") as handle:  # a sparse file: 1 GiB on paper, nothing on disk
        handle.truncate(2**30)
    with pytest.raises(ModelFileError, match="too large for a weights file"):
        load_model(tmp_path)


def test_nan_weights_are_refused_when_loading(tmp_path):
    model = _tiny()
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    save_model(tmp_path, model, _info(model))
    with pytest.raises(ModelFileError, match=r"NaN or infinite weights \(in head.weight\).*train the model again"):
        load_model(tmp_path)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8)
KEYS = [("model_config",), ("class_values",), ("class_names",), ("normalization",), ("thresholds",),
        ("history",), ("extra",), ("weights",), ("weights_sha256",), ("format_version",),
        ("model_config", "in_channels"), ("model_config", "base_channels"), ("model_config", "depth"),
        ("model_config", "padding"), ("model_config", "dropout"), ("normalization", "low"),
        ("normalization", "high"), ("normalization", "method")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(KEYS), value=JSON_VALUES)
def test_any_value_in_model_json_loads_or_gives_a_model_file_error(tmp_path_factory, key, value):
    folder = tmp_path_factory.mktemp("m")
    meta = _saved(folder)
    _set(list(key), value)(meta)
    (folder / META_NAME).write_text(json.dumps(meta))
    try:
        load_model(folder)
    except ModelFileError as exc:
        assert "\n" not in str(exc)
