"""The random-forest pixel classifier that benchmarks compare UNet Studio with (ilastik's approach).

The same classifier as ``bench/train_accuracy.py``: ``skimage.feature.multiscale_basic_features``
(intensity, edges and texture at sigma 1-16) and ``sklearn.ensemble.RandomForestClassifier`` (100 trees,
depth 10, 5% of the samples per tree, all cores), on images normalised per image (percentiles 1 and
99.8, as UNet Studio normalises its inputs). Dense labels are subsampled (a fixed number of pixels per
class and image, fixed seed) so that fitting stays within memory and minutes; the forest's objects are
the connected components of its foreground, small ones dropped as ``unet-studio predict --min-size`` does.
"""

from __future__ import annotations

import math

import numpy as np

from bench import cores

#: At most this many labelled pixels per class go into a forest (an equal share per image).
MAX_PER_CLASS = 200_000
#: Objects smaller than this are dropped (the default of ``unet-studio predict --min-size``).
MIN_OBJECT_SIZE = 10


def features(image: np.ndarray) -> np.ndarray:
    """Multiscale features of a 2-D image normalised per image: ``(Y, X, F)`` float32.

    Parameters
    ----------
    image : numpy.ndarray
        A 2-D greyscale image of any numeric dtype.

    Returns
    -------
    numpy.ndarray
        Intensity, edge and texture features at sigma 1 to 16.
    """
    from skimage.feature import multiscale_basic_features

    image = np.asarray(image, np.float32)
    if image.ndim != 2:
        raise ValueError(f"the forest takes 2-D greyscale images, not shape {image.shape}")
    low, high = np.percentile(image, (1, 99.8))
    image = (image - low) / max(float(high - low), 1e-6)
    return multiscale_basic_features(image, intensity=True, edges=True, texture=True, sigma_min=1,
                                     sigma_max=16).astype(np.float32)


def samples(pairs, n_images: int, ignore=None, max_per_class: int = MAX_PER_CLASS,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features and classes of labelled pixels, at most ``max_per_class`` per class in all.

    Parameters
    ----------
    pairs : iterable of (numpy.ndarray, numpy.ndarray)
        ``(image, labels)``: each label value is a class, except ``ignore``.
    n_images : int
        How many pairs there are (each contributes at most ``max_per_class / n_images`` pixels per class).
    ignore : int, optional
        Label value of unlabelled pixels (scribbles).
    max_per_class, seed : int
        The cap, and the seed of the random subsample.

    Returns
    -------
    tuple of numpy.ndarray
        ``(X, y)``: ``(N, F)`` float32 features and ``(N,)`` int32 classes.
    """
    rng = np.random.default_rng(seed)
    share = math.ceil(max_per_class / max(n_images, 1))
    xs, ys = [], []
    for image, labels in pairs:
        f = features(image)
        f = f.reshape(-1, f.shape[-1])
        flat = np.asarray(labels).ravel()
        for value in np.unique(flat):
            if ignore is not None and value == ignore:
                continue
            where = np.flatnonzero(flat == value)
            if len(where) > share:
                where = np.sort(rng.choice(where, share, replace=False))
            xs.append(f[where])
            ys.append(np.full(len(where), value, np.int32))
    return np.concatenate(xs), np.concatenate(ys)


def fit(x: np.ndarray, y: np.ndarray, seed: int):
    """A fitted ``RandomForestClassifier`` (100 trees, depth 10, 5% of the samples per tree)."""
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=100, max_depth=10, max_samples=0.05, n_jobs=cores(),
                                    random_state=seed)
    return forest.fit(x, y)


def predict(forest, feats: np.ndarray) -> np.ndarray:
    """Class values per pixel of an image's ``(Y, X, F)`` features."""
    return forest.predict(feats.reshape(-1, feats.shape[-1])).reshape(feats.shape[:-1])


def objects(foreground: np.ndarray, min_size: int = MIN_OBJECT_SIZE) -> np.ndarray:
    """Connected components (8-connected) of a mask, those under ``min_size`` pixels dropped, numbered 1..N."""
    from skimage.measure import label

    components = label(np.asarray(foreground, bool), connectivity=2)
    sizes = np.bincount(components.ravel())
    keep = sizes >= min_size
    keep[0] = False
    renumber = np.zeros(len(keep), np.int32)
    renumber[keep] = np.arange(1, int(keep.sum()) + 1)
    return renumber[components]
