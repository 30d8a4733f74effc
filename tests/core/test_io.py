"""Reading every supported layout, lazy slices, normalisation and atomic writers of ``core.io``."""

from __future__ import annotations

import errno
import os
import tempfile

import numpy as np
import pytest
import tifffile
from PIL import Image

from unet_studio.core import io
from unet_studio.core.errors import ImageReadError, ImageWriteError


def _ramp(shape, dtype=np.uint16):
    """Distinct values in every pixel, so that any axis mix-up changes the result."""
    return (np.arange(np.prod(shape)) % np.iinfo(np.uint16).max).reshape(shape).astype(dtype)


# --------------------------------------------------------------------------- 2D, RGB, stacks


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.int16, np.uint32, np.float64])
@pytest.mark.parametrize("compression", [None, "zlib"])
def test_grey_2d_tiff_round_trip(tmp_path, dtype, compression):
    data = (np.random.default_rng(0).random((37, 53)) * 200).astype(dtype)
    tifffile.imwrite(tmp_path / "grey.tif", data, compression=compression)
    with io.read_image(tmp_path / "grey.tif") as stack:
        assert (stack.axes, stack.stack_axes, stack.shape, len(stack)) == ("YX", "", (1, 1, 37, 53), 1)
        assert stack.dtype == dtype and stack.n_channels == 1
        assert stack.pixel_size is None and stack.unit == ""
        np.testing.assert_array_equal(stack.get_slice(0), data[np.newaxis])
        np.testing.assert_array_equal(stack.asarray(), data[np.newaxis, np.newaxis])


def test_big_endian_tiff_gives_native_values(tmp_path):
    data = _ramp((2, 10, 12))
    tifffile.imwrite(tmp_path / "be.tif", data, byteorder=">")
    with io.read_image(tmp_path / "be.tif") as stack:
        out = stack.asarray()
    assert out.dtype.isnative
    np.testing.assert_array_equal(out[:, 0], data)


@pytest.mark.parametrize("planar", ["contig", "separate"])
def test_rgb_tiff(tmp_path, planar):
    rgb = np.random.default_rng(1).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    data = rgb if planar == "contig" else np.moveaxis(rgb, -1, 0)
    tifffile.imwrite(tmp_path / "rgb.tif", data, photometric="rgb", planarconfig=planar)
    with io.read_image(tmp_path / "rgb.tif") as stack:
        assert stack.shape == (1, 3, 20, 30) and stack.stack_axes == ""
        assert stack.channel_names == ["red", "green", "blue"]
        np.testing.assert_array_equal(stack.get_slice(0), np.moveaxis(rgb, -1, 0))


def test_rgba_tiff_drops_alpha(tmp_path):
    rgba = np.random.default_rng(2).integers(0, 255, (8, 9, 4), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    with io.read_image(tmp_path / "rgba.tif") as stack:
        assert stack.shape == (1, 3, 8, 9)
        np.testing.assert_array_equal(stack.get_slice(0), np.moveaxis(rgba[..., :3], -1, 0))


@pytest.mark.parametrize("imagej", [False, True])
@pytest.mark.parametrize("compression", [None, "zlib"])
def test_zyx_stack(tmp_path, imagej, compression):
    data = _ramp((7, 16, 20))
    metadata = {"axes": "ZYX"} if imagej else None  # plain multi-page TIFF: tifffile calls the axis Q
    tifffile.imwrite(tmp_path / "z.tif", data, imagej=imagej, metadata=metadata, compression=compression)
    with io.read_image(tmp_path / "z.tif") as stack:
        assert stack.stack_axes == "Z" and stack.shape == (7, 1, 16, 20) and len(stack) == 7
        np.testing.assert_array_equal(stack.get_slice(4)[0], data[4])
        np.testing.assert_array_equal(stack.get_slice(-1)[0], data[-1])
        np.testing.assert_array_equal(stack.asarray()[:, 0], data)


def test_pages_written_one_by_one_are_a_stack(tmp_path):
    frames = [_ramp((10, 11)) + i for i in range(4)]
    with tifffile.TiffWriter(tmp_path / "pages.tif") as writer:
        for frame in frames:
            writer.write(frame, contiguous=False, metadata=None)
    with io.read_image(tmp_path / "pages.tif") as stack:
        assert stack.shape == (4, 1, 10, 11) and stack.stack_axes == "Z"
        np.testing.assert_array_equal(stack.get_slice(2)[0], frames[2])


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_imagej_hyperstack_tzcyx(tmp_path, compression):
    t, z, c = 2, 3, 4
    data = _ramp((t, z, c, 16, 20))
    labels = [f"ch{k}" for _ in range(t * z) for k in range(c)]
    tifffile.imwrite(tmp_path / "hyper.tif", data, imagej=True, compression=compression,
                     resolution=(1 / 0.25, 1 / 0.5), metadata={"axes": "TZCYX", "unit": "um", "Labels": labels})
    with io.read_image(tmp_path / "hyper.tif") as stack:
        assert stack.axes == "TZCYX" and stack.stack_axes == "TZ"
        assert stack.shape == (t * z, c, 16, 20)
        assert stack.pixel_size == pytest.approx((0.5, 0.25)) and stack.unit == "µm"
        assert stack.channel_names == ["ch0", "ch1", "ch2", "ch3"]
        for ti in range(t):
            for zi in range(z):
                np.testing.assert_array_equal(stack.get_slice(ti * z + zi), data[ti, zi])
        np.testing.assert_array_equal(stack.asarray(), data.reshape(t * z, c, 16, 20))


def test_imagej_rgb_stack(tmp_path):
    data = np.random.default_rng(3).integers(0, 255, (3, 8, 10, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "zrgb.tif", data, imagej=True, metadata={"axes": "ZYXS"})
    with io.read_image(tmp_path / "zrgb.tif") as stack:
        assert stack.shape == (3, 3, 8, 10) and stack.stack_axes == "Z"
        np.testing.assert_array_equal(stack.get_slice(1), np.moveaxis(data[1], -1, 0))


@pytest.mark.parametrize("axes", ["TCZYX", "CZTYX", "ZCYX", "TYX", "CYX"])
def test_ome_tiff_axes_and_physical_size(tmp_path, axes):
    shape = {"T": 2, "C": 3, "Z": 4, "Y": 12, "X": 14}
    data = _ramp(tuple(shape[a] for a in axes))
    names = ["dapi", "gfp", "rfp"]
    metadata = {"axes": axes, "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.4, "PhysicalSizeXUnit": "µm",
                "PhysicalSizeYUnit": "µm"}
    if "C" in axes:
        metadata["Channel"] = {"Name": names}
    tifffile.imwrite(tmp_path / "img.ome.tif", data, ome=True, metadata=metadata)
    # The expected (S, C, Y, X): T outer, Z inner, whatever the order in the file.
    present = [a for a in "TZCYX" if a in axes]
    expected = np.transpose(data, [axes.index(a) for a in present])
    n_stack = int(np.prod([shape[a] for a in "TZ" if a in axes]))
    expected = expected.reshape(n_stack, shape["C"] if "C" in axes else 1, 12, 14)
    with io.read_image(tmp_path / "img.ome.tif") as stack:
        assert stack.axes == axes
        assert stack.stack_axes == "".join(a for a in "TZ" if a in axes)
        assert stack.shape == expected.shape
        assert stack.pixel_size == pytest.approx((0.4, 0.3)) and stack.unit == "µm"
        if "C" in axes:
            assert stack.channel_names == names
        np.testing.assert_array_equal(stack.asarray(), expected)
        np.testing.assert_array_equal(stack.get_slice(n_stack - 1), expected[-1])


def test_resolution_in_centimetres_gives_microns(tmp_path):
    tifffile.imwrite(tmp_path / "cm.tif", _ramp((8, 8)), resolution=(1e4 / 0.65, 1e4 / 0.65),
                     resolutionunit="CENTIMETER")
    with io.read_image(tmp_path / "cm.tif") as stack:
        assert stack.pixel_size == pytest.approx((0.65, 0.65)) and stack.unit == "µm"


def test_default_dpi_is_not_a_calibration(tmp_path):
    tifffile.imwrite(tmp_path / "dpi.tif", _ramp((8, 8)), resolution=(72, 72), resolutionunit="INCH")
    with io.read_image(tmp_path / "dpi.tif") as stack:
        assert stack.pixel_size is None and stack.unit == ""


def test_one_unknown_axis_is_z_and_with_time_a_tz_stack(tmp_path):
    data = _ramp((2, 3, 8, 9))
    tifffile.imwrite(tmp_path / "tq.tif", data, photometric="minisblack", metadata={"axes": "TQYX"})
    with io.read_image(tmp_path / "tq.tif") as stack:
        assert stack.stack_axes == "TZ" and stack.shape == (6, 1, 8, 9)
        np.testing.assert_array_equal(stack.get_slice(4)[0], data[1, 1])


# --------------------------------------------------------------------------- PNG, JPEG, BMP


def test_png_grey_8_and_16_bit(tmp_path):
    for dtype in (np.uint8, np.uint16):
        data = _ramp((13, 17), dtype) * 3
        Image.fromarray(data).save(tmp_path / "g.png")
        with io.read_image(tmp_path / "g.png") as stack:
            assert stack.shape == (1, 1, 13, 17) and stack.dtype == dtype and stack.axes == "YX"
            np.testing.assert_array_equal(stack.get_slice(0)[0], data)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_png_colour(tmp_path, mode):
    rgb = np.random.default_rng(4).integers(0, 255, (12, 15, 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    image = image.convert(mode) if mode != "P" else image.quantize(16)
    image.save(tmp_path / "c.png")
    expected = np.asarray(image.convert("RGB"))
    with io.read_image(tmp_path / "c.png") as stack:
        assert stack.shape == (1, 3, 12, 15) and stack.channel_names == ["red", "green", "blue"]
        np.testing.assert_array_equal(stack.get_slice(0), np.moveaxis(expected, -1, 0))


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".bmp"])
def test_jpeg_and_bmp(tmp_path, suffix):
    yy, xx = np.mgrid[0:32, 0:40]
    data = (yy * 4 + xx * 2).astype(np.uint8)  # smooth: JPEG keeps it within a few grey levels
    Image.fromarray(data).save(tmp_path / f"img{suffix}")
    with io.read_image(tmp_path / f"img{suffix}") as stack:
        assert stack.shape == (1, 1, 32, 40) and stack.dtype == np.uint8
        diff = np.abs(stack.get_slice(0)[0].astype(int) - data)
        assert diff.max() <= (0 if suffix == ".bmp" else 8)


def test_write_image_round_trips_png_jpeg_and_tiff(tmp_path):
    rgb = np.random.default_rng(5).integers(0, 255, (9, 11, 3), dtype=np.uint8)
    io.write_image(tmp_path / "rgb.png", rgb, "YXS")
    with io.read_image(tmp_path / "rgb.png") as stack:
        np.testing.assert_array_equal(stack.get_slice(0), np.moveaxis(rgb, -1, 0))
    data = _ramp((2, 3, 9, 11)).astype(np.float32)
    io.write_image(tmp_path / "zc.tif", data, "ZCYX", pixel_size=(0.1, 0.2))
    with io.read_image(tmp_path / "zc.tif") as stack:
        assert stack.shape == (2, 3, 9, 11) and stack.pixel_size == pytest.approx((0.1, 0.2))
        np.testing.assert_array_equal(stack.asarray(), data)
    with pytest.raises(ValueError, match="axes"):
        io.write_image(tmp_path / "bad.tif", data, "ZYX")


# --------------------------------------------------------------------------- real data


def test_hela_timelapse_is_a_10_frame_t_stack(data_dir):
    path = data_dir / "hela_timelapse" / "hela_02_t10.tif"
    with io.read_image(path) as stack:
        assert stack.shape == (10, 1, 700, 1100) and len(stack) == 10
        assert stack.stack_axes == "T" and stack.dtype == np.uint16
        frame = stack.get_slice(7)
    np.testing.assert_array_equal(frame[0], tifffile.imread(path, key=7))
    assert 30000 < np.median(frame) < 40000


def test_real_labels_read_as_integers(data_dir):
    labels = io.read_labels(data_dir / "hela_timelapse" / "hela_02_t10_auto_masks.tif")
    assert labels.shape == (10, 700, 1100) and labels.dtype.kind in "ui" and labels.max() > 10


# --------------------------------------------------------------------------- laziness, closing


@pytest.fixture
def page_reads(monkeypatch):
    """Count decoded TIFF pages (tifffile's page-level reads)."""
    calls = []
    for cls in (tifffile.TiffPage, tifffile.TiffFrame):
        original = cls.asarray

        def counting(self, *args, _original=original, **kwargs):
            calls.append(self.index)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "asarray", counting)
    return calls


def test_get_slice_decodes_only_the_pages_of_that_slice(tmp_path, page_reads):
    data = _ramp((40, 3, 64, 64))  # 120 compressed pages: not memory-mappable
    tifffile.imwrite(tmp_path / "big.tif", data, imagej=True, metadata={"axes": "ZCYX"}, compression="zlib")
    with io.read_image(tmp_path / "big.tif") as stack:
        assert page_reads == []  # opening decodes nothing
        slice_17 = stack.get_slice(17)
        assert set(page_reads) == {51, 52, 53}  # the three channel pages of z = 17
    np.testing.assert_array_equal(slice_17, data[17])


def test_uncompressed_stack_is_memory_mapped(tmp_path, page_reads):
    data = _ramp((30, 64, 64))
    tifffile.imwrite(tmp_path / "raw.tif", data, imagej=True, metadata={"axes": "ZYX"})
    with io.read_image(tmp_path / "raw.tif") as stack:
        assert stack._reader.is_memmapped
        np.testing.assert_array_equal(stack.get_slice(29)[0], data[29])
    assert page_reads == []  # served from the memory map, no page decoded


def test_close_and_context_manager(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", _ramp((3, 8, 8)), photometric="minisblack", compression="zlib")
    stack = io.read_image(tmp_path / "a.tif")
    handle = stack._reader._tif.filehandle
    with stack:
        assert not handle.closed
        with pytest.raises(IndexError):
            stack.get_slice(3)
    assert handle.closed
    with pytest.raises(ValueError, match="closed"):
        stack.get_slice(0)
    stack.close()  # closing twice is harmless


def test_paths_with_spaces_and_non_ascii(tmp_path):
    folder = tmp_path / "données d'été" / "série 1"
    folder.mkdir(parents=True)
    io.write_labels(folder / "étiquettes 1.tif", np.eye(5, dtype=np.uint8))
    np.testing.assert_array_equal(io.read_labels(folder / "étiquettes 1.tif"), np.eye(5))
    assert io.list_images(folder) == [folder / "étiquettes 1.tif"]


# --------------------------------------------------------------------------- labels


def test_read_labels_2d_3d_and_palette_png(tmp_path):
    labels = np.random.default_rng(6).integers(0, 4, (3, 10, 12)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "l3.tif", labels, photometric="minisblack")
    tifffile.imwrite(tmp_path / "l2.tif", labels[0])
    out3, out2 = io.read_labels(tmp_path / "l3.tif"), io.read_labels(tmp_path / "l2.tif")
    assert out3.shape == (3, 10, 12) and out2.shape == (10, 12) and out3.dtype == np.uint16
    np.testing.assert_array_equal(out3, labels)
    palette = Image.fromarray(labels[0].astype(np.uint8), mode="L").convert("P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12))
    palette.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(io.read_labels(tmp_path / "pal.png"), labels[0])


def test_read_labels_accepts_integral_floats(tmp_path):
    tifffile.imwrite(tmp_path / "f.tif", np.array([[0, 1], [2, 300]], np.float32))
    out = io.read_labels(tmp_path / "f.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, [[0, 1], [2, 300]])


# --------------------------------------------------------------------------- normalisation


def test_normalize_percentile_per_channel():
    rng = np.random.default_rng(7)
    image = np.stack([rng.normal(100, 10, (64, 64)), rng.normal(33000, 500, (64, 64))]).astype(np.uint16)
    out = io.normalize_percentile(image, 1.0, 99.0)
    assert out.dtype == np.float32 and out.shape == image.shape
    for channel, original in zip(out, image):
        lo, hi = np.percentile(original, (1.0, 99.0))
        np.testing.assert_allclose(channel, (original - lo) / (hi - lo), rtol=1e-5, atol=1e-5)
        assert abs(np.mean(channel < 0) - 0.01) < 0.01 and abs(np.mean(channel > 1) - 0.01) < 0.01


def test_normalize_percentile_nan_inf_and_constant():
    image = np.random.default_rng(8).random((3, 32, 32)).astype(np.float32)
    image[0, 0, 0], image[0, 0, 1], image[0, 0, 2] = np.nan, np.inf, -np.inf
    image[1] = 7.0
    image[2] = np.nan
    out = io.normalize_percentile(image)
    assert np.isfinite(out).all()
    assert out[0, 0, 0] == 0.0 and out[0, 0, 1] == pytest.approx(1.0) and out[0, 0, 2] == 0.0
    finite = image[0][np.isfinite(image[0])]
    lo, hi = np.percentile(finite, (1.0, 99.8))
    np.testing.assert_allclose(out[0, 5], (image[0, 5] - lo) / (hi - lo), rtol=1e-5, atol=1e-6)
    assert not out[1].any() and not out[2].any()  # constant, and no finite pixel at all: zeros


def test_normalize_percentile_2d_and_big_image_subsample():
    big = np.random.default_rng(9).random((2000, 1500)).astype(np.float32) * 1000
    out = io.normalize_percentile(big, 2.0, 98.0)
    assert out.shape == big.shape
    # The subsample's percentiles land within a hair of the exact ones.
    assert np.mean(out < 0) == pytest.approx(0.02, abs=0.002)
    assert np.mean(out > 1) == pytest.approx(0.02, abs=0.002)
    with pytest.raises(ValueError):
        io.normalize_percentile(big, 60, 40)


# --------------------------------------------------------------------------- writers


@pytest.mark.parametrize(("max_label", "dtype", "imagej"),
                         [(3, np.uint8, True), (255, np.uint8, True), (256, np.uint16, True),
                          (65535, np.uint16, True), (70000, np.uint32, False)])
def test_write_labels_dtype_and_format(tmp_path, max_label, dtype, imagej):
    labels = np.zeros((2, 10, 12), np.int64)
    labels[1, 3, 4] = max_label
    labels[0, 1:3, 1:3] = 1
    io.write_labels(tmp_path / "l.tif", labels, stack_axis="T")
    with tifffile.TiffFile(tmp_path / "l.tif") as tif:
        assert tif.series[0].dtype == dtype and tif.is_imagej == imagej
        assert tif.series[0].axes == "TYX"
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        np.testing.assert_array_equal(tif.asarray(), labels)
    np.testing.assert_array_equal(io.read_labels(tmp_path / "l.tif"), labels)


def test_write_labels_calibration_round_trip(tmp_path):
    io.write_labels(tmp_path / "cal.tif", np.ones((6, 7), np.uint8), pixel_size=(0.2, 0.125), unit="µm")
    with tifffile.TiffFile(tmp_path / "cal.tif") as tif:
        assert tif.imagej_metadata["unit"] == "micron"
        assert tif.pages[0].tags["XResolution"].value[0] / tif.pages[0].tags["XResolution"].value[1] == 8
    with io.read_image(tmp_path / "cal.tif") as stack:
        assert stack.pixel_size == pytest.approx((0.2, 0.125)) and stack.unit == "µm"


def test_write_labels_refuses_bad_values(tmp_path):
    with pytest.raises(ValueError, match="negative"):
        io.write_labels(tmp_path / "n.tif", np.array([[-1, 0]]))
    with pytest.raises(ValueError, match="integers"):
        io.write_labels(tmp_path / "f.tif", np.array([[0.5, 0]]))
    with pytest.raises(ValueError, match="TIFF"):
        io.write_labels(tmp_path / "l.png", np.zeros((3, 3), np.uint8))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("shape", [(3, 10, 12), (2, 3, 10, 12)])
def test_write_probabilities(tmp_path, shape):
    probs = np.random.default_rng(10).random(shape).astype(np.float64)
    io.write_probabilities(tmp_path / "p.tif", probs, class_names=["bg", "cell", "edge"],
                           pixel_size=(0.5, 0.5))
    with tifffile.TiffFile(tmp_path / "p.tif") as tif:
        assert tif.is_imagej and tif.series[0].dtype == np.float32
        assert tif.series[0].axes == ("CYX" if len(shape) == 3 else "ZCYX")
        assert (tif.imagej_metadata["min"], tif.imagej_metadata["max"]) == (0.0, 1.0)
    with io.read_image(tmp_path / "p.tif") as stack:
        assert stack.channel_names == ["bg", "cell", "edge"]
        np.testing.assert_array_equal(stack.asarray(), probs.astype(np.float32).reshape(-1, 3, 10, 12))


def test_write_mask_is_0_255(tmp_path):
    mask = np.zeros((4, 5), bool)
    mask[1, 2] = True
    io.write_mask(tmp_path / "m.tif", mask)
    out = tifffile.imread(tmp_path / "m.tif")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, mask * 255)


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "labels.tif"
    io.write_labels(target, np.ones((4, 4), np.uint8))
    before = target.read_bytes()

    def half_written(path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"II*\x00 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", half_written)
    with pytest.raises(ImageWriteError, match="disk is full"):
        io.write_labels(target, np.full((4, 4), 2, np.uint8))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.tif"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_raises_image_write_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ImageWriteError, match="read-only"):
            io.write_mask(folder / "m.tif", np.ones((3, 3)))
    finally:
        folder.chmod(0o700)


def test_unwritable_folder_raises_image_write_error(tmp_path, monkeypatch):
    # Same path as a read-only folder, for runs as root (where chmod does not stop writes).
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(ImageWriteError, match="read-only") as caught:
        io.write_probabilities(tmp_path / "p.tif", np.zeros((2, 3, 3)))
    assert "p.tif" in str(caught.value)
    monkeypatch.undo()
    with pytest.raises(ImageWriteError, match="does not exist"):
        io.write_labels(tmp_path / "missing" / "l.tif", np.zeros((3, 3), np.uint8))


# --------------------------------------------------------------------------- listing


def test_list_images(tmp_path):
    for name in ["b.tif", "a.PNG", "c.tiff", ".hidden.tif", "notes.txt", "d.jpg", ".a.ome.tmp.tif"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.tif").mkdir()
    assert [p.name for p in io.list_images(tmp_path)] == ["a.PNG", "b.tif", "c.tiff", "d.jpg"]
    assert ".tif" in io.SUPPORTED_SUFFIXES and ".png" in io.SUPPORTED_SUFFIXES
    with pytest.raises(ImageReadError, match="does not exist"):
        io.list_images(tmp_path / "nope")
