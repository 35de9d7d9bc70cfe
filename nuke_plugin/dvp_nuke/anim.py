"""Knob animation <-> FaceTrack / curve files, typed against :mod:`dvp_nuke.protocols` (no ``nuke``).

* :func:`import_track` keys every channel knob from a track: exactly one key per tracked frame.
* :func:`export_curves` turns the knobs' animation (with the artist's edits) into a
  :class:`~dvp_engine.core.CurveSet` such that ``apply_curves(track, curves)`` gives the values Nuke shows.

The look-at knobs (``look_at`` XY in plate pixels, ``look_depth``, ``look_weight``) are converted to and from
the ``look.*`` channels by the engine (:func:`dvp_engine.nkscript.knobs.look_knob_values`,
:func:`~dvp_engine.nkscript.knobs.look_channels_from_knobs`), not mapped one knob per channel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dvp_engine.core import Curve, CurveSet, FaceTrack, Key, layout
from dvp_engine.nkscript import knobs as mapping
from dvp_engine.nkscript.knobs import track_values as track_values

from .protocols import AnimationKey, Knob, Node

KeyFactory = Callable[[Sequence[float], Sequence[float]], list[AnimationKey]]
"""Builds host animation keys from frames and values (``host.animation_keys`` in Nuke)."""
ControlAdder = Callable[[Node, str], None]
"""Adds a knob for a named control the node does not have yet."""

#: Values closer than this (relative to max(1, |value|)) to the track count as unedited.
TOLERANCE = 1e-6


@dataclass
class ImportReport:
    """What :func:`import_track` did."""

    loaded: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    """Track channels the node has no knob for (ignored)."""
    missing: list[str] = field(default_factory=list)
    """Node channels the track lacks (their animation was cleared)."""
    added: list[str] = field(default_factory=list)
    """Named controls of the track that got new knobs."""
    n_frames: int = 0
    look_defaulted: list[int] = field(default_factory=list)
    """Frames whose look-at target is in the lens plane (no plate point): the look-at knobs show defaults."""

    def message(self, path: str = "track") -> str:
        """A user-facing summary; mismatches are listed by name."""
        parts = [f"{path}: loaded {len(self.loaded)} channels x {self.n_frames} frames"]
        if self.extra:
            parts.append(
                f"{len(self.extra)} track channel(s) have no knob on this node and were ignored: "
                + ", ".join(self.extra)
            )
        if self.missing:
            parts.append(
                f"{len(self.missing)} node channel(s) are not in the track and were left unanimated: "
                + _compact(self.missing)
            )
        if self.added:
            parts.append("new named controls added at the end of the panel: " + ", ".join(self.added))
        if self.look_defaulted:
            parts.append(
                "the look-at target is in the lens plane (z = 0, no plate point shows it) on frame(s) "
                + _compact([str(f) for f in self.look_defaulted])
                + ": the look-at knobs show the default point there; editing them replaces it"
            )
        return "; ".join(parts)

    @property
    def mismatch(self) -> bool:
        """True when the track's channels and the node's differ."""
        return bool(self.extra or self.missing or self.look_defaulted)


def _compact(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 8 else ", ".join(names[:8]) + f" and {len(names) - 8} more"


def node_channels(node: Node) -> dict[str, tuple[str, int]]:
    """channel -> (knob name, index) for every channel knob the node has."""
    out: dict[str, tuple[str, int]] = {}
    for name in node.knobs():
        if name in mapping.ARRAY_KNOBS:
            for i, ch in enumerate(mapping.ARRAY_KNOBS[name]):
                out[ch] = (name, i)
            continue
        try:
            ch = mapping.knob_to_channel(name, 0)
        except KeyError:
            continue
        if mapping.channel_to_knob(ch) == (name, 0):
            out[ch] = (name, 0)
    return out


def _knob(node: Node, name: str) -> Knob:
    k = node.knob(name)
    if k is None:
        raise KeyError(f"node {node.name()} has no knob {name!r}")
    return k


def import_track(
    node: Node, track: FaceTrack, make_keys: KeyFactory, add_control: ControlAdder | None = None
) -> ImportReport:
    """Set every channel knob's animation from ``track``: one key per tracked frame, nothing else.

    Channels of the track without a knob are reported as ``extra`` and skipped; named controls (``face.*``)
    get a new knob through ``add_control`` when given. Node channels the track lacks are cleared (no
    animation, value 0) and reported as ``missing``. Matching channels always load.
    """
    report = ImportReport(n_frames=track.n_frames)
    values = track_values(track)
    have = node_channels(node)
    frames = [float(f) for f in track.frames]
    looks = has_look_knobs(node)
    for name in values:
        if name in have or (looks and name in layout.LOOK_AT):
            continue
        if mapping.is_control(name) and add_control is not None:
            add_control(node, name)
            have = node_channels(node)
            if name in have:
                report.added.append(name)
                continue
        report.extra.append(name)
    for name, (kname, idx) in have.items():
        knob = _knob(node, kname)
        knob.clearAnimated(idx)
        if name not in values:
            knob.setValue(0.0, idx)
            report.missing.append(name)
            continue
        _key(node, knob, idx, frames, values[name], make_keys)
        report.loaded.append(name)
    if looks:
        report.look_defaulted = import_look(node, track, make_keys)
        if all(c in track.channels for c in layout.LOOK_AT):
            report.loaded += list(layout.LOOK_AT)
    order = {n: i for i, n in enumerate(layout.FRAME_CHANNELS + layout.AUX_CHANNELS)}
    report.missing.sort(key=lambda n: (order.get(n, len(order)), n))
    return report


def _key(
    node: Node,
    knob: Knob,
    idx: int,
    frames: Sequence[float],
    values: npt.ArrayLike,
    make_keys: KeyFactory,
) -> None:
    """Replace the animation of ``knob[idx]`` with one key per frame."""
    knob.clearAnimated(idx)
    knob.setAnimated(idx)
    curve = knob.animation(idx)
    if curve is None:
        raise RuntimeError(f"{node.name()}.{knob.name()}[{idx}] did not become animated")
    curve.clear()  # setAnimated may have keyed the current frame
    vals = [float(v) for v in np.asarray(values, np.float64).reshape(-1)]
    try:
        keys = make_keys(frames, vals)
    except TypeError:  # a Nuke whose AnimationKey cannot be constructed: key one by one
        for f, v in zip(frames, vals, strict=True):
            knob.setValueAt(v, f, idx)
    else:
        curve.addKey(keys)


def has_look_knobs(node: Node) -> bool:
    """True when the node has the look-at knobs (``look_at``, ``look_depth``, ``look_weight``)."""
    return all(node.knob(k) is not None for k in mapping.LOOK_KNOBS)


def _look_slots(node: Node) -> list[tuple[Knob, int]]:
    """(knob, index) of the look-at values in the order x, y, depth, weight."""
    xy = _knob(node, mapping.LOOK_AT_KNOB)
    return [
        (xy, 0),
        (xy, 1),
        (_knob(node, mapping.LOOK_DEPTH_KNOB), 0),
        (_knob(node, mapping.LOOK_WEIGHT_KNOB), 0),
    ]


def import_look(node: Node, track: FaceTrack, make_keys: KeyFactory) -> list[int]:
    """Set the look-at knobs from the track's ``look.*`` channels: one key per tracked frame on the XY
    knob's x and y (Nuke pixels), the depth (metres) and the weight. A track without them leaves the knobs
    unanimated at the defaults (:func:`dvp_engine.nkscript.knobs.default_look_knobs`, weight 0).

    Returns the frames whose target is in the lens plane (shown as the default point)."""
    shown = mapping.look_knob_values(track)
    frames = [float(f) for f in track.frames]
    for (knob, idx), vals in zip(
        _look_slots(node), (shown.x, shown.y, shown.depth, shown.weight), strict=True
    ):
        if shown.keyed and frames:
            _key(node, knob, idx, frames, vals, make_keys)
        else:
            knob.clearAnimated(idx)
            knob.setValue(float(vals[0]) if len(vals) else 0.0, idx)
    return list(shown.defaulted)


def export_look(node: Node, track: FaceTrack) -> dict[str, Curve]:
    """The look-at knobs as ``override`` curves of the ``look.*`` channels (empty when unedited).

    The knobs are sampled at the tracked frames (Nuke's evaluation) and compared with what
    :func:`import_look` shows for ``track``. Moving the point or the depth anywhere exports ``look.x look.y
    look.z`` (the engine's conversion of every frame, camera frame, metres); a changed weight exports
    ``look.weight``; a track without look-at channels gets all four. One linear key per tracked frame.

    Raises:
        InputError: a depth of 0 on a tracked frame, naming it.
    """
    if not has_look_knobs(node) or not track.n_frames:
        return {}
    frames = [float(f) for f in track.frames]
    got = [knob_values(k, i, frames) for k, i in _look_slots(node)]
    base = mapping.look_knob_values(track)
    moved = any(_differs(g, b) for g, b in zip(got[:3], (base.x, base.y, base.depth), strict=True))
    weighted = _differs(got[3], base.weight)
    if not (moved or weighted):
        return {}
    x, y, depth, weight = got
    chans = mapping.look_channels_from_knobs(x, y, depth, weight, track, [int(f) for f in track.frames])
    names = list(layout.LOOK_AT)
    if base.keyed:
        names = (names[:3] if moved else []) + (names[3:] if weighted else [])
    return {
        n: Curve(
            keys=[Key(f, float(v), "linear") for f, v in zip(frames, chans[n], strict=True)], mode="override"
        )
        for n in names
    }


@dataclass
class ExportReport:
    """What :func:`export_curves` wrote."""

    edited: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Animated knobs whose channel the track lacks (apply_curves could not use them)."""


def knob_values(knob: Knob, index: int, frames: Sequence[float]) -> npt.NDArray[np.float64]:
    """The knob's value at each frame (its animation or expression as Nuke evaluates it)."""
    if knob.isAnimated(index):
        return np.array([knob.getValueAt(f, index) for f in frames], dtype=np.float64)
    return np.full(len(frames), float(knob.value(index)), dtype=np.float64)


def _differs(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> bool:
    return bool(np.any(np.abs(a - b) > TOLERANCE * np.maximum(1.0, np.abs(b))))


def export_curves(
    node: Node, track: FaceTrack, *, metadata: dict[str, str] | None = None
) -> tuple[CurveSet, ExportReport]:
    """The knobs' animation as a curve set relative to ``track`` (only channels the artist changed).

    Packed channels whose values differ from the track on any tracked frame become ``override`` curves with
    one ``linear`` key per tracked frame, sampled from Nuke's own evaluation of the knob, so
    ``apply_curves(track, curves)`` reproduces exactly what the artist sees on every tracked frame. Edited
    named controls become ``offset`` curves (knob value minus the track's projection), applied after the
    raw coefficients, so edits of both add up. Display-only channels (confidence, valid) are never exported.
    Edited look-at knobs become ``look.*`` override curves (:func:`export_look`).

    Raises:
        InputError: a look-at depth of 0 on a tracked frame (the message names it).
    """
    frames = [float(f) for f in track.frames]
    base = track_values(track)
    have = node_channels(node)
    report = ExportReport()
    raw: dict[str, Curve] = {}
    controls: dict[str, Curve] = {}
    for name, (kname, idx) in have.items():
        if name in mapping.DISPLAY_ONLY:
            continue
        knob = _knob(node, kname)
        if name not in base:
            if knob.isAnimated(idx) or float(knob.value(idx)) != 0.0:
                report.skipped.append(name)
            continue
        vals = knob_values(knob, idx, frames)
        if not _differs(vals, base[name]):
            continue
        if name in track.channels:
            keys = [Key(f, float(v), "linear") for f, v in zip(frames, vals, strict=True)]
            raw[name] = Curve(keys=keys, mode="override")
        else:
            delta = vals - base[name]
            keys = [Key(f, float(v), "linear") for f, v in zip(frames, delta, strict=True)]
            controls[name] = Curve(keys=keys, mode="offset")
        report.edited.append(name)
    look = export_look(node, track)
    report.edited += list(look)
    ordered = {n: raw[n] for n in sorted(raw, key=lambda n: _order(n))}
    ordered.update(look)
    ordered.update({n: controls[n] for n in sorted(controls)})
    meta = {"source": "dvp_nuke", "frames": f"{int(frames[0])}-{int(frames[-1])}" if frames else ""}
    meta.update(metadata or {})
    return CurveSet(curves=ordered, metadata=meta), report


def _order(name: str) -> tuple[int, str]:
    chans = layout.FRAME_CHANNELS
    return (chans.index(name) if name in chans else len(chans), name)
