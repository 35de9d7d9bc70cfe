"""Rendered frames back in Blender (matte, colour, timing, compositor), render folders, frame rates, plates."""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from . import test_render_and_errors as _rt

_scene_for_render = _rt._scene_for_render

REPO = Path(__file__).resolve().parents[2]

# ACEScg (AP1, D60) -> linear Rec.709 (D65, Bradford), what Blender's OCIO config does for "ACEScg".
AP1_TO_REC709 = np.array(
    [[1.70505, -0.62179, -0.08326], [-0.13026, 1.14080, -0.01055], [-0.02400, -0.12897, 1.15297]]
)


@pytest.fixture
def fake_dvp(tmp_path: Path) -> Path:
    """The fake ``dvp`` of test_render_and_errors (same options, progress and error lines)."""
    return _rt.fake_dvp.__wrapped__(tmp_path)  # type: ignore[attr-defined]


def _engine_python() -> str:
    """The engine's Python (OpenImageIO, numpy 2), to write EXRs exactly as ``dvp render`` does."""
    for cand in (os.environ.get("DVP_ENGINE_PYTHON", ""), str(REPO / ".venv" / "bin" / "python")):
        if cand and Path(cand).is_file():
            return cand
    pytest.skip("the engine's venv (.venv or $DVP_ENGINE_PYTHON) is needed to write EXRs like dvp render")


def _write_engine_exrs(
    folder: Path, frames: list[int], matte_as: str, size: tuple[int, int] = (6, 4)
) -> None:
    """Frames written by dvp_engine.io.output.write_frame: linear colour (0.8, 0.4, 0.2) sRGB, matte 1 on
    the right half, 0 on the left."""
    w, h = size
    code = f"""
import numpy as np
from dvp_engine.io.output import write_frame
rgb = np.zeros(({h}, {w}, 3), np.float32); rgb[..., 0] = 0.8; rgb[..., 1] = 0.4; rgb[..., 2] = 0.2
m = np.zeros(({h}, {w}), np.float32); m[:, {w // 2}:] = 1.0
for f in {frames!r}:
    write_frame(r"{folder}/frame.%04d.exr" % f, rgb, matte=m, dtype="float", matte_as={matte_as!r})
"""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([_engine_python(), "-c", code], check=True, env=env, cwd=REPO)


def _engine_acescg() -> np.ndarray:
    code = (
        "import numpy as np; from dvp_engine.io.colour import convert, srgb_space; "
        "print(*convert(np.array([[[0.8, 0.4, 0.2]]], np.float32), srgb_space(), 'ACEScg').ravel())"
    )
    out = subprocess.run(
        [_engine_python(), "-c", code],
        check=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
    )
    return np.array([float(x) for x in out.stdout.split()])


def _render_sequencer(bpy: Any, tmp_path: Path, frame: int) -> np.ndarray:
    """The sequencer's output at a frame as linear Rec.709 float RGBA, top row first."""
    scene = bpy.context.scene
    scene.render.use_sequencer = True
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "OPEN_EXR"
    scene.render.image_settings.color_depth = "32"
    scene.render.filepath = str(tmp_path / f"vse_{frame}.exr")
    scene.frame_set(frame)
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(scene.render.filepath, check_existing=False)
    w, h = img.size
    return np.array(img.pixels[:]).reshape(h, w, 4)[::-1]


def _plate_strip(bpy: Any, first: int, length: int) -> None:
    se = bpy.context.scene.sequence_editor or bpy.context.scene.sequence_editor_create()
    bg = se.strips.new_effect(name="plate", type="COLOR", channel=1, frame_start=first, length=length)
    bg.color = (0.0, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------- item 2
def test_render_asks_for_rgba_and_the_strip_has_matte_and_acescg_colours(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path
) -> None:
    """The add-on's command asks dvp for premultiplied RGBA; the engine's frames then composite over the
    plate with their matte, and their ACEScg values are converted to Blender's linear Rec.709."""
    import bpy

    from blender_addon import operators, results

    out = _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(1, 3))
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 6, 4
    job = operators.RenderJob.prepare(bpy.context)
    matte_as = job.command[job.command.index("--matte") + 1]
    out.mkdir(exist_ok=True)
    _write_engine_exrs(out, [1, 2], matte_as)
    _plate_strip(bpy, 1, 2)
    loaded = results.load_frames(bpy.context, job.pattern, 1, 2, how="SEQUENCER")
    assert loaded.strip is not None and loaded.strip.colorspace_settings.name == "ACEScg"
    px = _render_sequencer(bpy, tmp_path, 1)
    want = AP1_TO_REC709 @ _engine_acescg()
    np.testing.assert_allclose(px[:, 3:, :3].reshape(-1, 3), np.tile(want, (12, 1)), atol=2e-3)  # the face
    np.testing.assert_allclose(px[:, :3, :3].reshape(-1, 3), np.tile([0, 0, 1.0], (12, 1)), atol=2e-3)


def test_layer_matte_exr_is_what_blender_cannot_show(factory: Any, tmp_path: Path) -> None:
    """Why the add-on asks for RGBA: Blender reads R,G,B,matte.A as a multilayer image without pixels."""
    bpy = factory
    _write_engine_exrs(tmp_path, [1], "layer")
    img = bpy.data.images.load(str(tmp_path / "frame.0001.exr"))
    with pytest.raises(RuntimeError, match="does not have any image data"):
        img.update()
    assert img.type == "MULTILAYER"


# ---------------------------------------------------------------------------------------------- item 3
def test_frame_step_and_missing_frames_keep_every_frame_at_its_scene_frame(tmp_path: Path) -> None:
    from blender_addon import runner

    for f in (98, 102):  # 100 failed / is missing
        (tmp_path / f"frame.{f:04d}.exr").write_bytes(b"x")
    names, missing = runner.frame_elements(str(tmp_path / "frame.####.exr"), 98, 103, 2)
    assert names == [f"frame.{f:04d}.exr" for f in (98, 98, 100, 100, 102, 102)]
    assert missing == [100]


def test_stepped_render_strip_shows_each_frame_at_its_own_frame(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path
) -> None:
    import bpy

    from blender_addon import results

    _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(98, 104))
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    for f in (98, 100, 102):
        (out / f"frame.{f:04d}.exr").write_bytes(b"x")
    loaded = results.load_frames(bpy.context, str(out / "frame.####.exr"), 98, 102, 2, how="SEQUENCER")
    strip = loaded.strip
    assert strip.frame_final_start == 98 and strip.frame_final_end == 103  # 98..102 inclusive
    shown = {98 + i: e.filename for i, e in enumerate(strip.elements)}
    assert (
        shown[100] == "frame.0100.exr" and shown[102] == "frame.0102.exr" and shown[101] == "frame.0100.exr"
    )


# ---------------------------------------------------------------------------------------------- item 4
def test_image_mode_makes_a_compositor_node_showing_file_f_at_frame_f(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path
) -> None:
    import bpy

    from blender_addon import results

    _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(181, 186))
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    _write_engine_exrs(out, list(range(181, 186)), "alpha")
    loaded = results.load_frames(bpy.context, str(out / "frame.####.exr"), 181, 185, how="IMAGE")
    img, node = loaded.image, loaded.node
    assert img is not None and img.source == "SEQUENCE" and img.type != "MULTILAYER"
    tree = bpy.context.scene.compositing_node_group
    assert tree is not None and tree.nodes[results.NODE_NAME] == node and node.image == img
    assert [results.image_for_frame(node, f) for f in (181, 183, 185)] == [181, 183, 185]
    # the node's output feeds the tree's output
    assert any(link.from_node == node for link in tree.links)


# ---------------------------------------------------------------------------------------------- item 5
def test_unsaved_blend_refuses_a_relative_output(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bpy

    from blender_addon import operators
    from dvp_engine.core import DvpError

    _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(1, 3))
    bpy.context.scene.dvp.output = "//dvp_render/frame.####.exr"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert not bpy.data.filepath
    with pytest.raises(DvpError, match="not saved yet: save the .blend first"):
        operators.RenderJob.prepare(bpy.context)
    with pytest.raises(RuntimeError, match="not saved yet"):
        bpy.ops.dvp.render()
    assert not list(cwd.iterdir())  # nothing was written into the process's folder


def test_read_only_render_folder_is_a_clear_error(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path
) -> None:
    import bpy

    from blender_addon import operators
    from dvp_engine.core import DvpError

    _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(1, 3))
    settings = bpy.context.scene.dvp
    if os.geteuid() == 0:  # root writes into any folder with write bits off; /sys refuses even root
        if not Path("/sys").is_dir():
            pytest.skip("running as root without /sys: no folder refuses writes")
        settings.output = "/sys/dvp_render/frame.####.exr"
        with pytest.raises(DvpError, match="cannot create the output folder /sys/dvp_render"):
            operators.RenderJob.prepare(bpy.context)
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        settings.output = str(ro / "frame.####.exr")
        with pytest.raises(DvpError, match=f"output folder {ro} is read-only"):
            operators.RenderJob.prepare(bpy.context)
        settings.output = str(ro / "sub" / "frame.####.exr")
        with pytest.raises(DvpError, match="cannot create the output folder .*sub.*Permission denied"):
            operators.RenderJob.prepare(bpy.context)
    finally:
        ro.chmod(0o755)


# ---------------------------------------------------------------------------------------------- item 6
@pytest.mark.parametrize(
    ("rate", "fps", "base"),
    [(Fraction(60000, 1001), 60, 1.001), (Fraction(24000, 1001), 24, 1.001), (Fraction(25), 25, 1.0)],
)
def test_track_rate_sets_scene_and_exports_exactly(
    addon: Any, tmp_path: Path, make_track: Any, rate: Fraction, fps: int, base: float
) -> None:
    import bpy

    from dvp_engine.core import FaceTrack

    track = make_track(range(1, 4)).replace(rate=rate)
    path = tmp_path / "t.npz"
    track.save(path)
    assert bpy.ops.dvp.import_track(filepath=str(path)) == {"FINISHED"}
    r = bpy.context.scene.render
    assert r.fps == fps and r.fps_base == pytest.approx(base, rel=1e-7)
    assert bpy.ops.dvp.export_curves(filepath=str(tmp_path / "e.npz")) == {"FINISHED"}
    assert FaceTrack.load(tmp_path / "e.npz").rate == rate


def test_blender_23_98_preset_exports_24000_over_1001(addon: Any, tmp_path: Path, make_track: Any) -> None:
    import bpy

    from dvp_engine.core import FaceTrack

    track = make_track(range(1, 4))
    track.save(tmp_path / "t.npz")
    assert bpy.ops.dvp.import_track(filepath=str(tmp_path / "t.npz")) == {"FINISHED"}
    preset = Path(bpy.utils.preset_paths("framerate")[0]) / "23.98.py"
    exec(compile(preset.read_text(), str(preset), "exec"), {"bpy": bpy})  # what the preset menu runs
    assert bpy.context.scene.render.fps_base != 1.001  # float32: 1.00100005
    assert bpy.ops.dvp.export_curves(filepath=str(tmp_path / "e.npz")) == {"FINISHED"}
    assert FaceTrack.load(tmp_path / "e.npz").rate == Fraction(24000, 1001)


def test_inexpressible_rates_are_named(addon: Any, tmp_path: Path, make_track: Any) -> None:
    import bpy

    from blender_addon import scene_io
    from dvp_engine.core import InputError

    track = make_track(range(1, 4)).replace(rate=Fraction(40000))
    track.save(tmp_path / "fast.npz")
    with pytest.raises(RuntimeError, match="frame rate 40000 fps is outside what Blender can hold"):
        bpy.ops.dvp.import_track(filepath=str(tmp_path / "fast.npz"))
    make_track(range(1, 4)).save(tmp_path / "t.npz")
    assert bpy.ops.dvp.import_track(filepath=str(tmp_path / "t.npz")) == {"FINISHED"}
    bpy.context.scene.render.fps_base = 0.7071
    with pytest.raises(InputError, match="frame rate 25 / 0.7071 .* cannot be expressed exactly"):
        scene_io.export(bpy.context, tmp_path / "e.npz")


# ---------------------------------------------------------------------------------------------- item 7
def test_plate_frames_match_scene_frames_when_the_track_starts_late(
    addon: Any, tmp_path: Path, make_track: Any
) -> None:
    import bpy

    from blender_addon import results

    plate_dir = tmp_path / "plate"
    plate_dir.mkdir()
    for f in range(1, 31):
        img = bpy.data.images.new(f"p{f}", 4, 4)
        img.filepath_raw = str(plate_dir / f"plate.{f:04d}.png")
        img.file_format = "PNG"
        img.save()
    track = make_track(range(21, 26))
    track.save(tmp_path / "t.npz")
    first_file = str(plate_dir / "plate.0001.png")
    assert bpy.ops.dvp.import_track(filepath=str(tmp_path / "t.npz"), plate=first_file) == {"FINISHED"}
    iu = bpy.data.objects["DVP Camera"].data.background_images[0].image_user
    assert [results.image_for_frame(iu, f) for f in (21, 25)] == [21, 25]
    assert iu.frame_duration == 30


def test_movie_plate_starts_at_scene_frame_1(addon: Any, tmp_path: Path, make_track: Any) -> None:
    import bpy

    sample = REPO / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"
    track = make_track(range(181, 201))
    track.save(tmp_path / "t.npz")
    assert bpy.ops.dvp.import_track(filepath=str(tmp_path / "t.npz"), plate=str(sample)) == {"FINISHED"}
    clip = bpy.data.objects["DVP Camera"].data.background_images[0].clip
    assert (clip.frame_start, clip.frame_offset) == (1, 0)  # scene frame 181 shows movie frame 181


# ---------------------------------------------------------------------------------------------- item 9
def test_face_controls_have_soft_ranges_and_a_panel(addon: Any, tmp_path: Path, make_track: Any) -> None:
    import bpy

    from blender_addon import panels

    track = make_track(range(1, 4), shipped_controls=True)
    track.save(tmp_path / "t.npz")
    assert bpy.ops.dvp.import_track(filepath=str(tmp_path / "t.npz")) == {"FINISHED"}
    head = bpy.data.objects["DVP Head"]
    ui = head.id_properties_ui("face.smile").as_dict()
    assert (ui["soft_min"], ui["soft_max"]) == (-3.0, 3.0)
    assert head.id_properties_ui("blink.left").as_dict()["soft_max"] == 1.0
    assert head.id_properties_ui("gaze.left.x").as_dict()["soft_min"] == -40.0
    rows = panels.control_rows(panels.panel_head(bpy.context))
    assert len(rows) == 12 and rows[1] == ('["face.smile"]', "smile")
    assert panels.VIEW3D_PT_dvp_controls.poll(bpy.context)
    assert panels.VIEW3D_PT_dvp_controls.bl_parent_id == panels.VIEW3D_PT_dvp.bl_idname
    assert hasattr(bpy.types, "VIEW3D_PT_dvp_controls")  # registered


# ---------------------------------------------------------------------------------------------- preview
def test_preview_frame_talks_to_one_persistent_dvp_serve(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path
) -> None:
    import bpy

    from blender_addon import preview

    out = _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(1, 6))
    bpy.context.scene.frame_set(3)
    assert bpy.ops.dvp.preview_frame() == {"FINISHED"}
    first = preview._servers[str(fake_dvp)]
    assert (out / "dvp_preview.0003.exr").is_file() and (out / "dvp_preview_track.npz").is_file()
    bpy.context.scene.frame_set(4)
    assert bpy.ops.dvp.preview_frame() == {"FINISHED"}
    assert preview._servers[str(fake_dvp)] is first and first.alive  # the same process served both
    img = bpy.data.images[preview.PREVIEW_IMAGE]
    assert img.filepath.endswith("dvp_preview.0004.exr") and img.colorspace_settings.name == "ACEScg"
    preview.stop_servers()
    assert not first.alive


def test_load_overlay_adds_the_tracker_overlay_as_a_strip(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path
) -> None:
    import bpy

    sample = REPO / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"
    track = make_track(range(1, 4))
    track.save(tmp_path / "t.npz")
    assert bpy.ops.dvp.import_track(filepath=str(tmp_path / "t.npz"), plate=str(sample)) == {"FINISHED"}
    settings = bpy.context.scene.dvp
    settings.dvp_executable = str(fake_dvp)
    settings.output = str(tmp_path / "out" / "frame.####.exr")
    assert bpy.ops.dvp.load_overlay() == {"FINISHED"}
    strip = bpy.context.scene.sequence_editor.strips["DVP overlay"]
    assert [e.filename for e in strip.elements] == [
        "overlay.0001.png",
        "overlay.0002.png",
        "overlay.0003.png",
    ]
    assert strip.frame_final_start == 1


def test_load_overlay_without_a_plate_says_so(
    addon: Any, tmp_path: Path, make_track: Any, fake_dvp: Path
) -> None:
    import bpy

    _scene_for_render(bpy, tmp_path, make_track, fake_dvp, range(1, 3))
    with pytest.raises(RuntimeError, match="the head has no plate"):
        bpy.ops.dvp.load_overlay()
