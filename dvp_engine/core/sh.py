"""Spherical-harmonics lighting (paper eq. 3), written once for numpy, CuPy and torch.

Nine real SH basis functions (bands 0-2) with the irradiance convolution folded in (Ramamoorthi and Hanrahan
2001): band l is multiplied by pi, 2 pi / 3, pi / 4. Order of the basis: ``1, y, z, x, xy, yz, 3z^2 - 1, xz,
x^2 - y^2``, normals in the camera frame (OpenCV: x right, y down, z forward). The 27 light coefficients are
indexed ``3 * band + channel`` (RGB). ``gamma[c] = 1 / SH_CONSTANTS[0]`` (others 0) is a uniform white light
giving shading 1.

The functions take the array namespace as their first argument (``numpy``, ``cupy`` or ``torch``), so the
tracker (numpy/CuPy) and the renderer (torch) share one definition.
"""

from __future__ import annotations

import math
from typing import Any

_C0 = 1.0 / (2.0 * math.sqrt(math.pi))
_C1 = math.sqrt(3.0 / (4.0 * math.pi))
_C2 = 3.0 * math.sqrt(5.0 / (12.0 * math.pi))
_C3 = 0.5 * math.sqrt(5.0 / (4.0 * math.pi))
_C4 = 1.5 * math.sqrt(5.0 / (12.0 * math.pi))

#: The five distinct constants (band 0; band 1; xy, yz, xz; 3z^2-1; x^2-y^2), irradiance factors included.
SH_CONSTANTS: tuple[float, float, float, float, float] = (
    math.pi * _C0,
    2.0 * math.pi / 3.0 * _C1,
    math.pi / 4.0 * _C2,
    math.pi / 4.0 * _C3,
    math.pi / 4.0 * _C4,
)


def sh_basis(xp: Any, normals: Any) -> Any:
    """The 9 SH basis values of unit normals: ``(..., 3)`` -> ``(..., 9)``, in ``normals``' array type.

    Args:
        xp: the array namespace of ``normals`` (``numpy``, ``cupy`` or ``torch``).
        normals: ``(..., 3)`` unit normals, camera frame.
    """
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    a0, a1, a2, a3, a4 = SH_CONSTANTS
    return xp.stack(
        [
            a0 * xp.ones_like(x),
            a1 * y,
            a1 * z,
            a1 * x,
            a2 * x * y,
            a2 * y * z,
            a3 * (3.0 * z * z - 1.0),
            a2 * x * z,
            a4 * (x * x - y * y),
        ],
        axis=-1,
    )
