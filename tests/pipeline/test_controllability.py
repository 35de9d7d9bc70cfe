"""Controllability: re-tracking renders with known parameters recovers them (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest

from dvp_engine.core import layout
from dvp_engine.pipeline.controllability import control_errors, face_width_m, retrack_images
from dvp_engine.tracking.tracker import FrameObservation


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    from dvp_engine.facemodel import load_default_model

    return load_default_model()


def test_identical_parameters_have_zero_error(model) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    p = rng.normal(size=(4, layout.FRAME_SIZE)) * 0.1
    p[:, layout.FRAME_LAYOUT["translation"]] = [0.0, 0.0, 0.7]
    e = control_errors(p, p, np.ones(4, bool), model, np.zeros(80))
    assert e["frames"] == 4 and e["no_face"] == 0
    for k in ("rotation_deg", "translation_pct", "depth_pct", "expression_rms", "gaze_left_deg", "gaze_right_deg",
              "blink_left", "blink_right"):  # fmt: skip
        assert e[k] == pytest.approx(0.0, abs=1e-5), k
    assert max(e["controls"].values()) == pytest.approx(0.0, abs=1e-6)
    assert max(e["rotation_axes_deg"].values()) == 0.0


def test_known_offsets_are_measured_in_their_units(model) -> None:  # type: ignore[no-untyped-def]
    p = np.zeros((2, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"]] = [0.0, 0.0, 0.7]
    q = p.copy()
    q[:, 1] += np.deg2rad(5.0)  # head.ry + 5 degrees
    width = face_width_m(model, np.zeros(80))
    assert 0.1 < width < 0.2  # a human face, jaw to jaw
    q[:, 3] += 0.1 * width  # 10 % of the face width to the right
    g = layout.FRAME_LAYOUT["gaze"]
    q[:, g.start] += np.deg2rad(8.0)  # left eye yaw
    q[:, layout.FRAME_LAYOUT["blink"].start + 1] = 0.5
    e = control_errors(p, q, [True, False], model, np.zeros(80), frames=[10, 11])
    assert e["no_face"] == 1 and e["no_face_frames"] == [11]
    assert e["rotation_deg"] == pytest.approx(5.0, abs=1e-6)
    assert e["rotation_axes_deg"]["head.ry"] == pytest.approx(5.0, abs=1e-6)
    assert e["translation_pct"] == pytest.approx(10.0, abs=1e-6)
    assert e["gaze_left_deg"] == pytest.approx(8.0, abs=1e-6) and e["gaze_right_deg"] == 0.0
    assert e["blink_right"] == pytest.approx(0.5) and e["blink_left"] == 0.0
    none = control_errors(p, q, [False, False], model, np.zeros(80))
    assert none["no_face"] == 2 and none["rotation_deg"] is None


def test_renders_with_known_parameters_retrack_to_them(model) -> None:  # type: ignore[no-untyped-def]
    """Renders of the face model over a textured background (known landmarks and pupils, as a landmark source
    would report them) re-track, identity fixed, to the parameters they were made with."""
    from dvp_engine.tracking.synthetic import synthetic_scene

    size = 256
    packed, images, obs, intr = synthetic_scene(model, 3, size, seed=7)
    obs = [*obs, FrameObservation(None, 0.0, message="no face found")]  # a frame with no face
    images = [*images, images[-1]]
    res = retrack_images(images, intr, np.zeros(80), np.zeros(80), model=model, observations=obs)
    assert res.valid.tolist() == [True, True, True, False]
    asked = np.concatenate([packed, packed[-1:]])
    e = control_errors(asked, res.params, res.valid, model, np.zeros(80))
    assert e["no_face"] == 1 and e["no_face_frames"] == [3]
    # stated tolerances: 1 degree of head rotation, 1 % of the face width, 2 degrees of gaze, 0.15 of a blink
    assert e["rotation_deg"] < 1.0, e
    assert e["translation_pct"] < 1.0 and e["depth_pct"] < 3.0, e
    assert e["gaze_left_deg"] < 2.0 and e["gaze_right_deg"] < 2.0, e
    assert e["blink_left"] < 0.15 and e["blink_right"] < 0.15, e
    assert e["expression_rms"] < 0.5, e  # in standard deviations of the model's expression coefficients


def test_a_frame_without_a_face_is_counted_not_a_crash(model) -> None:  # type: ignore[no-untyped-def]
    """The real landmark source on frames with no face: the frames are reported lost."""
    pytest.importorskip("dlib")
    flat = [np.full((128, 128, 3), 128, np.uint8) for _ in range(2)]
    res = retrack_images(flat, (256.0, 256.0, 63.5, 63.5), np.zeros(80), np.zeros(80), model=model)
    assert not res.valid.any() and len(res.messages) == 2
    e = control_errors(np.zeros((2, layout.FRAME_SIZE)), res.params, res.valid, model, np.zeros(80))
    assert e["no_face"] == 2
