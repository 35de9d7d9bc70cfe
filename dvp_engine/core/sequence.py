"""Image sequences as fields: directory, prefix, padding, suffix, first, last (numpy + stdlib only).

A sequence ``plate/wda.1001.exr .. plate/wda.1100.exr`` is stored as ``directory="plate"``,
``prefix="wda."``, ``padding=4``, ``suffix=".exr"``, ``first=1001``, ``last=1100`` and, once scanned,
the :class:`~dvp_engine.core.frames.FrameSet` of frames present. Patterns are only a boundary format:

=========================  ==========================================================================
pattern                    meaning
=========================  ==========================================================================
``wda.%04d.exr``           printf: 4 digits, zero-padded; ``%d`` means no padding (padding 1)
``wda.####.exr``           hashes, Nuke/Blender style: one ``#`` per digit (here 4)
``wda.#.exr``              a single ``#`` is 4 digits (oiiotool/fileseq convention)
``wda.@@@.exr``            ``@``: one digit each (oiiotool); ``#`` and ``@`` may mix as 4 + 1 each
``wda.1001.exr``           a concrete file: the last group of digits before the extension is the frame,
                           its length is the padding (ASCII digits only; a version such as ``_v001`` or
                           ``.v2`` is not a frame number, so ``plate_v001.png`` is refused as a pattern)
=========================  ==========================================================================

Padding rule (:meth:`ImageSequence.name`): *padding is the minimum number of digits*. A frame number with
more digits than the padding is printed in full (padding 4: ``12345``); a negative frame is printed as a
minus sign followed by at least ``padding`` digits (padding 4: ``-0005``, so the sign does not eat a digit,
unlike printf's ``%04d`` which would give ``-005``). :meth:`ImageSequence.scan` accepts exactly the names
this rule produces, so ``wda.01001.exr`` is not frame 1001 of a padding-4 sequence.

Rendering: :meth:`ImageSequence.pattern` with ``style="printf"`` (``%04d``), ``"hash"`` (``####``, one per
digit; padding 1 renders ``#``, which Nuke and Blender read as one digit but dvp and oiiotool read back as
four) or ``"oiio"`` (``#`` for padding 4, else one ``@`` per digit; always round-trips).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

from .errors import InputError
from .frames import FrameSet

__all__ = ["ImageSequence", "PatternStyle", "is_pattern"]

PatternStyle = Literal["printf", "hash", "oiio"]

_PRINTF: Final = re.compile(r"%(0?)(\d*)d", re.ASCII)
_HASHES: Final = re.compile(r"[#@]+")
MOVIE_SUFFIXES: Final = frozenset(
    {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mxf", ".mpg", ".mpeg", ".gif"}
)
"""File suffixes read as movies (decoded by PyAV), not as images or image sequences."""
# a concrete file name: the last run of ASCII digits in the stem (the part before the extension)
_CONCRETE: Final = re.compile(
    r"^(?P<prefix>.*?)(?P<digits>\d+)(?P<suffix>(?:\.[A-Za-z][A-Za-z0-9]*)*)$", re.ASCII
)
# a version number (``plate_v001``, ``frame.v2``, ``shotV3``): a 'v' after a separator (or at the start)
_VERSION: Final = re.compile(r"(?:^|[._\-])[vV]$")


def is_pattern(text: str | os.PathLike[str]) -> bool:
    """True if the file name holds a frame placeholder (``#``, ``@`` or a printf ``%d``)."""
    name = Path(text).name
    return bool(_HASHES.search(name) or _PRINTF.search(name))


def _hash_padding(run: str, pattern: str) -> int:
    if "@" in run:
        return 4 * run.count("#") + run.count("@")
    return 4 if len(run) == 1 else len(run)


def _compact(frames: Iterable[int], limit: int = 20) -> str:
    """Frame numbers as a compact range string, shortened if very long."""
    text = str(FrameSet(frames))
    if len(text) > 200:
        parts = text.split(",")
        if len(parts) > limit:
            text = ",".join(parts[:limit]) + f",... ({len(parts) - limit} more runs)"
    return text


@dataclass(frozen=True)
class ImageSequence:
    """A numbered image sequence stored as fields.

    Attributes:
        directory: the folder (``Path("")`` renders as the current folder).
        prefix: the file name before the frame number, e.g. ``"wda."``.
        padding: minimum number of digits (>= 1); see the module's padding rule.
        suffix: the file name after the frame number, e.g. ``".exr"``.
        first, last: the frame range (inclusive), or ``None`` when unknown (a bare pattern before
            :meth:`scan`). Both set or both ``None``; equal to ``frames.first/last`` when ``frames`` is set.
        frames: the frames known to be present (after :meth:`scan`), or ``None`` when unknown.
    """

    directory: Path
    prefix: str
    padding: int
    suffix: str
    first: int | None = None
    last: int | None = None
    frames: FrameSet | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "directory", Path(self.directory))
        if not isinstance(self.padding, int) or self.padding < 1:
            raise ValueError(f"padding must be an integer >= 1, got {self.padding!r}")
        if "/" in self.prefix or "/" in self.suffix or os.sep in self.prefix or os.sep in self.suffix:
            raise ValueError(
                f"prefix/suffix must not contain a path separator: {self.prefix!r}, {self.suffix!r}"
            )
        if self.frames is not None:
            if not self.frames:
                raise ValueError("an image sequence's frames must not be empty (use frames=None)")
            if self.first is None and self.last is None:
                object.__setattr__(self, "first", self.frames.first)
                object.__setattr__(self, "last", self.frames.last)
            elif (self.first, self.last) != (self.frames.first, self.frames.last):
                raise ValueError(
                    f"first/last {self.first}-{self.last} disagree with frames {self.frames} "
                    f"({self.frames.first}-{self.frames.last})"
                )
        if (self.first is None) != (self.last is None):
            raise ValueError("first and last must both be set or both be None")
        if self.first is not None and self.last is not None and self.last < self.first:
            raise ValueError(f"sequence last frame {self.last} is before first frame {self.first}")

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, pattern: str | os.PathLike[str], frames: FrameSet | str | None = None) -> ImageSequence:
        """A sequence from a pattern (``%04d``, ``####``, ``#``, ``@@@``) or a concrete file path.

        Args:
            pattern: e.g. ``"plate/wda.####.exr"``, ``"plate/wda.%04d.exr"``, ``"plate/wda.1001.exr"``.
                For a concrete path, the last group of digits before the extension is the frame
                number (a ``-`` right before it is not taken as a sign), ``first = last`` = that frame.
            frames: optional frame range (FrameSet or text like ``"1001-1100"``) giving first/last;
                it is not checked against the disk (see :meth:`scan`, :meth:`missing`).

        Raises:
            ValueError: no frame placeholder or number in the file name, more than one placeholder,
                an unsupported printf form (``%4d`` pads with spaces).
        """
        text = os.fspath(pattern)
        path = Path(text)
        directory, name = path.parent, path.name
        if not name:
            raise ValueError(f"not an image sequence pattern: {text!r} (no file name)")
        printf = list(_PRINTF.finditer(name))
        hashes = list(_HASHES.finditer(name))
        if len(printf) + len(hashes) > 1:
            raise ValueError(f"more than one frame placeholder in {text!r}")
        first: int | None = None
        last: int | None = None
        if printf:
            m = printf[0]
            zero, width = m.group(1), m.group(2)
            if width and not zero and int(width) > 1:
                raise ValueError(
                    f"printf pattern {m.group(0)!r} pads with spaces; use %0{width}d in {text!r}"
                )
            padding = int(width) if width else 1
            prefix, suffix = name[: m.start()], name[m.end() :]
        elif hashes:
            m = hashes[0]
            padding = _hash_padding(m.group(0), text)
            prefix, suffix = name[: m.start()], name[m.end() :]
        else:
            c = _CONCRETE.match(name)
            if c is None:
                raise ValueError(
                    f"no frame number or placeholder in {text!r} (expected e.g. 'name.####.exr', "
                    "'name.%04d.exr' or 'name.1001.exr')"
                )
            digits = c["digits"]
            prefix, suffix = c["prefix"], c["suffix"]
            if _VERSION.search(prefix):
                raise ValueError(
                    f"no frame number or placeholder in {text!r}: {prefix[-1]}{digits} is a version number, "
                    f"not a frame (write e.g. '{prefix}{digits}.####{suffix}')"
                )
            padding = len(digits)
            first = last = int(digits)
        if "%" in prefix + suffix:
            raise ValueError(f"unsupported '%' placeholder in {text!r} (expected %d or %0Nd)")
        seq = cls(directory, prefix, padding, suffix, first, last, None)
        return seq if frames is None else seq.with_range(frames)

    @classmethod
    def find(cls, pattern: str | os.PathLike[str]) -> ImageSequence:
        """The whole sequence on disk for a pattern or for any one of its files (like fileseq's
        ``findSequenceOnDisk``): ``find("plate/wda.1042.exr")`` returns all ``plate/wda.####.exr`` frames.

        Raises:
            ValueError: not a pattern or numbered file name.
            InputError: the folder does not exist or nothing matches.
        """
        seq = cls.parse(pattern)
        return replace(seq, first=None, last=None, frames=None).scan()

    # ------------------------------------------------------------------ rendering
    def name(self, frame: int) -> str:
        """The file name of ``frame`` under the padding rule (``wda.1001.exr``, ``wda.-0005.exr``)."""
        f = int(frame)
        digits = f"{abs(f):0{self.padding}d}"
        return f"{self.prefix}{'-' if f < 0 else ''}{digits}{self.suffix}"

    def path(self, frame: int) -> Path:
        """The full path of ``frame`` (``directory / name(frame)``)."""
        return self.directory / self.name(frame)

    def placeholder(self, style: PatternStyle = "hash") -> str:
        """The frame placeholder alone: ``%04d`` (printf), ``####`` (hash) or ``#``/``@@@`` (oiio)."""
        if style == "printf":
            return "%d" if self.padding == 1 else f"%0{self.padding}d"
        if style == "hash":
            return "#" * self.padding
        if style == "oiio":
            return "#" if self.padding == 4 else "@" * self.padding
        raise ValueError(f"unknown pattern style {style!r} (expected 'printf', 'hash' or 'oiio')")

    def pattern(self, style: PatternStyle = "hash") -> str:
        """The full path pattern in one style: ``plate/wda.%04d.exr``, ``plate/wda.####.exr``,
        ``plate/wda.#.exr``."""
        return str(self.directory / f"{self.prefix}{self.placeholder(style)}{self.suffix}")

    @property
    def printf_pattern(self) -> str:
        return self.pattern("printf")

    @property
    def hash_pattern(self) -> str:
        return self.pattern("hash")

    @property
    def oiio_pattern(self) -> str:
        return self.pattern("oiio")

    def __str__(self) -> str:
        rng = self.frame_range
        return self.pattern("hash") + (f" [{rng}]" if rng else "")

    # ------------------------------------------------------------------ frames
    @property
    def frame_range(self) -> FrameSet | None:
        """The frames present if known, else ``first..last`` if known, else ``None``."""
        if self.frames is not None:
            return self.frames
        if self.first is not None and self.last is not None:
            return FrameSet.from_range(self.first, self.last)
        return None

    def with_range(self, frames: FrameSet | str) -> ImageSequence:
        """A copy whose first/last cover ``frames`` (``frames`` field cleared: not checked on disk)."""
        fs = FrameSet.parse(frames) if isinstance(frames, str) else frames
        if not fs:
            raise ValueError("empty frame range")
        return replace(self, first=fs.first, last=fs.last, frames=None)

    def with_frames(self, frames: FrameSet | Iterable[int]) -> ImageSequence:
        """A copy with ``frames`` as the present frames (first/last follow)."""
        fs = frames if isinstance(frames, FrameSet) else FrameSet(frames)
        return replace(self, first=None, last=None, frames=fs)

    def frame_of(self, name: str | os.PathLike[str]) -> int | None:
        """The frame number of a file name of this sequence, or ``None`` if it does not belong to it.

        Only names that :meth:`name` would produce match (the padding rule is enforced both ways).
        """
        base = Path(name).name
        n_pre, n_suf = len(self.prefix), len(self.suffix)
        if len(base) <= n_pre + n_suf or not base.startswith(self.prefix) or not base.endswith(self.suffix):
            return None
        mid = base[n_pre : len(base) - n_suf]
        body = mid[1:] if mid.startswith("-") else mid
        if not body.isascii() or not body.isdigit():
            return None
        frame = int(mid)
        return frame if self.name(frame) == base else None

    def _disk_frames(self) -> FrameSet:
        folder = self.directory if str(self.directory) else Path(".")
        if not folder.is_dir():
            raise InputError("sequence folder does not exist", path=folder)
        try:
            names = os.listdir(folder)
        except OSError as exc:
            raise InputError(f"cannot list sequence folder ({exc.strerror})", path=folder) from exc
        found = (self.frame_of(n) for n in names)
        return FrameSet(f for f in found if f is not None)

    def scan(self) -> ImageSequence:
        """The frames present on disk (a copy with ``frames``, ``first`` and ``last`` set).

        If this sequence has a range (``first``/``last``), only frames inside it are kept.

        Raises:
            InputError: the folder does not exist, or no file matches (the message names the pattern).
        """
        present = self._disk_frames()
        rng = None if self.first is None or self.last is None else (self.first, self.last)
        if rng is not None:
            present = FrameSet(f for f in present if rng[0] <= f <= rng[1])
        if not present:
            where = "" if rng is None else f" in frames {rng[0]}-{rng[1]}"
            raise InputError(f"sequence pattern matches no files{where}", path=self.hash_pattern)
        return self.with_frames(present)

    def missing(self, frames: FrameSet | str | None = None) -> FrameSet:
        """The frames of ``frames`` (default ``first..last``) that are not on disk.

        Raises:
            ValueError: no ``frames`` given and the sequence has no range.
            InputError: the folder does not exist.
        """
        wanted = self._wanted(frames)
        return wanted - self._disk_frames()

    def require(self, frames: FrameSet | str | None = None) -> FrameSet:
        """Check that all of ``frames`` (default ``first..last``) are on disk and return them.

        Raises:
            InputError: some are missing; the message lists the missing frame numbers (compactly).
        """
        wanted = self._wanted(frames)
        gone = wanted - self._disk_frames()
        if gone:
            raise InputError(
                f"{len(gone)} of {len(wanted)} frames missing: {_compact(gone)}", path=self.hash_pattern
            )
        return wanted

    def _wanted(self, frames: FrameSet | str | None) -> FrameSet:
        if frames is None:
            rng = self.frame_range
            if rng is None:
                raise ValueError(f"sequence {self.hash_pattern} has no frame range; give frames or scan() it")
            if self.frames is not None and self.first is not None and self.last is not None:
                return FrameSet.from_range(self.first, self.last)
            return rng
        return FrameSet.parse(frames) if isinstance(frames, str) else frames

    def paths(self, frames: FrameSet | str | None = None) -> Iterator[tuple[int, Path]]:
        """``(frame, path)`` for each frame of ``frames`` (default: the frames present, else first..last)."""
        fs = (
            self.frame_range
            if frames is None
            else (FrameSet.parse(frames) if isinstance(frames, str) else frames)
        )
        if fs is None:
            raise ValueError(f"sequence {self.hash_pattern} has no frame range; give frames or scan() it")
        for f in fs:
            yield f, self.path(f)

    # ------------------------------------------------------------------ summaries and JSON
    def summary(self) -> str:
        """A few human-readable lines: pattern, range, count and gaps."""
        lines = [f"image sequence {self.hash_pattern}"]
        lines.append(
            f"  printf: {self.printf_pattern}   oiiotool: {self.oiio_pattern}   padding: {self.padding}"
        )
        if self.frames is not None and self.first is not None and self.last is not None:
            full = FrameSet.from_range(self.first, self.last)
            gaps = full - self.frames
            n, g = len(self.frames), len(gaps)
            lines.append(f"  frames: {_compact(self.frames)} ({n} file{'s' if n != 1 else ''})")
            lines.append(
                f"  missing: {_compact(gaps)} ({g} frame{'s' if g != 1 else ''})"
                if gaps
                else "  missing: none"
            )
        elif self.first is not None:
            lines.append(f"  range: {self.first}-{self.last} (not scanned)")
        else:
            lines.append("  range: unknown (not scanned)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``frames`` as range text or ``None``)."""
        return {
            "directory": str(self.directory),
            "prefix": self.prefix,
            "padding": self.padding,
            "suffix": self.suffix,
            "first": self.first,
            "last": self.last,
            "frames": None if self.frames is None else str(self.frames),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ImageSequence:
        """Inverse of :meth:`to_dict` (raises ValueError/KeyError on bad documents)."""
        frames = doc.get("frames")
        return cls(
            Path(str(doc["directory"])),
            str(doc["prefix"]),
            int(doc["padding"]),
            str(doc["suffix"]),
            None if doc.get("first") is None else int(doc["first"]),
            None if doc.get("last") is None else int(doc["last"]),
            None if frames is None else FrameSet.parse(str(frames)),
        )
