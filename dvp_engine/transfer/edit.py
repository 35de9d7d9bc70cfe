"""Quick edits for scripting: ``--set CHANNEL=VALUE[@RANGE]`` expressions turned into curve sets.

Syntax (one expression per ``--set``):

* ``head.ry=+10@1001-1050``: add 10 to ``head.ry`` on frames 1001-1050 (a leading ``+`` or ``-`` means an
  **offset**);
* ``gaze.left.x=5@1010``: set ``gaze.left.x`` to 5 on frame 1010 (no sign: an **override**);
* ``blink.left==-0.0`` / ``head.rx==-12``: ``==`` forces an override, for negative values;
* no ``@RANGE``: every frame of the track.

The channel must exist in the track (or be a named control ``face.*`` of the track); the error lists the
valid names.
"""

from __future__ import annotations

import re

from dvp_engine.core import Curve, CurveSet, FaceTrack, Key, apply_curves

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
