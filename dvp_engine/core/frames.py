"""Frame ranges in the oiiotool / fileseq syntax (numpy + stdlib only).

Syntax (whitespace around items and separators is ignored)::

    1001            one frame
    1001-1100       first-last, inclusive
    1-100x2         every 2nd frame from 1 up to 100: 1, 3, ..., 99
    1,5,9-12        comma-separated items, in any order, overlaps allowed
    -5--1           negative frames: -5, -4, -3, -2, -1
    -3-3x3          -3, 0, 3

A :class:`FrameSet` holds the ordered, unique frame numbers. ``str()`` prints the compact canonical form
(runs of a constant step become ``a-b`` or ``a-bxS`` where ``b`` is the last frame actually in the set), and
``FrameSet.parse(str(fs)) == fs`` for every non-empty set. The empty set prints as ``""``, which ``parse``
refuses (an empty range on a command line is a mistake).

Errors are :class:`ValueError` with the offending text quoted: end before start, a step of zero or less,
text that is not a frame range, a frame number beyond :data:`MAX_FRAME_NUMBER` (either sign), or a range of
more than :data:`MAX_FRAMES` frames. Only ASCII digits are frame numbers (``'١٩٩'`` is refused, not read as 199).
"""

from __future__ import annotations

import bisect
import operator
import re
from collections.abc import Iterable, Iterator
from typing import Final, SupportsIndex

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_FRAMES", "MAX_FRAME_NUMBER", "FrameSet", "parse_frames"]

#: The largest number of frames one range may expand to (guards against typos like ``1-100000000000``).
MAX_FRAMES: Final = 1_000_000
#: The largest frame number (and, negated, the smallest) a range may name: nine digits, far beyond any shot.
MAX_FRAME_NUMBER: Final = 999_999_999

_ITEM: Final = re.compile(
    r"""^\s*
    (?P<start>[-+]?\d+)
    (?:\s*-\s*(?P<end>[-+]?\d+)
        (?:\s*[xX]\s*(?P<step>[-+]?\d+))?
    )?
    \s*$""",
    re.VERBOSE | re.ASCII,
)


def _int(digits: str, item: str) -> int:
    if len(digits.lstrip("+-")) > 30:
        raise ValueError(f"frame number {digits[:12]}... in {item.strip()[:40]!r} has more than 30 digits")
    return int(digits)


def _check(frame: int, item: str) -> int:
    if abs(frame) > MAX_FRAME_NUMBER:
        raise ValueError(f"frame number {frame} in {item.strip()!r} is beyond +-{MAX_FRAME_NUMBER}")
    return frame


def _parse_item(item: str, text: str) -> range:
    m = _ITEM.match(item)
    if m is None:
        raise ValueError(f"not a frame range: {item.strip()!r} in {text!r} (expected e.g. '1001-1100x2')")
    start = _int(m["start"], item)
    if m["end"] is None:
        _check(start, item)
        return range(start, start + 1)
    end = _int(m["end"], item)
    step = 1 if m["step"] is None else _int(m["step"], item)
    if step <= 0:
        raise ValueError(f"frame step must be > 0, got {step} in {item.strip()!r}")
    if end < start:
        raise ValueError(f"frame range end {end} is before start {start} in {item.strip()!r}")
    count = (end - start) // step + 1  # not len(range): that overflows a C ssize_t on huge ranges
    if count > MAX_FRAMES:
        raise ValueError(f"frame range {item.strip()!r} has {count} frames, more than {MAX_FRAMES}")
    _check(start, item)
    _check(end, item)
    return range(start, end + 1, step)


class FrameSet:
    """An ordered set of unique integer frame numbers.

    Construct with :meth:`parse` (text), :meth:`from_frames` (any iterable of ints) or :meth:`from_range`.
    Iteration yields the frames in increasing order. Immutable and hashable.
    """

    __slots__ = ("_frames",)

    _frames: tuple[int, ...]

    def __init__(self, frames: Iterable[SupportsIndex] = ()) -> None:
        """Frames from any iterable of integers (numpy integers included); sorted, duplicates dropped.

        Raises:
            TypeError: an element is not an integer (floats such as ``1.0`` are refused, not rounded).
        """
        self._frames = tuple(sorted({operator.index(f) for f in frames}))

    # ------------------------------------------------------------------ construction
    @classmethod
    def parse(cls, text: str) -> FrameSet:
        """Parse ``1001-1100``, ``1-100x2``, ``1,5,9-12``, ``-5--1`` ...

        Raises:
            ValueError: the text is empty or not a frame range, an end is before its start, a step is
                zero or negative, or the set would hold more than :data:`MAX_FRAMES` frames. The message
                quotes the offending text.
        """
        if not isinstance(text, str):
            raise TypeError(f"frame range must be a string, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"empty frame range {text!r} (expected e.g. '1001-1100')")
        frames: set[int] = set()
        for item in text.split(","):
            r = _parse_item(item, text)
            frames.update(r)
            if len(frames) > MAX_FRAMES:
                raise ValueError(f"frame range {text!r} has more than {MAX_FRAMES} frames")
        fs = cls.__new__(cls)
        fs._frames = tuple(sorted(frames))
        return fs

    @classmethod
    def from_frames(cls, frames: Iterable[SupportsIndex]) -> FrameSet:
        """The set of the given frame numbers (any order, duplicates allowed)."""
        return cls(frames)

    @classmethod
    def from_range(cls, first: int, last: int, step: int = 1) -> FrameSet:
        """Frames ``first, first+step, ... <= last`` (inclusive, like ``first-lastxstep``).

        Raises:
            ValueError: ``last < first`` or ``step <= 0``.
        """
        return cls.parse(f"{int(first)}-{int(last)}x{int(step)}")

    # ------------------------------------------------------------------ access
    @property
    def frames(self) -> tuple[int, ...]:
        """The frame numbers in increasing order."""
        return self._frames

    @property
    def first(self) -> int:
        """The lowest frame. Raises ValueError when empty."""
        if not self._frames:
            raise ValueError("empty frame set has no first frame")
        return self._frames[0]

    @property
    def last(self) -> int:
        """The highest frame. Raises ValueError when empty."""
        if not self._frames:
            raise ValueError("empty frame set has no last frame")
        return self._frames[-1]

    def to_array(self) -> npt.NDArray[np.int64]:
        """The frames as an ``(F,)`` int64 array."""
        return np.asarray(self._frames, dtype=np.int64).reshape(-1)

    def is_contiguous(self) -> bool:
        """True if the frames are ``first..last`` with no gaps (an empty set counts as contiguous)."""
        return not self._frames or self._frames[-1] - self._frames[0] + 1 == len(self._frames)

    def segments(self) -> list[tuple[int, int, int]]:
        """The canonical ``(start, end, step)`` runs that :meth:`__str__` prints (end inclusive).

        Greedy from the lowest frame: a run continues while the step between consecutive frames is
        constant (a strided run stops before a frame that starts a contiguous run, so ``1,5,9-12``
        stays as written); runs of three or more frames, or of two adjacent frames, become one segment,
        anything else becomes a single-frame segment ``(f, f, 1)``.
        """
        f = self._frames
        out: list[tuple[int, int, int]] = []
        i, n = 0, len(f)
        while i < n:
            if i + 1 < n:
                step = f[i + 1] - f[i]
                j = i
                while j + 1 < n and f[j + 1] - f[j] == step:
                    # a strided run stops before a frame that starts a contiguous run
                    if step != 1 and j + 2 < n and f[j + 2] - f[j + 1] == 1:
                        break
                    j += 1
                if j - i + 1 >= 3 or step == 1:
                    out.append((f[i], f[j], step))
                    i = j + 1
                    continue
            out.append((f[i], f[i], 1))
            i += 1
        return out

    # ------------------------------------------------------------------ set algebra
    def __or__(self, other: FrameSet) -> FrameSet:
        return FrameSet((*self._frames, *other._frames))

    def __and__(self, other: FrameSet) -> FrameSet:
        return FrameSet(set(self._frames) & set(other._frames))

    def __sub__(self, other: FrameSet) -> FrameSet:
        return FrameSet(set(self._frames) - set(other._frames))

    def union(self, other: FrameSet) -> FrameSet:
        return self | other

    def intersection(self, other: FrameSet) -> FrameSet:
        return self & other

    def difference(self, other: FrameSet) -> FrameSet:
        return self - other

    # ------------------------------------------------------------------ protocol
    def __len__(self) -> int:
        return len(self._frames)

    def __bool__(self) -> bool:
        return bool(self._frames)

    def __iter__(self) -> Iterator[int]:
        return iter(self._frames)

    def __contains__(self, frame: object) -> bool:
        if isinstance(frame, bool) or not hasattr(frame, "__index__"):
            return False
        f = operator.index(frame)
        i = bisect.bisect_left(self._frames, f)
        return i < len(self._frames) and self._frames[i] == f

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrameSet):
            return NotImplemented
        return self._frames == other._frames

    def __hash__(self) -> int:
        return hash(self._frames)

    def __str__(self) -> str:
        parts = []
        for start, end, step in self.segments():
            if start == end:
                parts.append(str(start))
                continue
            run = f"{start}-{end}" if step == 1 else f"{start}-{end}x{step}"
            listed = ",".join(str(f) for f in range(start, end + 1, step))
            # never longer than listing the frames (e.g. "-1,9,19" rather than "-1-19x10")
            parts.append(listed if len(listed) < len(run) else run)
        return ",".join(parts)

    def __repr__(self) -> str:
        return f"FrameSet({str(self)!r})"


def parse_frames(text: str) -> FrameSet:
    """Shorthand for :meth:`FrameSet.parse`."""
    return FrameSet.parse(text)
