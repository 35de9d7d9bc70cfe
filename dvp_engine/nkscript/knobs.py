"""Channel <-> knob mapping and the DVPortrait node's knob layout (pure Python, no ``nuke``).

Part of the engine so that ``dvp nuke-script`` works from an installed dvp; the Nuke adapter
(``nuke_plugin/dvp_nuke``) imports it from here.

Every track channel of :mod:`dvp_engine.core.layout` (and every named control ``face.<name>``) maps to one
``(knob name, index)`` pair on the node; :func:`channel_to_knob` and :func:`knob_to_channel` are inverses.

=====================================  =========================  =======  =========
channels                               knob                       kind     unit
=====================================  =========================  =======  =========
head.rx head.ry head.rz                ``head_rx`` ``head_ry`` .. Double   degrees
head.tx head.ty head.tz                ``head_tx`` ``head_ty`` .. Double   metres
gaze.left.x gaze.left.y                ``gaze_left_x`` ..         Double   degrees
gaze.right.x gaze.right.y              ``gaze_right_x`` ..        Double   degrees
blink.left / blink.right               ``blink_left`` / ``_right``  Double   0 open..1
face.<name> (named controls)           ``face_<name>``            Double   coef
expr.00 .. expr.63                     ``expr_00`` ..             Double   coef (advanced)
light.sh.00 .. light.sh.26             ``light_sh_00`` ..         Double   coef (advanced)
track.confidence / track.valid         ``track_confidence`` / ..  Double   0..1 (display)
look.x look.y look.z                   ``look_at`` + ``look_depth`` XY + Double  Nuke px, metres
look.weight                            ``look_weight``            Double   0..1
=====================================  =========================  =======  =========

The look-at knobs are not one knob per channel: ``look_at`` (an XY knob, so the viewer draws a handle on the
plate) holds the target's plate point in Nuke's pixel convention and ``look_depth`` its camera-frame depth;
:func:`look_channels_from_knobs` and :func:`look_knob_values` convert between them and the ``look.*``
channels (camera frame, metres) with the track's intrinsics.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.controls import all_control_values
from dvp_engine.core.gaze import camera_to_plate_points, plate_points_to_camera

#: Named controls of the default face model (the node shows these until a track brings its own).
DEFAULT_CONTROLS: Final[tuple[str, ...]] = (
    "face.jaw_open",
    "face.smile",
    "face.frown",
    "face.mouth_wide",
    "face.pucker",
    "face.brow_raise",
    "face.brow_lower",
    "face.brow_furrow",
    "face.eye_squint",
    "face.eye_wide",
    "face.jaw_left",
    "face.jaw_right",
)

MATTE_CHANNEL: Final = "matte.alpha"
"""The render's head matte: the EXR channel ``matte.A``, which Nuke's EXR reader shows as ``matte.alpha``."""

RENDER_COLOURSPACE = "ACEScg"
"""The colour space of dvp's EXRs (its default), set on the inner Read (.nk and Python)."""
#: Where the inner nodes sit in the group's Node Graph (x, y), top to bottom as they connect.
INNER_POSITIONS: dict[str, tuple[int, int]] = {
    "result": (0, -150),
    "place": (0, -90),
    "matte_to_alpha": (0, -40),
    "premult": (0, 10),
    "plate": (200, -150),
    "over": (200, 10),
    "overlay_read": (400, -150),
    "view_switch": (100, 80),
    "Output1": (100, 150),
}


#: Multi-dimensional knobs: knob name -> its channels in index order.
#: None: Nuke's XY/XYZ knobs draw viewer handles at pixel positions, so dragging one would edit degrees or
#: metres as pixels. Head pose and gaze are one Double knob per channel, side by side on a panel line.
#: The one XY knob, ``look_at``, holds plate pixels (its handle is the target on the plate) and is converted
#: (:func:`look_channels_from_knobs`), not mapped channel by channel.
ARRAY_KNOBS: Final[dict[str, tuple[str, ...]]] = {}
_ARRAY_OF: Final[dict[str, tuple[str, int]]] = {
    ch: (knob, i) for knob, chans in ARRAY_KNOBS.items() for i, ch in enumerate(chans)
}
_CONTROL_RE: Final = re.compile(r"^face\.([A-Za-z][A-Za-z0-9_]*)$")
_SCALAR_PREFIXES: Final = (("expr.", "expr_"), ("light.sh.", "light_sh_"))
_SCALARS: Final[dict[str, str]] = {
    **{ch: ch.replace(".", "_") for ch in layout.HEAD_ROTATION + layout.HEAD_TRANSLATION + layout.GAZE},
    "blink.left": "blink_left",
    "blink.right": "blink_right",
    layout.CONFIDENCE: "track_confidence",
    layout.VALID: "track_valid",
}
_SCALARS_INV: Final = {v: k for k, v in _SCALARS.items()}

#: Channels shown for information only: imported as curves, never exported as edits.
DISPLAY_ONLY: Final[frozenset[str]] = frozenset(layout.AUX_CHANNELS)


LOOK_AT_KNOB: Final = "look_at"
"""XY knob: the look-at target's plate point, Nuke pixels (origin at the plate's bottom-left corner, y up)."""
LOOK_DEPTH_KNOB: Final = "look_depth"
"""Double knob: the target's camera-frame depth z, metres (negative: behind the lens)."""
LOOK_WEIGHT_KNOB: Final = "look_weight"
"""Double knob: ``look.weight``, 0 (the gaze curves alone) .. 1 (the eyes look at the target)."""
LOOK_KNOBS: Final = (LOOK_AT_KNOB, LOOK_DEPTH_KNOB, LOOK_WEIGHT_KNOB)


class UnmappableChannel(KeyError):
    """A channel name that has no knob on the node (unknown to this dvp, or not a valid knob name)."""


def is_control(name: str) -> bool:
    """True for a named expression control ``face.<identifier>``."""
    return _CONTROL_RE.match(name) is not None


def channel_to_knob(name: str) -> tuple[str, int]:
    """``(knob name, index)`` of a channel; :class:`UnmappableChannel` if the node has no knob for it."""
    if name in _ARRAY_OF:
        return _ARRAY_OF[name]
    if name in _SCALARS:
        return _SCALARS[name], 0
    for chan_prefix, knob_prefix in _SCALAR_PREFIXES:
        if name.startswith(chan_prefix) and name in layout.FRAME_CHANNELS:
            return knob_prefix + name[len(chan_prefix) :], 0
    m = _CONTROL_RE.match(name)
    if m:
        return "face_" + m.group(1), 0
    raise UnmappableChannel(name)


def knob_to_channel(knob: str, index: int = 0) -> str:
    """Inverse of :func:`channel_to_knob`; ``KeyError`` for knobs that hold no channel."""
    if knob in ARRAY_KNOBS:
        chans = ARRAY_KNOBS[knob]
        if not 0 <= index < len(chans):
            raise KeyError(f"{knob}[{index}]")
        return chans[index]
    if index != 0:
        raise KeyError(f"{knob}[{index}]")
    if knob in _SCALARS_INV:
        return _SCALARS_INV[knob]
    for chan_prefix, knob_prefix in _SCALAR_PREFIXES:
        if knob.startswith(knob_prefix):
            name = chan_prefix + knob[len(knob_prefix) :]
            if name in layout.FRAME_CHANNELS:
                return name
    if knob.startswith("face_") and len(knob) > 5:
        return "face." + knob[5:]
    raise KeyError(knob)


# ---------------------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class KnobSpec:
    """One knob of the node, host-independent.

    ``kind``: ``tab``, ``begin_group``, ``begin_closed_group``, ``end_group``, ``file``, ``string``, ``enum``,
    ``bool``, ``double``, ``xy`` (a 2D position, plate pixels), ``button``, ``text``. ``channels``: the channels it holds, in
    index order (empty for non-channel knobs). ``command``: Python run by a button. ``values``: enum items.
    """

    kind: str
    name: str
    label: str = ""
    tooltip: str = ""
    channels: tuple[str, ...] = ()
    command: str = ""
    values: tuple[str, ...] = ()
    range: tuple[float, float] | None = None
    default: str | float | bool = ""
    startline: bool = True
    extra: dict[str, str] = field(default_factory=dict)


def button_command(action: str) -> str:
    """The Python a button runs: it imports the plugin and dispatches on the button's action name."""
    return f"import dvp_nuke.node\ndvp_nuke.node.on_button({action!r})"


BUTTONS: Final[tuple[tuple[str, str, str], ...]] = (
    ("track", "Track", "run 'dvp track' on the file of the Read node above input 'plate'; then Import Track"),
    ("import_track", "Import Track", "key every channel knob from the track file: one key per tracked frame"),
    ("export_curves", "Export Curves", "write the knobs' animation (with your edits) to the curve file"),
    ("render", "Render", "export the curves, then render the frame range out of process with dvp"),
    ("preview", "Preview Frame", "export the curves and render only the current frame (show: result)"),
    ("overlay", "Overlay", "draw the fitted mesh over the plate with 'dvp overlay' (show: overlay)"),
)


def _row(label: str, channels: tuple[str, ...], tip: str, rng: tuple[float, float]) -> list[KnobSpec]:
    """One Double knob per channel on one panel line: the first labelled ``label x``, the rest ``y``, ``z``."""
    out = []
    for i, ch in enumerate(channels):
        axis = ch.rsplit(".", 1)[1][-1]
        text = f"{label} {axis}" if i == 0 else axis
        out.append(KnobSpec("double", _SCALARS[ch], text, f"{ch}: {tip}", (ch,), range=rng, startline=i == 0))
    return out


def look_knob_specs() -> list[KnobSpec]:
    """The look-at knobs: the target's plate point (XY, viewer handle), its depth and the blend weight."""
    return [
        KnobSpec(
            "xy",
            LOOK_AT_KNOB,
            "look at",
            "look.x/y/z: the plate point the eyes look at, in pixels (Nuke: origin at the bottom-left, y up); "
            "drag the handle in the Viewer. Only used where 'look weight' > 0",
        ),
        KnobSpec(
            "double",
            LOOK_DEPTH_KNOB,
            "depth",
            "the target's distance along the lens axis, metres (camera-frame z; the face is at about head tz; "
            "negative: behind the lens)",
            range=(-2, 5),
            startline=False,
        ),
        KnobSpec(
            "double",
            LOOK_WEIGHT_KNOB,
            "look weight",
            "look.weight: 0 the gaze curves alone .. 1 both eyes look at the 'look at' point",
            range=(0, 1),
        ),
    ]


def knob_layout(controls: tuple[str, ...] = DEFAULT_CONTROLS) -> list[KnobSpec]:
    """The DVPortrait node's user knobs, in panel order.

    Tabs: *DVPortrait* (files, frame range, buttons, head, gaze, blinks, named controls, confidence) with a
    closed *advanced* group holding the raw expression and light coefficients.
    """
    specs: list[KnobSpec] = [
        KnobSpec("tab", "dvportrait", "DVPortrait"),
        KnobSpec("file", "track_file", "track", "FaceTrack .npz (written by Track or 'dvp track')"),
        KnobSpec("file", "model_dir", "model", "model folder written by 'dvp train'"),
        KnobSpec("file", "output", "output", "EXR sequence to render, e.g. /shots/sh010/dvp/sh010.####.exr"),
        KnobSpec(
            "file", "curves_file", "curves", "curve file written by Export Curves (default: beside output)"
        ),
        KnobSpec("string", "frame_range", "frame range", "frames to render, e.g. 1001-1100 or 1001-1100x2"),
        KnobSpec(
            "enum",
            "engine",
            "render with",
            "dvp render (model + edited track) or dvp reenact (source actor drives the plate)",
            values=("render", "reenact"),
        ),
        KnobSpec("file", "source", "reenact source", "source actor video (dvp reenact only)"),
        KnobSpec(
            "enum",
            "reenact_mode",
            "reenact mode",
            "what the source drives",
            values=("full", "expression", "gaze", "pose", "dubbing"),
        ),
        KnobSpec(
            "file", "dvp_executable", "dvp", "path of the dvp command (else $DVP_EXECUTABLE, else PATH)"
        ),
        KnobSpec(
            "enum",
            "view",
            "show",
            "the render alone, merged over the plate, or the tracker's overlay (the fitted mesh on the plate)",
            values=("result", "over plate", "overlay"),
        ),
    ]
    for i, (action, label, tip) in enumerate(BUTTONS):
        specs.append(KnobSpec("button", action, label, tip, command=button_command(action), startline=i == 0))
    specs += [
        KnobSpec("text", "status", "", default="no track loaded"),
        *_row("head rotate", layout.HEAD_ROTATION, "degrees about the camera axis, R = Rz Ry Rx", (-90, 90)),
        *_row(
            "head translate",
            layout.HEAD_TRANSLATION,
            "metres, camera frame (x right, y down, z forward)",
            (-1, 1),
        ),
        *_row("gaze left", layout.GAZE[:2], "actor's left eye, degrees (x yaw, y pitch)", (-40, 40)),
        *_row("gaze right", layout.GAZE[2:], "actor's right eye, degrees (x yaw, y pitch)", (-40, 40)),
        KnobSpec("double", "blink_left", "blink left", "0 open .. 1 closed", ("blink.left",), range=(0, 1)),
        KnobSpec(
            "double", "blink_right", "blink right", "0 open .. 1 closed", ("blink.right",), range=(0, 1)
        ),
        *look_knob_specs(),
        KnobSpec("text", "controls_label", "", default="<b>expression controls</b>"),
    ]
    for name in controls:
        knob, _ = channel_to_knob(name)
        specs.append(KnobSpec("double", knob, name[5:].replace("_", " "), name, (name,), range=(-3, 3)))
    specs += [
        KnobSpec(
            "double",
            "track_confidence",
            "track confidence",
            "tracker confidence per frame (display only: see it in the Curve Editor)",
            (layout.CONFIDENCE,),
            range=(0, 1),
        ),
        KnobSpec(
            "double",
            "track_valid",
            "track valid",
            "1 tracked, 0 lost (display only)",
            (layout.VALID,),
            range=(0, 1),
        ),
        KnobSpec("begin_closed_group", "advanced", "advanced"),
    ]
    for name in layout.EXPRESSION + layout.LIGHT:
        knob, _ = channel_to_knob(name)
        specs.append(KnobSpec("double", knob, name, name, (name,), range=(-3, 3)))
    specs.append(KnobSpec("end_group", "advanced_end"))
    return specs


def channel_knobs(specs: list[KnobSpec]) -> dict[str, tuple[str, int]]:
    """channel -> (knob, index) for every channel knob in ``specs``."""
    out: dict[str, tuple[str, int]] = {}
    for s in specs:
        for i, ch in enumerate(s.channels):
            out[ch] = (s.name, i)
    return out


def track_values(track: FaceTrack) -> dict[str, npt.NDArray[np.float64]]:
    """Per-frame values ``(F,)`` of every channel and named control of ``track`` (what the knobs show).

    Control values are the engine's (:func:`dvp_engine.core.controls.all_control_values`), rounded to
    float32 like every stored channel.
    """
    values = {name: np.asarray(v, dtype=np.float64) for name, v in track.channels.items()}
    for name, v in all_control_values(track).items():
        values.setdefault(name, v.astype(np.float32).astype(np.float64))
    return values


# ---------------------------------------------------------------------------------------------- look-at
F64 = npt.NDArray[np.float64]


def nuke_to_plate(x: npt.ArrayLike, y: npt.ArrayLike, height: int) -> tuple[F64, F64]:
    """Nuke pixel coordinates to the engine's plate pixels.

    Nuke: origin at the image's bottom-left corner, y up, pixel (0, 0) covers [0, 1] x [0, 1] (centre at
    (0.5, 0.5)). Engine (docs/conventions.md): pixel (0, 0)'s centre at (0, 0), top-left, y down. So
    ``u = x - 0.5`` and ``v = height - y - 0.5``; ``height`` is the plate's height in pixels.
    """
    xx = np.asarray(x, np.float64)
    yy = np.asarray(y, np.float64)
    return xx - 0.5, float(height) - yy - 0.5


def plate_to_nuke(u: npt.ArrayLike, v: npt.ArrayLike, height: int) -> tuple[F64, F64]:
    """Inverse of :func:`nuke_to_plate`: engine plate pixels to Nuke pixels (bottom-left origin, y up)."""
    uu = np.asarray(u, np.float64)
    vv = np.asarray(v, np.float64)
    return uu + 0.5, float(height) - vv - 0.5


@dataclass(frozen=True)
class LookKnobValues:
    """What the look-at knobs show for a track, one value per tracked frame.

    Attributes:
        x, y: the ``look_at`` XY knob, Nuke pixels (bottom-left origin, y up).
        depth: the ``look_depth`` knob, metres (camera-frame z).
        weight: the ``look_weight`` knob, 0..1.
        keyed: True when the track has ``look.*`` channels (the knobs get one key per tracked frame);
            False: no look-at in the track, the knobs hold the constant defaults (:func:`default_look_knobs`).
        defaulted: frames whose target lies in the lens plane (z = 0, no plate point shows it): the knobs
            show the defaults there.
    """

    x: F64
    y: F64
    depth: F64
    weight: F64
    keyed: bool
    defaulted: tuple[int, ...] = ()


def default_look_knobs(track: FaceTrack) -> tuple[float, float, float]:
    """``(x, y, depth)`` the look-at knobs show without a target: the principal point (in Nuke pixels) at
    half the median head distance ``head.tz`` (0.5 m when unknown), i.e. between the lens and the face."""
    fx, fy, cx, cy = track.intrinsics
    x, y = plate_to_nuke(cx, cy, track.height)
    tz = np.asarray(track.channels.get("head.tz", np.zeros(0)), np.float64)
    tz = tz[np.isfinite(tz) & (tz > 0)]
    depth = 0.5 * float(np.median(tz)) if tz.size else 0.5
    return float(x), float(y), depth


def look_knob_values(track: FaceTrack) -> LookKnobValues:
    """The look-at knob values for ``track`` (the inverse of :func:`look_channels_from_knobs`).

    With ``look.*`` channels the target ``(look.x, look.y, look.z)`` (camera frame, metres) becomes its plate
    point (:func:`dvp_engine.core.gaze.camera_to_plate_points` with the track's intrinsics, then
    :func:`plate_to_nuke`) and depth ``look.z``; frames with the target in the lens plane show the defaults.
    """
    n = track.n_frames
    dx, dy, dd = default_look_knobs(track)
    if not all(c in track.channels for c in layout.LOOK_AT):
        full = np.full(n, 0.0)
        return LookKnobValues(full + dx, full + dy, full + dd, full.copy(), keyed=False)
    pts = np.stack([np.asarray(track.channels[c], np.float64) for c in layout.LOOK_AT[:3]], axis=1)
    lens = pts[:, 2] == 0.0
    safe = pts.copy()
    safe[lens] = (0.0, 0.0, 1.0)
    u, v, depth = camera_to_plate_points(safe, track.intrinsics, [int(f) for f in track.frames])
    x, y = plate_to_nuke(u, v, track.height)
    x[lens], y[lens], depth[lens] = dx, dy, dd
    weight = np.asarray(track.channels[layout.LOOK_AT[3]], np.float64).copy()
    defaulted = tuple(int(f) for f in track.frames[lens])
    return LookKnobValues(x, y, depth, weight, keyed=True, defaulted=defaulted)


def look_channels_from_knobs(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    depth: npt.ArrayLike,
    weight: npt.ArrayLike,
    track: FaceTrack,
    frames: Sequence[int] | None = None,
) -> dict[str, F64]:
    """The ``look.*`` channels for look-at knob values sampled at ``frames`` (default: the tracked frames).

    Args:
        x, y: ``(F,)`` the ``look_at`` knob, Nuke pixels (bottom-left origin, y up) of the track's plate.
        depth: ``(F,)`` the ``look_depth`` knob, camera-frame z in metres (non-zero; negative: behind the lens).
        weight: ``(F,)`` the ``look_weight`` knob, 0..1.
        track: gives the intrinsics ``(fx, fy, cx, cy)`` and the plate height.

    Returns:
        ``look.x look.y look.z`` (OpenCV camera frame, metres) and ``look.weight``, each ``(F,)``.

    Raises:
        InputError: a depth of 0, naming the frame.
    """
    numbers = list(frames) if frames is not None else [int(f) for f in track.frames]
    u, v = nuke_to_plate(x, y, track.height)
    pts = plate_points_to_camera(u, v, depth, track.intrinsics, numbers)
    w = np.asarray(weight, np.float64).reshape(-1)
    return {
        layout.LOOK_AT[0]: pts[:, 0],
        layout.LOOK_AT[1]: pts[:, 1],
        layout.LOOK_AT[2]: pts[:, 2],
        layout.LOOK_AT[3]: np.broadcast_to(w, (len(pts),)).copy(),
    }
