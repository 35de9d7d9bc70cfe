"""One error path: every failure of `dvp` is a `dvp: error:` line with a documented exit code, never a bare
traceback (issue 17, item 5), and option values are checked while the command line is parsed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dvp_engine.cli.common import EXIT_CODES
from dvp_engine.cli.main import main
from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.curves import SCHEMA as CURVES

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"


def make_track(path: Path, n: int = 6) -> FaceTrack:
    rng = np.random.default_rng(0)
    p = rng.normal(scale=0.1, size=(n, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"].start + 2] = 0.6
    t = FaceTrack.from_params(
        np.arange(1, 1 + n), p, rate=25, width=64, height=64, intrinsics=(60, 60, 31.5, 31.5)
    )
    t.save(path)
    return t


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr of one `dvp` run; argparse exits become their code."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def assert_error_line(code: int, err: str, expected_code: int, *needles: str) -> None:
    assert "Traceback" not in err, err
    assert code == expected_code, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("dvp: error: "), err
    for n in needles:
        assert n in last, (n, last)


def header_npz(src: Path, dest: Path, change: object) -> Path:
    arrays = dict(np.load(src))
    header = json.loads(arrays["header"].tobytes().decode())
    header = change(header) if callable(change) else change
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(dest, **arrays)
    return dest


def test_exit_codes_are_documented() -> None:
    text = (REPO / "docs" / "cli.md").read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in text
    assert "dvp: error: <path>: frame <N>: <message>" in text


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda t, d: header_npz(t, d / "l.npz", [1, 2]), ["l.npz", "JSON object"]),
        (lambda t, d: header_npz(t, d / "r.npz", lambda h: {**h, "rate": [25, 0]}), ["r.npz", "rate"]),
        (lambda t, d: header_npz(t, d / "m.npz", lambda h: {**h, "metadata": [3]}), ["m.npz", "metadata"]),
        (lambda t, d: header_npz(t, d / "w.npz", lambda h: {**h, "width": 10**12}), ["w.npz", "image size"]),
    ],
)
def test_bad_track_headers_are_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, needles: list[str]
) -> None:
    src = tmp_path / "t.npz"
    make_track(src)
    bad = make(src, tmp_path)  # type: ignore[operator]
    assert_error_line(*run_cli(["info", str(bad)], capsys), 1, *needles)
    assert_error_line(*run_cli(["edit", str(bad), "-o", str(tmp_path / "o.npz")], capsys), 1, *needles)


def test_bad_curve_files_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.npz"
    make_track(src)
    docs = {
        "meta.json": ({"schema": CURVES, "channels": {}, "metadata": [1]}, "metadata"),
        "huge.json": (
            {"schema": CURVES, "channels": {"head.ry": {"keys": [{"frame": 1, "value": 1e30}]}}},
            "beyond the limit",
        ),
        "keylist.json": ({"schema": CURVES, "channels": {"head.ry": {"keys": [[1, 2]]}}}, "bad curve"),
        "slope.json": (
            {
                "schema": CURVES,
                "channels": {"head.tz": {"keys": [{"frame": 1, "value": 1, "out_slope": 1e9}]}},
            },
            "beyond the limit",
        ),
    }
    for name, (doc, needle) in docs.items():
        (tmp_path / name).write_text(json.dumps(doc))
        out = tmp_path / f"{name}.npz"
        code, err = run_cli(["edit", str(src), "--curves", str(tmp_path / name), "-o", str(out)], capsys)
        assert code in (1, 2)
        assert_error_line(code, err, code, name, needle)
        assert not out.exists()
    # a --set value beyond the channel's limit is refused too (usage error), a sane one is not
    code, err = run_cli(["edit", str(src), "--set", "head.ry=1e30", "-o", str(tmp_path / "s.npz")], capsys)
    assert_error_line(code, err, 2, "head.ry", "3600")
    assert main(["edit", str(src), "--set", "head.ry=+30", "-o", str(tmp_path / "ok.npz"), "-q"]) == 0


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--frames", "1-99999999999999999999"], "--frames"),
        (["--frames", "\u0661\u0669\u0669"], "not a frame range"),  # Arabic-Indic digits are not frames
        (["--batch", "0"], "--batch"),
        (["--device", "bogus"], "--device"),
        (["--size", "-3"], "--size"),
    ],
)
def test_bad_option_values_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    src = tmp_path / "t.npz"
    make_track(src)
    code, err = run_cli(["render-conditioning", str(src), "-o", str(tmp_path / "c.####.exr"), *argv], capsys)
    assert_error_line(code, err, 2, needle)
    assert not list(tmp_path.glob("c.*"))


@pytest.mark.parametrize(
    "argv",
    [
        ["render", "--model", "m", "--track", "t.npz", "-o", "o.####.exr", "--feather", "nan"],
        ["render", "--model", "m", "--track", "t.npz", "-o", "o.####.exr", "--feather", "1e9"],
        ["render", "--model", "m", "--track", "t.npz", "-o", "o.####.exr", "--writers", "0"],
        ["track", "x.mp4", "-o", "t.npz", "--focal", "0"],
        ["track", "x.mp4", "-o", "t.npz", "--focal", "inf"],
        ["train", "--track", "t.npz", "--frames-from", "x.mp4", "-o", "m", "--batch", "0"],
        ["train", "--track", "t.npz", "--frames-from", "x.mp4", "-o", "m", "--ngf", "0"],
        ["train", "--track", "t.npz", "--frames-from", "x.mp4", "-o", "m", "--iters", "1e3"],
        ["eval", "--model", "m", "-o", "e", "--device", "gpu0"],
        ["edit", "t.npz", "-o", "e.npz", "--speed", "nan"],
        ["overlay", "t.npz", "x.mp4", "-o", "p", "--shaded", "2"],
    ],
)
def test_option_values_are_checked_at_parse_time(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    """Nothing is read (the files do not exist): the value itself is refused, exit 2, one error line."""
    code, err = run_cli(argv, capsys)
    assert_error_line(code, err, 2, argv[-2])


def test_negative_frame_range_needs_no_equals_sign(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "t.npz"
    p = np.zeros((5, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"].start + 2] = 0.6
    FaceTrack.from_params(
        range(-5, 0), p, rate=25, width=32, height=32, intrinsics=(60, 60, 15.5, 15.5)
    ).save(src)
    out = tmp_path / "c.####.exr"
    argv = ["render-conditioning", str(src), "-o", str(out), "--size", "8", "--device", "cpu", "-q"]
    assert main([*argv, "--frames", "-5--4"]) == 0
    assert sorted(p.name for p in tmp_path.glob("c.*.exr")) == ["c.-0004.exr", "c.-0005.exr"]


def test_output_patterns_need_a_placeholder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.npz"
    make_track(src)
    base = ["render-conditioning", str(src), "--size", "8", "--device", "cpu", "--frames", "1-2"]
    for name in ("c.exr", "frame_v2.exr", "plate_v001.exr", "c.0001.exr"):
        code, err = run_cli([*base, "-o", str(tmp_path / name)], capsys)
        assert_error_line(code, err, 1, name)
    assert not list(tmp_path.glob("*.exr"))
    # one frame into a concrete name with that frame's number is fine
    assert main(["render-conditioning", str(src), "--size", "8", "--frames", "2", "-o", str(tmp_path / "c.0002.exr"), "-q"]) == 0  # fmt: skip
    assert (tmp_path / "c.0002.exr").is_file()


def test_unexpected_errors_are_one_line_exit_3_and_v_prints_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dvp_engine.cli.cmd_info as cmd_info

    def boom(args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cmd_info, "run", boom)
    code, err = run_cli(["info", "x"], capsys)
    assert_error_line(code, err, 3, "internal error", "ZeroDivisionError", "a bug", "-v")
    code, err = run_cli(["info", "x", "-v"], capsys)
    assert code == 3 and "Traceback" in err and err.strip().splitlines()[-1].startswith("dvp: error: ")


def test_os_errors_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder that cannot be created (its parent is a file; as root a read-only folder would not stop us)."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    src = tmp_path / "t.npz"
    make_track(src)
    code, err = run_cli(["eval", "--model", str(tmp_path / "nope"), "-o", str(blocker / "eval")], capsys)
    assert_error_line(code, err, 1)
    code, err = run_cli(
        [
            "train",
            "--track",
            str(src),
            "--frames-from",
            str(SAMPLE),
            "-o",
            str(blocker / "m"),
            "--size",
            "16",
        ],
        capsys,
    )
    assert_error_line(code, err, 1, "file")


SIGTERM_SCRIPT = """
import sys, time
from pathlib import Path
import dvp_engine.cli.cmd_info as cmd_info
from dvp_engine.cli.main import main
from dvp_engine.core.atomic import atomic_path

def slow(args):
    with atomic_path(Path(args.path)) as tmp:
        tmp.write_text("half")
        Path(args.path + ".started").write_text("1")
        time.sleep(60)
    return 0

cmd_info.run = slow
sys.exit(main(["info", sys.argv[1]]))
"""


def test_sigterm_is_an_error_line_and_removes_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_SCRIPT, str(target)], stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "out.txt.started").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "dvp: error: terminated (SIGTERM)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt.started"]  # no .tmp, no half file


def test_a_multi_line_library_error_is_still_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "cut.exr"
    bad.write_bytes(b"v/1\x01\x02\x00\x00\x00")  # an EXR cut after 8 bytes: OpenEXR reports two lines
    code, err = run_cli(["info", str(bad)], capsys)
    assert_error_line(code, err, 1, "cut.exr")
    assert len(err.strip().splitlines()) == 1


def test_info_on_an_exr_with_a_damaged_attribute_name_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dvp_engine.io.images import write_image

    good = tmp_path / "a.exr"
    write_image(good, np.full((4, 4, 3), 0.5, np.float32))
    data = bytearray(good.read_bytes())
    data[8] = 128  # the first attribute name's first byte: not UTF-8 any more
    bad = tmp_path / "b.exr"
    bad.write_bytes(bytes(data))
    code, err = run_cli(["info", str(bad)], capsys)
    assert "internal error" not in err and "Traceback" not in err
    assert code in (0, 1)


def test_an_undecodable_library_error_message_is_still_an_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dvp_engine.io.images import write_image

    good = tmp_path / "a.exr"
    write_image(good, np.full((4, 4, 3), 0.5, np.float32))
    data = bytearray(good.read_bytes())
    data[22] = 128  # inside the first attribute's type name: OpenImageIO's error text is not UTF-8
    (tmp_path / "b.exr").write_bytes(bytes(data))
    code, err = run_cli(["info", str(tmp_path / "b.exr")], capsys)
    assert_error_line(code, err, 1, "b.exr")


def test_hold_and_framing_take_ascii_digits_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.npz"
    make_track(src)
    code, err = run_cli(["edit", str(src), "--hold", "\u0662:3", "-o", str(tmp_path / "h.npz")], capsys)
    assert_error_line(code, err, 2, "--hold")
    assert main(["edit", str(src), "--hold", "2:3", "-o", str(tmp_path / "ok.npz"), "-q"]) == 0
    from dvp_engine.core.errors import InputError
    from dvp_engine.pipeline.portrait import Framing

    t = FaceTrack.load(src)
    with pytest.raises(InputError, match="--framing"):
        Framing.choose("\u0660,0,\u0663\u0662", t, 32)
    assert Framing.choose("0,0,32", t, 32).side == 32
