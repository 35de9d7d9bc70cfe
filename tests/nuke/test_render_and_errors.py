"""Track / Render through a fake ``dvp`` executable: progress, cancel, failure at frame 37, missing dvp."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

FAKE_DVP = textwrap.dedent(
    """\
    #!{python}
    # Stand-in for `dvp render` / `dvp track` with their real options: one file per frame, `dvp: progress`
    # lines, an error line at $FAKE_DVP_FAIL_AT; argv logged to $FAKE_DVP_ARGV.
    import argparse, json, os, shutil, sys, time
    p = argparse.ArgumentParser(prog="dvp")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("--model", required=True)
    r.add_argument("--track", required=True)
    r.add_argument("--curves", action="append", default=[])
    r.add_argument("-o", "--output", required=True)
    r.add_argument("--overwrite", action="store_true")
    t = sub.add_parser("track")
    t.add_argument("source")
    t.add_argument("-o", "--output", required=True)
    t.add_argument("--overwrite", action="store_true")
    o = sub.add_parser("overlay")
    o.add_argument("track")
    o.add_argument("source")
    o.add_argument("-o", "--output", required=True)
    for q in (r, t, o):
        q.add_argument("--frames")
        q.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto")
    a = p.parse_args()
    if os.environ.get("FAKE_DVP_ARGV"):
        with open(os.environ["FAKE_DVP_ARGV"], "w") as fh:
            json.dump(sys.argv[1:], fh)
    assert a.progress == "lines", "hosts must ask for machine-readable progress"
    if a.cmd == "track":
        shutil.copy(os.environ["FAKE_DVP_TRACK_SRC"], a.output)
        print("dvp: progress 1/1 frame 1", file=sys.stderr, flush=True)
        sys.exit(0)
    if a.cmd == "overlay":
        assert os.path.isfile(a.track) and os.path.isfile(a.source), (a.track, a.source)
        os.makedirs(a.output, exist_ok=True)
        for f in range(int(a.frames.split("-")[0]), int(a.frames.split("-")[-1]) + 1):
            with open(os.path.join(a.output, "overlay.%04d.png" % f), "wb") as fh:
                fh.write(b"fake png")
        sys.exit(0)
    for f in [a.track] + a.curves:
        assert os.path.isfile(f), f
    first, last = int(a.frames.split("-")[0]), int(a.frames.split("-")[-1])  # "7" or "1-100"
    fail_at = int(os.environ.get("FAKE_DVP_FAIL_AT", "0"))
    delay = float(os.environ.get("FAKE_DVP_DELAY", "0"))
    width = a.output.count("#")
    os.makedirs(os.path.dirname(a.output), exist_ok=True)
    total = last - first + 1
    for i, f in enumerate(range(first, last + 1)):
        path = a.output.replace("#" * width, str(f).zfill(width))
        if f == fail_at:
            print(f"dvp: error: {{path}}: frame {{f}}: generator produced NaN; frames before it are kept",
                  file=sys.stderr, flush=True)
            sys.exit(1)
        with open(path, "wb") as fh:
            fh.write(b"fake exr")
        print(f"dvp: progress {{i + 1}}/{{total}} frame {{f}}", file=sys.stderr, flush=True)
        time.sleep(delay)
    """
)


@pytest.fixture
def fake_dvp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bin" / "dvp"
    path.parent.mkdir()
    path.write_text(FAKE_DVP.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAKE_DVP_ARGV", str(tmp_path / "argv.json"))
    monkeypatch.delenv("DVP_EXECUTABLE", raising=False)
    monkeypatch.delenv("FAKE_DVP_FAIL_AT", raising=False)
    return path


def _render_node(tmp_path: Path, make_track: Any, dvp: Path | None, frames: range = range(1, 101)) -> Any:
    from dvp_nuke import mapping
    from dvp_nuke import node as dnode

    track = make_track(frames, controls=mapping.DEFAULT_CONTROLS)
    tpath = tmp_path / "shot.npz"
    track.save(tpath)
    (tmp_path / "model").mkdir(exist_ok=True)
    n = dnode.create_node(
        "DVPortrait1", model=str(tmp_path / "model"), output=str(tmp_path / "out" / "sh.####.exr")
    )
    n.knob("track_file").setValue(str(tpath))
    dnode.import_track(n)
    n.knob("gaze_left_x").setValueAt(20.0, frames[3], 0)  # an edit, so the curve file has something in it
    if dvp is not None:
        n.knob("dvp_executable").setValue(str(dvp))
    return n


def _written(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "out").glob("sh.*.exr"))


def test_terminal_render_failure_at_frame_37(
    nuke_t: Any, tmp_path: Path, make_track: Any, fake_dvp: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from dvp_nuke import node as dnode

    monkeypatch.setenv("FAKE_DVP_FAIL_AT", "37")
    n = _render_node(tmp_path, make_track, fake_dvp)
    with pytest.raises(dnode.DvpNukeError) as err:
        dnode.render(n)  # terminal mode: synchronous, no UI (the fake raises on any UI call)
    text = str(err.value)
    assert "frame 37" in text and "36 of 100" in text and "kept" in text
    assert _written(tmp_path) == [f"sh.{f:04d}.exr" for f in range(1, 37)]
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert (
        argv[:2] == ["render", "--model"]
        and "--curves" in argv
        and argv[argv.index("--frames") + 1] == "1-100"
    )
    curves = json.loads(Path(argv[argv.index("--curves") + 1]).read_text())
    assert "gaze.left.x" in curves["channels"]
    assert n.node("result").knob("file").value() == str(tmp_path / "out" / "sh.####.exr")
    assert "DVPortrait: render 36/100 frame 36" in capsys.readouterr().out
    assert nuke_t._state.tasks == [] and nuke_t._state.messages == []


def test_button_in_terminal_mode_prints_instead_of_dialog(
    nuke_t: Any, tmp_path: Path, make_track: Any, fake_dvp: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from dvp_nuke import node as dnode

    monkeypatch.setenv("FAKE_DVP_FAIL_AT", "37")
    n = _render_node(tmp_path, make_track, fake_dvp)
    nuke_t._state.this_node = n
    dnode.on_button("render")
    assert "frame 37" in capsys.readouterr().err


def test_gui_render_runs_in_a_worker_with_progress(
    nuke: Any, tmp_path: Path, make_track: Any, fake_dvp: Path
) -> None:
    from dvp_nuke import node as dnode

    n = _render_node(tmp_path, make_track, fake_dvp, frames=range(1001, 1021))
    job = dnode.render(n)
    assert job.thread is not None
    result = job.wait(60)
    assert result is not None and result.ok
    assert nuke._pump() == 1  # the finish callback ran on the main thread
    (task,) = nuke._state.tasks
    assert task.progress[-1] == 100 and len(task.progress) == 20
    assert task.messages[-1] == "render: frame 1020 (20/20)"
    assert nuke._state.messages == []
    read = n.node("result")
    assert read.knob("first").value() == 1001 and read.knob("last").value() == 1020
    assert len(_written(tmp_path)) == 20
    assert "finished" in n.knob("status").value()


def test_gui_render_failure_message_names_the_frame(
    nuke: Any, tmp_path: Path, make_track: Any, fake_dvp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dvp_nuke import node as dnode

    monkeypatch.setenv("FAKE_DVP_FAIL_AT", "37")
    n = _render_node(tmp_path, make_track, fake_dvp)
    dnode.render(n).wait(60)
    nuke._pump()
    (msg,) = nuke._state.messages
    assert "frame 37" in msg and "generator produced NaN" in msg
    assert len(_written(tmp_path)) == 36


def test_gui_render_cancel_keeps_frames(
    nuke: Any, tmp_path: Path, make_track: Any, fake_dvp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dvp_nuke import node as dnode

    monkeypatch.setenv("FAKE_DVP_DELAY", "0.05")
    nuke._state.cancel_after = 5  # the user presses cancel after 5 progress updates
    n = _render_node(tmp_path, make_track, fake_dvp)
    result = dnode.render(n).wait(60)
    assert result is not None and result.cancelled and not result.ok
    nuke._pump()
    assert "cancelled" in nuke._state.messages[-1]
    written = len(_written(tmp_path))
    assert 5 <= written < 100


def test_missing_dvp_says_how_to_set_it(
    nuke: Any, tmp_path: Path, make_track: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dvp_nuke import node as dnode

    monkeypatch.delenv("DVP_EXECUTABLE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    n = _render_node(tmp_path, make_track, None)
    nuke._state.this_node = n
    dnode.on_button("render")
    (msg,) = nuke._state.messages
    assert "dvp executable not found" in msg
    assert "'dvp' knob" in msg and "DVP_EXECUTABLE" in msg and "PATH" in msg
    monkeypatch.setenv("DVP_EXECUTABLE", str(tmp_path / "nope" / "dvp"))
    dnode.on_button("render")
    assert "not an executable file" in nuke._state.messages[-1]


def test_dvp_executable_from_environment(
    nuke: Any, tmp_path: Path, make_track: Any, fake_dvp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dvp_nuke import runner

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("DVP_EXECUTABLE", str(fake_dvp))
    assert runner.find_dvp("") == str(fake_dvp)
    monkeypatch.delenv("DVP_EXECUTABLE")
    monkeypatch.setenv("PATH", str(fake_dvp.parent))
    assert runner.find_dvp("") == shutil.which("dvp", path=str(fake_dvp.parent))


def test_track_button_runs_dvp_track_then_imports(
    nuke: Any, tmp_path: Path, make_track: Any, fake_dvp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dvp_nuke import node as dnode

    src = tmp_path / "tracked.npz"
    make_track(range(1, 9)).save(src)
    monkeypatch.setenv("FAKE_DVP_TRACK_SRC", str(src))
    plate = nuke.nodes.Read(name="plate1", file=str(tmp_path / "plate.####.exr"))
    n = dnode.create_node()
    n.setInput(0, plate)
    n.knob("dvp_executable").setValue(str(fake_dvp))
    nuke._state.this_node = n
    dnode.on_button("track")
    n_jobs = len(nuke._state.tasks)
    assert n_jobs == 1
    import time

    deadline = time.time() + 60
    while not nuke._state.queue and time.time() < deadline:
        time.sleep(0.05)
    nuke._pump()
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[:2] == ["track", str(tmp_path / "plate.####.exr")]
    assert n.knob("track_file").value() == argv[argv.index("-o") + 1]
    assert [k.x for k in n.knob("head_rx").animation(0).keys()] == [float(f) for f in range(1, 9)]


def test_parse_line() -> None:
    from dvp_nuke.runner import ErrorLine, Progress, parse_line

    assert parse_line("dvp: progress 3/100 frame 1003\n") == Progress(3, 100, 1003)
    assert parse_line("dvp: progress 3/100") == Progress(3, 100, None)
    assert parse_line("dvp: progress 3/100 frame 7 stage landmarks") == Progress(3, 100, 7)
    assert parse_line("dvp: progress 3/100x") is None
    assert parse_line("dvp: error: out/f.0037.exr: frame 37: boom") == ErrorLine(
        "out/f.0037.exr: frame 37: boom", 37
    )
    assert parse_line("dvp: error: model/: not a dvp model folder") == ErrorLine(
        "model/: not a dvp model folder", None
    )
    assert parse_line("dvp: wrote 5 frames") is None
    assert os.sep  # keep os imported for the fixtures


def test_preview_renders_only_the_current_frame(
    nuke_t: Any, tmp_path: Path, make_track: Any, fake_dvp: Path
) -> None:
    import json

    from dvp_nuke import node as dnode

    n = _render_node(tmp_path, make_track, fake_dvp, range(1, 11))
    n.knob("frame_range").setValue("1-10")
    nuke_t._state.frame = 7.0
    dnode.preview(n)
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[argv.index("--frames") + 1] == "7" and "--curves" in argv
    out = tmp_path / "out" / "preview" / "DVPortrait1_preview.0007.exr"
    assert out.is_file() and not _written(tmp_path)  # the render's own frames are untouched
    read = n.node("result")
    assert read.knob("file").value().endswith("DVPortrait1_preview.####.exr")
    assert (read.knob("first").value(), read.knob("last").value()) == (7, 7)


def test_overlay_button_shows_the_tracker_overlay(
    nuke_t: Any, tmp_path: Path, make_track: Any, fake_dvp: Path
) -> None:
    from dvp_nuke import node as dnode

    n = _render_node(tmp_path, make_track, fake_dvp, range(1, 6))
    n.knob("frame_range").setValue("1-3")
    plate = tmp_path / "plate.mp4"
    plate.write_bytes(b"x")
    read = nuke_t.nodes.Read(name="plate_read", file=str(plate))
    n.setInput(0, read)
    dnode.overlay(n)
    assert sorted(p.name for p in (tmp_path / "out" / "overlay").iterdir()) == [
        "overlay.0001.png",
        "overlay.0002.png",
        "overlay.0003.png",
    ]
    n.begin()
    try:
        ov = n.node("overlay_read")
        switch = n.node("view_switch")
    finally:
        n.end()
    assert ov.knob("file").value() == str(tmp_path / "out" / "overlay" / "overlay.####.png")
    assert n.knob("view").value() == "overlay" and switch.input(2) is ov
