"""Generalisation: UNet Studio against a random forest on test images that no training or tuning has seen.

What it measures. For every data set of ``../shared/data`` with ground truth, on train/test splits fixed
here, UNet Studio is trained through the real command line in a subprocess
(``unet-studio train --preset fast --time-limit T --seed S --device cpu``, with ``--instances`` for
nuclei and ``--unlabelled 128`` for scribbles), then ``unet-studio predict`` labels the test images
(``--instances`` for nuclei; each run writes into a fresh, empty folder). The peer is the ilastik-style
random-forest pixel classifier of :mod:`bench.forest` (the one of ``bench/train_accuracy.py``) on the same
labels, at most 200 000 labelled pixels per class; its objects are the connected components of its
foreground, objects under 10 pixels dropped as ``predict --min-size`` does.
Figures (see :mod:`bench.metrics`), over the test split only:

- pixel F1 of the membrane class (ISBI, value 0) or of the foreground (nuclei) over all test pixels;
- for nuclei, AP@0.5 and mean AP@[0.5:0.95] (DSB 2018: objects matched one to one at IoU > t,
  AP = TP / (TP + FP + FN), averaged over the test images);
- seconds: ours = the train command + the predict command (wall clock, start-up included); the forest's
  = features, fitting and prediction.

Splits (fixed; do not change them, or figures stop being comparable):

- ``isbi_dense``: ISBI 2012, train on the dense masks of slices 000-009, test on 010-019;
- ``isbi_scribbles``: scribbles (:func:`bench.scribbles.scribble_labels`, ~4% of the pixels, fixed seeds)
  on slices 000, 002, 004, 006, 008; test on 010-019;
- ``dsb``: dsb2018 nuclei, 3 folds: fold k tests images [20k, 20k + 20) and trains on the other 40
  (instance labels);
- ``dsb_large``: all 30 images of dsb2018_large (nuclei 3-4x wider), predicted by the model (and the
  forest) of the first dsb fold run: scale generalisation, no extra training;
- ``dsb_scribbles``: scribbles (foreground strokes inside the nuclei, background strokes between them, drawn
  from the foreground of the instance labels, ~4% of the pixels) on the 40 training images of the first dsb
  fold run, tested on its 20 test images: scribbles on fluorescence, whose edges are blurred over pixels
  where the membranes of EM are sharp; foreground pixel F1 only (two classes, no objects).

The rule for every recipe change: choose on validation data inside the training split (the trainer's own
validation hold-out, or folds of the training images), report on the test split here, and say in the
closing note how many variants were tried. This script only measures: it takes no recipe choice.

How long: each training costs T + about 40 s (start-up, last validation, prediction), and each forest
about a minute, on a 2-core CPU. The default (``--seconds 180 --seeds 0,1``, all data sets, 3 folds:
12 trainings, 12 forests) takes about 60 minutes; ``--seconds 60,180,600`` about 3 h 20 min; the quick set
of ``python -m bench --only generalization --quick`` (60 s, seed 0, fold 0, ISBI dense + dsb) about
6 minutes. Run it alone on the machine::

    python bench/generalization.py --json generalization.json
    python bench/generalization.py --seconds 60 --seeds 0 --folds 0 --only isbi_dense,dsb   # a quick look
    python bench/generalization.py --only dsb --instance-mode three_class --no-forest   # 3-class objects
    python bench/generalization.py --only dsb --folds 0 --split validation --no-forest   # choosing a recipe
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import BenchResult, data_dir, loadavg, python_child_env, utc_now  # noqa: E402
from bench.generalization_report import HEADLINE_SECONDS, headline, table, to_result  # noqa: E402
from bench.metrics import mean_average_precision, pixel_f1  # noqa: E402

DATASETS = ("isbi_dense", "isbi_scribbles", "dsb", "dsb_large", "dsb_scribbles")
ISBI_SCRIBBLED = ("000", "002", "004", "006", "008")
DSB_IMAGES, DSB_FOLDS, DSB_TEST_SIZE, DSB_LARGE_IMAGES = 60, 3, 20, 30
SCRIBBLE_FRACTION, UNLABELLED, MEMBRANE, FOREGROUND = 0.04, 128, 0, 255
NUCLEUS_EROSION = 2  # scribbles inside nuclei of about 140 px keep 2 px off their outline (4 px for ISBI's cells)
OVERHEAD_S, FOREST_S = 40.0, 60.0  # per training and per forest, for the time estimate


def names(start: int, stop: int) -> list[str]:
    """File stems ``NNN`` for indices ``start`` to ``stop - 1``."""
    return [f"{i:03d}" for i in range(start, stop)]


def isbi_split() -> tuple[list[str], list[str]]:
    """ISBI 2012 stems: train 000-009, test 010-019."""
    return names(0, 10), names(10, 20)


def dsb_split(fold: int) -> tuple[list[str], list[str]]:
    """dsb2018 stems of ``fold`` (0, 1 or 2): test [20 fold, 20 fold + 20), train the other 40."""
    if not 0 <= fold < DSB_FOLDS:
        raise ValueError(f"dsb2018 has folds 0 to {DSB_FOLDS - 1}, not {fold}")
    test = names(DSB_TEST_SIZE * fold, DSB_TEST_SIZE * (fold + 1))
    return [n for n in names(0, DSB_IMAGES) if n not in test], test


@dataclass(frozen=True)
class Training:
    """A training set: ``mode`` is dense, scribbles or instances."""

    key: str
    folder: str
    stems: tuple[str, ...]
    mode: str


@dataclass(frozen=True)
class TestSet:
    """Test images of a data set, scored against the model (and forest) of ``training``."""

    dataset: str
    split: str
    folder: str
    stems: tuple[str, ...]
    training: Training
    kind: str  # membrane, nuclei (pixels and objects) or foreground (pixels of two-class nuclei labels)


def validation_split(train: list[str], test: list[str], dataset: str,
                     second: bool = False) -> tuple[list[str], list[str]]:
    """The inner split of a training split, for choosing recipes: (inner training, validation) stems.

    ISBI dense: train 000-006, validate 007-009; ISBI scribbles: the scribbled even slices train, the odd
    slices 001-009 (dense truth) validate; dsb fold k: the first 30 of the fold's 40 training images train,
    the last 10 validate, or with ``second`` (``--split validation2``) the first 10 validate and the other 30
    train: a second look at a recipe on other images of the same training split (ISBI has one cut only).
    The test split is never touched.
    """
    if dataset == "isbi_scribbles":
        return list(ISBI_SCRIBBLED), [s for s in train if s not in ISBI_SCRIBBLED]
    if dataset != "dsb":
        return train[:7], train[7:]
    cut = len(train) // 4 if second else len(train) * 3 // 4
    return (train[cut:], train[:cut]) if second else (train[:cut], train[cut:])


def plan(only, folds, split: str = "test") -> list[TestSet]:
    """The test sets (with their trainings) of the data sets in ``only`` and the dsb ``folds``.

    ``split="validation"``: score on the validation part of each training split instead (see
    :func:`validation_split`; dsb_large, a test-only set, is left out), for choosing between recipes.
    """
    isbi_train, isbi_test = isbi_split()
    val, second = split.startswith("validation"), split == "validation2"
    tests = []
    if "isbi_dense" in only:
        train, test = validation_split(isbi_train, isbi_test, "isbi_dense") if val else (isbi_train, isbi_test)
        dense = Training("isbi_dense" + "_val" * val, "isbi2012", tuple(train), "dense")
        tests.append(TestSet("isbi_dense", f"{test[0]}-{test[-1]}", "isbi2012", tuple(test), dense, "membrane"))
    if "isbi_scribbles" in only:
        test = validation_split(isbi_train, isbi_test, "isbi_scribbles")[1] if val else isbi_test
        sparse = Training("isbi_scribbles", "isbi2012", ISBI_SCRIBBLED, "scribbles")
        tests.append(TestSet("isbi_scribbles", f"{test[0]}-{test[-1]}", "isbi2012", tuple(test), sparse,
                             "membrane"))
    for fold in folds:
        train, test = dsb_split(fold)
        if val:
            train, test = validation_split(train, test, "dsb", second)
        suffix = "_val2" if second else "_val" * val
        split_name = f"fold {fold}" + (" validation 2" if second else " validation" * val)
        training = Training(f"dsb_f{fold}" + suffix, "dsb2018", tuple(train), "instances")
        if "dsb" in only:
            tests.append(TestSet("dsb", split_name, "dsb2018", tuple(test), training, "nuclei"))
        if "dsb_large" in only and fold == folds[0] and not val:
            tests.append(TestSet("dsb_large", f"all, fold {fold} model", "dsb2018_large",
                                 tuple(names(0, DSB_LARGE_IMAGES)), training, "nuclei"))
        if "dsb_scribbles" in only and fold == folds[0]:
            sparse = Training(f"dsb_scribbles_f{fold}" + suffix, "dsb2018", tuple(train), "scribbles")
            tests.append(TestSet("dsb_scribbles", split_name, "dsb2018", tuple(test), sparse, "foreground"))
    return tests


def trainings_of(tests: list[TestSet]) -> list[Training]:
    return list(dict.fromkeys(t.training for t in tests))


# ----------------------------------------------------------------------------------------------- data


def read(path: Path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


def link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        dst.symlink_to(src)


def training_labels(training: Training, data: Path, stem: str, index: int) -> np.ndarray:
    """The labels a training uses for ``stem``: the masks, scribbles drawn from them, or instances."""
    truth = read(data / training.folder / "labels" / f"{stem}.tif")
    if training.mode == "scribbles":
        from bench.scribbles import scribble_labels

        if training.folder == "isbi2012":
            return scribble_labels(truth, fraction=SCRIBBLE_FRACTION, seed=index)
        mask = np.where(truth > 0, FOREGROUND, 0).astype(np.uint8)  # instances -> nuclei (255) / background (0)
        return scribble_labels(mask, FOREGROUND, 0, fraction=SCRIBBLE_FRACTION, erosion=NUCLEUS_EROSION, seed=index)
    return truth


def prepare(tests: list[TestSet], data: Path, work: Path) -> dict:
    """Training folders (images + labels) and test image folders under ``work``; scribble coverage."""
    import tifffile

    coverage = {}
    for training in trainings_of(tests):
        folder = work / "data" / training.key
        for index, stem in enumerate(training.stems):
            link(data / training.folder / "images" / f"{stem}.tif", folder / "images" / f"{stem}.tif")
            if training.mode == "scribbles":
                sparse = training_labels(training, data, stem, index)
                (folder / "labels").mkdir(parents=True, exist_ok=True)
                tifffile.imwrite(folder / "labels" / f"{stem}.tif", sparse)
                coverage[stem] = float((sparse != UNLABELLED).mean())
            else:
                link(data / training.folder / "labels" / f"{stem}.tif", folder / "labels" / f"{stem}.tif")
    for test in tests:
        for stem in test.stems:
            link(data / test.folder / "images" / f"{stem}.tif", test_dir(test, work) / f"{stem}.tif")
    return coverage


def test_dir(test: TestSet, work: Path) -> Path:
    return work / "data" / f"test-{test.dataset}-{test.training.key}"


def truths(test: TestSet, data: Path) -> list[np.ndarray]:
    return [read(data / test.folder / "labels" / f"{stem}.tif") for stem in test.stems]


def score(test: TestSet, labels: list[np.ndarray], objects, truth: list[np.ndarray]) -> dict:
    """Pixel F1 (membrane or foreground), and for nuclei AP@0.5 and mean AP@[0.5:0.95]."""
    if test.kind == "membrane":
        f1 = pixel_f1(np.concatenate([(p == MEMBRANE).ravel() for p in labels]),
                      np.concatenate([(t == MEMBRANE).ravel() for t in truth]))
        return {"f1": f1}
    if test.kind == "foreground":  # two classes, the labels' values: 0 background, 255 nuclei
        f1 = pixel_f1(np.concatenate([(p == FOREGROUND).ravel() for p in labels]),
                      np.concatenate([(t > 0).ravel() for t in truth]))
        return {"f1": f1}
    f1 = pixel_f1(np.concatenate([(p != 0).ravel() for p in labels]),
                  np.concatenate([(t > 0).ravel() for t in truth]))
    ap = mean_average_precision(objects, truth)
    return {"f1": f1, "ap50": float(ap[0]), "map": float(ap.mean())}


# ----------------------------------------------------------------------------------------------- ours


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def unet_studio(*args: str) -> tuple[float, str]:
    """Run ``python -m unet_studio ARGS``; return its seconds and standard output (raise on failure)."""
    log("$ unet-studio " + " ".join(a.replace(str(ROOT) + "/", "") for a in args))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "unet_studio", *args], cwd=ROOT, capture_output=True, text=True,
                          env=python_child_env())
    if proc.returncode:
        raise RuntimeError(f"unet-studio {args[0]} ended with status {proc.returncode}: "
                           + " | ".join(proc.stderr.strip().splitlines()[-3:]))
    return time.perf_counter() - started, proc.stdout


def train_ours(training: Training, work: Path, run_dir: Path, seconds: float, seed: int,
               instance_mode: str = "distance", train_args: tuple[str, ...] = ()) -> tuple[Path, float]:
    folder = work / "data" / training.key
    extra = {"dense": (), "scribbles": ("--unlabelled", str(UNLABELLED)),
             "instances": ("--instances", "--instance-mode", instance_mode)}
    model = run_dir / "model"
    elapsed, _ = unet_studio("train", "--images", str(folder / "images"), "--labels", str(folder / "labels"),
                             "--out", str(model), "--preset", "fast", "--time-limit", f"{seconds:g}",
                             "--seed", str(seed), "--device", "cpu", *extra[training.mode], *train_args)
    return model, elapsed


def printed_outputs(stdout: str) -> dict[str, list[str]]:
    """``NAME.tif: NAME_labels.tif, NAME_instances.tif`` lines of ``predict`` as {input: [outputs]}."""
    found = {}
    for line in stdout.splitlines():
        name, sep, rest = line.partition(": ")
        if sep and rest.endswith(".tif"):
            found[name.strip()] = [part.strip() for part in rest.split(",")]
    return found


def predict_ours(test: TestSet, model: Path, work: Path, out: Path,
                 predict_args: tuple[str, ...] = ()) -> tuple[list, list | None, float]:
    """Labels (and objects, for nuclei) of the test images from ``unet-studio predict``, and its seconds.

    ``predict_args``: more ``unet-studio predict`` options (e.g. ``--tta``).
    """
    nuclei = test.kind == "nuclei"
    elapsed, stdout = unet_studio("predict", "--model", str(model), "--images", str(test_dir(test, work)),
                                  "--out", str(out), "--device", "cpu", *(("--instances",) if nuclei else ()),
                                  *predict_args)
    printed = printed_outputs(stdout)
    labels, objects = [], []
    for stem in test.stems:
        written = printed.get(f"{stem}.tif", [f"{stem}_labels.tif", f"{stem}_instances.tif"])
        for suffix, into in (("_labels.tif", labels), ("_instances.tif", objects if nuclei else None)):
            if into is None:
                continue
            match = [name for name in written if name.endswith(suffix)]
            if not match or not (out / match[0]).is_file():
                raise RuntimeError(f"unet-studio predict wrote no *{suffix} for {stem}.tif in {out}")
            into.append(read(out / match[0]))
    return labels, (objects if nuclei else None), elapsed


def steps_of(model: Path):
    """Training steps of a model folder, from its model.json (best effort: context only)."""
    try:
        info = json.loads((model / "model.json").read_text())
    except (OSError, ValueError):
        return None
    return info.get("steps") or (info.get("extra") or {}).get("steps")


def run_ours(tests, data, work, seconds, seed, records, errors, instance_mode: str = "distance",
             train_args: tuple[str, ...] = (), predict_args: tuple[str, ...] = ()) -> None:
    """Train each training set once, predict its test sets; append one record per test set.

    ``instance_mode``: how instance labels are trained and split (``train --instance-mode``);
    ``train_args``: more ``unet-studio train`` options (a recipe variant, chosen on validation splits);
    ``predict_args``: more ``unet-studio predict`` options.
    """
    for training in trainings_of(tests):
        run_dir = Path(tempfile.mkdtemp(prefix=f"{training.key}-{seconds:g}s-seed{seed}-", dir=work))
        try:
            model, train_s = train_ours(training, work, run_dir, seconds, seed, instance_mode, train_args)
            for i, test in enumerate(t for t in tests if t.training == training):
                labels, objects, predict_s = predict_ours(test, model, work, run_dir / f"predicted-{i}",
                                                          predict_args)
                records.append({"dataset": test.dataset, "split": test.split, "method": "unet", "seed": seed,
                                "instance_mode": instance_mode if training.mode == "instances" else None,
                                "seconds_limit": seconds, **score(test, labels, objects, truths(test, data)),
                                "train_s": train_s, "predict_s": predict_s, "seconds": train_s + predict_s,
                                "steps": steps_of(model)})
                log(f"  ours {test.dataset} {test.split}, {seconds:g} s, seed {seed}: {records[-1]}")
        except RuntimeError as exc:  # one failed run is reported; the others go on
            errors.append(f"ours, {training.key}, {seconds:g} s, seed {seed}: {exc}")
            log("  FAILED " + errors[-1])


# ----------------------------------------------------------------------------------------------- the forest


def forest_pairs(training: Training, data: Path):
    """(image, labels) of a training set as the forest sees them (instances become foreground = 1)."""
    for index, stem in enumerate(training.stems):
        labels = training_labels(training, data, stem, index)
        if training.mode == "instances":
            labels = (labels > 0).astype(np.uint8)
        yield read(data / training.folder / "images" / f"{stem}.tif"), labels


def run_forest(tests, data, seeds, records, keep: Path | None = None) -> None:
    """One forest per training and seed, features computed once; append one record per test set and seed.

    ``keep``: also write the forest's labels there (``forest-TRAINING-seedN/STEM_labels.tif``, as ``unet-studio
    predict`` names them), for looking at its errors beside the network's (``bench/outline_errors.py``).
    """
    from bench import forest

    for training in trainings_of(tests):
        started = time.perf_counter()
        ignore = UNLABELLED if training.mode == "scribbles" else None
        x, y = forest.samples(forest_pairs(training, data), len(training.stems), ignore)
        train_s, forests, fit_s = time.perf_counter() - started, {}, {}
        for seed in seeds:
            started = time.perf_counter()
            forests[seed] = forest.fit(x, y, seed)
            fit_s[seed] = time.perf_counter() - started
        for test in (t for t in tests if t.training == training):
            preds, predict_s, features_s = {seed: [] for seed in seeds}, dict.fromkeys(seeds, 0.0), 0.0
            for stem in test.stems:
                started = time.perf_counter()
                feats = forest.features(read(data / test.folder / "images" / f"{stem}.tif"))
                features_s += time.perf_counter() - started
                for seed in seeds:
                    started = time.perf_counter()
                    preds[seed].append(forest.predict(forests[seed], feats))
                    predict_s[seed] += time.perf_counter() - started
            truth = truths(test, data)
            if keep is not None:
                save_labels(keep, training, test, preds)
            for seed in seeds:
                objects = [forest.objects(p != 0) for p in preds[seed]] if test.kind == "nuclei" else None
                records.append({"dataset": test.dataset, "split": test.split, "method": "rf", "seed": seed,
                                **score(test, preds[seed], objects, truth),
                                "seconds": train_s + fit_s[seed] + features_s + predict_s[seed]})
                log(f"  forest {test.dataset} {test.split}, seed {seed}: {records[-1]}")


def save_labels(keep: Path, training: Training, test: TestSet, preds: dict) -> None:
    """The forest's labels of ``test``, per seed, under ``keep`` (uint8, the training labels' values)."""
    import tifffile

    for seed, labels in preds.items():
        folder = keep / f"forest-{training.key}-{test.dataset}-seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        for stem, label in zip(test.stems, labels):
            tifffile.imwrite(folder / f"{stem}_labels.tif", np.asarray(label).astype(np.uint8))


# ----------------------------------------------------------------------------------------------- report


def estimate_seconds(n_trainings: int, seconds, seeds) -> float:
    """Expected wall clock of a run on a 2-core CPU (see the module docstring)."""
    return n_trainings * len(seeds) * (sum(seconds) + OVERHEAD_S * len(seconds) + FOREST_S)


def measure(only, folds, seconds, seeds, work: Path | None = None, instance_mode: str = "distance",
            forest: bool = True, split: str = "test", train_args: tuple[str, ...] = (),
            predict_args: tuple[str, ...] = ()) -> dict:
    """Run everything; return the report (settings, records, headline keys, errors).

    ``instance_mode``: ``train --instance-mode`` for the nuclei (three_class or distance); ``forest`` False
    skips the random forest (to compare two instance modes without measuring the peer twice).
    """
    data = data_dir()
    tests = plan(only, folds, split)
    missing = sorted({t.folder for t in tests} - {p.name for p in data.glob("*") if (p / "images").is_dir()})
    if missing:
        raise FileNotFoundError(f"data set(s) {', '.join(missing)} not found under {data} (set UNET_STUDIO_DATA)")
    keep = work is not None
    work = Path(work) if keep else Path(tempfile.mkdtemp(prefix="unet-generalization-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"date": utc_now(), "loadavg_start": loadavg(), "only": list(only), "folds": list(folds),
              "seconds": list(seconds), "seeds": list(seeds), "instance_mode": instance_mode, "split": split,
              "train_args": list(train_args), "predict_args": list(predict_args),
              "records": [], "errors": [],
              "estimate_s": estimate_seconds(len(trainings_of(tests)), seconds, seeds)}
    log(f"generalization: {len(trainings_of(tests))} training set(s) x {len(seeds)} seed(s) x {len(seconds)} "
        f"time limit(s); about {report['estimate_s'] / 60:.0f} min on a 2-core CPU")
    started = time.perf_counter()
    try:
        report["scribble_coverage"] = prepare(tests, data, work)
        if forest:
            run_forest(tests, data, seeds, report["records"], work if keep else None)
        for limit in seconds:
            for seed in seeds:
                run_ours(tests, data, work, limit, seed, report["records"], report["errors"], instance_mode,
                         train_args, predict_args)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    report["duration_s"], report["loadavg_end"] = time.perf_counter() - started, loadavg()
    report["headline"] = headline(report)
    return report


def run(quick: bool = False) -> BenchResult:
    """Entry of ``python -m bench``: quick = 60 s, seed 0, fold 0, ISBI dense + dsb; else the defaults."""
    if quick:
        return to_result(measure(("isbi_dense", "dsb"), (0,), (60.0,), (0,)))
    return to_result(measure(DATASETS, (0, 1, 2), (HEADLINE_SECONDS,), (0, 1)))


def parse_args(argv=None) -> argparse.Namespace:
    def numbers(kind):
        def parse(text):
            return [kind(v) for v in text.split(",") if v.strip()]

        parse.__name__ = f"comma-separated {kind.__name__}"  # argparse names it in its error message
        return parse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=numbers(float), default=[HEADLINE_SECONDS],
                        help="training time limits, e.g. 60,180,600 (default 180)")
    parser.add_argument("--seeds", type=numbers(int), default=[0, 1], help="training seeds (default 0,1)")
    parser.add_argument("--only", type=lambda t: [v.strip() for v in t.split(",") if v.strip()],
                        default=list(DATASETS), help="data sets: " + ",".join(DATASETS))
    parser.add_argument("--folds", type=numbers(int), default=list(range(DSB_FOLDS)), help="dsb folds (0,1,2)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the report to FILE")
    parser.add_argument("--instance-mode", choices=("three_class", "distance"), default="distance",
                        help="how the nuclei's instance labels are trained and split (train --instance-mode): "
                        "three_class (background / interior / boundary, interior seeds) or distance "
                        "(background/foreground, distance-transform seeds; default)")
    parser.add_argument("--split", choices=("test", "validation", "validation2"), default="test",
                        help="score on the test split (default: for reporting) or on validation images inside "
                        "each training split (for choosing a recipe; the test split is not read); validation2: "
                        "other validation images of the dsb training splits")
    parser.add_argument("--no-forest", action="store_true",
                        help="skip the random forest (e.g. for a second run with the other --instance-mode)")
    parser.add_argument("--train-args", default="", metavar="ARGS",
                        help="more unet-studio train options for every training, e.g. '--unlabelled-loss pseudo' "
                        "(a recipe variant: compare variants with --split validation)")
    parser.add_argument("--predict-args", default="", metavar="ARGS",
                        help="more unet-studio predict options for every prediction, e.g. --predict-args=--tta "
                        "(with '=': a lone option would be read as this script's)")
    parser.add_argument("--work", type=Path, metavar="DIR",
                        help="keep the models and predictions (the forest's too, forest-* folders) here, e.g. for "
                             "bench/outline_errors.py (default: a temporary folder, removed)")
    args = parser.parse_args(argv)
    args.only, args.folds = list(dict.fromkeys(args.only)), list(dict.fromkeys(args.folds))
    unknown = [name for name in args.only if name not in DATASETS]
    if unknown:
        parser.error(f"unknown data set(s) {', '.join(unknown)}; choose from {', '.join(DATASETS)}")
    if not args.seconds or min(args.seconds) <= 0 or not args.seeds or not args.folds:
        parser.error("--seconds, --seeds and --folds need at least one value (seconds > 0)")
    if set(args.folds) - set(range(DSB_FOLDS)):
        parser.error(f"--folds takes values from 0 to {DSB_FOLDS - 1}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        report = measure(args.only, args.folds, args.seconds, args.seeds, args.work, args.instance_mode,
                         not args.no_forest, args.split, tuple(shlex.split(args.train_args)),
                         tuple(shlex.split(args.predict_args)))
    except FileNotFoundError as exc:
        print(f"generalization: {exc}", file=sys.stderr)
        return 2
    print(f"\nGeneralisation, {report['split']} splits only ({report['date']}; load average "
          f"{report['loadavg_start']} at the "
          f"start, {report['loadavg_end']} at the end; {report['duration_s'] / 60:.1f} min; nuclei trained with "
          f"--instance-mode {report['instance_mode']}"
          + (f"; train options: {' '.join(report['train_args'])}" if report["train_args"] else "")
          + (f"; predict options: {' '.join(report['predict_args'])}" if report["predict_args"] else "") + ")")
    print("\n".join(table(report)))
    if args.json:
        args.json.write_text(json.dumps({**report["headline"], "report": report}, indent=1, default=str))
        print(f"wrote {args.json}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
