"""Per-group smoothing: jitter reduced, a blink's step stays sharper than the same step in pose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dvp_engine.core import FaceTrack, layout
from dvp_engine.transfer.smoothing import parse_smooth_groups, smooth_track


def _track(n: int = 40) -> tuple[FaceTrack, np.ndarray]:
    rng = np.random.default_rng(0)
    step = (np.arange(n) >= 20).astype(np.float64)  # a lid closing / a head snapping between frames 19 and 20
    p = np.zeros((n, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"]] = [0.0, 0.0, 0.7]
    tr = FaceTrack.from_params(np.arange(1, n + 1), p, rate=25, width=64, height=64,
                               intrinsics=(128.0, 128.0, 31.5, 31.5))  # fmt: skip
    noise = rng.normal(size=n) * 0.03
    tr.channels["blink.left"] = (step + noise).astype(np.float32)
    tr.channels["head.ry"] = (10.0 * step + 10.0 * noise).astype(np.float32)  # the same shape, degrees
    return tr, step


def test_a_blink_step_stays_sharper_than_the_same_step_in_pose() -> None:
    tr, step = _track()
    out = smooth_track(tr, parse_smooth_groups(["all=2"]))
    blink = out.channels["blink.left"].astype(np.float64)
    pose = out.channels["head.ry"].astype(np.float64) / 10.0

    def edge_error(x: np.ndarray) -> float:  # how far the frames next to the step moved from it
        return float(np.abs(x[17:23] - step[17:23]).max())

    assert edge_error(blink) < 0.15 < edge_error(pose)
    # both lose jitter away from the step
    for x, raw in ((blink, tr.channels["blink.left"]), (pose, tr.channels["head.ry"] / 10.0)):
        far = np.r_[0:15, 25:40]
        assert np.abs(x[far] - step[far]).std() < 0.6 * np.abs(raw[far] - step[far]).std()


def test_only_named_groups_change_and_lost_frames_never_mix_in() -> None:
    tr, _ = _track()
    tr.channels[layout.VALID][10] = 0.0
    tr.channels["head.ry"][10] = 500.0  # a lost frame's value
    out = smooth_track(tr, {"pose": 1.5})
    assert out.channels["head.ry"][10] == 500.0
    assert np.abs(out.channels["head.ry"][9]) < 5.0 and np.abs(out.channels["head.ry"][11]) < 5.0
    np.testing.assert_array_equal(out.channels["blink.left"], tr.channels["blink.left"])
    assert out.metadata["smoothing"] == {"pose": 1.5}
    with pytest.raises(ValueError, match="unknown group 'eyes'"):
        parse_smooth_groups(["eyes=1"])
    with pytest.raises(ValueError, match="STRENGTH"):
        parse_smooth_groups(["pose=-1"])


def test_dvp_edit_smooth_group(tmp_path: Path) -> None:
    from dvp_engine.cli.main import main

    tr, _ = _track()
    src = tr.save(tmp_path / "t.npz")
    out = tmp_path / "o.npz"
    assert main(["edit", str(src), "--smooth-group", "pose=2", "-o", str(out), "-q"]) == 0
    got = FaceTrack.load(out)
    assert (
        np.abs(np.diff(got.channels["head.ry"][:15])).mean()
        < np.abs(np.diff(tr.channels["head.ry"][:15])).mean()
    )
    assert main(["edit", str(src), "--smooth-group", "pose", "-o", str(tmp_path / "x.npz")]) == 2
