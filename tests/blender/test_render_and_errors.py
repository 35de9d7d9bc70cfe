"""The render operator against a fake ``dvp``, the runner, and the bad-input messages."""

from __future__ import annotations

import json
import stat
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

FAKE_DVP = """\
#!{python}
# A stand-in for `dvp render` / `dvp reenact` with their real options: writes one file per frame,
# prints `dvp: progress` lines, optionally fails at a frame; logs its argv to $FAKE_DVP_ARGV.
import argparse, json, os, sys, time
p = argparse.ArgumentParser(prog="dvp")
sub = p.add_subparsers(dest="cmd", required=True)
r = sub.add_parser("render")
r.add_argument("--model", required=True)
r.add_argument("--track", required=True)
r.add_argument("--curves", action="append", default=[])
r.add_argument("-o", "--output", required=True)
g = r.add_mutually_exclusive_group()
g.add_argument("--overwrite", action="store_true")
g.add_argument("--resume", action="store_true")
e = sub.add_parser("reenact")
e.add_argument("--source", required=True)
e.add_argument("--target", required=True)
e.add_argument("--mode", default="full", choices=("full", "expression", "gaze", "pose", "dubbing"))
e.add_argument("-o", "--output", required=True)
e.add_argument("--model")
e.add_argument("--curves", action="append", default=[])
for q in (r, e):
    q.add_argument("--frames", required=True)
    q.add_argument("--matte", choices=("layer", "alpha"), default="layer")
    q.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto")
s = sub.add_parser("serve")
s.add_argument("--device", default="auto")
o = sub.add_parser("overlay")
o.add_argument("track")
o.add_argument("source")
o.add_argument("-o", "--output", required=True)
o.add_argument("--frames", required=True)
o.add_argument("--progress", default="auto")
a = p.parse_args()
if a.cmd == "serve":  # one JSON reply per request line, like dvp serve
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("quit"):
            break
        frame = int(req["frame"])
        w = req["output"].count("#")
        path = req["output"].replace("#" * w, str(frame).zfill(w))
        assert os.path.isfile(req["track"]) and req.get("matte") == "alpha", req
        with open(path, "wb") as fh:
            fh.write(b"fake exr")
        print(json.dumps({{"id": req.get("id"), "ok": True, "path": path, "frame": frame, "pid": os.getpid()}}), flush=True)
    sys.exit(0)
if a.cmd == "overlay":
    assert os.path.isfile(a.track) and os.path.isfile(a.source)
    os.makedirs(a.output, exist_ok=True)
    lo, hi = (int(x) for x in a.frames.split("-"))
    for f in range(lo, hi + 1):
        with open(os.path.join(a.output, "overlay.%04d.png" % f), "wb") as fh:
            fh.write(b"fake png")
    sys.exit(0)
if os.environ.get("FAKE_DVP_ARGV"):
    with open(os.environ["FAKE_DVP_ARGV"], "w") as fh:
        json.dump(sys.argv[1:], fh)
for f in ([a.track] if a.cmd == "render" else []) + a.curves:
    assert os.path.isfile(f), f
out = a.output if a.cmd == "render" else os.path.join(a.output, "frames", "frame.####.exr")
os.makedirs(os.path.dirname(out), exist_ok=True)
first, last = (int(x) for x in a.frames.split("-"))
fail_at = int(os.environ.get("FAKE_DVP_FAIL_AT", "0"))
delay = float(os.environ.get("FAKE_DVP_DELAY", "0"))
width = out.count("#")
total = last - first + 1
for i, f in enumerate(range(first, last + 1)):
    path = out.replace("#" * width, str(f).zfill(width))
    if os.path.exists(path) and a.cmd == "render" and not (a.overwrite or a.resume):
        print(f"dvp: error: {{path}}: frame {{f}}: exists (use --overwrite or --resume)", file=sys.stderr)
        sys.exit(1)
    if f == fail_at:
        print(f"dvp: error: {{path}}: frame {{f}}: generator produced NaN", file=sys.stderr, flush=True)
        sys.exit(1)
    with open(path, "wb") as fh:
        fh.write(b"fake exr")
    print(f"dvp: progress {{i + 1}}/{{total}} frame {{f}}", file=sys.stderr, flush=True)
    time.sleep(delay)
"""


@pytest.fixture
def fake_dvp(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "dvp"
    path.parent.mkdir()
    path.write_text(FAKE_DVP.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _scene_for_render(bpy: Any, tmp_path: Path, make_track: Any, fake: Path, frames: range) -> Path:
    track = make_track(frames)
    tpath = tmp_path / "track.npz"
    track.save(tpath)
    assert bpy.ops.dvp.import_track(filepath=str(tpath)) == {"FINISHED"}
    settings = bpy.context.scene.dvp
    settings.dvp_executable = str(fake)
    (tmp_path / "model").mkdir()
    settings.model = str(tmp_path / "model")
    settings.output = str(tmp_path / "out" / "frame.####.exr")
    return tmp_path / "out"


def test_render_failing_at_frame_37_reports_it_and_keeps_frames(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bpy

    out = _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(1, 51))
    monkeypatch.setenv("FAKE_DVP_FAIL_AT", "37")
    with pytest.raises(RuntimeError, match=r"at frame 37 \(exit 1\).*36 frame\(s\) on disk"):
        bpy.ops.dvp.render()
    written = sorted(p.name for p in out.glob("frame.*.exr"))
    assert written == [f"frame.{f:04d}.exr" for f in range(1, 37)]
    se = bpy.context.scene.sequence_editor
    assert se is None or len(se.strips) == 0  # nothing loaded on failure


def test_render_runner_reports_progress_and_failed_frame(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job the modal operator drives, polled step by step like the modal timer does."""
    import bpy

    from blender_addon import operators, runner

    out = _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(1, 51))
    monkeypatch.setenv("FAKE_DVP_FAIL_AT", "37")
    job = operators.RenderJob.prepare(bpy.context)
    assert job.total == 50 and job.command[1] == "render" and "--overwrite" in job.command
    seen: list[runner.Progress] = []
    result = runner.run_dvp(job.command, on_progress=seen.append)
    assert [p.frame for p in seen] == list(range(1, 37)) and seen[-1].total == 50
    assert result.returncode == 1 and result.failed_frame == 37
    level, message = job.finish(bpy.context, result)
    assert level == "ERROR" and "frame 37" in message and "kept" in message
    assert len(list(out.glob("frame.*.exr"))) == 36


def test_render_success_loads_sequence_into_sequencer(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path
) -> None:
    import bpy

    from dvp_engine.core import FaceTrack

    out = _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(1001, 1008))
    assert bpy.ops.dvp.render() == {"FINISHED"}
    strips = list(bpy.context.scene.sequence_editor.strips)
    assert len(strips) == 1 and strips[0].type == "IMAGE"
    assert [e.filename for e in strips[0].elements] == [f"frame.{f:04d}.exr" for f in range(1001, 1008)]
    assert strips[0].frame_start == 1001
    # the track handed to dvp is the evaluated edit of the scene
    edited = FaceTrack.load(out / "dvp_edited_track.npz")
    np.testing.assert_array_equal(edited.frames, np.arange(1001, 1008))


def test_reenact_mode_exports_selected_curves_and_loads_job_frames(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bpy

    from dvp_engine.core import CurveSet

    _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(11, 16))
    argv_log = tmp_path / "argv.json"
    monkeypatch.setenv("FAKE_DVP_ARGV", str(argv_log))
    s = bpy.context.scene.dvp
    s.mode = "reenact"
    s.source = str(tmp_path / "source.mp4")
    s.target = str(tmp_path / "target.mp4")
    s.reenact_mode = "expression"
    s.job = str(tmp_path / "job")
    s.curve_groups = {"gaze", "controls"}
    s.load_result = "IMAGE"
    assert bpy.ops.dvp.render() == {"FINISHED"}
    argv = json.loads(argv_log.read_text())
    assert argv[:9] == [
        "reenact",
        "--source",
        s.source,
        "--target",
        s.target,
        "--mode",
        "expression",
        "-o",
        s.job,
    ]
    assert argv[argv.index("--frames") + 1] == "11-15" and argv[argv.index("--model") + 1] == s.model
    curves = CurveSet.load(argv[argv.index("--curves") + 1])
    assert sorted(curves.curves) == sorted(
        ["face.jaw_open", "face.smile"] + [f"gaze.{e}.{a}" for e in ("left", "right") for a in "xy"]
    )
    assert sorted(p.name for p in (tmp_path / "job" / "frames").glob("*.exr")) == [
        f"frame.{f:04d}.exr" for f in range(11, 16)
    ]
    img = bpy.data.images["DVP render"]
    assert img.source == "SEQUENCE" and img.filepath.endswith("frame.0011.exr")


def test_render_existing_frames_policy(addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path) -> None:
    import bpy

    out = _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(1, 4))
    bpy.context.scene.dvp.load_result = "NONE"
    assert bpy.ops.dvp.render() == {"FINISHED"}
    bpy.context.scene.dvp.existing = "fail"
    with pytest.raises(RuntimeError, match=r"frame 1\b.*exists"):
        bpy.ops.dvp.render()
    bpy.context.scene.dvp.existing = "resume"
    assert bpy.ops.dvp.render() == {"FINISHED"}
    assert len(list(out.glob("frame.*.exr"))) == 3


def test_render_cancel_stops_dvp_and_keeps_frames(
    tmp_path: Path, fake_dvp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from blender_addon import runner

    monkeypatch.setenv("FAKE_DVP_DELAY", "0.2")
    (tmp_path / "o").mkdir()
    track = tmp_path / "t.npz"
    track.write_bytes(b"")
    cmd = runner.render_command(str(fake_dvp), "m", str(track), str(tmp_path / "o" / "f.##.exr"), "1-50")
    seen: list[runner.Progress] = []
    result = runner.run_dvp(cmd, on_progress=seen.append, should_cancel=lambda: len(seen) >= 2)
    assert result.cancelled and not result.ok and "cancelled" in result.message()
    n = len(list((tmp_path / "o").glob("f.*.exr")))
    assert 2 <= n < 50


def test_missing_dvp_says_where_it_looked(
    addon: Any, tmp_path: Path, make_track: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bpy

    from blender_addon import runner

    _scene_for_render(bpy, tmp_path, make_track, tmp_path / "nowhere" / "dvp", range(1, 4))
    monkeypatch.delenv(runner.ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RuntimeError, match=r"dvp executable not found.*DVP_EXECUTABLE"):
        bpy.ops.dvp.render()


def test_find_dvp_order(tmp_path: Path, fake_dvp: Path) -> None:
    from blender_addon import runner

    other = tmp_path / "other"
    other.mkdir()
    on_path = other / "dvp"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    env = {"PATH": str(other), runner.ENV_VAR: str(fake_dvp)}
    assert runner.find_dvp("", env) == str(fake_dvp)
    assert runner.find_dvp(str(on_path), env) == str(on_path)
    assert runner.find_dvp("", {"PATH": str(other)}) == str(on_path)
    with pytest.raises(runner.DvpNotFound, match="not an executable file"):
        runner.find_dvp(str(tmp_path / "missing"), {"PATH": ""})


def test_parse_line() -> None:
    from blender_addon.runner import ErrorLine, Progress, parse_line

    assert parse_line("dvp: progress 3/10 frame 1003\n") == Progress(3, 10, 1003)
    assert parse_line("dvp: progress 3/10") == Progress(3, 10, None)
    assert parse_line("dvp: error: /o/f.0037.exr: frame 37: boom") == ErrorLine(
        "/o/f.0037.exr: frame 37: boom", 37
    )
    assert parse_line("dvp: error: no model") == ErrorLine("no model", None)
    assert parse_line("dvp: loading model") is None


def test_newer_schema_track_is_refused_clearly(addon: Any, tmp_path: Path, make_track: Any) -> None:
    import bpy

    track = make_track([1, 2, 3])
    arrays = track.to_arrays()
    header = json.loads(arrays["header"].tobytes())
    header["schema"] = "FaceTrack.7"
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    path = tmp_path / "future.npz"
    np.savez(path, **arrays)
    with pytest.raises(RuntimeError, match=r"future\.npz.*FaceTrack\.7.*newer dvp"):
        bpy.ops.dvp.import_track(filepath=str(path))
    assert "DVP Head" not in bpy.data.objects


def test_corrupt_track_is_refused(addon: Any, tmp_path: Path) -> None:
    import bpy

    path = tmp_path / "broken.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.txt", "not a track")
    with pytest.raises(RuntimeError, match=r"broken\.npz"):
        bpy.ops.dvp.import_track(filepath=str(path))


def test_export_without_head_says_what_to_select(addon: Any, tmp_path: Path) -> None:
    import bpy

    with pytest.raises(RuntimeError, match=r"no DVP head Empty.*Import Track.*select"):
        bpy.ops.dvp.export_curves(filepath=str(tmp_path / "c.json"))
    assert not (tmp_path / "c.json").exists()


def test_export_with_two_heads_asks_to_select_one(addon: Any, tmp_path: Path, make_track: Any) -> None:
    import bpy

    track = make_track([1, 2, 3])
    path = tmp_path / "t.npz"
    track.save(path)
    bpy.ops.dvp.import_track(filepath=str(path))
    bpy.ops.dvp.import_track(filepath=str(path))
    bpy.context.view_layer.objects.active = None
    with pytest.raises(RuntimeError, match="several DVP head Empties"):
        bpy.ops.dvp.export_curves(filepath=str(tmp_path / "c.json"))
    bpy.context.view_layer.objects.active = bpy.data.objects["DVP Head.001"]
    assert bpy.ops.dvp.export_curves(filepath=str(tmp_path / "c.json")) == {"FINISHED"}


def test_plate_image_sequence_becomes_camera_background(addon: Any, tmp_path: Path, make_track: Any) -> None:
    import bpy

    plate_dir = tmp_path / "plate"
    plate_dir.mkdir()
    for f in range(1, 4):
        img = bpy.data.images.new(f"p{f}", 8, 8)
        img.filepath_raw = str(plate_dir / f"plate.{f:04d}.png")
        img.file_format = "PNG"
        img.save()
    track = make_track([1, 2, 3])
    path = tmp_path / "t.npz"
    track.save(path)
    assert bpy.ops.dvp.import_track(filepath=str(path), plate=str(plate_dir / "plate.0001.png")) == {
        "FINISHED"
    }
    cam = bpy.data.objects["DVP Camera"].data
    assert cam.show_background_images and len(cam.background_images) == 1
    bg = cam.background_images[0]
    assert bg.source == "IMAGE" and bg.image.source == "SEQUENCE"
    assert bg.image_user.frame_duration == 3 and bg.image_user.frame_start == 1
    with pytest.raises(RuntimeError, match="plate not found"):
        bpy.ops.dvp.import_track(filepath=str(path), plate=str(plate_dir / "nope.png"))


def test_fake_dvp_script_is_what_we_think(fake_dvp: Path) -> None:
    assert fake_dvp.read_text().startswith("#!" + sys.executable)
    assert "dvp: progress" in textwrap.dedent(FAKE_DVP)


class _FakeWM:
    def __init__(self) -> None:
        self.updates: list[int] = []
        self.ended = False

    def progress_update(self, value: int) -> None:
        self.updates.append(value)

    def progress_end(self) -> None:
        self.ended = True

    def event_timer_remove(self, timer: object) -> None:
        pass


class _FakeWorkspace:
    def __init__(self) -> None:
        self.texts: list[str | None] = []

    def status_text_set(self, text: str | None) -> None:
        self.texts.append(text)


def _drive_modal(bpy: Any, job: Any, events: list[str], max_ticks: int = 400) -> tuple[Any, Any, set[str]]:
    """Drive DVP_OT_render.modal with fake window-manager/workspace objects (no window headless)."""
    import time
    from types import SimpleNamespace

    from blender_addon import operators, runner

    reports: list[tuple[set[str], str]] = []
    op = SimpleNamespace(_job=job, _proc=runner.DvpProcess(job.command), _timer=None)
    op.report = lambda level, msg: reports.append((level, msg))
    op._end = lambda ctx: operators.DVP_OT_render._end(op, ctx)
    ctx = SimpleNamespace(window_manager=_FakeWM(), workspace=_FakeWorkspace(), scene=bpy.context.scene)
    ret: set[str] = {"RUNNING_MODAL"}
    for tick in range(max_ticks):
        kind = events[tick] if tick < len(events) else "TIMER"
        ret = operators.DVP_OT_render.modal(op, ctx, SimpleNamespace(type=kind))
        if ret != {"RUNNING_MODAL"} and ret != {"PASS_THROUGH"}:
            break
        time.sleep(0.02)
    return SimpleNamespace(reports=reports, op=op), ctx, ret


def test_modal_render_progress_then_failure_at_frame_37(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bpy

    from blender_addon import operators

    out = _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(1, 51))
    monkeypatch.setenv("FAKE_DVP_FAIL_AT", "37")
    job = operators.RenderJob.prepare(bpy.context)
    res, ctx, ret = _drive_modal(bpy, job, ["MOUSEMOVE"])
    assert ret == {"CANCELLED"}
    assert ctx.window_manager.updates[-1] == 720  # 36 of 50 frames, in thousandths
    assert any(t and "36/50 frame 36" in t for t in ctx.workspace.texts)
    assert ctx.workspace.texts[-1] is None and ctx.window_manager.ended
    (level, msg) = res.reports[-1]
    assert level == {"ERROR"} and "frame 37" in msg
    assert len(list(out.glob("frame.*.exr"))) == 36


def test_modal_render_escape_cancels_and_keeps_frames(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import bpy

    from blender_addon import operators

    out = _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(1, 51))
    monkeypatch.setenv("FAKE_DVP_DELAY", "0.05")
    job = operators.RenderJob.prepare(bpy.context)
    start = time.monotonic()
    res, ctx, ret = _drive_modal(bpy, job, ["TIMER"] * 10 + ["ESC"])
    assert ret == {"CANCELLED"} and time.monotonic() - start < 10
    assert res.op._proc.result.cancelled
    (level, msg) = res.reports[-1]
    assert level == {"WARNING"} and "cancelled" in msg
    n = len(list(out.glob("frame.*.exr")))
    assert 0 < n < 50
    se = bpy.context.scene.sequence_editor
    assert se is None or len(se.strips) == 0


def test_modal_render_success_loads_strip(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path
) -> None:
    import bpy

    from blender_addon import operators

    _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(5, 9))
    job = operators.RenderJob.prepare(bpy.context)
    res, ctx, ret = _drive_modal(bpy, job, [])
    assert ret == {"FINISHED"} and res.reports[-1][0] == {"INFO"}
    assert ctx.window_manager.updates[-1] == 1000
    assert len(bpy.context.scene.sequence_editor.strips[0].elements) == 4


def test_rendered_crop_lands_on_the_plate_where_the_model_crop_is(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path
) -> None:
    """The model crops a 24 px square at (10, 6) of the 64 x 48 plate: the loaded strip, rendered by the
    Video Sequencer, covers exactly those plate pixels."""
    import bpy

    out = _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(1, 3))
    framing = {"x0": 10, "y0": 6, "side": 24, "size": 64}
    (tmp_path / "model" / "dvp_model.json").write_text(json.dumps({"framing": framing}))
    assert bpy.ops.dvp.render() == {"FINISHED"}
    strip = bpy.context.scene.sequence_editor.strips[0]
    assert (strip.transform.offset_x, strip.transform.offset_y) == (10 + 12 - 32, 24 - (6 + 12))
    # replace the fake frames with real 24 x 24 white EXRs and let Blender render the sequencer
    scene = bpy.context.scene
    img = bpy.data.images.new("crop", 24, 24, float_buffer=True)
    img.pixels.foreach_set(np.ones(24 * 24 * 4, np.float32))
    scene.render.image_settings.file_format = "OPEN_EXR"
    for f in (1, 2):
        img.save_render(str(out / f"frame.{f:04d}.exr"), scene=scene)
    scene.frame_set(1)
    scene.render.use_sequencer = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(tmp_path / "vse.png")
    bpy.ops.render.render(write_still=True)
    result = bpy.data.images.load(str(tmp_path / "vse.png"))
    w, h = result.size
    px = np.array(result.pixels[:]).reshape(h, w, 4)[::-1]  # top row first
    lit = np.argwhere(px[..., 0] > 0.5)
    assert (w, h) == (64, 48)
    assert tuple(lit.min(0)) == (6, 10) and tuple(lit.max(0)) == (29, 33) and len(lit) == 24 * 24


def test_sequence_files_name_frames_as_dvp_does(tmp_path: Path) -> None:
    """The add-on finds the frames dvp wrote: a lone ``#`` is four digits (ImageSequence), ``##`` two."""
    from blender_addon import runner

    for name in ("a.0001.exr", "a.0003.exr", "b.07.exr", "c.0002.exr"):
        (tmp_path / name).write_bytes(b"x")
    assert runner.sequence_files(str(tmp_path / "a.#.exr"), 1, 3) == [
        tmp_path / "a.0001.exr",
        tmp_path / "a.0003.exr",
    ]
    assert runner.sequence_files(str(tmp_path / "a.####.exr"), 1, 3) == [
        tmp_path / "a.0001.exr",
        tmp_path / "a.0003.exr",
    ]
    assert runner.sequence_files(str(tmp_path / "b.##.exr"), 5, 9) == [tmp_path / "b.07.exr"]
    assert runner.sequence_files(str(tmp_path / "c.%04d.exr"), 1, 2) == [tmp_path / "c.0002.exr"]
