"""Quick edits for scripting: ``--set CHANNEL=VALUE[@RANGE]`` expressions turned into curve sets.

Syntax (one expression per ``--set``):

* ``head.ry=+10@1001-1050``: add 10 to ``head.ry`` on frames 1001-1050 (a leading ``+`` or ``-`` means an
  **offset**);
* ``gaze.left.x=5@1010``: set ``gaze.left.x`` to 5 on frame 1010 (no sign: an **override**);
* ``blink.left==-0.0`` / ``head.rx==-12``: ``==`` forces an override, for negative values;
* no ``@RANGE``: every frame of the track.

The channel must exist in the track (or be a named control ``face.*`` of the track); the error lists the
valid names.

Look-at (``--look-at X,Y[,DEPTH]@FIRST[-LAST]``, :func:`apply_look_at`): both eyes look at the point seen at
plate pixel ``(X, Y)`` (the track's image, pixel (0, 0)'s centre at (0, 0)) at camera-frame depth ``DEPTH``
metres (z: distance along the lens axis; negative = behind the lens). Without ``DEPTH`` the target is halfway
between the lens and the face (half of each frame's ``head.tz``), so the eyes follow the plate point. It sets
the ``look.x look.y look.z`` channels (camera frame, metres; created if absent) and ``look.weight`` = 1 on those
frames; ``--set look.weight=0.5@...`` blends it with the gaze curves afterwards.
"""

from __future__ import annotations

import re

import numpy as np

from dvp_engine.core import Curve, CurveSet, FaceTrack, Key, apply_curves, layout
from dvp_engine.core.gaze import plate_points_to_camera

_SET = re.compile(
    r"^\s*(?P<name>[A-Za-z_][\w.]*)\s*(?P<op>==|=)\s*(?P<value>[+-]?[0-9.eE+-]+)"
    r"\s*(?:@\s*(?P<a>-?\d+)(?:\s*-\s*(?P<b>-?\d+))?)?\s*$",
    re.ASCII,
)


def parse_set(expr: str, track: FaceTrack) -> tuple[str, Curve]:
    """Parse one ``--set`` expression against a track; ``ValueError`` quoting the text if malformed."""
    m = _SET.match(expr)
    if not m:
        raise ValueError(
            f"cannot parse --set {expr!r}: expected CHANNEL=VALUE[@FIRST[-LAST]], e.g. head.ry=+10@1001-1050"
        )
    raw = m["value"]
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"cannot parse --set {expr!r}: {raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"--set {expr!r}: value must be finite")
    offset = m["op"] == "=" and raw[0] in "+-"
    if m["a"] is None:
        first, last = int(track.frames[0]), int(track.frames[-1])
    else:
        first = int(m["a"])
        last = int(m["b"]) if m["b"] is not None else first
    if last < first:
        raise ValueError(f"--set {expr!r}: frame range end {last} is before its start {first}")
    return m["name"], Curve(
        [Key(float(first), value, "constant")], "offset" if offset else "override", (first, last)
    )


def apply_sets(track: FaceTrack, exprs: list[str]) -> FaceTrack:
    """Apply ``--set`` expressions in order (later ones see earlier ones' results)."""
    out = track
    for e in exprs:
        name, curve = parse_set(e, out)
        out = apply_curves(out, CurveSet({name: curve}))
    return out


_LOOK = re.compile(
    r"^\s*(?P<x>[+-]?[0-9.eE+-]+)\s*,\s*(?P<y>[+-]?[0-9.eE+-]+)\s*(?:,\s*(?P<d>[+-]?[0-9.eE+-]+))?"
    r"\s*(?:@\s*(?P<a>-?\d+)(?:\s*-\s*(?P<b>-?\d+))?)?\s*$"
)


def parse_look_at(expr: str, track: FaceTrack) -> tuple[float, float, float | None, int, int]:
    """Parse one ``--look-at X,Y[,DEPTH][@FIRST[-LAST]]``: ``(x px, y px, depth m or None, first, last)``."""
    m = _LOOK.match(expr)
    if not m:
        raise ValueError(
            f"cannot parse --look-at {expr!r}: expected X,Y[,DEPTH]@FIRST[-LAST] (plate pixels, metres), "
            "e.g. 640,360,0.5@1001-1050"
        )
    try:
        x, y = float(m["x"]), float(m["y"])
        depth = None if m["d"] is None else float(m["d"])
    except ValueError:
        raise ValueError(f"cannot parse --look-at {expr!r}: not a number") from None
    if not all(np.isfinite(v) for v in (x, y, 0.0 if depth is None else depth)):
        raise ValueError(f"--look-at {expr!r}: values must be finite")
    if m["a"] is None:
        first, last = int(track.frames[0]), int(track.frames[-1])
    else:
        first = int(m["a"])
        last = int(m["b"]) if m["b"] is not None else first
    if last < first:
        raise ValueError(f"--look-at {expr!r}: frame range end {last} is before its start {first}")
    return x, y, depth, first, last


def apply_look_at(track: FaceTrack, exprs: list[str]) -> FaceTrack:
    """Apply ``--look-at`` expressions in order (see the module docstring); the track's frames in each range
    get the target and ``look.weight`` 1. The target is checked when the track is rendered (a target behind
    the face is an error naming the frame)."""
    if not exprs:
        return track
    out = track.replace()
    n = out.n_frames
    for name in layout.LOOK_AT:
        out.channels.setdefault(name, np.zeros(n, np.float32))
    fx, fy, cx, cy = out.intrinsics
    for e in exprs:
        x, y, depth, first, last = parse_look_at(e, out)
        rows = np.flatnonzero((out.frames >= first) & (out.frames <= last))
        if rows.size == 0:
            raise ValueError(
                f"--look-at {e!r}: no frame of the track in {first}-{last} "
                f"(track holds {int(out.frames[0])}-{int(out.frames[-1])})"
            )
        z = (
            0.5 * out.channels["head.tz"][rows].astype(np.float64)
            if depth is None
            else np.full(rows.size, depth)
        )
        if (z == 0.0).any():
            raise ValueError(f"--look-at {e!r}: a depth of 0 is the lens itself; give a distance in metres")
        # z < 0 (behind the lens) is allowed: the plate point's ray extended back through the lens
        pts = plate_points_to_camera(x, y, z, (fx, fy, cx, cy), [int(f) for f in out.frames[rows]])
        for name, col in zip(layout.LOOK_AT[:3], pts.T, strict=True):
            out.channels[name][rows] = col
        out.channels[layout.LOOK_AT[3]][rows] = 1.0
    return out
