"""Connected components, watershed splitting, clean-up and measurements."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import tifffile

from unet_studio.core.errors import ConfigError
from unet_studio.core.predict.postprocess import (
    InstanceConfig,
    connected_components,
    fill_holes,
    find_instances,
    measure,
    remove_small_objects,
    split_touching,
    table_to_csv,
    write_measurements_csv,
)


def disks(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    for cy, cx in centres:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    return mask


def test_touching_disks_split_by_watershed_not_by_components():
    mask = disks((80, 120), [(40, 35), (40, 60), (40, 95)], 14)  # first two overlap, third apart
    assert connected_components(mask).max() == 2
    labels = split_touching(mask)
    assert labels.dtype == np.int32 and labels.max() == 3
    assert (labels > 0).sum() == mask.sum()  # nothing lost, nothing added
    assert labels[40, 30] != labels[40, 65]


def test_probability_seeds_split_along_a_confidence_dip():
    mask = disks((60, 100), [(30, 35), (30, 62)], 16)
    probability = np.ones(mask.shape)
    probability[:, 47:50] = 0.2  # the network is unsure where the two nuclei meet
    labels = find_instances(mask, probability, InstanceConfig(seeds="probability"))
    assert labels.max() == 2 and labels[30, 30] != labels[30, 70]


def test_thin_objects_keep_a_seed():
    mask = np.zeros((40, 40), bool)
    mask[5, 5:35] = True  # distance 1 everywhere: below any h
    mask[20:24, 10:14] = True
    labels = split_touching(mask, config=InstanceConfig(h=5))
    assert labels.max() == 2 and ((labels > 0) == mask).all()


def test_remove_small_objects_and_fill_holes():
    mask = disks((50, 50), [(20, 20)], 10)
    mask[40:42, 40:42] = True  # 4 px speck
    mask[20, 20] = False  # 1 px hole
    cleaned = remove_small_objects(mask, 5)
    assert cleaned.dtype == bool and not cleaned[40:42, 40:42].any() and cleaned[20, 25]
    labels = connected_components(mask)
    cleaned_labels = remove_small_objects(labels, 5)
    assert labels.max() == 2 and cleaned_labels.max() == 1 and (cleaned_labels > 0).sum() == cleaned.sum()
    assert fill_holes(mask)[20, 20] and not fill_holes(mask, max_size=0)[20, 20]
    big_hole = disks((50, 50), [(25, 25)], 15) & ~disks((50, 50), [(25, 25)], 5)
    assert not fill_holes(big_hole, max_size=10)[25, 25] and fill_holes(big_hole, max_size=200)[25, 25]


def test_find_instances_pipeline():
    mask = disks((80, 120), [(40, 35), (40, 60)], 14)
    mask[70:72, 5:7] = True
    labels = find_instances(mask, config=InstanceConfig(min_size=10))
    assert labels.max() == 2 and sorted(np.unique(labels)) == [0, 1, 2]
    assert find_instances(mask, config=InstanceConfig(method="components", min_size=0)).max() == 2
    assert find_instances(np.zeros((10, 10), bool)).max() == 0
    with pytest.raises(ConfigError):
        InstanceConfig(method="magic")


def test_measurements_in_pixels_and_physical_units():
    labels = np.zeros((40, 60), np.int32)
    labels[10:20, 5:25] = 1  # 10 x 20 rectangle
    labels[30:34, 40:44] = 2
    intensity = np.zeros((40, 60), np.float32)
    intensity[10:20, 5:25] = 7.0
    table = measure(labels, intensity, pixel_size=(0.5, 0.25), unit="µm")
    assert table["label"].tolist() == [1, 2]
    assert table["area_px"].tolist() == [200, 16]
    assert table["centroid_y_px"][0] == pytest.approx(14.5) and table["centroid_x_px"][0] == pytest.approx(14.5)
    assert [table[k][0] for k in ("bbox_min_y", "bbox_min_x", "bbox_max_y", "bbox_max_x")] == [10, 5, 20, 25]
    assert table["mean_intensity"].tolist() == [7.0, 0.0]
    assert table["solidity"][0] == pytest.approx(1.0) and table["eccentricity"][1] == pytest.approx(0.0, abs=1e-6)
    assert table["area_um2"][0] == pytest.approx(200 * 0.125)
    assert table["centroid_y_um"][0] == pytest.approx(14.5 * 0.5)
    assert table["equivalent_diameter_um"][0] == pytest.approx(np.sqrt(4 * 25 / np.pi))
    assert "perimeter_um" not in table  # not defined for non-square pixels
    plain = measure(labels)
    assert "mean_intensity" not in plain and not any(k.endswith("_um") for k in plain)
    multi = measure(labels, np.stack([intensity, intensity * 2]))
    assert multi["mean_intensity_c1"].tolist() == [14.0, 0.0]


def test_measurement_csv_is_written_atomically(tmp_path):
    labels = np.zeros((20, 20), np.int32)
    labels[2:6, 2:6] = 1
    table = measure(labels, pixel_size=(0.5, 0.5), unit="um")
    empty = measure(np.zeros((20, 20), np.int32), pixel_size=(0.5, 0.5), unit="um")
    path = tmp_path / "m.csv"
    write_measurements_csv(path, [({"slice": 0}, table), ({"slice": 1}, empty), ({"slice": 2}, table)])
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [r["slice"] for r in rows] == ["0", "2"]
    assert rows[0]["area_px"] == "16" and float(rows[0]["area_um2"]) == 4.0 and "perimeter_um" in rows[0]
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]
    assert table_to_csv(empty).strip().split(",")[0] == "label"


def test_dsb2018_watershed_counts_closer_to_ground_truth(data_dir):
    """Ground-truth foreground (labels > 0) as the mask: watershed splitting recovers touching nuclei."""
    paths = sorted((data_dir / "dsb2018" / "labels").glob("*.tif"))
    assert len(paths) >= 50
    rows = []
    for path in paths:
        truth = tifffile.imread(path)
        mask = truth > 0
        n_true = len(np.unique(truth[mask]))
        n_components = int(find_instances(mask, config=InstanceConfig(method="components")).max())
        n_watershed = int(find_instances(mask).max())
        rows.append((path.stem, n_true, n_components, n_watershed))
    print(f"\n{'image':>6} {'truth':>6} {'components':>11} {'watershed':>10}")
    for row in rows:
        print(f"{row[0]:>6} {row[1]:>6} {row[2]:>11} {row[3]:>10}")
    truth, comp, ws = (np.array([r[i] for r in rows]) for i in (1, 2, 3))
    err_comp, err_ws = np.abs(comp - truth), np.abs(ws - truth)
    print(f"{'total':>6} {truth.sum():>6} {comp.sum():>11} {ws.sum():>10}   "
          f"abs error: components {err_comp.sum()}, watershed {err_ws.sum()}")
    assert err_ws.sum() < 0.6 * err_comp.sum()
    assert abs(ws.sum() - truth.sum()) < abs(comp.sum() - truth.sum())
    assert (err_ws < err_comp).sum() > 3 * (err_ws > err_comp).sum()
