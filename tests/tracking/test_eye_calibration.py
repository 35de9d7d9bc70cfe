"""Per-actor eye calibration: known eyeball offsets recovered from synthetic renders, fallbacks, the track."""

from __future__ import annotations

import numpy as np
import pytest

from dvp_engine.core import FaceTrack
from dvp_engine.core.gaze import look_at_angles
from dvp_engine.core.rotation import euler_to_matrix
from dvp_engine.facemodel import load_default_model
from dvp_engine.tracking import solver as S
from dvp_engine.tracking.eye_calibration import calibrate_eyes, calibrate_eyes_in_order, sphere_gaze
from dvp_engine.tracking.pipeline import track_video
from dvp_engine.tracking.synthetic import synthetic_scene
from dvp_engine.tracking.tracker import Tracker, TrackerSettings, default_intrinsics, from_packed

OFFSETS = np.array([[0.0015, -0.0010, 0.0010], [-0.0020, 0.0012, -0.0008]])  # metres, left / right eye


@pytest.fixture(scope="module")
def model():
    return load_default_model()


@pytest.fixture(scope="module")
def scene(model):
    # 24 frames at 160 px; 80 % of them look into the lens, the rest anywhere within +-15 degrees
    return synthetic_scene(model, 24, 160, seed=11, eye_offsets=OFFSETS, at_camera=0.8)


def _centres(model) -> np.ndarray:
    return np.stack([model.eyeball_left_center, model.eyeball_right_center]).astype(np.float64)


def test_calibration_recovers_known_eyeball_offsets_from_renders(model, scene) -> None:
    packed, images, obs, intr = scene
    st = TrackerSettings(identity_keyframes=0, eye_calibration_min_frames=10)
    res = Tracker(model, 160, 160, st, intr).track(images, obs)
    assert res.valid.all()
    eyes = res.eyes
    assert eyes is not None and eyes.method == "camera" and not eyes.fallback, eyes
    err = np.abs(eyes.centres - (_centres(model) + OFFSETS))
    assert err[:, :2].max() < 0.0005, err  # across the view: within half a millimetre
    assert err[:, 2].max() < 0.0012, err  # depth, seen only through the head's turns: looser
    assert eyes.frames_used >= 15
    # the gaze, measured from the recovered centres, matches the truth (relative to the true centres)
    _, gaze = from_packed(res.params)
    _, truth = from_packed(packed)
    e = np.rad2deg(gaze - truth)
    assert np.abs(e.mean(axis=0)).max() < 1.0, e.mean(axis=0)
    assert np.sqrt((e**2).mean()) < 2.0
    # without calibration the same clip shows the offsets as a gaze bias of several degrees
    st0 = TrackerSettings(identity_keyframes=0, eye_calibration="none")
    res0 = Tracker(model, 160, 160, st0, intr).track(images, obs)
    assert res0.eyes is not None and res0.eyes.method == "model"
    bias0 = np.rad2deg(from_packed(res0.params)[1] - truth).mean(axis=0)
    assert np.abs(bias0).max() > 4.0, bias0


def _poses(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    rot = euler_to_matrix(rng.uniform(-15, 15, (n, 3)))
    trans = np.array([0.0, 0.0, 0.8]) + rng.normal(size=(n, 3)) * [0.03, 0.03, 0.05]
    return rot, trans, rng


def _pupils(model, rot, trans, centres, gaze_deg, intr) -> np.ndarray:
    out = np.zeros((len(rot), 2, 2))
    for e in range(2):
        from dvp_engine.core.layout import gaze_direction

        d = gaze_direction(gaze_deg[:, 2 * e], gaze_deg[:, 2 * e + 1])
        p = np.einsum("fij,fj->fi", rot, centres[e] + model.eyeball_radius * d) + trans
        out[:, e] = S.project(p, intr)
    return out


def test_forward_method_and_the_camera_method_with_distractions(model) -> None:
    intr = default_intrinsics(512, 512)
    rot, trans, rng = _poses(200, 3)
    true = _centres(model) + OFFSETS
    # eyes centred in the head on average (5 degrees of spread): the 'forward' assumption
    gaze = rng.normal(size=(200, 4)) * 5.0
    pup = _pupils(model, rot, trans, true, gaze, intr) + rng.normal(size=(200, 2, 2)) * 0.2
    cal = calibrate_eyes(_centres(model), model.eyeball_radius, rot, trans, pup, np.ones((200, 2)), intr,
                         method="forward")  # fmt: skip
    assert cal.method == "forward"
    assert np.abs(cal.centres - true)[:, :2].max() < 0.0004, cal.centres - true
    # into the lens 60 % of the time, elsewhere (up to 25 degrees away) otherwise: the robust fit ignores those
    lens = rng.uniform(size=200) < 0.6
    gaze = np.where(
        lens[:, None], look_at_angles(rot, trans, true, np.zeros(3)), rng.uniform(-25, 25, (200, 4))
    )
    pup = _pupils(model, rot, trans, true, gaze, intr) + rng.normal(size=(200, 2, 2)) * 0.2
    cal = calibrate_eyes(_centres(model), model.eyeball_radius, rot, trans, pup, np.ones((200, 2)), intr)
    assert cal.method == "camera"
    assert np.abs(cal.centres - true)[:, :2].max() < 0.0004, cal.centres - true
    assert np.abs(cal.centres - true)[:, 2].max() < 0.001, cal.centres - true


def test_calibration_falls_back_and_says_why(model) -> None:
    intr = default_intrinsics(512, 512)
    rot, trans, rng = _poses(60, 5)
    true = _centres(model)
    # too few frames with a pupil (the rest closed or not found: weight 0)
    w = np.zeros((60, 2))
    w[:10] = 1.0
    pup = _pupils(model, rot, trans, true, look_at_angles(rot, trans, true, np.zeros(3)), intr)
    cal = calibrate_eyes(true, model.eyeball_radius, rot, trans, pup, w, intr, min_frames=30)
    assert cal.fallback and cal.method == "model" and "too few frames" in cal.note
    np.testing.assert_array_equal(cal.centres, true)
    # an actor who always looks 35 degrees to the side: no plausible eyeball explains it as looking at the lens
    side = look_at_angles(rot, trans, true, np.zeros(3)) + [35.0, 0.0, 35.0, 0.0]
    pup = _pupils(model, rot, trans, true, side, intr)
    cal = calibrate_eyes(true, model.eyeball_radius, rot, trans, pup, np.ones((60, 2)), intr)
    assert cal.fallback and ("plausible" in cal.note or "assumption" in cal.note), cal.note
    # an actor who looks everywhere (uniform +-30 degrees): too few frames agree with the lens
    pup = _pupils(model, rot, trans, true, rng.uniform(-30, 30, (60, 4)), intr)
    cal = calibrate_eyes(true, model.eyeball_radius, rot, trans, pup, np.ones((60, 2)), intr)
    assert cal.fallback and "assumption" in cal.note, cal.note
    with pytest.raises(ValueError, match="camera.*forward"):
        calibrate_eyes(true, model.eyeball_radius, rot, trans, pup, np.ones((60, 2)), intr, method="median")


def test_in_order_tries_forward_when_the_actor_does_not_look_into_the_lens(model) -> None:
    intr = default_intrinsics(512, 512)
    rot, trans, rng = _poses(200, 11)
    true = _centres(model) + OFFSETS
    # eyes centred in the head (5 degrees of spread) while the head turns: never into the lens
    gaze = rng.normal(size=(200, 4)) * 5.0
    pup = _pupils(model, rot, trans, true, gaze, intr) + rng.normal(size=(200, 2, 2)) * 0.2
    args = (_centres(model), model.eyeball_radius, rot, trans, pup, np.ones((200, 2)), intr)
    alone = calibrate_eyes(*args, method="camera", start=_centres(model))
    assert alone.fallback, "the camera assumption should not hold for this actor"
    cal = calibrate_eyes_in_order(("camera", "forward"), *args, start=_centres(model))
    assert cal.method == "forward" and not cal.fallback
    assert "'camera'" in cal.note and "'forward' assumption holds" in cal.note, cal.note
    assert np.abs(cal.centres - true)[:, :2].max() < 0.0004, cal.centres - true


def test_when_no_assumption_holds_the_eyes_follow_the_openings(model) -> None:
    """An actor whose eye openings sit 2.5 mm further apart than the model's, looking everywhere: neither
    assumption holds and the centres are the openings' (start), not the model's fixed ones, so the gaze has
    no constant squint."""
    intr = default_intrinsics(512, 512)
    rot, trans, rng = _poses(120, 12)
    start = _centres(model) + np.array([[0.0025, 0.0, 0.0], [-0.0025, 0.0, 0.0]])
    gaze = rng.uniform(-30, 30, (120, 4))
    pup = _pupils(model, rot, trans, start, gaze, intr)
    cal = calibrate_eyes_in_order(("camera", "forward"), _centres(model), model.eyeball_radius, rot, trans, pup,
                                  np.ones((120, 2)), intr, start=start, binocular=False)  # fmt: skip
    assert cal.fallback and cal.method == "openings", cal
    assert "'camera'" in cal.note and "'forward'" in cal.note, cal.note
    assert "eye openings" in cal.note
    np.testing.assert_allclose(cal.centres, start)
    np.testing.assert_allclose(cal.offsets, start - _centres(model))
    with pytest.raises(ValueError, match="at least one method"):
        calibrate_eyes_in_order(
            (), _centres(model), model.eyeball_radius, rot, trans, pup, np.ones((120, 2)), intr
        )


def test_binocular_fallback_sets_the_eyes_separation_so_their_rays_meet(model) -> None:
    """An actor looking around (never into the lens, not along the face on average) at points 0.4-1.2 m away,
    both eyes fixating each point, whose eyeballs sit 2 mm further apart and 0.8 mm at different heights than
    the eye openings say: the fallback recovers the relative offset (within 0.4 mm) and the tracked vergence is
    then that of the targets, where the openings' centres alone give a squint of several degrees."""
    intr = default_intrinsics(512, 512)
    rot, trans, rng = _poses(200, 13)
    start = _centres(model)
    rel = np.array([0.001, -0.0004, 0.0])
    true = start + np.stack([rel, -rel])
    # fixation targets in the camera frame: up to 30 cm beside the lens, 0.4-1.2 m in front of the head
    tgt = np.column_stack([rng.uniform(-0.3, 0.3, 200), rng.uniform(-0.2, 0.2, 200), np.zeros(200)])
    tgt[:, 2] = trans[:, 2] - rng.uniform(0.4, 1.2, 200)
    gaze = look_at_angles(rot, trans, true, tgt)
    pup = _pupils(model, rot, trans, true, gaze, intr) + rng.normal(size=(200, 2, 2)) * 0.1
    args = (_centres(model), model.eyeball_radius, rot, trans, pup, np.ones((200, 2)), intr)
    cal = calibrate_eyes_in_order(("camera", "forward"), *args, start=start)
    assert cal.method == "binocular" and cal.fallback, cal
    assert "gaze rays meet" in cal.note, cal.note
    got_rel = ((cal.centres - start)[0] - (cal.centres - start)[1]) / 2
    assert np.abs(got_rel - rel)[:2].max() < 0.0004, (got_rel, rel)
    np.testing.assert_allclose(cal.centres.mean(axis=0), start.mean(axis=0), atol=1e-9)  # common offset kept

    def squint(centres: np.ndarray) -> float:
        g = [sphere_gaze(centres[e], model.eyeball_radius, rot, trans, pup[:, e], intr) for e in range(2)]
        return float(np.median(np.abs((g[1][:, 0] - g[0][:, 0]) - (gaze[:, 2] - gaze[:, 0]))))

    assert squint(cal.centres) < 1.5 < 4.0 < squint(start), (squint(cal.centres), squint(start))


class _Replay:
    def __init__(self, obs):
        self.obs = list(obs)
        self.i = 0

    def __call__(self, img):
        o = self.obs[self.i]
        self.i += 1
        return o


def test_track_stores_the_calibration_and_the_fallback_note(model, scene, tmp_path) -> None:
    packed, images, obs, intr = scene
    # default settings: 24 frames are fewer than the 30 needed, so the track falls back and records why
    track = track_video("synthetic", images=images, landmark_source=_Replay(obs), identity_keyframes=0,
                        intrinsics=intr)  # fmt: skip
    assert track.eyes is not None and track.eyes.fallback
    note = track.metadata["tracker"]["eye_calibration"]
    assert note["fallback"] is True and "too few frames" in note["note"]
    back = FaceTrack.load(track.save(tmp_path / "t.npz"))
    # the fallback is the model's centres moved with the fitted face's eye openings (identity_keyframes=0:
    # no identity, so here they are the model's own)
    assert back.eyes is not None and back.eyes.method == "openings" and back.eyes.note == track.eyes.note
    assert "eye openings" in back.eyes.note
    np.testing.assert_allclose(back.eyes.centres, _centres(model), atol=1e-6)
    # with enough frames it calibrates, and the file keeps the centres
    st = TrackerSettings(identity_keyframes=0, eye_calibration_min_frames=10)
    track = track_video("synthetic", images=images, landmark_source=_Replay(obs), identity_keyframes=0,
                        intrinsics=intr, settings=st)  # fmt: skip
    back = FaceTrack.load(track.save(tmp_path / "t2.npz"))
    assert back.eyes is not None and back.eyes.method == "camera"
    np.testing.assert_allclose(back.eyes.centres, _centres(model) + OFFSETS, atol=0.0012)
    assert "eyes: calibration camera" in back.summary()
