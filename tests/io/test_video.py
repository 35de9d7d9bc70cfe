from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dvp_engine.core.errors import DvpError, InputError
from dvp_engine.core.frames import FrameSet
from dvp_engine.core.sequence import ImageSequence
from dvp_engine.io.images import write_image, write_sequence
from dvp_engine.io.video import open_video, read_frames, write_video


def _moving_frames(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """Frames with a bright square that moves, so every frame differs."""
    out = []
    for i in range(n):
        img = np.full((h, w, 3), 40, np.uint8)
        x = 2 * i
        img[10:26, x : x + 16] = (220, 120, 30)
        out.append(img)
    return out


def test_write_then_read_small_movie(tmp_path: Path) -> None:
    frames = _moving_frames(30)
    path = write_video(tmp_path / "p.mp4", iter(frames), Fraction(24000, 1001))
    assert [p.name for p in tmp_path.iterdir()] == ["p.mp4"]
    with open_video(path) as v:
        assert v.n_frames == 30 and len(v) == 30
        assert v.rate == Fraction(24000, 1001)
        assert v.size == (64, 48)
        assert v.frames == FrameSet.parse("1-30")
        got = dict(v.read())
        assert sorted(got) == list(range(1, 31))
        for i, src in enumerate(frames, start=1):
            assert got[i].shape == (48, 64, 3) and got[i].dtype == np.uint8
            assert np.abs(got[i].astype(int) - src).mean() < 6.0  # lossy codec, right frame
        # each decoded frame is nearest to its own source frame (ordering is right)
        for i in (1, 10, 30):
            errs = [np.abs(got[i].astype(int) - src).mean() for src in frames]
            assert int(np.argmin(errs)) == i - 1
        # accurate seek: a range gives the same pixels as sequential decoding
        for f, img in v.read("12-14,25"):
            np.testing.assert_array_equal(img, got[f])
        assert "64x48" in v.summary() and "24000/1001" in v.summary()
    with open_video(path, first_frame=1001) as v:
        assert [f for f, _ in v.read("1029-1030")] == [1029, 1030]


def test_container_without_frame_count(tmp_path: Path) -> None:
    """Matroska stores no frame count: it is counted by demuxing; seeking still lands on the right frame."""
    frames = [np.full((16, 16, 3), 20 * i, np.uint8) for i in range(7)]
    write_video(tmp_path / "a.mkv", frames, 25)
    with open_video(tmp_path / "a.mkv") as v:
        assert v.n_frames == 7
        assert [f for f, _ in v.read()] == list(range(1, 8))
        got = [(f, float(img.mean())) for f, img in v.read("4-5")]
    assert [f for f, _ in got] == [4, 5]
    np.testing.assert_allclose([m for _, m in got], [60.0, 80.0], atol=3.0)


def test_odd_size_and_float_frames(tmp_path: Path) -> None:
    frames = [np.full((15, 17, 3), v, np.float32) for v in (0.2, 0.8)]
    write_video(tmp_path / "o.mp4", frames, 25, codec="mpeg4")
    with open_video(tmp_path / "o.mp4") as v:
        assert v.size == (18, 16) and v.n_frames == 2
        means = [img.mean() / 255.0 for _, img in v]
    np.testing.assert_allclose(means, [0.2, 0.8], atol=0.03)


def test_video_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.mp4: no such file"):
        open_video(tmp_path / "missing.mp4")
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"\x00garbage bytes, not a movie" * 50)
    with pytest.raises(InputError, match=r"x\.mp4: not a .*movie"):
        open_video(bad)
    with pytest.raises(InputError, match=r"x\.mp4: not a .*movie"):
        read_frames(bad)  # raised by the call, before iterating
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DvpError, match="folder"):
        write_video(blocker / "out.mp4", _moving_frames(2), 25)
    with pytest.raises(DvpError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], 25)
    with pytest.raises(ValueError, match="frame 1"):
        write_video(
            tmp_path / "mixed.mp4", [np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)], 25
        )
    assert not (tmp_path / "empty.mp4").exists() and not (tmp_path / "mixed.mp4").exists()
    small = write_video(tmp_path / "s.mp4", _moving_frames(3), 25)
    with open_video(small) as v, pytest.raises(InputError, match=r"s\.mp4: frames 4-5 are outside .* 1-3"):
        v.read("2-5")  # checked before any decoding


def test_read_frames_from_image_sequences(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    imgs = {f: rng.uniform(0, 1, (4, 5, 3)).astype(np.float32) for f in (7, 8, 9)}
    write_sequence(tmp_path / "s.###.png", imgs.items(), dtype="uint16")
    got = dict(read_frames(str(tmp_path / "s.%03d.png")))
    assert sorted(got) == [7, 8, 9]
    np.testing.assert_allclose(got[8], imgs[8], atol=1e-4)
    # a concrete file path reads its sequence; frames select
    assert [f for f, _ in read_frames(tmp_path / "s.008.png", "8-9")] == [8, 9]
    assert [f for f, _ in read_frames(ImageSequence.parse(tmp_path / "s.@@@.png"), "7")] == [7]
    with pytest.raises(InputError, match="1 of 4 frames missing: 10"):
        read_frames(str(tmp_path / "s.###.png"), "7-10")
    assert [f for f, _ in read_frames(str(tmp_path / "s.###.png"), "7-10", on_missing="skip")] == [7, 8, 9]
    # an unreadable frame: raised while iterating, or reported and skipped with on_error
    (tmp_path / "s.008.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"s\.008\.png: frame 8: not a readable image"):
        list(read_frames(str(tmp_path / "s.###.png")))
    bad: list[DvpError] = []
    assert [f for f, _ in read_frames(str(tmp_path / "s.###.png"), on_error=bad.append)] == [7, 9]
    assert [e.frame for e in bad] == [8] and isinstance(bad[0], InputError)
    # EXR sequences are scene-linear ACEScg: converted to sRGB-encoded values in [0, 1]
    lin = np.full((2, 2, 3), 0.18, np.float32)
    write_image(tmp_path / "lin.0001.exr", lin, dtype="float")
    (f, rgb), *_ = list(read_frames(str(tmp_path / "lin.####.exr")))
    assert f == 1 and rgb.shape == (2, 2, 3)
    assert 0.45 < float(rgb.mean()) < 0.49  # 18% grey is ~0.46 in sRGB
    grey = np.full((2, 2, 1), 0.5, np.float32)
    write_image(tmp_path / "g.0001.png", grey)
    (_, g), *_ = list(read_frames(str(tmp_path / "g.####.png")))
    assert g.shape == (2, 2, 3)
    np.testing.assert_allclose(g, 0.5, atol=1 / 255)


def test_sample_clip_decode_and_seek(sample_clip: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="dvp_engine.io.video")
    with open_video(sample_clip) as v:
        assert (v.n_frames, v.rate, v.size) == (200, Fraction(25), (512, 512))
        sequential = {f: img for f, img in v.read() if 95 <= f <= 112}
        assert len(sequential) == 18
        sought = list(v.read("101-110"))
        assert [f for f, _ in sought] == list(range(101, 111))
        for f, img in sought:
            assert img.shape == (512, 512, 3) and img.dtype == np.uint8
            np.testing.assert_array_equal(img, sequential[f])
        assert not np.array_equal(sequential[101], sequential[110])
        assert "overshot" not in caplog.text  # the seek really seeked, no fallback to the start
        last = list(v.read("199-200"))
        assert [f for f, _ in last] == [199, 200]
    (f, first), *_ = list(read_frames(sample_clip, "1"))
    assert f == 1 and first.dtype == np.float32 and 0.0 <= first.min() and first.max() <= 1.0
