"""The eye-gaze image with eye calibration and look-at: old tracks render as before, pupils go where seen."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.errors import InputError
from dvp_engine.core.gaze import EyeCalibration
from dvp_engine.core.rotation import euler_to_matrix
from dvp_engine.facemodel import load_default_model
from dvp_engine.render.camera import Camera
from dvp_engine.render.conditioning import ConditioningRenderer, track_render_inputs

from .test_conditioning import CAMERA, GOLDEN, GOLDEN_SIZE, _eye_stats, _golden_params, _params

L = layout.FRAME_LAYOUT


def _track(params: np.ndarray, eyes: EyeCalibration | None = None) -> FaceTrack:
    return FaceTrack.from_params(
        np.arange(1, len(params) + 1), params, rate=Fraction(25), width=512, height=512,
        intrinsics=CAMERA.intrinsics, eyes=eyes,
    )  # fmt: skip


def test_an_old_track_without_calibration_renders_the_golden_images(tmp_path: Path) -> None:
    path = _track(_golden_params()).save(tmp_path / "t.npz")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["header"].tobytes())
    header["schema"] = "FaceTrack.1"  # as written before eye calibration existed
    del header["eyes"]
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    track = FaceTrack.load(tmp_path / "old.npz")
    assert track.eyes is None
    model = load_default_model()
    params, centres = track_render_inputs(track, model)
    assert centres is None
    res = ConditioningRenderer(model).render(params, track.identity, track.reflectance, CAMERA, GOLDEN_SIZE,
                                             eye_centres=centres)  # fmt: skip
    with np.load(GOLDEN, allow_pickle=False) as z:
        golden = z["images"].astype(np.float32) / 255.0
    diff = np.abs(res.images.numpy() - golden)
    assert (diff.max(axis=1) > 8 / 255).mean() < 0.005 and diff.mean() < 1.5 / 255


def _pupil_px(rot: np.ndarray, t: np.ndarray, centre: np.ndarray, d: np.ndarray, r: float, cam: Camera):
    p = rot @ (centre + r * d) + t
    return np.array([cam.fx * p[0] / p[2] + cam.cx, cam.fy * p[1] / p[2] + cam.cy])


def test_calibrated_centres_put_the_rendered_pupil_where_it_was_seen() -> None:
    # a tracked pupil, solved against calibrated centres, renders where it was detected
    from dvp_engine.tracking import solver as S

    model = load_default_model()
    centres = np.stack([model.eyeball_left_center, model.eyeball_right_center]) + [[0.002, 0.0015, 0.0]] * 2
    p = _params()
    p[0, L["rotation"]] = np.deg2rad([3.0, -8.0, 0.0])
    rot = euler_to_matrix(p[0, L["rotation"]], degrees=False)
    truth = [(6.0, -4.0), (9.0, -3.0)]
    seen = np.array([[
        _pupil_px(rot, p[0, L["translation"]], centres[e], layout.gaze_direction(*truth[e]),
                  float(model.eyeball_radius), CAMERA)
        for e in range(2)
    ]])  # fmt: skip  # the detected pupils (512 px)
    m = S.prepare_model(model, np, S.SolverSettings())
    local = np.zeros((1, S.N_LOCAL))
    local[:, S.ROT] = p[:, L["rotation"]]
    local[:, S.TRANS] = p[:, L["translation"]]
    gaze = S.solve_gaze(
        m, local, seen, np.ones((1, 2)), CAMERA.intrinsics, centres=centres[None], iterations=12
    )
    p[0, L["gaze"]] = gaze[0]
    track = _track(p, EyeCalibration(centres, float(model.eyeball_radius), "camera", 50))
    params, c = track_render_inputs(track, model)
    res = ConditioningRenderer(model).render(params, np.zeros(80), np.zeros(80), CAMERA, 512, eye_centres=c)
    stats = _eye_stats(res.images[0].numpy())
    for e, eye in enumerate(("left", "right")):
        assert abs(stats[eye][2] - seen[0, e, 0]) < 0.75, (eye, stats[eye], seen[0, e])
    # the model's centres would put them elsewhere (the calibration matters)
    res0 = ConditioningRenderer(model).render(params, np.zeros(80), np.zeros(80), CAMERA, 512)
    stats0 = _eye_stats(res0.images[0].numpy())
    assert abs(stats0["left"][2] - seen[0, 0, 0]) > 2.0


def test_a_look_at_target_puts_both_pupils_on_the_rays_to_it() -> None:
    model = load_default_model()
    centres = np.stack([model.eyeball_left_center, model.eyeball_right_center]).astype(np.float64)
    p = _params(2)
    p[:, L["rotation"]] = np.deg2rad([[2.0, 3.0, 0.0], [-3.0, -3.0, 2.0]])
    track = _track(
        p, EyeCalibration(centres + [[0.001, 0.0, 0.0]] * 2, float(model.eyeball_radius), "camera", 50)
    )
    target = np.array([[0.08, -0.03, -0.3], [-0.06, 0.05, 0.2]])  # behind the lens, and nearer than the head
    for j, name in enumerate(layout.LOOK_AT[:3]):
        track.channels[name] = target[:, j].astype(np.float32)
    track.channels["look.weight"] = np.ones(2, np.float32)
    params, c = track_render_inputs(track, model)
    assert c is not None
    res = ConditioningRenderer(model).render(params, np.zeros(80), np.zeros(80), CAMERA, 512, eye_centres=c)
    r = float(model.eyeball_radius)
    for f in range(2):
        rot = euler_to_matrix(p[f, L["rotation"]], degrees=False)
        t = p[f, L["translation"]]
        stats = _eye_stats(res.images[f].numpy())
        for e, eye in enumerate(("left", "right")):
            eye_cam = rot @ c[e] + t
            ray = (target[f] - eye_cam) / np.linalg.norm(target[f] - eye_cam)  # the ray from the eyeball
            want = _pupil_px(np.eye(3), np.zeros(3), eye_cam, ray, r, CAMERA)
            assert abs(stats[eye][2] - want[0]) < 0.75, (f, eye, stats[eye], want)
    # the two eyes converge: their yaw differs (vergence) toward a near target
    gaze = np.rad2deg(params[:, L["gaze"]])
    assert np.all(gaze[:, 0] < gaze[:, 2])
    # a target behind the head: a clear error naming the frame
    track.channels["look.z"][1] = 2.0
    with pytest.raises(InputError, match="frame 2: .*behind the face"):
        track_render_inputs(track, model)
