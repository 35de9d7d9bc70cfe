from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dvp_engine.cli.main import main
from dvp_engine.io.colour import acescg_to_srgb_display
from dvp_engine.io.images import read_image
from dvp_engine.io.video import open_video

SAMPLE = Path(__file__).resolve().parents[2] / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"


def test_convert_sample_to_exr_round_trips_colour(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plate" / "wda.####.exr"
    assert main(["convert", str(SAMPLE), "-o", str(out), "--frames", "10-12", "--progress", "lines"]) == 0
    err = capsys.readouterr().err
    assert "dvp: progress 3/3 frame 12" in err
    pixels, meta = read_image(tmp_path / "plate" / "wda.0011.exr")
    assert meta["dvp:source_frame"] == 11 and meta["oiio:ColorSpace"]
    with open_video(SAMPLE) as v:
        ((_, ref),) = list(v.read([11]))
    back = acescg_to_srgb_display(pixels)
    # half-float storage + OCIO round trip: within 1/255 nearly everywhere
    err_px = np.abs(back - ref.astype(np.float32) / 255.0)
    assert np.percentile(err_px, 99) < 2 / 255
    # scene-linear really: a mid-grey sRGB value is much darker in linear
    assert pixels.mean() < (ref.astype(np.float32) / 255.0).mean()
    # refuses to overwrite; --overwrite replaces
    assert main(["convert", str(SAMPLE), "-o", str(out), "--frames", "12"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["convert", str(SAMPLE), "-o", str(out), "--frames", "12", "--overwrite", "-q"]) == 0


def test_convert_sequence_to_png_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exr = tmp_path / "a.####.exr"
    assert main(["convert", str(SAMPLE), "-o", str(exr), "--frames", "1-2", "-q"]) == 0
    png = tmp_path / "b.%04d.png"
    assert main(["convert", str(exr), "-o", str(png), "-q"]) == 0
    assert sorted(p.name for p in tmp_path.glob("b.*.png")) == ["b.0001.png", "b.0002.png"]
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a movie at all" * 100)
    assert main(["convert", str(fake), "-o", str(tmp_path / "c.####.exr")]) == 1
    assert "fake.mp4" in capsys.readouterr().err
    assert main(["convert", str(SAMPLE), "-o", str(tmp_path / "d.####.exr"), "--frames", "9-3"]) == 2
    assert "--frames" in capsys.readouterr().err
    assert main(["convert", str(SAMPLE), "-o", str(tmp_path / "e.####.exr"), "--frames", "199-205"]) == 1
    assert "outside" in capsys.readouterr().err


def test_convert_skips_bad_frames_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src.####.png"
    assert main(["convert", str(SAMPLE), "-o", str(src), "--frames", "1-4", "-q"]) == 0
    (tmp_path / "src.0002.png").write_bytes(b"corrupt")
    out = tmp_path / "dst.####.exr"
    assert main(["convert", str(src), "-o", str(out)]) == 1
    assert "src.0002.png" in capsys.readouterr().err
    assert main(["convert", str(src), "-o", str(out), "--skip-bad-frames", "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert "2" in err and "could not be read" in err
    assert sorted(p.name for p in tmp_path.glob("dst.*.exr")) == [
        "dst.0001.exr",
        "dst.0003.exr",
        "dst.0004.exr",
    ]
