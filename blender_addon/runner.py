"""Run the ``dvp`` command out of process and follow its progress. stdlib only, no bpy.

``dvp`` prints machine-readable lines on stderr (``--progress lines``)::

    dvp: progress <done>/<total> frame <N>
    dvp: error: <path>: frame <N>: <message>

and exits 0 (success), 1 (failure) or 2 (usage error). :class:`DvpProcess` starts the command, reads stderr
on a thread and hands parsed events to the caller's :meth:`DvpProcess.poll` (the modal operator calls it
from a timer); :func:`run_dvp` is the blocking form used by scripts, background mode and tests.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .core import ImageSequence
from .core import cli_protocol as _protocol

ENV_VAR = _protocol.ENV_VAR
DvpNotFound = _protocol.DvpNotFound
ErrorLine = _protocol.ErrorLine
Progress = _protocol.Progress
parse_line = _protocol.parse_line

__all__ = ["ENV_VAR", "DvpNotFound", "ErrorLine", "Progress", "RunResult", "find_dvp", "parse_line"]


def find_dvp(setting: str = "", environ: Mapping[str, str] | None = None) -> str:
    """The ``dvp`` executable: the DVP add-on setting, then ``$DVP_EXECUTABLE``, then ``PATH``.

    Raises:
        DvpNotFound: naming every place looked at and how to set the path.
    """
    return _protocol.find_dvp(
        setting,
        environ,
        setting_label="the DVP add-on setting",
        how_to_set="Set the path in the DVP panel (3D View sidebar > DVP) or in Preferences > Add-ons > DVP.",
    )


@dataclass
class RunResult(_protocol.RunOutcome):
    """Outcome of a ``dvp`` run (see :class:`dvp_engine.core.cli_protocol.RunOutcome`)."""

    def message(self) -> str:
        """A one-line summary for the user."""
        if self.cancelled:
            done = self.last_progress.done if self.last_progress else 0
            return f"dvp cancelled after {done} frame(s); frames already written are kept"
        if self.ok:
            n = self.last_progress.done if self.last_progress else 0
            return f"dvp finished ({n} frame(s))"
        where = f" at frame {self.failed_frame}" if self.failed_frame is not None else ""
        detail = self.errors[-1].message if self.errors else (self.log[-1] if self.log else "no output")
        kind = "usage error" if self.returncode == 2 else "failed"
        return f"dvp {kind}{where} (exit {self.returncode}): {detail}; frames already written are kept"


class DvpProcess:
    """A running ``dvp`` command whose stderr is read on a thread; poll it from the UI thread."""

    def __init__(self, command: Sequence[str], cwd: str | None = None) -> None:
        self.command = list(command)
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._proc = subprocess.Popen(
            self.command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._eof = False
        self.result = RunResult(returncode=None)

    def _read(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._lines.put(line)
        self._lines.put(None)

    def poll(self) -> list[Progress | ErrorLine]:
        """Events since the last call (non-blocking); sets ``result.returncode`` once ``dvp`` has exited."""
        events: list[Progress | ErrorLine] = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._eof = True
                break
            ev = self.result.observe(line)
            if ev is not None:
                events.append(ev)
        if self._eof and self.result.returncode is None:
            self.result.returncode = self._proc.wait()
        return events

    @property
    def finished(self) -> bool:
        """True once the process has exited and all its output was read."""
        return self.result.returncode is not None

    def cancel(self, timeout: float = 5.0) -> None:
        """Stop ``dvp`` (terminate, then kill after ``timeout`` seconds); frames written stay on disk."""
        self.result.cancelled = True
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reader.join(timeout)
        self.poll()
        if self.result.returncode is None:
            self.result.returncode = self._proc.returncode


def run_dvp(
    command: Sequence[str],
    on_progress: Callable[[Progress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    cwd: str | None = None,
    interval: float = 0.05,
) -> RunResult:
    """Run ``dvp`` to completion (blocking), calling ``on_progress`` per progress line."""
    proc = DvpProcess(command, cwd=cwd)
    while True:
        for ev in proc.poll():
            if isinstance(ev, Progress) and on_progress is not None:
                on_progress(ev)
        if proc.finished:
            return proc.result
        if should_cancel is not None and should_cancel():
            proc.cancel()
            return proc.result
        time.sleep(interval)


MATTE_ARGS = ["--matte", "alpha"]
"""Blender reads an ``R, G, B, matte.A`` EXR as a multilayer file (no alpha, no colour management in the
sequencer), so the add-on asks dvp for premultiplied RGBA."""


def render_command(
    dvp: str,
    model: str,
    track: str,
    output: str,
    frames: str | None = None,
    curves: Sequence[str] = (),
    existing: str = "overwrite",
) -> list[str]:
    """``dvp render --model DIR --track T -o OUT [--frames R] [--curves C ...] [--overwrite|--resume]``.

    ``existing``: what to do with frames already on disk: ``overwrite``, ``resume`` (skip them) or ``fail``.
    """
    if existing not in ("overwrite", "resume", "fail"):
        raise ValueError(f"existing must be overwrite, resume or fail, got {existing!r}")
    cmd = [dvp, "render", "--model", model, "--track", track, "-o", output]
    if frames:
        cmd += ["--frames", frames]
    for c in curves:
        cmd += ["--curves", c]
    if existing != "fail":
        cmd.append("--" + existing)
    return cmd + MATTE_ARGS + ["--progress", "lines"]


def reenact_command(
    dvp: str,
    source: str,
    target: str,
    job: str,
    mode: str = "full",
    model: str | None = None,
    frames: str | None = None,
    curves: Sequence[str] = (),
) -> list[str]:
    """``dvp reenact --source S --target T --mode M -o JOB [--model DIR] [--frames R] [--curves C ...]``.

    The frames land in ``JOB/frames/frame.####.exr`` (see :func:`reenact_output`).
    """
    cmd = [dvp, "reenact", "--source", source, "--target", target, "--mode", mode, "-o", job]
    if model:
        cmd += ["--model", model]
    if frames:
        cmd += ["--frames", frames]
    for c in curves:
        cmd += ["--curves", c]
    return cmd + MATTE_ARGS + ["--progress", "lines"]


reenact_output = _protocol.reenact_output


def sequence_files(pattern: str, first: int, last: int) -> list[Path]:
    """The existing files of an output pattern between two frames, named as ``dvp`` names them
    (:class:`ImageSequence`: ``####`` or a lone ``#`` is four digits, ``%04d``, ``@@@`` ...)."""
    seq = ImageSequence.parse(pattern)
    return [p for p in (seq.path(f) for f in range(first, last + 1)) if p.is_file()]


def frame_elements(pattern: str, first: int, last: int, step: int = 1) -> tuple[list[str], list[int]]:
    """File names for an image strip that shows each rendered frame at its own scene frame.

    A strip plays one element per scene frame, so there is one element for every frame ``first..last``:
    a rendered frame ``f`` (``first + k * step``) names its own file; the frames between steps hold the last
    rendered frame before them; a rendered frame that is missing on disk keeps its own (missing) name, so
    the strip shows nothing there and every later frame stays at its place.

    Returns:
        ``(names, missing)``: ``last - first + 1`` file names (no folder) and the rendered frames missing.
    """
    seq = ImageSequence.parse(pattern)
    names: list[str] = []
    missing: list[int] = []
    held = seq.path(first).name
    for f in range(first, last + 1):
        if (f - first) % max(1, step) == 0:
            path = seq.path(f)
            held = path.name
            if not path.is_file():
                missing.append(f)
        names.append(held)
    return names, missing


class ServeProcess:
    """A persistent ``dvp serve`` (model kept loaded): one JSON request line in, one reply line out."""

    def __init__(self, dvp: str) -> None:
        self.dvp = dvp
        self._proc = subprocess.Popen(
            [dvp, "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self._proc.poll() is None

    @property
    def pid(self) -> int:
        return self._proc.pid

    def request(self, request: Mapping[str, object], timeout: float = 120.0) -> dict[str, object]:
        """Send one request and wait for its reply (``{"ok": False, "error": ...}`` if dvp went away)."""
        import json

        if not self.alive or self._proc.stdin is None or self._proc.stdout is None:
            return {"ok": False, "error": f"dvp serve is not running (exit {self._proc.poll()})"}
        self._proc.stdin.write(json.dumps(dict(request)) + "\n")
        self._proc.stdin.flush()
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self._proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not box or not box[0]:
            return {"ok": False, "error": f"dvp serve gave no answer within {timeout:.0f} s"}
        reply: dict[str, object] = json.loads(box[0])
        return reply

    def close(self) -> None:
        """Ask the server to quit, then make sure it has."""
        try:
            if self.alive and self._proc.stdin is not None:
                self._proc.stdin.write('{"quit": true}\n')
                self._proc.stdin.flush()
            self._proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()


def overlay_command(dvp: str, track: str, source: str, out_dir: str, frames: str) -> list[str]:
    """``dvp overlay TRACK SOURCE -o DIR --frames R``: the fitted mesh over the footage, ``DIR/overlay.####.png``."""
    return [dvp, "overlay", track, source, "-o", out_dir, "--frames", frames, "--progress", "lines"]
