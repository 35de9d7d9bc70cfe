"""Conventions between the engine (OpenCV camera frame) and Blender. numpy only, no bpy.

Engine (see docs/conventions.md): a model point maps into the OpenCV camera frame (x right, y down,
z forward) as ``X_cv = R @ X_model + t`` with ``R = Rz(rz) @ Ry(ry) @ Rx(rx)`` (degrees in channels).

Blender's camera looks down its local -Z with +Y up and +X right, so the OpenCV camera frame maps to
the Blender camera's local frame by ``C = diag(1, -1, -1)`` (its own inverse, determinant +1)::

    X_bl = C @ X_cv

The head Empty is parented to the camera and its local axes are the *model* axes expressed the Blender
way, ``X_model_bl = C @ X_model`` (x = image right, y = up, z = out of the face toward the camera), so
the Empty's transform relative to the camera is::

    R_bl = C @ R @ C        t_bl = C @ t

Because ``C Rz(a) C = Rz(-a)``, ``C Ry(b) C = Ry(-b)`` and ``C Rx(c) C = Rx(c)``, and Blender's ``XYZ`` Euler
mode also composes ``Rz @ Ry @ Rx``, the Empty's keyed Euler angles are simply::

    rotation_euler = (rx, -ry, -rz)  (radians)      location = (tx, -ty, -tz)  (metres)

Export goes the other way from the evaluated matrices (so constraints, drivers and parenting are baked).

Intrinsics: with ``sensor_fit = 'HORIZONTAL'`` and ``sensor_width`` S mm, ``lens = fx * S / width``. The
principal point becomes the lens shift, in units of the image width (Blender's horizontal view factor)::

    shift_x = (width / 2 - (cx + 0.5)) / width
    shift_y = ycor * ((cy + 0.5) - height / 2) / width      ycor = pixel_aspect_y / pixel_aspect_x = fx / fy

The ``+ 0.5`` is because the engine puts pixel (0, 0)'s centre at coordinate 0 while Blender's raster starts
at the pixel's edge; the ``y`` sign because Blender's raster y points up. Non-square pixels
(``fx != fy``) are expressed with the pixel aspect ratio ``ycor`` (1 for square pixels), which also scales
Blender's vertical view plane and hence the vertical shift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .core import rotation

#: OpenCV camera frame -> Blender camera frame (and back: it is its own inverse).
CV_TO_BLENDER = np.diag([1.0, -1.0, -1.0])

DEFAULT_SENSOR_WIDTH_MM = 36.0


def pose_to_blender(
    rot_deg: npt.ArrayLike, trans_m: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Engine head pose channels to the head Empty's local transform under the camera.

    Args:
        rot_deg: ``(F, 3)`` ``head.rx head.ry head.rz`` in degrees.
        trans_m: ``(F, 3)`` ``head.tx head.ty head.tz`` in metres (OpenCV camera frame).

    Returns:
        ``(euler_rad (F, 3), location (F, 3))``: Blender ``XYZ`` Euler angles in radians and location in
        metres, in the camera's local frame.
    """
    r = np.deg2rad(np.asarray(rot_deg, dtype=np.float64).reshape(-1, 3))
    t = np.asarray(trans_m, dtype=np.float64).reshape(-1, 3)
    sign = np.array([1.0, -1.0, -1.0])
    return r * sign, t * sign


def matrices_to_pose(
    rel: npt.ArrayLike,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The Empty's 4x4 matrices relative to the camera back to engine channels.

    Args:
        rel: ``(F, 4, 4)`` ``inverse(camera.matrix_world) @ empty.matrix_world`` (scale is removed).

    Returns:
        ``(rot_deg (F, 3), trans_m (F, 3))``: ``head.rx..rz`` in degrees, unwrapped over frames so a
        continuous turn past 180 degrees stays continuous, and ``head.tx..tz`` in metres.
    """
    m = np.asarray(rel, dtype=np.float64).reshape(-1, 4, 4)
    lin = m[:, :3, :3]
    scale = np.linalg.norm(lin, axis=1, keepdims=True)
    rot_bl = lin / np.where(scale > 0, scale, 1.0)
    c = CV_TO_BLENDER
    rot_cv = c @ rot_bl @ c
    t_cv = m[:, :3, 3] @ c
    eul = rotation.matrix_to_euler(rot_cv, degrees=True)
    if len(eul) > 1:
        eul = np.rad2deg(np.unwrap(np.deg2rad(eul), axis=0))
    return eul, t_cv


def points_to_blender(points_cv: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """OpenCV camera-frame points (metres; x right, y down, z forward) to the Blender camera's local frame
    (x right, y up, -z forward): ``X_bl = C @ X_cv``, ``(F, 3)`` -> ``(F, 3)``. The look-at target Empty,
    parented to the camera, is keyed with these locations."""
    return np.asarray(points_cv, dtype=np.float64).reshape(-1, 3) @ CV_TO_BLENDER


def points_from_blender(points_bl: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Inverse of :func:`points_to_blender`: points in the camera's local frame (from
    ``inverse(camera.matrix_world) @ world point``) to the OpenCV camera frame (the ``look.x look.y look.z``
    channels), ``(F, 3)`` metres."""
    return np.asarray(points_bl, dtype=np.float64).reshape(-1, 3) @ CV_TO_BLENDER


@dataclass(frozen=True)
class CameraParams:
    """Blender camera and render settings equivalent to pinhole intrinsics."""

    lens_mm: float
    sensor_width_mm: float
    shift_x: float
    shift_y: float
    resolution_x: int
    resolution_y: int
    pixel_aspect_x: float
    pixel_aspect_y: float


def intrinsics_to_camera(
    intrinsics: tuple[float, float, float, float],
    width: int,
    height: int,
    sensor_width_mm: float = DEFAULT_SENSOR_WIDTH_MM,
) -> CameraParams:
    """Blender camera settings (``sensor_fit='HORIZONTAL'``) for OpenCV intrinsics ``(fx, fy, cx, cy)``."""
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    if fx <= 0 or fy <= 0:
        raise ValueError(f"focal lengths must be positive, got fx={fx} fy={fy}")
    asp_x, asp_y = (1.0, fx / fy) if fx >= fy else (fy / fx, 1.0)
    ycor = asp_y / asp_x
    return CameraParams(
        lens_mm=fx * sensor_width_mm / width,
        sensor_width_mm=sensor_width_mm,
        shift_x=(width / 2.0 - (cx + 0.5)) / width,
        shift_y=ycor * ((cy + 0.5) - height / 2.0) / width,
        resolution_x=int(width),
        resolution_y=int(height),
        pixel_aspect_x=asp_x,
        pixel_aspect_y=asp_y,
    )


def camera_to_intrinsics(params: CameraParams) -> tuple[float, float, float, float]:
    """Inverse of :func:`intrinsics_to_camera`: ``(fx, fy, cx, cy)`` in pixels."""
    w, h = params.resolution_x, params.resolution_y
    fx = params.lens_mm * w / params.sensor_width_mm
    fy = fx * params.pixel_aspect_x / params.pixel_aspect_y
    cx = w / 2.0 - params.shift_x * w - 0.5
    ycor = params.pixel_aspect_y / params.pixel_aspect_x
    cy = params.shift_y * w / ycor + h / 2.0 - 0.5
    return fx, fy, cx, cy


def project_pinhole(
    points_cv: npt.ArrayLike, intrinsics: tuple[float, float, float, float]
) -> npt.NDArray[np.float64]:
    """Engine pinhole projection ``u = fx X/Z + cx, v = fy Y/Z + cy``: ``(N, 3)`` -> ``(N, 2)`` pixels."""
    p = np.asarray(points_cv, dtype=np.float64).reshape(-1, 3)
    fx, fy, cx, cy = intrinsics
    return np.stack([fx * p[:, 0] / p[:, 2] + cx, fy * p[:, 1] / p[:, 2] + cy], axis=1)


def model_crop(model_dir: str | Path) -> tuple[int, int, int] | None:
    """The square crop ``(x0, y0, side)`` (plate pixels, top-left origin, y down) a dvp model renders, read
    from its ``dvp_model.json``; None when the folder has none (yet) or it cannot be read."""
    try:
        framing = json.loads((Path(model_dir) / "dvp_model.json").read_text("utf-8"))["framing"]
        return int(framing["x0"]), int(framing["y0"]), int(framing["side"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def strip_offset(crop: tuple[int, int, int], width: int, height: int) -> tuple[float, float]:
    """Video Sequencer ``transform.offset_x/y`` (pixels) that put an unscaled ``side`` x ``side`` render at
    ``(x0, y0)`` of a ``width`` x ``height`` frame.

    Blender 5.0 reads only an EXR's data window and centres an unscaled strip in the frame, with offsets from
    the frame's centre and y up; dvp's crop has its origin at the top-left with y down.
    """
    x0, y0, side = crop
    return x0 + side / 2 - width / 2, height / 2 - (y0 + side / 2)


# ---------------------------------------------------------------------------------------------- frame rate
FPS_MAX = 32767
"""Blender's largest ``render.fps`` (a whole number of frames per ``fps_base`` seconds)."""
FPS_BASE_RANGE = (1e-5, 1e6)
"""Blender's range of ``render.fps_base`` (stored as float32)."""
BASE_DENOMINATOR = 1000
"""``fps_base`` is read as the nearest fraction with a denominator up to this (``1.001 = 1001/1000``)."""


class RateError(ValueError):
    """A frame rate that Blender's ``fps / fps_base`` (or a track's exact fraction) cannot hold."""


def blender_to_rate(fps: int, fps_base: float) -> Fraction:
    """The exact frame rate of a scene: ``fps / fps_base`` with ``fps_base`` read as a simple fraction.

    Blender stores ``fps_base`` as float32 (its 23.98 preset holds 1.00100005), so it is snapped to the
    nearest fraction with a denominator up to :data:`BASE_DENOMINATOR` when that is within float32 precision:
    fps 24, base 1.001 gives 24000/1001; fps 60, base 1.001 gives 60000/1001.

    Raises:
        RateError: ``fps_base`` is no such fraction (e.g. 0.7071), so the rate has no exact value.
    """
    if fps < 1 or not fps_base > 0:
        raise RateError(f"the scene's frame rate {fps} / {fps_base} is not a positive rate")
    base = Fraction(float(fps_base)).limit_denominator(BASE_DENOMINATOR)
    if abs(float(base) - fps_base) > 2e-7 * fps_base:
        raise RateError(
            f"the scene's frame rate {fps} / {fps_base:.7g} = {fps / fps_base:.7g} fps cannot be expressed "
            f"exactly (the base is not a ratio of whole numbers up to {BASE_DENOMINATOR}): set Output "
            "Properties > Frame Rate to a preset, or Custom with a whole FPS and Base 1 or 1.001"
        )
    return Fraction(int(fps)) / base


def rate_to_blender(rate: Fraction) -> tuple[int, float]:
    """``(fps, fps_base)`` for an exact rate: ``fps`` the rate rounded (at least 1), ``fps_base = fps / rate``.

    60000/1001 gives (60, 1.001), 24000/1001 gives (24, 1.001), 25 gives (25, 1.0); :func:`blender_to_rate`
    of the float32-stored result gives the rate back exactly.

    Raises:
        RateError: a rate Blender cannot hold (above 32767 fps, or whose base is no simple fraction).
    """
    rate = Fraction(rate)
    if rate <= 0:
        raise RateError(f"the track's frame rate {rate} is not positive")
    fps = max(1, round(rate))
    base = float(fps / rate)
    if fps > FPS_MAX or not FPS_BASE_RANGE[0] <= base <= FPS_BASE_RANGE[1]:
        raise RateError(
            f"the track's frame rate {rate} fps is outside what Blender can hold (fps 1-{FPS_MAX})"
        )
    stored = float(np.float32(base))
    try:
        back = blender_to_rate(fps, stored)
    except RateError:
        back = None
    if back != rate:
        raise RateError(
            f"the track's frame rate {rate} ({float(rate):.7g} fps) cannot be expressed as Blender's "
            f"fps / fps_base (nearest: {fps} / {stored:.7g}); retime the track to a common rate first"
        )
    return fps, base
