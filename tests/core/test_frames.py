from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvp_engine.core.frames import MAX_FRAMES, FrameSet, parse_frames


@pytest.mark.parametrize(
    ("text", "frames", "canonical"),
    [
        ("1001-1100", list(range(1001, 1101)), "1001-1100"),
        ("1-100x2", list(range(1, 101, 2)), "1-99x2"),
        ("1,5,9-12", [1, 5, 9, 10, 11, 12], "1,5,9-12"),
        ("1001", [1001], "1001"),
        ("-5--1", [-5, -4, -3, -2, -1], "-5--1"),
        ("-3-3x3", [-3, 0, 3], "-3-3x3"),
        (" 10 - 20 x 5 , 3 ", [3, 10, 15, 20], "3,10-20x5"),
        ("5,1,5,3-4", [1, 3, 4, 5], "1,3-5"),
        ("1-10x2,2-10x2", list(range(1, 11)), "1-10"),
        ("7-7", [7], "7"),
        ("0", [0], "0"),
    ],
)
def test_parse_and_canonical_print(text: str, frames: list[int], canonical: str) -> None:
    fs = FrameSet.parse(text)
    assert list(fs) == frames
    assert str(fs) == canonical
    assert FrameSet.parse(canonical) == fs
    assert parse_frames(text) == fs


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("1100-1001", "end 1001 is before start 1100"),
        ("1-10x0", "step must be > 0"),
        ("1-10x-2", "step must be > 0"),
        ("abc", "'abc'"),
        ("1-", "'1-'"),
        ("1,,2", "'1,,2'"),
        ("1.5", "'1.5'"),
        ("", "empty"),
        ("   ", "empty"),
        ("1-1000000000000", "more than"),
    ],
)
def test_bad_text_gives_value_error_quoting_it(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match="frame|range") as exc:
        FrameSet.parse(text)
    assert needle in str(exc.value)


def test_container_protocol_and_algebra() -> None:
    a = FrameSet.parse("1-10")
    b = FrameSet.from_frames([np.int64(5), 20, 5, 7])
    assert list(b) == [5, 7, 20] and len(b) == 3 and b.first == 5 and b.last == 20
    assert 5 in b and 6 not in b and "5" not in b and 5.0 not in b
    assert list(a & b) == [5, 7]
    assert list(a - b) == [1, 2, 3, 4, 6, 8, 9, 10]
    assert list(a | b) == [*range(1, 11), 20]
    assert a.is_contiguous() and not b.is_contiguous()
    assert b.to_array().dtype == np.int64 and b.to_array().tolist() == [5, 7, 20]
    assert FrameSet.from_range(1001, 1010, 3) == FrameSet.parse("1001,1004,1007,1010")
    assert hash(FrameSet.parse("1-3")) == hash(FrameSet([3, 2, 1]))
    assert FrameSet() == FrameSet([]) and not FrameSet() and str(FrameSet()) == ""
    with pytest.raises(ValueError, match="empty"):
        _ = FrameSet().first
    with pytest.raises(TypeError):
        FrameSet([1.0])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="before start"):
        FrameSet.from_range(10, 1)


frame_lists = st.lists(st.integers(min_value=-3000, max_value=3000), min_size=1, max_size=60)


@st.composite
def range_sets(draw: st.DrawFn) -> list[int]:
    """Unions of strided ranges, which exercise the x-step printing."""
    out: list[int] = []
    for _ in range(draw(st.integers(1, 5))):
        start = draw(st.integers(-500, 500))
        out.extend(range(start, start + draw(st.integers(0, 60)) + 1, draw(st.integers(1, 7))))
    return out


@given(st.one_of(frame_lists, range_sets()))
@settings(max_examples=300, deadline=None)
def test_round_trip_random_sets(frames: list[int]) -> None:
    fs = FrameSet.from_frames(frames)
    assert list(fs) == sorted(set(frames))
    text = str(fs)
    assert FrameSet.parse(text) == fs
    # canonical is a fixed point and never longer than listing every frame
    assert str(FrameSet.parse(text)) == text
    assert len(text) <= len(",".join(map(str, fs)))


@given(st.text(alphabet="0123456789-x,X +.:abc#\n\t", max_size=30) | st.text(max_size=30))
@settings(max_examples=500, deadline=None)
def test_parser_fuzz_only_value_error(text: str) -> None:
    try:
        fs = FrameSet.parse(text)
    except ValueError:
        return
    assert len(fs) >= 1 and len(fs) <= MAX_FRAMES
    assert FrameSet.parse(str(fs)) == fs
