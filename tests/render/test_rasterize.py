"""The z-buffer rasteriser against analytic cases: coverage, barycentrics, depth order, watertightness,
perspective-correct interpolation, gradients, and bad input."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dvp_engine.render.camera import Camera, RenderInputError, euler_to_matrix
from dvp_engine.render.rasterize import coverage_count, rasterize, rasterize_pixels


def _screen(verts2d: list[list[float]], z: float | list[float] = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    pix = torch.tensor([verts2d], dtype=torch.float64)
    zz = torch.full((1, len(verts2d)), z, dtype=torch.float64) if isinstance(z, float) else torch.tensor([z])
    return pix, zz.to(torch.float64)


def _inside_reference(p: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force in float64: which pixel centres are strictly inside triangle p (3, 2), and their
    screen-space barycentrics."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    (x0, y0), (x1, y1), (x2, y2) = p
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    l0 = ((x1 - xs) * (y2 - ys) - (y1 - ys) * (x2 - xs)) / area
    l1 = ((x2 - xs) * (y0 - ys) - (y2 - ys) * (x0 - xs)) / area
    l2 = 1 - l0 - l1
    lam = np.stack([l0, l1, l2], axis=-1)
    return (lam > 0).all(-1), lam


def test_triangle_pixel_count_and_barycentrics_match_analytic() -> None:
    # right triangle with legs of 10 px on pixel centres: the top-left rule keeps the top and left edges
    # (x >= 2, y >= 2) and drops the hypotenuse x + y = 14: 10 + 9 + ... + 1 = 55 pixels
    pix, z = _screen([[2.0, 2.0], [12.0, 2.0], [2.0, 12.0]])
    r = rasterize_pixels(pix, z, torch.tensor([[0, 1, 2]]), 16, 16)
    tri = r.triangle[0].numpy()
    ys, xs = np.nonzero(tri == 0)
    assert len(xs) == 55
    assert xs.min() == 2 and ys.min() == 2 and (xs + ys).max() == 13
    # generic triangles (no centre on an edge): same set as the brute-force test, same barycentrics
    rng = np.random.default_rng(3)
    for _ in range(5):
        p = rng.uniform(-3, 35, size=(3, 2))
        inside, lam = _inside_reference(p, 32, 30)
        pix, z = _screen(p.tolist())
        r = rasterize_pixels(pix, z, torch.tensor([[0, 1, 2]]), 32, 30)
        np.testing.assert_array_equal(r.mask[0].numpy(), inside)
        np.testing.assert_allclose(r.bary[0].numpy()[inside], lam[inside], atol=1e-9)
        assert (r.triangle[0].numpy()[~inside] == -1).all()


def test_both_windings_are_drawn_the_same() -> None:
    pix, z = _screen([[1.3, 1.7], [20.2, 4.1], [6.6, 18.9]])
    a = rasterize_pixels(pix, z, torch.tensor([[0, 1, 2]]), 24, 24)
    b = rasterize_pixels(pix, z, torch.tensor([[0, 2, 1]]), 24, 24)
    assert torch.equal(a.mask, b.mask)
    torch.testing.assert_close(a.bary[..., 0], b.bary[..., 0])


def _grid_mesh(
    n: int, step: float, origin: float, jitter: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A square of n x n quads, each split into two triangles (alternating diagonals); interior vertices
    jittered, boundary vertices kept on the square's sides."""
    rng = np.random.default_rng(seed)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    ys, xs = np.mgrid[0 : n + 1, 0 : n + 1].astype(np.float64)
    pts = np.stack([xs, ys], axis=-1) * step + origin
    interior = np.zeros((n + 1, n + 1), bool)
    interior[1:-1, 1:-1] = True
    pts[interior] += rng.uniform(-jitter, jitter, size=(interior.sum(), 2))
    faces = []
    for i, j in itertools.product(range(n), range(n)):
        a, b, c, d = idx[i, j], idx[i, j + 1], idx[i + 1, j], idx[i + 1, j + 1]
        faces += [[a, b, d], [a, d, c]] if (i + j) % 2 else [[a, b, c], [b, d, c]]
    order = rng.permutation(len(faces))  # triangle order must not matter
    return torch.tensor(pts.reshape(1, -1, 2)), torch.tensor(np.asarray(faces)[order])


@pytest.mark.parametrize("jitter", [0.0, 1.3])
def test_subdivided_quad_is_watertight(jitter: float) -> None:
    # vertices on pixel centres (jitter 0): many centres lie exactly on shared edges and vertices
    pix, faces = _grid_mesh(n=8, step=3.0, origin=2.0, jitter=jitter, seed=4)
    z = torch.ones(pix.shape[:2], dtype=torch.float64)
    count = coverage_count(pix, z, faces, 30, 30)[0].numpy()
    expected = np.zeros((30, 30), np.int64)
    expected[2:26, 2:26] = 1  # [2, 26) in x and y: left/top sides in, right/bottom sides out
    np.testing.assert_array_equal(count, expected)
    # through the z-buffer, in front of a big background triangle: nothing of it shows through
    pix_bg = torch.cat([pix, torch.tensor([[[-40.0, -40.0], [200.0, -40.0], [-40.0, 200.0]]])], dim=1)
    nv = pix.shape[1]
    faces_bg = torch.cat([faces, torch.tensor([[nv, nv + 1, nv + 2]])])
    zz = torch.cat([z, torch.full((1, 3), 2.0, dtype=torch.float64)], dim=1)
    tri = rasterize_pixels(pix_bg, zz, faces_bg, 30, 30).triangle[0].numpy()
    assert (tri[2:26, 2:26] < len(faces)).all()
    assert (tri[:2] == len(faces)).all() and (tri[26:, :] == len(faces)).all()


def _cube(size: float) -> tuple[np.ndarray, np.ndarray]:
    v = np.array(list(itertools.product([-1, 1], repeat=3)), dtype=np.float64) * size / 2
    quads = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
    f = []
    for a, b, c, d in quads:
        f += [[a, b, c], [a, c, d]]
    return v, np.asarray(f)


def test_cube_depth_order_matches_ray_casting() -> None:
    v, f = _cube(0.2)
    rot = euler_to_matrix(torch.tensor([25.0, -35.0, 10.0], dtype=torch.float64)).numpy()
    t = np.array([0.01, -0.02, 0.7])
    vc = v @ rot.T + t
    cam = Camera(120.0, 120.0, 23.5, 23.5, 48, 48)
    r = rasterize(torch.tensor(vc[None]), torch.tensor(f), cam)
    depth = r.depth[0].numpy()
    mask = r.mask[0].numpy()
    # ray / box slab test in the cube's frame: nearest hit depth
    ys, xs = np.mgrid[0:48, 0:48].astype(np.float64)
    rays = np.stack([(xs - 23.5) / 120.0, (ys - 23.5) / 120.0, np.ones_like(xs)], axis=-1)
    o = rot.T @ (-t)
    dirs = rays @ rot  # R^T d
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-0.1 - o) / dirs
        t2 = (0.1 - o) / dirs
    tnear = np.minimum(t1, t2).max(-1)
    tfar = np.maximum(t1, t2).min(-1)
    hit = tfar > tnear
    interior = hit & (tfar - tnear > 1e-3)
    # pixels well inside the silhouette agree exactly on coverage and depth (z of the hit = t since ray z = 1)
    assert mask[interior].all()
    assert not mask[~hit].any()
    np.testing.assert_allclose(depth[interior], tnear[interior], atol=1e-9)
    # the visible triangles face the camera
    tri = r.triangle[0].numpy()
    e1 = vc[f[:, 1]] - vc[f[:, 0]]
    e2 = vc[f[:, 2]] - vc[f[:, 0]]
    normal = np.cross(e1, e2)
    centre = vc[f].mean(axis=1)
    outward = np.sign(np.sum(normal * (centre - t), axis=1))
    facing = np.sum(normal * outward[:, None] * centre, axis=1) < 0
    assert facing[np.unique(tri[mask])].all()


def test_perspective_correct_interpolation_of_a_tilted_plane() -> None:
    # a quad tilted in depth; interpolating the camera-frame position must give the ray/plane intersection
    vc = np.array([[-0.2, -0.2, 0.6], [0.2, -0.2, 1.4], [0.2, 0.2, 1.4], [-0.2, 0.2, 0.6]])
    f = np.array([[0, 1, 2], [0, 2, 3]])
    cam = Camera(40.0, 40.0, 15.5, 15.5, 32, 32)
    verts = torch.tensor(vc[None])
    r = rasterize(verts, torch.tensor(f), cam)
    pos = r.interpolate(verts)[0].permute(1, 2, 0).numpy()  # (H, W, 3)
    m = r.mask[0].numpy()
    ys, xs = np.nonzero(m)
    rays = np.stack([(xs - 15.5) / 40.0, (ys - 15.5) / 40.0, np.ones_like(xs, dtype=float)], axis=-1)
    # plane z = 1.0 + 2 x  (through the 4 vertices)
    tt = 1.0 / (1.0 - 2.0 * rays[:, 0])
    np.testing.assert_allclose(pos[ys, xs], rays * tt[:, None], atol=1e-9)
    np.testing.assert_allclose(r.depth[0].numpy()[ys, xs], tt, atol=1e-9)
    np.testing.assert_allclose(r.bary[0].numpy()[ys, xs].sum(-1), 1.0, atol=1e-12)


def test_batched_frames_are_independent() -> None:
    v, f = _cube(0.2)
    cam = Camera(60.0, 60.0, 11.5, 11.5, 24, 24)
    rots = euler_to_matrix(
        torch.tensor([[0.0, 0.0, 0.0], [30.0, 40.0, 0.0], [0.0, -60.0, 20.0]], dtype=torch.float64)
    )
    vb = torch.tensor(v)[None] @ rots.transpose(1, 2) + torch.tensor([0.0, 0.0, 0.6], dtype=torch.float64)
    rb = rasterize(vb, torch.tensor(f), cam)
    for i in range(3):
        ri = rasterize(vb[i : i + 1], torch.tensor(f), cam)
        assert torch.equal(rb.triangle[i], ri.triangle[0])
        torch.testing.assert_close(rb.depth[i], ri.depth[0])


def test_small_chunks_give_the_same_image() -> None:
    v, f = _cube(0.2)
    cam = Camera(60.0, 60.0, 15.5, 15.5, 32, 32)
    vc = torch.tensor(v)[None] @ euler_to_matrix(torch.tensor([20.0, 30.0, 0.0], dtype=torch.float64)).T
    vc = vc + torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)
    a = rasterize(vc, torch.tensor(f), cam)
    b = rasterize(vc, torch.tensor(f), cam, max_candidates=37)
    assert torch.equal(a.triangle, b.triangle)


def test_gradcheck_positions_and_colours() -> None:
    # two triangles, generic positions (no pixel centre within 1e-6 of an edge): ids fixed under perturbation
    cam = Camera(20.0, 20.0, 3.5, 3.5, 8, 8)
    verts = torch.tensor(
        [[[-0.13, -0.11, 1.0], [0.17, -0.12, 1.2], [0.12, 0.16, 0.9], [-0.16, 0.13, 1.1]]],
        dtype=torch.float64,
        requires_grad=True,
    )
    colours = torch.rand(1, 4, 3, dtype=torch.float64, requires_grad=True)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])

    def fn(v: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = rasterize(v, faces, cam)
        return r.interpolate(c), r.depth

    assert rasterize(verts, faces, cam).mask.sum() > 20
    assert torch.autograd.gradcheck(fn, (verts, colours), eps=1e-6, atol=1e-6)


def test_background_behind_camera_and_outside_frame() -> None:
    v, f = _cube(0.2)
    cam = Camera(60.0, 60.0, 15.5, 15.5, 32, 32)
    behind = torch.tensor(v)[None] + torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)
    r = rasterize(behind, torch.tensor(f), cam)
    assert r.pixel_index.numel() == 0 and (r.triangle == -1).all() and r.covered().tolist() == [0]
    aside = torch.tensor(v)[None] + torch.tensor([5.0, 0.0, 1.0], dtype=torch.float64)
    assert rasterize(aside, torch.tensor(f), cam).pixel_index.numel() == 0
    # crossing the near plane: those triangles are dropped, no crash, no infinite values
    crossing = torch.tensor(v)[None] + torch.tensor([0.0, 0.0, 0.05], dtype=torch.float64)
    r = rasterize(crossing, torch.tensor(f), cam)
    assert torch.isfinite(r.depth).all()


def test_bad_input_raises_value_error() -> None:
    cam = Camera(60.0, 60.0, 15.5, 15.5, 32, 32)
    v = torch.zeros(1, 3, 3)
    with pytest.raises(ValueError, match="NaN"):
        rasterize(torch.full((1, 3, 3), float("nan")), torch.tensor([[0, 1, 2]]), cam)
    with pytest.raises(RenderInputError, match="outside"):
        rasterize(v, torch.tensor([[0, 1, 3]]), cam)
    with pytest.raises(RenderInputError, match=r"\(B, N, 3\)"):
        rasterize(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), cam)


def test_inference_path_equals_autograd_path() -> None:
    # without autograd the winners keep their fragment-stage barycentrics; with it they are recomputed
    v, f = _cube(0.2)
    cam = Camera(60.0, 60.0, 15.5, 15.5, 32, 32)
    vc = torch.tensor(v)[None] @ euler_to_matrix(torch.tensor([20.0, 30.0, 5.0], dtype=torch.float64)).T
    vc = vc + torch.tensor([0.01, 0.0, 0.5], dtype=torch.float64)
    fast = rasterize(vc, torch.tensor(f), cam)
    slow = rasterize(vc.clone().requires_grad_(True), torch.tensor(f), cam)
    assert torch.equal(fast.triangle, slow.triangle)
    torch.testing.assert_close(fast.bary, slow.bary.detach(), atol=1e-9, rtol=0)
    torch.testing.assert_close(fast.depth, slow.depth.detach(), atol=1e-12, rtol=0)
    colours = torch.rand(1, 8, 3, dtype=torch.float64)
    torch.testing.assert_close(fast.interpolate(colours), slow.interpolate(colours).detach())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_convex_mesh_is_hit_exactly_twice(seed: int, uv_sphere: Any) -> None:
    # every view ray through a closed convex mesh crosses it exactly twice: counts other than 0 and 2 would be
    # cracks or double hits (silhouette edges fold: both triangles own the centre, or neither)
    rng = np.random.default_rng(seed)
    v, f = uv_sphere()
    rot = euler_to_matrix(torch.tensor(rng.uniform(-180, 180, 3))).numpy()
    vc = (v * 0.1) @ rot.T + np.array([*rng.uniform(-0.02, 0.02, 2), 0.5])
    cam = Camera(200.0, 200.0, 31.5, 31.5, 64, 64)
    pix = cam.project(torch.tensor(vc[None]))
    count = coverage_count(pix, torch.tensor(vc[None, :, 2]), torch.tensor(f), 64, 64)[0].numpy()
    assert set(np.unique(count).tolist()) == {0, 2}
    # and the z-buffer picks the front surface: depth below the centre's
    r = rasterize(torch.tensor(vc[None]), torch.tensor(f), cam)
    assert (r.depth[0][r.mask[0]] < 0.5).all()


def test_face_model_agrees_with_the_trackers_numpy_rasteriser() -> None:
    # an independent implementation (per-triangle numpy loop in the tracker's overlay): same coverage and
    # nearly the same colours (it interpolates in screen space, we perspective-correct)
    overlay = pytest.importorskip("dvp_engine.tracking.overlay")
    from dvp_engine.facemodel import load_default_model

    model = load_default_model()
    rot = euler_to_matrix(torch.tensor([5.0, -20.0, 3.0], dtype=torch.float64))
    vc = torch.tensor(model.mean_shape, dtype=torch.float64)[None] @ rot.T + torch.tensor([0.0, 0.0, 0.6])
    cam = Camera(300.0, 300.0, 63.5, 63.5, 128, 128)
    colours = torch.tensor(model.mean_albedo, dtype=torch.float64)[None]
    r = rasterize(vc, torch.tensor(model.faces), cam)
    ours = r.interpolate(colours)[0].permute(1, 2, 0).numpy()
    pix = cam.project(vc)[0].numpy()
    theirs, mask = overlay.rasterise_vertex_colours(
        pix, vc[0, :, 2].numpy(), colours[0].numpy(), model.faces, np.zeros((128, 128, 3))
    )
    m = r.mask[0].numpy()
    assert (m != mask).mean() < 0.002  # only centres exactly on edges may differ
    both = m & mask
    assert np.abs(ours[both] - theirs[both]).max() < 0.02


@settings(max_examples=25, deadline=None)
@given(
    angle=st.floats(0.0, 6.3),
    scale=st.floats(0.6, 3.0),
    ox=st.floats(8.0, 24.0),
    oy=st.floats(8.0, 24.0),
    seed=st.integers(0, 10_000),
)
def test_transformed_jittered_grid_is_covered_exactly_once(
    angle: float, scale: float, ox: float, oy: float, seed: int
) -> None:
    # arbitrary sub-pixel positions: every pixel centre strictly inside the (rotated) square is covered once,
    # none outside, and none twice
    pix, faces = _grid_mesh(n=6, step=1.0, origin=0.0, jitter=0.3, seed=seed)
    c, s = np.cos(angle), np.sin(angle)
    p = (pix[0].numpy() - 3.0) * scale
    p = p @ np.array([[c, -s], [s, c]]).T + [ox, oy]
    count = coverage_count(torch.tensor(p[None]), torch.ones(1, len(p), dtype=torch.float64), faces, 32, 32)[
        0
    ].numpy()
    assert count.max() <= 1
    ys, xs = np.mgrid[0:32, 0:32].astype(np.float64)
    local = np.stack([xs - ox, ys - oy], axis=-1) @ np.array([[c, -s], [s, c]]) / scale  # back to grid units
    half = 3.0
    inside = (np.abs(local) < half - 1e-6).all(-1)
    outside = (np.abs(local) > half + 1e-6).any(-1)
    assert (count[inside] == 1).all()
    assert (count[outside] == 0).all()
