"""An upside-down face is not tracked as valid (issue 17, item 4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dvp_engine.facemodel import load_default_model
from dvp_engine.tracking import solver as S
from dvp_engine.tracking.overlay import render_params
from dvp_engine.tracking.tracker import (
    FrameObservation,
    Tracker,
    TrackerSettings,
    default_intrinsics,
    head_tilt_deg,
    to_packed,
)


def test_head_tilt() -> None:
    assert head_tilt_deg([0, 0, 0]) == pytest.approx(0, abs=1e-6)
    assert head_tilt_deg([0, np.pi / 2, 0]) == pytest.approx(0, abs=1e-6)  # yaw is not tilt
    assert head_tilt_deg([0, 0, np.deg2rad(30)]) == pytest.approx(30)
    assert head_tilt_deg([0, 0, np.pi]) == pytest.approx(180)
    assert head_tilt_deg([np.pi, 0, 0]) == pytest.approx(180)


def test_an_upside_down_face_is_flagged_lost() -> None:
    model = load_default_model()
    size, n = 160, 4
    rng = np.random.default_rng(0)
    intr = default_intrinsics(size, size)
    idx = np.asarray(model.landmarks68)
    local = np.zeros((n, S.N_LOCAL))
    local[:, 1] = np.deg2rad(np.linspace(-5, 5, n))
    local[:, S.TRANS] = [0.0, 0.0, 0.7]
    local[:, S.SH] = S.ambient_sh(np) * 0.9
    packed = to_packed(local, np.zeros((n, 4)))
    yy, xx = np.mgrid[0:size, 0:size]
    bg = np.stack([0.5 + 0.3 * np.sin(xx / 5.0), 0.5 + 0.3 * np.cos(yy / 7.0), 0.5 + 0 * xx], -1)
    images, obs = [], []
    for f in range(n):
        img, pix, _ = render_params(model, packed[f], intr, bg)
        lm = pix[idx] + rng.normal(size=(68, 2)) * 0.2
        img = (img * 255 + 0.5).astype(np.uint8)
        if f >= 2:  # the plate is upside down from frame 2 on: same landmark order, rotated 180 degrees
            img = np.ascontiguousarray(img[::-1, ::-1])
            lm = (size - 1) - lm
        images.append(img)
        obs.append(FrameObservation(lm, 1.0))
    res = Tracker(model, size, size, TrackerSettings(identity_keyframes=0), intr).track(images, obs)
    assert res.valid.tolist() == [True, True, False, False]
    assert "upside down" in res.messages[3]  # re-initialised from its landmarks: a good fit, but upside down
    np.testing.assert_array_equal(res.params[3], res.params[1])  # held, not the flipped fit


def test_the_upside_down_sample_clip_is_not_tracked_as_valid(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """dlib fits an upright face shape to an upside-down face (this tracked as valid before): the frames are
    flagged lost, and --strict makes the first an error naming it."""
    from pathlib import Path

    from dvp_engine.cli.main import main
    from dvp_engine.core import FaceTrack
    from dvp_engine.io.images import write_image
    from dvp_engine.io.video import read_frames

    sample = Path(__file__).resolve().parents[2] / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"
    for f, rgb in read_frames(sample, "1-3"):
        write_image(tmp_path / f"u.{f:04d}.png", np.ascontiguousarray(rgb[::-1, ::-1]))
    out = tmp_path / "u.npz"
    assert main(["track", str(tmp_path / "u.####.png"), "-o", str(out), "--device", "cpu", "-q"]) == 0
    t = FaceTrack.load(out)
    assert t.channel("track.valid").tolist() == [0.0, 0.0, 0.0]
    assert "upside down" in json.dumps(t.metadata)
    assert main(["track", str(tmp_path / "u.####.png"), "-o", str(out), "--overwrite", "--strict", "-q"]) == 1
    # the same frames upright still track
    for f, rgb in read_frames(sample, "1-3"):
        write_image(tmp_path / f"r.{f:04d}.png", rgb)
    assert main(["track", str(tmp_path / "r.####.png"), "-o", str(tmp_path / "r.npz"), "-q"]) == 0
    assert FaceTrack.load(tmp_path / "r.npz").channel("track.valid").tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("roll_deg", [0.0, 25.0, -90.0, 180.0])
def test_the_cold_start_pose_takes_the_roll_the_landmarks_show(roll_deg: float) -> None:
    """A re-initialised frame starts turned as the landmarks are (roll from the outer eye corners), so a head on
    its side or upside down is not fitted from an upright start; the translation puts the model's landmark
    centroid under the detection's."""
    model = load_default_model()
    size = 160
    intr = default_intrinsics(size, size)
    m = S.prepare_model(model, np, S.SolverSettings())
    local = np.zeros((1, S.N_LOCAL))
    local[0, 2] = np.deg2rad(roll_deg)
    local[0, S.TRANS] = [0.01, -0.005, 0.7]
    local[:, S.SH] = S.ambient_sh(np) * 0.9
    bg = np.full((size, size, 3), 0.5)
    _, pix, _ = render_params(model, to_packed(local, np.zeros((1, 4)))[0], intr, bg)
    lm = pix[np.asarray(model.landmarks68)][None]
    pose = S.initial_pose(m, lm, np.ones((1, 68)), intr, m.shape(None))
    got = np.rad2deg(pose[0, 2])
    assert abs((got - roll_deg + 180.0) % 360.0 - 180.0) < 3.0, got
    np.testing.assert_allclose(pose[0, 0:2], 0.0)  # no pitch or yaw guessed
    np.testing.assert_allclose(pose[0, 3:5], local[0, 3:5], atol=0.006)  # metres
