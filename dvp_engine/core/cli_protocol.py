"""The line protocol between the ``dvp`` command and the hosts that run it (stdlib only).

With ``--progress lines`` (the default when stderr is not a terminal) ``dvp`` writes on stderr::

    dvp: progress <done>/<total> frame <N>
    dvp: error: <path>: frame <N>: <message>

and exits 0 (success), 1 (failure) or 2 (usage error). The CLI formats these lines with
:func:`format_progress` and :func:`format_error`; the Nuke and Blender adapters read them with
:func:`parse_line`, so both ends share one definition. Fields after ``frame <N>`` in a progress line are
ignored, so later versions may add some.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENV_VAR = "DVP_EXECUTABLE"
"""Environment variable naming the ``dvp`` executable for hosts."""

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

_PROGRESS = re.compile(r"^dvp: progress (\d+)/(\d+)(?: frame (-?\d+))?(?:\s.*)?$")
_ERROR = re.compile(r"^dvp: error: (.*)$")
_FRAME_IN_ERROR = re.compile(r"(?:^|: )frame (-?\d+)(?::|$)")


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` steps finished, the last at ``frame``."""

    done: int
    total: int
    frame: int | None


@dataclass(frozen=True)
class ErrorLine:
    """A ``dvp: error:`` line; ``frame`` parsed from it where present."""

    message: str
    frame: int | None


def format_progress(done: int, total: int, frame: int | None = None) -> str:
    """The progress line for ``done`` of ``total`` steps (without a newline)."""
    where = f" frame {frame}" if frame is not None else ""
    return f"dvp: progress {done}/{total}{where}"


def format_error(message: str) -> str:
    """The error line; ``message`` is ``<path>: frame <N>: <text>`` where path and frame are known.

    Always one line: line breaks inside the message (e.g. a library's multi-line error) become ``"; "``;
    characters that cannot be written as UTF-8 are backslash-escaped.
    """
    text = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    # undecodable bytes (a file name or a library message that is not UTF-8) are escaped, never a crash
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return f"dvp: error: {text}"


def parse_line(line: str) -> Progress | ErrorLine | None:
    """Parse one stderr line of ``dvp``: a :class:`Progress`, an :class:`ErrorLine` or ``None`` (other text)."""
    line = line.rstrip("\r\n")
    m = _PROGRESS.match(line)
    if m:
        return Progress(int(m.group(1)), int(m.group(2)), None if m.group(3) is None else int(m.group(3)))
    m = _ERROR.match(line)
    if m:
        f = _FRAME_IN_ERROR.search(m.group(1))
        return ErrorLine(m.group(1), None if f is None else int(f.group(1)))
    return None


@dataclass
class RunOutcome:
    """What a host saw of one ``dvp`` run: exit code, cancellation, the last progress, errors and the log.

    Hosts feed every stderr line to :meth:`observe` and subclass it for their own messages.
    """

    returncode: int | None = None
    cancelled: bool = False
    last_progress: Progress | None = None
    errors: list[ErrorLine] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def observe(self, line: str) -> Progress | ErrorLine | None:
        """Record one stderr line (kept in :attr:`log`); returns its parsed event, if any."""
        self.log.append(line.rstrip("\r\n"))
        ev = parse_line(line)
        if isinstance(ev, Progress):
            self.last_progress = ev
        elif isinstance(ev, ErrorLine):
            self.errors.append(ev)
        return ev

    @property
    def ok(self) -> bool:
        """True when ``dvp`` exited 0 and was not cancelled."""
        return self.returncode == EXIT_OK and not self.cancelled

    @property
    def failed_frame(self) -> int | None:
        """The frame named by the last error line, if any."""
        for err in reversed(self.errors):
            if err.frame is not None:
                return err.frame
        return None


class DvpNotFound(RuntimeError):
    """The ``dvp`` executable could not be found; the message says where it looked and how to set it."""


def reenact_output(job: str | os.PathLike[str]) -> str:
    """The EXR pattern ``dvp reenact`` writes its frames to inside a job folder."""
    return str(Path(job) / "frames" / "frame.####.exr")


def find_dvp(
    setting: str = "",
    environ: Mapping[str, str] | None = None,
    *,
    setting_label: str = "the host setting",
    how_to_set: str = "",
) -> str:
    """The ``dvp`` executable: the host's own setting, then ``$DVP_EXECUTABLE``, then ``PATH``.

    Args:
        setting: the path the host's UI holds (may be empty).
        environ: environment to read (default ``os.environ``).
        setting_label: how the message names the host setting (``the node's 'dvp' knob``).
        how_to_set: the host-specific sentence telling the user where to set the path.

    Raises:
        DvpNotFound: naming every place looked at and how to set the path.
    """
    env = os.environ if environ is None else environ
    tried: list[str] = []
    for label, value in ((setting_label, setting), (f"${ENV_VAR}", env.get(ENV_VAR, ""))):
        if value:
            path = Path(os.path.expanduser(value))
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
            tried.append(f"{label} ({value}: not an executable file)")
        else:
            tried.append(f"{label} (not set)")
    found = shutil.which("dvp", path=env.get("PATH"))
    if found:
        return found
    tried.append("PATH (no 'dvp')")
    raise DvpNotFound(
        "dvp executable not found; looked at "
        + ", ".join(tried)
        + ". "
        + how_to_set
        + (" " if how_to_set else "")
        + f"Or set the environment variable {ENV_VAR}, or add the folder of dvp (e.g. /path/to/dvp/.venv/bin) to PATH."
    )
