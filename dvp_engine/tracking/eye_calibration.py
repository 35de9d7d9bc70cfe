"""Per-actor eye calibration: the eyeball centres relative to the fitted face, from a clip's pupils.

What a clip can tell: a detected pupil is one ray from the camera; the pupil lies on the eyeball sphere
(centre ``c``, radius ``r``) where that ray meets it, at ``c + r d(gaze)``. Any centre near the ray explains
the pupil with *some* gaze, so pupils alone never pin the centre: every frame adds two gaze unknowns for its two
observations. An assumption about where the actor looks is needed, and it is what the estimate stands on:

* ``camera`` (default): the actor looks into the lens in most frames (a presenter, a teleprompter read, an
  interview answered to camera). The eye then points from its centre to the camera, so the pupil projects onto
  the same pixel as the eyeball centre: each frame with a pupil gives two linear constraints on the centre, and
  the changing head pose over the clip (the camera seen from different directions in the head frame) constrains
  all three coordinates, the depth least (a weak prior holds it). Frames where the actor looks away are
  outliers: the fit is robust (Cauchy weights on the gaze residual, scale 4 degrees after a wider start), and a
  clip where fewer than ``min_inliers`` of the frames agree with the lens is not calibrated.
* ``forward``: the eyes point, on average, along the face's forward axis (eye-in-head orientation centred, true
  of footage where people turn their heads toward what they look at): the same robust fit with the pupil at
  ``c + r (0, 0, -1)``.

The estimate starts from the model's centres moved with the fitted face's eye openings (the eyeball sits
behind its opening; the tracker passes these as ``start``) and a weak prior pulls it there. It is then checked
for plausibility (adult eyeball positions vary by a few millimetres: an offset over ``max_offset`` from the
start is rejected as a failed assumption). When too few frames have pupils,
or the check fails, the calibration falls back to the face model's centres and says why
(:attr:`~dvp_engine.core.gaze.EyeCalibration.note`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from dvp_engine.core.gaze import EyeCalibration

F64 = npt.NDArray[np.float64]


def _project(x: F64, intr: tuple[float, float, float, float]) -> tuple[F64, F64]:
    """Pixels ``(..., 2)`` and the projection Jacobian ``(..., 2, 3)`` of camera points ``(..., 3)``."""
    fx, fy, cx, cy = intr
    z = np.maximum(x[..., 2], 1e-6)
    pix = np.stack([fx * x[..., 0] / z + cx, fy * x[..., 1] / z + cy], axis=-1)
    jac = np.zeros(x.shape[:-1] + (2, 3))
    jac[..., 0, 0] = fx / z
    jac[..., 0, 2] = -fx * x[..., 0] / z**2
    jac[..., 1, 1] = fy / z
    jac[..., 1, 2] = -fy * x[..., 1] / z**2
    return pix, jac


def _fit_eye(
    c0: F64,
    radius: float,
    rot: F64,
    trans: F64,
    pupils: F64,
    weights: F64,
    intr: tuple[float, float, float, float],
    method: str,
    prior: float,
) -> tuple[F64, F64]:
    """Robust Gauss-Newton for one eye's centre offset (metres); returns ``(offset (3,), residual deg (F,))``."""
    delta = np.zeros(3)
    fwd = np.array([0.0, 0.0, -1.0])
    fx, fy = intr[0], intr[1]
    err = np.zeros(len(pupils))
    for scale_deg in (15.0, 8.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0):
        centre = np.einsum("fij,j->fi", rot, c0 + delta) + trans  # (F, 3) camera frame
        if method == "camera":  # pupil on the line from the centre to the camera: projects onto the centre
            dist = np.linalg.norm(centre, axis=1, keepdims=True)
            point = centre * (1.0 - radius / np.maximum(dist, 1e-6))
        else:
            point = np.einsum("fij,j->fi", rot, c0 + delta + radius * fwd) + trans
        pix, jp = _project(point, intr)
        jac = jp @ rot  # (F, 2, 3): d pixel / d offset (the camera case's radius term is negligible: r / z)
        # pixels per radian of gaze at this depth: residuals and Jacobians in gaze units (radians)
        s = (math.sqrt(fx * fy) * radius / np.maximum(point[:, 2], 1e-6))[:, None]
        res = (pix - pupils) / s
        jn = jac / s[..., None]
        err = np.degrees(np.linalg.norm(res, axis=1))
        sig = math.radians(scale_deg)
        w = weights / (1.0 + (np.linalg.norm(res, axis=1) / sig) ** 2)
        a = np.einsum("f,fki,fkj->ij", w, jn, jn) / sig**2 + np.eye(3) / prior**2
        g = np.einsum("f,fki,fk->i", w, jn, res) / sig**2 + delta / prior**2
        delta = delta - np.linalg.solve(a, g)
    return delta, err


def calibrate_eyes(
    model_centres: npt.ArrayLike,
    radius: float,
    rotations: npt.ArrayLike,
    translations: npt.ArrayLike,
    pupils: npt.ArrayLike,
    weights: npt.ArrayLike,
    intrinsics: tuple[float, float, float, float],
    *,
    method: str = "camera",
    min_frames: int = 30,
    min_weight: float = 0.2,
    min_inliers: float = 0.4,
    inlier_deg: float = 6.0,
    prior: float = 0.004,
    max_offset: float = 0.006,
    start: npt.ArrayLike | None = None,
) -> EyeCalibration:
    """Estimate the actor's eyeball centres from tracked head poses and detected pupils (module docstring).

    Args:
        model_centres: ``(2, 3)`` the face model's centres (actor's left, right), model frame, metres.
        radius: eyeball radius, metres (kept: the radius and the centre's depth trade off against each other).
        rotations: ``(F, 3, 3)`` head rotations (model -> camera) of the frames to use (tracked frames).
        translations: ``(F, 3)`` head translations, metres.
        pupils: ``(F, 2, 2)`` pupil pixels (actor's left, right; NaN where none).
        weights: ``(F, 2)`` pupil confidences in [0, 1]; frames under ``min_weight`` are not used.
        intrinsics: ``(fx, fy, cx, cy)`` pixels.
        method: ``camera`` or ``forward`` (the assumption, see the module docstring).
        min_frames: fewest frames with a pupil per eye for an estimate.
        min_inliers: fewest share of those frames within ``inlier_deg`` of the assumption.
        prior: standard deviation (metres) of the Gaussian prior pulling the offset toward the model's centres.
        max_offset: largest plausible offset (metres) from ``start``.
        start: ``(2, 3)`` centres the estimate starts from and its prior pulls toward (the tracker passes the
            model's centres moved with the fitted face's eye openings); default ``model_centres``.

    Returns:
        :class:`~dvp_engine.core.gaze.EyeCalibration`: method ``camera``/``forward`` with the estimated centres,
        or method ``model`` (the model's centres) with a note saying why.
    """
    if method not in ("camera", "forward"):
        raise ValueError(f"eye calibration method must be 'camera' or 'forward', got {method!r}")
    c_model = np.asarray(model_centres, np.float64).reshape(2, 3)
    rot = np.asarray(rotations, np.float64).reshape(-1, 3, 3)
    trans = np.asarray(translations, np.float64).reshape(-1, 3)
    pup = np.asarray(pupils, np.float64).reshape(-1, 2, 2)
    wts = np.clip(np.nan_to_num(np.asarray(weights, np.float64).reshape(-1, 2)), 0.0, 1.0)
    c_start = c_model if start is None else np.asarray(start, np.float64).reshape(2, 3)

    def fallback(note: str, used: int = 0) -> EyeCalibration:
        return EyeCalibration(c_model, float(radius), "model", used, note, np.zeros((2, 3)))

    offsets = np.zeros((2, 3))
    used = []
    names = ("left", "right")
    for e in range(2):
        ok = (wts[:, e] >= min_weight) & np.all(np.isfinite(pup[:, e]), axis=1)
        count = int(ok.sum())
        if count < min_frames:
            return fallback(
                f"too few frames with a {names[e]} pupil to calibrate the eyes ({count}, need {min_frames}): "
                "the face model's eyeball centres are used",
                count,
            )
        delta, err = _fit_eye(
            c_start[e], float(radius), rot[ok], trans[ok], pup[ok, e], wts[ok, e], intrinsics, method, prior
        )
        share = float(np.mean(err <= inlier_deg))
        if share < min_inliers:
            what = "into the lens" if method == "camera" else "along the face's forward axis"
            return fallback(
                f"the {names[e]} eye looks {what} in only {share:.0%} of {count} frames (need "
                f"{min_inliers:.0%}): the assumption of the '{method}' calibration does not hold; the face "
                "model's eyeball centres are used",
                count,
            )
        if float(np.linalg.norm(delta)) > max_offset:
            return fallback(
                f"the {names[e]} eyeball centre came out {np.linalg.norm(delta) * 1000:.1f} mm from behind its "
                f"eye opening (over {max_offset * 1000:.0f} mm is not plausible for an adult): the face model's "
                "eyeball centres are used",
                count,
            )
        offsets[e] = c_start[e] + delta - c_model[e]
        used.append(int(np.sum(err <= inlier_deg)))
    return EyeCalibration(c_model + offsets, float(radius), method, min(used), "", offsets)


def calibration_inputs(params: npt.ArrayLike, valid: npt.ArrayLike) -> tuple[F64, F64, npt.NDArray[Any]]:
    """Rotations ``(V, 3, 3)``, translations ``(V, 3)`` and the row indices of the valid frames of packed
    FaceTrack parameters ``(F, FRAME_SIZE)``."""
    from dvp_engine.core import layout
    from dvp_engine.core.rotation import euler_to_matrix

    p = np.asarray(params, np.float64)
    rows = np.flatnonzero(np.asarray(valid, bool))
    rot = euler_to_matrix(p[rows, layout.FRAME_LAYOUT["rotation"]], degrees=False)
    return rot, p[rows, layout.FRAME_LAYOUT["translation"]], rows
