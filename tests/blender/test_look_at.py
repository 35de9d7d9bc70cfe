"""The look target Empty as an artist uses it: add it, key its location, export, and the eyes of the exported
track look at it; a track with look-at channels imports as a keyed target; a target behind the head is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

FRAMES = list(range(1, 12))


def _import(bpy: Any, track: Any, tmp_path: Path) -> tuple[Any, Any]:
    path = tmp_path / "track.npz"
    track.save(path)
    assert bpy.ops.dvp.import_track(filepath=str(path)) == {"FINISHED"}
    return bpy.data.objects["DVP Head"], bpy.data.objects["DVP Camera"]


def _centres(track: Any) -> np.ndarray:
    from dvp_engine.core.gaze import eye_centres
    from dvp_engine.facemodel import load_default_model

    m = load_default_model()
    return eye_centres(track.eyes, np.stack([m.eyeball_left_center, m.eyeball_right_center]))


def _assert_eyes_look_at_target(track: Any, rows: list[int]) -> None:
    """Both eyes' rays (rendered gaze, engine blend) pass through the look.* target on ``rows``."""
    from dvp_engine.core import layout
    from dvp_engine.core.gaze import resolved_gaze
    from dvp_engine.core.rotation import euler_to_matrix

    centres = _centres(track)
    gaze = resolved_gaze(track.channels, centres, [int(f) for f in track.frames])  # degrees
    for r in rows:
        rot = euler_to_matrix(np.array([[track.channels[c][r] for c in layout.HEAD_ROTATION]], np.float64))[0]
        t = np.array([track.channels[c][r] for c in layout.HEAD_TRANSLATION], np.float64)
        target = np.array([track.channels[c][r] for c in layout.LOOK_AT[:3]], np.float64)
        for e in range(2):
            ray = rot @ layout.gaze_direction(gaze[r, 2 * e], gaze[r, 2 * e + 1])
            to_target = target - (rot @ centres[e] + t)
            assert np.linalg.norm(np.cross(ray, to_target)) < 1e-5 * np.linalg.norm(to_target), (r, e)
            assert ray @ to_target > 0


def test_keyed_look_target_exports_as_look_channels(addon: Any, tmp_path: Path, make_track: Any) -> None:
    import bpy

    from blender_addon import scene_io
    from dvp_engine.core import FaceTrack, layout
    from dvp_engine.core.gaze import EyeCalibration

    eyes = EyeCalibration(np.array([[0.031, -0.03, -0.02], [-0.031, -0.03, -0.02]]), 0.012, "camera", 11)
    track = make_track(FRAMES).replace(eyes=eyes)
    head, cam = _import(bpy, track, tmp_path)
    assert scene_io.look_target(head) is None and "look.weight" not in head.keys()
    assert bpy.ops.dvp.add_look_target() == {"FINISHED"}
    target = bpy.data.objects["DVP Head_look_target"]
    assert scene_io.look_target(head) == target and target.parent == cam
    assert head["look.weight"] == 1.0 and bpy.context.view_layer.objects.active == target
    # the artist keys the target at frames 1 and 11 (Blender camera frame: -z is forward, +y up)
    for f, loc in ((1, (0.02, 0.01, -0.3)), (11, (-0.03, -0.02, -0.25))):
        target.location = loc
        target.keyframe_insert("location", frame=f)
    out = tmp_path / "edited.npz"
    bpy.context.view_layer.objects.active = head
    assert bpy.ops.dvp.export_curves(filepath=str(out)) == {"FINISHED"}
    got = FaceTrack.load(out)
    assert got.eyes is not None and np.allclose(got.eyes.centres, eyes.centres)  # the calibration travels
    look = np.stack([got.channels[c] for c in layout.LOOK_AT[:3]], axis=1).astype(np.float64)
    np.testing.assert_allclose(look[0], [0.02, -0.01, 0.3], atol=1e-6)  # OpenCV: y down, z forward
    np.testing.assert_allclose(look[10], [-0.03, 0.02, 0.25], atol=1e-6)
    # in between: Blender's interpolation of the keys, converted frame by frame
    from blender_addon import keyframes

    bag = keyframes.channelbag_of(target)
    assert bag is not None
    fcs = {fc.array_index: fc for fc in bag.fcurves if fc.data_path == "location"}
    for r, f in enumerate(FRAMES):
        bl = np.array([fcs[i].evaluate(f) for i in range(3)])
        np.testing.assert_allclose(look[r], bl * [1, -1, -1], atol=1e-6)
    assert np.all(np.diff(look[:, 0]) <= 0) and 0.25 < look[5, 2] < 0.3
    np.testing.assert_array_equal(got.channels["look.weight"], 1.0)
    _assert_eyes_look_at_target(got, list(range(len(FRAMES))))
    # the same scene as a curve file: the look-at channels, keyed per frame, in the "look" group
    cpath = tmp_path / "edits.json"
    assert bpy.ops.dvp.export_curves(filepath=str(cpath)) == {"FINISHED"}
    from dvp_engine.core import CurveSet

    curves = CurveSet.load(cpath)
    assert set(layout.LOOK_AT) <= set(curves.curves)
    assert scene_io.channel_group("look.x") == "look"


def test_track_with_look_channels_imports_a_keyed_target(addon: Any, tmp_path: Path, make_track: Any) -> None:
    import bpy

    from blender_addon import scene_io
    from dvp_engine.core import FaceTrack, layout

    base = make_track(FRAMES)
    chans = dict(base.channels)
    n = len(FRAMES)
    chans["look.x"] = np.linspace(-0.05, 0.05, n).astype(np.float32)
    chans["look.y"] = np.linspace(0.02, -0.02, n).astype(np.float32)
    chans["look.z"] = np.linspace(0.2, 0.35, n).astype(np.float32)
    chans["look.weight"] = np.linspace(0.0, 1.0, n).astype(np.float32)
    track = base.replace(channels=chans)
    head, cam = _import(bpy, track, tmp_path)
    target = scene_io.look_target(head)
    assert target is not None and target.name == "DVP Head_look_target" and target.parent == cam
    assert "look.x" not in head.keys() and "look.weight" in head.keys()  # the target holds x y z
    for r, f in enumerate(FRAMES):
        bpy.context.scene.frame_set(f)
        rel = np.array(cam.matrix_world.inverted() @ target.matrix_world.translation)
        np.testing.assert_allclose(
            rel, [chans["look.x"][r], -chans["look.y"][r], -chans["look.z"][r]], atol=1e-6
        )
        assert head["look.weight"] == pytest.approx(chans["look.weight"][r], abs=1e-6)
    out = tmp_path / "back.npz"
    assert bpy.ops.dvp.export_curves(filepath=str(out)) == {"FINISHED"}
    back = FaceTrack.load(out)
    for c in layout.LOOK_AT:
        np.testing.assert_allclose(back.channels[c], chans[c], atol=1e-6, err_msg=c)
    _assert_eyes_look_at_target(back, [n - 1])  # weight 1 on the last frame


def test_look_target_behind_the_head_is_reported_with_its_frame(
    addon: Any, tmp_path: Path, make_track: Any
) -> None:
    import bpy

    track = make_track(FRAMES)  # the head 0.6-0.7 m from the lens
    head, _ = _import(bpy, track, tmp_path)
    bpy.ops.dvp.add_look_target()
    target = bpy.data.objects["DVP Head_look_target"]
    target.location = (0.0, 0.0, -3.0)  # 3 m in front of the camera: behind the head
    bpy.context.view_layer.objects.active = head
    for f in FRAMES:
        head["look.weight"] = 1.0 if f == 5 else 0.0  # only frame 5 uses the target
        head.keyframe_insert('["look.weight"]', frame=f)
    out = tmp_path / "bad.npz"
    with pytest.raises(RuntimeError, match=r"Export Curves: frame 5: look target: .*behind the face"):
        bpy.ops.dvp.export_curves(filepath=str(out))
    assert not out.exists()
