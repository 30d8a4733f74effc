"""The bundled starting model (``resources/models/nuclei``): how it is trained, and what it gives.

``--train OUT`` trains it exactly as shipped: ``unet-studio train --instances --instance-mode distance --preset
fast --seed 0 --epochs 40 --device cpu`` (fixed epochs, no time limit) on the dsb2018 fold-0 training images
020-059 of :mod:`bench.generalization` (images 000-019, its fold-0 test split, are never seen), names the
classes background and nucleus, records what it was trained on, and drops the optimizer moments from the
folder (a starting model's run starts with fresh moments: they would only make it larger).

``--measure`` scores it, through the real command line as :mod:`bench.generalization` does (AP@0.5, mean
AP@[0.5:0.95] and foreground pixel F1 of ``predict --instances``, :mod:`bench.metrics`):

- dsb2018 fold-0 test images 000-019 with 0 s of fine-tuning (the model as shipped; another fold than its
  training images; target AP@0.5 >= 0.80);
- dsb2018_large (nuclei 3-4x wider, another microscope), trained on images 000-014 and tested on 015-029:
  ``train --init nuclei`` for 0, 30 and 60 s against ``train`` from scratch for 30, 60 and 180 s, seeds 0
  and 1 (``--time-limit``; seconds of training, start-up and prediction come on top).

How long, on a 2-core CPU: ``--train`` about 2000 steps (10-15 min); ``--measure`` about 10 trainings of at
most 180 s plus about 40 s each for start-up, validation and prediction: about 25 min. Run it alone::

    python bench/starting_model.py --train resources/models/nuclei
    python bench/starting_model.py --measure --json starting_model.json
    python bench/starting_model.py --measure --model /tmp/m --seconds 5 --scratch-seconds 5 --seeds 0 --images 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import data_dir, loadavg, utc_now  # noqa: E402
from bench.generalization import (  # noqa: E402
    TestSet,
    Training,
    dsb_split,
    log,
    names,
    predict_ours,
    prepare,
    score,
    steps_of,
    train_ours,
    truths,
    unet_studio,
)

EPOCHS, SEED = 40, 0
CLASS_NAMES = ["background", "nucleus"]
TRAINED_ON = ("dsb2018 images 020-059 (the fold-0 training images of bench/generalization.py; 2018 Data Science "
              "Bowl stage1_train, BBBC038, CC0; cite Caicedo et al., Nature Methods 2019)")
LARGE_TRAIN, LARGE_TEST = (0, 15), (15, 30)
FINE_TUNE_S, SCRATCH_S, SEEDS = (0.0, 30.0, 60.0), (30.0, 60.0, 180.0), (0, 1)


def shipped_training(images: int | None = None) -> Training:
    """The training set of the shipped model: dsb2018 fold-0 training images (020-059), or their first ``images``."""
    stems = dsb_split(0)[0]
    return Training("nuclei_model", "dsb2018", tuple(stems[:images] if images else stems), "instances")


def test_sets(images: int | None = None) -> tuple[TestSet, TestSet]:
    """dsb2018 fold-0 test images (000-019) and the dsb2018_large split (train 000-014, test 015-029)."""
    dsb_test = names(0, 20)[:images] if images else names(0, 20)
    dsb = TestSet("dsb", "fold 0 test 000-019", "dsb2018", tuple(dsb_test), shipped_training(images), "nuclei")
    large_train, large_test = names(*LARGE_TRAIN), names(*LARGE_TEST)
    if images:
        large_train, large_test = large_train[:images], large_test[:images]
    training = Training("large_train", "dsb2018_large", tuple(large_train), "instances")
    large = TestSet("dsb_large", "test 015-029", "dsb2018_large", tuple(large_test), training, "nuclei")
    return dsb, large


# ----------------------------------------------------------------------------------------------- --train


def check_data(*folders: str) -> None:
    """Raise FileNotFoundError naming the data sets missing under the data folder."""
    missing = [f for f in folders if not (data_dir() / f / "images").is_dir()]
    if missing:
        raise FileNotFoundError(f"data set(s) {', '.join(missing)} not found under {data_dir()} "
                                "(set UNET_STUDIO_DATA)")


def train_shipped(out: Path, epochs: int = EPOCHS, images: int | None = None) -> Path:
    """Train the starting model into ``out`` as shipped; then name its classes and drop the optimizer moments."""
    from unet_studio.core.model import load_model, save_model

    check_data("dsb2018")
    training = shipped_training(images)
    work = Path(tempfile.mkdtemp(prefix="unet-starting-model-"))
    try:
        prepare([TestSet("dsb", "none", "dsb2018", (), training, "nuclei")], data_dir(), work)
        folder = work / "data" / training.key
        elapsed, _ = unet_studio("train", "--images", str(folder / "images"), "--labels", str(folder / "labels"),
                                 "--out", str(out), "--preset", "fast", "--instances", "--instance-mode", "distance",
                                 "--epochs", str(epochs), "--seed", str(SEED), "--device", "cpu")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    model, info = load_model(out)
    info.class_names = list(CLASS_NAMES)
    info.extra.update({"trained_on": TRAINED_ON, "images": list(training.stems),
                       "command": f"unet-studio train --instances --instance-mode distance --preset fast "
                                  f"--epochs {epochs} --seed {SEED} --device cpu", "train_s": round(elapsed, 1)})
    save_model(out, model, info)  # without optimizer_state: the moments' file is removed
    log(f"starting model in {out}: {steps_of(out)} steps in {elapsed:.0f} s; "
        f"{sum(p.stat().st_size for p in out.iterdir()) / 1e6:.1f} MB")
    return out


# ----------------------------------------------------------------------------------------------- --measure


def fine_tune(training: Training, work: Path, run_dir: Path, model: Path, seconds: float, seed: int) -> Path:
    """``unet-studio train --init MODEL`` on ``training`` for ``seconds``; return the fine-tuned model folder."""
    folder = work / "data" / training.key
    out = run_dir / "model"
    unet_studio("train", "--images", str(folder / "images"), "--labels", str(folder / "labels"), "--out", str(out),
                "--preset", "fast", "--instances", "--instance-mode", "distance", "--init", str(model),
                "--time-limit", f"{seconds:g}", "--seed", str(seed), "--device", "cpu")
    return out


def measure_one(test: TestSet, model: Path, work: Path, run_dir: Path, start: str, seconds: float,
                seed: int | None) -> dict:
    """Score ``model`` on ``test`` (predict into a fresh folder); one record."""
    labels, objects, predict_s = predict_ours(test, model, work, run_dir / "predicted")
    record = {"dataset": test.dataset, "split": test.split, "start": start, "seconds_limit": seconds, "seed": seed,
              **score(test, labels, objects, truths(test, data_dir())), "predict_s": round(predict_s, 1),
              "steps": steps_of(model) if seconds else 0}
    log(f"  {test.dataset} from {start}, {seconds:g} s, seed {seed}: {record}")
    return record


def measure(model: Path, fine_tune_s, scratch_s, seeds, images: int | None = None) -> dict:
    """Every measurement of the module docstring; the report (settings, records, headline, errors)."""
    check_data("dsb2018", "dsb2018_large")
    dsb, large = test_sets(images)
    work = Path(tempfile.mkdtemp(prefix="unet-starting-measure-"))
    report = {"date": utc_now(), "loadavg_start": loadavg(), "model": str(model), "images": images,
              "fine_tune_s": list(fine_tune_s), "scratch_s": list(scratch_s), "seeds": list(seeds),
              "records": [], "errors": []}
    started = time.perf_counter()
    runs = [("nuclei", 0.0, None)] if 0 in fine_tune_s else []
    runs += [("nuclei", s, seed) for s in fine_tune_s if s > 0 for seed in seeds]
    runs += [("scratch", s, seed) for s in scratch_s for seed in seeds]
    try:
        prepare([dsb, large], data_dir(), work)
        report["records"].append(measure_one(dsb, model, work, Path(tempfile.mkdtemp(dir=work)), "nuclei", 0.0, None))
        for start, seconds, seed in runs:
            run_dir = Path(tempfile.mkdtemp(prefix=f"{start}-{seconds:g}s-", dir=work))
            try:
                if start == "scratch":
                    trained, _ = train_ours(large.training, work, run_dir, seconds, seed)
                else:
                    trained = fine_tune(large.training, work, run_dir, model, seconds, seed) if seconds else model
                report["records"].append(measure_one(large, trained, work, run_dir, start, seconds, seed))
            except RuntimeError as exc:  # one failed run is reported; the others go on
                report["errors"].append(f"{start}, {seconds:g} s, seed {seed}: {exc}")
                log("  FAILED " + report["errors"][-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["duration_s"], report["loadavg_end"] = round(time.perf_counter() - started, 1), loadavg()
    report["headline"] = headline(report)
    return report


def grouped(report: dict) -> list[tuple[str, str, float, dict]]:
    """(dataset, start, seconds, mean of each measure over seeds, with the seed count) per row of the table."""
    rows: dict[tuple, list[dict]] = {}
    for record in report["records"]:
        rows.setdefault((record["dataset"], record["start"], record["seconds_limit"]), []).append(record)
    out = []
    for (dataset, start, seconds), records in rows.items():
        means = {m: statistics.fmean(r[m] for r in records) for m in ("ap50", "map", "f1")}
        means["runs"] = len(records)
        out.append((dataset, start, seconds, means))
    return out


def headline(report: dict) -> dict:
    """Keys such as ``dsb_nuclei_0s_ap50`` and ``dsb_large_scratch_60s_map``: means over seeds."""
    return {f"{dataset}_{start}_{seconds:g}s_{m}": round(means[m], 4)
            for dataset, start, seconds, means in grouped(report) for m in ("ap50", "map", "f1")}


def table(report: dict) -> list[str]:
    lines = [f"{'test images':<24} {'start from':<10} {'training':>9} {'runs':>4} {'AP@0.5':>7} {'mAP':>7} {'F1':>7}"]
    for dataset, start, seconds, means in grouped(report):
        split = next(r["split"] for r in report["records"] if r["dataset"] == dataset)
        lines.append(f"{dataset + ' ' + split:<24} {start:<10} {seconds:>7g} s {means['runs']:>4} "
                     f"{means['ap50']:>7.3f} {means['map']:>7.3f} {means['f1']:>7.3f}")
    return lines + [f"FAILED {e}" for e in report["errors"]]


# ----------------------------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    def numbers(kind):
        def parse(text):
            return [kind(v) for v in text.split(",") if v.strip()]

        parse.__name__ = f"comma-separated {kind.__name__}"
        return parse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--train", type=Path, metavar="OUT", help="train the starting model as shipped into OUT")
    action.add_argument("--measure", action="store_true", help="measure what the starting model gives")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=f"--train: epochs (default {EPOCHS}, as shipped)")
    parser.add_argument("--model", default="nuclei", help="--measure: the model (default: the bundled nuclei model)")
    parser.add_argument("--seconds", type=numbers(float), default=list(FINE_TUNE_S),
                        help="fine-tuning times from the model, 0 = as is (default 0,30,60)")
    parser.add_argument("--scratch-seconds", type=numbers(float), default=list(SCRATCH_S),
                        help="training times from scratch (default 30,60,180)")
    parser.add_argument("--seeds", type=numbers(int), default=list(SEEDS), help="training seeds (default 0,1)")
    parser.add_argument("--images", type=int, metavar="N",
                        help="use only the first N images of each training and test split (a quick check)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the report to FILE")
    args = parser.parse_args(argv)
    if args.images is not None and args.images < 1:
        parser.error("--images needs at least 1")
    if not args.seeds or min(args.seconds + args.scratch_seconds, default=0) < 0:
        parser.error("--seeds needs a value; times must be 0 or more")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from unet_studio.core.errors import UNetStudioError
    from unet_studio.resources import model_folder

    try:
        if args.train:
            train_shipped(args.train, args.epochs, args.images)
            return 0
        report = measure(model_folder(args.model), args.seconds, args.scratch_seconds, args.seeds, args.images)
    except (UNetStudioError, FileNotFoundError, RuntimeError) as exc:
        print(f"starting_model: {exc}", file=sys.stderr)
        return 2
    print(f"\nStarting model {report['model']} ({report['date']}; load average {report['loadavg_start']} at the "
          f"start, {report['loadavg_end']} at the end; {report['duration_s'] / 60:.1f} min)")
    print("\n".join(table(report)))
    if args.json:
        args.json.write_text(json.dumps({**report["headline"], "report": report}, indent=1, default=str))
        print(f"wrote {args.json}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
