"""Per-vertex normals and spherical-harmonics (SH) shading, paper eq. 3, in torch.

``colour_i = r_i * sum_{b=0}^{8} gamma_b Y_b(n_i)`` per colour channel, with B = 3 bands (9 basis functions) and
27 coefficients ``gamma[3 * b + c]`` (band b, channel c = R, G, B). Normals are unit vertex normals in the
**camera frame** (OpenCV: x right, y down, z forward), so the light is fixed to the camera, as in the paper
(world and camera space are the same; the face model carries the motion).

The basis ``Y_b`` is the real SH basis scaled by the Lambertian (irradiance) convolution factors of
Ramamoorthi and Hanrahan (2001): pi for band 0, 2 pi / 3 for band 1, pi / 4 for band 2 — the same basis, order
and constants as the tracker (``dvp_engine.tracking.solver.sh_basis``), so tracked light renders as tracked:

====  =================  =========================================================
b     function           constant (value)
====  =================  =========================================================
0     1                  pi * 1 / (2 sqrt(pi))                        (0.886227)
1     y                  2 pi / 3 * sqrt(3 / (4 pi))                  (1.023327)
2     z                  2 pi / 3 * sqrt(3 / (4 pi))                  (1.023327)
3     x                  2 pi / 3 * sqrt(3 / (4 pi))                  (1.023327)
4     x y                pi / 4 * 3 sqrt(5 / (12 pi))                 (0.858086)
5     y z                pi / 4 * 3 sqrt(5 / (12 pi))                 (0.858086)
6     3 z^2 - 1          pi / 4 * 1/2 sqrt(5 / (4 pi))                (0.247708)
7     x z                pi / 4 * 3 sqrt(5 / (12 pi))                 (0.858086)
8     x^2 - y^2          pi / 4 * 3/2 sqrt(5 / (12 pi))               (0.429043)
====  =================  =========================================================

``gamma[0:3] = 1 / 0.886227`` (others 0) is a uniform white light giving shading 1 (:func:`ambient_sh`).
"""

from __future__ import annotations

import torch

from dvp_engine.core import sh as _sh

__all__ = ["SH_CONSTANTS", "ambient_sh", "sh_basis", "sh_shade", "vertex_normals"]

#: The five distinct constants (band 0; band 1; xy, yz, xz; 3z^2-1; x^2-y^2), irradiance factors included;
#: shared with the tracker through :mod:`dvp_engine.core.sh`.
SH_CONSTANTS = _sh.SH_CONSTANTS


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 SH basis values ``Y_b(n)`` of unit normals: ``(..., 3)`` -> ``(..., 9)`` (table in the module doc)."""
    out: torch.Tensor = _sh.sh_basis(torch, normals)
    return out


def sh_shade(albedo: torch.Tensor, normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Paper eq. 3: ``albedo * sum_b gamma_b Y_b(n)`` per vertex and channel (not clamped; differentiable).

    Args:
        albedo: ``(B, N, 3)`` reflectance, display-referred sRGB.
        normals: ``(B, N, 3)`` unit normals, camera frame.
        gamma: ``(B, 27)`` or ``(27,)`` coefficients, index ``3 * band + channel``.
    Returns:
        ``(B, N, 3)`` shaded colour in the albedo's space.
    """
    g = gamma.reshape(-1, 9, 3)
    return albedo * (sh_basis(normals) @ g)


def ambient_sh(level: float = 1.0, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(27,)`` coefficients of a uniform white light that gives shading ``level`` everywhere."""
    g = torch.zeros(27, dtype=dtype)
    g[0:3] = level / SH_CONSTANTS[0]
    return g


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals (the tracker's definition).

    Args:
        verts: ``(B, N, 3)`` vertices (any frame; the normals are in the same frame).
        faces: ``(T, 3)`` int64 triangles; ``(v1 - v0) x (v2 - v0)`` is the outward face normal.
    Returns:
        ``(B, N, 3)`` unit normals (zero-length sums, e.g. unused vertices, give (0, 0, 0)). Differentiable.
    """
    v0 = verts[:, faces[:, 0]]
    v1 = verts[:, faces[:, 1]]
    v2 = verts[:, faces[:, 2]]
    fn = torch.linalg.cross(v1 - v0, v2 - v0)  # (B, T, 3), length = 2 * area
    acc = torch.zeros_like(verts)
    for k in range(3):
        acc = acc.index_add(1, faces[:, k], fn)
    norm: torch.Tensor = torch.linalg.vector_norm(acc, dim=-1, keepdim=True)
    out: torch.Tensor = acc / norm.clamp_min(1e-12)
    return out
