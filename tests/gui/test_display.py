"""Display: channels and composite of a multichannel image, percentile contrast, status bar text."""

from __future__ import annotations

import numpy as np
import tifffile

from unet_studio.gui.canvas import COMPOSITE


def test_channels_composite_and_contrast(window, tmp_path, sample_stack):
    nuclei = sample_stack[0]
    two = np.stack([nuclei, 255 - nuclei]).astype(np.uint8)
    path = tmp_path / "two channels.tif"
    tifffile.imwrite(path, two, imagej=True, metadata={"axes": "CYX"})
    window.open_image(path)
    assert window.last_error is None
    combo = window.display_panel.channel_combo
    assert combo.count() == 3 and combo.isEnabled()  # two channels and the composite
    np.testing.assert_array_equal(window.canvas.raw_item.image, two[0])
    combo.setCurrentIndex(1)
    np.testing.assert_array_equal(window.canvas.raw_item.image, two[1])
    combo.setCurrentIndex(combo.findData(COMPOSITE))
    assert window.canvas.raw_item.image.shape == two.shape[1:] + (3,)
    combo.setCurrentIndex(0)
    wide = window.canvas.levels
    window.display_panel.low_spin.setValue(20.0)
    window.display_panel.high_spin.setValue(80.0)
    narrow = window.canvas.levels
    assert wide[0] <= narrow[0] and narrow[1] <= wide[1] and narrow != wide


def test_status_bar_shows_value_and_class_under_the_cursor(window, sample_512):
    from gui_helpers import mouse_stroke

    window.open_image(sample_512)
    mouse_stroke(window, [(40, 40)])
    raw = tifffile.imread(sample_512)
    window.canvas.cursor_moved.emit(40, 40)
    text = window.cursor_label.text()
    assert f"value {raw[40, 40]}" in text and "label foreground" in text
    window.canvas.cursor_moved.emit(-1, -1)
    assert window.cursor_label.text() == ""
