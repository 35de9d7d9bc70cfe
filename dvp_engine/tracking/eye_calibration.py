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
start is rejected as a failed assumption). When too few frames have pupils, or the check fails, the
calibration falls back to the start centres (method ``openings``; the face model's fixed centres, ``model``,
when no start is given) and says why (:attr:`~dvp_engine.core.gaze.EyeCalibration.note`).

:func:`calibrate_eyes_in_order` tries assumptions in turn (the tracker's default: ``camera``, then ``forward``
for a clip where the actor does not look into the lens). Falling back to the model's *fixed* centres instead of
the openings' would be wrong for most actors: an identity that moves the eye openings by 2-3 mm leaves the
pupils 2-3 mm from the fixed centres' straight-ahead point, a gaze of 10-15 degrees per eye (a squint of up to
45 degrees measured on real clips).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from dvp_engine.core import layout
from dvp_engine.core.gaze import EyeCalibration, look_at_angles

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
        or, with a note saying why, method ``openings`` (the ``start`` centres) or ``model`` (the model's
        centres, when no ``start`` is given).
    """
    return calibrate_eyes_in_order(
        (method,), model_centres, radius, rotations, translations, pupils, weights, intrinsics,
        binocular=False, min_frames=min_frames, min_weight=min_weight, min_inliers=min_inliers,
        inlier_deg=inlier_deg, prior=prior, max_offset=max_offset, start=start,
    )  # fmt: skip


@dataclass(frozen=True)
class _Failed:
    """Why an assumption gave no estimate: ``reason`` (for the note), the pupil frames it had, and whether
    there were too few pupils (then no other assumption can do better)."""

    reason: str
    frames: int
    too_few: bool = False


def _estimate(
    method: str,
    c_model: F64,
    c_start: F64,
    radius: float,
    rot: F64,
    trans: F64,
    pup: F64,
    wts: F64,
    intrinsics: tuple[float, float, float, float],
    *,
    min_frames: int,
    min_weight: float,
    min_inliers: float,
    inlier_deg: float,
    prior: float,
    max_offset: float,
) -> EyeCalibration | _Failed:
    """One assumption's estimate of both centres (arguments as :func:`calibrate_eyes`, arrays converted)."""
    offsets = np.zeros((2, 3))
    used = []
    names = ("left", "right")
    for e in range(2):
        ok = (wts[:, e] >= min_weight) & np.all(np.isfinite(pup[:, e]), axis=1)
        count = int(ok.sum())
        if count < min_frames:
            return _Failed(
                f"too few frames with a {names[e]} pupil to calibrate the eyes ({count}, need {min_frames})",
                count,
                too_few=True,
            )
        delta, err = _fit_eye(
            c_start[e], float(radius), rot[ok], trans[ok], pup[ok, e], wts[ok, e], intrinsics, method, prior
        )
        share = float(np.mean(err <= inlier_deg))
        if share < min_inliers:
            what = "into the lens" if method == "camera" else "along the face's forward axis"
            return _Failed(
                f"the {names[e]} eye looks {what} in only {share:.0%} of {count} frames (need "
                f"{min_inliers:.0%}): the assumption of the '{method}' calibration does not hold",
                count,
            )
        if float(np.linalg.norm(delta)) > max_offset:
            return _Failed(
                f"the {names[e]} eyeball centre came out {np.linalg.norm(delta) * 1000:.1f} mm from behind its "
                f"eye opening under the '{method}' assumption (over {max_offset * 1000:.0f} mm is not plausible "
                "for an adult)",
                count,
            )
        offsets[e] = c_start[e] + delta - c_model[e]
        used.append(int(np.sum(err <= inlier_deg)))
    return EyeCalibration(c_model + offsets, float(radius), method, min(used), "", offsets)


def sphere_gaze(
    centre: F64,
    radius: float,
    rotations: F64,
    translations: F64,
    pupils: F64,
    intrinsics: tuple[float, float, float, float],
) -> F64:
    """Gaze ``(F, 2)`` (yaw, pitch degrees, head frame) of one eye whose centre is ``centre`` (model frame,
    metres): the camera ray through each pupil pixel meets the eyeball sphere (the point nearest the sphere
    where it passes by), and the gaze is the direction from the centre to that point. ``rotations`` ``(F, 3,
    3)``, ``translations`` ``(F, 3)``, ``pupils`` ``(F, 2)`` pixels. Same convention as
    :func:`~dvp_engine.core.layout.gaze_direction`."""
    fx, fy, cx, cy = intrinsics
    ray = np.stack([(pupils[:, 0] - cx) / fx, (pupils[:, 1] - cy) / fy, np.ones(len(pupils))], axis=1)
    ray /= np.linalg.norm(ray, axis=1, keepdims=True)
    c = np.einsum("fij,j->fi", rotations, centre) + translations
    along = np.sum(ray * c, axis=1)
    disc = along**2 - (np.sum(c * c, axis=1) - radius**2)
    t = along - np.sqrt(np.maximum(disc, 0.0))
    d_cam = ray * t[:, None] - c
    d = np.einsum("fji,fj->fi", rotations, d_cam)  # R^T: head frame
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return layout.gaze_angles(d)


def binocular_centres(
    centres: npt.ArrayLike,
    radius: float,
    rotations: npt.ArrayLike,
    translations: npt.ArrayLike,
    pupils: npt.ArrayLike,
    weights: npt.ArrayLike,
    intrinsics: tuple[float, float, float, float],
    *,
    min_weight: float = 0.2,
    min_frames: int = 30,
    max_offset: float = 0.006,
) -> tuple[F64, str]:
    """Centres ``(2, 3)`` moved apart/together and up/down in opposite directions so that the two eyes'
    gaze rays meet, whatever the actor looks at; and a note (empty on success).

    Both eyes fixate one point: their gaze differs by the vergence of that point (a few degrees at
    conversational distances) and not in pitch. Where the actor looks is unknown, so the median vergence is set
    to that of the lens (a target at the camera's distance, where these clips' actors mostly look around) and
    the median pitch difference to the lens' (about 0). Only the eyes' relative position is estimated: the
    common offset (both eyes moved together) stays at ``centres`` (the eye openings'). Sizes: moving the centres
    ``s`` apart changes the vergence by ``2 s / radius`` radians.

    Args:
        centres: ``(2, 3)`` start centres (actor's left, right), model frame, metres.
        radius, rotations, translations, pupils, weights, intrinsics: as :func:`calibrate_eyes`.
        min_weight: pupils of lower confidence are not used; frames need both pupils.
        min_frames: fewest frames with both pupils.
        max_offset: largest plausible move of each centre (metres); a larger one keeps ``centres``.
    """
    c = np.asarray(centres, np.float64).reshape(2, 3).copy()
    rot = np.asarray(rotations, np.float64).reshape(-1, 3, 3)
    trans = np.asarray(translations, np.float64).reshape(-1, 3)
    pup = np.asarray(pupils, np.float64).reshape(-1, 2, 2)
    w = np.nan_to_num(np.asarray(weights, np.float64).reshape(-1, 2))
    ok = np.all(w >= min_weight, axis=1) & np.all(np.isfinite(pup), axis=(1, 2))
    if int(ok.sum()) < min_frames:
        return (
            c,
            f"too few frames with both pupils to set the eyes' separation ({int(ok.sum())}, need {min_frames})",
        )
    rot, trans, pup = rot[ok], trans[ok], pup[ok]
    start = c.copy()
    for _ in range(6):
        lens = look_at_angles(rot, trans, c, np.zeros(3))
        g = [sphere_gaze(c[e], radius, rot, trans, pup[:, e], intrinsics) for e in range(2)]
        verg_err = math.radians(float(np.median((g[1][:, 0] - g[0][:, 0]) - (lens[:, 2] - lens[:, 0]))))
        pitch_err = math.radians(float(np.median((g[0][:, 1] - g[1][:, 1]) - (lens[:, 1] - lens[:, 3]))))
        shift = np.array([-verg_err * radius / 2.0, pitch_err * radius / 2.0, 0.0])
        c[0] += shift
        c[1] -= shift
        if abs(verg_err) < 1e-4 and abs(pitch_err) < 1e-4:
            break
    moved = float(np.abs(c - start).max())
    if moved > max_offset:
        return start, (
            f"the eyes' separation came out {moved * 1000:.1f} mm from the eye openings' (over "
            f"{max_offset * 1000:.0f} mm is not plausible)"
        )
    return c, ""


def calibrate_eyes_in_order(
    methods: Sequence[str],
    model_centres: npt.ArrayLike,
    radius: float,
    rotations: npt.ArrayLike,
    translations: npt.ArrayLike,
    pupils: npt.ArrayLike,
    weights: npt.ArrayLike,
    intrinsics: tuple[float, float, float, float],
    *,
    binocular: bool = True,
    min_frames: int = 30,
    min_weight: float = 0.2,
    min_inliers: float = 0.4,
    inlier_deg: float = 6.0,
    prior: float = 0.004,
    max_offset: float = 0.006,
    start: npt.ArrayLike | None = None,
) -> EyeCalibration:
    """:func:`calibrate_eyes` with each assumption of ``methods`` in turn; the first that holds is returned.

    When none holds, the eye openings' centres (``start``) are returned, with their separation set by
    :func:`binocular_centres` (method ``binocular``) unless ``binocular`` is False or that fails (method
    ``openings``; ``model``, the model's centres, without a ``start``), and a note naming every assumption
    tried and why it failed. Too few pupils end the search at once (every assumption needs the same pupils).

    Args:
        methods: e.g. ``("camera", "forward")``.
        binocular: set the separation of the fallback centres from the pupils.
        model_centres ... intrinsics, the rest: as :func:`calibrate_eyes`.
    """
    if not methods:
        raise ValueError("calibrate_eyes_in_order needs at least one method")
    for m in methods:
        if m not in ("camera", "forward"):
            raise ValueError(f"eye calibration method must be 'camera' or 'forward', got {m!r}")
    c_model = np.asarray(model_centres, np.float64).reshape(2, 3)
    rot = np.asarray(rotations, np.float64).reshape(-1, 3, 3)
    trans = np.asarray(translations, np.float64).reshape(-1, 3)
    pup = np.asarray(pupils, np.float64).reshape(-1, 2, 2)
    wts = np.clip(np.nan_to_num(np.asarray(weights, np.float64).reshape(-1, 2)), 0.0, 1.0)
    c_start = c_model if start is None else np.asarray(start, np.float64).reshape(2, 3)
    reasons: list[str] = []
    used = 0
    for m in methods:
        got = _estimate(m, c_model, c_start, radius, rot, trans, pup, wts, intrinsics, min_frames=min_frames,
                        min_weight=min_weight, min_inliers=min_inliers, inlier_deg=inlier_deg, prior=prior,
                        max_offset=max_offset)  # fmt: skip
        if isinstance(got, EyeCalibration):
            return replace(got, note="; ".join([*reasons, f"the '{m}' assumption holds"])) if reasons else got
        reasons.append(got.reason)
        used = got.frames
        if got.too_few:
            break
    else:
        if binocular and start is not None:
            centres, why = binocular_centres(c_start, radius, rot, trans, pup, wts, intrinsics,
                                             min_weight=min_weight, min_frames=min_frames,
                                             max_offset=max_offset)  # fmt: skip
            if not why:
                note = "; ".join([*reasons, "the face model's eyeball centres follow the fitted face's eye "
                                  "openings, set apart so that the eyes' gaze rays meet (vergence of the lens' "
                                  "distance)"])  # fmt: skip
                return EyeCalibration(centres, float(radius), "binocular", used, note, centres - c_model)
            reasons.append(why)
    if start is None:
        note = "; ".join([*reasons, "the face model's eyeball centres are used"])
        return EyeCalibration(c_model, float(radius), "model", used, note, np.zeros((2, 3)))
    note = "; ".join(
        [*reasons, "the face model's eyeball centres, moved with the fitted face's eye openings, are used"]
    )
    return EyeCalibration(c_start, float(radius), "openings", used, note, c_start - c_model)


def calibration_inputs(params: npt.ArrayLike, valid: npt.ArrayLike) -> tuple[F64, F64, npt.NDArray[Any]]:
    """Rotations ``(V, 3, 3)``, translations ``(V, 3)`` and the row indices of the valid frames of packed
    FaceTrack parameters ``(F, FRAME_SIZE)``."""
    from dvp_engine.core.rotation import euler_to_matrix

    p = np.asarray(params, np.float64)
    rows = np.flatnonzero(np.asarray(valid, bool))
    rot = euler_to_matrix(p[rows, layout.FRAME_LAYOUT["rotation"]], degrees=False)
    return rot, p[rows, layout.FRAME_LAYOUT["translation"]], rows
