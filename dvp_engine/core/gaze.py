"""Eyes in the data model: the per-actor eye calibration a track carries, and the look-at control (numpy only).

**Eye calibration** (:class:`EyeCalibration`): the actor's eyeball centres in the face model's frame (metres,
model frame: +x the actor's left, +y down, the face looking toward -z) and the eyeball radius, estimated by the
tracker from the clip (docs/tracker.md, "Eye calibration"). Gaze angles are measured from these centres, so
gaze 0 means "looks along the face's forward axis" (-z of the head). A track without a calibration (older
tracks, or a clip the tracker could not calibrate) uses the face model's fixed centres, as before.

**Look-at** (:data:`LOOK_AT`): four auxiliary channels, not part of the packed vector:

* ``look.x look.y look.z``: a gaze target in the OpenCV camera frame (metres; x right, y down, z forward);
* ``look.weight``: 0..1, how much the target drives the eyes: the rendered gaze per eye is
  ``(1 - w) * gaze + w * look_at_angles(target)`` (angles in degrees, blended linearly per axis).

Both eyes turn toward the one target, so the eyes converge on a near target (vergence). A target behind the
face (not in front of an eyeball along the face's forward axis) is an error naming the frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from . import layout
from .errors import InputError, SchemaError
from .rotation import euler_to_matrix

F64 = npt.NDArray[np.float64]

LOOK_AT: Final = layout.LOOK_AT
"""Look-at channels: target point in the camera frame (metres) and the blend weight (0..1)."""
LOOK_X, LOOK_Y, LOOK_Z, LOOK_WEIGHT = LOOK_AT
LOOK_TARGET: Final = (LOOK_X, LOOK_Y, LOOK_Z)

CALIBRATION_METHODS: Final = ("camera", "forward", "binocular", "openings", "model")
"""How an :class:`EyeCalibration` was made: ``camera`` (the actor mostly fixates the lens), ``forward`` (the
actor's eyes point, on average, along the face's forward axis), ``binocular`` (neither held: the face model's
centres moved with the fitted face's eye openings, their separation and relative height set so that the eyes'
gaze rays meet), ``openings`` (the eye openings' centres alone: the fallback when that cannot be set either) or
``model`` (the face model's fixed centres: tracks made before ``openings`` existed, and ``eye_calibration
'none'``)."""


@dataclass(frozen=True)
class EyeCalibration:
    """The actor's eyeballs relative to the fitted face.

    Attributes:
        centres: ``(2, 3)`` eyeball centres (actor's left, right) in the face model's frame, metres.
        radius: eyeball radius in metres (centre to pupil).
        method: one of :data:`CALIBRATION_METHODS`.
        frames_used: how many frames' pupils the estimate used (0 for ``model``).
        note: why the tracker fell back to the model's centres, or a warning about the estimate.
        offsets: ``(2, 3)`` centres minus the face model's centres, metres (for reports).
    """

    centres: F64
    radius: float
    method: str
    frames_used: int = 0
    note: str = ""
    offsets: F64 | None = None

    def __post_init__(self) -> None:
        c = np.asarray(self.centres, np.float64).reshape(2, 3)
        object.__setattr__(self, "centres", c)
        if self.offsets is not None:
            object.__setattr__(self, "offsets", np.asarray(self.offsets, np.float64).reshape(2, 3))
        if not np.all(np.isfinite(c)) or not math.isfinite(self.radius) or self.radius <= 0:
            raise SchemaError(
                f"eye calibration must have finite centres and a positive radius ({self.radius})"
            )
        if self.method not in CALIBRATION_METHODS:
            raise SchemaError(f"eye calibration method {self.method!r} is not one of {CALIBRATION_METHODS}")

    @property
    def fallback(self) -> bool:
        """True when no assumption about where the actor looks held (or there were too few pupils): the
        centres are the face model's, fixed (``model``) or moved with the eye openings (``openings``,
        ``binocular``: only the eyes' separation comes from the pupils)."""
        return self.method in ("model", "openings", "binocular")

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (the track header's ``eyes`` entry)."""
        d: dict[str, Any] = {
            "centres": [[round(float(v), 7) for v in row] for row in self.centres],
            "radius": float(self.radius),
            "method": self.method,
            "frames_used": int(self.frames_used),
            "note": self.note,
        }
        if self.offsets is not None:
            d["offsets"] = [[round(float(v), 7) for v in row] for row in self.offsets]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EyeCalibration:
        """Inverse of :meth:`to_json`; :class:`SchemaError` on malformed entries."""
        try:
            return cls(
                centres=np.asarray(d["centres"], np.float64),
                radius=float(d["radius"]),
                method=str(d["method"]),
                frames_used=int(d.get("frames_used", 0)),
                note=str(d.get("note", "")),
                offsets=None if d.get("offsets") is None else np.asarray(d["offsets"], np.float64),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"malformed eye calibration ({exc})") from exc


def eye_centres(calibration: EyeCalibration | None, model_centres: npt.ArrayLike) -> F64:
    """``(2, 3)`` eyeball centres to use: the calibration's, else the face model's ``model_centres``."""
    if calibration is not None:
        return np.asarray(calibration.centres, np.float64)
    return np.asarray(model_centres, np.float64).reshape(2, 3)


def look_at_angles(
    rotation: npt.ArrayLike,
    translation: npt.ArrayLike,
    centres: npt.ArrayLike,
    target: npt.ArrayLike,
    frames: Sequence[int] | None = None,
) -> F64:
    """Per-eye gaze angles that point both eyes at a target (with vergence).

    Args:
        rotation: ``(F, 3, 3)`` head rotation matrices (model -> camera) or ``(F, 3)`` Euler angles in
            degrees (``head.rx head.ry head.rz``).
        translation: ``(F, 3)`` head translation, metres (camera frame).
        centres: ``(2, 3)`` eyeball centres (actor's left, right), model frame, metres.
        target: ``(F, 3)`` or ``(3,)`` target points, camera frame, metres.
        frames: frame numbers for error messages (default 0..F-1).

    Returns:
        ``(F, 4)`` degrees: left yaw, left pitch, right yaw, right pitch (the ``gaze.*`` channel order), with
        ``d = (sin(yaw) cos(pitch), sin(pitch), -cos(yaw) cos(pitch))`` the unit direction from each eyeball
        centre to the target in the head frame.

    Raises:
        InputError: the target is behind the face (not in front of an eyeball along the face's forward axis)
            or at an eyeball centre, naming the first such frame.
    """
    rot = np.asarray(rotation, np.float64)
    if rot.ndim == 2:  # (F, 3) Euler degrees; matrices are always (F, 3, 3)
        rot = euler_to_matrix(rot)
    t = np.asarray(translation, np.float64).reshape(-1, 3)
    n = t.shape[0]
    if rot.shape != (n, 3, 3):
        raise ValueError(f"look_at_angles: rotation shape {rot.shape} does not match {n} translations")
    c = np.asarray(centres, np.float64).reshape(2, 3)
    tgt = np.broadcast_to(np.asarray(target, np.float64).reshape(-1, 3), (n, 3))
    eye_cam = np.einsum("fij,ej->fei", rot, c) + t[:, None]  # (F, 2, 3)
    v_head = np.einsum("fji,fej->fei", rot, tgt[:, None] - eye_cam)  # R^T (target - eye), (F, 2, 3)
    dist = np.linalg.norm(v_head, axis=-1)
    numbers = list(frames) if frames is not None else list(range(n))
    bad = (dist < 1e-6) | (v_head[..., 2] >= -1e-9)
    if bad.any():
        f = int(np.flatnonzero(bad.any(axis=1))[0])
        raise InputError(
            f"look-at target {tuple(round(float(v), 4) for v in tgt[f])} m (camera frame) is behind the face "
            "or at an eyeball: it must be in front of the eyes (the face looks toward the camera, -z of the head)",
            frame=int(numbers[f]),
        )
    return layout.gaze_angles(v_head / dist[..., None]).reshape(n, 4)


def plate_point_to_camera(
    u: float, v: float, depth: float, intrinsics: Sequence[float]
) -> tuple[float, float, float]:
    """The camera-frame point (metres) seen at plate pixel ``(u, v)`` at camera-frame depth ``depth`` (z)."""
    fx, fy, cx, cy = (float(x) for x in intrinsics)
    if not (math.isfinite(depth) and depth > 0):
        raise InputError(f"look-at depth must be a positive number of metres, got {depth}")
    return ((u - cx) / fx * depth, (v - cy) / fy * depth, float(depth))


def plate_points_to_camera(
    u: npt.ArrayLike,
    v: npt.ArrayLike,
    depth: npt.ArrayLike,
    intrinsics: Sequence[float],
    frames: Sequence[int] | None = None,
) -> F64:
    """Camera-frame points (metres) seen at plate pixels ``(u, v)`` at camera-frame depths ``depth`` (z).

    Vectorised :func:`plate_point_to_camera` with the sign rule of ``dvp edit --look-at``: a negative depth
    is the point on the pixel's ray extended back through the lens (behind the camera), which still projects
    to ``(u, v)``.

    Args:
        u, v: ``(F,)`` plate pixels, the track's image: pixel (0, 0)'s centre at (0, 0), x right, y down.
        depth: ``(F,)`` camera-frame z in metres (distance along the lens axis), non-zero.
        intrinsics: ``(fx, fy, cx, cy)`` in pixels (``FaceTrack.intrinsics``).
        frames: frame numbers for error messages (default 0..F-1).

    Returns:
        ``(F, 3)`` points ``((u - cx) / fx * z, (v - cy) / fy * z, z)``, OpenCV camera frame, metres.

    Raises:
        InputError: a depth of 0 (the lens plane) or a non-finite value, naming the first such frame.
    """
    fx, fy, cx, cy = (float(x) for x in intrinsics)
    uu, vv, z = np.broadcast_arrays(*(np.asarray(a, np.float64).reshape(-1) for a in (u, v, depth)))
    numbers = list(frames) if frames is not None else list(range(len(z)))
    bad = ~(np.isfinite(uu) & np.isfinite(vv) & np.isfinite(z)) | (z == 0.0)
    if bad.any():
        f = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"look-at plate point ({uu[f]:g}, {vv[f]:g}) px at depth {z[f]:g} m: the depth must be a non-zero "
            "number of metres (0 is the lens itself; negative is behind the lens)",
            frame=int(numbers[f]),
        )
    return np.stack([(uu - cx) / fx * z, (vv - cy) / fy * z, z], axis=1)


def camera_to_plate_points(
    points: npt.ArrayLike, intrinsics: Sequence[float], frames: Sequence[int] | None = None
) -> tuple[F64, F64, F64]:
    """Inverse of :func:`plate_points_to_camera`: plate pixels and depth of camera-frame points.

    Args:
        points: ``(F, 3)`` OpenCV camera frame points, metres.
        intrinsics: ``(fx, fy, cx, cy)`` in pixels.
        frames: frame numbers for error messages (default 0..F-1).

    Returns:
        ``(u, v, depth)``, each ``(F,)``: ``u = fx x / z + cx``, ``v = fy y / z + cy`` (plate pixels, pixel
        (0, 0)'s centre at (0, 0), y down) and ``depth = z`` (metres, negative behind the lens).

    Raises:
        InputError: a point in the lens plane (z = 0, e.g. the lens itself), which no plate pixel shows,
            naming the first such frame.
    """
    fx, fy, cx, cy = (float(x) for x in intrinsics)
    p = np.asarray(points, np.float64).reshape(-1, 3)
    numbers = list(frames) if frames is not None else list(range(len(p)))
    bad = (p[:, 2] == 0.0) | ~np.isfinite(p).all(axis=1)
    if bad.any():
        f = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"look-at target {tuple(round(float(x), 4) for x in p[f])} m (camera frame) is in the lens plane "
            "(z = 0): no plate point shows it",
            frame=int(numbers[f]),
        )
    z = p[:, 2]
    return fx * p[:, 0] / z + cx, fy * p[:, 1] / z + cy, z.copy()


def resolved_gaze(
    channels: Mapping[str, npt.ArrayLike],
    centres: npt.ArrayLike,
    frames: Sequence[int] | None = None,
) -> F64 | None:
    """The gaze channels with the look-at blend applied, ``(F, 4)`` degrees, or None without look-at channels.

    Args:
        channels: a track's channels (``head.*``, ``gaze.*`` and, if present, :data:`LOOK_AT`).
        centres: ``(2, 3)`` eyeball centres (:func:`eye_centres`).
        frames: frame numbers for error messages.

    Raises:
        InputError: a weight outside [0, 1], or a target behind the face where its weight is above 0.
    """
    if LOOK_WEIGHT not in channels:
        return None
    w = np.asarray(channels[LOOK_WEIGHT], np.float64).reshape(-1)
    gaze = np.stack([np.asarray(channels[g], np.float64).reshape(-1) for g in layout.GAZE], axis=1)
    numbers = list(frames) if frames is not None else list(range(len(w)))
    outside = (w < 0.0) | (w > 1.0)
    if outside.any():
        f = int(np.flatnonzero(outside)[0])
        raise InputError(f"{LOOK_WEIGHT} must be in [0, 1], got {w[f]:g}", frame=int(numbers[f]))
    on = np.flatnonzero(w > 0.0)
    if on.size == 0:
        return gaze
    missing = [n for n in LOOK_TARGET if n not in channels]
    if missing:
        raise InputError(f"{LOOK_WEIGHT} is set but the track has no {', '.join(missing)} channel")
    euler = np.stack([np.asarray(channels[n], np.float64).reshape(-1)[on] for n in layout.HEAD_ROTATION], 1)
    trans = np.stack(
        [np.asarray(channels[n], np.float64).reshape(-1)[on] for n in layout.HEAD_TRANSLATION], 1
    )
    tgt = np.stack([np.asarray(channels[n], np.float64).reshape(-1)[on] for n in LOOK_TARGET], 1)
    look = look_at_angles(euler_to_matrix(euler), trans, centres, tgt, [numbers[i] for i in on])
    out = gaze.copy()
    out[on] = (1.0 - w[on, None]) * gaze[on] + w[on, None] * look
    return out
