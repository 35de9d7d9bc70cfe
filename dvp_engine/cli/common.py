"""Shared CLI plumbing: logging, progress reporting, error reporting and exit codes.

Exit codes scripts can rely on (:data:`EXIT_CODES`): 0 success, 1 failure (bad input, a file that cannot be
read or written: a :class:`DvpError` or an ``OSError``), 2 usage error (bad arguments), 3 internal error (a bug
in dvp; ``-v`` prints the traceback), 130 interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM). Interrupted
and terminated jobs remove their temporary files and keep what was finished.

Progress goes to stderr. With ``--progress lines`` (the default when stderr is not a terminal, e.g. when a
host such as Nuke or Blender runs ``dvp``) each step prints one machine-readable line::

    dvp: progress <done>/<total> frame <N>

Errors print ``dvp: error: <path>: frame <N>: <message>`` (path and frame where known). The line formats
live in :mod:`dvp_engine.core.cli_protocol`, which the Nuke and Blender adapters parse with.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dvp_engine.core.cli_protocol import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, format_error, format_progress
from dvp_engine.core.errors import DvpError

__all__ = [
    "EXIT_CODES",
    "EXIT_FAILURE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
]

log = logging.getLogger("dvp")

EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

#: Every exit code of ``dvp`` and its meaning (docs/cli.md lists these).
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_FAILURE: "failure: bad input, or a file that cannot be read or written",
    EXIT_USAGE: "usage error: bad arguments or option values",
    EXIT_INTERNAL: "internal error (a bug in dvp; -v prints the traceback)",
    EXIT_INTERRUPTED: "interrupted (SIGINT, Ctrl-C)",
    EXIT_TERMINATED: "terminated (SIGTERM)",
}


class Terminated(BaseException):
    """Raised in the main thread when ``dvp`` receives SIGTERM (a BaseException, like KeyboardInterrupt, so
    that ``except Exception`` blocks do not swallow it while cleanup handlers still run)."""


class UsageError(DvpError):
    """Bad arguments that argparse could not catch (exit code 2)."""


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every subcommand takes: verbosity and progress style."""
    group = parser.add_argument_group("output")
    group.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeatable)")
    group.add_argument("-q", "--quiet", action="store_true", help="only errors")
    group.add_argument(
        "--progress",
        choices=("auto", "bar", "lines", "none"),
        default="auto",
        help="progress display: a bar on a terminal, one 'dvp: progress' line per step otherwise (auto)",
    )


def setup_logging(args: argparse.Namespace) -> None:
    """Configure the ``dvp`` logger from ``-v``/``-q``."""
    level = logging.ERROR if getattr(args, "quiet", False) else logging.INFO
    if getattr(args, "verbose", 0) >= 1:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dvp: %(message)s"))
    root = logging.getLogger("dvp")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def progress_mode(args: argparse.Namespace | None) -> str:
    """Resolve ``--progress auto`` to ``bar`` (terminal) or ``lines`` (pipe); ``none`` when ``-q``."""
    mode = getattr(args, "progress", "auto") if args is not None else "auto"
    if args is not None and getattr(args, "quiet", False) and mode == "auto":
        return "none"
    if mode == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return str(mode)


class Progress:
    """Progress over a known number of steps, as a tqdm bar or as machine-readable lines.

    Use :meth:`step` after each finished frame; :meth:`note` for a postfix such as losses.
    """

    def __init__(self, total: int, desc: str, mode: str = "lines") -> None:
        self.total = int(total)
        self.done = 0
        self.mode = mode
        self.desc = desc
        self._bar = None
        if mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True)

    def step(self, frame: int | None = None, n: int = 1) -> None:
        """Record ``n`` finished steps, the last for ``frame``."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "lines":
            print(format_progress(self.done, self.total, frame), file=sys.stderr, flush=True)

    def note(self, **values: float | str) -> None:
        """Show values (e.g. losses) beside the bar; printed as a line in ``lines`` mode."""
        text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix_str(text)
        elif self.mode == "lines":
            print(f"dvp: {self.desc}: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def report_error(exc: BaseException) -> None:
    """Print an error the documented way."""
    print(format_error(str(exc)), file=sys.stderr, flush=True)


class StageProgress:
    """Progress over named stages (``landmarks``, ``track``, ``train`` ...), one bar or line series each.

    Call it as ``progress(stage, done, total)``; a new stage closes the previous bars. Use as a context manager
    so the last bar is closed.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.bars: dict[str, Progress] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None:
            self.close()
            bar = self.bars[stage] = Progress(total, stage, self.mode)
        bar.step(n=done - bar.done)

    def close(self) -> None:
        for b in self.bars.values():
            b.close()

    def __enter__(self) -> StageProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
