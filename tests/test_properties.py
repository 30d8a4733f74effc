"""Property-based tests: hostile values in a project file, a model folder and on the command line.

Whatever a person (or someone who sends them a file) puts there, the reader either succeeds or raises the
project's own error type, whose message is shown as it is; never another exception (a traceback, an
"unexpected error"). Each test draws a valid file and replaces one value, at a random place, with a random
JSON value, path or name; or gives a command-line option a random text.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="property tests need hypothesis (the test extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from unet_studio.core.errors import UNetStudioError  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Numbers that break readers: non-finite, huge, tiny, negative, fractional where whole ones belong. Sizes stay
# out of the range that is valid but needs gigabytes (a network 8192 channels wide), which would test the
# machine, not the reader; 2**31 and beyond must be refused before any allocation.
NUMBERS = st.one_of(
    st.integers(-3, 70),
    st.sampled_from([2**31, 2**32, 2**63, 2**70, -(2**63), 10**30]),
    st.floats(-100, 100),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 1e-300, 2.5e-42, -0.0, 4.0, 0.5, 1e9, 1e23]),
)
NAMES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", ".", "..", "../../victim/evil", "/etc/passwd", "a/b", "a\\b", "nul\x00byte", "new\nline",
                     "x" * 300, "CON", " ", "~", "$HOME", "a.tif", "-rf", "é" * 130]),
)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBERS, NAMES),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(NAMES, inner, max_size=4)),
    max_leaves=8,
)


def _places(value, prefix=()):
    """Every key path inside a JSON document (``("settings", "brush_size")``, ``("images", 0, "name")``)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _places(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _places(item, prefix + (index,))


def _replace(document, place, value):
    """A copy of ``document`` with the value at ``place`` replaced (or a key added where a dict is)."""
    document = copy.deepcopy(document)
    if not place:
        return value
    parent = document
    for key in place[:-1]:
        parent = parent[key]
    if isinstance(parent, list) and place[-1] == len(parent):
        parent.append(value)
    else:
        parent[place[-1]] = value
    return document


def _edited(document, extra_places):
    """Strategy: ``document`` with one value replaced, at an existing place or one of ``extra_places``."""
    places = sorted(set(_places(document)) | set(extra_places), key=repr)
    return st.tuples(st.sampled_from(places), JSON_VALUES).map(lambda pv: (pv[0], _replace(document, *pv)))


# ---------------------------------------------------------------------------------------------- projects

PROJECT = {
    "format": "unet-studio-project", "format_version": 1,
    "images": [{"name": "a", "path": "a.tif"}, {"name": "b", "path": "sub/b.tif"}],
    "removed_images": [],
    "classes": [{"name": "background", "color": "#3b75af"}, {"name": "foreground", "color": "#e8542a"}],
    "settings": {"brush_size": 5, "training": {"epochs": 10, "preset": "fast"},
                 "overlay": {"label_opacity": 0.5}, "contrast_percentiles": [1, 99]},
}
PROJECT_EXTRA = [("images", 0, "fingerprint"), ("images", 0, "shape"), ("settings", "prediction"),
                 ("classes", 0, "value"), ("removed_images", 0)]


@SETTINGS
@given(edit=_edited(PROJECT, PROJECT_EXTRA))
def test_project_reader_gives_a_project_or_a_project_error(edit):
    from unet_studio.core import project as proj

    place, document = edit
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "project"
        folder.mkdir()
        (folder / "project.json").write_text(json.dumps(document), encoding="utf-8")
        try:
            loaded = proj.load_project(folder)
            labels = [loaded.labels_path(entry.name) for entry in loaded.images]
            proj.project_text(loaded)  # what the next save writes
        except UNetStudioError:
            return
        inside = folder.resolve()
        for path in labels:  # every file a save writes stays in the project folder
            assert inside in Path(path).resolve().parents, (place, path)


@SETTINGS
@given(entries=st.lists(st.fixed_dictionaries({"name": NAMES, "path": NAMES}), min_size=1, max_size=3))
def test_image_names_and_paths_never_lead_a_save_out_of_the_project(entries):
    from unet_studio.core import project as proj

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "project"
        folder.mkdir()
        document = {**PROJECT, "images": entries}
        (folder / "project.json").write_text(json.dumps(document), encoding="utf-8")
        try:
            loaded = proj.load_project(folder)
            labels = [loaded.labels_path(entry.name) for entry in loaded.images]
        except UNetStudioError:
            return
        for path in labels:
            assert folder.resolve() in Path(path).resolve().parents, (entries, path)


@SETTINGS
@given(text=st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                      st.sampled_from(["[" * 100000, '{"format": "unet-studio-project"', "\ufeff{}", "null"])))
def test_project_reader_survives_any_text(text):
    from unet_studio.core import project as proj

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "project.json").write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            proj.load_project(tmp)
        except UNetStudioError:
            pass


# ------------------------------------------------------------------------------------------ model folders


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A tiny trained-shape model folder (base width 4, depth 2), written once."""
    from unet_studio.core.config import ModelConfig
    from unet_studio.core.model import ModelInfo, UNet, save_model

    config = ModelConfig(in_channels=1, n_classes=2, base_channels=4, depth=2)
    folder = tmp_path_factory.mktemp("model")
    info = ModelInfo(model_config=config, class_values=[0, 1], class_names=["background", "foreground"])
    save_model(folder, UNet(**config.to_dict()), info)
    return folder


MODEL_EXTRA = [("normalization", "low"), ("normalization", "high"), ("normalization", "method"),
               ("thresholds",), ("model_config", "dropout"), ("model_config", "norm"), ("best_score",)]


@SETTINGS
@given(data=st.data())
def test_model_reader_gives_a_model_or_a_model_error(model_folder, data):
    from unet_studio.core.model import load_model, read_model_info

    meta = json.loads((model_folder / "model.json").read_text(encoding="utf-8"))
    place, document = data.draw(_edited(meta, MODEL_EXTRA))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        shutil.copytree(model_folder, folder)
        (folder / "model.json").write_text(json.dumps(document), encoding="utf-8")
        try:
            read_model_info(folder)
            load_model(folder)
        except UNetStudioError as exc:
            assert "model" in str(exc).lower(), (place, str(exc))


# ----------------------------------------------------------------------------------------- command line

OPTION_TEXT = st.one_of(
    NUMBERS.map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-1e999", "1e-300", "-1", "1e23", "0x10", "", " ", "1,2",
                     "1,nan", ",", "0,0", "1_000", "٣", "2**70", "--", "-"]),
    st.text(max_size=8),
)
TRAIN_OPTIONS = ["--epochs", "--time-limit", "--val-fraction", "--seed", "--unlabelled", "--preset"]
PREDICT_OPTIONS = ["--tile-size", "--overlap", "--batch-size", "--min-size", "--thresholds", "--foreground"]


def _run_cli(argv: list[str]) -> tuple[int, str]:
    """``unet-studio ARGV`` in this process: its exit status and what it wrote on stderr."""
    from unet_studio.cli import main

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse refuses what it cannot parse: status 2 and a usage line
            code = exc.code
    return code, stderr.getvalue()


@SETTINGS
@given(command=st.sampled_from(["train", "predict"]), data=st.data())
def test_cli_option_checks_refuse_with_a_message_never_a_crash(command, data):
    options = TRAIN_OPTIONS if command == "train" else PREDICT_OPTIONS
    chosen = data.draw(st.lists(st.sampled_from(options), min_size=1, max_size=3, unique=True))
    values = [data.draw(OPTION_TEXT) for _ in chosen]
    with tempfile.TemporaryDirectory() as tmp:
        missing = str(Path(tmp) / "missing")  # the run stops at the missing input, after the option checks
        if command == "train":
            argv = ["train", "--images", missing, "--labels", missing, "--out", str(Path(tmp) / "out")]
        else:
            argv = ["predict", "--model", missing, "--images", missing, "--out", str(Path(tmp) / "out")]
        argv += [f"{option}={value}" for option, value in zip(chosen, values)]
        code, stderr = _run_cli(argv)
    assert isinstance(code, int) and code != 0, (argv, code, stderr)
    assert "unexpected error" not in stderr and "Traceback" not in stderr, (argv, stderr)
