"""Run the ``dvp`` command out of process and follow its progress (stdlib only, no ``nuke``).

``dvp`` writes machine-readable lines on stderr when run with ``--progress lines``::

    dvp: progress <done>/<total> frame <N>
    dvp: error: <path>: frame <N>: <message>

and exits 0 (success), 1 (failure) or 2 (usage error). :func:`run_dvp` starts the command, reads stderr on a
thread, reports :class:`Progress` events and stops the process when ``should_cancel()`` turns true.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dvp_engine.core import cli_protocol as _protocol
from dvp_engine.core.cli_protocol import ENV_VAR, DvpNotFound, ErrorLine, Progress, parse_line

__all__ = ["ENV_VAR", "DvpNotFound", "ErrorLine", "Progress", "RunResult", "find_dvp", "parse_line"]


def find_dvp(setting: str = "", environ: Mapping[str, str] | None = None) -> str:
    """The ``dvp`` executable: the node's 'dvp' knob, then ``$DVP_EXECUTABLE``, then ``PATH``.

    Raises:
        DvpNotFound: naming every place looked at and how to set the path.
    """
    return _protocol.find_dvp(
        setting,
        environ,
        setting_label="the node's 'dvp' knob",
        how_to_set="Set the path of dvp in the DVPortrait node's 'dvp' knob (DVPortrait tab), or before starting Nuke:",
    )


@dataclass
class RunResult(_protocol.RunOutcome):
    """Outcome of one ``dvp`` run (see :class:`dvp_engine.core.cli_protocol.RunOutcome`)."""

    command: list[str] = field(default_factory=list)

    def summary(self, what: str = "dvp") -> str:
        """One user-facing sentence: finished, cancelled, or failed at frame N with the engine's message."""
        done = self.last_progress.done if self.last_progress else 0
        total = self.last_progress.total if self.last_progress else 0
        if self.cancelled:
            return f"{what} cancelled after {done} frame(s); the frames already written are kept"
        if self.ok:
            return f"{what} finished ({done} frame(s))"
        where = f" at frame {self.failed_frame}" if self.failed_frame is not None else ""
        of = f" ({done} of {total} frames done)" if total else ""
        detail = self.errors[-1].message if self.errors else (self.log[-1] if self.log else "no output")
        kind = "usage error" if self.returncode == 2 else "failed"
        return f"{what} {kind}{where}{of}: {detail} (exit {self.returncode}); the frames already written are kept"


def run_dvp(
    command: Sequence[str],
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    poll_interval: float = 0.1,
) -> RunResult:
    """Run ``command`` to completion, calling ``on_progress`` per progress line; blocking.

    Call it from a worker thread in the GUI. ``should_cancel`` is polled every ``poll_interval`` seconds; when
    it returns True the process is terminated (killed after 5 s) and the result is marked cancelled.
    """
    result = RunResult(command=list(command))
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    proc = subprocess.Popen(
        result.command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def _read() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            lines.put(raw)
        lines.put(None)

    reader = threading.Thread(target=_read, name="dvp-stderr", daemon=True)
    reader.start()
    while True:
        try:
            raw = lines.get(timeout=poll_interval)
        except queue.Empty:
            raw = ""
        if raw is None:
            break
        if raw:
            ev = result.observe(raw)
            if isinstance(ev, Progress) and on_progress is not None:
                on_progress(ev)
        if should_cancel is not None and not result.cancelled and should_cancel():
            result.cancelled = True
            proc.terminate()
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
    result.returncode = proc.wait()
    reader.join(5.0)
    return result
