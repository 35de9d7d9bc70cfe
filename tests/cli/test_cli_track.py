from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dvp_engine.cli.main import main
from dvp_engine.core import FaceTrack, layout
from dvp_engine.io.images import read_image

SAMPLE = Path(__file__).resolve().parents[2] / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"


def test_track_and_overlay_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.npz"
    assert main(["track", str(SAMPLE), "-o", str(out), "--frames", "5-8", "--progress", "lines"]) == 0
    err = capsys.readouterr().err
    assert "dvp: progress 4/4" in err and "mean confidence" in err
    t = FaceTrack.load(out)
    np.testing.assert_array_equal(t.frames, [5, 6, 7, 8])
    assert t.rate == 25 and (t.width, t.height) == (512, 512)
    assert np.all(t.channel(layout.VALID) == 1) and t.channel(layout.CONFIDENCE).min() > 0.5
    # the speaker faces the camera from about half a metre to a metre
    assert 0.3 < float(t.channel("head.tz").mean()) < 1.5 and abs(float(t.channel("head.ry").mean())) < 30
    assert t.metadata["controls"]["names"], "named controls travel with the track"
    assert main(["track", str(SAMPLE), "-o", str(out), "--frames", "5"]) == 2  # exists: refuse
    assert main(["track", str(SAMPLE), "-o", str(tmp_path / "t.json")]) == 2
    # re-track a stretch into the track: the others frames stay, the stretch is re-solved from frame 5's values
    upd = tmp_path / "u.npz"
    assert main(["track", str(SAMPLE), "--frames", "7-8", "--update", str(out), "-o", str(upd), "-q",
                 "--smooth-group", "pose=1"]) == 0  # fmt: skip
    u = FaceTrack.load(upd)
    np.testing.assert_array_equal(u.frames, [5, 6, 7, 8])
    np.testing.assert_array_equal(u.channel("head.ry")[:2], t.channel("head.ry")[:2])
    assert np.abs(u.channel("head.ry")[2:] - t.channel("head.ry")[2:]).max() < 2.0
    assert u.metadata["updates"] == ["7-8"]
    assert (
        main(["track", str(SAMPLE), "--update", str(out), "-o", str(tmp_path / "v.npz")]) == 2
    )  # no --frames
    ov = tmp_path / "ov"
    assert main(["overlay", str(out), str(SAMPLE), "-o", str(ov), "--frames", "6", "--no-detect", "-q"]) == 0
    img, _ = read_image(ov / "overlay.0006.png")
    plate = read_image_frame(6)
    assert img.shape == plate.shape and np.abs(img - plate).mean() > 0.005  # something was drawn


def read_image_frame(frame: int) -> np.ndarray:
    from dvp_engine.io.video import read_frames

    ((_, rgb),) = list(read_frames(SAMPLE, [frame]))
    return rgb


def test_render_conditioning_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    track = tmp_path / "t.npz"
    assert main(["track", str(SAMPLE), "-o", str(track), "--frames", "1-2", "-q"]) == 0
    out = tmp_path / "c" / "c.####.exr"
    assert main(["render-conditioning", str(track), "-o", str(out), "--size", "64", "-q"]) == 0
    px, _ = read_image(tmp_path / "c" / "c.0002.exr")
    assert px.shape == (64, 64, 9)
    assert 0.05 < (px[..., 3:6].max(axis=2) > 0).mean() < 0.9  # the face covers part of the frame
    prev = tmp_path / "p" / "p.####.png"
    assert (
        main(
            ["render-conditioning", str(track), "-o", str(prev), "--size", "64", "--preview", "--frames", "2"]
        )
        == 0
    )
    img, _ = read_image(tmp_path / "p" / "p.0002.png")
    assert img.shape == (64, 192, 3)
    assert "wrote 1 conditioning images (64x64)" in capsys.readouterr().err
