"""``unet-studio train``: train a U-Net on a folder of images and a folder of label images.

Labels are paired with images by file name. Dense labels by default (every value is a class, e.g. 0/255
masks; predictions are written back in the same values); ``--unlabelled 0`` for sparse labels (0 =
not annotated, ignored by the loss); ``--instances`` for instance label images (0 background, 1..N
objects), trained as background/foreground (``--instance-mode distance``, the default: objects split at the
maxima of the distance transform) or as background / object interior / object boundary (``--instance-mode
three_class``: ``predict --instances`` then separates touching objects by their interiors, so rods and
filaments stay whole), with the paper's border weights between touching objects. The default was chosen on
validation images inside the dsb2018 training split (``bench/generalization.py --split validation``), where
the two tied on round nuclei.

``--init nuclei`` (or ``--init MODEL_DIR``) fine-tunes a starting model on these labels: its weights, network
and normalisation, a fresh history from step 0, fresh optimizer moments and the labels' classes (``--resume``
continues a model's own run instead). The bundled nuclei model predicts background and nucleus from 1-channel
images (``--instances``, distance mode); labels of other classes are refused with a one-line message.

Ctrl-C (or SIGTERM, SIGHUP) stops training; the best model so far is in ``--out`` and the command exits with
status 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import os

# With more busy threads than free cores (a shared or loaded machine), OpenMP threads that spin while
# waiting make every small operation many times slower; passive waiting costs little otherwise.
# Must be set before torch (and its OpenMP runtime) is loaded; a value set by the person wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from ..core.predict import INSTANCE_MODES  # noqa: E402
from ..core.config import UNLABELLED_LOSSES  # noqa: E402
from ..core.presets import PRESETS  # noqa: E402
from ..core.progress import format_duration  # noqa: E402
from .progress import ProgressBar  # noqa: E402


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, metavar="DIR", help="folder of images (TIFF, PNG, ...)")
    parser.add_argument("--labels", required=True, metavar="DIR",
                        help="folder of label images, paired with the images by file name")
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    parser.add_argument("--preset", choices=PRESETS, default="fast",
                        help="fast: small network, useful within minutes on a CPU (default); "
                        "classic: the paper's 64..1024 network (wants a GPU)")
    parser.add_argument("--epochs", type=int, metavar="N", help="number of epochs (default: the preset's)")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS",
                        help="stop after this many seconds (the learning-rate schedule fits into it)")
    parser.add_argument("--unlabelled", type=int, metavar="VALUE",
                        help="label value meaning 'not annotated' (sparse labels; the application uses 0). "
                        "Default: dense labels, every value is a class")
    parser.add_argument("--unlabelled-loss", choices=UNLABELLED_LOSSES, metavar="MODE",
                        help="what sparse labels' unlabelled pixels teach: off, pseudo (the network's confident "
                             "predictions there become targets) or consistency (confident predictions must hold "
                             "under a second intensity perturbation; about 1.5 times the time per step). "
                             "Default: the preset's")
    parser.add_argument("--unlabelled-weight", type=float, metavar="W",
                        help="weight of that loss against the labelled pixels' (default: the preset's)")
    parser.add_argument("--snap-to-edges", action=argparse.BooleanOptionalAction, default=None,
                        help="with sparse labels (scribbles): draw class boundaries on intensity edges, where "
                             "nothing painted says where a structure ends (default: the preset's; on for fast)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="settings",
                        help="any other training setting (a field of TrainConfig, e.g. scale_range=[0.6,1.6] or "
                             "learning_rate=0.001; JSON values); repeatable, applied last")
    parser.add_argument("--instances", action="store_true",
                        help="the labels are instance images (0 background, 1..N objects): train "
                        "background / object interior / object boundary, with border weights between touching "
                        "objects")
    parser.add_argument("--instance-mode", choices=INSTANCE_MODES, metavar="MODE",
                        help="with --instances: distance (default; background/foreground, objects split at the "
                        "maxima of the distance transform) or three_class (background / interior / boundary: "
                        "touching objects are separated by their interiors, elongated ones such as rods and "
                        "filaments stay whole)")
    parser.add_argument("--val-fraction", type=float, metavar="F",
                        help="fraction of the annotated images (or tiles) held out for validation (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="compute device (default: CUDA, else Apple MPS, else CPU)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: one per core)")
    parser.add_argument("--gpus", type=int, metavar="N",
                        help="train on N processes with DDP: one per GPU, or N CPU processes where there is no "
                        "GPU; each takes the preset's batch (see also torchrun in the README)")
    parser.add_argument("--resume", metavar="MODEL_DIR",
                        help="start from this model folder (resume or fine-tune); its history continues")
    parser.add_argument("--init", metavar="NAME|MODEL_DIR",
                        help="start from the weights of a starting model (nuclei: the bundled fluorescence "
                        "nuclei model) or of a model folder, and fine-tune it on these labels: its network and "
                        "normalisation, a fresh history, these labels' classes")


MAX_EPOCHS = 1_000_000
MAX_TIME_LIMIT_S = 10 * 365 * 24 * 3600.0  # ten years: anything longer is a typo
MAX_THREADS = 4096


def check_args(args: argparse.Namespace) -> None:
    """Refuse numeric options that are not finite or out of range, and contradicting options (before any work)."""
    from ..core.errors import ConfigError
    from .checks import check_float, check_int

    check_int("--epochs", args.epochs, 1, MAX_EPOCHS)
    check_float("--time-limit", args.time_limit, 0.0, MAX_TIME_LIMIT_S, low_open=True)
    check_float("--val-fraction", args.val_fraction, 0.0, 1.0, high_open=True)
    check_int("--seed", args.seed, 0, 2**32 - 1)
    check_int("--threads", args.threads, 1, MAX_THREADS)
    check_int("--unlabelled", args.unlabelled, 0, 2**32 - 1)
    if args.instances and args.unlabelled is not None:
        raise ConfigError("--instances and --unlabelled cannot be combined")
    if args.instance_mode is not None and not args.instances:
        raise ConfigError("--instance-mode is for instance label images: add --instances")
    if args.init is not None and args.resume is not None:
        raise ConfigError("--init and --resume cannot be combined: --resume continues a model's run, --init "
                          "starts a new run from a model's weights")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")


def _status(progress, best_text: str) -> str:
    parts = [f"loss {progress.loss:.4f}", best_text, f"{progress.samples_per_s:.1f} samples/s",
             f"ETA {format_duration(progress.eta_s)}"]
    return "  ".join(p for p in parts if p)


def run(args: argparse.Namespace, ranks=None) -> int:
    """Train as the arguments say; returns the exit status (0 done, 1 failed or diverged, 128 + signal).

    ``ranks``: this process's place in a distributed run (``--gpus``, torchrun: :mod:`.train_distributed`).
    """
    from ..core.io import check_writable
    from ..core.train import SINGLE_PROCESS, load_folder, train
    from .train_distributed import run_distributed, wants_distributed

    if ranks is None and wants_distributed(args):
        return run_distributed(args, run)
    ranks = ranks or SINGLE_PROCESS

    check_args(args)
    init_from = _init_from(args)  # a starting model that is not there: say so before reading any image
    dataset, class_values, class_names = load_folder(args.images, args.labels, args.unlabelled, args.instances,
                                                     _instance_mode(args))
    model_config, train_config = _configs(args, dataset)
    if args.resume:
        _check_resume(args, dataset, class_values)
    if ranks.is_main:  # the other ranks of a distributed run never write
        check_writable(args.out, "the model folder")  # a read-only --out: say so now, not after training
    # train() checks at the call that a --init model fits these data: its refusal comes before this line.
    run_iter = train(dataset, model_config, train_config, out_dir=args.out if ranks.is_main else None,
                     init_from=init_from, class_values=class_values, class_names=class_names, ranks=ranks)
    print(f"training on {len(dataset)} image slice(s), classes {class_values}, preset {args.preset}",
          file=sys.stderr)
    bar = ProgressBar("train")
    try:
        last = _follow(run_iter, bar)
    except KeyboardInterrupt as exc:
        from . import exit_status

        run_iter.close()  # saves the best model so far (no-op if the interrupt already ended it)
        bar.close()
        print(f"interrupted{f' ({exc})' if str(exc) else ''}: the best model so far is in {args.out}", file=sys.stderr)
        return exit_status(exc)
    finally:
        run_iter.close()
    bar.close()
    return _report(last)


def _configs(args: argparse.Namespace, dataset):
    """The preset's model and training configurations, with the options given on the command line."""
    from ..core.presets import for_instances, preset_configs, snapping_to_edges

    model_config, train_config = preset_configs(args.preset, dataset.in_channels, dataset.n_classes)
    changes = {"seed": args.seed, "device": args.device, "num_threads": args.threads}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.time_limit is not None:
        changes["time_limit_s"] = args.time_limit
    if args.val_fraction is not None:
        changes["val_fraction"] = args.val_fraction
    if args.unlabelled_loss is not None:
        changes["unlabelled_loss"] = args.unlabelled_loss
    if args.unlabelled_weight is not None:
        changes["unlabelled_weight"] = args.unlabelled_weight
    if args.snap_to_edges is not None:
        train_config = snapping_to_edges(train_config, args.snap_to_edges)
    if args.instances:
        train_config = for_instances(train_config)
        changes["instance_output"] = "three_class" if _instance_mode(args) == "three_class" else ""
    changes.update(_settings(args.settings))
    return model_config, train_config.replace(**changes)


def _settings(pairs: list[str]) -> dict:
    """``--set NAME=VALUE`` options as TrainConfig changes (values read as JSON, else as text)."""
    import dataclasses
    import json

    from ..core.config import TrainConfig
    from ..core.errors import ConfigError

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    changes = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in fields:
            raise ConfigError(f"--set {pair!r}: expected NAME=VALUE with NAME one of the training settings: "
                              + ", ".join(sorted(fields)))
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        changes[name] = tuple(value) if isinstance(value, list) else value
    return changes


def _instance_mode(args: argparse.Namespace) -> str:
    """The --instance-mode of the run (distance when not given: see the module's docstring)."""
    return args.instance_mode or "distance"


def _init_from(args: argparse.Namespace):
    """What the run starts from: ``--resume``'s folder, ``--init``'s starting weights, or None (a new model)."""
    if args.init is None:
        return args.resume
    from ..core.train import StartingWeights
    from ..resources import STARTING_MODELS, model_folder

    folder = model_folder(args.init)  # an unknown name or a missing bundled model: a one-line message
    label = f"the {args.init} model" if args.init in STARTING_MODELS else f"the model in {folder}"
    return StartingWeights(folder, label)


def _check_resume(args: argparse.Namespace, dataset, class_values: list) -> None:
    """Refuse a --resume model that does not fit the labels or the images (before any work)."""
    from ..core.errors import DataError
    from ..core.model import load_model

    _, info = load_model(args.resume)  # a damaged or foreign model folder is reported before any work
    if list(info.class_values) != class_values:
        hint = (" (or give the --instance-mode it was trained with)" if args.instances else "")
        raise DataError(f"the model in {args.resume} predicts the values {info.class_values} but the labels "
                        f"hold {class_values}; train a new model instead of --resume{hint}")
    if info.model_config.in_channels != dataset.in_channels:
        raise DataError(f"the model in {args.resume} takes images with {info.model_config.in_channels} "
                        f"channel(s) but the images in {args.images} have {dataset.in_channels}; train a new "
                        "model instead of --resume")


def _follow(run_iter, bar: ProgressBar):
    """Run the training generator to its end, showing progress; returns its last progress (None if none)."""
    best_text, last = "", None
    for progress in run_iter:
        last = progress
        if progress.val is not None and progress.val.get("enough") is False:
            best_text = "not enough held-out labels to validate"  # no score: the latest model is kept
        elif progress.val is not None and progress.best_score is not None and progress.val.get("mean_f1") is not None:
            best_text = (f"val F1 {progress.val['mean_f1']:.3f} on {progress.val.get('pixels', 0):,} px "
                         f"(best {progress.best_score:.3f})")
        if progress.done:
            break
        bar.update(progress.step, progress.total_steps, _status(progress, best_text), force=progress.val is not None)
    return last


def _report(last) -> int:
    """Print how training ended; returns the exit status (1 when it did not finish or the loss diverged)."""
    if last is None or not last.done:
        return 1
    score = f", best validation mean F1 {last.best_score:.4f}" if last.best_score is not None else ""
    where = last.model_dir if last.model_dir is not None else "(nothing saved)"
    print(f"{last.stop_reason} after {last.step} steps in {format_duration(last.elapsed_s)} on {last.device}"
          f"{score}; model saved to {where}")
    if last.stop_reason and last.stop_reason.startswith("the loss"):
        return 1
    return 0
