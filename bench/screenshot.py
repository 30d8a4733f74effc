"""The README's screenshot: the application after a short real training on ISBI 2012, overlay visible.

Run under a real X server (Xvfb) so that fonts and styles are those of a desktop::

    xvfb-run -s "-screen 0 1600x1000x24" python bench/screenshot.py --seconds 90 --out docs/screenshot.png

Steps: open ``../shared/data/isbi2012/images/000.tif`` in the main window (fresh untitled project in a
temporary config folder), name the classes "cell interior" and "membrane", put sparse scribbles drawn
from the ground truth (bench/scribbles.py, under 5% of the pixels) into the labels, press Train with
the ``fast`` preset and a time limit, wait until it ends, show the membrane probability, grab the
window, and save it as a palette PNG (under ~300 KB). The seed is fixed; timings vary with the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("UNET_STUDIO_DATA", ROOT.parent / "shared" / "data"))


def _scribbles(labels_path: Path):
    import numpy as np
    import tifffile

    from bench.scribbles import UNLABELLED, scribble_labels

    mask = tifffile.imread(labels_path)
    sparse = scribble_labels(mask, foreground=255, background=0, fraction=0.04, seed=0)
    values = np.zeros(mask.shape, np.uint8)
    values[sparse == 255] = 1  # cell interior
    values[sparse == 0] = 2    # membrane
    values[sparse == UNLABELLED] = 0
    return values


def save_small_png(image, path: Path, max_bytes: int = 300_000) -> int:
    """Save a QImage as an adaptive-palette PNG; shrink a little until it is under ``max_bytes``."""
    import io

    import numpy as np
    from PIL import Image
    from PySide6 import QtCore, QtGui

    scale = 1.0
    while True:
        scaled = image if scale == 1.0 else image.scaledToWidth(int(image.width() * scale),
                                                               QtCore.Qt.TransformationMode.SmoothTransformation)
        rgb = scaled.convertToFormat(QtGui.QImage.Format.Format_RGB888)
        array = np.frombuffer(rgb.constBits(), np.uint8).reshape(rgb.height(), rgb.bytesPerLine())
        array = array[:, : rgb.width() * 3].reshape(rgb.height(), rgb.width(), 3)
        buffer = io.BytesIO()
        Image.fromarray(array).quantize(colors=128, dither=Image.Dither.NONE).save(buffer, "PNG", optimize=True)
        if buffer.tell() <= max_bytes or scale < 0.5:
            path.write_bytes(buffer.getvalue())
            return buffer.tell()
        scale *= 0.9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0, help="training time limit")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--image", default="000", help="ISBI 2012 slice")
    args = parser.parse_args()

    os.environ.setdefault("UNET_STUDIO_CONFIG_DIR", tempfile.mkdtemp(prefix="unet-studio-shot-"))
    from PySide6 import QtWidgets

    from unet_studio.gui.controllers.training_request import TrainingRequest
    from unet_studio.gui.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    window = MainWindow()
    window.resize(1280, 800)
    window.show()
    window.open_image(DATA / "isbi2012" / "images" / f"{args.image}.tif")
    session = window.session
    session.class_editing.rename(0, "cell interior")
    session.class_editing.rename(1, "membrane")
    session.editing.set_slice_labels(_scribbles(DATA / "isbi2012" / "labels" / f"{args.image}.tif"))
    window.training_panel.set_settings(TrainingRequest("fast", time_limit_s=args.seconds, epochs=200))
    finished = []
    window.training.finished.connect(lambda written: finished.append(written))
    window.training_panel.train_button.click()
    started = time.perf_counter()
    while not finished and time.perf_counter() - started < args.seconds + 120:
        app.processEvents()
        time.sleep(0.01)
    if window.last_error:
        print("error:", window.last_error, file=sys.stderr)
        return 1
    window.view_state.update(prediction_class=1, prediction_opacity=0.6, label_opacity=0.8)
    window.canvas.set_label_opacity(0.8)
    window.binder._on_cursor(188, 301)  # what the status bar shows with the cursor on a pixel
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    size = save_small_png(window.grab().toImage(), args.out)
    print(f"trained {time.perf_counter() - started:.0f} s; wrote {args.out} ({size / 1024:.0f} KB)")
    session.discard_untitled()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
