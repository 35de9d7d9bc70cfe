"""Retiming tracks: resample channels at fractional source frames (speed ramps, holds, rate changes).

All functions are numpy-only and return new :class:`FaceTrack` objects. Channels are interpolated linearly
between neighbouring source frames (angles in degrees, which is exact enough for the small steps between
frames); ``track.valid`` takes the worse of the two neighbours, so a lost frame is never interpolated away.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import numpy.typing as npt

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.curves import Curve


def sample_track(track: FaceTrack, source_frames: npt.ArrayLike) -> dict[str, npt.NDArray[np.float32]]:
    """Channels of ``track`` at fractional frame numbers ``(N,)``, held beyond the ends.

    Gaps in the track (missing frame numbers) are bridged linearly between the frames that exist.
    """
    t = np.asarray(source_frames, dtype=np.float64).reshape(-1)
    if track.n_frames == 0:
        raise ValueError("cannot sample an empty track")
    x = track.frames.astype(np.float64)
    out: dict[str, npt.NDArray[np.float32]] = {}
    for name, values in track.channels.items():
        if name == layout.VALID:
            lo = np.clip(np.searchsorted(x, t, side="right") - 1, 0, len(x) - 1)
            hi = np.clip(lo + (t > x[lo]).astype(np.int64), 0, len(x) - 1)
            out[name] = np.minimum(values[lo], values[hi]).astype(np.float32)
        else:
            out[name] = np.interp(t, x, values.astype(np.float64)).astype(np.float32)
    return out


def retime(
    track: FaceTrack,
    source_frames: npt.ArrayLike,
    *,
    first: int | None = None,
    rate: Fraction | int | None = None,
) -> FaceTrack:
    """A new track whose output frame ``first + i`` shows the source at fractional frame ``source_frames[i]``.

    Args:
        track: the source track.
        source_frames: ``(N,)`` source frame numbers (fractional allowed) for each output frame.
        first: first output frame number (default: the track's first frame).
        rate: output frame rate (default: the track's).

    Returns:
        A track with N consecutive frames; exact at integer source frames that exist in ``track``.
    """
    t = np.asarray(source_frames, dtype=np.float64).reshape(-1)
    start = int(track.frames[0]) if first is None else int(first)
    return track.replace(
        frames=np.arange(start, start + len(t), dtype=np.int64),
        channels=sample_track(track, t),
        rate=track.rate if rate is None else Fraction(rate),
        metadata={**track.metadata, "retimed": True},
    )


def speed_ramp(track: FaceTrack, speed: Curve | float, *, n_frames: int | None = None) -> FaceTrack:
    """Play the track at a speed (constant or a curve over output frames; 1 = real time, 0.5 = half speed).

    The source position integrates the speed: ``s(f+1) = s(f) + speed(f)``, starting at the first frame.
    Output length defaults to what reaches the track's last frame.
    """
    first = int(track.frames[0])
    last = float(track.frames[-1])
    positions = [float(first)]
    limit = n_frames if n_frames is not None else 1_000_000
    frame = first
    while len(positions) < limit:
        v = float(speed.sample([frame])[0]) if isinstance(speed, Curve) else float(speed)
        if v < 0:
            raise ValueError(f"speed must be >= 0, got {v} at output frame {frame}")
        nxt = positions[-1] + v
        if n_frames is None and (nxt > last + 1e-9 or v == 0):
            break
        positions.append(nxt)
        frame += 1
    return retime(track, np.array(positions), first=first)


def hold(track: FaceTrack, at: int, count: int) -> FaceTrack:
    """Insert ``count`` extra copies of frame ``at`` (a freeze), shifting later frames; the length grows."""
    if count < 0:
        raise ValueError(f"hold count must be >= 0, got {count}")
    i = track.index_of(at)
    src = np.concatenate([track.frames[: i + 1], np.full(count, at), track.frames[i + 1 :]]).astype(
        np.float64
    )
    return retime(track, src, first=int(track.frames[0]))


def change_rate(track: FaceTrack, rate: Fraction | int, *, first: int | None = None) -> FaceTrack:
    """Resample to another frame rate, keeping real time: output frame k is at time k / rate."""
    new_rate = Fraction(rate)
    f0 = int(track.frames[0])
    duration = float((track.frames[-1] - f0) / track.rate)
    n = int(np.floor(duration * float(new_rate) + 1e-9)) + 1
    times = np.arange(n) / float(new_rate)
    return retime(track, f0 + times * float(track.rate), first=f0 if first is None else first, rate=new_rate)
