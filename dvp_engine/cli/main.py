"""The ``dvp`` command: one module per subcommand (``dvp_engine/cli/cmd_*.py``).

Each subcommand module defines ``NAME``, ``HELP``, ``configure(parser)`` and ``run(args) -> int`` and imports
its heavy dependencies (torch, OpenImageIO, ...) inside ``run`` so that ``dvp --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from dvp_engine import __version__
from dvp_engine.core.errors import DvpError

from .common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UsageError,
    add_common_options,
    report_error,
    setup_logging,
)

#: Subcommand modules, in the order ``dvp --help`` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "cmd_info",
    "cmd_convert",
    "cmd_edit",
    "cmd_track",
    "cmd_overlay",
    "cmd_render_conditioning",
    "cmd_train",
    "cmd_render",
    "cmd_serve",
    "cmd_transfer",
    "cmd_reenact",
    "cmd_preview",
    "cmd_farm",
    "cmd_eval",
    "cmd_export",
    "cmd_nuke_script",
)


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"dvp_engine.cli.{name}")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (used by ``main`` and by the docs)."""
    parser = argparse.ArgumentParser(
        prog="dvp",
        description="Deep Video Portraits: track, transfer, render and re-animate portrait video.",
        epilog="Exit codes: 0 ok, 1 failure, 2 usage error. Run 'dvp COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"dvp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        mod = _load(name)
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.__doc__)
        mod.configure(p)
        add_common_options(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dvp`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    setup_logging(args)
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:
        report_error(exc)
        return EXIT_USAGE
    except DvpError as exc:
        report_error(exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        report_error(RuntimeError("interrupted"))
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (e.g. `dvp info ... | head`): not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def console_main() -> None:
    """``sys.exit(main())`` for the console script."""
    sys.exit(main())


if __name__ == "__main__":
    console_main()
