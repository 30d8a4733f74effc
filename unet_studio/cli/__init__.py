"""Command line: ``unet-studio [IMAGE]`` opens the application; ``unet-studio train|predict`` work headless.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``; the
modules are imported only when their command runs, so ``unet-studio --help`` and the application start
stay fast. Errors meant for the person (:class:`UNetStudioError`) print one line on stderr and exit
non-zero; ``--debug`` shows the traceback. SIGTERM and SIGHUP (a cluster scheduler, ``timeout``, a closed
terminal) stop a command as Ctrl-C does: training saves its best model, prediction removes its temporary
files; the exit status is 128 + the signal's number.
"""

from __future__ import annotations

import argparse
import importlib
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from .. import __version__

SUBCOMMANDS = {
    "train": ("unet_studio.cli.train", "train a U-Net on images and label images"),
    "predict": ("unet_studio.cli.predict", "predict label images (and probabilities, instances, measurements)"),
}

PROG = "unet-studio"


def _app_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  {name:<10} {text}" for name, (_, text) in SUBCOMMANDS.items())
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="UNet Studio: paint labels on microscopy images, train a U-Net in the background, "
        "and watch its predictions improve.",
        epilog=f"headless commands (see '{PROG} COMMAND --help'):\n{commands}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", nargs="?", help="image or stack to open (default: the bundled sample)")
    parser.add_argument("--project", metavar="DIR", help="open (or create) the project folder DIR")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    return parser


def _command_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    module_name, text = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"{PROG} {name}", description=text)
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    module.add_arguments(parser)
    return parser, module


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        parser, module = _command_parser(argv[0])
        args = parser.parse_args(argv[1:])
        runner = module.run  # type: ignore[attr-defined]
    else:
        parser = _app_parser()
        args = parser.parse_args(argv)
        runner = _run_app
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(_OneLineFormatter(parser.prog))
        # tifffile logs what it finds odd in a file (at ERROR level even where it reads the file well, e.g.
        # blocked OME XML): a file that fails gets its own message from us, one that succeeds needs none.
        handler.addFilter(lambda record: record.levelno >= logging.CRITICAL or not record.name.startswith("tifffile"))
        logging.basicConfig(level=logging.WARNING, handlers=[handler])
    with _signals_interrupt():
        return _guarded(runner, args, parser.prog)


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal other than SIGINT: handled wherever Ctrl-C is, exit status 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


@contextlib.contextmanager
def _signals_interrupt():
    """SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread while a command runs (then the
    handlers before are restored), so that they stop it as cleanly as Ctrl-C."""
    names = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise Interrupted(signum)

    before = {name: signal.signal(getattr(signal, name), interrupt) for name in names}
    try:
        yield
    finally:
        for name, handler in before.items():
            signal.signal(getattr(signal, name), handler)


class _OneLineFormatter(logging.Formatter):
    """``unet-studio train: warning: ...``: one line per message, as the errors are printed."""

    def __init__(self, prog: str) -> None:
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.prog}: {record.levelname.lower()}: {' '.join(record.getMessage().split())}"


def _guarded(runner, args: argparse.Namespace, prog: str) -> int:
    from ..core.errors import UNetStudioError

    try:
        return int(runner(args) or 0)
    except UNetStudioError as exc:
        if args.debug:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"{prog}: interrupted{f' ({exc})' if isinstance(exc, Interrupted) else ''}", file=sys.stderr)
        return exit_status(exc)
    except Exception as exc:  # a bug: say so in one line, the traceback is behind --debug
        if args.debug:
            raise
        print(f"{prog}: unexpected error: {type(exc).__name__}: {exc} (run again with --debug for details)",
              file=sys.stderr)
        return 1


def _run_app(args: argparse.Namespace) -> int:
    from ..gui.app import main as app_main

    return app_main(image=args.image, project=args.project)


if __name__ == "__main__":
    sys.exit(main())
