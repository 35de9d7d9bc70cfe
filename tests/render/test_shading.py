"""SH shading (paper eq. 3) against a direct evaluation, vertex normals, and agreement with the tracker."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from dvp_engine.render.shading import SH_CONSTANTS, ambient_sh, sh_basis, sh_shade, vertex_normals

# standard real SH basis constants (Ramamoorthi and Hanrahan 2001; Sloan's "Stupid SH tricks")
Y00 = 0.282095
Y1 = 0.488603
Y2_XY = 1.092548
Y20 = 0.315392
Y22 = 0.546274
# Lambertian convolution factors per band
A0, A1, A2 = math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0


def _direct_eq3(r: np.ndarray, n: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """B(r, n, gamma) = r * sum_b gamma_b Y_b(n), one vertex at a time, written out term by term."""
    x, y, z = n
    basis = [
        A0 * Y00,
        A1 * Y1 * y,
        A1 * Y1 * z,
        A1 * Y1 * x,
        A2 * Y2_XY * x * y,
        A2 * Y2_XY * y * z,
        A2 * Y20 * (3 * z * z - 1),
        A2 * Y2_XY * x * z,
        A2 * Y22 * (x * x - y * y),
    ]
    out = np.zeros(3)
    for c in range(3):
        out[c] = r[c] * sum(gamma[3 * b + c] * basis[b] for b in range(9))
    return out


def test_sh_shading_matches_direct_evaluation_of_eq3() -> None:
    rng = np.random.default_rng(5)
    n = rng.normal(size=(2, 17, 3))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[0, 0] = [0, 0, -1]  # facing the camera
    n[0, 1] = [1, 0, 0]
    albedo = rng.uniform(0.1, 0.9, size=(2, 17, 3))
    gamma = rng.normal(scale=0.5, size=(2, 27))
    got = sh_shade(torch.tensor(albedo), torch.tensor(n), torch.tensor(gamma)).numpy()
    for b in range(2):
        for i in range(17):
            np.testing.assert_allclose(
                got[b, i], _direct_eq3(albedo[b, i], n[b, i], gamma[b]), rtol=2e-6, atol=1e-6
            )


def test_sh_constants_are_the_documented_values() -> None:
    np.testing.assert_allclose(SH_CONSTANTS, [0.886227, 1.023327, 0.858086, 0.247708, 0.429043], atol=1e-6)
    # ambient light of level 0.8 shades every normal by 0.8
    n = torch.nn.functional.normalize(torch.randn(1, 50, 3, dtype=torch.float64), dim=-1)
    out = sh_shade(torch.ones(1, 50, 3, dtype=torch.float64), n, ambient_sh(0.8, dtype=torch.float64))
    torch.testing.assert_close(out, torch.full_like(out, 0.8))


def test_single_band_picks_its_channel() -> None:
    # gamma index 3 * b + c: band 3 (x) in the green channel only
    g = torch.zeros(27, dtype=torch.float64)
    g[3 * 3 + 1] = 1.0
    n = torch.tensor([[[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]], dtype=torch.float64)
    out = sh_shade(torch.ones(1, 2, 3, dtype=torch.float64), n, g)
    torch.testing.assert_close(
        out[0, :, 1], torch.tensor([SH_CONSTANTS[1], -SH_CONSTANTS[1]], dtype=torch.float64)
    )
    assert float(out[..., 0].abs().max()) == 0.0 and float(out[..., 2].abs().max()) == 0.0


def test_vertex_normals_of_a_sphere_point_outward(uv_sphere: Any) -> None:
    # UV sphere, triangles wound so that (v1 - v0) x (v2 - v0) points out
    v, faces = uv_sphere(24, 12)
    n = vertex_normals(torch.tensor(v[None]), torch.tensor(faces))[0].numpy()
    cos = np.sum(n * v, axis=-1)
    assert cos.min() > 0.99
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-12)


def test_basis_agrees_with_the_tracker() -> None:
    solver = pytest.importorskip("dvp_engine.tracking.solver")
    n = np.random.default_rng(6).normal(size=(40, 3))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    np.testing.assert_allclose(sh_basis(torch.tensor(n)).numpy(), solver.sh_basis(np, n), atol=1e-12)
    v = np.random.default_rng(7).normal(size=(1, 30, 3))
    f = np.array([[0, 1, 2], [2, 3, 4], [4, 5, 6], [1, 5, 9], [10, 11, 12]] * 1)
    ours = vertex_normals(torch.tensor(v), torch.tensor(f)).numpy()
    theirs = solver.vertex_normals(np, v, f)
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
