"""Movie files through PyAV, and a uniform frame source for movies and image sequences.

Frame numbering for movies: the first decoded frame is number ``first_frame`` (default **1**), the next
``first_frame + 1`` and so on, in presentation order. So ``--frames 101-110`` on a movie means its 101st to
110th frames. Image sequences keep the numbers in their file names. A FaceTrack made from a movie carries
these numbers.

Seeking (:meth:`Video.read` with a frame range) is accurate: it seeks to the keyframe at or before the first
wanted frame, decodes forward and drops frames before it, identifying each frame by its timestamp relative to
the first frame's (constant frame rate assumed; a stream without timestamps, or a seek that lands past the
wanted frame, decodes from the start). Reading from the first frame numbers frames by decode order.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import av
import numpy as np
import numpy.typing as npt

from dvp_engine.core.atomic import atomic_path
from dvp_engine.core.errors import DvpError, InputError
from dvp_engine.core.frames import FrameSet
from dvp_engine.core.sequence import MOVIE_SUFFIXES, ImageSequence, is_pattern

__all__ = ["MOVIE_SUFFIXES", "Video", "open_video", "read_frames", "write_video"]

log = logging.getLogger(__name__)


def _frames_arg(frames: FrameSet | str | Iterable[int] | None) -> FrameSet | None:
    if frames is None or isinstance(frames, FrameSet):
        return frames
    if isinstance(frames, str):
        return FrameSet.parse(frames)
    return FrameSet(frames)


class Video:
    """An open movie file (use :func:`open_video`; close it, or use it as a context manager).

    Attributes:
        path: the file.
        n_frames: number of video frames (from the container, else counted by demuxing).
        rate: frames per second as a fraction (e.g. ``Fraction(25)``, ``Fraction(30000, 1001)``).
        width, height: frame size in pixels; ``size`` is ``(width, height)``.
        first_frame: the frame number of the first frame (default 1).
        codec: the video codec name.
    """

    def __init__(self, path: Path, first_frame: int = 1) -> None:
        self.path = path
        self.first_frame = int(first_frame)
        try:
            self._container: Any = av.open(str(path), mode="r")
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise InputError(f"not a readable movie ({exc})", path=path) from exc
        if not self._container.streams.video:
            self._container.close()
            raise InputError("not a movie: the file has no video stream", path=path)
        stream = self._container.streams.video[0]
        self._stream: Any = stream
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            self._container.close()
            raise InputError("movie has no frame rate", path=path)
        self.rate = Fraction(rate)
        self.width = int(stream.codec_context.width)
        self.height = int(stream.codec_context.height)
        if self.width <= 0 or self.height <= 0:
            self._container.close()
            raise InputError("not a movie: the video stream has no frame size", path=path)
        self.codec = str(stream.codec_context.name)
        self._time_base = Fraction(stream.time_base) if stream.time_base else None
        self._start_pts = int(stream.start_time or 0)
        self._calibrated = False
        listed = int(stream.frames or 0)
        self.n_frames = self._check_listed(listed) if listed else self._count_frames()
        if self.n_frames <= 0:
            self._container.close()
            raise InputError("not a movie: no video frames", path=path)

    # ------------------------------------------------------------------ basics
    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return self.width, self.height

    @property
    def frames(self) -> FrameSet:
        """All frame numbers: ``first_frame .. first_frame + n_frames - 1``."""
        return FrameSet.from_range(self.first_frame, self.first_frame + self.n_frames - 1)

    def _check_listed(self, listed: int) -> int:
        """``listed`` (the container's frame count) if the file really holds data up to the last frame, else
        the frames actually there: a movie cut short (e.g. a faststart MP4, whose index comes first, copied
        halfway) lists every frame it was meant to have. Checked by demuxing from the last frame's keyframe."""
        if self._time_base is None:
            return listed
        try:
            target = self._start_pts + int(math.floor((listed - 1) / self.rate / self._time_base))
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
            last = None
            for packet in self._container.demux(self._stream):
                if packet.size and packet.pts is not None:
                    last = packet.pts if last is None else max(last, packet.pts)
            self._container.seek(0)
        except av.error.FFmpegError:
            return self._count_frames()
        if last is not None and round((last - self._start_pts) * self._time_base * self.rate) >= listed - 1:
            return listed
        n = self._count_frames()
        log.warning("%s: the container lists %d frames but holds %d (cut short?)", self.path, listed, n)
        return n

    def _count_frames(self) -> int:
        n = 0
        try:
            for packet in self._container.demux(self._stream):
                if packet.size:
                    n += 1
            self._container.seek(0)
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot read movie ({exc})", path=self.path) from exc
        return n

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> Video:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def summary(self) -> str:
        """Human-readable lines: size, rate, frame count and numbering."""
        secs = float(self.n_frames / self.rate)
        return "\n".join(
            [
                f"movie {self.path} ({self.codec})",
                f"  size: {self.width}x{self.height}, rate: {self.rate} fps ({float(self.rate):.3f}), "
                f"{self.n_frames} frame{'s' if self.n_frames != 1 else ''} ({secs:.2f} s)",
                f"  frame numbers: {self.frames}",
            ]
        )

    # ------------------------------------------------------------------ decoding
    def _index_of(self, frame: Any, fallback: int) -> int:
        pts = frame.pts
        if pts is None or self._time_base is None:
            return fallback
        return int(round((pts - self._start_pts) * self._time_base * self.rate))

    def _calibrate(self) -> None:
        """Take the first frame's timestamp as index 0 (containers may offset it from ``start_time``)."""
        if self._calibrated:
            return
        self._calibrated = True
        self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        first = next(self._container.decode(self._stream), None)
        if first is not None and first.pts is not None:
            self._start_pts = int(first.pts)

    def _decode_from(self, index: int) -> Iterator[tuple[int, Any]]:
        """Decoded frames ``(0-based index, av.VideoFrame)`` starting at or before ``index``.

        From the start, frames are numbered by decode count (robust to variable frame rate); after a
        seek, by timestamp (constant frame rate assumed).
        """
        self._calibrate()
        if index > 0 and self._time_base is not None:
            target = self._start_pts + int(math.floor(index / self.rate / self._time_base))
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
            it = self._container.decode(self._stream)
            first = next(it, None)
            if first is not None and first.pts is not None and self._index_of(first, 0) <= index:
                yield self._index_of(first, 0), first
                for fr in it:
                    yield self._index_of(fr, -1), fr
                return
            log.debug("%s: seek overshot frame %d; decoding from the start", self.path, index)
        self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        count = 0
        for fr in self._container.decode(self._stream):
            yield count, fr
            count += 1

    def read(
        self, frames: FrameSet | str | Iterable[int] | None = None
    ) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
        """Decode lazily: yields ``(frame_number, rgb)`` with ``rgb`` ``(H, W, 3)`` uint8 sRGB-encoded.

        Args:
            frames: frame numbers to yield (default: all). Frames are decoded forward from the keyframe
                before the first wanted frame; a gap of more than a second in the wanted frames seeks again.

        Raises:
            InputError: a wanted frame is outside the movie (raised by the call itself), or decoding
                fails (raised while iterating; file and frame named).
        """
        fs = _frames_arg(frames)
        wanted = self.frames if fs is None else fs
        outside = wanted - self.frames
        if outside:
            raise InputError(f"frames {outside} are outside the movie's frames {self.frames}", path=self.path)
        return self._read([f - self.first_frame for f in wanted])

    def _read(self, indices: list[int]) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
        pos = 0
        gap = max(1, int(math.ceil(self.rate)))
        try:
            while pos < len(indices):
                start = indices[pos]
                last_idx = None
                for idx, fr in self._decode_from(start):
                    last_idx = idx
                    if idx < indices[pos]:
                        continue
                    if indices[pos] < idx:
                        raise InputError(
                            f"frame {indices[pos] + self.first_frame} not found while decoding",
                            path=self.path,
                            frame=indices[pos] + self.first_frame,
                        )
                    if idx == indices[pos]:
                        yield idx + self.first_frame, fr.to_ndarray(format="rgb24")
                        pos += 1
                        if pos >= len(indices):
                            return
                        if indices[pos] - idx > gap:
                            break  # seek again rather than decode through a long gap
                else:
                    missing = indices[pos] + self.first_frame
                    raise InputError(
                        f"movie ended before frame {missing} (last decoded index {last_idx})",
                        path=self.path,
                        frame=missing,
                    )
        except av.error.FFmpegError as exc:
            frame_no = indices[pos] + self.first_frame if pos < len(indices) else None
            raise InputError(f"cannot decode movie ({exc})", path=self.path, frame=frame_no) from exc

    def __iter__(self) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
        return self.read()

    def __len__(self) -> int:
        return self.n_frames


def open_video(path: str | os.PathLike[str], *, first_frame: int = 1) -> Video:
    """Open a movie file for reading (see :class:`Video`).

    Raises:
        InputError: missing file, a folder, or not a movie (the message names the file).
    """
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", path=p)
    if p.is_dir():
        raise InputError("is a folder, not a movie", path=p)
    return Video(p, first_frame=first_frame)


def _to_display_rgb(pixels: npt.NDArray[np.float32], linear: bool) -> npt.NDArray[np.float32]:
    c = pixels.shape[2]
    if c == 1 or c == 2:
        rgb = np.repeat(pixels[:, :, :1], 3, axis=2)
    else:
        rgb = pixels[:, :, :3]
    if linear:
        from .colour import acescg_to_srgb_display

        rgb = acescg_to_srgb_display(rgb)
    return np.ascontiguousarray(np.clip(rgb, 0.0, 1.0), dtype=np.float32)


def read_frames(
    source: str | os.PathLike[str] | ImageSequence,
    frames: FrameSet | str | Iterable[int] | None = None,
    *,
    first_frame: int = 1,
    linear: bool | None = None,
    on_missing: Literal["error", "skip"] = "error",
    on_error: Callable[[DvpError], None] | None = None,
) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
    """A uniform frame source: yields ``(frame_number, rgb)`` with ``rgb`` ``(H, W, 3)`` float32
    sRGB-encoded display-referred values in [0, 1].

    Args:
        source: a movie file, an image-sequence pattern (``plate/wda.####.png``, ``%04d``) or an
            :class:`ImageSequence`.
        frames: frame numbers to read (default all). Movies number their frames from ``first_frame``.
        first_frame: the number of a movie's first frame (default 1; ignored for image sequences).
        linear: whether image-sequence pixels are scene-linear ACEScg (converted to sRGB through OCIO).
            Default: True for float formats (EXR), False for integer formats (PNG, JPEG, TIFF, DPX), which
            are taken as sRGB-encoded. One-channel images become grey RGB; alpha is dropped; values are
            clipped to [0, 1].
        on_missing, on_error: for image sequences, as in :func:`dvp_engine.io.images.read_sequence`:
            ``on_missing="skip"`` reads the frames that exist; ``on_error`` receives each unreadable frame's
            :class:`InputError` (``.frame`` set) and reading goes on. For a movie, ``on_error`` receives each
            frame that fails to decode and reading goes on from the next wanted frame; without it, it raises.

    Raises:
        InputError: missing file or frames (listed by number), not a movie, frames outside the movie: raised
            by the call itself, before any decoding; an unreadable frame: raised while iterating.
    """
    fs = _frames_arg(frames)
    if isinstance(source, ImageSequence) or is_pattern(source):
        return _sequence_frames(source, fs, linear, on_missing, on_error)
    p = Path(source)
    if p.suffix.lower() not in MOVIE_SUFFIXES and p.exists():
        # a frame of a sequence: read the whole sequence
        return _sequence_frames(ImageSequence.find(p), fs, linear, on_missing, on_error)
    return _movie_frames(p, fs, first_frame, on_error)


def _movie_frames(
    path: Path,
    frames: FrameSet | None,
    first_frame: int,
    on_error: Callable[[DvpError], None] | None = None,
) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
    video = open_video(path, first_frame=first_frame)  # errors (not a movie, bad range) raise now
    try:
        wanted = video.frames if frames is None else frames
        frames_iter = video.read(wanted)
    except BaseException:
        video.close()
        raise
    return _unit_frames(video, frames_iter, list(wanted), on_error)


def _unit_frames(
    video: Video,
    frames_iter: Iterator[tuple[int, npt.NDArray[np.uint8]]],
    wanted: list[int],
    on_error: Callable[[DvpError], None] | None,
) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
    """The frames as floats; with ``on_error`` a frame that fails to decode is reported and skipped, and
    decoding goes on from the next wanted frame (a seek), so ``--skip-bad-frames`` skips, not stops."""
    try:
        while True:
            try:
                for f, rgb in frames_iter:
                    yield f, rgb.astype(np.float32) * np.float32(1.0 / 255.0)
                return
            except InputError as exc:
                if on_error is None or exc.frame is None:
                    raise
                on_error(exc)
                rest = [f for f in wanted if f > exc.frame]
                if not rest:
                    return
                wanted = rest
                frames_iter = video.read(rest)
    finally:
        video.close()


def _sequence_frames(
    source: str | os.PathLike[str] | ImageSequence,
    frames: FrameSet | None,
    linear: bool | None,
    on_missing: Literal["error", "skip"],
    on_error: Callable[[DvpError], None] | None,
) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
    from .images import read_sequence

    src = source if isinstance(source, ImageSequence) else os.fspath(source)
    # read_sequence checks missing frames now, before any decoding
    return _display_frames(read_sequence(src, frames, on_missing=on_missing, on_error=on_error), linear)


def _display_frames(
    it: Iterator[tuple[int, npt.NDArray[np.float32], dict[str, Any]]], linear: bool | None
) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
    for f, pixels, meta in it:
        is_float = str(meta.get("oiio:format")) in ("half", "float", "double")
        yield f, _to_display_rgb(pixels, linear if linear is not None else is_float)


def _pick_codec(path: Path) -> str:
    if path.suffix.lower() in (".mp4", ".mov", ".mkv", ".m4v"):
        for name in ("libx264", "h264", "mpeg4"):
            try:
                av.codec.Codec(name, "w")
            except (av.error.FFmpegError, ValueError, av.codec.codec.UnknownCodecError):
                continue
            return name
    return "mpeg4"


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[npt.ArrayLike],
    rate: Fraction | int | float | str,
    *,
    codec: str | None = None,
    crf: int = 18,
) -> Path:
    """Write a preview movie (MP4) atomically from RGB frames.

    Args:
        path: destination, e.g. ``preview.mp4``.
        frames: ``(H, W, 3)`` frames, uint8 or floats in [0, 1] (sRGB-encoded, clipped); all the same size.
            Odd sizes are padded by one edge pixel (yuv420p needs even sizes).
        rate: frames per second (``Fraction(25)``, ``"30000/1001"``).
        codec: default libx264 when PyAV's FFmpeg has it, else mpeg4.
        crf: libx264 quality (lower is better; 18 is visually lossless).

    Returns:
        The destination path.

    Raises:
        DvpError: unwritable folder, encoder failure, no frames (the file is named).
        ValueError: a frame of the wrong shape or size.
    """
    dest = Path(path)
    fps = Fraction(rate).limit_denominator(1001 * 1000) if not isinstance(rate, Fraction) else rate
    if fps <= 0:
        raise ValueError(f"{dest}: frame rate must be > 0, got {rate}")
    name = codec or _pick_codec(dest)
    n = 0
    with atomic_path(dest) as tmp:
        try:
            container: Any = av.open(str(tmp), mode="w", format=None)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise DvpError(f"cannot create movie ({exc})", path=dest) from exc
        try:
            stream: Any = None
            size: tuple[int, int] | None = None
            for i, frame in enumerate(frames):
                arr = np.asarray(frame)
                if arr.ndim != 3 or arr.shape[2] != 3:
                    raise ValueError(f"{dest}: frame {i} must be (H, W, 3), got {arr.shape}")
                if arr.dtype != np.uint8:
                    arr = (np.clip(np.asarray(arr, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
                if size is None:
                    size = (arr.shape[1], arr.shape[0])
                    stream = container.add_stream(name, rate=fps)
                    stream.width = size[0] + size[0] % 2
                    stream.height = size[1] + size[1] % 2
                    stream.pix_fmt = "yuv420p"
                    if name == "libx264":
                        stream.options = {"crf": str(crf), "preset": "fast"}
                    elif name == "mpeg4":
                        stream.codec_context.bit_rate = 8_000_000
                elif (arr.shape[1], arr.shape[0]) != size:
                    raise ValueError(
                        f"{dest}: frame {i} is {arr.shape[1]}x{arr.shape[0]}, expected {size[0]}x{size[1]}"
                    )
                if arr.shape[0] % 2 or arr.shape[1] % 2:
                    arr = np.pad(arr, ((0, arr.shape[0] % 2), (0, arr.shape[1] % 2), (0, 0)), mode="edge")
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
                for packet in stream.encode(vf):
                    container.mux(packet)
                n += 1
            if stream is None:
                raise DvpError("no frames to write", path=dest)
            for packet in stream.encode():
                container.mux(packet)
        except av.error.FFmpegError as exc:
            raise DvpError(f"cannot encode movie ({exc})", path=dest, frame=n) from exc
        finally:
            container.close()
    return dest
