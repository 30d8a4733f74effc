"""Bad input files: each raises ImageReadError naming the file and the problem, never a raw exception."""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np
import pytest
import tifffile
from PIL import Image

from unet_studio.core import io
from unet_studio.core.errors import ImageReadError, UNetStudioError


def _stack_tif(path, compression=None, imagej=False):
    data = (np.arange(6 * 48 * 64) % 251).reshape(6, 48, 64).astype(np.uint16)
    tifffile.imwrite(path, data, compression=compression, imagej=imagej, photometric="minisblack",
                     metadata={"axes": "ZYX"})
    return path


def _truncated(fraction, compression=None, imagej=False):
    def make(tmp_path):
        full = _stack_tif(tmp_path / "whole.tif", compression, imagej).read_bytes()
        path = tmp_path / "cut off.tif"
        path.write_bytes(full[: int(len(full) * fraction)])
        return path
    return make


def _write(name, content):
    def make(tmp_path):
        path = tmp_path / name
        path.write_bytes(content)
        return path
    return make


def _tiff_array(name, shape, **kwargs):
    def make(tmp_path):
        path = tmp_path / name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tifffile warns about zero-size arrays
            tifffile.imwrite(path, np.zeros(shape, np.uint8), **kwargs)
        return path
    return make


def _folder(name):
    def make(tmp_path):
        path = tmp_path / name
        path.mkdir()
        return path
    return make


def _cut_png(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    return path


BAD_FILES = {
    "missing file": (lambda tmp_path: tmp_path / "absent.tif", "does not exist"),
    "empty file": (_write("empty.tif", b""), "empty"),
    "text named .tif": (_write("notes.tif", b"sample 1, stained with DAPI\nexposure 200 ms\n"), "text"),
    "binary garbage named .tif": (_write("noise.tif", bytes(range(7, 250)) * 4), "not a TIFF"),
    "tiff header only": (_write("header.tif", b"II*\x00"), "damaged"),
    "truncated tiff 1%": (_truncated(0.01), "damaged|truncated"),
    "truncated tiff 50%": (_truncated(0.5), "truncated"),
    "truncated tiff 95%": (_truncated(0.95), "truncated"),
    "truncated zlib tiff 50%": (_truncated(0.5, "zlib"), "truncated"),
    "truncated zlib tiff 97%": (_truncated(0.97, "zlib"), "truncated"),
    "truncated imagej tiff 40%": (_truncated(0.4, imagej=True), "truncated"),
    "truncated imagej zlib tiff 70%": (_truncated(0.7, "zlib", imagej=True), "truncated"),
    "unknown extension": (_write("scan.czi", b"ZISRAWFILE" + bytes(100)), "extension '.czi'"),
    "text file .txt": (_write("readme.txt", b"hello"), "extension '.txt'"),
    "no extension": (_write("image", b"II*\x00" + bytes(100)), "no file extension"),
    "6-D unknown axes": (_tiff_array("six.tif", (2, 2, 2, 2, 8, 8)), "6 dimensions.*unknown"),
    "5-D unknown axes": (_tiff_array("five.tif", (2, 3, 2, 8, 8), photometric="minisblack"),
                         "5 dimensions.*unknown"),
    "zero-size dimension": (_tiff_array("zero.tif", (0, 8)), "size zero"),
    "zero-size stack": (_tiff_array("zero3.tif", (3, 0, 8)), "size zero"),
    "directory": (_folder("images"), "folder"),
    "directory named .tif": (_folder("stack.tif"), "folder"),
    "truncated png": (_cut_png, "damaged"),
    "corrupt jpeg": (_write("photo.jpg", b"\xff\xd8\xff\xe0" + bytes(50)), "damaged|JPEG"),
    "complex pixels": (lambda tmp_path: _complex(tmp_path), "complex"),
}


def _complex(tmp_path):
    path = tmp_path / "fft.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.complex64))
    return path


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_input_raises_image_read_error_naming_file_and_problem(tmp_path, case):
    make, problem = BAD_FILES[case]
    path = make(tmp_path)
    for reader in (io.read_image, io.read_labels):
        with pytest.raises(ImageReadError, match=problem) as caught:
            stack = reader(path)
            if isinstance(stack, io.ImageStack):  # a reader that only fails later would be a bug
                stack.asarray()
        message = str(caught.value)
        assert str(path) in message
        # "Cannot read '<file>': <problem>. <what to do>." in a few lines at most
        assert message.startswith(f"Cannot read '{path}': ") and message.endswith(".")
        assert ". " in message.split("': ", 1)[1] and len(message) < 600


def test_error_in_a_later_page_is_an_image_read_error_from_get_slice(tmp_path):
    path = _stack_tif(tmp_path / "damaged.tif", compression="zlib")
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[4].dataoffsets[0], tif.pages[4].databytecounts[0]
    data = bytearray(path.read_bytes())
    data[offset: offset + count] = bytes(count)  # zeros are not a zlib stream
    path.write_bytes(bytes(data))
    with io.read_image(path) as stack:  # the file's structure is intact: opening succeeds
        np.testing.assert_array_equal(stack.get_slice(3).shape, (1, 48, 64))
        with pytest.raises(ImageReadError, match="slice 4 .*damaged") as caught:
            stack.get_slice(4)
    assert str(path) in str(caught.value)


def test_tiff_with_png_extension_is_read_by_content_with_a_warning(tmp_path, caplog):
    path = _stack_tif(tmp_path / "stack.png")
    with caplog.at_level(logging.WARNING, logger="unet_studio.core.io.stack"), io.read_image(path) as stack:
        assert stack.shape == (6, 1, 48, 64)
    assert "TIFF file despite its extension .png" in caplog.text


@pytest.mark.parametrize("labels,problem", [
    (np.random.default_rng(1).integers(0, 255, (8, 8, 3), dtype=np.uint8), "RGB"),
    (np.array([[0.0, 0.5], [1.0, 2.0]], np.float32), "fractional"),
    (np.array([[0.0, np.nan], [1.0, 2.0]], np.float32), "NaN"),
    (np.array([[0, -3], [1, 2]], np.int16), "negative"),
])
def test_read_labels_refuses_values_that_are_not_labels(tmp_path, labels, problem):
    path = tmp_path / "labels.tif"
    tifffile.imwrite(path, labels, photometric="rgb" if labels.ndim == 3 else "minisblack")
    with pytest.raises(ImageReadError, match=problem) as caught:
        io.read_labels(path)
    assert str(path) in str(caught.value)


def test_read_labels_refuses_jpeg(tmp_path):
    path = tmp_path / "labels.jpg"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    with pytest.raises(ImageReadError, match="JPEG") as caught:
        io.read_labels(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("seed", range(40))
def test_corrupted_bytes_never_raise_anything_but_image_read_error(tmp_path, seed):
    rng = np.random.default_rng(seed)
    source = _stack_tif(tmp_path / "good.tif", compression="zlib" if seed % 2 else None,
                        imagej=seed % 4 < 2).read_bytes()
    data = bytearray(source)
    # Damage the header and IFD region (where structure lives) and a few random places.
    for position in rng.integers(0, min(len(data), 400), 6).tolist() + rng.integers(0, len(data), 4).tolist():
        data[position] = int(rng.integers(0, 256))
    path = tmp_path / "corrupt.tif"
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with io.read_image(path) as stack:
                stack.asarray()
        except UNetStudioError as exc:
            assert isinstance(exc, ImageReadError) and str(path) in str(exc)
        # anything else escapes and fails the test


def test_asarray_of_an_image_larger_than_memory_says_so(tmp_path, monkeypatch):
    path = _stack_tif(tmp_path / "huge.tif")

    def no_memory(*args, **kwargs):
        raise MemoryError

    with io.read_image(path) as stack:
        monkeypatch.setattr(np, "empty", no_memory)
        with pytest.raises(ImageReadError, match="GiB, more memory than is free") as caught:
            stack.asarray()
        monkeypatch.undo()
        assert stack.get_slice(5).shape == (1, 48, 64)  # slice by slice still works
    assert str(path) in str(caught.value)


# --- OME-TIFFs that name other files (issue 13, cases 10 and 11) ----------------------------------------

_OWN_UUID = "urn:uuid:11111111-1111-1111-1111-111111111111"


def _ome_naming(path, other_name, other_uuid="urn:uuid:22222222-2222-2222-2222-222222222222"):
    """A 2-plane OME-TIFF at ``path`` whose second plane is in the file its XML names ``other_name``."""
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="{_OWN_UUID}">
<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="8" SizeY="8"
 SizeZ="2" SizeC="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>
<TiffData FirstZ="0" IFD="0" PlaneCount="1"><UUID FileName="{path.name}">{_OWN_UUID}</UUID></TiffData>
<TiffData FirstZ="1" IFD="0" PlaneCount="1"><UUID FileName="{other_name}">{other_uuid}</UUID></TiffData>
</Pixels></Image></OME>"""
    tifffile.imwrite(path, np.full((8, 8), 7, np.uint8), description=xml, metadata=None)
    return path


def _outside_tif(tmp_path):
    tifffile.imwrite(tmp_path / "secret.tif", np.full((8, 8), 99, np.uint8))
    return tmp_path / "secret.tif"


def _fifo(folder):
    if not hasattr(os, "mkfifo"):
        pytest.skip("named pipes need a POSIX system")
    os.mkfifo(folder / "pipe.tif")
    return "pipe.tif"


def _link_outside(folder):
    (folder / "link.tif").symlink_to(_outside_tif(folder.parent))
    return "link.tif"


OME_NAMES = {
    "absolute path elsewhere": (lambda folder: str(_outside_tif(folder.parent)), "outside the image's folder"),
    "parent folder": (lambda folder: (_outside_tif(folder.parent), "../secret.tif")[1], "outside the image's folder"),
    "/etc/passwd": (lambda folder: "/etc/passwd", "outside the image's folder"),
    "/dev/stdin": (lambda folder: "/dev/stdin", "outside the image's folder"),
    "symbolic link out of the folder": (_link_outside, "symbolic link"),
    "named pipe in the folder": (_fifo, "named pipe"),
    "a folder": (lambda folder: ((folder / "sub.tif").mkdir(), "sub.tif")[1], "a folder"),
}


@pytest.mark.parametrize("case", list(OME_NAMES))
def test_ome_tiff_naming_a_file_outside_its_folder_or_not_a_file_is_refused(tmp_path, case):
    make_name, problem = OME_NAMES[case]
    folder = tmp_path / "images"
    folder.mkdir()
    path = _ome_naming(folder / "evil.ome.tif", make_name(folder))
    with pytest.raises(ImageReadError) as info:  # a named pipe would block here forever before the fix
        io.read_image(path)
    message = str(info.value)
    assert "evil.ome.tif" in message and problem in message and "one folder" in message


def test_multi_file_ome_tiff_with_its_files_side_by_side_is_read(tmp_path):
    tifffile.imwrite(tmp_path / "part2.tif", np.full((8, 8), 5, np.uint8))
    path = _ome_naming(tmp_path / "whole.ome.tif", "part2.tif")
    with io.read_image(path) as stack:
        assert stack.shape == (2, 1, 8, 8)
        assert [int(stack.get_slice(i).max()) for i in range(2)] == [7, 5]


def test_renamed_single_file_ome_tiff_naming_its_old_name_is_read(tmp_path):
    """Its UUID elements carry the file's own UUID: nothing else is opened, nothing is refused."""
    tifffile.imwrite(tmp_path / "old.ome.tif", np.zeros((2, 8, 8), np.uint8), ome=True,
                     metadata={"axes": "ZYX"})
    renamed = tmp_path / "new name.ome.tif"
    os.replace(tmp_path / "old.ome.tif", renamed)
    with io.read_image(renamed) as stack:
        assert stack.shape == (2, 1, 8, 8)


def test_an_image_path_that_is_a_named_pipe_is_refused_without_blocking(tmp_path):
    name = _fifo(tmp_path)
    with pytest.raises(ImageReadError, match="not a regular file"):
        io.read_image(tmp_path / name)


# --- smaller ones -----------------------------------------------------------------------------------------

def test_tiff_whose_pages_differ_in_size_reads_the_first_and_warns(tmp_path, caplog):
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.zeros((8, 8), np.uint8), photometric="minisblack", metadata=None)
        tif.write(np.zeros((16, 4), np.uint8), photometric="minisblack", metadata=None)
    with caplog.at_level(logging.WARNING, logger="unet_studio.core.io"), io.read_image(path) as stack:
        assert stack.shape == (1, 1, 8, 8)
        assert len(stack.warnings) == 1 and "only the first" in stack.warnings[0]
    assert any(r.levelno == logging.WARNING and "only the first" in r.getMessage() for r in caplog.records)


def test_jpeg_exif_orientation_is_applied(tmp_path):
    data = np.zeros((20, 40, 3), np.uint8)
    data[:, :20] = 255  # a wide image, white on its left half
    img = Image.fromarray(data)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img.save(tmp_path / "portrait.jpg", exif=exif, quality=95)
    with io.read_image(tmp_path / "portrait.jpg") as stack:
        assert stack.shape == (1, 3, 40, 20)  # shown upright: tall
        top = stack.get_slice(0)[0]
        assert top[:15].mean() > 200 and top[25:].mean() < 50  # the left half turned into the top half


def test_a_name_near_the_file_system_limit_is_written_and_leaves_no_temporary(tmp_path):
    path = tmp_path / ("a" * 240 + "_labels.tif")  # 251 bytes: the temporary name must be shorter
    io.write_labels(path, np.ones((4, 4), np.uint8))
    assert io.read_labels(path).sum() == 16
    assert os.listdir(tmp_path) == [path.name]
