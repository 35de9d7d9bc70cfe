"""Synthetic tracking scenes: the default model rendered with known parameters, for tests and benchmarks.

A scene is what a landmark source and a video would hand the tracker, made from known parameters: renders over
a textured background (so the photometric term has something to hold on to) and dlib-68 landmarks and pupils
projected from the known geometry, with a little pixel noise. Comparing the tracked parameters with the known
ones measures the tracker without footage; the GPU benchmark uses scenes where no video decoder or landmark
model is installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from dvp_engine.core import layout
from dvp_engine.core.gaze import look_at_angles
from dvp_engine.core.rotation import euler_to_matrix

from . import solver as S
from .overlay import render_params
from .tracker import FrameObservation, default_intrinsics, to_packed


def textured_background(h: int, w: int) -> npt.NDArray[np.float64]:
    """An ``(h, w, 3)`` sRGB [0, 1] pattern of sines (texture everywhere, no flat areas)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack(
        [0.5 + 0.3 * np.sin(xx / 5.0), 0.5 + 0.3 * np.cos(yy / 7.0), 0.5 + 0.2 * np.sin((xx + yy) / 9.0)], -1
    )


def synthetic_scene(
    model: Any,
    n_frames: int,
    size: int,
    seed: int,
    *,
    identity: npt.ArrayLike | None = None,
    reflectance: npt.ArrayLike | None = None,
    eye_offsets: npt.ArrayLike | None = None,
    at_camera: float = 0.0,
) -> tuple[
    npt.NDArray[np.float64],
    list[npt.NDArray[np.uint8]],
    list[FrameObservation],
    tuple[float, float, float, float],
]:
    """Known parameters, renders over a textured background, landmarks and pupils from the known projection.

    Each frame draws its own head pose (rotations within +-12 degrees, about 0.7 m from the camera), expression
    (the first 10 components at their full spread), blinks (0-0.8), gaze (+-15 degrees) and a fixed light.

    Args:
        model: a :class:`~dvp_engine.facemodel.FaceModel`.
        n_frames: frames F.
        size: square image side in pixels (default intrinsics for that size).
        seed: random seed (same seed, same scene).
        identity, reflectance: ``(80,)`` coefficients of the rendered actor (None: the mean face).
        eye_offsets: ``(2, 3)`` metres added to the model's eyeball centres (actor's left, right) for the
            pupils: an actor whose eyes sit elsewhere than the model's (the gaze returned is relative to
            these true centres).
        at_camera: share of frames (drawn at random) whose eyes look into the lens (the camera centre, with
            vergence) instead of a random gaze.

    Returns:
        ``(packed (F, 103) radians/metres, images (F of (size, size, 3) uint8 sRGB), observations,
        intrinsics (fx, fy, cx, cy) pixels)``.
    """
    rng = np.random.default_rng(seed)
    intr = default_intrinsics(size, size)
    landmarks = np.asarray(model.landmarks68)
    local = np.zeros((n_frames, S.N_LOCAL))
    local[:, S.ROT] = np.deg2rad(rng.uniform(-12, 12, (n_frames, 3)))
    local[:, S.TRANS] = np.array([0.01, -0.005, 0.7]) + rng.normal(size=(n_frames, 3)) * [0.005, 0.005, 0.02]
    local[:, S.EXPR] = (
        rng.normal(size=(n_frames, 64)) * np.asarray(model.expr_std) * np.where(np.arange(64) < 10, 1.0, 0.2)
    )
    local[:, S.BLINK] = rng.uniform(0.0, 0.8, (n_frames, 2))
    local[:, S.SH] = S.ambient_sh(np) * 0.9
    local[:, 72 + 3 : 72 + 6] = 0.15
    local[:, 72 + 9 : 72 + 12] = -0.1
    gaze = np.deg2rad(rng.uniform(-15, 15, (n_frames, 4)))
    centres = np.stack([model.eyeball_left_center, model.eyeball_right_center]).astype(np.float64)
    if eye_offsets is not None:
        centres = centres + np.asarray(eye_offsets, np.float64).reshape(2, 3)
    # (drawn only when asked for, so scenes without it keep their random numbers)
    lens = rng.uniform(size=n_frames) < at_camera if at_camera > 0 else np.zeros(n_frames, bool)
    if lens.any():
        rot_all = euler_to_matrix(local[lens][:, S.ROT], degrees=False)
        gaze[lens] = np.deg2rad(look_at_angles(rot_all, local[lens][:, S.TRANS], centres, np.zeros(3)))
    packed = to_packed(local, gaze)
    bg = textured_background(size, size)
    images: list[npt.NDArray[np.uint8]] = []
    obs: list[FrameObservation] = []
    for f in range(n_frames):
        img, pix, _ = render_params(model, packed[f], intr, bg, identity=identity, reflectance=reflectance)
        images.append((img * 255 + 0.5).astype(np.uint8))
        rot = euler_to_matrix(packed[f, :3], degrees=False)
        pupils = []
        for e, c in enumerate(centres):
            d = layout.gaze_direction(np.rad2deg(gaze[f, 2 * e]), np.rad2deg(gaze[f, 2 * e + 1]))
            p = rot @ (c + model.eyeball_radius * d) + packed[f, 3:6]
            pupils.append(S.project(p[None], intr)[0])
        lm = pix[landmarks] + rng.normal(size=(68, 2)) * 0.3
        obs.append(FrameObservation(lm, 1.0, np.array(pupils) + rng.normal(size=(2, 2)) * 0.05, np.ones(2)))
    return packed, images, obs, intr
