"""Eyes in the data model: look-at angles with vergence, the look-at blend, eye calibration in the file."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.errors import InputError, SchemaError
from dvp_engine.core.gaze import (
    EyeCalibration,
    camera_to_plate_points,
    look_at_angles,
    plate_point_to_camera,
    plate_points_to_camera,
    resolved_gaze,
)
from dvp_engine.core.rotation import euler_to_matrix

CENTRES = np.array([[0.032, -0.02, -0.045], [-0.032, -0.02, -0.045]])  # IPD 64 mm


def test_target_straight_ahead_at_one_metre_gives_half_the_ipd_over_a_metre() -> None:
    rot = np.eye(3)[None]
    t = np.array([[0.01, -0.02, 1.3]])
    mid = CENTRES.mean(axis=0)
    target = mid + t[0] + [0.0, 0.0, -1.0]  # 1 m in front of the eyes, along the face's forward axis (-z)
    ang = look_at_angles(rot, t, CENTRES, target)
    half = math.degrees(math.atan(0.032 / 1.0))
    # the left eye (model +x) turns toward the nose (-x: negative yaw), the right eye likewise toward +x
    np.testing.assert_allclose(ang[0], [-half, 0.0, half, 0.0], atol=1e-9)
    # the same with the head turned: angles are relative to the head, so they do not change
    r = euler_to_matrix(np.array([[10.0, -20.0, 5.0]]))
    tgt = r[0] @ (mid + [0.0, 0.0, -1.0]) + t[0]
    np.testing.assert_allclose(look_at_angles(r, t, CENTRES, tgt)[0], [-half, 0.0, half, 0.0], atol=1e-9)


def test_look_at_direction_points_from_each_eyeball_to_the_target() -> None:
    rng = np.random.default_rng(0)
    euler = rng.uniform(-20, 20, (5, 3))
    t = np.array([0.0, 0.0, 0.8]) + rng.normal(size=(5, 3)) * 0.05
    target = rng.normal(size=(5, 3)) * 0.2  # near the camera
    ang = look_at_angles(euler, t, CENTRES, target)
    rot = euler_to_matrix(euler)
    for e in range(2):
        d = layout.gaze_direction(ang[:, 2 * e], ang[:, 2 * e + 1])  # head frame
        eye = np.einsum("fij,j->fi", rot, CENTRES[e]) + t
        want = (target - eye) / np.linalg.norm(target - eye, axis=1, keepdims=True)
        np.testing.assert_allclose(np.einsum("fij,fj->fi", rot, d), want, atol=1e-9)


def test_target_behind_the_head_is_a_clear_error() -> None:
    t = np.array([[0.0, 0.0, 0.7], [0.0, 0.0, 0.7]])
    behind = np.array([[0.0, 0.0, 0.1], [0.0, 0.0, 1.5]])  # frame 1: 1.5 m from the camera, behind the head
    with pytest.raises(InputError, match=r"frame 1042: .*behind the face"):
        look_at_angles(np.eye(3)[None].repeat(2, 0), t, CENTRES, behind, frames=[1041, 1042])


def test_plate_point_and_depth() -> None:
    intr = (1000.0, 1000.0, 255.5, 255.5)
    x, y, z = plate_point_to_camera(355.5, 155.5, 2.0, intr)
    assert (x, y, z) == pytest.approx((0.2, -0.2, 2.0))
    with pytest.raises(InputError, match="depth"):
        plate_point_to_camera(0, 0, -1.0, intr)


def test_plate_points_and_their_inverse() -> None:
    intr = (1000.0, 900.0, 255.5, 240.0)
    pts = plate_points_to_camera([355.5, 255.5, 155.5], [150.0, 240.0, 60.0], [2.0, 0.5, -1.0], intr)
    np.testing.assert_allclose(pts[0], [0.2, -0.2, 2.0])
    np.testing.assert_allclose(pts[1], [0.0, 0.0, 0.5])
    np.testing.assert_allclose(pts[2], [0.1, 0.2, -1.0])  # behind the lens: still seen at that pixel
    assert plate_point_to_camera(355.5, 150.0, 2.0, intr) == pytest.approx(tuple(pts[0]))
    u, v, d = camera_to_plate_points(pts, intr)
    np.testing.assert_allclose(u, [355.5, 255.5, 155.5])
    np.testing.assert_allclose(v, [150.0, 240.0, 60.0])
    np.testing.assert_allclose(d, [2.0, 0.5, -1.0])
    with pytest.raises(InputError, match=r"frame 1002: .*depth"):
        plate_points_to_camera([1, 2], [1, 2], [1.0, 0.0], intr, frames=[1001, 1002])
    with pytest.raises(InputError, match=r"frame 8: .*lens plane"):
        camera_to_plate_points([[0.1, 0.0, 1.0], [0.0, 0.0, 0.0]], intr, frames=[7, 8])


def _track(n: int = 3, **extra: np.ndarray) -> FaceTrack:
    p = np.zeros((n, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"]] = [0.0, 0.0, 0.7]
    p[:, layout.FRAME_LAYOUT["gaze"]] = np.deg2rad([4.0, -2.0, 6.0, 1.0])
    tr = FaceTrack.from_params(np.arange(1001, 1001 + n), p, rate=25, width=64, height=64,
                               intrinsics=(128.0, 128.0, 31.5, 31.5))  # fmt: skip
    for k, v in extra.items():
        tr.channels[k.replace("_", ".")] = np.asarray(v, np.float32)
    return tr


def test_look_weight_blends_the_target_with_the_curves() -> None:
    tr = _track(look_x=[0.0] * 3, look_y=[0.0] * 3, look_z=[0.0] * 3, look_weight=[0.0, 0.5, 1.0])
    g = resolved_gaze(tr.channels, CENTRES, list(tr.frames))
    assert g is not None
    own = np.array([4.0, -2.0, 6.0, 1.0])
    rot = np.eye(3)[None]
    lens = look_at_angles(rot, np.array([[0.0, 0.0, 0.7]]), CENTRES, np.zeros(3))[0]
    np.testing.assert_allclose(g[0], own, atol=1e-5)
    np.testing.assert_allclose(g[1], 0.5 * own + 0.5 * lens, atol=1e-5)
    np.testing.assert_allclose(g[2], lens, atol=1e-5)
    assert resolved_gaze(_track().channels, CENTRES) is None  # no look-at channels: nothing to resolve
    # a target behind the head matters only where its weight is above 0
    tr = _track(look_x=[0.0] * 3, look_y=[0.0] * 3, look_z=[0.0, 0.0, 2.0], look_weight=[1.0, 1.0, 0.0])
    assert resolved_gaze(tr.channels, CENTRES, list(tr.frames)) is not None
    tr.channels["look.weight"][2] = 0.2
    with pytest.raises(InputError, match="frame 1003"):
        resolved_gaze(tr.channels, CENTRES, list(tr.frames))
    tr.channels["look.weight"][2] = 1.5
    with pytest.raises(InputError, match=r"frame 1003: look.weight must be in \[0, 1\]"):
        resolved_gaze(tr.channels, CENTRES, list(tr.frames))


def test_eye_calibration_round_trips_and_old_tracks_upgrade(tmp_path: Path) -> None:
    tr = _track()
    cal = EyeCalibration(CENTRES, 0.012, "camera", 120, "", CENTRES * 0.01)
    tr = tr.replace(eyes=cal)
    back = FaceTrack.load(tr.save(tmp_path / "t.npz"))
    assert back.eyes is not None and back.eyes.method == "camera" and back.eyes.frames_used == 120
    np.testing.assert_allclose(back.eyes.centres, CENTRES)
    np.testing.assert_allclose(np.asarray(back.eyes.offsets), CENTRES * 0.01)
    # a FaceTrack.1 file (written before eye calibration existed) loads without one
    path = _track().save(tmp_path / "old.npz")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["header"].tobytes())
    header["schema"] = "FaceTrack.1"
    del header["eyes"]
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    old = tmp_path / "v1.npz"
    np.savez(old, **arrays)
    loaded = FaceTrack.load(old)
    assert loaded.eyes is None
    np.testing.assert_array_equal(loaded.params(), _track().params())
    # malformed calibrations are schema errors
    header = dict(
        header, schema="FaceTrack.2", eyes={"centres": [[0, 0]], "radius": 0.012, "method": "camera"}
    )
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(SchemaError, match="eye calibration"):
        FaceTrack.load(tmp_path / "bad.npz")
    with pytest.raises(SchemaError, match="method"):
        EyeCalibration(CENTRES, 0.012, "guess")
    assert Fraction(loaded.rate) == 25


def test_curves_can_key_the_look_at_channels_on_a_track_without_them() -> None:
    from dvp_engine.core import Curve, CurveSet, Key, apply_curves

    tr = _track()
    assert "look.weight" not in tr.channels
    out = apply_curves(
        tr, CurveSet({"look.weight": Curve([Key(1002.0, 1.0, "constant")], "override", (1002, 1003))})
    )
    np.testing.assert_array_equal(out.channels["look.weight"], [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(out.channels["look.z"], [0.0, 0.0, 0.0])
    with pytest.raises(KeyError, match="look.w"):
        apply_curves(tr, CurveSet({"look.w": Curve([Key(1002.0, 1.0, "constant")])}))
