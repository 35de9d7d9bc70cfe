from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dvp_engine.core.errors import InputError
from dvp_engine.pipeline.portrait import Framing, ModelInfo, matte_from_mask, resize_images


def test_framing_maps_intrinsics_into_the_crop() -> None:
    f = Framing.centred(640, 480, 256)
    assert (f.x0, f.y0, f.side) == (80, 0, 480)
    fx, fy, cx, cy = f.intrinsics((1000.0, 1000.0, 319.5, 239.5))
    assert fx == pytest.approx(1000 * 256 / 480)
    # the plate's centre pixel maps to the network image's centre
    assert (cx, cy) == pytest.approx((127.5, 127.5))
    # a point projected in the plate lands at the matching place in the crop
    X = np.array([0.03, -0.02, 0.6])
    u = 1000 * X[0] / X[2] + 319.5
    u_net = fx * X[0] / X[2] + cx
    assert u_net == pytest.approx((u - 80 + 0.5) * 256 / 480 - 0.5)
    img = np.arange(480 * 640).reshape(480, 640, 1)
    assert f.crop(img).shape == (480, 480, 1) and f.crop(img)[0, 0, 0] == 80


def test_resize_keeps_range_and_means() -> None:
    rng = np.random.default_rng(0)
    imgs = rng.uniform(size=(2, 64, 64, 3)).astype(np.float32)
    small = resize_images(imgs, 16)
    assert small.shape == (2, 3, 16, 16)
    assert small.min() >= 0 and small.max() <= 1
    np.testing.assert_allclose(small.mean(axis=(2, 3)), imgs.mean(axis=(1, 2)), atol=0.01)


def test_matte_is_soft_and_covers_the_mask() -> None:
    mask = np.zeros((1, 64, 64), np.float32)
    mask[0, 20:44, 24:40] = 1
    m = matte_from_mask(mask, 3)
    assert m[0, 32, 32] == pytest.approx(1.0)
    assert m[0, 0, 0] == 0.0
    edge = m[0, 32, 24 - 3 : 24 + 4]
    assert np.all(np.diff(m[0, 32, 10:25]) >= -1e-6) and 0 < edge.min() < 1  # a ramp, not a step


def test_model_info_round_trip_and_errors(tmp_path: Path) -> None:
    info = ModelInfo(Framing(0, 0, 512, 128), 11, "t.npz", "v.mp4", [1, 2], [3], [0.0] * 80, [0.0] * 80)
    info.save(tmp_path)
    assert ModelInfo.load(tmp_path) == info
    with pytest.raises(InputError, match="not a dvp model folder"):
        ModelInfo.load(tmp_path / "nope")
    (tmp_path / "dvp_model.json").write_text('{"schema": "Other"}')
    with pytest.raises(InputError, match="unknown model schema"):
        ModelInfo.load(tmp_path)


def test_conditioning_cache_notices_a_mirrored_pose_and_new_albedo(tmp_path: Path) -> None:
    from dvp_engine.core import FaceTrack, layout
    from dvp_engine.pipeline.portrait import prepare_data

    p = np.zeros((3, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"].start + 2] = 0.6
    p[:, 1] = 0.2  # head.ry
    p[:, layout.FRAME_LAYOUT["sh"].start] = 3.5
    t = FaceTrack.from_params([1, 2, 3], p, rate=25, width=64, height=64, intrinsics=(120, 120, 31.5, 31.5))
    framing = Framing.centred(64, 64, 32)
    calls: list[str] = []
    import dvp_engine.pipeline.portrait as portrait

    real = portrait.conditioning_frames

    def counting(*a: object, **k: object) -> object:
        calls.append("render")
        return real(*a, **k)  # type: ignore[arg-type]

    src = Path(__file__).resolve().parents[2] / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"
    portrait.conditioning_frames = counting  # type: ignore[assignment]
    try:
        prepare_data(t, src, framing, tmp_path)
        prepare_data(t, src, framing, tmp_path)
        assert calls == ["render"]  # unchanged inputs: cached
        p2 = p.copy()
        p2[:, 1] = -0.2  # mirrored head turn: same absolute values
        prepare_data(t.with_params(p2), src, framing, tmp_path)
        refl = t.replace(reflectance=np.full(80, 0.5, np.float32))
        prepare_data(refl, src, framing, tmp_path)
        assert calls == ["render"] * 3
    finally:
        portrait.conditioning_frames = real


def _wide_track(valid: list[float] | None = None):  # noqa: ANN202
    """An HD plate (1920 x 1080) with the actor left of centre, 2 m away, swaying 10 cm sideways."""
    from dvp_engine.core import FaceTrack, layout

    n = 6
    p = np.zeros((n, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"]] = np.stack(
        [np.linspace(-0.6, -0.5, n), np.zeros(n), np.full(n, 2.0)], 1
    )
    if valid is not None:
        p[np.asarray(valid) < 0.5, 3] = 0.9  # lost frames hold junk far to the right
    return FaceTrack.from_params(
        np.arange(1, n + 1), p, rate=25, width=1920, height=1080, intrinsics=(1500, 1500, 959.5, 539.5),
        valid=valid,
    )  # fmt: skip


def test_head_framing_holds_the_head_in_every_frame_and_stays_in_the_plate() -> None:
    track = _wide_track()
    f = Framing.choose("auto", track, 256)  # a non-square plate: framed around the head
    assert f == Framing.around_head(track, 256) and f.size == 256
    assert 0 <= f.x0 and f.x0 + f.side <= 1920 and 0 <= f.y0 and f.y0 + f.side <= 1080
    assert f.side < 1080  # tighter than the centred square: more pixels on the face
    t = track.params()[:, 3:6]
    u = 1500 * t[:, 0] / t[:, 2] + 959.5
    v = 1500 * (t[:, 1] + 0.05) / t[:, 2] + 539.5
    half = 0.5 * 0.45 * 1500 / t[:, 2]
    assert np.all(u - half >= f.x0 - 1) and np.all(u + half <= f.x0 + f.side + 1)
    assert np.all(v - half >= f.y0 - 1) and np.all(v + half <= f.y0 + f.side + 1)
    # the head's centre lands inside the network image through the crop's intrinsics
    fx, fy, cx, cy = f.intrinsics(track.intrinsics)
    un = fx * t[:, 0] / t[:, 2] + cx
    assert np.all((un > 0.25 * 256) & (un < 0.75 * 256))
    # frames where the face was lost do not stretch the crop
    lost = _wide_track(valid=[1, 1, 0, 1, 0, 1])
    assert Framing.choose("head", lost, 256) == Framing.around_head(_wide_track().select([1, 2, 4, 6]), 256)


def test_framing_choices_and_errors() -> None:
    track = _wide_track()
    assert Framing.choose("centred", track, 128) == Framing(420, 0, 1080, 128)
    assert Framing.choose("100,50,400", track, 128) == Framing(100, 50, 400, 128)
    square = track.replace(width=1080, height=1080, intrinsics=(1500, 1500, 539.5, 539.5))
    assert Framing.choose("auto", square, 256) == Framing(0, 0, 1080, 256)  # a square plate: all of it
    with pytest.raises(InputError, match="not inside"):
        Framing.choose("1800,0,400", track, 256)
    with pytest.raises(InputError, match="auto, centred, head or X,Y,SIDE"):
        Framing.choose("middle", track, 256)
