"""Gaze transfer between calibrated tracks: absolute (0 = the face's forward axis for both actors)."""

from __future__ import annotations

import numpy as np
import pytest

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.gaze import EyeCalibration
from dvp_engine.transfer import transfer

CENTRES = np.array([[0.032, -0.02, -0.045], [-0.032, -0.02, -0.045]])


def _track(gaze_deg: np.ndarray, eyes: EyeCalibration | None) -> FaceTrack:
    n = len(gaze_deg)
    p = np.zeros((n, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"]] = [0.0, 0.0, 0.7]
    p[:, layout.FRAME_LAYOUT["gaze"]] = np.deg2rad(gaze_deg)
    return FaceTrack.from_params(np.arange(1, n + 1), p, rate=25, width=64, height=64,
                                 intrinsics=(128.0, 128.0, 31.5, 31.5), eyes=eyes)  # fmt: skip


def test_calibrated_tracks_transfer_gaze_absolutely_others_relatively() -> None:
    cal = EyeCalibration(CENTRES, 0.012, "camera", 100)
    src_gaze = np.array([[0.0, 0.0, 0.0, 0.0], [10.0, -5.0, 10.0, -5.0], [-8.0, 3.0, -8.0, 3.0]])
    tgt_gaze = np.full((3, 4), 6.0)  # the target looked aside in every frame, its neutral frame too
    out, rep = transfer(_track(src_gaze, cal), _track(tgt_gaze, cal), "gaze", source_reference=1,
                        target_reference=1)  # fmt: skip
    assert rep.gaze.startswith("absolute")
    np.testing.assert_allclose(np.stack([out.channels[g] for g in layout.GAZE], 1), src_gaze, atol=1e-4)
    assert out.eyes is not None and np.allclose(out.eyes.centres, CENTRES)  # the target's eyes are kept
    # without calibration (older tracks, or a fallback): relative to the neutral frames, as before
    fallback = EyeCalibration(CENTRES, 0.012, "model", 0, "too few frames")
    for eyes in (None, fallback):
        out, rep = transfer(_track(src_gaze, eyes), _track(tgt_gaze, cal), "gaze", source_reference=1,
                            target_reference=1)  # fmt: skip
        assert rep.gaze.startswith("relative")
        np.testing.assert_allclose(
            np.stack([out.channels[g] for g in layout.GAZE], 1), src_gaze + 6.0, atol=1e-4
        )


def test_a_source_look_at_is_resolved_and_the_target_look_at_released() -> None:
    cal = EyeCalibration(CENTRES, 0.012, "camera", 100)
    src = _track(np.zeros((2, 4)), cal)
    for name, v in zip(layout.LOOK_AT, ([0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]), strict=True):
        src.channels[name] = np.asarray(v, np.float32)
    tgt = _track(np.zeros((2, 4)), cal)
    for name, v in zip(layout.LOOK_AT, ([0.1] * 2, [0.0] * 2, [0.0] * 2, [1.0] * 2), strict=True):
        tgt.channels[name] = np.asarray(v, np.float32)
    out, _ = transfer(src, tgt, "gaze", source_reference=2, target_reference=1)
    # the source looked into the lens on frame 1: its eyes converge there (left yaw < 0 < right yaw)
    assert out.channels["gaze.left.x"][0] < -2.0 and out.channels["gaze.right.x"][0] > 2.0
    assert np.all(out.channels["look.weight"] == 0.0)
    src.eyes = None
    with pytest.raises(ValueError, match="look-at target but has no eye calibration"):
        transfer(src, tgt, "gaze", source_reference=2, target_reference=1)


def test_dvp_edit_look_at_sets_the_target_and_rejects_one_behind_the_head(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dvp_engine.cli.main import main

    cal = EyeCalibration(CENTRES, 0.012, "camera", 100)
    src = _track(np.zeros((4, 4)), cal).save(tmp_path / "t.npz")
    out = tmp_path / "o.npz"
    # plate pixel (31.5 + 12.8, 31.5), 0.5 m deep (fx = 128): 5 cm right of the lens axis; no depth: halfway
    assert main(["edit", str(src), "--look-at", "44.3,31.5,0.5@2-3", "--look-at", "31.5,31.5@4", "-o", str(out),
                 "-q"]) == 0  # fmt: skip
    t = FaceTrack.load(out)
    np.testing.assert_allclose(t.channels["look.weight"], [0, 1, 1, 1])
    np.testing.assert_allclose(t.channels["look.x"][1:], [0.05, 0.05, 0.0], atol=1e-6)
    np.testing.assert_allclose(t.channels["look.z"][1:], [0.5, 0.5, 0.35], atol=1e-6)  # head at 0.7 m
    # a target 2 m away is behind the head (0.7 m): a clear error naming the file and frame, nothing written
    bad = tmp_path / "bad.npz"
    assert main(["edit", str(src), "--look-at", "31.5,31.5,2.0@3", "-o", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "t.npz: frame 3:" in err and "behind the face" in err and not bad.exists()
    assert main(["edit", str(src), "--look-at", "1,2,x@3", "-o", str(bad)]) == 2
