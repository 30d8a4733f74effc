"""`unet-studio predict --dask [ADDRESS]`: the same outputs as without Dask, a clear line when the scheduler
does not answer, existing outputs refused."""

from __future__ import annotations

import csv
import socket

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")
pytest.importorskip("distributed")

from model_helpers import save_threshold_model  # noqa: E402
from zarr_helpers import release_zarr_threads  # noqa: E402,F401  (autouse: zarr's threads end with each test)

from unet_studio.cli import main  # noqa: E402
from unet_studio.core import io  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def dask_offload_thread():
    """distributed unpacks big messages on a thread of its own that lives as long as the process: start it
    before the tests that check for threads left behind."""
    import asyncio

    from distributed.utils import offload

    asyncio.run(offload(lambda: None))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_threshold_model(tmp_path_factory.mktemp("model"), class_values=(0, 255))


@pytest.fixture
def image(tmp_path):
    """Bright disks on a dark background; one sits on the corner of four 64 px blocks."""
    yy, xx = np.mgrid[:150, :200]
    data = np.full((150, 200), 100, np.uint16)
    for cy, cx in ((64, 64), (30, 150), (110, 160), (120, 20)):
        data[(yy - cy) ** 2 + (xx - cx) ** 2 <= 12**2] = 1000
    path = tmp_path / "img.ome.zarr"
    io.write_ome_zarr(path, data, "yx", "intensity", pixel_size=(0.5, 0.5), chunks=(64, 64))
    return path


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dask_on_this_machine_writes_what_one_process_writes(tmp_path, image, model_dir, capsys):
    common = ["--model", model_dir, "--images", image, "--instances", "--measure", "--probabilities"]
    code, _, err = run_cli(capsys, *common, "--out", tmp_path / "one" / "img.ome.zarr")
    assert code == 0, err
    code, out, err = run_cli(capsys, *common, "--out", tmp_path / "dask" / "img.ome.zarr", "--dask", "--block-size", 64)
    assert code == 0, err
    assert "local cluster" in err and "img.ome.zarr" in out
    for name in ("img.ome.zarr", "img_probabilities.ome.zarr"):
        one = zarr.open_group(str(tmp_path / "one" / name), mode="r")["0"][...]
        blocks = zarr.open_group(str(tmp_path / "dask" / name), mode="r")["0"][...]
        np.testing.assert_allclose(blocks, one, atol=1e-4)
    instances = zarr.open_group(str(tmp_path / "dask" / "img_instances.ome.zarr"), mode="r")["0"][...]
    assert len(np.unique(instances[52:77, 52:77])) == 2  # the disk on the block corner: one object (and 0)
    rows = list(csv.DictReader((tmp_path / "dask" / "img_measurements.csv").open()))
    assert len(rows) == 4 and "area_um2" in rows[0]


def test_a_scheduler_that_does_not_answer_is_one_line(tmp_path, image, model_dir, capsys):
    address = f"tcp://127.0.0.1:{free_port()}"
    code, _, err = run_cli(capsys, "--model", model_dir, "--images", image, "--out", tmp_path / "o.ome.zarr",
                           "--dask", address)
    assert code == 2
    assert err.startswith(f"unet-studio predict: error: no Dask scheduler answers at {address} within 8 s")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.ome.zarr").exists()


def test_a_port_that_accepts_and_never_answers_is_one_line_not_a_hang(tmp_path, image, model_dir, capsys,
                                                                      monkeypatch):
    from unet_studio.core.predict import dask_client

    monkeypatch.setattr(dask_client, "CONNECT_TIMEOUT_S", 2.0)  # the same path as 8 s, sooner
    monkeypatch.setattr(dask_client.open_client, "__defaults__", (2.0,))
    with socket.socket() as server:  # accepts connections (the kernel's backlog) and never says a word
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        code, _, err = run_cli(capsys, "--model", model_dir, "--images", image, "--out", tmp_path / "o.ome.zarr",
                               "--dask", address)
    assert code == 2
    assert err.startswith(f"unet-studio predict: error: no Dask scheduler answers at {address} within 2 s")
    assert len(err.strip().splitlines()) == 1


def test_an_output_that_holds_data_is_refused(tmp_path, image, model_dir, capsys):
    out = tmp_path / "o.ome.zarr"
    out.mkdir()
    (out / "zarr.json").write_text("{}")
    code, _, err = run_cli(capsys, "--model", model_dir, "--images", image, "--out", out, "--dask")
    assert code == 2 and "--overwrite" in err
    assert (out / "zarr.json").read_text() == "{}"


def test_a_corrupt_chunk_fails_its_blocks_and_the_exit_status_says_how_many(tmp_path, image, model_dir, capsys):
    (image / "0" / "c" / "1" / "2").write_bytes(b"not a chunk")
    out = tmp_path / "o.ome.zarr"
    code, _, err = run_cli(capsys, "--model", model_dir, "--images", image, "--out", out, "--dask", "--block-size", 64)
    assert code == 1
    failed = [line for line in err.splitlines() if "FAILED" in line]
    assert failed and all("c/1/2" in line for line in failed)
    assert f"{len(failed)} block(s) failed" in err.splitlines()[-1]
    assert not out.exists()  # nothing incomplete is published; the finished blocks wait for the next run
