from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dvp_engine import __version__
from dvp_engine.cli.main import main
from dvp_engine.core import FaceTrack, layout


def make_track(path: Path, n: int = 10, first: int = 1001) -> FaceTrack:
    rng = np.random.default_rng(0)
    p = rng.normal(scale=0.1, size=(n, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"].start + 2] = 0.6
    t = FaceTrack.from_params(
        np.arange(first, first + n), p, rate=25, width=64, height=64, intrinsics=(60, 60, 31.5, 31.5)
    )
    t.save(path)
    return t


def test_version_and_usage_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert __version__ in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["edit"])  # missing arguments
    assert e.value.code == 2
    assert main([]) == 2


def test_console_script_runs() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "dvp_engine.cli.main", "--help"], capture_output=True, text=True
    )
    assert res.returncode == 0
    for cmd in ("info", "edit"):
        assert cmd in res.stdout


def test_edit_set_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.npz"
    t = make_track(src)
    out = tmp_path / "e.npz"
    assert main(["edit", str(src), "--set", "head.ry=+10@1001-1004", "-o", str(out), "-q"]) == 0
    e = FaceTrack.load(out)
    np.testing.assert_allclose(e.channel("head.ry")[:4], t.channel("head.ry")[:4] + 10, atol=1e-5)
    np.testing.assert_array_equal(e.channel("head.ry")[4:], t.channel("head.ry")[4:])
    # refuses to overwrite; unknown channel lists valid ones; missing file names the file
    assert main(["edit", str(src), "--set", "head.ry=1", "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["edit", str(src), "--set", "head.yaw=1", "-o", str(tmp_path / "x.npz")]) == 2
    assert "valid channels" in capsys.readouterr().err
    assert main(["edit", str(tmp_path / "nope.npz"), "-o", str(tmp_path / "y.npz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dvp: error: ") and "nope.npz" in err


def test_edit_speed_and_hold(tmp_path: Path) -> None:
    src = tmp_path / "t.npz"
    make_track(src, n=5)
    out = tmp_path / "s.npz"
    assert main(["edit", str(src), "--speed", "0.5", "--hold", "1002:3", "-o", str(out), "-q"]) == 0
    assert FaceTrack.load(out).n_frames == (5 + 3 - 1) * 2 + 1


def test_nuke_script_command_writes_keyed_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.npz"
    t = make_track(src, n=4)
    nk = tmp_path / "shot.nk"
    assert main(["nuke-script", str(src), "-o", str(nk), "--output", "out/f.####.exr", "--script"]) == 0
    text = nk.read_text()
    assert text.startswith("Root {") or "Root {" in text
    assert "Group {" in text and "DVPortrait1" in text
    # head.ry's keys appear with the track's first frame
    assert "x1001" in text and f"{t.channel('head.ry')[0]:.4g}"[:5] in text
    assert main(["nuke-script", str(src), "-o", str(nk)]) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
