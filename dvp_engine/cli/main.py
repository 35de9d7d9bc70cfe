"""The ``dvp`` command: one module per subcommand (``dvp_engine/cli/cmd_*.py``).

Each subcommand module defines ``NAME``, ``HELP``, ``configure(parser)`` and ``run(args) -> int`` and imports
its heavy dependencies (torch, OpenImageIO, ...) inside ``run`` so that ``dvp --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence
from types import FrameType, ModuleType
from typing import NoReturn

from dvp_engine import __version__
from dvp_engine.core.errors import DvpError

from .common import (
    EXIT_FAILURE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Terminated,
    UsageError,
    add_common_options,
    report_error,
    setup_logging,
)
from .options import join_dash_values

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


class DvpArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors end in the protocol's ``dvp: error:`` line (after the usage), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        report_error(UsageError(f"{self.prog}: {message}"))
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (used by ``main`` and by the docs)."""
    parser = DvpArgumentParser(
        prog="dvp",
        description="Deep Video Portraits: track, transfer, render and re-animate portrait video.",
        epilog="Exit codes: 0 ok, 1 failure, 2 usage error, 3 internal error (a bug: -v prints the traceback), "
        "130 interrupted (SIGINT), 143 terminated (SIGTERM). Errors are one line on stderr: "
        "'dvp: error: <path>: frame <N>: <message>'. Run 'dvp COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"dvp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=DvpArgumentParser)
    for name in SUBCOMMANDS:
        mod = _load(name)
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.__doc__)
        mod.configure(p)
        add_common_options(p)
        p.set_defaults(_run=mod.run)
    return parser


@contextlib.contextmanager
def _sigterm_as_exception() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` in the main thread (as SIGINT raises
    KeyboardInterrupt), so ``finally`` blocks and :func:`dvp_engine.core.atomic.atomic_path` remove their
    temporary files and ``main`` prints an error line. Outside the main thread nothing is changed."""
    try:
        previous = signal.getsignal(signal.SIGTERM)

        def handler(signum: int, frame: FrameType | None) -> None:
            raise Terminated("terminated (SIGTERM)")

        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread of the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _describe_os_error(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else None
    text = exc.strerror or str(exc)
    return f"{where}: {text}" if where is not None else text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dvp`` console script; returns the exit code.

    Every failure ends as one ``dvp: error: <path>: frame <N>: <message>`` line on stderr and a documented
    exit code (:data:`dvp_engine.cli.common.EXIT_CODES`); ``-v`` prints the traceback before the line.
    """
    parser = build_parser()
    args = parser.parse_args(join_dash_values(list(sys.argv[1:] if argv is None else argv)))
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    setup_logging(args)
    verbose = getattr(args, "verbose", 0) >= 1

    def fail(code: int, message: BaseException | str) -> int:
        if verbose:
            traceback.print_exc(file=sys.stderr)
        report_error(message if isinstance(message, BaseException) else RuntimeError(message))
        return code

    try:
        with _sigterm_as_exception():
            return int(args._run(args) or 0)
    except UsageError as exc:
        return fail(EXIT_USAGE, exc)
    except DvpError as exc:
        return fail(EXIT_FAILURE, exc)
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted")
    except Terminated as exc:
        return fail(EXIT_TERMINATED, exc)
    except BrokenPipeError:
        # the reader went away (e.g. `dvp info ... | head`): not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a file or folder the command could not read or write
        return fail(EXIT_FAILURE, _describe_os_error(exc))
    except MemoryError:
        return fail(EXIT_FAILURE, "out of memory (try a smaller --batch or fewer frames)")
    except Exception as exc:  # a bug: still one error line, never a bare traceback
        hint = "" if verbose else "; run with -v for the traceback"
        return fail(EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {exc}{hint} (please report it)")


def console_main() -> None:
    """``sys.exit(main())`` for the console script."""
    sys.exit(main())


if __name__ == "__main__":
    console_main()
