"""OME-Zarr in and out (issue 18 item 1): lazy reading, writing with a pyramid, region reads of tiled TIFFs."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")

from ome_zarr.io import parse_url  # noqa: E402
from zarr_helpers import release_zarr_threads  # noqa: E402,F401  (autouse: zarr's threads end with each test)
from ome_zarr.reader import Reader  # noqa: E402

from unet_studio.core import io  # noqa: E402
from unet_studio.core.errors import ImageReadError, ImageWriteError  # noqa: E402


def _levels_seen_by_ome_zarr(path) -> list[tuple[int, ...]]:
    nodes = list(Reader(parse_url(str(path)))())
    return [tuple(level.shape) for level in nodes[0].data]


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_round_trip_keeps_axes_pixel_size_channel_names_dtype_and_values(tmp_path, ngff, dtype):
    rng = np.random.default_rng(0)
    data = (rng.random((2, 3, 70, 90)) * 200).astype(dtype)
    path = tmp_path / "img.ome.zarr"
    io.write_ome_zarr(path, data, "czyx", "intensity", pixel_size=(0.25, 0.5), channel_names=["DAPI", "GFP"],
                      chunks=(1, 1, 32, 32), ngff=ngff, min_side=16)
    image = io.open_zarr(path)
    assert image.axes == "czyx"
    assert image.pixel_size == pytest.approx((0.25, 0.5))
    assert image.channel_names == ["DAPI", "GFP"]
    assert image.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(image.levels[0][:], data)
    np.testing.assert_array_equal(image.region(0, 10, 50, 20, 80, s=2), data[:, 2, 10:50, 20:80])
    assert [tuple(level.shape) for level in image.levels] == [(2, 3, 70, 90), (2, 3, 35, 45), (2, 3, 18, 23)]
    assert image.scales[1] == pytest.approx((1.0, 1.0, 0.5, 1.0))
    # ome-zarr's own reader sees the same levels and channel names
    assert _levels_seen_by_ome_zarr(path) == [(2, 3, 70, 90), (2, 3, 35, 45), (2, 3, 18, 23)]
    assert list(Reader(parse_url(str(path)))())[0].metadata["channel_names"] == ["DAPI", "GFP"]


def test_read_image_on_a_zarr_folder_equals_the_same_array_read_from_tiff(tmp_path):
    data = np.random.default_rng(1).integers(0, 4000, (3, 60, 80)).astype(np.uint16)
    io.write_image(tmp_path / "a.tif", data, "ZYX", pixel_size=(0.5, 0.5), unit="µm")
    io.write_ome_zarr(tmp_path / "a.ome.zarr", data, "zyx", "intensity", pixel_size=(0.5, 0.5), chunks=(1, 32, 32))
    with io.read_image(tmp_path / "a.tif") as tiff, io.read_image(tmp_path / "a.ome.zarr") as zarr_stack:
        assert zarr_stack.shape == tiff.shape == (3, 1, 60, 80)
        assert zarr_stack.stack_axes == tiff.stack_axes == "Z"
        assert zarr_stack.dtype == tiff.dtype
        assert zarr_stack.pixel_size == pytest.approx(tiff.pixel_size)
        assert zarr_stack.unit == tiff.unit == "µm"
        for i in range(3):
            np.testing.assert_array_equal(zarr_stack.get_slice(i), tiff.get_slice(i))
        np.testing.assert_array_equal(zarr_stack.asarray(), tiff.asarray())


def test_list_images_lists_zarr_image_folders_among_files(tmp_path):
    io.write_image(tmp_path / "b.tif", np.zeros((8, 8), np.uint8), "YX")
    io.write_ome_zarr(tmp_path / "a.ome.zarr", np.zeros((8, 8), np.uint8), "yx", "intensity")
    (tmp_path / "notes").mkdir()
    assert [p.name for p in io.list_images(tmp_path)] == ["a.ome.zarr", "b.tif"]


def test_open_a_coarser_level_scales_the_pixel_size(tmp_path):
    io.write_ome_zarr(tmp_path / "a.ome.zarr", np.ones((64, 64), np.uint8), "yx", "intensity",
                      pixel_size=(0.5, 0.5), min_side=16)
    image = io.open_zarr(tmp_path / "a.ome.zarr", level=1)
    assert image.shape == (32, 32) and image.pixel_size == pytest.approx((1.0, 1.0))
    with pytest.raises(ImageReadError, match="level 9"):
        io.open_zarr(tmp_path / "a.ome.zarr", level=9)


# ------------------------------------------------------------------------------------------------ pyramid


def test_downsampling_labels_takes_the_mode_never_a_mean():
    block = np.array([[1, 2, 5, 5, 9],
                      [2, 2, 6, 7, 9],
                      [3, 4, 0, 0, 8]], np.uint8)
    # mode 2; all different -> top-left 5; odd edges repeat: [9, 9; 9, 9] -> 9, [3, 4; 3, 4] -> tie -> 3
    np.testing.assert_array_equal(io.downsample_2x(block, "labels"), [[2, 5, 9], [3, 0, 8]])
    np.testing.assert_array_equal(io.downsample_2x(block.astype(np.float32), "intensity"),
                                  [[1.75, 5.75, 9.0], [3.5, 0.0, 8.0]])


def test_pyramid_of_labels_keeps_only_values_of_level_0_and_intensities_are_means(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.choice(np.array([0, 3, 7, 250], np.uint8), size=(2, 101, 77))
    io.write_ome_zarr(tmp_path / "l.ome.zarr", labels, "zyx", "labels", chunks=(1, 16, 24), min_side=8)
    image = io.open_zarr(tmp_path / "l.ome.zarr")
    assert len(image.levels) == 4
    for level in image.levels[1:]:
        assert set(np.unique(level[:])) <= {0, 3, 7, 250}
    np.testing.assert_array_equal(image.levels[1][:], io.downsample_2x(labels, "labels"))

    values = rng.random((101, 77)).astype(np.float32)
    io.write_ome_zarr(tmp_path / "p.ome.zarr", values, "yx", "probabilities", chunks=(16, 24), min_side=8)
    image = io.open_zarr(tmp_path / "p.ome.zarr")
    # computed chunk by chunk from level 0, equal to the mean of each 2 x 2 block of the whole image
    np.testing.assert_allclose(image.levels[1][:], io.downsample_2x(values, "probabilities"), rtol=1e-6)
    np.testing.assert_allclose(image.levels[1][:50, :38], values[:100, :76].reshape(50, 2, 38, 2).mean((1, 3)),
                               rtol=1e-6)
    np.testing.assert_allclose(image.levels[2][:], io.downsample_2x(image.levels[1][:], "probabilities"),
                               rtol=1e-6)


def test_build_pyramid_reads_level_0_only_chunk_by_chunk(tmp_path, monkeypatch):
    path = tmp_path / "big.ome.zarr"
    level0 = io.create_ome_zarr(path, (256, 256), np.uint16, (32, 32), "yx")
    level0[:] = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256)
    largest = []
    original = io.downsample_2x

    def recording(block, kind):
        largest.append(block.size)
        return original(block, kind)

    monkeypatch.setattr("unet_studio.core.io.zarr_write.downsample_2x", recording)
    assert io.build_pyramid(path, "intensity", min_side=32) == 4
    assert max(largest) <= 64 * 64  # one output chunk's worth of input, never the image


# --------------------------------------------------------------------------------------------- bad input


def test_plain_zarr_array_needs_axes(tmp_path):
    path = tmp_path / "plain.zarr"
    array = zarr.create_array(str(path), shape=(2, 40, 50), chunks=(1, 20, 20), dtype="uint16")
    data = np.arange(2 * 40 * 50, dtype=np.uint16).reshape(2, 40, 50)
    array[:] = data
    with pytest.raises(ImageReadError) as caught:
        io.read_image(path)
    assert str(caught.value) == (f"{path} is a zarr array without OME metadata: give its axes with --axes, "
                                 "e.g. --axes yx or --axes czyx")
    with io.read_image(path, axes="cyx") as stack:
        assert stack.shape == (1, 2, 40, 50)
        np.testing.assert_array_equal(stack.get_slice(0), data)
    with io.read_image(path, axes="zyx") as stack:
        assert stack.shape == (2, 1, 40, 50) and stack.stack_axes == "Z"
    with pytest.raises(ImageReadError, match="do not fit an array of 3 dimensions"):
        io.read_image(path, axes="yx")


def _chunk_files(path, level="0"):
    return sorted(p for p in (path / level).rglob("*") if p.is_file() and not p.name.startswith((".", "zarr")))


def test_missing_chunk_is_named_and_other_slices_still_read(tmp_path):
    path = tmp_path / "a.ome.zarr"
    data = np.ones((3, 40, 40), np.uint8)
    io.write_ome_zarr(path, data, "zyx", "intensity", chunks=(1, 20, 20))
    missing = path / "0" / "c" / "2" / "1" / "0"
    missing.unlink()
    with io.read_image(path) as stack:
        np.testing.assert_array_equal(stack.get_slice(0), data[:1])
        with pytest.raises(ImageReadError, match=r"slice 2.*chunk 0/c/2/1/0 is missing"):
            stack.get_slice(2)
    with io.read_image(path, missing_chunks="fill") as stack:
        assert stack.get_slice(2)[0, 20:, :20].max() == 0


def test_corrupt_chunk_is_named(tmp_path):
    path = tmp_path / "a.ome.zarr"
    io.write_ome_zarr(path, np.ones((40, 40), np.uint16), "yx", "intensity", chunks=(20, 20))
    (path / "0" / "c" / "1" / "1").write_bytes(b"not a zstd frame at all")
    image = io.open_zarr(path)
    np.testing.assert_array_equal(image.region(0, 0, 20, 0, 20), 1)
    with pytest.raises(ImageReadError, match=r"region y 10:40, x 10:40: chunk 0/c/1/1 is damaged"):
        image.region(0, 10, 40, 10, 40)


def test_existing_output_is_refused_without_overwrite_and_a_failed_write_leaves_it_alone(tmp_path):
    path = tmp_path / "out.ome.zarr"
    io.write_ome_zarr(path, np.full((16, 16), 5, np.uint8), "yx", "labels")
    with pytest.raises(ImageWriteError, match="already holds data: choose another --out or pass --overwrite"):
        io.write_ome_zarr(path, np.zeros((16, 16), np.uint8), "yx", "labels")
    with pytest.raises(RuntimeError):
        with io.ome_zarr_output(path, (16, 16), np.uint8, "yx", "labels", overwrite=True) as level0:
            level0[:8] = 1
            raise RuntimeError("stopped halfway")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ome.zarr"]  # no temporary folder left
    np.testing.assert_array_equal(io.open_zarr(path).levels[0][:], 5)
    io.write_ome_zarr(path, np.zeros((16, 16), np.uint8), "yx", "labels", overwrite=True)
    np.testing.assert_array_equal(io.open_zarr(path).levels[0][:], 0)


def test_zarr_missing_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_zarr(name, *args, **kwargs):
        if name == "zarr" or name.startswith(("zarr.", "ome_zarr")):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    io.write_ome_zarr(tmp_path / "a.ome.zarr", np.zeros((8, 8), np.uint8), "yx", "intensity")
    monkeypatch.setattr(builtins, "__import__", no_zarr)
    with pytest.raises(ImageReadError, match=r"pip install 'unet-studio\[zarr\]'"):
        io.read_image(tmp_path / "a.ome.zarr")
    with pytest.raises(ImageWriteError, match=r"pip install 'unet-studio\[zarr\]'"):
        io.write_ome_zarr(tmp_path / "b.ome.zarr", np.zeros((8, 8), np.uint8), "yx", "intensity")


# ------------------------------------------------------------------------------------- tiled TIFF regions


def test_tiled_bigtiff_read_by_region_equals_the_full_read(tmp_path):
    data = np.random.default_rng(3).integers(0, 60000, (3, 300, 500)).astype(np.uint16)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, data, bigtiff=True, tile=(64, 64), photometric="minisblack", metadata={"axes": "ZYX"})
    full = tifffile.imread(path)
    image = io.open_zarr(path)
    try:
        assert image.axes == "zyx" and image.level_shape(0) == (3, 1, 300, 500)
        np.testing.assert_array_equal(image.region(0, 37, 250, 101, 499, s=1), full[1:2, 37:250, 101:499])
        np.testing.assert_array_equal(image.region(0, 0, 300, 0, 500, s=2)[0], full[2])
    finally:
        image.close()
    with io.read_image(path) as stack:
        np.testing.assert_array_equal(stack.get_slice(1)[0], full[1])


def test_pyramidal_rgb_tiff_levels_are_read_by_region(tmp_path):
    rgb = np.random.default_rng(4).integers(0, 255, (256, 256, 3)).astype(np.uint8)
    path = tmp_path / "slide.tif"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(rgb, tile=(64, 64), subifds=1, photometric="rgb")
        tif.write(rgb[::2, ::2], tile=(64, 64), subfiletype=1, photometric="rgb")
    image = io.open_zarr(path)
    try:
        assert len(image.levels) == 2 and image.axes == "yxc"
        np.testing.assert_array_equal(image.region(0, 10, 70, 20, 90), np.moveaxis(rgb[10:70, 20:90], -1, 0))
        np.testing.assert_array_equal(image.region(1, 0, 128, 0, 128), np.moveaxis(rgb[::2, ::2], -1, 0))
    finally:
        image.close()
