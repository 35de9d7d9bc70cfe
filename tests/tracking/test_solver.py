"""Solver tests: array helpers, explicit Jacobians against finite differences, synthetic ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from dvp_engine.core import layout
from dvp_engine.core.rotation import euler_to_matrix
from dvp_engine.facemodel import load_default_model
from dvp_engine.tracking import solver as S
from dvp_engine.tracking.synthetic import synthetic_scene
from dvp_engine.tracking.tracker import (
    Tracker,
    TrackerSettings,
    default_intrinsics,
    from_packed,
)
from dvp_engine.tracking.xp import (
    bilinear_sample,
    cholesky_solve,
    euler_rotation,
    gram,
    scatter_add_rows,
    segment_min_mask,
)


@pytest.fixture(scope="module")
def model():
    return load_default_model()


# ------------------------------------------------------------------------------------------ array helpers
def test_euler_rotation_matches_core_and_its_derivative():
    ang = np.array([[0.3, -0.2, 0.5], [-1.0, 0.4, 2.0]])
    r, dr = euler_rotation(np, ang)
    np.testing.assert_allclose(r, euler_to_matrix(ang, degrees=False), atol=1e-12)
    eps = 1e-6
    for k in range(3):
        a2 = ang.copy()
        a2[:, k] += eps
        fd = (euler_rotation(np, a2)[0] - r) / eps
        np.testing.assert_allclose(dr[:, k], fd, atol=1e-5)


def test_bilinear_sample_is_exact_on_a_linear_image_and_flags_outside():
    h, w = 7, 9
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([2 * xx + 3 * yy, xx - yy], -1)[None]
    x = np.array([[0.0, 3.25, 7.9, 8.0, -0.5]])
    y = np.array([[0.0, 2.5, 5.1, 6.0, 1.0]])
    v, inside = bilinear_sample(np, img, x, y)
    np.testing.assert_allclose(v[0, :4, 0], 2 * x[0, :4] + 3 * y[0, :4], atol=1e-4)
    np.testing.assert_allclose(v[0, :4, 1], x[0, :4] - y[0, :4], atol=1e-4)
    assert inside.tolist() == [[True, True, True, True, False]]
    # uint8 images do not wrap around (values are gathered then converted)
    u8 = np.array([[[[200], [10]]]], np.uint8)
    v8, _ = bilinear_sample(np, u8, np.array([[0.5]]), np.array([[0.0]]))
    assert v8[0, 0, 0] == pytest.approx(105.0)


def test_segment_min_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 20, 500)
    vals = rng.uniform(0, 1, 500)
    got = segment_min_mask(np, keys, vals, 0.05)
    mins = {k: vals[keys == k].min() for k in np.unique(keys)}
    want = np.array([v <= mins[k] + 0.05 for k, v in zip(keys, vals, strict=True)])
    assert np.array_equal(got, want)


def test_scatter_add_cholesky_and_gram():
    idx = np.array([0, 2, 2, 1, 0])
    vals = np.arange(10.0).reshape(5, 2)
    np.testing.assert_allclose(scatter_add_rows(np, idx, vals, 4), [[8, 10], [6, 7], [6, 8], [0, 0]])
    rng = np.random.default_rng(1)
    j = rng.normal(size=(3, 40, 6))
    r = rng.normal(size=(3, 40))
    a, g = gram(np, j, r)
    np.testing.assert_allclose(a, np.einsum("bri,brj->bij", j, j), atol=1e-10)
    np.testing.assert_allclose(g, np.einsum("bri,br->bi", j, r), atol=1e-10)
    x = cholesky_solve(np, a + np.eye(6), g)
    np.testing.assert_allclose(x, np.linalg.solve(a + np.eye(6), g[..., None])[..., 0], atol=1e-9)


# ------------------------------------------------------------------------------------------ Jacobians
def test_explicit_jacobians_match_finite_differences(model):
    """Landmark rows (all geometric columns, identity included) and the photometric SH / reflectance columns
    are exact; the photometric geometric columns agree in direction (normals are held within an iteration)."""
    packed, images, obs, intr = synthetic_scene(model, 1, 160, seed=2)
    st = S.SolverSettings()
    m = S.prepare_model(model, np, st)
    local, _ = from_packed(packed)
    local[:, S.TRANS] += [0.001, 0.0005, 0.004]  # off the optimum
    o = S.Observations(
        np.asarray(images), obs[0].landmarks[None], np.ones((1, 68)), np.array([40.0]), intr, 1.0 / 255.0
    )
    alpha = np.zeros(80)
    beta = np.zeros(80)
    ref = np.ones((1, m.photo.shape[0]))
    lin = S.linearise(m, o, local, st, alpha=alpha, beta=beta, shared=True, irls_ref=ref)
    nl = 2 * 68

    def res(loc, a=alpha, b=beta):
        return S.linearise(m, o, loc, st, alpha=a, beta=b, jacobian=False, irls_ref=ref).r

    r0 = res(local)
    for col in (0, 1, 2, 3, 4, 5, 6, 9, 40, 70, 71):
        eps = 1e-7
        l2 = local.copy()
        l2[:, col] += eps
        fd = (res(l2) - r0) / eps
        np.testing.assert_allclose(lin.j_local[0, :nl, col], fd[0, :nl], rtol=1e-4, atol=1e-6)
    for col in (0, 5, 79):
        a2 = alpha.copy()
        a2[col] += 1e-5
        fd = (res(local, a=a2) - r0) / 1e-5
        np.testing.assert_allclose(lin.j_shared[0, :nl, col], fd[0, :nl], rtol=1e-3, atol=1e-6)
    for col in (72, 80, 98):  # SH: linear, exact
        l2 = local.copy()
        l2[:, col] += 1e-3
        fd = (res(l2) - r0) / 1e-3
        np.testing.assert_allclose(lin.j_local[0, nl:, col], fd[0, nl:], rtol=1e-5, atol=1e-8)
    for col in (80, 81, 150):  # reflectance: linear, exact
        b2 = beta.copy()
        b2[col - 80] += 1e-2
        fd = (res(local, b=b2) - r0) / 1e-2
        np.testing.assert_allclose(lin.j_shared[0, nl:, col], fd[0, nl:], rtol=1e-5, atol=1e-8)
    # photometric, geometric columns on a smooth image (where central differences are the derivative):
    # pose columns are exact (rotation includes the turning normals), expression drops the normals' change
    yy, xx = np.mgrid[0:160, 0:160].astype(np.float64)
    smooth = np.stack(
        [0.5 + 0.3 * np.sin(xx / 13.0), 0.5 + 0.3 * np.cos(yy / 11.0), 0.5 + 0.2 * np.sin((xx + yy) / 17.0)],
        -1,
    )
    o.images = smooth[None]
    o.image_scale = 1.0
    lin = S.linearise(m, o, local, st, irls_ref=ref)
    r0 = res(local)
    for col, bound in ((0, 0.99), (1, 0.99), (2, 0.99), (3, 0.99), (5, 0.99), (6, 0.9), (8, 0.9)):
        eps = 1e-5  # small enough that no vertex changes visibility
        l2 = local.copy()
        l2[:, col] += eps
        fd = (res(l2) - r0)[0, nl:] / eps
        an = lin.j_local[0, nl:, col]
        cos = fd @ an / (np.linalg.norm(fd) * np.linalg.norm(an))
        assert cos > bound, (col, cos)


# ------------------------------------------------------------------------------------------ recovery
def test_synthetic_tracking_recovers_known_parameters(model):
    # 384 px, landmark noise 0.3 px, pupil noise 0.05 px (over seeds 3, 4, 7, 8 the worst errors are 0.76 deg,
    # 0.7 % of the depth, 1.5 deg of gaze, 0.07 blink, expression correlation 0.95)
    packed, images, obs, intr = synthetic_scene(model, 4, 384, seed=3)
    tr = Tracker(model, 384, 384, TrackerSettings(identity_keyframes=0), intr)
    res = tr.track(images, obs)
    assert res.valid.all()
    got, gaze = from_packed(res.params)
    want, gaze_true = from_packed(packed)
    rot_err = np.rad2deg(np.abs(got[:, S.ROT] - want[:, S.ROT]))
    assert rot_err.max() < 1.0, rot_err
    trans_err = np.abs(got[:, S.TRANS] - want[:, S.TRANS]) / want[:, 5:6]
    assert trans_err.max() < 0.01, trans_err
    gaze_err = np.rad2deg(np.abs(gaze - gaze_true))
    assert gaze_err.max() < 2.0, gaze_err
    blink_err = np.abs(got[:, S.BLINK] - want[:, S.BLINK])
    assert blink_err.max() < 0.15, blink_err
    for f in range(len(images)):
        corr = np.corrcoef(got[f, S.EXPR], want[f, S.EXPR])[0, 1]
        assert corr > 0.9, (f, corr)
    assert (res.landmark_error < 0.03).all()
    assert (res.confidence > 0.8).all()


def test_gaze_solver_is_exact_without_noise(model):
    m = S.prepare_model(model, np, S.SolverSettings())
    intr = default_intrinsics(512, 512)
    local = np.zeros((3, S.N_LOCAL))
    local[:, S.ROT] = np.deg2rad([[5, -10, 2], [0, 20, 0], [-8, 3, -4]])
    local[:, S.TRANS] = [0.0, 0.0, 0.6]
    gaze = np.deg2rad([[10, -5, 12, -4], [-20, 8, -18, 9], [0, 0, 3, 15]])
    rot = euler_to_matrix(local[:, S.ROT], degrees=False)
    pupils = np.zeros((3, 2, 2))
    for f in range(3):
        for e, c in enumerate((model.eyeball_left_center, model.eyeball_right_center)):
            d = layout.gaze_direction(np.rad2deg(gaze[f, 2 * e]), np.rad2deg(gaze[f, 2 * e + 1]))
            pupils[f, e] = S.project(
                (rot[f] @ (c + model.eyeball_radius * d) + local[f, S.TRANS])[None], intr
            )[0]
    got = S.solve_gaze(m, local, pupils, np.ones((3, 2)), intr)
    np.testing.assert_allclose(np.rad2deg(got), np.rad2deg(gaze), atol=0.05)


def test_identity_mode_recovers_reflectance_and_improves_the_fit(model):
    rng = np.random.default_rng(5)
    beta = rng.normal(size=80) * np.asarray(model.albedo_std) * 0.5
    alpha = rng.normal(size=80) * np.asarray(model.id_std) * 0.8
    packed, images, obs, intr = synthetic_scene(model, 3, 192, seed=6, identity=alpha, reflectance=beta)
    tr = Tracker(model, 192, 192, TrackerSettings(), intr)
    before = tr.track(images, obs)
    a, b = tr.fit_identity(images, obs)
    after = tr.track(images, obs)
    true_albedo = np.asarray(model.albedo(beta), np.float64)[0]
    err_mean = np.sqrt(np.mean((np.asarray(model.mean_albedo) - true_albedo) ** 2))
    err_fit = np.sqrt(np.mean((np.asarray(model.albedo(b), np.float64)[0] - true_albedo) ** 2))
    assert err_fit < 0.5 * err_mean, (err_fit, err_mean)
    assert np.corrcoef(b, beta)[0, 1] > 0.8
    assert np.nanmean(after.photo_error) < 0.7 * np.nanmean(before.photo_error)
    assert np.nanmean(after.landmark_error) <= np.nanmean(before.landmark_error) * 1.05
