"""Curve files: keyframed edits of track channels, sampled per frame and applied over a FaceTrack.

A curve file is JSON::

    {"schema": "DVPCurves.1",
     "channels": {
        "gaze.left.x": {"mode": "override", "keys": [
            {"frame": 1010, "value": 0.0, "interp": "smooth"},
            {"frame": 1040, "value": 12.5, "interp": "linear"}]},
        "head.ry": {"mode": "offset", "range": [1001, 1050], "keys": [{"frame": 1001, "value": 10.0}]}}}

* ``mode``: ``override`` replaces the track's values, ``offset`` adds to them.
* ``keys``: strictly increasing frames; ``interp`` is the interpolation of the segment *leaving* the key:
  ``constant`` (step), ``linear``, ``smooth`` (cubic Hermite with Catmull-Rom slopes, the default) or
  ``bezier`` (cubic Hermite with the key's ``out_slope`` and the next key's ``in_slope``, value units per
  frame; a missing slope falls back to the smooth one).
* ``range``: ``[first, last]`` frames the curve acts on (default: first key to last key). Before the first
  key and after the last, the curve holds the end values. Frames outside the range are left alone.
* Channel units are those of :mod:`dvp_engine.core.layout` (degrees for angles). Named controls ``face.*``
  act on the expression coefficients through the track's control directions (see :func:`apply_curves`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from . import layout
from .atomic import write_text_atomic
from .errors import InputError, SchemaError
from .track import FaceTrack

SCHEMA: Final = "DVPCurves.1"
Interp = Literal["constant", "linear", "smooth", "bezier"]
INTERPOLATIONS: Final[tuple[str, ...]] = ("constant", "linear", "smooth", "bezier")
MODES: Final[tuple[str, ...]] = ("override", "offset")


@dataclass(frozen=True)
class Key:
    """One keyframe: ``frame`` (may be fractional after a retime), ``value`` in channel units."""

    frame: float
    value: float
    interp: str = "smooth"
    in_slope: float | None = None
    out_slope: float | None = None


@dataclass
class Curve:
    """Keys of one channel plus how they combine with the track."""

    keys: list[Key]
    mode: str = "override"
    range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a curve needs at least one key")
        if self.mode not in MODES:
            raise ValueError(f"curve mode must be one of {MODES}, got {self.mode!r}")
        frames = [k.frame for k in self.keys]
        if any(b <= a for a, b in zip(frames, frames[1:], strict=False)):
            raise ValueError(f"curve key frames must be strictly increasing, got {frames}")
        for k in self.keys:
            if k.interp not in INTERPOLATIONS:
                raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {k.interp!r}")
            for label, v in (
                ("frame", k.frame),
                ("value", k.value),
                ("in_slope", k.in_slope),
                ("out_slope", k.out_slope),
            ):
                if v is not None and not math.isfinite(v):
                    raise ValueError(f"key at frame {k.frame} has a non-finite {label} ({v})")
        if self.range is not None and self.range[1] < self.range[0]:
            raise ValueError(f"curve range end {self.range[1]} is before its start {self.range[0]}")

    @property
    def active_range(self) -> tuple[float, float]:
        """Frames the curve acts on, inclusive."""
        if self.range is not None:
            return float(self.range[0]), float(self.range[1])
        return self.keys[0].frame, self.keys[-1].frame

    def _smooth_slopes(self) -> npt.NDArray[np.float64]:
        f = np.array([k.frame for k in self.keys], dtype=np.float64)
        v = np.array([k.value for k in self.keys], dtype=np.float64)
        n = len(f)
        m = np.zeros(n)
        if n >= 2:
            m[0] = (v[1] - v[0]) / (f[1] - f[0])
            m[-1] = (v[-1] - v[-2]) / (f[-1] - f[-2])
            if n > 2:
                m[1:-1] = (v[2:] - v[:-2]) / (f[2:] - f[:-2])
        return m

    def sample(self, frames: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Evaluate the curve at frame numbers ``(N,)``; exact at keys, held beyond the ends."""
        t = np.asarray(frames, dtype=np.float64).reshape(-1)
        f = np.array([k.frame for k in self.keys], dtype=np.float64)
        v = np.array([k.value for k in self.keys], dtype=np.float64)
        out = np.empty_like(t)
        out[t <= f[0]] = v[0]
        out[t >= f[-1]] = v[-1]
        if len(f) == 1:
            return out
        smooth = self._smooth_slopes()
        seg = np.clip(np.searchsorted(f, t, side="right") - 1, 0, len(f) - 2)
        inside = (t > f[0]) & (t < f[-1])
        for i in np.unique(seg[inside]):
            sel = inside & (seg == i)
            k0, k1 = self.keys[i], self.keys[i + 1]
            h = k1.frame - k0.frame
            u = (t[sel] - k0.frame) / h
            if k0.interp == "constant":
                out[sel] = k0.value
            elif k0.interp == "linear":
                out[sel] = k0.value + u * (k1.value - k0.value)
            else:
                m0 = smooth[i] if (k0.interp == "smooth" or k0.out_slope is None) else k0.out_slope
                m1 = smooth[i + 1] if (k0.interp == "smooth" or k1.in_slope is None) else k1.in_slope
                h00 = 2 * u**3 - 3 * u**2 + 1
                h10 = u**3 - 2 * u**2 + u
                h01 = -2 * u**3 + 3 * u**2
                h11 = u**3 - u**2
                out[sel] = h00 * k0.value + h10 * h * m0 + h01 * k1.value + h11 * h * m1
        return out


@dataclass
class CurveSet:
    """Curves by channel name, the in-memory form of a curve file."""

    curves: dict[str, Curve] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def validate_names(self, valid: tuple[str, ...] | None = None) -> None:
        """Raise ``KeyError`` naming the first unknown channel and listing the valid ones."""
        for name in self.curves:
            known = name in valid if valid is not None else layout.is_known_channel(name)
            if not known:
                raise KeyError(layout.unknown_channel_message(name, valid))

    def to_json(self) -> dict[str, Any]:
        """The JSON document (a dict)."""
        chans: dict[str, Any] = {}
        for name, c in self.curves.items():
            keys = []
            for k in c.keys:
                d: dict[str, Any] = {"frame": k.frame, "value": k.value, "interp": k.interp}
                if k.in_slope is not None:
                    d["in_slope"] = k.in_slope
                if k.out_slope is not None:
                    d["out_slope"] = k.out_slope
                keys.append(d)
            entry: dict[str, Any] = {"mode": c.mode, "keys": keys}
            if c.range is not None:
                entry["range"] = list(c.range)
            chans[name] = entry
        return {"schema": SCHEMA, "channels": chans, "metadata": self.metadata}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], *, path: str | Path | None = None) -> CurveSet:
        """Parse a curve document; :class:`SchemaError` or :class:`InputError` name the channel and key."""
        if doc.get("schema") != SCHEMA:
            raise SchemaError(
                f"unknown curve schema {doc.get('schema')!r}: this dvp reads {SCHEMA}", path=path
            )
        chans = doc.get("channels")
        if not isinstance(chans, Mapping):
            raise SchemaError("curve file has no 'channels' object", path=path)
        curves: dict[str, Curve] = {}
        for name, entry in chans.items():
            try:
                keys = [
                    Key(
                        frame=float(k["frame"]),
                        value=float(k["value"]),
                        interp=str(k.get("interp", "smooth")),
                        in_slope=None if k.get("in_slope") is None else float(k["in_slope"]),
                        out_slope=None if k.get("out_slope") is None else float(k["out_slope"]),
                    )
                    for k in entry["keys"]
                ]
                rng = entry.get("range")
                curves[name] = Curve(
                    keys=keys,
                    mode=str(entry.get("mode", "override")),
                    range=None if rng is None else (int(rng[0]), int(rng[1])),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"channel {name!r}: bad curve ({exc})", path=path) from exc
        return cls(curves=curves, metadata=dict(doc.get("metadata", {})))

    def save(self, path: str | Path) -> Path:
        """Write the curve file atomically (JSON, NaN refused)."""
        write_text_atomic(path, json.dumps(self.to_json(), indent=1, allow_nan=False) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> CurveSet:
        """Read a curve file; NaN/inf values and malformed JSON get errors naming the file."""
        src = Path(path)
        if not src.is_file():
            raise InputError("curve file not found", path=src)

        def _reject(token: str) -> float:
            raise InputError(f"curve file holds {token}, which is not a number", path=src)

        try:
            doc = json.loads(src.read_text("utf-8"), parse_constant=_reject)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"curve file is not valid JSON ({exc})", path=src) from exc
        if not isinstance(doc, dict):
            raise SchemaError("curve file must hold a JSON object", path=src)
        return cls.from_json(doc, path=src)


def control_directions(track: FaceTrack) -> dict[str, npt.NDArray[np.float64]]:
    """Named expression controls stored in the track's metadata: name -> ``(64,)`` direction.

    The tracker copies the face model's ``control_names``/``control_matrix`` into
    ``metadata["controls"] = {"names": [...], "matrix": [[...64 floats], ...]}``.
    """
    ctrl = track.metadata.get("controls")
    if not ctrl:
        return {}
    matrix = np.asarray(ctrl["matrix"], dtype=np.float64)
    return {str(n): matrix[i] for i, n in enumerate(ctrl["names"])}


def control_values(track: FaceTrack, name: str) -> npt.NDArray[np.float64]:
    """Value of a named control per frame: the projection coefficient of the expression on its direction."""
    dirs = control_directions(track)
    if name not in dirs:
        raise KeyError(f"named control {name!r} not in this track; it has {sorted(dirs) or 'none'}")
    d = dirs[name]
    expr = np.stack([track.channels[c] for c in layout.EXPRESSION], axis=1).astype(np.float64)
    return np.asarray(expr @ d / float(d @ d), dtype=np.float64)


def apply_curves(track: FaceTrack, curves: CurveSet) -> FaceTrack:
    """Apply a curve set over a track, returning a new track.

    For each curve, on the track frames inside its active range, ``override`` sets the channel to the
    sampled value and ``offset`` adds it. A named control ``face.X`` moves the expression coefficients
    along its direction ``d``: ``expr += (target - current) * d`` (override) or ``expr += value * d``
    (offset), with ``current`` from :func:`control_values`. Keying a look-at channel (``look.*``) on a track
    without them creates all four (0, weight 0) first. Unknown channels raise ``KeyError`` listing the valid
    names.
    """
    valid = tuple(track.channels) + tuple(control_directions(track)) + layout.LOOK_AT
    curves.validate_names(valid)
    out = track.replace()
    for name in layout.LOOK_AT:  # the look-at channels are optional: keying one creates them (weight 0)
        if name in curves.curves and name not in out.channels:
            for n in layout.LOOK_AT:
                out.channels.setdefault(n, np.zeros(out.n_frames, np.float32))
    frames = out.frames.astype(np.float64)
    for name, curve in curves.curves.items():
        lo, hi = curve.active_range
        sel = (frames >= lo) & (frames <= hi)
        if not sel.any():
            continue
        values = curve.sample(frames[sel])
        if name in out.channels:
            col = out.channels[name].astype(np.float64)
            col[sel] = values if curve.mode == "override" else col[sel] + values
            out.channels[name] = col.astype(np.float32)
            continue
        d = control_directions(out)[name]
        amount = values - control_values(out, name)[sel] if curve.mode == "override" else values
        for j, cname in enumerate(layout.EXPRESSION):
            col = out.channels[cname].astype(np.float64)
            col[sel] += amount * d[j]
            out.channels[cname] = col.astype(np.float32)
    out.validate()
    return out


def curves_from_track(
    track: FaceTrack, channels: list[str] | None = None, *, interp: Interp = "linear"
) -> CurveSet:
    """A curve set with one ``override`` key per tracked frame for each channel (hosts' bulk export form)."""
    names = channels if channels is not None else list(track.channels)
    curves: dict[str, Curve] = {}
    for name in names:
        values = track.channel(name)
        keys = [Key(float(f), float(v), interp) for f, v in zip(track.frames, values, strict=True)]
        curves[name] = Curve(keys=keys, mode="override")
    return CurveSet(curves=curves)
