"""Shared test meshes for the renderer tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


def _uv_sphere(nu: int = 16, nv: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A closed unit UV sphere: ``(vertices (V, 3), triangles (T, 3))``, wound so that
    ``(v1 - v0) x (v2 - v0)`` points out; ``nu`` segments around, ``nv`` rings pole to pole."""
    th = np.linspace(0, np.pi, nv + 1)[1:-1]
    ph = np.linspace(0, 2 * np.pi, nu, endpoint=False)
    pts = [[0.0, 0.0, 1.0]] + [
        [np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)] for t in th for p in ph
    ]
    pts.append([0.0, 0.0, -1.0])

    def ring(i: int, j: int) -> int:
        return 1 + i * nu + (j % nu)

    faces = [[0, ring(0, j), ring(0, j + 1)] for j in range(nu)]
    for i in range(nv - 2):
        for j in range(nu):
            faces += [
                [ring(i, j), ring(i + 1, j), ring(i + 1, j + 1)],
                [ring(i, j), ring(i + 1, j + 1), ring(i, j + 1)],
            ]
    faces += [[len(pts) - 1, ring(nv - 2, j + 1), ring(nv - 2, j)] for j in range(nu)]
    return np.asarray(pts), np.asarray(faces)


@pytest.fixture
def uv_sphere() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """The UV-sphere factory ``uv_sphere(nu=16, nv=10)``."""
    return _uv_sphere
