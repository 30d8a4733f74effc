"""Command line: ``unet-studio [IMAGE]`` opens the application; ``unet-studio train|predict`` work headless.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``; the
modules are imported only when their command runs, so ``unet-studio --help`` and the application start
stay fast. Errors meant for the person (:class:`UNetStudioError`) print one line on stderr and exit
non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
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
        # tifffile logs what it finds odd in a damaged file; the error that follows says it for the person.
        handler.addFilter(lambda record: record.levelno >= logging.ERROR or not record.name.startswith("tifffile"))
        logging.basicConfig(level=logging.WARNING, handlers=[handler])
    return _guarded(runner, args, parser.prog)


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
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
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
