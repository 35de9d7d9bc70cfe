"""Rotations between Euler angles (artist view) and matrices (engine view), numpy only.

Convention (see docs/conventions.md): head pose maps model points into the OpenCV camera frame
(x right, y down, z forward) as ``X_cam = R @ X_model + t``. Euler angles ``(rx, ry, rz)`` compose as
``R = Rz(rz) @ Ry(ry) @ Rx(rx)``: a rotation about the fixed camera x axis first, then y, then z.
Positive angles are right-handed about their axis.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating]


def euler_to_matrix(angles: npt.ArrayLike, *, degrees: bool = True) -> npt.NDArray[np.float64]:
    """Rotation matrices from Euler angles.

    Args:
        angles: ``(..., 3)`` angles ``(rx, ry, rz)``, degrees unless ``degrees=False`` (then radians).
        degrees: whether ``angles`` are in degrees.

    Returns:
        ``(..., 3, 3)`` float64 rotation matrices ``Rz @ Ry @ Rx``.
    """
    a = np.asarray(angles, dtype=np.float64)
    if a.shape[-1:] != (3,):
        raise ValueError(f"euler_to_matrix expects (..., 3) angles, got shape {a.shape}")
    if degrees:
        a = np.deg2rad(a)
    cx, cy, cz = np.cos(a[..., 0]), np.cos(a[..., 1]), np.cos(a[..., 2])
    sx, sy, sz = np.sin(a[..., 0]), np.sin(a[..., 1]), np.sin(a[..., 2])
    r = np.empty(a.shape[:-1] + (3, 3), dtype=np.float64)
    r[..., 0, 0] = cz * cy
    r[..., 0, 1] = cz * sy * sx - sz * cx
    r[..., 0, 2] = cz * sy * cx + sz * sx
    r[..., 1, 0] = sz * cy
    r[..., 1, 1] = sz * sy * sx + cz * cx
    r[..., 1, 2] = sz * sy * cx - cz * sx
    r[..., 2, 0] = -sy
    r[..., 2, 1] = cy * sx
    r[..., 2, 2] = cy * cx
    return r


def matrix_to_euler(matrix: npt.ArrayLike, *, degrees: bool = True) -> npt.NDArray[np.float64]:
    """Euler angles ``(rx, ry, rz)`` of rotation matrices, inverse of :func:`euler_to_matrix`.

    Args:
        matrix: ``(..., 3, 3)`` rotation matrices.
        degrees: return degrees (default) or radians.

    Returns:
        ``(..., 3)`` angles with ``ry`` in ``[-90, 90]``. At gimbal lock (``|ry| = 90``) ``rz`` is set to 0.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"matrix_to_euler expects (..., 3, 3) matrices, got shape {m.shape}")
    sy = np.clip(-m[..., 2, 0], -1.0, 1.0)
    ry = np.arcsin(sy)
    cy = np.sqrt(m[..., 2, 1] ** 2 + m[..., 2, 2] ** 2)
    regular = cy > 1e-9
    rx = np.where(regular, np.arctan2(m[..., 2, 1], m[..., 2, 2]), np.arctan2(-m[..., 1, 2], m[..., 1, 1]))
    rz = np.where(regular, np.arctan2(m[..., 1, 0], m[..., 0, 0]), 0.0)
    out = np.stack([rx, ry, rz], axis=-1)
    return np.rad2deg(out) if degrees else out


def axis_angle_to_matrix(rotvec: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Rodrigues: ``(..., 3)`` axis-angle vectors (radians) to ``(..., 3, 3)`` matrices."""
    v = np.asarray(rotvec, dtype=np.float64)
    theta = np.linalg.norm(v, axis=-1, keepdims=True)
    safe = np.where(theta > 1e-12, theta, 1.0)
    k = v / safe
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    kmat = np.stack(
        [
            np.stack([zero, -kz, ky], axis=-1),
            np.stack([kz, zero, -kx], axis=-1),
            np.stack([-ky, kx, zero], axis=-1),
        ],
        axis=-2,
    )
    s = np.sin(theta)[..., None]
    c = np.cos(theta)[..., None]
    eye = np.broadcast_to(np.eye(3), kmat.shape)
    return np.asarray(eye + s * kmat + (1.0 - c) * (kmat @ kmat), dtype=np.float64)
