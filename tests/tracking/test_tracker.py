"""Tracker tests: lost frames, the pipeline on the real sample clip, numpy vs CuPy, smoothing, overlays."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.errors import InputError
from dvp_engine.facemodel import load_default_model
from dvp_engine.tracking import solver as S
from dvp_engine.tracking.overlay import draw_overlay, render_params
from dvp_engine.tracking.pipeline import pick_keyframes, track_video
from dvp_engine.tracking.tracker import (
    FrameObservation,
    Tracker,
    TrackerSettings,
    default_intrinsics,
    from_packed,
    interpolate_lost,
    smooth_params,
    to_packed,
)
from dvp_engine.tracking.xp import cuda_available

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def model():
    return load_default_model()


def _scene(model, n: int, size: int = 160, seed: int = 0):
    """A slow head turn rendered over a textured background; landmarks from the known projection."""
    rng = np.random.default_rng(seed)
    intr = default_intrinsics(size, size)
    idx = np.asarray(model.landmarks68)
    local = np.zeros((n, S.N_LOCAL))
    local[:, 1] = np.deg2rad(np.linspace(-10, 10, n))
    local[:, 0] = np.deg2rad(np.linspace(3, -3, n))
    local[:, S.TRANS] = [0.0, 0.0, 0.7]
    local[:, S.EXPR] = rng.normal(size=(n, 64)) * np.asarray(model.expr_std) * 0.3
    local[:, S.SH] = S.ambient_sh(np) * 0.9
    packed = to_packed(local, np.zeros((n, 4)))
    yy, xx = np.mgrid[0:size, 0:size]
    bg = np.stack([0.5 + 0.3 * np.sin(xx / 5.0), 0.5 + 0.3 * np.cos(yy / 7.0), 0.5 + 0 * xx], -1)
    images, obs = [], []
    for f in range(n):
        img, pix, _ = render_params(model, packed[f], intr, bg)
        images.append((img * 255 + 0.5).astype(np.uint8))
        obs.append(FrameObservation(pix[idx] + rng.normal(size=(68, 2)) * 0.2, 1.0))
    return packed, images, obs, intr


class _Replay:
    """A landmark source that replays prepared observations in order."""

    def __init__(self, obs):
        self.obs = list(obs)
        self.i = 0

    def __call__(self, img):
        o = self.obs[self.i]
        self.i += 1
        return o


def test_lost_frames_are_flagged_interpolated_and_tracking_recovers(model):
    packed, images, obs, intr = _scene(model, 7)
    images[2] = np.zeros_like(images[2])  # black frame: the source finds no face
    obs[2] = FrameObservation(None, 0.0, message="no face found (the frame is black)")
    rng = np.random.default_rng(1)  # frame 4: landmarks of something else (a bad detection)
    obs[4] = FrameObservation(rng.uniform(20, 140, (68, 2)), 1.0)
    tr = Tracker(model, 160, 160, TrackerSettings(identity_keyframes=0), intr)
    res = tr.track(images, obs)
    assert res.valid.tolist() == [True, True, False, True, False, True, True]
    # interpolated from the neighbouring good frames (not held, not zeroed)
    np.testing.assert_allclose(res.params[2], (res.params[1] + res.params[3]) / 2, atol=1e-12)
    np.testing.assert_allclose(res.params[4], (res.params[3] + res.params[5]) / 2, atol=1e-12)
    assert not np.allclose(res.params[2], res.params[1])
    assert res.confidence[2] == 0.0 and res.confidence[4] == 0.0
    assert "black" in res.messages[2] and "landmark error" in res.messages[4]
    got, _ = from_packed(res.params)
    want, _ = from_packed(packed)
    for f in (3, 5, 6):  # recovered after each loss
        assert np.rad2deg(np.abs(got[f, :3] - want[f, :3])).max() < 1.5
        assert res.confidence[f] > 0.8


def test_track_video_flags_or_raises_on_bad_frames(model):
    packed, images, obs, intr = _scene(model, 4)
    images[1] = np.zeros_like(images[1])
    obs[1] = FrameObservation(None, 0.0, message="no face found")
    track = track_video(
        "synthetic", images=images, frame_numbers=[1001, 1002, 1003, 1004], landmark_source=_Replay(obs),
        identity_keyframes=2, intrinsics=intr, model=model,
    )  # fmt: skip
    assert track.frames.tolist() == [1001, 1002, 1003, 1004]
    assert track.channel(layout.VALID).tolist() == [1, 0, 1, 1]
    assert track.metadata["lost_frames"] == {"1002": "no face found"}
    assert track.metadata["controls"]["names"] == list(model.control_names)
    assert np.asarray(track.metadata["controls"]["matrix"]).shape == (len(model.control_names), 64)
    assert track.metadata["face_model"]["schema"] == "FaceModel.1"
    with pytest.raises(InputError, match="frame 1002"):
        track_video(
            "synthetic", images=images, frame_numbers=[1001, 1002, 1003, 1004], landmark_source=_Replay(obs),
            identity_keyframes=0, on_bad_frame="error", intrinsics=intr, model=model,
        )  # fmt: skip


def test_pick_keyframes_spreads_over_the_clip():
    obs = [FrameObservation(np.zeros((68, 2)), 1.0) for _ in range(20)]
    obs[0] = FrameObservation(None)
    keys = pick_keyframes(obs, 4)
    assert len(keys) == 4 and 0 not in keys
    assert keys[0] < 5 and keys[-1] >= 15


def test_smoothing_reduces_noise_and_keeps_lost_frames():
    rng = np.random.default_rng(0)
    n = 60
    clean = np.sin(np.linspace(0, 3, n))[:, None] * np.ones((1, layout.FRAME_SIZE))
    noisy = clean + rng.normal(size=clean.shape) * 0.05
    valid = np.ones(n, bool)
    valid[30] = False
    noisy[30] = 7.0  # a held frame's value must not leak into its neighbours
    out = smooth_params(noisy, valid, 1.5)
    assert out[30, 0] == 7.0
    keep = valid.copy()
    assert np.abs(out[keep] - clean[keep]).mean() < 0.6 * np.abs(noisy[keep] - clean[keep]).mean()
    assert np.abs(out[29] - clean[29]).max() < 0.2
    np.testing.assert_allclose(smooth_params(clean, np.ones(n, bool), 0.0), clean)


def test_overlay_draws_the_fit(model, tmp_path):
    packed, images, obs, intr = _scene(model, 2)
    track = FaceTrack.from_params(
        [1, 2], packed, rate=25, width=160, height=160, intrinsics=intr, confidence=[0.9, 0.2], valid=[1, 0]
    )
    paths = draw_overlay(track, images, tmp_path, detect=False, model=model, shaded=0.5)
    assert [p.name for p in paths] == ["overlay.0001.png", "overlay.0002.png"]
    import OpenImageIO as oiio

    buf = oiio.ImageBuf(str(paths[0]))
    px = buf.get_pixels(oiio.UINT8)
    assert px.shape == (160, 160, 3)
    changed = np.abs(px.astype(int) - images[0].astype(int)).sum(-1) > 30
    assert 0.05 < changed.mean() < 0.6  # the mesh and text are drawn over the frame, not instead of it


def test_tracks_renders_of_the_production_renderer(model):
    """Frames rendered by dvp_engine.render (torch rasteriser, SH shading) over a textured background: the
    tracker's image formation agrees with the renderer's (photometric error near zero at the fit) and it
    recovers the known parameters."""
    pytest.importorskip("torch")
    from dvp_engine.render.camera import Camera
    from dvp_engine.render.conditioning import render_conditioning
    from dvp_engine.tracking.synthetic import synthetic_scene, textured_background

    size = 384
    packed, _, obs, intr = synthetic_scene(model, 3, size, seed=4)
    res = render_conditioning(
        model, packed, np.zeros(80), np.zeros(80), Camera.from_intrinsics(intr, size, size)
    )
    imgs = res.images.numpy()
    colour = imgs[:, 0:3].transpose(0, 2, 3, 1)
    face = imgs[:, 3:6].sum(axis=1) > 0  # the correspondence image covers the face mesh
    frames = np.where(face[..., None], colour, textured_background(size, size)[None])
    frames = [(f * 255 + 0.5).astype(np.uint8) for f in frames]
    tr = Tracker(model, size, size, TrackerSettings(identity_keyframes=0), intr)
    out = tr.track(frames, obs)
    got, gaze = from_packed(out.params)
    want, gaze_true = from_packed(packed)
    assert np.rad2deg(np.abs(got[:, :3] - want[:, :3])).max() < 1.0
    assert (np.abs(got[:, S.TRANS] - want[:, S.TRANS]) / want[:, 5:6]).max() < 0.01
    assert np.rad2deg(np.abs(gaze - gaze_true)).max() < 2.0
    assert np.abs(got[:, S.BLINK] - want[:, S.BLINK]).max() < 0.15
    for f in range(3):
        assert np.corrcoef(got[f, S.EXPR], want[f, S.EXPR])[0, 1] > 0.9
    assert (out.photo_error < 0.01).all(), out.photo_error


# ------------------------------------------------------------------------------------------ real footage
@pytest.mark.data
def test_real_clip_landmark_error_and_confidence(tmp_path):
    clip = SHARED_DATA / "wda_kh.mp4"
    if not clip.is_file():
        pytest.skip(f"real test clip not found: {clip}")
    if importlib.util.find_spec("dlib") is None:
        pytest.skip("dlib is not installed")
    results: list = []
    track = track_video(clip, frames="1-20", identity_keyframes=3, result=results)
    res = results[0]
    assert track.n_frames == 20 and track.frames[0] == 1
    assert res.valid.all()
    # RMS landmark reprojection error over the inter-ocular distance (contour points downweighted)
    assert (res.landmark_error < 0.06).all(), res.landmark_error
    assert (res.confidence > 0.5).all(), res.confidence
    tz = track.channel("head.tz")
    assert 0.3 < tz.min() and tz.max() < 1.5
    path = track.save(tmp_path / "t.npz")
    back = FaceTrack.load(path)
    np.testing.assert_allclose(back.params(), track.params(), atol=1e-5)


# ------------------------------------------------------------------------------------------ CuPy
@pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")
def test_numpy_and_cupy_give_the_same_parameters(model):
    packed, images, obs, intr = _scene(model, 4, seed=3)
    out = {}
    for device in ("cpu", "cuda"):
        tr = Tracker(
            model, 160, 160, TrackerSettings(identity_keyframes=0, device=device, batch_size=4), intr
        )
        out[device] = tr.track(images, obs)
    np.testing.assert_allclose(out["cuda"].params, out["cpu"].params, atol=1e-4)
    np.testing.assert_array_equal(out["cuda"].valid, out["cpu"].valid)


def test_device_code_runs_on_a_strict_stand_in_for_cupy(model, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CuPy path without a GPU: the same tracker on tests/tracking/strict_cupy.py, which refuses host
    arrays in device operations and implicit device-to-numpy conversions as CuPy does. Identity keyframes,
    pupils (gaze) and a lost frame are included so every device branch runs."""
    import sys

    spec = importlib.util.spec_from_file_location("strict_cupy", Path(__file__).with_name("strict_cupy.py"))
    assert spec is not None and spec.loader is not None
    strict_cupy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(strict_cupy)
    monkeypatch.setitem(sys.modules, "cupy", strict_cupy.module())
    assert cuda_available()
    packed, images, obs, intr = _scene(model, 5, seed=5)
    obs = list(obs)
    obs[3] = FrameObservation(None, 0.0)  # no face in frame 3
    for o in obs:
        if o.landmarks is not None:
            o.pupils = o.landmarks[[37, 43]] * 0.5 + o.landmarks[[40, 46]] * 0.5
            o.pupil_confidence = np.ones(2)
    out = {}
    for device in ("cpu", "cuda"):
        tr = Tracker(
            model, 160, 160, TrackerSettings(identity_keyframes=2, device=device, batch_size=2), intr
        )
        out[device] = tr.track(images, obs)
        # the device run really computed on "device" arrays
        assert isinstance(tr.alpha, strict_cupy.DeviceArray) == (device == "cuda")
    np.testing.assert_allclose(out["cuda"].params, out["cpu"].params, atol=1e-9)
    np.testing.assert_array_equal(out["cuda"].valid, out["cpu"].valid)
    assert not out["cuda"].valid[3] and out["cuda"].valid[[0, 1, 2, 4]].all()


def test_interpolate_lost_frames_between_neighbours_and_hold_at_the_ends():
    p = np.arange(8, dtype=np.float64)[:, None] * np.array([[1.0, -2.0]])
    valid = np.array([False, True, True, False, False, True, True, False])
    out = interpolate_lost(p * np.where(valid, 1.0, 0.0)[:, None], valid)
    np.testing.assert_allclose(out[3:5], p[3:5])  # linear between frames 2 and 5
    np.testing.assert_allclose(out[0], p[1])  # before the first good frame: held
    np.testing.assert_allclose(out[7], p[6])  # after the last: held
    np.testing.assert_allclose(out[valid], p[valid])


def test_update_re_tracks_a_stretch_into_an_existing_track(model):
    packed, images, obs, intr = _scene(model, 8)
    numbers = list(range(1001, 1009))
    full = track_video("synthetic", images=images, frame_numbers=numbers, landmark_source=_Replay(obs),
                       identity_keyframes=2, intrinsics=intr, model=model)  # fmt: skip
    bad = full.replace()
    bad.channels["head.ry"][3:6] += 20.0  # an artist's bad stretch, 1004-1006
    bad.metadata["lost_frames"] = {"1005": "no face found"}
    out = track_video("synthetic", images=images[3:6], frame_numbers=numbers[3:6], landmark_source=_Replay(obs[3:6]),
                      model=model, update=bad)  # fmt: skip
    assert out.frames.tolist() == numbers
    np.testing.assert_array_equal(out.identity, bad.identity)  # kept, no identity mode
    for n in bad.channels:  # frames outside the stretch are untouched
        np.testing.assert_array_equal(out.channels[n][[0, 1, 2, 6, 7]], bad.channels[n][[0, 1, 2, 6, 7]])
    # the stretch is re-solved: back within a degree of the first track (and of the truth)
    assert np.abs(out.channels["head.ry"][3:6] - full.channels["head.ry"][3:6]).max() < 1.0
    truth = np.rad2deg(packed[3:6, 1])
    assert np.abs(out.channels["head.ry"][3:6] - truth).max() < 1.5
    assert out.metadata["updates"] == ["1004-1006"] and out.metadata["lost_frames"] == {}
    with pytest.raises(InputError, match="is 160x160, the footage 80x80"):
        small = [img[::2, ::2] for img in images[3:6]]
        track_video("synthetic", images=small, frame_numbers=numbers[3:6], landmark_source=_Replay(obs[3:6]),
                    model=model, update=bad)  # fmt: skip


def test_a_real_blink_closes_the_blink_channel():
    """lp_d6 frames 391-395 (movie numbering) are shut, 385-390 open (checked by eye, tests/tracking/test_eyes.py)."""
    clip = SHARED_DATA / "lp_d6.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} not found")
    pytest.importorskip("dlib")
    out = {}
    for w in (0.0, S.SolverSettings().w_blink_obs):
        st = TrackerSettings(solver=S.SolverSettings(w_blink_obs=w))
        track = track_video(clip, frames="361-400", identity_keyframes=2, settings=st)
        blink = np.stack([track.channel("blink.left"), track.channel("blink.right")], 1)
        out[w] = (blink[[32, 33]].min(), blink[24:30].max())  # frames 393-394 and 385-390
    shut, opened = out[S.SolverSettings().w_blink_obs]
    assert shut > 0.6 and opened < 0.35, out
    assert shut > out[0.0][0] + 0.1, out  # the landmarks' eye aspect ratio is what closes it
