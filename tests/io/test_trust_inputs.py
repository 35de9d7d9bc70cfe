"""Inputs that were silently wrong (issue 17, item 6): a sequence with a missing frame, a movie cut short,
a movie frame that fails to decode with --skip-bad-frames."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from dvp_engine.cli.main import main
from dvp_engine.core.errors import InputError
from dvp_engine.io.images import write_image
from dvp_engine.io.video import Video, open_video, read_frames

SAMPLE = Path(__file__).resolve().parents[2] / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"


def test_a_missing_frame_inside_a_sequence_is_reported(tmp_path: Path) -> None:
    for f in (1, 2, 4, 5):
        write_image(tmp_path / f"p.{f:04d}.png", np.full((4, 4, 3), 0.5, np.float32))
    # the tracker's reader names it, instead of making a track without frame 3
    from dvp_engine.tracking.pipeline import stream_source

    with pytest.raises(InputError, match=r"1 of 5 frames missing: 3"):
        list(stream_source(str(tmp_path / "p.####.png"), errors={}))
    assert [f for f, _ in read_frames(str(tmp_path / "p.####.png"), "4-5")] == [4, 5]


def faststart_copy(src: Path, dest: Path) -> None:
    with av.open(str(src)) as inp, av.open(str(dest), "w", options={"movflags": "faststart"}) as out:
        stream = inp.streams.video[0]
        o = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = o
            out.mux(packet)


def test_a_faststart_movie_cut_in_half_reports_the_frames_it_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = tmp_path / "fs.mp4"
    faststart_copy(SAMPLE, whole)
    data = whole.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # the index comes first
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with open_video(whole) as v:
        assert v.n_frames == 200
    with open_video(cut) as v:
        n = v.n_frames
        decoded = sum(1 for _ in v.read())
    assert 50 < n < 150 and decoded == n
    assert main(["info", str(cut)]) == 0
    assert f"{n} frames" in capsys.readouterr().out


def test_skip_bad_frames_skips_a_movie_frame_that_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = Video.read

    def failing_at_3(self: Video, frames: object = None) -> object:
        def gen() -> object:
            for f, rgb in real(self, frames):  # type: ignore[arg-type]
                if f == 3:
                    raise InputError("cannot decode movie (corrupt packet)", path=self.path, frame=3)
                yield f, rgb

        return gen()

    monkeypatch.setattr(Video, "read", failing_at_3)
    out = tmp_path / "c.####.png"
    code = main(["convert", str(SAMPLE), "-o", str(out), "--frames", "1-5", "--skip-bad-frames", "-q"])
    assert code == 1  # reported ...
    assert sorted(p.name for p in tmp_path.glob("c.*.png")) == [
        f"c.000{f}.png" for f in (1, 2, 4, 5)
    ]  # ... skipped
    assert main(["convert", str(SAMPLE), "-o", str(tmp_path / "d.####.png"), "--frames", "1-5"]) == 1
    assert "frame 3" in capsys.readouterr().err
