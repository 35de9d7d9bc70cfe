"""A vectorised z-buffer triangle rasteriser in torch (CPU and CUDA), batched over frames.

How it works (no per-pixel or per-triangle Python loops):

1. **Setup** per (frame, triangle): project, cull triangles with a vertex in front of the near plane (or a
   non-finite one) and zero-area triangles, clip the pixel bounding box to the image.
2. **Edge functions**: ``e(x, y) = Dx (y - ay) - Dy (x - ax)`` per edge, evaluated with the edge's two
   vertices in a canonical order (lower vertex index first, ``a`` its start) and negated exactly where needed,
   so two triangles sharing an edge compute bit-identical opposite values, exactly 0 at both end vertices.
   Every triangle is oriented so that its interior is positive. A pixel centre (integer coordinates, OpenCV
   convention) is inside if all three are positive, or zero on an edge the triangle owns by the **top-left
   rule**: a *left* edge (``Dy < 0``) or a *top* edge (``Dy == 0 and Dx > 0``, y pointing down). Meshes that
   share vertices are therefore watertight: no holes, no double coverage.
3. **Row spans**: per (triangle, image row) every floating-point step of ``e`` along the row is monotonic in
   ``x``, so each edge's inside set is an interval; its end is found exactly by evaluating the predicate at the
   integers around the analytic bound. The pixels of the intersected spans are enumerated at once
   (``repeat_interleave``, in chunks of ``max_candidates``) with no further test.
4. **Z-buffer**: the perspective-correct depth of each covered pixel and its triangle index are packed into
   one int64 key (float32 depth bits above, triangle index below) and reduced per pixel with
   ``scatter_reduce(amin)``: the nearest fragment wins, ties go to the lower triangle index (deterministic).
5. **Attributes**: the winners keep their perspective-correct barycentrics; when autograd is wanted they are
   recomputed from the projected vertices and depths with autograd.

Differentiability: the barycentrics, the depth and interpolated attributes are differentiable with respect to
the vertex positions (through the projection) and to the attributes (colours, codes). Which triangle covers a
pixel (``triangle``, ``mask``) is a discrete choice and is not: silhouettes and occlusion boundaries carry
no gradient (there is no anti-aliasing or soft rasterisation). Both faces of a triangle are drawn (no
back-face culling); triangles crossing the near plane are dropped whole (no clipping).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .camera import Camera, RenderInputError

__all__ = ["Rasterization", "coverage_count", "rasterize", "rasterize_pixels"]

_EMPTY = torch.iinfo(torch.int64).max
#: default candidate (triangle, pixel) pairs per chunk: bounds the temporary memory (~100 bytes each).
DEFAULT_MAX_CANDIDATES = 1 << 19


@dataclass
class Rasterization:
    """The result of :func:`rasterize`: which triangle covers each pixel and where.

    Covered pixels are stored sparsely (``pixel_index``, ``pixel_triangle``, ``pixel_bary``, ``pixel_depth``); the
    dense properties expand them.

    Attributes:
        batch, height, width: image batch size and size.
        faces: ``(T, 3)`` int64 triangles that were rasterised (indices into the vertices).
        pixel_index: ``(P,)`` int64 flat index ``b * H * W + y * W + x`` of each covered pixel.
        pixel_triangle: ``(P,)`` int64 triangle covering it.
        pixel_bary: ``(P, 3)`` perspective-correct barycentrics (sum to 1; differentiable).
        pixel_depth: ``(P,)`` camera-frame depth z in metres (differentiable).
        pixel_vertices: ``(P, 3)`` the triangle's vertices as flat indices ``b * N + v``.
        n_vertices: N, the number of vertices of the rasterised mesh.
    """

    batch: int
    height: int
    width: int
    faces: torch.Tensor
    pixel_index: torch.Tensor
    pixel_triangle: torch.Tensor
    pixel_bary: torch.Tensor
    pixel_depth: torch.Tensor
    pixel_vertices: torch.Tensor
    n_vertices: int

    @property
    def pixel_batch(self) -> torch.Tensor:
        """``(P,)`` frame index of each covered pixel."""
        return torch.div(self.pixel_index, self.height * self.width, rounding_mode="floor")

    def _dense(self, values: torch.Tensor, fill: float) -> torch.Tensor:
        n = self.batch * self.height * self.width
        shape = (n, *values.shape[1:])
        out = torch.full(shape, fill, dtype=values.dtype, device=values.device)
        out.index_put_((self.pixel_index,), values)
        return out.reshape(self.batch, self.height, self.width, *values.shape[1:])

    @property
    def triangle(self) -> torch.Tensor:
        """``(B, H, W)`` int64 triangle index per pixel, -1 for background."""
        return self._dense(self.pixel_triangle, -1)

    @property
    def mask(self) -> torch.Tensor:
        """``(B, H, W)`` bool, True where a triangle covers the pixel centre."""
        n = self.batch * self.height * self.width
        m = torch.zeros(n, dtype=torch.bool, device=self.pixel_index.device)
        m[self.pixel_index] = True
        return m.reshape(self.batch, self.height, self.width)

    @property
    def bary(self) -> torch.Tensor:
        """``(B, H, W, 3)`` perspective-correct barycentrics (0 on the background)."""
        return self._dense(self.pixel_bary, 0.0)

    @property
    def depth(self) -> torch.Tensor:
        """``(B, H, W)`` camera-frame depth z in metres (0 on the background)."""
        return self._dense(self.pixel_depth, 0.0)

    def covered(self) -> torch.Tensor:
        """``(B,)`` number of covered pixels per frame."""
        return torch.bincount(self.pixel_batch, minlength=self.batch)

    def interpolate_sparse(self, attributes: torch.Tensor) -> torch.Tensor:
        """Per-vertex ``attributes (B, N, C)`` (or ``(N, C)``) interpolated at the covered pixels: ``(P, C)``."""
        if attributes.dim() == 2:
            attributes = attributes.unsqueeze(0).expand(self.batch, -1, -1)
        b, n, c = attributes.shape
        if b != self.batch:
            raise RenderInputError(f"attributes have batch {b}, the rasterisation has {self.batch}")
        if n != self.n_vertices:
            raise RenderInputError(f"attributes have {n} vertices, the rasterised mesh has {self.n_vertices}")
        vals = attributes.reshape(b * n, c).index_select(0, self.pixel_vertices.reshape(-1))
        vals = vals.reshape(-1, 3, c)  # (P, 3, C)
        w = self.pixel_bary.to(vals.dtype)
        return vals[:, 0] * w[:, 0:1] + vals[:, 1] * w[:, 1:2] + vals[:, 2] * w[:, 2:3]

    def scatter(self, values: torch.Tensor, background: float = 0.0) -> torch.Tensor:
        """Sparse per-pixel ``values (P, C)`` to an image ``(B, C, H, W)`` with ``background`` elsewhere."""
        return self._dense(values, background).permute(0, 3, 1, 2)

    def interpolate(self, attributes: torch.Tensor, background: float = 0.0) -> torch.Tensor:
        """Interpolate per-vertex ``attributes (B, N, C)`` into an image ``(B, C, H, W)`` (differentiable)."""
        return self.scatter(self.interpolate_sparse(attributes), background)


def _setup(
    pix: torch.Tensor, z: torch.Tensor, faces: torch.Tensor, width: int, height: int, near: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per (frame, triangle) setup for the kept triangles.

    Returns ``(coef (14, K), aux (4, K), bt (K,), ymin (K,), ny (K,))``: for each kept triangle the edge
    functions ``e_k(x, y) = Dx_k (y - ay_k) + A_k (x - ax_k)`` with ``A_k = -Dy_k`` (rows A0-2, Dx0-2, ax0-2,
    ay0-2, then the clipped bounding box's xmin, xmax), the inverse vertex depths and ``1 / |2 area|`` (aux),
    the flat (frame, triangle) index, and the bounding box rows. Each edge function is computed from the edge's
    vertices in canonical order (lower index first, ``a`` its start) and negated exactly when needed, so
    triangles that share an edge get bit-identical opposite values, and it is exactly 0 at both end vertices;
    each triangle is oriented so that its interior is positive.
    """
    ia = faces[:, [1, 2, 0]]
    ib = faces[:, [2, 0, 1]]
    swap = ia > ib
    ca = torch.where(swap, ib, ia)
    cb = torch.where(swap, ia, ib)
    a = pix[:, ca]  # (B, T, 3, 2)
    d = pix[:, cb] - a
    sign = torch.where(swap, -1.0, 1.0).to(pix.dtype)  # (T, 3)
    dx = d[..., 0] * sign
    dy = d[..., 1] * sign
    pv = pix[:, faces]  # (B, T, 3, 2)
    # edge 0 (from v1 to v2) at vertex 0: twice the signed area
    area2 = dx[..., 0] * (pv[..., 0, 1] - a[..., 0, 1]) - dy[..., 0] * (pv[..., 0, 0] - a[..., 0, 0])
    orient = torch.where(area2 < 0, -1.0, 1.0).to(pix.dtype)[..., None]
    coef_a = -dy * orient
    coef_dx = dx * orient
    zv = z[:, faces]  # (B, T, 3)
    valid = (zv > near).all(-1) & torch.isfinite(pv).flatten(2).all(-1) & (area2 != 0) & torch.isfinite(area2)
    lo = torch.nan_to_num(pv.amin(dim=2), nan=0.0).clamp(-1.0, float(max(width, height)) + 1.0)
    hi = torch.nan_to_num(pv.amax(dim=2), nan=-1.0).clamp(-1.0, float(max(width, height)) + 1.0)
    xmin = torch.ceil(lo[..., 0]).clamp_min(0)
    ymin = torch.ceil(lo[..., 1]).clamp_min(0)
    xmax = torch.floor(hi[..., 0]).clamp_max(width - 1)
    ymax = torch.floor(hi[..., 1]).clamp_max(height - 1)
    valid &= (xmax >= xmin) & (ymax >= ymin)
    keep = torch.nonzero(valid.reshape(-1)).squeeze(1)
    coef = torch.cat(
        [
            coef_a.reshape(-1, 3),
            coef_dx.reshape(-1, 3),
            a[..., 0].reshape(-1, 3),
            a[..., 1].reshape(-1, 3),
            xmin.reshape(-1, 1),
            xmax.reshape(-1, 1),
        ],
        dim=1,
    ).index_select(0, keep)
    aux = torch.cat([1.0 / zv.reshape(-1, 3), 1.0 / area2.abs().reshape(-1, 1)], dim=1).index_select(0, keep)
    ny = (ymax - ymin + 1).reshape(-1).index_select(0, keep).long()
    return coef.T.contiguous(), aux.T.contiguous(), keep, ymin.reshape(-1).index_select(0, keep).long(), ny


def _inside(e: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """The coverage predicate of one edge: strictly inside, or exactly on an edge the triangle owns."""
    return (e > 0) | ((e == 0) & owner)


def _fragments(
    pix: torch.Tensor,
    z: torch.Tensor,
    faces: torch.Tensor,
    width: int,
    height: int,
    near: float,
    max_candidates: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield chunks ``(flat pixel index (M,), flat (frame, triangle) index (M,), depth (M,),
    perspective-correct barycentrics (M, 3))`` of the fragments whose pixel centre is inside their triangle
    (top-left rule).

    Coverage is decided per image row: along a row each edge function ``e(x) = r + A (x - ax)`` is evaluated
    in floating point by operations that are all monotonic in ``x``, so each edge's inside set is an interval
    of pixels; its end is found by evaluating the exact predicate at the integers around the analytic bound.
    Every pixel of the intersected span is then inside, with exactly the per-pixel predicate's answer.
    """
    t = faces.shape[0]
    hw = width * height
    coef, aux, bt, ymin, ny = _setup(pix, z, faces, width, height, near)
    if bt.numel() == 0:
        return
    dev = pix.device
    dt = coef.dtype
    # rows: one per (kept triangle, image row in its box)
    nrows = int(ny.sum())
    tri_of_row = torch.repeat_interleave(torch.arange(bt.numel(), device=dev), ny, output_size=nrows)
    row_start = torch.cumsum(ny, 0) - ny
    y = ymin.index_select(0, tri_of_row) + (
        torch.arange(nrows, device=dev) - row_start.index_select(0, tri_of_row)
    )
    rc = coef.index_select(1, tri_of_row)  # (14, R)
    yf = y.to(dt)
    ca = rc[0:3]  # A = -Dy
    ax = rc[6:9]
    r = rc[3:6] * (yf - rc[9:12])  # e_k(x, y) = r_k + A_k (x - ax_k), canonical and exactly antisymmetric
    # top-left rule: an edge owns the centres exactly on it if it is a left edge (A = -Dy > 0: the interior is
    # to its right) or a top edge (A == 0 and Dx > 0: horizontal with the interior below, y pointing down)
    owner = (ca > 0) | ((ca == 0) & (rc[3:6] > 0))
    xlo, xhi = rc[12], rc[13]  # the clipped bounding box
    # analytic bound of each edge (x where e = 0), clamped near the box so that rounding is sub-pixel
    safe_a = torch.where(ca == 0, torch.ones_like(ca), ca)
    xstar = torch.minimum(torch.maximum(ax - r / safe_a, xlo - 2), xhi + 2)
    left = torch.full_like(r, -1.0)  # first inside pixel of edges with A > 0
    right = torch.full_like(r, float(width))  # last inside pixel of edges with A < 0
    c_left = torch.ceil(xstar)
    c_right = torch.floor(xstar)
    found_l = torch.zeros_like(owner)
    found_r = torch.zeros_like(owner)
    for step in (-1.0, 0.0, 1.0):
        xl = c_left + step  # increasing: the first inside candidate is the left end
        ok_l = _inside(r + ca * (xl - ax), owner) & ~found_l
        left = torch.where(ok_l, xl, left)
        found_l |= ok_l
        xr = c_right - step  # decreasing: the first inside candidate is the right end
        ok_r = _inside(r + ca * (xr - ax), owner) & ~found_r
        right = torch.where(ok_r, xr, right)
        found_r |= ok_r
    left = torch.where(found_l, left, c_left + 2.0)
    right = torch.where(found_r, right, c_right - 2.0)
    flat_ok = _inside(r, owner)  # A == 0: the edge function is constant along the row
    lo = torch.where(ca > 0, left, torch.full_like(left, -1.0)).amax(0)
    hi = torch.where(ca < 0, right, torch.full_like(right, float(width))).amin(0)
    lo = torch.maximum(lo, xlo)
    hi = torch.minimum(hi, xhi)
    empty = ((ca == 0) & ~flat_ok).any(0) | (hi < lo)
    span = torch.where(empty, torch.zeros_like(hi), hi - lo + 1).long()
    rows = torch.nonzero(span).squeeze(1)
    if rows.numel() == 0:
        return
    span = span.index_select(0, rows)
    rows_tri = tri_of_row.index_select(0, rows)
    lo = lo.index_select(0, rows)
    # barycentric weights along the row: w_k(x) = e_k(x) / z_k / |2 area| = w_k(lo) + dw_k (x - lo)
    a_t = aux.index_select(1, rows_tri)  # (4, R'): 1/z0, 1/z1, 1/z2, 1/|2 area|
    scale = a_t[0:3] * a_t[3]
    ca_r = ca.index_select(1, rows)
    w0 = (r.index_select(1, rows) + ca_r * (lo - ax.index_select(1, rows))) * scale
    dw = ca_r * scale
    table = torch.cat([w0, dw], dim=0)  # (6, R')
    frame = torch.div(bt.index_select(0, rows_tri), t, rounding_mode="floor")
    base = frame * hw + y.index_select(0, rows) * width + lo.long()  # flat index of each row's first pixel
    row_bt = bt.index_select(0, rows_tri)
    csum = torch.cumsum(span, 0)
    total = int(csum[-1])
    bounds = [0]
    if total > max_candidates:
        marks = torch.arange(max_candidates, total, max_candidates, device=dev)
        cuts = torch.searchsorted(csum, marks) + 1
        bounds += sorted({int(c) for c in cuts.tolist() if 0 < int(c) < rows.numel()})
    bounds.append(rows.numel())
    for r0, r1 in zip(bounds[:-1], bounds[1:], strict=True):
        if r1 <= r0:
            continue
        sp = span[r0:r1]
        m = int(sp.sum())
        start = torch.cumsum(sp, 0) - sp
        rep = torch.repeat_interleave(torch.arange(r1 - r0, device=dev), sp, output_size=m)
        off_i = torch.arange(m, device=dev) - start.index_select(0, rep)
        off = off_i.to(dt)
        tb = table[:, r0:r1].index_select(1, rep)  # (6, M)
        w = tb[0:3] + tb[3:6] * off  # (3, M)
        wsum = w.sum(dim=0)
        flat = base[r0:r1].index_select(0, rep) + off_i
        yield flat, row_bt[r0:r1].index_select(0, rep), 1.0 / wsum, (w / wsum).T


def _check_inputs(verts: torch.Tensor, faces: torch.Tensor) -> None:
    if verts.dim() != 3 or verts.shape[-1] != 3:
        raise RenderInputError(f"vertices must have shape (B, N, 3), got {tuple(verts.shape)}")
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise RenderInputError(f"faces must have shape (T, 3), got {tuple(faces.shape)}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]):
        raise RenderInputError(f"faces index vertices outside 0..{verts.shape[1] - 1}")


def rasterize_pixels(
    pix: torch.Tensor,
    z: torch.Tensor,
    faces: torch.Tensor,
    width: int,
    height: int,
    *,
    near: float = 1e-2,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
) -> Rasterization:
    """Rasterise already projected vertices.

    Args:
        pix: ``(B, N, 2)`` pixel coordinates (pixel centres at integers; differentiable).
        z: ``(B, N)`` camera-frame depths in metres (differentiable; perspective-correct interpolation).
        faces: ``(T, 3)`` integer triangles.
        width, height: image size.
        near: triangles with a vertex at ``z <= near`` (metres) are dropped.
        max_candidates: candidate (triangle, pixel) pairs processed at once (memory bound).
    Returns:
        :class:`Rasterization`.
    """
    faces = faces.to(device=pix.device, dtype=torch.int64)
    b, n, _ = pix.shape
    t = faces.shape[0]
    tri_bits = max(1, int(t).bit_length())
    key = torch.full((b * height * width,), _EMPTY, dtype=torch.int64, device=pix.device)
    need_grad = torch.is_grad_enabled() and (pix.requires_grad or z.requires_grad)
    kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
    with torch.no_grad():
        for flat, bt, depth, bary in _fragments(
            pix.detach(), z.detach(), faces, width, height, near, max_candidates
        ):
            bits = depth.float().clamp_min(0.0).view(torch.int32).to(torch.int64)
            fkey = (bits << tri_bits) | (bt % t)
            key.scatter_reduce_(0, flat, fkey, reduce="amin", include_self=True)
            if not need_grad:
                kept.append((flat, fkey, depth, bary))
    tri_mask = (1 << tri_bits) - 1
    if not need_grad:
        # no autograd wanted: keep the winning fragments' own barycentrics and depths
        if kept:
            flat = torch.cat([k[0] for k in kept])
            fkey = torch.cat([k[1] for k in kept])
            win = torch.nonzero(key.index_select(0, flat) == fkey).squeeze(1)
            pixel_index = flat.index_select(0, win)
            tri = fkey.index_select(0, win) & tri_mask
            depth = torch.cat([k[2] for k in kept]).index_select(0, win).to(pix.dtype)
            bary = torch.cat([k[3] for k in kept]).index_select(0, win).to(pix.dtype)
        else:
            pixel_index = tri = torch.zeros(0, dtype=torch.int64, device=pix.device)
            depth = torch.zeros(0, dtype=pix.dtype, device=pix.device)
            bary = torch.zeros(0, 3, dtype=pix.dtype, device=pix.device)
        frame = torch.div(pixel_index, height * width, rounding_mode="floor")
        vid = faces.index_select(0, tri) + (frame * n)[:, None]
        return Rasterization(
            batch=b,
            height=height,
            width=width,
            faces=faces,
            pixel_index=pixel_index,
            pixel_triangle=tri,
            pixel_bary=bary,
            pixel_depth=depth,
            pixel_vertices=vid,
            n_vertices=n,
        )
    pixel_index = torch.nonzero(key != _EMPTY).squeeze(1)
    tri = key.index_select(0, pixel_index) & tri_mask
    frame = torch.div(pixel_index, height * width, rounding_mode="floor")
    rem = pixel_index - frame * height * width
    py_i = torch.div(rem, width, rounding_mode="floor")
    py = py_i.to(pix.dtype)
    px = (rem - py_i * width).to(pix.dtype)
    # differentiable barycentrics of the winners
    vid = faces.index_select(0, tri) + (frame * n)[:, None]  # (P, 3) flat vertex index into B * N
    flat_vid = vid.reshape(-1)
    pv = pix.reshape(b * n, 2).index_select(0, flat_vid).reshape(-1, 3, 2)
    zv = z.reshape(b * n).index_select(0, flat_vid).reshape(-1, 3)
    x0, y0 = pv[:, 0, 0], pv[:, 0, 1]
    x1, y1 = pv[:, 1, 0], pv[:, 1, 1]
    x2, y2 = pv[:, 2, 0], pv[:, 2, 1]
    area2 = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    l0 = ((x1 - px) * (y2 - py) - (y1 - py) * (x2 - px)) / area2
    l1 = ((x2 - px) * (y0 - py) - (y2 - py) * (x0 - px)) / area2
    l2 = 1.0 - l0 - l1
    w = torch.stack([l0, l1, l2], dim=1) / zv
    inv_depth = w.sum(dim=1)
    bary = w / inv_depth[:, None]
    return Rasterization(
        batch=b,
        height=height,
        width=width,
        faces=faces,
        pixel_index=pixel_index,
        pixel_triangle=tri,
        pixel_bary=bary,
        pixel_depth=1.0 / inv_depth,
        pixel_vertices=vid,
        n_vertices=n,
    )


def rasterize(
    verts_cam: torch.Tensor,
    faces: torch.Tensor,
    camera: Camera,
    *,
    near: float = 1e-2,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
) -> Rasterization:
    """Z-buffer rasterisation of camera-frame triangles.

    Args:
        verts_cam: ``(B, N, 3)`` vertices in the camera frame (metres; OpenCV x right, y down, z forward).
        faces: ``(T, 3)`` integer triangles (either winding; both sides are drawn).
        camera: intrinsics and image size (:class:`~dvp_engine.render.camera.Camera`).
        near: triangles with a vertex at ``z <= near`` are dropped (a head behind the camera renders empty).
        max_candidates: memory bound, see :func:`rasterize_pixels`.
    Returns:
        :class:`Rasterization` (triangle id -1 on the background, barycentrics, depth, mask; attributes via
        :meth:`Rasterization.interpolate`).
    Raises:
        RenderInputError: wrong shapes, out-of-range face indices, NaN vertices.
    """
    _check_inputs(verts_cam, faces)
    if not bool(torch.isfinite(verts_cam).all()):
        raise RenderInputError("vertices contain NaN or infinite values")
    pix = camera.project(verts_cam)
    return rasterize_pixels(
        pix, verts_cam[..., 2], faces, camera.width, camera.height, near=near, max_candidates=max_candidates
    )


def coverage_count(
    pix: torch.Tensor, z: torch.Tensor, faces: torch.Tensor, width: int, height: int, *, near: float = 1e-2
) -> torch.Tensor:
    """``(B, H, W)`` int64: how many triangles cover each pixel centre (no depth test). For tests and
    diagnostics: on a watertight mesh seen from one side every pixel inside it has exactly 1."""
    faces = faces.to(device=pix.device, dtype=torch.int64)
    b = pix.shape[0]
    count = torch.zeros(b * height * width, dtype=torch.int64, device=pix.device)
    with torch.no_grad():
        for flat, _, _, _ in _fragments(
            pix.detach(), z.detach(), faces, width, height, near, DEFAULT_MAX_CANDIDATES
        ):
            count.index_add_(0, flat, torch.ones_like(flat))
    return count.reshape(b, height, width)
