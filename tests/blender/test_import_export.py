"""Import Track keys, camera intrinsics, export round trips and NLA retiming."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

GAPPY = [1001, 1002, 1003, 1004, 1005, 1008, 1009, 1010, 1011, 1020]


def _import(bpy: Any, track: Any, tmp_path: Path) -> tuple[Any, Any, Path]:
    path = tmp_path / "track.npz"
    track.save(path)
    assert bpy.ops.dvp.import_track(filepath=str(path)) == {"FINISHED"}
    return bpy.data.objects["DVP Head"], bpy.data.objects["DVP Camera"], path


def test_import_keys_exact_frames_and_values(addon: Any, tmp_path: Path, make_track: Any) -> None:
    import bpy
    from bpy_extras import anim_utils

    from blender_addon import convert
    from dvp_engine.core import curves, layout

    track = make_track(GAPPY)
    head, cam, _ = _import(bpy, track, tmp_path)
    adt = head.animation_data
    bag = anim_utils.action_get_channelbag_for_slot(adt.action, adt.action_slot)
    by_path = {(fc.data_path, fc.array_index): fc for fc in bag.fcurves}

    def keys(path: str, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
        fc = by_path.pop((path, index))
        co = np.empty(2 * len(fc.keyframe_points), np.float32)
        fc.keyframe_points.foreach_get("co", co)
        return co[0::2], co[1::2]

    rot = np.stack([track.channels[c] for c in layout.HEAD_ROTATION], 1)
    trans = np.stack([track.channels[c] for c in layout.HEAD_TRANSLATION], 1)
    euler, loc = convert.pose_to_blender(rot, trans)
    for i in range(3):
        f, v = keys("rotation_euler", i)
        np.testing.assert_array_equal(f, GAPPY)
        np.testing.assert_allclose(v, euler[:, i], atol=1e-6)
        f, v = keys("location", i)
        np.testing.assert_array_equal(f, GAPPY)
        np.testing.assert_allclose(v, loc[:, i], atol=1e-7)
    expected = {k: v for k, v in track.channels.items() if not k.startswith("head.")}
    for name in ("face.jaw_open", "face.smile"):
        expected[name] = curves.control_values(track, name)
    assert len(expected) == 4 + 2 + 64 + 27 + 2 + 2
    for name, values in expected.items():
        f, v = keys(f'["{name}"]')
        np.testing.assert_array_equal(f, GAPPY, err_msg=name)
        np.testing.assert_allclose(v, values, rtol=1e-6, atol=1e-6, err_msg=name)
    assert not by_path, f"unexpected F-curves {sorted(by_path)}"

    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1001, 1020)
    assert (scene.render.fps, scene.render.fps_base) == (25, 1.0)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (64, 48)


def test_head_pose_maps_model_points_like_the_engine(addon: Any, tmp_path: Path, make_track: Any) -> None:
    """At a frame, the Empty's evaluated transform relative to the camera reproduces X_cv = R X + t."""
    import bpy

    from blender_addon.convert import CV_TO_BLENDER as C
    from dvp_engine.core import layout
    from dvp_engine.core.rotation import euler_to_matrix

    track = make_track(GAPPY)
    head, cam, _ = _import(bpy, track, tmp_path)
    x_model = np.array([[0.03, -0.02, -0.09], [-0.05, 0.04, 0.01], [0.0, 0.0, 0.0]])
    for i in (0, 6):
        bpy.context.scene.frame_set(int(GAPPY[i]))
        rel = np.array(cam.matrix_world.inverted() @ head.matrix_world)
        # the Empty's local axes are the model axes the Blender way: X_model_bl = C X_model
        x_bl = (rel[:3, :3] @ (C @ x_model.T) + rel[:3, 3:4]).T
        r = euler_to_matrix([track.channels[c][i] for c in layout.HEAD_ROTATION])
        t = np.array([track.channels[c][i] for c in layout.HEAD_TRANSLATION])
        x_cv = (r @ x_model.T).T + t
        np.testing.assert_allclose(C @ x_bl.T, x_cv.T, atol=1e-5)


@pytest.mark.parametrize(
    "intrinsics,size",
    [
        ((70.0, 70.0, 30.5, 25.0), (64, 48)),
        ((500.0, 500.0, 200.0, 300.0), (512, 640)),
        ((500.0, 450.0, 260.0, 240.0), (512, 512)),
        ((450.0, 500.0, 250.0, 270.0), (512, 512)),
    ],
)
def test_camera_matches_intrinsics(
    addon: Any, tmp_path: Path, make_track: Any, intrinsics: Any, size: Any
) -> None:
    import bpy
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Matrix, Vector

    from blender_addon import convert, scene_io

    track = make_track([1, 2, 3]).replace(intrinsics=intrinsics, width=size[0], height=size[1])
    _head, cam, _ = _import(bpy, track, tmp_path)
    scene = bpy.context.scene
    w, h = size
    pts_cv = np.array([[0.0, 0.0, 0.7], [0.05, -0.03, 0.6], [-0.08, 0.1, 1.2], [0.2, 0.15, 2.0]])
    cam_world = Matrix(cam.matrix_world)
    got = []
    for p in pts_cv:
        world = cam_world @ Vector(convert.CV_TO_BLENDER @ p)
        ndc = world_to_camera_view(scene, cam, world)
        assert ndc.z == pytest.approx(p[2], rel=1e-5)  # depth in front of the camera
        got.append((ndc.x * w - 0.5, (1.0 - ndc.y) * h - 0.5))
    np.testing.assert_allclose(np.array(got), convert.project_pinhole(pts_cv, intrinsics), atol=2e-3)
    back, bw, bh = scene_io.scene_intrinsics(scene, cam)
    assert (bw, bh) == size
    np.testing.assert_allclose(back, intrinsics, atol=1e-4)


def test_export_without_edits_round_trips(addon: Any, tmp_path: Path, make_track: Any) -> None:
    import bpy

    from dvp_engine.core import CurveSet, FaceTrack, layout

    track = make_track(range(1001, 1013))
    _import(bpy, track, tmp_path)
    out = tmp_path / "edited.npz"
    assert bpy.ops.dvp.export_curves(filepath=str(out)) == {"FINISHED"}
    back = FaceTrack.load(out)
    np.testing.assert_array_equal(back.frames, track.frames)
    assert back.intrinsics == pytest.approx(track.intrinsics, abs=1e-4)
    assert (back.width, back.height, back.rate) == (track.width, track.height, track.rate)
    np.testing.assert_array_equal(back.identity, track.identity)
    assert back.metadata["controls"] == track.metadata["controls"]
    for name in layout.FRAME_CHANNELS + layout.AUX_CHANNELS:
        tol = 2e-3 if name in layout.HEAD_ROTATION else 1e-4
        np.testing.assert_allclose(back.channels[name], track.channels[name], atol=tol, err_msg=name)
    cpath = tmp_path / "curves.json"
    assert bpy.ops.dvp.export_curves(filepath=str(cpath)) == {"FINISHED"}
    cs = CurveSet.load(cpath)
    assert json.loads(cpath.read_text())["schema"] == "DVPCurves.1"
    assert [k.frame for k in cs.curves["blink.left"].keys] == list(range(1001, 1013))
    np.testing.assert_allclose(
        [k.value for k in cs.curves["head.tz"].keys], track.channels["head.tz"], atol=1e-6
    )


def test_named_control_edit_moves_expression_along_its_direction(
    addon: Any, tmp_path: Path, make_track: Any
) -> None:
    import bpy

    from blender_addon import keyframes
    from dvp_engine.core import FaceTrack, curves, layout

    track = make_track(range(1, 6))
    head, _cam, _ = _import(bpy, track, tmp_path)
    bag = keyframes.channelbag_of(head)
    fc = bag.fcurves.find('["face.smile"]')
    co = np.empty(2 * len(fc.keyframe_points), np.float32)
    fc.keyframe_points.foreach_get("co", co)
    co[1::2] += 0.5
    fc.keyframe_points.foreach_set("co", co)
    fc.update()
    out = tmp_path / "edited.npz"
    assert bpy.ops.dvp.export_curves(filepath=str(out)) == {"FINISHED"}
    back = FaceTrack.load(out)
    np.testing.assert_allclose(
        curves.control_values(back, "face.smile"), curves.control_values(track, "face.smile") + 0.5, atol=1e-4
    )
    d = curves.control_directions(track)["face.smile"]
    delta = np.stack([back.channels[c] - track.channels[c] for c in layout.EXPRESSION], 1)
    # the change is along d only
    np.testing.assert_allclose(delta - np.outer(delta @ d / (d @ d), d), 0.0, atol=1e-4)


def test_nla_retime_scale_2x_and_modifier_are_baked(addon: Any, tmp_path: Path, make_track: Any) -> None:
    import bpy

    from dvp_engine.core import CurveSet

    frames = np.arange(1, 11)
    track = make_track(frames)
    head, _cam, _ = _import(bpy, track, tmp_path)
    adt = head.animation_data
    action, slot = adt.action, adt.action_slot
    # an F-curve modifier on one channel: +5 degrees gaze
    from blender_addon import keyframes

    fc = keyframes.channelbag_of(head).fcurves.find('["gaze.left.x"]')
    mod = fc.modifiers.new("GENERATOR")
    mod.use_additive = True
    mod.coefficients = (5.0, 0.0)
    # push to an NLA strip and scale it 2x
    nla = adt.nla_tracks.new()
    strip = nla.strips.new("retime", 1, action)
    strip.action_slot = slot
    adt.action = None
    strip.scale = 2.0
    assert strip.frame_end == pytest.approx(19.0)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 19
    out = tmp_path / "retimed.json"
    assert bpy.ops.dvp.export_curves(filepath=str(out)) == {"FINISHED"}
    cs = CurveSet.load(out)
    out_frames = np.arange(1, 20)
    src_time = 1 + (out_frames - 1) / 2.0  # the action frame each output frame shows
    for name in ("blink.left", "expr.05", "light.sh.26", "head.tz", "track.confidence"):
        keys = cs.curves[name].keys
        assert [k.frame for k in keys] == list(out_frames)
        expected = np.interp(src_time, frames, track.channels[name])
        np.testing.assert_allclose([k.value for k in keys], expected, atol=1e-5, err_msg=name)
    gaze = [k.value for k in cs.curves["gaze.left.x"].keys]
    np.testing.assert_allclose(
        gaze, np.interp(src_time, frames, track.channels["gaze.left.x"]) + 5.0, atol=1e-4
    )
    # the held (constant) validity flag stays 0/1
    assert set(np.unique([k.value for k in cs.curves["track.valid"].keys])) <= {0.0, 1.0}


def test_smile_keyed_plus_one_arrives_plus_one_other_controls_unchanged(
    addon: Any, tmp_path: Path, make_track: Any
) -> None:
    """Issue 15 item 1: the shipped 12 (non-orthogonal) controls, smile +1 keyed in Blender at frame 50."""
    import bpy

    from dvp_engine.core import CurveSet, apply_curves, controls

    track = make_track(range(1, 61), shipped_controls=True)
    head, _cam, _ = _import(bpy, track, tmp_path)
    before = controls.all_control_values(track)
    assert len(before) == 12
    scene = bpy.context.scene
    scene.frame_set(50)
    head["face.smile"] = float(before["face.smile"][49]) + 1.0
    head.keyframe_insert('["face.smile"]', frame=50)
    for suffix in (".json", ".npz"):
        out = tmp_path / f"edited{suffix}"
        assert bpy.ops.dvp.export_curves(filepath=str(out)) == {"FINISHED"}
        edited = apply_curves(track, CurveSet.load(out)) if suffix == ".json" else FaceTrack_load(out)
        after = controls.all_control_values(edited)
        for name, values in before.items():
            want = values.copy()
            if name == "face.smile":
                want[49] += 1.0
            np.testing.assert_allclose(after[name], want, atol=1e-4, err_msg=f"{suffix} {name}")


def FaceTrack_load(path: Path) -> Any:  # noqa: N802 - reads like the class method it wraps
    from dvp_engine.core import FaceTrack

    return FaceTrack.load(path)
