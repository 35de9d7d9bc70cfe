"""IRLS Gauss-Newton for the paper's reconstruction energy (eq. 4), written once against an array namespace.

Energy per frame (paper section 4; Thies et al. 2016)::

    E = w_land * E_land + w_photo * E_photo + E_reg
    E_land  = 1/L  sum_k  c_k * |Pi(R v_k + t) - l_k|^2 / s^2          (dlib-68 landmarks l_k, face size s in px)
    E_photo = 1/M  sum_i  vis_i * |albedo_i * (Y(n_i) . gamma) - I(Pi(R v_i + t))|_2   (robust l1, per vertex)
    E_reg   = w_expr sum (delta/sigma)^2 + w_id sum (alpha/sigma)^2 + w_refl sum (beta/sigma)^2
              + w_sh |gamma - gamma_ambient|^2 + w_blink |blink|^2

* landmark weights ``c_k``: the jaw contour (0-16) is downweighted (its model vertices are fixed while the
  real contour slides with the head's silhouette); the detector's per-landmark confidence multiplies in;
* the photometric term samples the frame at the projected vertices with bilinear interpolation and compares
  with the model colour: albedo times SH shading (eq. 3, 9 bands x RGB, coefficient ``3 * band + channel``,
  normals in the camera frame, the basis :func:`sh_basis`); it runs over a fixed subset of model vertices
  (eye openings excluded), each weighted by its visibility (back-face test, grazing-angle test and a coarse
  z-buffer built by sorting: :func:`visibility`), recomputed at every linearisation;
* robust l1 by IRLS: each iteration weights the vertex residual by ``1 / max(|r_i|, eps)``;
* Gauss-Newton with the **explicit** Jacobian: perspective projection, the Euler-rotation derivatives
  (:func:`~dvp_engine.tracking.xp.euler_rotation`), the linear expression/identity/blink bases, the SH and
  albedo linear parts, and the shading's change under head rotation (camera-frame normals turn with the
  head: exact). The normals' dependence on the shape parameters (expression, identity, blinks) is treated as
  constant within an iteration (as in most GPU face trackers): only their image-gradient path is kept. Normal equations ``(J^T W J + D) dx = -(J^T W r + g_reg)`` are assembled by
  matrix products and solved by Cholesky (:func:`~dvp_engine.tracking.xp.cholesky_solve`) with Levenberg
  damping ``D = lambda * diag(J^T W J) + regulariser``; a step is kept per frame only where the energy drops,
  else lambda grows (Levenberg-Marquardt).

Tracking mode: per frame the local parameters (pose 6, expression 64, blink 2, SH 27 = 99 unknowns), a batch of
frames solved at once as a block-diagonal system (batched Cholesky on ``(B, 99, 99)``). Identity mode: the
shared identity alpha (80) and reflectance beta (80) plus per-keyframe local parameters, one dense system.

All arrays live in ``xp`` (numpy or CuPy): the same functions run on the CPU and on CUDA.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dvp_engine.core import sh as _sh

from .xp import (
    Array,
    asnumpy,
    bilinear_sample,
    cholesky_solve,
    euler_rotation,
    gram,
    matmul_tn,
    namespace_of,
    scatter_add_rows,
    segment_min_mask,
)

# ---------------------------------------------------------------------------------------------------- layout
#: Local (per-frame) unknowns in the solver's own order (not the FaceTrack packed order).
ROT = slice(0, 3)
TRANS = slice(3, 6)
EXPR = slice(6, 70)
BLINK = slice(70, 72)
SH = slice(72, 99)
N_LOCAL = 99
N_GEOM = 72  # rotation, translation, expression, blink: the columns that move vertices
ALPHA = slice(0, 80)
BETA = slice(80, 160)
N_SHARED = 160

JAW = slice(0, 17)  # dlib contour landmarks

# ---------------------------------------------------------------------------------------------------- SH basis
#: Irradiance-convolved real SH constants, shared with the renderer (see :mod:`dvp_engine.core.sh`).
SH_CONSTANTS = _sh.SH_CONSTANTS


def sh_basis(xp: types.ModuleType, normals: Array) -> Array:
    """The 9 SH basis values for unit normals.

    Args:
        normals: ``(..., 3)`` unit normals (camera frame).

    Returns:
        ``(..., 9)``; shading per colour channel c is ``sum_b Y_b * gamma[3 b + c]``. The constant band is
        ``SH_CONSTANTS[0]``, so ``gamma[c] = 1 / SH_CONSTANTS[0]`` (others 0) gives shading 1 (ambient white).
    """
    return _sh.sh_basis(xp, normals)


def sh_basis_grad(xp: types.ModuleType, normals: Array) -> Array:
    """Derivatives of :func:`sh_basis` with respect to the normal's components: ``(..., 9, 3)``."""
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    a0, a1, a2, a3, a4 = SH_CONSTANTS
    zero = xp.zeros_like(x)
    one = xp.ones_like(x)
    rows = [
        [zero, zero, zero],
        [zero, a1 * one, zero],
        [zero, zero, a1 * one],
        [a1 * one, zero, zero],
        [a2 * y, a2 * x, zero],
        [zero, a2 * z, a2 * y],
        [zero, zero, 6.0 * a3 * z],
        [a2 * z, zero, a2 * x],
        [2.0 * a4 * x, -2.0 * a4 * y, zero],
    ]
    return xp.stack([xp.stack(r, axis=-1) for r in rows], axis=-2)


def ambient_sh(xp: types.ModuleType, level: float = 1.0) -> Array:
    """``(27,)`` SH coefficients of a uniform white light giving shading ``level``."""
    g = xp.zeros(27, dtype=xp.float64)
    g[0:3] = level / SH_CONSTANTS[0]
    return g


# ---------------------------------------------------------------------------------------------------- settings
@dataclass
class SolverSettings:
    """Weights and iteration counts of the energy and the solver (defaults tuned on the sample clips).

    Attributes:
        w_land: landmark term weight (the landmark residual is in units of the face size ``s``, the
            detected inter-ocular distance in pixels).
        w_photo: photometric term weight (l1 of sRGB colour differences in [0, 1]).
        w_expr, w_id, w_refl: statistical regulariser weights on coefficient / std.
        w_sh: weight pulling the SH coefficients toward uniform ambient light (keeps albedo/light separable).
        w_blink: tiny prior pulling blinks toward open (kept far below the expression prior so that eyelid
            closure is explained by the blink dimensions, not by blink-like expression components).
        w_blink_obs: weight pulling each frame's blinks toward the landmarks' eye-aspect-ratio closure
            (:func:`dvp_engine.tracking.eyes.blink_measure`, when the tracker passes it: ``Observations.blink``;
            clips of at least ``TrackerSettings.blink_obs_min_frames`` frames). Without it the lids' closing
            was mostly taken by blink-like expression components and the blink channel rarely reached 0.5.
        jaw_weight: landmark weight of the contour points 0-16 (others 1).
        irls_eps: floor of the vertex residual norm in the IRLS weights.
        damping: initial Levenberg lambda (relative to the diagonal of J^T W J).
        iterations: Gauss-Newton iterations per frame in tracking mode.
        identity_iterations: iterations of the joint identity solve.
        landmark_iterations: landmark-only iterations used to initialise the pose of a frame.
        n_photo_vertices: size of the photometric vertex subset (<= N; chosen once, deterministic).
        grazing_cos: vertices whose normal is closer than this cosine to perpendicular to the view ray are not
            used photometrically (silhouette pixels mix with the background).
        depth_tolerance: metres; a vertex within this of its z-buffer cell's nearest depth counts as visible.
    """

    w_land: float = 1.0
    w_photo: float = 0.05
    w_expr: float = 5.0e-6
    w_id: float = 1.0e-4
    w_refl: float = 1.0e-5
    w_sh: float = 1.0e-4
    w_blink: float = 1.0e-7
    w_blink_obs: float = 0.003
    jaw_weight: float = 0.2
    irls_eps: float = 0.02
    damping: float = 1.0e-3
    iterations: int = 4
    identity_iterations: int = 8
    landmark_iterations: int = 4
    n_photo_vertices: int = 400
    grazing_cos: float = 0.25
    depth_tolerance: float = 0.01

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy (stored in the track's metadata)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# ---------------------------------------------------------------------------------------------------- model
@dataclass
class ModelArrays:
    """The face model's arrays in the solver's namespace, float64 (see :func:`prepare_model`)."""

    xp: types.ModuleType
    n: int
    mean: Array  # (N, 3)
    id_basis: Array  # (80, 3N)
    expr_basis: Array  # (64, 3N)
    blink_basis: Array  # (2, 3N)
    id_std: Array
    expr_std: Array
    albedo_mean: Array  # (N, 3)
    albedo_basis: Array  # (80, N, 3)
    albedo_std: Array
    faces: Array  # (T, 3) int64
    landmarks: Array  # (68,) int64
    photo: Array  # (M,) int64
    eye_centres: Array  # (2, 3) left, right
    eye_loops: tuple[Array, Array]  # vertex loops of the eye openings (left, right)
    eyeball_radius: float
    iris_radius: float
    used: Array = field(init=False)  # (68 + M,) landmarks then photometric vertices
    id_used: Array = field(init=False)  # (U, 3, 80)
    expr_used: Array = field(init=False)  # (U, 3, 64)
    blink_used: Array = field(init=False)  # (U, 3, 2)

    def __post_init__(self) -> None:
        xp = self.xp
        self.used = xp.concatenate([self.landmarks, self.photo])
        u = self.used

        def per_vertex(basis: Array) -> Array:
            k = basis.shape[0]
            return xp.ascontiguousarray(xp.transpose(basis.reshape(k, self.n, 3)[:, u], (1, 2, 0)))

        self.id_used = per_vertex(self.id_basis)
        self.expr_used = per_vertex(self.expr_basis)
        self.blink_used = per_vertex(self.blink_basis)

    @property
    def n_landmarks(self) -> int:
        return int(self.landmarks.shape[0])

    def shape(self, alpha: Array | None) -> Array:
        """Identity shape ``(N, 3)`` (or ``(B, N, 3)`` for batched alpha)."""
        if alpha is None:
            return self.mean
        s = alpha @ self.id_basis
        return self.mean + s.reshape(*alpha.shape[:-1], self.n, 3)

    def eyeball_centres(self, shape: Array, expression: Array) -> Array:
        """Eyeball centres ``(B, 2, 3)`` that follow the face: the model's centres moved by the mean
        displacement (identity + expression, blinks excluded) of each eye opening's vertices."""
        xp = self.xp
        b = expression.shape[0]
        out = xp.zeros((b, 2, 3))
        for e, loop in enumerate(self.eye_loops):
            base = shape[loop].mean(axis=0) - self.mean[loop].mean(axis=0)  # identity
            eb = self.expr_basis.reshape(-1, self.n, 3)[:, loop].mean(axis=1)  # (64, 3)
            out[:, e] = self.eye_centres[e] + base + expression @ eb
        return out

    def albedo(self, beta: Array | None) -> Array:
        """Albedo ``(N, 3)`` for reflectance ``beta (80,)``."""
        if beta is None:
            return self.albedo_mean
        return self.albedo_mean + self.xp.tensordot(beta, self.albedo_basis, axes=1)


def boundary_vertices(faces: np.ndarray, n: int) -> np.ndarray:
    """``(N,)`` bool: vertices on an edge used by only one triangle (mesh outline, eye and mouth openings)."""
    f = np.asarray(faces, np.int64)
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    out = np.zeros(n, bool)
    out[uniq[counts == 1].reshape(-1)] = True
    return out


def photometric_vertices(model: Any, count: int) -> np.ndarray:
    """A deterministic subset of model vertices for the photometric term.

    Excluded: vertices on the mesh boundary (the face outline, whose pixels mix with hair and background, and
    the eye and mouth openings) and the eye loops (their colour follows the gaze, not the skin).
    """
    n = int(model.mean_shape.shape[0])
    used = np.zeros(n, bool)
    used[np.asarray(model.faces).reshape(-1)] = True
    faces = np.asarray(model.faces, np.int64)
    edge = boundary_vertices(faces, n)
    for loop in (model.eye_left_loop, model.eye_right_loop, getattr(model, "mouth_loop", None)):
        if loop is not None:
            edge[np.asarray(loop)] = True
    # and their one-ring: at tracking resolutions a pixel next to an opening mixes in what is behind it
    ring = edge.copy()
    touching = edge[faces].any(axis=1)
    ring[faces[touching].reshape(-1)] = True
    used &= ~ring
    idx = np.flatnonzero(used)
    if count < idx.size:
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(idx, size=count, replace=False))
    return idx.astype(np.int64)


def prepare_model(model: Any, xp: types.ModuleType, settings: SolverSettings) -> ModelArrays:
    """Copy a :class:`~dvp_engine.facemodel.FaceModel` into ``xp`` float64 arrays for the solver."""
    n = int(model.mean_shape.shape[0])

    def f(a: Any) -> Array:
        return xp.asarray(np.asarray(a, dtype=np.float64))

    def i(a: Any) -> Array:
        return xp.asarray(np.asarray(a, dtype=np.int64))

    return ModelArrays(
        xp=xp,
        n=n,
        mean=f(model.mean_shape),
        id_basis=f(np.asarray(model.id_basis).reshape(-1, 3 * n)),
        expr_basis=f(np.asarray(model.expr_basis).reshape(-1, 3 * n)),
        blink_basis=f(np.asarray(model.blink_basis).reshape(-1, 3 * n)),
        id_std=f(np.maximum(model.id_std, 1e-6)),
        expr_std=f(np.maximum(model.expr_std, 1e-6)),
        albedo_mean=f(model.mean_albedo),
        albedo_basis=f(model.albedo_basis),
        albedo_std=f(np.maximum(model.albedo_std, 1e-6)),
        faces=i(model.faces),
        landmarks=i(model.landmarks68),
        photo=i(photometric_vertices(model, settings.n_photo_vertices)),
        eye_centres=f(np.stack([model.eyeball_left_center, model.eyeball_right_center])),
        eye_loops=(i(model.eye_left_loop), i(model.eye_right_loop)),
        eyeball_radius=float(model.eyeball_radius),
        iris_radius=float(model.iris_radius),
    )


# ---------------------------------------------------------------------------------------------------- data
@dataclass
class Observations:
    """One batch of frames in ``xp``.

    Attributes:
        images: ``(B, H, W, 3)`` sRGB frames, uint8 or float (multiplied by ``image_scale`` after sampling,
            so uint8 frames need no conversion), or None (landmark-only fitting).
        landmarks: ``(B, 68, 2)`` detected pixel positions.
        landmark_weights: ``(B, 68)`` per-landmark confidence (0 = ignore).
        scale: ``(B,)`` face size in pixels (inter-ocular distance) normalising the landmark residual.
        intrinsics: ``(fx, fy, cx, cy)``.
        blink, blink_weight: ``(B, 2)`` measured eyelid closure (0 open .. 1 closed) and its weight (0 = none),
            the target of the ``w_blink_obs`` term; None: no such term.
    """

    images: Array | None
    landmarks: Array
    landmark_weights: Array
    scale: Array
    intrinsics: tuple[float, float, float, float]
    image_scale: float = 1.0
    blink: Array | None = None
    blink_weight: Array | None = None


@dataclass
class Linearisation:
    """Residuals and Jacobians of one batch at the current parameters (rows already weighted)."""

    r: Array  # (B, R)
    j_local: Array | None  # (B, R, 99)
    j_shared: Array | None  # (B, R, 160)
    energy: Array  # (B,) robust energy (data terms only)
    land_err: Array  # (B,) RMS landmark error in pixels (weighted landmarks)
    photo_err: Array  # (B,) mean l1 colour error over visible vertices
    n_visible: Array  # (B,)


# ---------------------------------------------------------------------------------------------------- geometry
def vertex_normals(xp: types.ModuleType, verts: Array, faces: Array) -> Array:
    """Area-weighted unit vertex normals ``(B, N, 3)`` of ``(B, N, 3)`` vertices (bincount scatter-add)."""
    b, n, _ = verts.shape
    v0 = verts[:, faces[:, 0]]
    v1 = verts[:, faces[:, 1]]
    v2 = verts[:, faces[:, 2]]
    fn = xp.cross(v1 - v0, v2 - v0)  # (B, T, 3), outward by the model's winding
    t = faces.shape[0]
    idx = (xp.arange(b, dtype=xp.int64)[:, None, None] * n + faces[None]).reshape(-1)  # (B*T*3,)
    vals = xp.broadcast_to(fn[:, :, None, :], (b, t, 3, 3)).reshape(-1, 3)
    acc = scatter_add_rows(xp, idx, vals, b * n).reshape(b, n, 3)
    norm = xp.sqrt(xp.sum(acc * acc, axis=-1, keepdims=True))
    return acc / xp.maximum(norm, 1e-12)


def project(xc: Array, intrinsics: tuple[float, float, float, float]) -> Array:
    """Pinhole projection of camera-frame points ``(..., 3)`` to pixels ``(..., 2)``."""
    fx, fy, cx, cy = intrinsics
    xp = namespace_of(xc)
    z = xp.maximum(xc[..., 2], 1e-6)
    return xp.stack([fx * xc[..., 0] / z + cx, fy * xc[..., 1] / z + cy], axis=-1)


def projection_jacobian(xc: Array, intrinsics: tuple[float, float, float, float]) -> Array:
    """``d pixel / d X_cam``: ``(..., 2, 3)``."""
    fx, fy, _, _ = intrinsics
    xp = namespace_of(xc)
    z = xp.maximum(xc[..., 2], 1e-6)
    iz = 1.0 / z
    zero = xp.zeros_like(z)
    row0 = xp.stack([fx * iz, zero, -fx * xc[..., 0] * iz * iz], axis=-1)
    row1 = xp.stack([zero, fy * iz, -fy * xc[..., 1] * iz * iz], axis=-1)
    return xp.stack([row0, row1], axis=-2)


def visibility(
    xp: types.ModuleType,
    xc: Array,
    normals: Array,
    pix: Array,
    subset: Array,
    settings: SolverSettings,
) -> Array:
    """Visibility weights of the subset's vertices: back-face + grazing test and a coarse z-buffer.

    Args:
        xc: ``(B, N, 3)`` camera-frame vertices; normals ``(B, N, 3)`` camera-frame unit normals.
        pix: ``(B, N, 2)`` projected vertices.
        subset: ``(M,)`` vertex indices to report.

    Returns:
        ``(B, M)`` float in {0, 1}. The z-buffer has cells about twice the mean projected vertex spacing; a
        vertex is visible where its depth is within ``depth_tolerance`` of the nearest front-facing vertex in
        its cell (a sort-based segment minimum, identical on numpy and CuPy).
    """
    b, n, _ = xc.shape
    ray = xc / xp.maximum(xp.sqrt(xp.sum(xc * xc, axis=-1, keepdims=True)), 1e-9)
    facing = -xp.sum(normals * ray, axis=-1)  # cos between the normal and the direction to the camera
    front = facing > 0.0
    span = xp.max(pix, axis=1) - xp.min(pix, axis=1)  # (B, 2)
    cell = 2.0 * xp.sqrt(xp.maximum(span[:, 0] * span[:, 1], 1.0) / n)  # (B,)
    cxy = xp.floor(pix / cell[:, None, None]).astype(xp.int64)
    cxy = xp.clip(cxy, -(2**20), 2**20) + 2**20
    key = (xp.arange(b, dtype=xp.int64)[:, None] * 2**21 + cxy[..., 1]) * 2**21 + cxy[..., 0]
    depth = xp.where(front, xc[..., 2], 1e6)
    near = segment_min_mask(xp, key.reshape(-1), depth.reshape(-1), settings.depth_tolerance).reshape(b, n)
    ok = near & (facing > settings.grazing_cos)
    return ok[:, subset].astype(xp.float64)


# ---------------------------------------------------------------------------------------------------- residuals
def linearise(
    m: ModelArrays,
    obs: Observations,
    local: Array,
    settings: SolverSettings,
    *,
    alpha: Array | None = None,
    beta: Array | None = None,
    shape: Array | None = None,
    albedo: Array | None = None,
    jacobian: bool = True,
    shared: bool = False,
    photometric: bool = True,
    irls_ref: Array | None = None,
) -> Linearisation:
    """Weighted residuals (and Jacobians) of a batch.

    Args:
        m: model arrays.
        obs: the batch's observations.
        local: ``(B, 99)`` local parameters (solver order: rotation, translation, expression, blink, SH).
        alpha, beta: ``(80,)`` shared identity/reflectance (identity mode) — or pass the precomputed
            ``shape (N, 3)`` and ``albedo (N, 3)`` (tracking mode).
        jacobian: also return Jacobians.
        shared: also return the Jacobian for alpha/beta (identity mode).
        photometric: include the photometric term (needs ``obs.images``).
        irls_ref: ``(B, M)`` vertex residual norms to weight by (IRLS); None uses the current residuals.

    Returns:
        :class:`Linearisation` with rows ``[landmarks x 2, photometric vertices x 3]``.
    """
    xp = m.xp
    b = local.shape[0]
    if shape is None:
        shape = m.shape(alpha)
    if albedo is None:
        albedo = m.albedo(beta)
    rot, dr = euler_rotation(xp, local[:, ROT])
    trans = local[:, TRANS]
    expr = local[:, EXPR]
    blink = local[:, BLINK]
    verts = shape.reshape(-1) + expr @ m.expr_basis + blink @ m.blink_basis  # (B, 3N)
    verts = verts.reshape(b, m.n, 3)
    xc = xp.einsum("bij,bnj->bni", rot, verts) + trans[:, None, :]
    pix = project(xc, obs.intrinsics)
    nl = m.n_landmarks

    # ---- landmark term
    lw = obs.landmark_weights * _landmark_prior(xp, nl, settings)[None]
    lnorm = xp.sqrt(settings.w_land * lw / max(nl, 1))[..., None] / obs.scale[:, None, None]  # (B, L, 1)
    dl = pix[:, m.landmarks] - obs.landmarks  # (B, L, 2)
    r_land = (dl * lnorm).reshape(b, -1)
    wsum = xp.maximum(xp.sum(lw, axis=1), 1e-9)
    land_err = xp.sqrt(xp.sum(lw * xp.sum(dl * dl, axis=-1), axis=1) / wsum)
    energy = xp.sum(r_land * r_land, axis=1)

    do_photo = photometric and obs.images is not None and settings.w_photo > 0
    mp = int(m.photo.shape[0]) if do_photo else 0
    photo_err = xp.zeros(b)
    n_vis = xp.zeros(b)
    r_parts = [r_land]
    if do_photo:
        normals = vertex_normals(xp, xc, m.faces)
        vis = visibility(xp, xc, normals, pix, m.photo, settings)
        pp = pix[:, m.photo]
        img, inside = bilinear_sample(xp, obs.images, pp[..., 0], pp[..., 1])
        img = img * obs.image_scale
        vis = vis * inside
        ysh = sh_basis(xp, normals[:, m.photo])  # (B, M, 9)
        gamma = local[:, SH].reshape(b, 9, 3)
        shading = xp.einsum("bmk,bkc->bmc", ysh, gamma)
        alb = albedo[m.photo] if albedo.ndim == 2 else albedo[:, m.photo]
        colour = alb * shading
        res = colour - img  # (B, M, 3)
        rnorm = xp.sqrt(xp.sum(res * res, axis=-1))
        n_vis = xp.sum(vis, axis=1)
        ref = rnorm if irls_ref is None else irls_ref
        wv = vis / xp.maximum(ref, settings.irls_eps)
        pscale = settings.w_photo / xp.maximum(n_vis, 1.0)  # (B,)
        roww = xp.sqrt(wv * pscale[:, None])  # (B, M)
        r_photo = (res * roww[..., None]).reshape(b, -1)
        r_parts.append(r_photo)
        photo_err = xp.sum(vis * rnorm, axis=1) / xp.maximum(n_vis, 1.0)
        energy = energy + pscale * xp.sum(vis * rnorm, axis=1)

    r = xp.concatenate(r_parts, axis=1) if len(r_parts) > 1 else r_land
    if not jacobian:
        return Linearisation(r, None, None, energy, land_err, photo_err, n_vis)

    # ---- Jacobian of the camera-frame positions of the used vertices
    used = m.used if do_photo else m.landmarks
    nu = int(used.shape[0])
    vu = verts[:, used]  # (B, U, 3)
    xcu = xc[:, used]
    n_cols = N_GEOM + (80 if shared else 0)
    dx = xp.zeros((b, nu, 3, n_cols))
    dx[..., 0:3] = xp.einsum("bkij,buj->buik", dr, vu)
    dx[..., 3:6] = xp.eye(3)[None, None]
    dx[..., EXPR] = xp.einsum("bij,ujk->buik", rot, m.expr_used[:nu])
    dx[..., BLINK] = xp.einsum("bij,ujk->buik", rot, m.blink_used[:nu])
    if shared:
        dx[..., N_GEOM:] = xp.einsum("bij,ujk->buik", rot, m.id_used[:nu])
    jp = projection_jacobian(xcu, obs.intrinsics)  # (B, U, 2, 3)
    jpix = jp @ dx  # (B, U, 2, n_cols)

    n_rows = 2 * nl + 3 * mp
    j_local = xp.zeros((b, n_rows, N_LOCAL))
    j_shared = xp.zeros((b, n_rows, N_SHARED)) if shared else None
    jl = jpix[:, :nl] * lnorm[..., None]  # (B, L, 2, n_cols)
    j_local[:, : 2 * nl, :N_GEOM] = jl[..., :N_GEOM].reshape(b, 2 * nl, N_GEOM)
    if shared and j_shared is not None:
        j_shared[:, : 2 * nl, ALPHA] = jl[..., N_GEOM:].reshape(b, 2 * nl, 80)
    if do_photo:
        gimg = image_gradient_at(xp, obs, pp)  # (B, M, 3, 2): dI_c / d(x, y)
        jg = -(gimg @ jpix[:, nl:])  # (B, M, 3, n_cols)
        # shading under rotation: camera-frame normals turn with the head, n = R n_model, so
        # d colour_c / d angle_k = albedo_c * sum_b gamma[b, c] * grad Y_b(n) . (dR_k n_model)   (exact)
        n_cam = normals[:, m.photo]
        n_model = xp.einsum("bji,bmj->bmi", rot, n_cam)
        dn = xp.einsum("bkij,bmj->bmki", dr, n_model)  # (B, M, 3 angles, 3)
        dy = xp.einsum("bmsj,bmkj->bmks", sh_basis_grad(xp, n_cam), dn)  # (B, M, 3 angles, 9)
        dshade = xp.einsum("bmks,bsc->bmck", dy, gamma)  # (B, M, 3 colours, 3 angles)
        jg[..., 0:3] = jg[..., 0:3] + alb[..., None] * dshade
        jg = jg * roww[..., None, None]
        j_local[:, 2 * nl :, :N_GEOM] = jg[..., :N_GEOM].reshape(b, 3 * mp, N_GEOM)
        # SH: d colour_c / d gamma[3k + c] = albedo_c * Y_k
        eye3 = xp.eye(3)
        jsh = (alb[..., :, None, None] * ysh[:, :, None, :, None] * eye3[None, None, :, None, :]).reshape(
            b, mp, 3, 27
        )
        j_local[:, 2 * nl :, SH] = (jsh * roww[..., None, None]).reshape(b, 3 * mp, 27)
        if shared and j_shared is not None:
            j_shared[:, 2 * nl :, ALPHA] = jg[..., N_GEOM:].reshape(b, 3 * mp, 80)
            # reflectance: d colour_c / d beta_k = albedo_basis[k, i, c] * shading_c
            ab = xp.transpose(m.albedo_basis[:, m.photo], (1, 2, 0))  # (M, 3, 80)
            jb = ab[None] * shading[..., None] * roww[..., None, None]
            j_shared[:, 2 * nl :, BETA] = jb.reshape(b, 3 * mp, 80)
    return Linearisation(r, j_local, j_shared, energy, land_err, photo_err, n_vis)


def image_gradient_at(xp: types.ModuleType, obs: Observations, pts: Array) -> Array:
    """Image derivatives at sub-pixel points by central differences of the bilinear image (step 1 pixel).

    Args:
        pts: ``(B, M, 2)`` pixel positions.

    Returns:
        ``(B, M, 3, 2)``: ``d I_c / d x`` and ``d I_c / d y`` per colour channel (sRGB per pixel).
    """
    x, y = pts[..., 0], pts[..., 1]
    xr, _ = bilinear_sample(xp, obs.images, x + 1.0, y)
    xl, _ = bilinear_sample(xp, obs.images, x - 1.0, y)
    yd, _ = bilinear_sample(xp, obs.images, x, y + 1.0)
    yu, _ = bilinear_sample(xp, obs.images, x, y - 1.0)
    s = 0.5 * obs.image_scale
    return xp.stack([(xr - xl) * s, (yd - yu) * s], axis=-1)


def _landmark_prior(xp: types.ModuleType, n: int, settings: SolverSettings) -> Array:
    w = xp.ones(n)
    if n == 68:
        w[JAW] = settings.jaw_weight
    return w


def local_regulariser(m: ModelArrays, settings: SolverSettings) -> tuple[Array, Array]:
    """Diagonal prior of the local parameters: ``(99,)`` weights and ``(99,)`` targets."""
    xp = m.xp
    w = xp.zeros(N_LOCAL)
    w[EXPR] = settings.w_expr / (m.expr_std * m.expr_std)
    w[BLINK] = settings.w_blink
    w[SH] = settings.w_sh
    target = xp.zeros(N_LOCAL)
    target[SH] = ambient_sh(xp)
    return w, target


def shared_regulariser(m: ModelArrays, settings: SolverSettings) -> Array:
    """Diagonal prior weights ``(160,)`` of identity and reflectance (target 0)."""
    xp = m.xp
    w = xp.zeros(N_SHARED)
    w[ALPHA] = settings.w_id / (m.id_std * m.id_std)
    w[BETA] = settings.w_refl / (m.albedo_std * m.albedo_std)
    return w


def _reg_energy(w: Array, x: Array, target: Array) -> Array:
    d = x - target
    return (d * d * w).sum(axis=-1)


def _clamp_local(xp: types.ModuleType, x: Array) -> Array:
    x[:, BLINK] = xp.clip(x[:, BLINK], 0.0, 1.0)
    x[:, 5] = xp.maximum(x[:, 5], 0.05)
    return x


# ---------------------------------------------------------------------------------------------------- solves
def solve_tracking(
    m: ModelArrays,
    obs: Observations,
    local: Array,
    settings: SolverSettings,
    *,
    shape: Array,
    albedo: Array,
    iterations: int | None = None,
    photometric: bool = True,
    active: Array | None = None,
) -> tuple[Array, Linearisation]:
    """Tracking mode: per-frame IRLS Levenberg-Marquardt on a batch (block-diagonal, batched Cholesky).

    Args:
        local: ``(B, 99)`` start values (warm start), solver order.
        shape, albedo: ``(N, 3)`` identity shape and albedo (held fixed).
        iterations: Gauss-Newton iterations (default ``settings.iterations``).
        photometric: False fits landmarks only (pose initialisation).
        active: ``(99,)`` bool mask of the parameters to solve (others held); default all (landmark-only
            fits exclude SH automatically).

    Returns:
        ``(local (B, 99), final linearisation without Jacobian)``.
    """
    xp = m.xp
    b = local.shape[0]
    x = xp.array(local, dtype=xp.float64, copy=True)
    n_iter = settings.iterations if iterations is None else iterations
    do_photo = photometric and obs.images is not None and settings.w_photo > 0
    if active is None:
        act = np.ones(N_LOCAL, bool)
        if not do_photo:
            act[SH] = False
    else:
        act = np.asarray(asnumpy(active), bool)
    idx = xp.asarray(np.flatnonzero(act))
    wreg, target = local_regulariser(m, settings)
    if obs.blink is not None and obs.blink_weight is not None and settings.w_blink_obs > 0:
        # per frame: the blink prior's target becomes the measured closure, weighted by its confidence
        wo = settings.w_blink_obs * obs.blink_weight  # (B, 2)
        wreg = xp.tile(wreg[None], (b, 1))
        target = xp.tile(target[None], (b, 1))
        wb = wreg[:, BLINK]
        target[:, BLINK] = (wb * target[:, BLINK] + wo * obs.blink) / (wb + wo)
        wreg[:, BLINK] = wb + wo
    lam = xp.full(b, settings.damping)
    kw = {"shape": shape, "albedo": albedo, "photometric": do_photo}
    lin = linearise(m, obs, x, settings, jacobian=True, **kw)
    e_cur = lin.energy + _reg_energy(wreg, x, target)
    all_active = bool(act.all())
    wr = wreg[..., idx]
    tg = target[..., idx]
    for it in range(n_iter):
        assert lin.j_local is not None
        jac = lin.j_local if all_active else lin.j_local[:, :, idx]
        a, g = gram(xp, jac, lin.r)
        g = g + wr * (x[:, idx] - tg)
        diag = xp.diagonal(a, axis1=1, axis2=2)
        p = a.shape[-1]
        eye = xp.eye(p)[None]
        a = a + eye * (wr + lam[:, None] * diag + 1e-9)[:, None, :]
        step = cholesky_solve(xp, a, -g)
        cand = x.copy()
        cand[:, idx] = x[:, idx] + step
        cand = _clamp_local(xp, cand)
        # linearise at the candidate; keep it per frame only where the energy dropped (Levenberg-Marquardt)
        lin_c = linearise(m, obs, cand, settings, jacobian=it < n_iter - 1, **kw)
        e_c = lin_c.energy + _reg_energy(wreg, cand, target)
        ok = e_c <= e_cur
        x = xp.where(ok[:, None], cand, x)
        lam = xp.clip(xp.where(ok, lam * 0.5, lam * 8.0), 1e-6, 1e4)
        e_cur = xp.where(ok, e_c, e_cur)
        lin = _select(xp, ok, lin_c, lin)
    final = Linearisation(lin.r, None, None, lin.energy, lin.land_err, lin.photo_err, lin.n_visible)
    return x, final


def _select(xp: types.ModuleType, ok: Array, new: Linearisation, old: Linearisation) -> Linearisation:
    """Per frame, ``new`` where ``ok`` else ``old``."""

    def pick(a: Array | None, b: Array | None) -> Array | None:
        if a is None or b is None:
            return a if b is None else (b if a is None else None)
        mask = ok.reshape((-1,) + (1,) * (a.ndim - 1))
        return xp.where(mask, a, b)

    return Linearisation(
        pick(new.r, old.r),
        pick(new.j_local, old.j_local),
        pick(new.j_shared, old.j_shared),
        pick(new.energy, old.energy),
        pick(new.land_err, old.land_err),
        pick(new.photo_err, old.photo_err),
        pick(new.n_visible, old.n_visible),
    )


def solve_identity(
    m: ModelArrays,
    obs: Observations,
    local: Array,
    settings: SolverSettings,
    *,
    iterations: int | None = None,
) -> tuple[Array, Array, Array, Linearisation]:
    """Identity mode: joint IRLS Levenberg-Marquardt for alpha, beta and the K keyframes' local parameters.

    The normal equations hold one dense block for the 160 shared unknowns coupled to K blocks of 99; the
    whole ``(160 + 99 K)`` system is assembled by matrix products and solved by Cholesky.

    Args:
        obs: K keyframes.
        local: ``(K, 99)`` start values (pose from landmarks).

    Returns:
        ``(alpha (80,), beta (80,), local (K, 99), final linearisation)``.
    """
    xp = m.xp
    k = local.shape[0]
    x = xp.array(local, dtype=xp.float64, copy=True)
    s = xp.zeros(N_SHARED)
    n_iter = settings.identity_iterations if iterations is None else iterations
    wreg, target = local_regulariser(m, settings)
    wsh = shared_regulariser(m, settings)
    lam = settings.damping
    p = N_SHARED + k * N_LOCAL

    def energy(lin: Linearisation, xx: Array, ss: Array) -> Any:
        return float(xp.sum(lin.energy + _reg_energy(wreg, xx, target)) + xp.sum(wsh * ss * ss))

    lin = linearise(m, obs, x, settings, alpha=s[ALPHA], beta=s[BETA], shared=True)
    e_cur = energy(lin, x, s)
    for _ in range(n_iter):
        jl, js = lin.j_local, lin.j_shared
        assert jl is not None and js is not None
        a = xp.zeros((p, p))
        g = xp.zeros(p)
        a_ss, g_s = gram(xp, js, lin.r)
        a[:N_SHARED, :N_SHARED] = xp.sum(a_ss, axis=0)
        g[:N_SHARED] = xp.sum(g_s, axis=0) + wsh * s
        a_ll, g_l = gram(xp, jl, lin.r)  # (K, 99, 99), (K, 99)
        a_sl = matmul_tn(xp, js, jl)  # (K, 160, 99)
        g_l = g_l + wreg * (x - target)
        for kk in range(k):
            o = N_SHARED + kk * N_LOCAL
            a[o : o + N_LOCAL, o : o + N_LOCAL] = a_ll[kk]
            a[:N_SHARED, o : o + N_LOCAL] = a_sl[kk]
            a[o : o + N_LOCAL, :N_SHARED] = a_sl[kk].T
            g[o : o + N_LOCAL] = g_l[kk]
        wdiag = xp.concatenate([wsh, xp.tile(wreg, k)])
        diag = xp.diagonal(a).copy()
        a = a + xp.diag(wdiag + lam * diag + 1e-9)
        step = cholesky_solve(xp, a, -g)
        s_c = s + step[:N_SHARED]
        x_c = _clamp_local(xp, x + step[N_SHARED:].reshape(k, N_LOCAL))
        lin_c = linearise(m, obs, x_c, settings, alpha=s_c[ALPHA], beta=s_c[BETA], shared=True)
        e_c = energy(lin_c, x_c, s_c)
        if e_c <= e_cur:
            s, x, lin, e_cur = s_c, x_c, lin_c, e_c
            lam = max(lam * 0.5, 1e-6)
        else:
            lam = min(lam * 8.0, 1e4)
    final = Linearisation(lin.r, None, None, lin.energy, lin.land_err, lin.photo_err, lin.n_visible)
    return s[ALPHA], s[BETA], x, final


# ---------------------------------------------------------------------------------------------------- pose init
def initial_pose(
    m: ModelArrays,
    landmarks: Array,
    weights: Array,
    intrinsics: tuple[float, float, float, float],
    shape: Array,
) -> Array:
    """A frontal pose guess from detected landmarks: ``(B, 6)`` (rotation: roll only; translation, metres).

    Roll (about the camera's z, radians, in ``(-pi, pi]``) from the image angle of the line between the outer
    eye corners 36/45 against the model's (a head on its side or upside down starts turned as seen, so the
    solver does not fit an upright face to it), depth from the ratio of the model's and the detection's
    inter-ocular distances, x/y from the landmark centroid.
    """
    xp = m.xp
    fx, fy, cx, cy = intrinsics
    lm3 = shape[m.landmarks]  # (68, 3)
    iod_model = float(xp.sqrt(xp.sum((lm3[45] - lm3[36]) ** 2)))
    d = landmarks[:, 45] - landmarks[:, 36]
    iod_img = xp.maximum(xp.sqrt(xp.sum(d * d, axis=-1)), 1.0)
    tz = fx * iod_model / iod_img + lm3[:, 2].mean()
    wsum = xp.maximum(weights.sum(axis=1), 1e-9)
    centre = (landmarks * weights[..., None]).sum(axis=1) / wsum[:, None]
    dm = lm3[45] - lm3[36]
    roll = xp.arctan2(d[:, 1] * fx, d[:, 0] * fy) - math.atan2(float(dm[1]), float(dm[0]))
    roll = xp.arctan2(xp.sin(roll), xp.cos(roll))
    mc = lm3.mean(axis=0)
    c, s = xp.cos(roll), xp.sin(roll)
    z_c = tz + mc[2]
    tx = (centre[:, 0] - cx) * z_c / fx - (c * mc[0] - s * mc[1])
    ty = (centre[:, 1] - cy) * z_c / fy - (s * mc[0] + c * mc[1])
    out = xp.zeros((landmarks.shape[0], 6))
    out[:, 2] = roll
    out[:, 3] = tx
    out[:, 4] = ty
    out[:, 5] = tz
    return out


# ---------------------------------------------------------------------------------------------------- gaze
def solve_gaze(
    m: ModelArrays,
    local: Array,
    pupils: Array,
    pupil_weights: Array,
    intrinsics: tuple[float, float, float, float],
    *,
    start: Array | None = None,
    iterations: int = 6,
    prior: float = 1.0e-3,
    centres: Array | None = None,
) -> Array:
    """Per-eye gaze (yaw, pitch) whose projected pupil lands on the detected pupil.

    The pupil is the eyeball centre plus ``eyeball_radius * d(yaw, pitch)`` in the head frame
    (``d = (sin y cos p, sin p, -cos y cos p)``), rotated and translated by the head pose, projected.
    Per eye a 2-unknown damped Gauss-Newton (analytic derivatives of ``d``), batched over frames and eyes.

    Args:
        local: ``(B, 99)`` solved parameters (pose used).
        pupils: ``(B, 2, 2)`` detected pupil pixels, eyes ordered (left, right) = the actor's left, right.
        pupil_weights: ``(B, 2)`` detection confidence; 0 keeps ``start``.
        start: ``(B, 4)`` start gaze radians (left yaw, left pitch, right yaw, right pitch); default 0.
        iterations: Gauss-Newton iterations.
        prior: Levenberg damping, relative to the pupil's squared pixel motion per radian of gaze.
        centres: ``(B, 2, 3)`` model-frame eyeball centres (default the model's fixed centres; with
            ``TrackerSettings.eyeball_follows_face`` the tracker passes :meth:`ModelArrays.eyeball_centres`).

    Returns:
        ``(B, 4)`` radians, clipped to +-45 degrees.
    """
    xp = m.xp
    b = local.shape[0]
    rot, _ = euler_rotation(xp, local[:, ROT])
    trans = local[:, TRANS]
    ang = xp.zeros((b, 2, 2)) if start is None else xp.array(start, dtype=xp.float64).reshape(b, 2, 2)
    r = m.eyeball_radius
    centres = m.eye_centres[None] if centres is None else centres  # (B or 1, 2, 3)
    fx, fy, _, _ = intrinsics
    for _ in range(iterations):
        yaw, pitch = ang[..., 0], ang[..., 1]
        cyw, syw, cp, sp = xp.cos(yaw), xp.sin(yaw), xp.cos(pitch), xp.sin(pitch)
        d = xp.stack([syw * cp, sp, -cyw * cp], axis=-1)  # (B, 2, 3)
        dd_y = xp.stack([cyw * cp, xp.zeros_like(cp), syw * cp], axis=-1)
        dd_p = xp.stack([-syw * sp, cp, cyw * sp], axis=-1)
        pm = centres + r * d
        xc = xp.einsum("bij,bej->bei", rot, pm) + trans[:, None]
        pix = project(xc, intrinsics)
        jp = projection_jacobian(xc, intrinsics)  # (B, 2, 2, 3)
        dxc = xp.einsum("bij,bekj->beik", rot, xp.stack([dd_y, dd_p], axis=-2)) * r  # (B, 2, 3, 2)
        jac = jp @ dxc  # (B, 2, 2, 2)
        res = pix - pupils
        w = pupil_weights[..., None, None]
        a = w * (xp.swapaxes(jac, -1, -2) @ jac)
        g = (w * (xp.swapaxes(jac, -1, -2) @ res[..., None]))[..., 0]
        # Levenberg damping in units of the pupil's pixel motion per radian, so it is resolution-independent
        reg = prior * (fx * fy * r * r / xp.maximum(xc[..., 2], 1e-3) ** 2)[..., None]
        a = a + xp.eye(2)[None, None] * (reg[..., None] + 1e-9)
        step = xp.linalg.solve(a, -g[..., None])[..., 0]
        ang = xp.clip(ang + step, -math.pi / 4, math.pi / 4)
    return ang.reshape(b, 4)
