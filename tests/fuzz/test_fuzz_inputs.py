"""Fuzz and bad-input suite (issue 17): generated inputs to the public parsers and to the CLI commands' file
inputs must end in the documented errors (ValueError / DvpError / argparse usage errors, and on the command line
one ``dvp: error:`` line with exit 1 or 2), never an unhandled exception, a traceback or a hang.

Each test's ``max_examples`` is listed in :data:`EXAMPLES`; together they are the suite's input count (over
10,000), sized to run in well under a minute on two cores. Hangs are caught by ``deadline``.
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dvp_engine.cli import options
from dvp_engine.cli.main import main
from dvp_engine.core import CurveSet, FaceTrack, layout
from dvp_engine.core.curves import SCHEMA as CURVES
from dvp_engine.core.errors import DvpError
from dvp_engine.core.frames import FrameSet
from dvp_engine.core.sequence import ImageSequence

EXAMPLES = {
    "frame_ranges": 2600,
    "frame_range_text": 2500,
    "sequence_patterns": 2000,
    "curve_documents": 1000,
    "track_headers": 400,
    "option_values": 1500,
    "set_expressions": 1000,
    "cli_file_inputs": 300,
}
"""Generated inputs per test (the suite's total is the sum: 11,300)."""

FAST = timedelta(seconds=2)  # per input: a parser that takes longer is treated as a hang
COMMON = dict(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# JSON values of any shape, for fields that should be objects, lists, numbers or strings
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=6,
)


# ---------------------------------------------------------------------------------------------- frame ranges
huge = st.sampled_from([10**9 - 1, 10**9, -(10**9), 10**12, 10**20, 2**63, -(2**64), 10**40])
range_items = st.builds(
    lambda a, b, step, form: form.format(a=a, b=b, s=step),
    huge | st.integers(-50, 50),
    huge | st.integers(-50, 3000),
    st.integers(-5, 1000) | huge,
    st.sampled_from(
        ["{a}", "{a}-{b}", "{a}-{b}x{s}", " {a} - {b} X {s} ", "{a}--{b}", "{a}-{b}x", "+{a}-+{b}"]
    ),
)


@settings(max_examples=EXAMPLES["frame_ranges"], deadline=FAST, **COMMON)
@given(st.lists(range_items, min_size=1, max_size=4).map(",".join))
@example("1-99999999999999999999")
@example("-5--1")
def test_frame_ranges(text: str) -> None:
    try:
        fs = FrameSet.parse(text)
    except ValueError:
        return
    assert FrameSet.parse(str(fs)) == fs
    assert all(abs(f) <= 999_999_999 for f in (fs.first, fs.last))


@settings(max_examples=EXAMPLES["frame_range_text"], deadline=FAST, **COMMON)
@given(st.text(alphabet="0123456789\u0661\u0969\uff11-x,X+ .\t", max_size=40) | st.text(max_size=40))
@example("\u0661\u0669\u0669")
def test_frame_range_text(text: str) -> None:
    try:
        fs = FrameSet.parse(text)
    except ValueError:
        return
    assert all(c.isascii() for c in text if c.isdigit())
    assert len(fs) <= 1_000_000


# ------------------------------------------------------------------------------------------ sequence patterns
@settings(max_examples=EXAMPLES["sequence_patterns"], deadline=FAST, **COMMON)
@given(
    st.lists(
        st.sampled_from(
            ["plate", "_v", "v", ".", "#", "@", "%04d", "%d", "%4d", "%", "12", "\u0661", "/", "exr", "-"]
        ),
        max_size=8,
    ).map("".join)
    | st.text(max_size=30)
)
@example("frame_v2.exr")
@example("plate_v001.png")
def test_sequence_patterns(text: str) -> None:
    try:
        seq = ImageSequence.parse(text)
    except ValueError:
        return
    # a parsed pattern renders names that parse back to the same sequence
    name = seq.name(7)
    assert seq.frame_of(name) == 7
    assert ImageSequence.parse(seq.pattern("oiio")).padding == seq.padding


# ------------------------------------------------------------------------------------------------ curve files
def _curve_doc() -> st.SearchStrategy[Any]:
    key = st.fixed_dictionaries(
        {"frame": st.integers(-5, 50) | json_values, "value": st.floats(-1e40, 1e40) | json_values},
        optional={
            "interp": st.sampled_from(["linear", "smooth", "bezier", "constant", "cubic"]) | json_values,
            "in_slope": st.floats(-1e9, 1e9) | json_values,
            "out_slope": st.floats(-1e9, 1e9) | json_values,
        },
    )
    entry = st.fixed_dictionaries(
        {"keys": st.lists(key, max_size=4) | json_values},
        optional={"mode": st.sampled_from(["override", "offset", "add"]) | json_values, "range": json_values},
    )
    names = st.sampled_from(["head.ry", "head.tz", "blink.left", "expr.03", "face.smile", "nope"])
    return st.fixed_dictionaries(
        {
            "schema": st.just(CURVES) | json_values,
            "channels": st.dictionaries(names, entry, max_size=3) | json_values,
        },
        optional={"metadata": json_values},
    )


@settings(max_examples=EXAMPLES["curve_documents"], deadline=FAST, **COMMON)
@given(_curve_doc() | json_values)
def test_curve_documents(doc: Any) -> None:
    if not isinstance(doc, dict):
        return  # CurveSet.load refuses non-objects before from_json (covered by the CLI test)
    try:
        cs = CurveSet.from_json(doc, path="fuzz.json")
    except DvpError:
        return
    for name, c in cs.curves.items():
        if layout.is_known_channel(name):
            limit = layout.channel_limit(name)
            assert all(abs(k.value) <= limit for k in c.keys)


# --------------------------------------------------------------------------------------------- track headers
def _track_bytes() -> bytes:
    p = np.zeros((3, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"].start + 2] = 0.6
    t = FaceTrack.from_params([1, 2, 3], p, rate=25, width=16, height=16, intrinsics=(20, 20, 7.5, 7.5))
    buf = io.BytesIO()
    np.savez(buf, **t.to_arrays())
    return buf.getvalue()


VALID_TRACK = _track_bytes()
HEADER_FIELDS = ("schema", "rate", "width", "height", "intrinsics", "channel_names", "metadata")


def _write_track(path: Path, header: Any, arrays_change: dict[str, Any]) -> None:
    with np.load(io.BytesIO(VALID_TRACK)) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    arrays.update(arrays_change)
    np.savez(path, **arrays)


@settings(max_examples=EXAMPLES["track_headers"], deadline=FAST, **COMMON)
@given(
    changes=st.dictionaries(st.sampled_from(HEADER_FIELDS), json_values, max_size=3),
    whole=st.none() | json_values,
    arrays=st.dictionaries(
        st.sampled_from(["frames", "channels", "identity", "extra"]),
        st.sampled_from(
            [np.zeros(0), np.zeros((3, 2)), np.array([3, 2, 1]), np.array([1.5, 2, 3]), np.ones(80)]
        ),
        max_size=2,
    ),
)
def test_track_headers(tmp_path: Path, changes: dict[str, Any], whole: Any, arrays: dict[str, Any]) -> None:
    with np.load(io.BytesIO(VALID_TRACK)) as data:
        header = json.loads(data["header"].tobytes())
    header.update(changes)
    path = tmp_path / "t.npz"
    _write_track(path, header if whole is None else whole, arrays)
    try:
        t = FaceTrack.load(path)
    except DvpError as exc:
        assert "t.npz" in str(exc)
        return
    t.validate()


# --------------------------------------------------------------------------------------------- option values
option_text = st.text(max_size=12) | st.sampled_from(
    [
        "0",
        "-1",
        "nan",
        "inf",
        "-inf",
        "1e9",
        "1e400",
        "0x10",
        "\u0661",
        "4096",
        "cuda:99",
        "cuda:0",
        "mps",
        "1_000",
    ]
)


@settings(max_examples=EXAMPLES["option_values"], deadline=FAST, **COMMON)
@given(
    text=option_text,
    argv=st.lists(st.sampled_from(["--frames", "-5--1", "-3", "--x", "1-2", "-v"]), max_size=5),
)
def test_option_values(text: str, argv: list[str]) -> None:
    for parse in (
        options.int_type(1, 4096),
        options.int_type(None, None),
        options.float_type(0, 64),
        options.float_type(0, 1e6, lo_open=True),
        options.device_type,
    ):
        try:
            v = parse(text)
        except argparse.ArgumentTypeError:
            continue
        assert v == v  # not NaN
    try:
        options.parse_frames(text)
    except DvpError:
        pass
    joined = options.join_dash_values(argv)
    assert len(joined) <= len(argv)


@settings(max_examples=EXAMPLES["set_expressions"], deadline=FAST, **COMMON)
@given(
    st.builds(
        lambda name, op, value, rng: f"{name}{op}{value}{rng}",
        st.sampled_from(["head.ry", "head.tz", "gaze.left.x", "nope", "", "face.x"]),
        st.sampled_from(["=", "==", "=+", "=-", ":"]),
        st.sampled_from(["1", "1e30", "nan", "inf", "-5", "1e400", "\u0661", "x", "1.5e3"]),
        st.sampled_from(["", "@1-3", "@3-1", "@\u0661", "@-5--1", "@99999999999999999999"]),
    )
    | st.text(max_size=20)
)
def test_set_expressions(expr: str) -> None:
    from dvp_engine.transfer import apply_sets

    p = np.zeros((3, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"].start + 2] = 0.6
    t = FaceTrack.from_params([1, 2, 3], p, rate=25, width=16, height=16, intrinsics=(20, 20, 7.5, 7.5))
    try:
        out = apply_sets(t, [expr])
    except (KeyError, ValueError):
        return
    out.validate()


# ---------------------------------------------------------------------------------------- CLI file inputs
def _valid_inputs() -> dict[str, bytes]:
    from dvp_engine.io.images import write_image

    tmp = Path(__import__("tempfile").mkdtemp())
    write_image(tmp / "a.png", np.full((4, 4, 3), 0.5, np.float32))
    write_image(tmp / "a.exr", np.full((4, 4, 3), 0.5, np.float32))
    curves = {"schema": CURVES, "channels": {"head.ry": {"keys": [{"frame": 1, "value": 3}]}}}
    return {
        ".npz": VALID_TRACK,
        ".json": json.dumps(curves).encode(),
        ".png": (tmp / "a.png").read_bytes(),
        ".exr": (tmp / "a.exr").read_bytes(),
        ".mp4": (Path(__file__).resolve().parents[2] / "dvp_engine/data/sample/wda_kh.mp4").read_bytes()[
            :40000
        ],
    }


VALID_INPUTS = _valid_inputs()


def _mutate(data: bytes, cuts: list[tuple[int, int]]) -> bytes:
    b = bytearray(data)
    for pos, val in cuts:
        if b:
            b[pos % len(b)] = val
    return bytes(b)


@settings(max_examples=EXAMPLES["cli_file_inputs"], deadline=timedelta(seconds=30), **COMMON)  # (the first
# render-conditioning call imports torch and kornia: seconds)
@given(
    suffix=st.sampled_from(sorted(VALID_INPUTS)),
    cut=st.none() | st.integers(0, 1 << 20),
    flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6),
    command=st.sampled_from(["info", "edit", "curves", "render-conditioning", "nuke-script", "convert"]),
)
def test_cli_file_inputs(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    suffix: str,
    cut: int | None,
    flips: list,
    command: str,
) -> None:
    data = _mutate(VALID_INPUTS[suffix], flips)
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    bad = tmp_path / (f"in.0001{suffix}" if command == "convert" else f"in{suffix}")
    bad.write_bytes(data)
    good = tmp_path / "good.npz"
    good.write_bytes(VALID_TRACK)
    argv = {
        "info": ["info", str(bad)],
        "edit": ["edit", str(bad), "-o", str(tmp_path / "o.npz"), "--overwrite"],
        "curves": ["edit", str(good), "--curves", str(bad), "-o", str(tmp_path / "o.npz"), "--overwrite"],
        "render-conditioning": ["render-conditioning", str(bad), "-o", str(tmp_path / "c.####.exr"), "--size", "8",
                                "--device", "cpu", "--overwrite"],
        "nuke-script": ["nuke-script", str(bad), "-o", str(tmp_path / "s.nk"), "--overwrite"],
        "convert": ["convert", str(tmp_path / f"in.####{suffix}"), "-o", str(tmp_path / "v.####.png"), "--overwrite"],
    }[command]  # fmt: skip
    try:
        code = main([*argv, "-q"])
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    if code != 0:
        assert code in (1, 2), err
        assert err.strip().splitlines()[-1].startswith("dvp: error: "), err


def test_the_suite_is_over_ten_thousand_inputs() -> None:
    assert sum(EXAMPLES.values()) >= 10_000
    assert not zipfile.is_zipfile(
        io.BytesIO(b"not a zip")
    )  # (the mutated-file test relies on zipfile's checks)
