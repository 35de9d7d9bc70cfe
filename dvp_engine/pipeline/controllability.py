"""Controllability: does a rendered frame show the head pose, expression, gaze and blinks that were asked for?

The frames are re-tracked with our own tracker (dlib landmarks, pupils, the Gauss-Newton fit) with the identity and
reflectance held at the target actor's (so only the per-frame parameters are solved), and the recovered
parameters are compared with the asked ones (:func:`control_errors`):

* ``rotation_deg``: geodesic angle of ``R_asked^T R_got`` (degrees), and ``rotation_axes_deg`` the mean absolute
  Euler differences per channel (``head.rx``, ``head.ry``, ``head.rz``);
* ``translation_pct``: image-plane (x, y) translation error in % of the actor's face width (jaw end to jaw end of
  the identity mesh, iBUG landmarks 0 and 16), ``depth_pct`` the z error in the same unit;
* ``expression_rms``: RMS over the 64 expression coefficients of the difference, in units of each coefficient's
  standard deviation in the face model; ``controls``: mean absolute difference per named control
  (``face.smile`` ...; :meth:`~dvp_engine.facemodel.FaceModel.expression_to_controls`);
* ``gaze_left_deg`` / ``gaze_right_deg``: angle between asked and recovered gaze directions per eye;
* ``blink_left`` / ``blink_right``: mean absolute eyelid-closure difference (0 open .. 1 closed).

All are means over the frames in which the re-tracker found the face; ``no_face`` counts (and
``no_face_frames`` lists) the others, which are not scored. Re-tracking the ground-truth frames gives the
re-tracker's own floor (what a perfect render would score).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dvp_engine.core import layout
from dvp_engine.core.rotation import euler_to_matrix

__all__ = ["Retrack", "control_errors", "face_width_m", "retrack_images", "upscale_frames"]


@dataclass
class Retrack:
    """What the re-tracker recovered.

    Attributes:
        params: ``(N, FRAME_SIZE)`` packed parameters (radians, metres; held from a neighbour where not valid).
        valid: ``(N,)`` the face was found and fitted.
        messages: ``{row: why the face was not found}``.
    """

    params: npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_]
    messages: dict[int, str] = field(default_factory=dict)


def upscale_frames(frames: Any, side: int) -> npt.NDArray[np.uint8]:
    """``(N, 3, S, S)`` float sRGB [0, 1] torch frames -> ``(N, side, side, 3)`` uint8 (bicubic, clamped)."""
    import torch
    import torch.nn.functional as F

    t = frames.detach().float().cpu()
    if t.shape[-1] != side or t.shape[-2] != side:
        t = F.interpolate(t, size=(side, side), mode="bicubic", align_corners=False)
    out: npt.NDArray[np.uint8] = (t.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(out)


def retrack_images(
    images: Sequence[npt.NDArray[np.uint8]] | npt.NDArray[np.uint8],
    intrinsics: tuple[float, float, float, float],
    identity: npt.ArrayLike,
    reflectance: npt.ArrayLike,
    *,
    model: Any = None,
    observations: Sequence[Any] | None = None,
    landmark_source: Any = None,
    device: str = "cpu",
) -> Retrack:
    """Track ``images`` with the identity fixed (tracking mode only).

    Args:
        images: ``(N, H, W, 3)`` uint8 sRGB frames, consecutive (the tracker warm-starts frame to frame).
        intrinsics: ``(fx, fy, cx, cy)`` of those images in pixels.
        identity, reflectance: ``(80,)`` the actor's coefficients (e.g. ``track.identity``).
        model: the face model (default: the shipped one).
        observations: per-frame :class:`~dvp_engine.tracking.tracker.FrameObservation` to use instead of
            running a landmark source (tests with known landmarks).
        landmark_source: a landmark source (default: a fresh dlib tracker with pupils).
        device: ``cpu`` or ``cuda``.
    """
    from dvp_engine.tracking.pipeline import as_landmark_source
    from dvp_engine.tracking.tracker import FrameObservation, Tracker, TrackerSettings

    if model is None:
        from dvp_engine.facemodel import load_default_model

        model = load_default_model()
    imgs = [np.asarray(i) for i in images]
    if not imgs:
        raise ValueError("no frames to re-track")
    h, w = imgs[0].shape[:2]
    if observations is None:
        src = as_landmark_source(landmark_source)
        obs: list[FrameObservation] = []
        for img in imgs:
            try:
                obs.append(src(img))
            except Exception as exc:  # a frame the landmark source chokes on is a lost frame, not a crash
                obs.append(FrameObservation(None, 0.0, message=f"landmark detection failed ({exc})"))
    else:
        obs = list(observations)
    tracker = Tracker(model, w, h, TrackerSettings(identity_keyframes=0, device=device), intrinsics)
    tracker.set_identity(identity, reflectance)
    res = tracker.track(imgs, obs)
    return Retrack(res.params, res.valid.copy(), dict(res.messages))


def face_width_m(model: Any, identity: npt.ArrayLike) -> float:
    """Jaw-to-jaw width (iBUG landmarks 0 and 16) of the neutral face of ``identity``, metres."""
    lm = np.asarray(model.landmarks68, np.int64)
    v = np.asarray(model.vertices(np.asarray(identity, np.float64)), np.float64).reshape(-1, 3)
    return float(np.linalg.norm(v[lm[0]] - v[lm[16]]))


def _geodesic_deg(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    r = euler_to_matrix(a, degrees=False).T @ euler_to_matrix(b, degrees=False)
    return float(np.rad2deg(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))))


def control_errors(
    asked: npt.ArrayLike,
    got: npt.ArrayLike,
    valid: npt.ArrayLike,
    model: Any,
    identity: npt.ArrayLike,
    frames: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Errors of recovered parameters against the asked ones (see the module docstring for each figure).

    Args:
        asked, got: ``(N, FRAME_SIZE)`` packed parameters (radians, metres).
        valid: ``(N,)`` rows where ``got`` was recovered (others are counted in ``no_face``, not scored).
        model: the face model (expression scales, named controls, face width).
        identity: ``(80,)`` the actor's identity (face width).
        frames: frame numbers of the rows (for ``no_face_frames``; default row indices).
    Returns:
        A JSON-ready dict; the error figures are None when no row is valid.
    """
    a = np.atleast_2d(np.asarray(asked, np.float64))
    g = np.atleast_2d(np.asarray(got, np.float64))
    ok = np.asarray(valid, bool).reshape(-1)
    if a.shape != g.shape or a.shape[0] != ok.size:
        raise ValueError(f"asked {a.shape}, got {g.shape} and valid {ok.shape} do not match")
    nums = list(range(a.shape[0])) if frames is None else [int(f) for f in frames]
    out: dict[str, Any] = {
        "frames": int(ok.size),
        "no_face": int((~ok).sum()),
        "no_face_frames": [nums[i] for i in np.flatnonzero(~ok)],
    }
    keys = (
        "rotation_deg", "rotation_axes_deg", "translation_pct", "depth_pct", "expression_rms", "controls",
        "gaze_left_deg", "gaze_right_deg", "blink_left", "blink_right",
    )  # fmt: skip
    if not ok.any():
        return {**out, **dict.fromkeys(keys)}
    a, g = a[ok], g[ok]
    L = layout.FRAME_LAYOUT
    rot_a, rot_g = a[:, L["rotation"]], g[:, L["rotation"]]
    out["rotation_deg"] = float(np.mean([_geodesic_deg(x, y) for x, y in zip(rot_a, rot_g, strict=True)]))
    d_axes = np.rad2deg(np.abs(rot_g - rot_a)).mean(axis=0)
    out["rotation_axes_deg"] = {name: float(v) for name, v in zip(layout.HEAD_ROTATION, d_axes, strict=True)}
    width = face_width_m(model, identity)
    dt = g[:, L["translation"]] - a[:, L["translation"]]
    out["translation_pct"] = float(np.linalg.norm(dt[:, :2], axis=1).mean() / width * 100.0)
    out["depth_pct"] = float(np.abs(dt[:, 2]).mean() / width * 100.0)
    sd = np.maximum(np.asarray(model.expr_std, np.float64), 1e-12)
    de = (g[:, L["expression"]] - a[:, L["expression"]]) / sd
    out["expression_rms"] = float(np.sqrt((de**2).mean(axis=1)).mean())
    ca = np.asarray(model.expression_to_controls(a[:, L["expression"]]), np.float64)
    cg = np.asarray(model.expression_to_controls(g[:, L["expression"]]), np.float64)
    out["controls"] = {
        name: float(v) for name, v in zip(model.control_names, np.abs(cg - ca).mean(axis=0), strict=True)
    }
    ga, gg = np.rad2deg(a[:, L["gaze"]]), np.rad2deg(g[:, L["gaze"]])
    for e, eye in enumerate(("left", "right")):
        da = layout.gaze_direction(ga[:, 2 * e], ga[:, 2 * e + 1])
        dg = layout.gaze_direction(gg[:, 2 * e], gg[:, 2 * e + 1])
        cos = np.clip((da * dg).sum(axis=1), -1.0, 1.0)
        out[f"gaze_{eye}_deg"] = float(np.rad2deg(np.arccos(cos)).mean())
    db = np.abs(g[:, L["blink"]] - a[:, L["blink"]]).mean(axis=0)
    out["blink_left"], out["blink_right"] = float(db[0]), float(db[1])
    return out
