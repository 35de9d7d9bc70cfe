"""Conditioning images of the default face model (paper section 5): golden images, eyes, gaze, blinks,
correspondence, sizes, bad input, and the space-time volumes.

Regenerate the golden images (after an intended change of the renderer or of the shipped face model)::

    .venv/bin/python tests/render/test_conditioning.py --regenerate
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dvp_engine.core import layout
from dvp_engine.facemodel import DEFAULT_MODEL_PATH, load_default_model
from dvp_engine.render.camera import Camera, RenderInputError
from dvp_engine.render.conditioning import (
    ConditioningRenderer,
    build_volumes,
    correspondence_codes,
    eye_fill_triangles,
    render_conditioning,
)
from dvp_engine.render.shading import ambient_sh

GOLDEN = Path(__file__).resolve().parent / "golden" / "conditioning.npz"
GOLDEN_SIZE = 96
L = layout.FRAME_LAYOUT
CAMERA = Camera(1200.0, 1200.0, 255.5, 255.5, 512, 512)  # the 512 px footage camera


def _params(n: int = 1, **kw: object) -> np.ndarray:
    p = np.zeros((n, layout.FRAME_SIZE))
    p[:, L["translation"]] = [0.0, 0.01, 0.6]
    p[:, L["sh"]] = ambient_sh(0.9, dtype=torch.float64).numpy()
    return p


def _golden_params() -> np.ndarray:
    model = load_default_model()
    p = _params(2)
    sh = ambient_sh(0.8, dtype=torch.float64).numpy()
    sh[3 * 3 : 3 * 3 + 3] = -0.15  # band x: darker toward image right
    sh[3 * 1 : 3 * 1 + 3] = -0.1  # band y: lighter from above
    p[:, L["sh"]] = sh
    p[0, L["rotation"]] = np.deg2rad([5.0, -15.0, 3.0])
    p[0, L["translation"]] = [0.005, 0.01, 0.55]
    p[0, L["expression"]] = model.control_to_expression({"face.smile": 0.6})
    p[0, L["gaze"]] = np.deg2rad([15.0, -5.0, 15.0, -5.0])
    p[0, L["blink"]] = [0.2, 0.0]
    p[1, L["rotation"]] = np.deg2rad([-5.0, 25.0, 0.0])
    p[1, L["expression"]] = model.control_to_expression({"face.jaw_open": 0.5})
    p[1, L["gaze"]] = np.deg2rad([-20.0, 10.0, -20.0, 10.0])
    p[1, L["blink"]] = [0.0, 0.7]
    return p


def _model_hash() -> str:
    return hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest()


def _render_golden() -> np.ndarray:
    model = load_default_model()
    res = render_conditioning(model, _golden_params(), np.zeros(80), np.zeros(80), CAMERA, GOLDEN_SIZE)
    return res.images.numpy()


def regenerate() -> None:
    images = _render_golden()
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    q = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
    np.savez_compressed(GOLDEN, images=q, model_sha256=np.frombuffer(_model_hash().encode(), np.uint8))
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")


def test_golden_conditioning_images() -> None:
    with np.load(GOLDEN, allow_pickle=False) as z:
        golden = z["images"].astype(np.float32) / 255.0
        model_hash = z["model_sha256"].tobytes().decode()
    got = _render_golden()
    assert got.shape == golden.shape == (2, 9, GOLDEN_SIZE, GOLDEN_SIZE)
    diff = np.abs(got - golden)
    hint = (
        ""
        if model_hash == _model_hash()
        else " (the shipped face model changed since the golden images were made)"
    )
    hint += "; if the change is intended: .venv/bin/python tests/render/test_conditioning.py --regenerate"
    # quantisation to 8 bits gives <= 0.5/255; allow a few silhouette pixels to flip between platforms
    flipped = (diff.max(axis=1) > 8 / 255).mean()
    assert flipped < 0.005, f"{flipped:.2%} of the pixels differ from the golden images{hint}"
    assert diff.mean() < 1.5 / 255, f"mean difference {diff.mean() * 255:.2f}/255{hint}"


def test_images_are_black_outside_the_head_and_codes_inside() -> None:
    model = load_default_model()
    res = render_conditioning(model, _params(), np.zeros(80), np.zeros(80), CAMERA, 64)
    img = res.images[0].numpy()
    assert res.visible.tolist() == [True] and res.status == ["ok"]
    assert img.min() >= 0.0 and img.max() <= 1.0
    tri = res.raster.triangle[0].numpy() if res.raster is not None else None
    assert tri is not None
    background = tri < 0
    assert background.mean() > 0.3 and (img[:, background] == 0).all()
    face = (tri >= 0) & (tri < len(model.faces))
    assert (img[3:6, face].max(axis=0) >= 0.1 - 1e-6).all()  # codes >= 0.1: never black on the mesh
    eyes = tri >= len(model.faces)
    assert eyes.sum() > 4
    assert (img[0:6, eyes] == 0).all() and (img[6:9, eyes].max(axis=0) == 1).all()  # white or blue
    assert (img[6:9, ~eyes] == 0).all()


def test_colour_is_albedo_times_ambient_light() -> None:
    model = load_default_model()
    r = ConditioningRenderer(model, dtype=torch.float64)
    p = _params()
    p[:, L["sh"]] = ambient_sh(1.0, dtype=torch.float64).numpy()
    beta = np.zeros(80)
    beta[:3] = [1.0, -2.0, 0.5]
    res = r.render(p, np.zeros(80), beta, CAMERA, 64)
    assert res.raster is not None
    albedo = torch.as_tensor(model.albedo(beta), dtype=torch.float64).clamp(0, 1)
    expected = res.raster.interpolate(albedo)[0]
    face = (res.raster.triangle[0] >= 0) & (res.raster.triangle[0] < len(model.faces))
    torch.testing.assert_close(res.colour[0][:, face], expected[:, face], atol=1e-9, rtol=0)


def test_correspondence_and_gaze_do_not_depend_on_light_or_albedo() -> None:
    model = load_default_model()
    p = _params()
    a = render_conditioning(model, p, np.zeros(80), np.zeros(80), CAMERA, 64)
    p2 = p.copy()
    p2[:, L["sh"]] = ambient_sh(0.4, dtype=torch.float64).numpy()
    b = render_conditioning(model, p2, np.zeros(80), np.full(80, 0.5), CAMERA, 64)
    assert torch.equal(a.images[:, 3:], b.images[:, 3:])
    assert not torch.allclose(a.colour, b.colour)
    codes = correspondence_codes(model.mean_shape)
    assert len(np.unique(codes, axis=0)) == model.n_vertices
    assert codes.min() >= 0.1 - 1e-6 and codes.max() <= 1.0 + 1e-6


def _eye_stats(img: np.ndarray) -> dict[str, tuple[int, int, float, float]]:
    """Per image half (the actor's right eye is on the image's left): (eye pixels, blue pixels, blue x, blue y)."""
    g = img[6:9]
    eye = g.max(axis=0) > 0.5
    blue = (g[2] > 0.5) & (g[0] < 0.5)
    w = img.shape[2]
    out = {}
    for name, sl in (("right", slice(0, w // 2)), ("left", slice(w // 2, w))):
        e, b = eye[:, sl], blue[:, sl]
        ys, xs = np.nonzero(b)
        xs = xs + sl.start  # image coordinates
        out[name] = (
            int(e.sum()),
            int(b.sum()),
            float(xs.mean()) if len(xs) else np.nan,
            float(ys.mean()) if len(ys) else np.nan,
        )
    return out


def test_blinks_close_the_eye_regions() -> None:
    model = load_default_model()
    p = _params(3)
    p[1, L["blink"]] = [1.0, 0.0]  # actor's left eye closed (image right)
    p[2, L["blink"]] = [0.5, 0.5]
    res = render_conditioning(model, p, np.zeros(80), np.zeros(80), CAMERA, 128)
    open_, closed, half = (_eye_stats(res.images[i].numpy()) for i in range(3))
    assert open_["left"][0] > 30 and open_["right"][0] > 30
    assert closed["left"][0] == 0 and closed["left"][1] == 0  # closed lids: no white, no pupil
    assert abs(closed["right"][0] - open_["right"][0]) <= 2
    for eye in ("left", "right"):
        assert 0 < half[eye][0] < 0.8 * open_[eye][0]


def test_pupils_follow_gaze_and_stay_inside_the_eyes() -> None:
    model = load_default_model()
    p = _params(4)
    p[1, L["gaze"]] = np.deg2rad([20.0, 0.0, 20.0, 0.0])  # yaw +: toward model +x = image right
    p[2, L["gaze"]] = np.deg2rad([0.0, 15.0, 0.0, 15.0])  # pitch +: toward model +y = down
    p[3, L["rotation"]] = np.deg2rad([0.0, 0.0, 10.0])  # head roll: the pupils turn with the head
    res = render_conditioning(model, p, np.zeros(80), np.zeros(80), CAMERA, 128)
    s = [_eye_stats(res.images[i].numpy()) for i in range(4)]
    for eye in ("left", "right"):
        n_eye, n_blue, bx, by = s[0][eye]
        assert 0 < n_blue < n_eye
        assert s[1][eye][2] > bx + 1.0  # moved right
        assert s[2][eye][3] > by + 0.3  # moved down
    # roll by +10 deg about the camera z (y down): the actor's left eye (image right) moves down
    assert s[3]["left"][3] > s[0]["left"][3] + 1.0 and s[3]["right"][3] < s[0]["right"][3] - 1.0
    # a pupil is only drawn inside the eye opening: blue pixels are a subset of the eye-fill triangles
    tri = res.raster.triangle.numpy() if res.raster is not None else None
    assert tri is not None
    blue = (res.images[:, 8].numpy() > 0.5) & (res.images[:, 6].numpy() < 0.5)
    assert (tri[blue] >= len(model.faces)).all()


def test_size_mapping_renders_the_same_view() -> None:
    model = load_default_model()
    p = _params()
    big = render_conditioning(model, p, np.zeros(80), np.zeros(80), CAMERA, None)
    small = render_conditioning(model, p, np.zeros(80), np.zeros(80), CAMERA, 128)
    assert big.images.shape[-2:] == (512, 512) and small.images.shape[-2:] == (128, 128)
    assert small.coverage[0] == pytest.approx(float(big.coverage[0]), rel=0.03)

    def centroid(m: np.ndarray) -> np.ndarray:
        ys, xs = np.nonzero(m)
        return np.array([xs.mean(), ys.mean()])

    cb = centroid(big.images[0, 3:6].numpy().max(axis=0) > 0)
    cs = centroid(small.images[0, 3:6].numpy().max(axis=0) > 0)
    np.testing.assert_allclose(cs, (cb + 0.5) / 4 - 0.5, atol=0.3)


def test_batched_equals_single() -> None:
    model = load_default_model()
    p = _golden_params()
    both = render_conditioning(model, p, np.zeros(80), np.zeros(80), CAMERA, 48).images
    for i in range(2):
        one = render_conditioning(model, p[i : i + 1], np.zeros(80), np.zeros(80), CAMERA, 48).images
        torch.testing.assert_close(both[i : i + 1], one)


def test_nan_parameters_raise_a_clear_value_error() -> None:
    model = load_default_model()
    p = _params(3)
    p[2, L["gaze"].start + 1] = np.nan
    with pytest.raises(ValueError, match=r"batch item 2 \(gaze.left.y\)"):
        render_conditioning(model, p, np.zeros(80), np.zeros(80), CAMERA, 32)
    ident = np.zeros(80)
    ident[7] = np.inf
    with pytest.raises(RenderInputError, match="identity"):
        render_conditioning(model, _params(), ident, np.zeros(80), CAMERA, 32)
    with pytest.raises(ValueError, match=r"\(B, 103\)"):
        render_conditioning(model, np.zeros((2, 50)), np.zeros(80), np.zeros(80), CAMERA, 32)
    with pytest.raises(ValueError, match="reflectance"):
        render_conditioning(model, _params(), np.zeros(80), np.zeros(79), CAMERA, 32)


def test_head_behind_camera_or_outside_frame_renders_empty_and_flags() -> None:
    model = load_default_model()
    p = _params(3)
    p[1, L["translation"]] = [0.0, 0.0, -0.6]  # behind the camera
    p[2, L["translation"]] = [3.0, 0.0, 0.6]  # far to the right, outside the frame
    res = render_conditioning(model, p, np.zeros(80), np.zeros(80), CAMERA, 32)
    assert res.visible.tolist() == [True, False, False]
    assert res.status == ["ok", "behind camera", "outside frame"]
    assert float(res.images[1:].abs().max()) == 0.0
    assert float(res.coverage[1]) == 0.0 and float(res.coverage[0]) > 0.1
    # half in front of the near plane, half behind (camera inside the head): no crash
    p[1, L["translation"]] = [0.0, 0.0, 0.0]
    res = render_conditioning(model, p[:2], np.zeros(80), np.zeros(80), CAMERA, 32)
    assert torch.isfinite(res.images).all()


def test_eye_fill_triangulation_covers_the_loop() -> None:
    model = load_default_model()
    for loop in (model.eye_left_loop, model.eye_right_loop):
        tris = eye_fill_triangles(loop, model.mean_shape)
        assert tris.shape == (len(loop) - 2, 3)
        assert set(np.unique(tris)) == {int(i) for i in loop}
        # area of the triangulation (in the x-y plane) equals the polygon's shoelace area
        xy = model.mean_shape[:, :2].astype(np.float64)
        a, b, c = xy[tris[:, 0]], xy[tris[:, 1]], xy[tris[:, 2]]
        tri_area = np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]).sum() / 2
        poly = xy[np.asarray(loop)]
        shoelace = (
            abs(np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])) / 2
        )
        assert tri_area == pytest.approx(shoelace, rel=1e-4)


def test_volume_stacking_current_frame_last_and_padding() -> None:
    frames = torch.arange(5, dtype=torch.float32).reshape(5, 1, 1, 1).expand(5, 9, 2, 3) / 10.0
    vol = build_volumes(frames, [0, 2, 4], nw=3)
    assert vol.shape == (3, 27, 2, 3)
    got = ((vol[:, ::9, 0, 0] + 1) / 2 * 10).round().int().tolist()  # frame id of each 9-channel block
    assert got == [[0, 0, 0], [0, 1, 2], [2, 3, 4]]
    assert float(vol.min()) == -1.0 and float(vol.max()) == pytest.approx(-1 + 2 * 0.4)
    # the network's contract: the current frame's colour is channels 9 * (nw - 1) ...
    data = pytest.importorskip("dvp_engine.network.data")
    for i in (0, 2, 4):
        torch.testing.assert_close(build_volumes(frames, [i], nw=3)[0], data.stack_window(frames, i, nw=3))
    with pytest.raises(ValueError, match="indices"):
        build_volumes(frames, [5], nw=3)
    with pytest.raises(ValueError, match="shape"):
        build_volumes(torch.zeros(2, 3, 4, 4), [0])


def test_colour_image_has_gradients_for_pose_expression_and_light() -> None:
    model = load_default_model()
    r = ConditioningRenderer(model, dtype=torch.float64)
    p = torch.tensor(_params(), requires_grad=True)
    res = r.render(p, torch.zeros(80, dtype=torch.float64), torch.zeros(80, dtype=torch.float64), CAMERA, 32)
    (res.colour * torch.linspace(0, 1, 32, dtype=torch.float64)).sum().backward()
    assert p.grad is not None
    g = p.grad[0]
    for name in ("rotation", "translation", "expression", "sh"):
        assert float(g[L[name]].abs().max()) > 0, name
    assert float(g[L["gaze"]].abs().max()) == 0  # the gaze image is not differentiable


def test_sliced_batches_equal_one_pass() -> None:
    model = load_default_model()
    p = _golden_params()
    p = np.concatenate([p, p[:1]])
    alpha = np.zeros((3, 80))
    alpha[1, 0] = 1.0  # per-frame identity rows are sliced with the frames
    sliced = ConditioningRenderer(model, max_pixels=64 * 64).render(p, alpha, np.zeros(80), CAMERA, 64)
    whole = ConditioningRenderer(model, max_pixels=None).render(p, alpha, np.zeros(80), CAMERA, 64)
    assert sliced.raster is None and whole.raster is not None
    torch.testing.assert_close(sliced.images, whole.images)
    assert sliced.status == whole.status and torch.equal(sliced.visible, whole.visible)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    model = load_default_model()
    p = _golden_params()
    cpu = render_conditioning(model, p, np.zeros(80), np.zeros(80), CAMERA, 128).images
    gpu = render_conditioning(model, p, np.zeros(80), np.zeros(80), CAMERA, 128, device="cuda").images.cpu()
    flipped = ((cpu - gpu).abs().amax(dim=1) > 0.03).float().mean()
    assert flipped < 0.003
    assert (cpu - gpu).abs().mean() < 1e-3


if __name__ == "__main__":
    if "--regenerate" in sys.argv:
        regenerate()
    else:
        print(__doc__)


@pytest.mark.parametrize("follows", [False, True])
def test_pupils_sit_where_the_tracker_puts_them(follows: bool) -> None:
    # the tracker's overlay projects the pupil (eyeball centre + radius * d); our blue disc is centred there
    overlay = pytest.importorskip("dvp_engine.tracking.overlay")
    from fractions import Fraction

    from dvp_engine.core.track import FaceTrack

    model = load_default_model()
    p = _params()
    p[0, L["rotation"]] = np.deg2rad([0.0, 10.0, 0.0])
    p[0, L["gaze"]] = np.deg2rad([8.0, 0.0, 8.0, 0.0])
    alpha = np.zeros(80)
    alpha[:6] = 2.0 * model.id_std[:6]  # an identity that moves the eye openings
    track = FaceTrack.from_params(
        [1],
        p,
        rate=Fraction(25),
        width=512,
        height=512,
        intrinsics=CAMERA.intrinsics,
        identity=alpha,
        metadata={"tracker": {"settings": {"eyeball_follows_face": follows}}},
    )
    res = render_conditioning(model, p, alpha, np.zeros(80), CAMERA, 256, eyeball_follows_face=follows)
    img = res.images[0].numpy()
    stats = _eye_stats(img)
    blue = (img[8] > 0.5) & (img[6] < 0.5)
    for eye, (pupil, _) in zip(("left", "right"), overlay.gaze_rays(model, track, 0), strict=True):
        expected = (np.asarray(pupil) + 0.5) / 2.0 - 0.5  # 512 -> 256 pixel coordinates
        assert abs(stats[eye][2] - expected[0]) < 0.75, (eye, stats[eye], expected)
        # vertically the lids clip the disc: the pupil lies within the blue rows around it
        column = blue[:, int(round(expected[0])) - 1 : int(round(expected[0])) + 2].any(axis=1)
        rows = np.nonzero(column)[0]
        assert rows.min() - 0.5 <= expected[1] <= rows.max() + 0.5, (eye, rows, expected)
