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
* ``controls``: what ``face.*`` values mean, ``"least-squares"`` (:mod:`dvp_engine.core.controls`): every
  file this dvp writes records it. A file without it (written before it was recorded) is read only if its
  ``face.*`` curves are all offsets, which meant the same then; ``face.*`` overrides there meant projections
  applied one after another and are refused with a request to re-export.
* Values and slopes are limited to :data:`dvp_engine.core.layout.VALUE_LIMITS` by the channel's unit (3600
  degrees, 1000 m, 10,000 for 0-1 channels and coefficients); key frames to +-999,999,999. A value beyond is
  refused with an error naming the channel and key (:func:`check_limits`).
* ``metadata`` (optional) is a JSON object of free facts.
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

from . import controls as _controls
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
    controls: str = _controls.SEMANTICS
    """What the ``face.*`` curves' values mean (:data:`dvp_engine.core.controls.SEMANTICS`)."""

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
        return {"schema": SCHEMA, "controls": self.controls, "channels": chans, "metadata": self.metadata}

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
                if rng is not None and len(rng) != 2:
                    raise ValueError(f"range must be [first, last], got {rng!r}")
                curves[name] = Curve(
                    keys=keys,
                    mode=str(entry.get("mode", "override")),
                    range=None if rng is None else (int(rng[0]), int(rng[1])),
                )
                if layout.is_known_channel(name):
                    check_limits(name, curves[name])
            except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
                raise InputError(f"channel {name!r}: bad curve ({exc})", path=path) from exc
        metadata = doc.get("metadata", {})
        if not isinstance(metadata, Mapping):
            raise SchemaError(
                f"curve file 'metadata' must be a JSON object, not {type(metadata).__name__}", path=path
            )
        semantics = doc.get("controls")
        if semantics is None:
            overridden = [n for n, c in curves.items() if n.startswith("face.") and c.mode == "override"]
            if overridden:
                raise SchemaError(
                    f"curve file has no 'controls' field and overrides named controls ({', '.join(overridden)}): "
                    "it was written by an older dvp whose face.* values meant something else; re-export it",
                    path=path,
                )
            semantics = _controls.SEMANTICS
        if semantics not in _controls.KNOWN_SEMANTICS:
            raise SchemaError(
                f"curve file's 'controls' is {semantics!r}: this dvp reads {', '.join(_controls.KNOWN_SEMANTICS)}",
                path=path,
            )
        return cls(curves=curves, metadata=dict(metadata), controls=str(semantics))

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


control_directions = _controls.control_directions
control_values = _controls.control_values


def check_limits(name: str, curve: Curve) -> None:
    """Raise ``ValueError`` naming the channel and key when a value or slope is beyond the channel's limit
    (:func:`dvp_engine.core.layout.channel_limit`) or a key frame beyond +-999,999,999."""
    from .frames import MAX_FRAME_NUMBER

    limit = layout.channel_limit(name)
    unit = layout.channel_unit(name)
    for k in curve.keys:
        if abs(k.frame) > MAX_FRAME_NUMBER:
            raise ValueError(f"channel {name!r}: key frame {k.frame:g} is beyond +-{MAX_FRAME_NUMBER}")
        for label, v in (("value", k.value), ("in_slope", k.in_slope), ("out_slope", k.out_slope)):
            if v is not None and abs(v) > limit:
                raise ValueError(
                    f"channel {name!r}: key at frame {k.frame:g} has {label} {v:g} {unit}, beyond the limit "
                    f"of +-{limit:g} {unit} for this channel"
                )


def apply_curves(track: FaceTrack, curves: CurveSet) -> FaceTrack:
    """Apply a curve set over a track, returning a new track.

    For each curve, on the track frames inside its active range, ``override`` sets the channel to the
    sampled value and ``offset`` adds it. Packed channels (``expr.*`` included) are applied first; then all
    named controls ``face.*`` of the set together, by :func:`dvp_engine.core.controls.apply_control_edits`:
    the edited controls take their curves' values (override) or move by them (offset) while every other
    control keeps its value. A file that edits both a control and raw ``expr.*`` coefficients on the same
    frames therefore gets the raw values first and then the controls' values: **controls win** within the
    span of the directions, the raw edit stays outside it. Keying a look-at channel (``look.*``) on a track
    without them creates all four (0, weight 0) first. Unknown channels raise ``KeyError`` listing the
    valid names; a value beyond the channel's limit raises ``ValueError`` (:func:`check_limits`).
    """
    names, matrix = _controls.control_matrix(track)
    valid = tuple(track.channels) + tuple(names) + layout.LOOK_AT
    curves.validate_names(valid)
    for name, curve in curves.curves.items():
        check_limits(name, curve)
    out = track.replace()
    for name in layout.LOOK_AT:  # the look-at channels are optional: keying one creates them (weight 0)
        if name in curves.curves and name not in out.channels:
            for n in layout.LOOK_AT:
                out.channels.setdefault(n, np.zeros(out.n_frames, np.float32))
    frames = out.frames.astype(np.float64)
    targets = np.full((len(frames), len(names)), np.nan)
    offsets = np.zeros((len(frames), len(names)))
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
        k = names.index(name)
        if curve.mode == "override":
            targets[sel, k] = values
        else:
            offsets[sel, k] += values
    edited = ~np.isnan(targets).all(axis=1) | (offsets != 0).any(axis=1)
    if edited.any():
        expr = _controls.expression_of(out)
        expr[edited] = _controls.apply_control_edits(expr[edited], matrix, targets[edited], offsets[edited])
        for j, cname in enumerate(layout.EXPRESSION):
            out.channels[cname] = expr[:, j].astype(np.float32)
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
