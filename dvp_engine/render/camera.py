"""Pinhole camera, head pose and gaze helpers in torch (OpenCV convention, see docs/conventions.md).

* Camera frame: x right, y down, z forward (into the scene), metres. Pixel ``(0, 0)``'s centre is at image
  coordinate ``(0, 0)``, so an image of ``width`` pixels spans ``[-0.5, width - 0.5]``.
* Head pose: ``X_cam = R @ X_model + t`` with ``R = Rz(rz) @ Ry(ry) @ Rx(rx)`` (rotations about the fixed
  camera axes, x first) — the same convention as :func:`dvp_engine.core.rotation.euler_to_matrix`.
* Gaze (per eye, head frame): ``d = (sin(yaw) cos(pitch), sin(pitch), -cos(yaw) cos(pitch))``.

Projection goes through :func:`kornia.geometry.camera.project_points`, so it is differentiable with respect
to the points; :meth:`Camera.to_kornia` gives the equivalent :class:`kornia.geometry.camera.PinholeCamera`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from kornia.geometry.camera import PinholeCamera, project_points

from dvp_engine.core.errors import InputError

__all__ = [
    "Camera",
    "RenderInputError",
    "apply_pose",
    "euler_to_matrix",
    "gaze_direction",
    "size_tuple",
]


class RenderInputError(InputError, ValueError):
    """Invalid renderer input (NaN or infinite parameters, wrong shapes, bad sizes).

    Both a :class:`dvp_engine.core.errors.InputError` (the CLI reports it cleanly) and a :class:`ValueError`.
    """


def size_tuple(size: int | Sequence[int]) -> tuple[int, int]:
    """``(width, height)`` from an int (square) or a ``(width, height)`` pair; both must be >= 1."""
    if isinstance(size, int):
        w = h = int(size)
    else:
        vals = [int(s) for s in size]
        if len(vals) != 2:
            raise RenderInputError(f"image size must be an int or (width, height), got {size!r}")
        w, h = vals
    if w < 1 or h < 1:
        raise RenderInputError(f"image size must be positive, got {w}x{h}")
    return w, h


@dataclass(frozen=True)
class Camera:
    """A pinhole camera without distortion (OpenCV convention).

    Attributes:
        fx, fy: focal lengths in pixels.
        cx, cy: principal point in pixels (pixel (0, 0)'s centre is at (0, 0)).
        width, height: image size in pixels.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        vals = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(float(v)) for v in vals):
            raise RenderInputError(f"camera intrinsics must be finite, got {vals}")
        if self.fx <= 0 or self.fy <= 0:
            raise RenderInputError(f"focal lengths must be positive, got fx={self.fx} fy={self.fy}")
        size_tuple((self.width, self.height))

    @classmethod
    def from_intrinsics(cls, intrinsics: Sequence[float], width: int, height: int) -> Camera:
        """From ``(fx, fy, cx, cy)`` (e.g. ``FaceTrack.intrinsics``) and the image size."""
        fx, fy, cx, cy = (float(v) for v in intrinsics)
        return cls(fx, fy, cx, cy, int(width), int(height))

    @property
    def intrinsics(self) -> tuple[float, float, float, float]:
        """``(fx, fy, cx, cy)`` in pixels."""
        return (self.fx, self.fy, self.cx, self.cy)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return (self.width, self.height)

    def scaled(self, size: int | Sequence[int]) -> Camera:
        """The same camera for an image resampled to ``size`` (int for square, or ``(width, height)``).

        With pixel centres at integer coordinates, a point at ``u`` in the original image is at
        ``(u + 0.5) * s - 0.5`` in an image ``s`` times as wide, so ``fx' = s fx`` and ``cx' = (cx + 0.5) s - 0.5``
        (likewise for y with the height ratio). A 512 px track rendered at 256 covers the same view.
        """
        w, h = size_tuple(size)
        sx, sy = w / self.width, h / self.height
        return Camera(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, w, h
        )

    def matrix(
        self, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """The ``(3, 3)`` intrinsic matrix K."""
        return torch.tensor(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], device=device, dtype=dtype
        )

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """Project camera-frame points ``(..., 3)`` (metres) to pixel coordinates ``(..., 2)``.

        Uses :func:`kornia.geometry.camera.project_points` (differentiable). Points at or behind ``z = 0`` give
        meaningless coordinates: the rasteriser culls triangles in front of its near plane before using them.
        """
        k = self.matrix(device=points.device, dtype=points.dtype)
        flat = points.reshape(-1, 3)
        uv = project_points(flat, k.expand(flat.shape[0], 3, 3))
        return uv.reshape(*points.shape[:-1], 2)

    def unproject_rays(self, pixels: torch.Tensor) -> torch.Tensor:
        """View rays ``((u - cx) / fx, (v - cy) / fy, 1)`` ``(..., 3)`` of pixel coordinates ``(..., 2)``."""
        x = (pixels[..., 0] - self.cx) / self.fx
        y = (pixels[..., 1] - self.cy) / self.fy
        return torch.stack([x, y, torch.ones_like(x)], dim=-1)

    def to_kornia(
        self,
        batch: int = 1,
        *,
        extrinsics: torch.Tensor | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> PinholeCamera:
        """The equivalent :class:`kornia.geometry.camera.PinholeCamera` (``extrinsics`` ``(B, 4, 4)``, default I)."""
        k = torch.eye(4, device=device, dtype=dtype)
        k[:3, :3] = self.matrix(device=device, dtype=dtype)
        ext = (
            torch.eye(4, device=device, dtype=dtype).expand(batch, 4, 4) if extrinsics is None else extrinsics
        )
        h = torch.full((batch,), float(self.height), device=device, dtype=dtype)
        w = torch.full((batch,), float(self.width), device=device, dtype=dtype)
        return PinholeCamera(k.expand(batch, 4, 4).clone(), ext.clone(), h, w)


def euler_to_matrix(angles: torch.Tensor, *, degrees: bool = True) -> torch.Tensor:
    """Rotation matrices ``R = Rz(rz) @ Ry(ry) @ Rx(rx)`` from Euler angles (differentiable).

    Args:
        angles: ``(..., 3)`` ``(rx, ry, rz)``, degrees unless ``degrees=False``.
    Returns:
        ``(..., 3, 3)`` rotation matrices, same dtype and device. Matches
        :func:`dvp_engine.core.rotation.euler_to_matrix`.
    """
    if angles.shape[-1:] != (3,):
        raise RenderInputError(f"euler_to_matrix expects (..., 3) angles, got shape {tuple(angles.shape)}")
    a = torch.deg2rad(angles) if degrees else angles
    cx, cy, cz = torch.cos(a[..., 0]), torch.cos(a[..., 1]), torch.cos(a[..., 2])
    sx, sy, sz = torch.sin(a[..., 0]), torch.sin(a[..., 1]), torch.sin(a[..., 2])
    rows = [
        torch.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], dim=-1),
        torch.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], dim=-1),
        torch.stack([-sy, cy * sx, cy * cx], dim=-1),
    ]
    return torch.stack(rows, dim=-2)


def gaze_direction(yaw: torch.Tensor, pitch: torch.Tensor, *, degrees: bool = False) -> torch.Tensor:
    """Unit gaze directions in the head (model) frame: ``(..., 3)``.

    ``d = (sin(yaw) cos(pitch), sin(pitch), -cos(yaw) cos(pitch))``; zero gaze looks out of the face (-z).
    Angles in radians (the packed parameter vector) unless ``degrees=True`` (the ``gaze.*`` channels).
    """
    if degrees:
        yaw, pitch = torch.deg2rad(yaw), torch.deg2rad(pitch)
    cp = torch.cos(pitch)
    return torch.stack([torch.sin(yaw) * cp, torch.sin(pitch), -torch.cos(yaw) * cp], dim=-1)


def apply_pose(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """``X_cam = R @ X_model + t`` for ``points (B, N, 3)``, ``rotation (B, 3, 3)``, ``translation (B, 3)``."""
    return points @ rotation.transpose(-1, -2) + translation[..., None, :]
