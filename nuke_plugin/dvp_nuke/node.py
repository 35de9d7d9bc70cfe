"""The DVPortrait node: creation and its buttons (Track, Import Track, Export Curves, Render).

Heavy work runs out of process through the ``dvp`` command. In the GUI a worker thread runs it and follows
its progress in a cancellable ``ProgressTask``; results reach the node through ``executeInMainThread``. In
terminal mode (``nuke -t``) the same functions run synchronously, print to stderr and raise
:class:`DvpNukeError`, with no UI call at all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dvp_engine.core import CurveSet, DvpError, FaceTrack, FrameSet, InputError, apply_curves, layout
from dvp_engine.core.cli_protocol import reenact_output
from dvp_engine.core.gaze import resolved_gaze
from dvp_engine.nkscript import knobs as mapping

from . import anim, host, runner
from .protocols import Node


class DvpNukeError(RuntimeError):
    """A user-facing failure of a DVPortrait action (the message says what to do)."""


# ---------------------------------------------------------------------------------------------- knobs
def _str(node: Node, name: str) -> str:
    k = node.knob(name)
    return "" if k is None else str(k.value() or "").strip()


def _set(node: Node, name: str, value: Any) -> None:
    k = node.knob(name)
    if k is not None:
        k.setValue(value)


def _status(node: Node, text: str) -> None:
    _set(node, "status", text)


def _tell(text: str) -> None:
    host.message(text)


def create_node(
    name: str = "DVPortrait1",
    *,
    track: str = "",
    model: str = "",
    output: str = "",
    controls: tuple[str, ...] | None = None,
) -> Node:
    """Build a DVPortrait Group node; with ``track`` it is imported at once (its named controls shown)."""
    ctrl = controls
    loaded: FaceTrack | None = None
    if track:
        loaded = _load_track(track)
        names = tuple(n for n in anim.track_values(loaded) if mapping.is_control(n))
        ctrl = ctrl if ctrl is not None else (names or mapping.DEFAULT_CONTROLS)
    group, _ = host.new_group(
        name, mapping.knob_layout(ctrl if ctrl is not None else mapping.DEFAULT_CONTROLS)
    )
    _set(group, "model_dir", model)
    _set(group, "output", output)
    if track:
        _set(group, "track_file", track)
        import_track(group, loaded)
    return group


def menu_create() -> Node:
    """Menu entry: a new empty DVPortrait node."""
    return create_node()


# ---------------------------------------------------------------------------------------------- import / export
def _load_track(path: str) -> FaceTrack:
    try:
        return FaceTrack.load(path)
    except DvpError as exc:
        raise DvpNukeError(str(exc)) from exc


def _add_control(node: Node, name: str) -> None:
    knob, _ = mapping.channel_to_knob(name)
    spec = mapping.KnobSpec("double", knob, name[5:].replace("_", " "), name, (name,), range=(-3, 3))
    node.addKnob(host.make_knob(spec))


def import_track(node: Node, track: FaceTrack | None = None) -> anim.ImportReport:
    """Import Track: key every channel knob from the node's track file (one key per tracked frame).

    Channel mismatches are reported (message in the GUI, stderr in terminal mode); matching channels load.
    """
    path = _str(node, "track_file")
    if track is None:
        if not path:
            raise DvpNukeError("set the 'track' knob to a FaceTrack .npz first (or press Track)")
        track = _load_track(path)
    report = anim.import_track(node, track, host.animation_keys, _add_control)
    if not _str(node, "frame_range") and track.n_frames:
        _set(node, "frame_range", str(FrameSet.from_frames(int(f) for f in track.frames)))
    _status(
        node,
        f"track: {track.n_frames} frames {int(track.frames[0])}-{int(track.frames[-1])}"
        if track.n_frames
        else "empty track",
    )
    if report.mismatch or report.added:
        _tell(report.message(path or "track"))
    return report


def default_curves_path(node: Node) -> str:
    """The curve file: the ``curves`` knob, else ``<output folder>/<node>_curves.json``."""
    path = _str(node, "curves_file")
    if path:
        return path
    out = _str(node, "output")
    if not out:
        raise DvpNukeError("set the 'curves' or the 'output' knob so Export Curves knows where to write")
    return str(Path(out).parent / f"{node.name()}_curves.json")


def export_curves(node: Node, path: str | None = None) -> Path:
    """Export Curves: write the knobs' animation (with edits) as a curve file relative to the track."""
    tpath = _str(node, "track_file")
    if not tpath:
        raise DvpNukeError("Export Curves needs the track the knobs were imported from: set the 'track' knob")
    track = _load_track(tpath)
    dest = Path(path or default_curves_path(node))
    try:
        curves, report = anim.export_curves(node, track, metadata={"node": node.name(), "track": tpath})
        check_look_at(track, curves)
    except DvpError as exc:
        raise DvpNukeError(f"{node.name()}: {exc}") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        curves.save(dest)
    except DvpError as exc:
        raise DvpNukeError(str(exc)) from exc
    if report.skipped:
        _tell(f"{dest}: not exported (the track has no such channels): " + ", ".join(report.skipped))
    _status(node, f"curves: {len(report.edited)} edited channel(s) -> {dest.name}")
    return dest


def check_look_at(track: FaceTrack, curves: CurveSet) -> None:
    """Refuse look-at edits the render would refuse: a target behind the face (or a weight outside 0..1)
    where the weight is above 0, with the engine's message naming the frame.

    The eyeball centres are the track's calibration, else the face model's (as ``dvp render`` uses them).

    Raises:
        InputError: from :func:`dvp_engine.core.gaze.resolved_gaze`.
    """
    if not any(name in curves.curves for name in layout.LOOK_AT):
        return
    edited = apply_curves(track, curves)
    if edited.eyes is not None:
        centres = edited.eyes.centres
    else:
        from dvp_engine.facemodel import load_default_model

        model = load_default_model()
        centres = np.stack([model.eyeball_left_center, model.eyeball_right_center])
    try:
        resolved_gaze(edited.channels, centres, [int(f) for f in edited.frames])
    except InputError as exc:
        raise InputError(f"look at: {_without_frame(exc)}", frame=exc.frame) from None


def _without_frame(exc: DvpError) -> str:
    text, prefix = str(exc), f"frame {exc.frame}: "
    return text[len(prefix) :] if exc.frame is not None and text.startswith(prefix) else text


# ---------------------------------------------------------------------------------------------- out of process
@dataclass
class Job:
    """A running (GUI) or finished (terminal) ``dvp`` job."""

    what: str
    command: list[str]
    thread: threading.Thread | None = None
    result: runner.RunResult | None = None

    def wait(self, timeout: float | None = None) -> runner.RunResult | None:
        """Wait for the worker thread (GUI) and return the result."""
        if self.thread is not None:
            self.thread.join(timeout)
        return self.result


def _frames(node: Node) -> str:
    text = _str(node, "frame_range")
    if not text:
        raise DvpNukeError("set the 'frame range' knob (e.g. 1001-1100)")
    try:
        return str(FrameSet.parse(text))
    except ValueError as exc:
        raise DvpNukeError(f"frame range: {exc}") from exc


def _dvp(node: Node) -> str:
    try:
        return runner.find_dvp(_str(node, "dvp_executable"))
    except runner.DvpNotFound as exc:
        raise DvpNukeError(str(exc)) from exc


def _plate_file(node: Node) -> str:
    up = node.input(0)
    seen = 0
    while up is not None and seen < 50:
        k = up.knob("file")
        if k is not None and str(k.value() or ""):
            return str(k.value())
        up, seen = up.input(0), seen + 1
    raise DvpNukeError("connect input 'plate' to a Read node of the footage (movie or image sequence)")


def render_command(node: Node) -> tuple[list[str], str]:
    """The ``dvp render`` / ``dvp reenact`` command for the node, and the EXR pattern it writes."""
    dvp = _dvp(node)
    frames = _frames(node)
    output = _str(node, "output")
    if not output:
        raise DvpNukeError("set the 'output' knob to an EXR pattern such as /shots/sh010/dvp/sh010.####.exr")
    model = _str(node, "model_dir")
    if _str(node, "engine") == "reenact":
        source = _str(node, "source")
        if not source:
            raise DvpNukeError("'render with' is reenact: set the 'reenact source' knob to the source video")
        job = str(Path(output).parent)
        cmd = [dvp, "reenact", "--source", source, "--target", _plate_file(node)]
        cmd += ["--mode", _str(node, "reenact_mode") or "full", "-o", job, "--frames", frames]
        if model:
            cmd += ["--model", model]
        return cmd + ["--progress", "lines"], reenact_output(job)
    track = _str(node, "track_file")
    if not model or not track:
        raise DvpNukeError("set the 'model' and 'track' knobs (Track or Import Track first)")
    curves = str(export_curves(node))
    cmd = [dvp, "render", "--model", model, "--track", track, "-o", output, "--frames", frames]
    cmd += ["--curves", curves, "--overwrite", "--progress", "lines"]
    return cmd, output


def _show_result(node: Node, pattern: str, frames: str) -> None:
    read = node.node("result")
    if read is None:
        return
    fs = FrameSet.parse(frames)
    first, last = min(fs), max(fs)
    for name, value in (
        ("file", pattern),
        ("first", first),
        ("last", last),
        ("origfirst", first),
        ("origlast", last),
    ):
        k = read.knob(name)
        if k is not None:
            k.setValue(value)


def _run(node: Node, what: str, command: list[str], on_done: Callable[[Node, runner.RunResult], None]) -> Job:
    job = Job(what=what, command=command)
    if not host.is_gui():

        def log(p: runner.Progress) -> None:
            print(f"DVPortrait: {what} {p.done}/{p.total} frame {p.frame}", flush=True)

        try:
            job.result = runner.run_dvp(command, on_progress=log)
        except OSError as exc:
            raise DvpNukeError(f"could not start {command[0]} ({exc}); check the node's 'dvp' knob") from exc
        on_done(node, job.result)
        if not job.result.ok:
            raise DvpNukeError(job.result.summary(f"{node.name()}: {what}"))
        return job

    def work() -> None:
        task = host.progress_task(f"DVPortrait {what}")
        task.setMessage(f"starting dvp {what}")

        def progress(p: runner.Progress) -> None:
            task.setProgress(int(100 * p.done / max(1, p.total)))
            task.setMessage(f"{what}: frame {p.frame} ({p.done}/{p.total})")

        try:
            job.result = runner.run_dvp(command, on_progress=progress, should_cancel=task.isCancelled)
        except OSError as exc:
            job.result = runner.RunResult(command=command, returncode=1)
            job.result.errors.append(runner.ErrorLine(f"could not start dvp ({exc})", None))
        # the ProgressTask closes when ``task`` goes out of scope, as this function returns
        host.in_main_thread(_finish, node, job.result, on_done, what)

    job.thread = threading.Thread(target=work, name=f"dvp-{what}", daemon=True)
    job.thread.start()
    _status(node, f"{what} running ...")
    return job


def _finish(
    node: Node, result: runner.RunResult, on_done: Callable[[Node, runner.RunResult], None], what: str
) -> None:
    on_done(node, result)
    if not result.ok:
        _tell(result.summary(f"{node.name()}: {what}"))


def render(node: Node) -> Job:
    """Render: export the curves, run ``dvp render`` (or ``reenact``) on the frame range, show the EXRs."""
    command, pattern = render_command(node)
    frames = _frames(node)

    def done(n: Node, result: runner.RunResult) -> None:
        _show_result(n, pattern, frames)
        _status(n, result.summary("render"))

    return _run(node, "render", command, done)


def track(node: Node) -> Job:
    """Track: run ``dvp track`` on the plate's file, then import the new track."""
    dvp = _dvp(node)
    plate = _plate_file(node)
    out = _str(node, "track_file") or str(Path(plate).parent / f"{node.name()}_track.npz")
    _set(node, "track_file", out)
    cmd = [dvp, "track", plate, "-o", out, "--overwrite", "--progress", "lines"]
    if _str(node, "frame_range"):
        cmd[3:3] = ["--frames", _frames(node)]

    def done(n: Node, result: runner.RunResult) -> None:
        _status(n, result.summary("track"))
        if result.ok:
            import_track(n)

    return _run(node, "track", cmd, done)


def preview_pattern(node: Node) -> str:
    """Where Preview Frame writes: ``<output folder>/preview/<node>_preview.####.exr``."""
    output = _str(node, "output")
    if not output:
        raise DvpNukeError("set the 'output' knob: the preview is written beside the render")
    return str(Path(output).parent / "preview" / f"{node.name()}_preview.####.exr")


def preview(node: Node, frame: int | None = None) -> Job:
    """Preview Frame: export the curves and render only the current frame (``dvp render --frames F``)."""
    f = host.current_frame() if frame is None else int(frame)
    command, _ = render_command(node)
    pattern = preview_pattern(node)
    command[command.index("-o") + 1] = pattern
    command[command.index("--frames") + 1] = str(f)

    def done(n: Node, result: runner.RunResult) -> None:
        if result.ok:
            _show_result(n, pattern, str(f))
            _set(n, "view", "result")
        _status(n, result.summary(f"preview of frame {f}"))

    return _run(node, "preview", command, done)


def overlay(node: Node) -> Job:
    """Overlay: ``dvp overlay TRACK PLATE`` over the frame range; the inner ``overlay_read`` shows it."""
    dvp = _dvp(node)
    frames = _frames(node)
    track_file = _str(node, "track_file")
    if not track_file:
        raise DvpNukeError("set the 'track' knob (Track or Import Track first)")
    plate = _plate_file(node)
    base = _str(node, "output")
    folder = Path(base).parent / "overlay" if base else Path(track_file).parent / f"{node.name()}_overlay"
    cmd = [dvp, "overlay", track_file, plate, "-o", str(folder), "--frames", frames, "--progress", "lines"]

    def done(n: Node, result: runner.RunResult) -> None:
        if result.ok:
            read = n.node("overlay_read")
            if read is not None:
                fs = FrameSet.parse(frames)
                for name, value in (
                    ("file", str(folder / "overlay.####.png")),
                    ("first", min(fs)),
                    ("last", max(fs)),
                ):
                    k = read.knob(name)
                    if k is not None:
                        k.setValue(value)
            _set(n, "view", "overlay")
        _status(n, result.summary("overlay"))

    return _run(node, "overlay", cmd, done)


ACTIONS: dict[str, Callable[[Node], object]] = {
    "track": track,
    "import_track": import_track,
    "export_curves": export_curves,
    "render": render,
    "preview": preview,
    "overlay": overlay,
}


def on_button(action: str) -> None:
    """Entry point of the node's buttons: run ``action`` on ``nuke.thisNode()``; errors become messages."""
    node = host.this_node()
    try:
        ACTIONS[action](node)
    except DvpNukeError as exc:
        _status(node, f"{action}: error")
        _tell(str(exc))
