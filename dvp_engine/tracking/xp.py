"""Array-API helpers for the tracker: the same code runs on numpy (CPU) and CuPy (CUDA).

Every function takes the array namespace ``xp`` (``numpy`` or ``cupy``) explicitly or infers it from its
inputs, and uses only operations both libraries provide with the same semantics: no ``np.add.at``, no
fancy-index assignment with repeated indices (last-writer-wins is undefined on CUDA). Scatter-adds are
written with ``bincount`` and segment minima with a sort.
"""

from __future__ import annotations

import contextlib
import ctypes
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

Array = Any
"""A numpy or CuPy array (the tracker does not depend on CuPy's type stubs)."""


def get_xp(device: str = "cpu") -> types.ModuleType:
    """The array module for a device: ``numpy`` for ``"cpu"``, ``cupy`` for ``"cuda"`` (or ``"cuda:N"``).

    Raises:
        RuntimeError: ``"cuda"`` asked but CuPy or a CUDA device is not available (the message says how to
            install it).
    """
    if device == "cpu":
        return np
    if device.startswith("cuda"):
        try:
            import cupy
        except ImportError as exc:  # pragma: no cover - depends on the machine
            raise RuntimeError(
                "device 'cuda' needs CuPy: pip install 'dvp[cuda]' (cupy-cuda12x) on a machine with a CUDA GPU"
            ) from exc
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # pragma: no cover
            raise RuntimeError(f"device 'cuda': CuPy finds no usable CUDA device ({exc})") from exc
        if n < 1:  # pragma: no cover
            raise RuntimeError("device 'cuda': no CUDA device present")
        if ":" in device:
            cupy.cuda.Device(int(device.split(":", 1)[1])).use()
        module: types.ModuleType = cupy
        return module
    raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda'")


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        get_xp("cuda")
    except (RuntimeError, ImportError):
        return False
    return True


def namespace_of(a: Array) -> types.ModuleType:
    """``numpy`` or ``cupy``, whichever owns ``a``."""
    mod = type(a).__module__
    if mod.startswith("cupy"):
        import cupy

        module: types.ModuleType = cupy
        return module
    return np


def asnumpy(a: Array) -> np.ndarray:
    """A numpy copy/view of a numpy or CuPy array."""
    if hasattr(a, "get") and type(a).__module__.startswith("cupy"):
        out: np.ndarray = a.get()
        return out
    return np.asarray(a)


def euler_rotation(xp: types.ModuleType, angles: Array) -> tuple[Array, Array]:
    """Rotation matrices and their derivatives for Euler angles ``R = Rz(rz) @ Ry(ry) @ Rx(rx)``.

    Args:
        xp: array namespace.
        angles: ``(B, 3)`` radians ``(rx, ry, rz)``.

    Returns:
        ``R (B, 3, 3)`` and ``dR (B, 3, 3, 3)`` with ``dR[:, k] = dR/d angle_k``.
    """
    cx, cy, cz = xp.cos(angles[:, 0]), xp.cos(angles[:, 1]), xp.cos(angles[:, 2])
    sx, sy, sz = xp.sin(angles[:, 0]), xp.sin(angles[:, 1]), xp.sin(angles[:, 2])
    zero = xp.zeros_like(cx)
    one = xp.ones_like(cx)

    def mat(rows: list[list[Array]]) -> Array:
        return xp.stack([xp.stack(r, axis=-1) for r in rows], axis=-2)

    rx = mat([[one, zero, zero], [zero, cx, -sx], [zero, sx, cx]])
    ry = mat([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    rz = mat([[cz, -sz, zero], [sz, cz, zero], [zero, zero, one]])
    drx = mat([[zero, zero, zero], [zero, -sx, -cx], [zero, cx, -sx]])
    dry = mat([[-sy, zero, cy], [zero, zero, zero], [-cy, zero, -sy]])
    drz = mat([[-sz, -cz, zero], [cz, -sz, zero], [zero, zero, zero]])
    rzy = rz @ ry
    r = rzy @ rx
    dr = xp.stack([rzy @ drx, rz @ dry @ rx, drz @ ry @ rx], axis=1)
    return r, dr


def bilinear_sample(xp: types.ModuleType, images: Array, x: Array, y: Array) -> tuple[Array, Array]:
    """Sample images at sub-pixel positions with bilinear interpolation (border clamped).

    Args:
        xp: array namespace.
        images: ``(B, H, W, C)`` of any numeric dtype (uint8 frames are sampled without a full conversion);
            pixel ``(0, 0)``'s centre at coordinate ``(0, 0)``.
        x, y: ``(B, M)`` pixel coordinates.

    Returns:
        ``values (B, M, C)`` in the coordinates' float dtype and ``inside (B, M)`` bool (the point lies within the image).
    """
    b, h, w, c = images.shape
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    xc = xp.clip(x, 0.0, w - 1.000001)
    yc = xp.clip(y, 0.0, h - 1.000001)
    x0 = xp.floor(xc).astype(xp.int64)
    y0 = xp.floor(yc).astype(xp.int64)
    fx = (xc - x0)[..., None]
    fy = (yc - y0)[..., None]
    flat = images.reshape(b * h * w, c)
    base = (xp.arange(b, dtype=xp.int64) * (h * w))[:, None]
    i00 = base + y0 * w + x0
    ft = fx.dtype
    v00 = flat[i00].astype(ft)
    v01 = flat[i00 + 1].astype(ft)
    v10 = flat[i00 + w].astype(ft)
    v11 = flat[i00 + w + 1].astype(ft)
    top = v00 + (v01 - v00) * fx
    bot = v10 + (v11 - v10) * fx
    return top + (bot - top) * fy, inside


def box_blur(xp: types.ModuleType, images: Array, radius: int) -> Array:
    """Separable box blur of ``(B, H, W, C)`` images with a ``(2 radius + 1)`` window (edge clamped)."""
    if radius <= 0:
        return images
    k = 2 * radius + 1
    out = images
    for axis in (1, 2):
        n = out.shape[axis]
        pad = [(0, 0)] * 4
        pad[axis] = (radius + 1, radius)
        padded = xp.pad(out, pad, mode="edge")
        cs = xp.cumsum(padded, axis=axis)
        hi = xp.take(cs, xp.arange(k, k + n), axis=axis)
        lo = xp.take(cs, xp.arange(0, n), axis=axis)
        out = (hi - lo) / k
    return out


def segment_min_mask(xp: types.ModuleType, keys: Array, values: Array, tol: Array | float) -> Array:
    """For each element, whether its value is within ``tol`` of the minimum value of its key group.

    A sort-based segment minimum (works on numpy and CuPy alike): a coarse z-buffer where ``keys`` are
    (frame, cell) indices and ``values`` depths.

    Args:
        keys: ``(K,)`` int64 group keys.
        values: ``(K,)`` float values.
        tol: tolerance added to the group minimum (scalar or ``(K,)``).

    Returns:
        ``(K,)`` bool.
    """
    order = xp.argsort(values)
    # a stable sort by key of the value-sorted order leaves each group's minimum first
    order = order[xp.argsort(keys[order], kind="stable")]
    sorted_keys = keys[order]
    first = xp.searchsorted(sorted_keys, keys, side="left")
    group_min = values[order][first]
    return values <= group_min + tol


def scatter_add_rows(xp: types.ModuleType, index: Array, values: Array, n: int) -> Array:
    """``out[index[i]] += values[i]`` for ``(K,)`` indices and ``(K, D)`` values, via ``bincount``."""
    cols = [xp.bincount(index, weights=values[:, d], minlength=n) for d in range(values.shape[1])]
    return xp.stack(cols, axis=1)


def cholesky_solve(xp: types.ModuleType, a: Array, b: Array) -> Array:
    """Solve batched symmetric positive-definite systems ``a x = b`` by Cholesky factorisation.

    Args:
        a: ``(..., P, P)`` SPD matrices.
        b: ``(..., P)`` right-hand sides.

    Returns:
        ``(..., P)`` solutions. The two triangular solves use ``xp.linalg.solve`` on the factor (batched on both
        numpy and CuPy; the factor's triangular structure is not exploited, the cost is dominated by the
        factorisation for the tracker's P <= a few hundred).
    """
    lower = xp.linalg.cholesky(a)
    y = xp.linalg.solve(lower, b[..., None])
    x = xp.linalg.solve(xp.swapaxes(lower, -1, -2), y)
    return x[..., 0]


def gram(xp: types.ModuleType, jac: Array, r: Array) -> tuple[Array, Array]:
    """Normal-equation products ``J^T J (B, P, P)`` and ``J^T r (B, P)`` of a batch ``jac (B, R, P)``, ``r (B, R)``.

    numpy's batched ``matmul`` on a transposed view does not reach BLAS (about 8x slower), so on the CPU each
    frame's product is one BLAS call; CuPy's batched matmul is used as is.
    """
    if xp is np:
        a = np.stack([j.T @ j for j in jac])
        g = np.stack([j.T @ v for j, v in zip(jac, r, strict=True)])
        return a, g
    jt = xp.swapaxes(jac, 1, 2)
    return jt @ jac, (jt @ r[..., None])[..., 0]


def matmul_tn(xp: types.ModuleType, a: Array, b: Array) -> Array:
    """Batched ``a^T b``: ``(B, R, P) x (B, R, Q) -> (B, P, Q)`` (one BLAS call per frame on numpy)."""
    if xp is np:
        return np.stack([u.T @ v for u, v in zip(a, b, strict=True)])
    return xp.swapaxes(a, 1, 2) @ b


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[bool]:
    """Limit numpy's OpenBLAS to ``n`` threads inside the block (restored afterwards); yields whether it could.

    The tracker's normal equations are small (99 x 99 per frame): one BLAS thread per call is as fast on a quiet
    machine and several times faster on a busy one (threads spinning against other processes: 23 vs 84 ms/frame
    measured with 2 cores under load). Finds the OpenBLAS library numpy loaded (``/proc/self/maps``) and calls its
    ``*openblas_set_num_threads*``; does nothing where that is not available (``n`` None, other BLAS, no /proc).
    """
    lib = _openblas() if n is not None else None
    if lib is None:
        yield False
        return
    get, set_ = lib
    before = int(get())
    set_(int(n))  # type: ignore[arg-type]
    try:
        yield True
    finally:
        set_(before)


_OPENBLAS: list[Any] = []


def _openblas() -> tuple[Any, Any] | None:
    if _OPENBLAS:
        return _OPENBLAS[0]  # type: ignore[no-any-return]
    found = None
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line})
        for path in paths:
            lib = ctypes.CDLL(path)
            for prefix, suffix in (
                ("scipy_openblas", "64_"),
                ("scipy_openblas", ""),
                ("openblas", "64_"),
                ("openblas", ""),
            ):
                g, s = f"{prefix}_get_num_threads{suffix}", f"{prefix}_set_num_threads{suffix}"
                if hasattr(lib, g) and hasattr(lib, s):
                    found = (getattr(lib, g), getattr(lib, s))
                    break
            if found:
                break
    except OSError:
        found = None
    _OPENBLAS.append(found)
    return found
