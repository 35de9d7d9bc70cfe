"""Camera, projection (against kornia's PinholeCamera), Euler rotations and gaze directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dvp_engine.core import layout
from dvp_engine.core.rotation import euler_to_matrix as core_euler
from dvp_engine.render.camera import Camera, RenderInputError, apply_pose, euler_to_matrix, gaze_direction


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def test_euler_matches_numpy_reference_and_core() -> None:
    rng = np.random.default_rng(1)
    angles = rng.uniform(-170, 170, size=(20, 3))
    got = euler_to_matrix(torch.tensor(angles, dtype=torch.float64)).numpy()
    for a, m in zip(angles, got, strict=True):
        rx, ry, rz = np.deg2rad(a)
        ref = _rz(rz) @ _ry(ry) @ _rx(rx)  # about fixed camera axes, x first
        np.testing.assert_allclose(m, ref, atol=1e-12)
    np.testing.assert_allclose(got, core_euler(angles), atol=1e-12)
    rad = euler_to_matrix(torch.tensor(np.deg2rad(angles)), degrees=False).numpy()
    np.testing.assert_allclose(rad, got, atol=1e-12)
    assert np.allclose(got @ got.transpose(0, 2, 1), np.eye(3), atol=1e-12)


def test_euler_sign_convention_turns_nose_as_documented() -> None:
    # +ry about the camera's y axis (down) moves the nose (model -z) toward image left (-x)
    r = euler_to_matrix(torch.tensor([0.0, 30.0, 0.0], dtype=torch.float64))
    nose = r @ torch.tensor([0.0, 0.0, -0.1], dtype=torch.float64)
    assert nose[0] < -0.04


def test_gaze_direction_matches_core_layout() -> None:
    yaw = np.array([0.0, 20.0, -35.0, 10.0])
    pitch = np.array([0.0, -10.0, 5.0, 40.0])
    got = gaze_direction(torch.tensor(yaw), torch.tensor(pitch), degrees=True).numpy()
    np.testing.assert_allclose(got, layout.gaze_direction(yaw, pitch), atol=1e-12)
    np.testing.assert_allclose(got[0], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, atol=1e-12)


def test_projection_matches_kornia_pinhole_camera() -> None:
    cam = Camera(1100.0, 1080.0, 250.3, 260.7, 512, 500)
    rng = np.random.default_rng(2)
    pts_model = torch.tensor(rng.uniform(-0.1, 0.1, size=(2, 50, 3)))
    rot = euler_to_matrix(torch.tensor([[5.0, -20.0, 3.0], [-10.0, 15.0, 0.0]], dtype=torch.float64))
    trans = torch.tensor([[0.01, -0.02, 0.6], [0.0, 0.03, 0.8]], dtype=torch.float64)
    ours = cam.project(apply_pose(pts_model, rot, trans))
    ext = torch.eye(4, dtype=torch.float64).repeat(2, 1, 1)
    ext[:, :3, :3] = rot
    ext[:, :3, 3] = trans
    kcam = cam.to_kornia(2, extrinsics=ext, dtype=torch.float64)
    theirs = kcam.project(pts_model)
    torch.testing.assert_close(ours, theirs, atol=1e-9, rtol=0)
    # plain pinhole formula
    xc = apply_pose(pts_model, rot, trans)
    u = 1100.0 * xc[..., 0] / xc[..., 2] + 250.3
    torch.testing.assert_close(ours[..., 0], u, atol=1e-9, rtol=0)


def test_scaled_camera_keeps_the_view() -> None:
    cam = Camera(1200.0, 1200.0, 255.5, 250.0, 512, 512)
    small = cam.scaled(256)
    assert small.size == (256, 256)
    pts = torch.tensor([[[0.05, -0.03, 0.6], [0.0, 0.0, 0.5]]], dtype=torch.float64)
    big = cam.project(pts)
    sm = small.project(pts)
    # pixel centres at integers: u_small = (u_big + 0.5) / 2 - 0.5
    torch.testing.assert_close(sm, (big + 0.5) * 0.5 - 0.5, atol=1e-9, rtol=0)
    # the image centre stays the image centre
    assert small.cx == pytest.approx(127.5)
    nonsquare = cam.scaled((256, 128))
    assert nonsquare.fy == pytest.approx(300.0) and nonsquare.fx == pytest.approx(600.0)


def test_camera_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="finite"):
        Camera(float("nan"), 1.0, 0.0, 0.0, 10, 10)
    with pytest.raises(RenderInputError, match="positive"):
        Camera(100.0, 100.0, 0.0, 0.0, 0, 10)
    with pytest.raises(ValueError, match="size"):
        Camera(100.0, 100.0, 0.0, 0.0, 10, 10).scaled((1, 2, 3))
