from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvp_engine.core import Curve, FaceTrack, Key, layout
from dvp_engine.transfer import (
    MODES,
    apply_sets,
    change_rate,
    choose_neutral,
    hold,
    parse_set,
    retime,
    speed_ramp,
    transfer,
)


def random_track(n: int, seed: int, first: int = 1, rate: int = 25) -> FaceTrack:
    rng = np.random.default_rng(seed)
    p = rng.normal(scale=0.2, size=(n, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"]] = rng.normal(scale=0.02, size=(n, 3)) + [0, 0, 0.6]
    p[:, layout.FRAME_LAYOUT["blink"]] = rng.uniform(0, 1, size=(n, 2))
    return FaceTrack.from_params(
        np.arange(first, first + n),
        p,
        rate=rate,
        width=64,
        height=64,
        intrinsics=(60, 60, 31.5, 31.5),
        identity=rng.normal(size=80),
        reflectance=rng.normal(size=80),
    )


@settings(max_examples=30, deadline=None)
@given(mode=st.sampled_from(sorted(MODES)), n=st.integers(3, 20), seed=st.integers(0, 10_000))
def test_modes_change_exactly_their_channels(mode: str, n: int, seed: int) -> None:
    src, tgt = random_track(n, seed), random_track(n, seed + 1, first=1001)
    w = np.zeros(64)
    w[:10] = 1.0
    out, report = transfer(src, tgt, mode, mouth_weights=w)
    assert report.output_frames == n
    np.testing.assert_array_equal(out.frames, tgt.frames)
    np.testing.assert_array_equal(out.identity, tgt.identity)
    allowed = set(MODES[mode])
    changed = {k for k in tgt.channels if not np.allclose(out.channels[k], tgt.channels[k], atol=1e-5)}
    assert changed <= allowed, changed - allowed
    assert changed, "a transfer between different actors changed nothing"
    if mode == "dubbing":
        assert changed <= set(layout.EXPRESSION[:10])


@settings(max_examples=20, deadline=None)
@given(mode=st.sampled_from(sorted(MODES)), seed=st.integers(0, 10_000))
def test_identical_source_and_target_returns_target(mode: str, seed: int) -> None:
    t = random_track(12, seed)
    out, _ = transfer(t, t, mode, mouth_weights=np.ones(64))
    for k in t.channels:
        np.testing.assert_allclose(out.channels[k], t.channels[k], atol=2e-4, err_msg=k)


def test_relative_transfer_applies_source_motion() -> None:
    src, tgt = random_track(5, 1), random_track(5, 2)
    out, rep = transfer(src, tgt, "expression", source_reference=1, target_reference=3)
    e = "expr.07"
    expect = tgt.channel(e)[2] + src.channel(e)[4] - src.channel(e)[0]
    assert out.channel(e)[4] == pytest.approx(expect, abs=1e-5)
    assert (rep.source_reference, rep.target_reference) == (1, 3)


def test_rates_and_lengths_are_mapped_by_time() -> None:
    src = random_track(41, 3, rate=50)  # 0.8 s at 50 fps
    tgt = random_track(10, 4, first=1001, rate=25)
    out, rep = transfer(src, tgt, "gaze", source_reference=1, target_reference=1001)
    assert out.n_frames == 21 and out.rate == 25  # 0.8 s at 25 fps, beyond the target's 10 frames
    k = 7  # output frame 1008 shows source frame 1 + 14
    expect = src.channel("gaze.left.x")[14] - src.channel("gaze.left.x")[0] + tgt.channel("gaze.left.x")[0]
    assert out.channel("gaze.left.x")[k] == pytest.approx(expect, abs=1e-4)
    # beyond the target's end, non-transferred channels hold the target reference frame
    assert out.channel("light.sh.00")[15] == tgt.channel("light.sh.00")[0]


def test_lost_source_frames_keep_target_and_are_reported() -> None:
    src, tgt = random_track(8, 5), random_track(8, 6)
    src.channels[layout.VALID][3:5] = 0.0
    out, rep = transfer(src, tgt, "full", source_reference=1, target_reference=1)
    assert rep.source_lost_frames == [4, 5]
    for k in layout.EXPRESSION[:3] + layout.HEAD_ROTATION:
        np.testing.assert_array_equal(out.channel(k)[3:5], tgt.channel(k)[3:5])
    assert "source face lost for 2" in "\n".join(rep.lines())


def test_bad_mode_and_dubbing_without_weights() -> None:
    t = random_track(4, 0)
    with pytest.raises(ValueError, match="unknown transfer mode 'face'.*full"):
        transfer(t, t, "face")
    with pytest.raises(ValueError, match="mouth_weights"):
        transfer(t, t, "dubbing")


def test_choose_neutral_prefers_quiet_frontal_frame() -> None:
    t = random_track(6, 9)
    quiet = {k: v.copy() for k, v in t.channels.items()}
    for k in layout.EXPRESSION + layout.HEAD_ROTATION + layout.BLINK:
        quiet[k][4] = 0.0
    assert choose_neutral(t.replace(channels=quiet)) == 5


def test_edit_sets_exact() -> None:
    t = random_track(10, 1, first=1001)
    out = apply_sets(t, ["head.ry=+10@1003-1005", "gaze.left.x=5@1008", "head.rx==-12"])
    np.testing.assert_allclose(out.channel("head.ry")[2:5], t.channel("head.ry")[2:5] + 10, atol=1e-5)
    np.testing.assert_array_equal(out.channel("head.ry")[[0, 1, 5]], t.channel("head.ry")[[0, 1, 5]])
    assert out.channel("gaze.left.x")[7] == 5.0
    np.testing.assert_array_equal(
        np.delete(out.channel("gaze.left.x"), 7), np.delete(t.channel("gaze.left.x"), 7)
    )
    np.testing.assert_array_equal(out.channel("head.rx"), -12.0)
    with pytest.raises(ValueError, match="cannot parse --set 'head.ry\\+10'"):
        parse_set("head.ry+10", t)
    with pytest.raises(KeyError, match="unknown channel 'head.yaw'"):
        apply_sets(t, ["head.yaw=3"])
    with pytest.raises(ValueError, match="before its start"):
        parse_set("head.ry=1@20-10", t)


def test_retime_exact_at_keys_and_hold() -> None:
    t = random_track(6, 2, first=1001)
    r = retime(t, [1001, 1001.5, 1002, 1005])
    np.testing.assert_array_equal(r.frames, [1001, 1002, 1003, 1004])
    np.testing.assert_allclose(r.channel("expr.00")[[0, 2, 3]], t.channel("expr.00")[[0, 1, 4]])
    assert r.channel("expr.00")[1] == pytest.approx(t.channel("expr.00")[:2].mean(), abs=1e-6)
    h = hold(t, 1003, 2)
    assert h.n_frames == 8
    np.testing.assert_array_equal(h.channel("gaze.right.y")[2:5], t.channel("gaze.right.y")[2])
    np.testing.assert_array_equal(h.channel("gaze.right.y")[5:], t.channel("gaze.right.y")[3:])


def test_speed_ramp_and_rate_change() -> None:
    t = random_track(11, 3)
    half = speed_ramp(t, 0.5)
    assert half.n_frames == 21
    np.testing.assert_allclose(half.channel("expr.01")[::2], t.channel("expr.01"), atol=1e-6)
    ramp = speed_ramp(t, Curve([Key(1, 1.0, "linear"), Key(5, 2.0)]))
    assert ramp.n_frames < t.n_frames
    with pytest.raises(ValueError, match="speed must be >= 0"):
        speed_ramp(t, -1.0, n_frames=3)
    r = change_rate(t, Fraction(50))
    assert r.rate == 50 and r.n_frames == 21
    np.testing.assert_allclose(r.channel("expr.02")[::2], t.channel("expr.02"), atol=1e-6)
