from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvp_engine.core.errors import InputError
from dvp_engine.core.frames import FrameSet
from dvp_engine.core.sequence import ImageSequence, is_pattern


@pytest.mark.parametrize(
    ("pattern", "prefix", "padding", "suffix", "first"),
    [
        ("plate/wda.####.exr", "wda.", 4, ".exr", None),
        ("plate/wda.%04d.exr", "wda.", 4, ".exr", None),
        ("plate/wda.%d.exr", "wda.", 1, ".exr", None),
        ("plate/wda.#.exr", "wda.", 4, ".exr", None),
        ("plate/wda.@@@.exr", "wda.", 3, ".exr", None),
        ("plate/wda.#@.exr", "wda.", 5, ".exr", None),
        ("plate/wda.######.exr", "wda.", 6, ".exr", None),
        ("plate/wda.1001.exr", "wda.", 4, ".exr", 1001),
        ("plate/shot010_v2.0042.tif", "shot010_v2.", 4, ".tif", 42),
        ("plate/frame7.png", "frame", 1, ".png", 7),
        ("plate/wda_####_beauty.exr", "wda_", 4, "_beauty.exr", None),
    ],
)
def test_parse_patterns(pattern: str, prefix: str, padding: int, suffix: str, first: int | None) -> None:
    seq = ImageSequence.parse(pattern)
    assert (seq.directory, seq.prefix, seq.padding, seq.suffix) == (Path("plate"), prefix, padding, suffix)
    assert seq.first == first and seq.last == first and seq.frames is None
    assert is_pattern(pattern) == (first is None)


def test_render_styles_and_round_trip() -> None:
    seq = ImageSequence(Path("plate"), "wda.", 4, ".exr", 1001, 1100)
    assert seq.pattern("printf") == seq.printf_pattern == "plate/wda.%04d.exr"
    assert seq.pattern("hash") == seq.hash_pattern == "plate/wda.####.exr"
    assert seq.pattern("oiio") == seq.oiio_pattern == "plate/wda.#.exr"
    assert ImageSequence(Path("p"), "a.", 3, ".png").oiio_pattern == "p/a.@@@.png"
    assert ImageSequence(Path("p"), "a.", 1, ".png").printf_pattern == "p/a.%d.png"
    with pytest.raises(ValueError, match="style"):
        seq.pattern("nuke")  # type: ignore[arg-type]
    for padding in (1, 2, 3, 4, 5, 8):
        s = ImageSequence(Path("d"), "x_", padding, ".exr")
        for style in ("printf", "oiio") + (("hash",) if padding > 1 else ()):
            back = ImageSequence.parse(s.pattern(style))  # type: ignore[arg-type]
            assert (back.prefix, back.padding, back.suffix) == ("x_", padding, ".exr"), style


def test_padding_rule() -> None:
    seq = ImageSequence(Path("d"), "a.", 4, ".exr")
    assert seq.name(7) == "a.0007.exr"
    assert seq.name(1001) == "a.1001.exr"
    assert seq.name(123456) == "a.123456.exr"  # wider than the padding: printed in full
    assert seq.name(-5) == "a.-0005.exr"  # sign + padding digits
    assert seq.name(0) == "a.0000.exr"
    assert seq.path(12) == Path("d/a.0012.exr")
    assert ImageSequence(Path(""), "a.", 1, ".exr").name(-3) == "a.-3.exr"
    # scanning accepts exactly what name() produces
    assert seq.frame_of("a.0007.exr") == 7
    assert seq.frame_of("a.-0005.exr") == -5
    assert seq.frame_of("a.123456.exr") == 123456
    for bad in (
        "a.007.exr",
        "a.01001.exr",
        "a.-005.exr",
        "a.00x7.exr",
        "b.0007.exr",
        "a.0007.exr.bak",
        "a..exr",
    ):
        assert seq.frame_of(bad) is None, bad


@given(st.integers(-(10**7), 10**7), st.integers(1, 8))
@settings(max_examples=200, deadline=None)
def test_name_frame_of_round_trip(frame: int, padding: int) -> None:
    seq = ImageSequence(Path("d"), "shot.", padding, ".exr")
    assert seq.frame_of(seq.name(frame)) == frame
    if frame >= 0:
        assert ImageSequence.parse(seq.path(frame)).first == frame


def test_parse_errors() -> None:
    for bad, needle in [
        ("plate/name.exr", "no frame number"),
        ("plate/a.%04d.####.exr", "more than one"),
        ("plate/a.%4d.exr", "spaces"),
        ("", "no file name"),
    ]:
        with pytest.raises(ValueError, match=needle):
            ImageSequence.parse(bad)
    with pytest.raises(ValueError, match="before first"):
        ImageSequence(Path("d"), "a.", 4, ".exr", 10, 5)
    with pytest.raises(ValueError, match="padding"):
        ImageSequence(Path("d"), "a.", 0, ".exr")


def _touch(folder: Path, seq: ImageSequence, frames: list[int]) -> None:
    for f in frames:
        seq.path(f).write_bytes(b"x")


def test_scan_missing_and_require(tmp_path: Path) -> None:
    seq = ImageSequence.parse(tmp_path / "wda.####.exr")
    present = [1001, 1002, 1003, 1005, 1008, 1009, 1010]
    _touch(tmp_path, seq, present)
    (tmp_path / "wda.01004.exr").write_bytes(b"x")  # wrong padding: not part of the sequence
    (tmp_path / "wda.1006.png").write_bytes(b"x")  # other suffix
    (tmp_path / "other.1007.exr").write_bytes(b"x")
    scanned = seq.scan()
    assert list(scanned.frames or ()) == present
    assert (scanned.first, scanned.last) == (1001, 1010)
    assert list(scanned.missing()) == [1004, 1006, 1007]
    assert list(seq.missing("1001-1012")) == [1004, 1006, 1007, 1011, 1012]
    assert scanned.require("1008-1010") == FrameSet.parse("1008-1010")
    with pytest.raises(InputError) as exc:
        scanned.require()
    msg = str(exc.value)
    assert "3 of 10 frames missing" in msg and "1004,1006-1007" in msg and "wda.####.exr" in msg
    summary = scanned.summary()
    assert "1001-1003,1005,1008-1010" in summary and "1004,1006-1007" in summary
    # a concrete file finds its siblings
    assert ImageSequence.find(tmp_path / "wda.1005.exr") == scanned
    assert ImageSequence.find(tmp_path / "wda.%04d.exr") == scanned
    assert ImageSequence.parse(tmp_path / "wda.1005.exr").scan().frames == FrameSet([1005])
    assert ImageSequence.parse(tmp_path / "wda.1005.exr").with_range("1000-2000").scan() == scanned
    # a range restricts the scan
    assert list(seq.with_range("1003-1008").scan().frames or ()) == [1003, 1005, 1008]
    assert [f for f, _ in scanned.paths()] == present


def test_scan_negative_frames(tmp_path: Path) -> None:
    seq = ImageSequence.parse(tmp_path / "neg.%03d.png")
    _touch(tmp_path, seq, [-2, -1, 0, 1])
    assert str(seq.scan().frames) == "-2-1"
    assert (tmp_path / "neg.-002.png").is_file()


def test_scan_errors_name_the_pattern(tmp_path: Path) -> None:
    seq = ImageSequence.parse(tmp_path / "nothing.####.exr")
    with pytest.raises(InputError, match=r"nothing\.####\.exr: sequence pattern matches no files"):
        seq.scan()
    with pytest.raises(InputError, match="does not exist"):
        ImageSequence.parse(tmp_path / "nofolder" / "a.####.exr").scan()
    with pytest.raises(ValueError, match="no frame range"):
        seq.missing()


def test_dict_round_trip() -> None:
    seq = ImageSequence(Path("plate"), "wda.", 4, ".exr", frames=FrameSet.parse("1-5,9"))
    assert (seq.first, seq.last) == (1, 9)
    assert ImageSequence.from_dict(seq.to_dict()) == seq
    bare = ImageSequence.parse("plate/wda.####.exr")
    assert ImageSequence.from_dict(bare.to_dict()) == bare
    with pytest.raises(ValueError, match="disagree"):
        ImageSequence(Path("p"), "a.", 4, ".exr", 1, 20, FrameSet.parse("1-5"))
