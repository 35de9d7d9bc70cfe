"""Write the DVPortrait node as ``.nk`` text without Nuke (pure function, no ``nuke`` import).

A TD can build Nuke scripts on a farm machine without a Nuke licence: :func:`nk_snippet` returns a node
snippet (paste it into the Node Graph, ``nuke.nodePaste(path)`` it, or insert it into a script) holding the
same Group, user knobs and inside graph as :func:`dvp_nuke.node.create_node`, with the track's animation as
``{curve x<frame> v v ...}`` (one key per tracked frame). ``standalone=True`` writes a whole script with a
``Root`` (frame range, fps, format) instead.

Curve syntax (Foundry, "Nuke animation curve format"): ``x<frame>`` sets a key's frame; a key without one
lies as far after the previous key as that one lay after its predecessor, so ``x`` is written for the first
two keys and wherever the spacing changes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from dvp_engine.core import FaceTrack, FrameSet

from . import knobs as mapping

KNOB_IDS: dict[str, int] = {
    "string": 1,
    "file": 2,
    "enum": 4,
    "bool": 6,
    "double": 7,
    "xy": 12,
    "tab": 20,
    "begin_closed_group": 20,
    "end_group": 20,
    "button": 22,
    "text": 26,
}
_BARE = re.compile(r"^[A-Za-z0-9_./:+-]+$")


def _pos(node: str) -> str:
    x, y = mapping.INNER_POSITIONS[node]
    return f"  xpos {x}\n  ypos {y}"


def tcl_quote(text: str) -> str:
    """A TCL word for ``text``: bare when safe, else double-quoted with ``\\ " [ ] $ { }`` and newlines escaped."""
    if text and _BARE.match(text):
        return text
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    for ch in "[]${}":
        out = out.replace(ch, "\\" + ch)
    return f'"{out}"'


def fmt(value: float) -> str:
    """A number as Nuke writes it; 9 significant digits round-trip float32 values exactly."""
    if not math.isfinite(value):
        raise ValueError(f"cannot write non-finite value {value} to a .nk curve")
    text = format(float(value), ".9g")
    return "0" if text == "-0" else text


def curve_text(frames: Sequence[float], values: Sequence[float]) -> str:
    """``{curve x1001 0.5 0.6 ...}`` for keys at ``frames`` (increasing)."""
    parts = ["curve"]
    for i, (f, v) in enumerate(zip(frames, values, strict=True)):
        implied = i >= 2 and f - frames[i - 1] == frames[i - 1] - frames[i - 2]
        if not implied:
            parts.append(f"x{fmt(f)}")
        parts.append(fmt(v))
    return "{" + " ".join(parts) + "}"


def _user_knob(spec: mapping.KnobSpec) -> str:
    fields = [str(KNOB_IDS[spec.kind]), spec.name]
    if spec.kind == "text" and not spec.label:
        fields += ["l", '""']  # as Nuke writes a Text_Knob without a label
    elif spec.label and spec.label != spec.name:
        fields += ["l", tcl_quote(spec.label)]
    if spec.tooltip:
        fields += ["t", tcl_quote(spec.tooltip)]
    if spec.kind in ("begin_closed_group",):
        fields += ["n", "1"]
    elif spec.kind == "end_group":
        fields += ["n", "-1"]
    if spec.range is not None:
        fields += ["R", fmt(spec.range[0]), fmt(spec.range[1])]
    if spec.kind == "enum":
        fields += ["M", "{" + " ".join(tcl_quote(v) for v in spec.values) + "}"]
    if spec.kind not in ("tab", "begin_closed_group", "end_group"):
        fields.append("+STARTLINE" if spec.startline else "-STARTLINE")
    if spec.kind == "button":
        fields += ["T", tcl_quote(spec.command)]
    if spec.kind == "text":
        fields += ["T", tcl_quote(str(spec.default))]
    return "addUserKnob {" + " ".join(fields) + "}"


def _animation(
    spec: mapping.KnobSpec, frames: Sequence[float], values: Mapping[str, npt.NDArray[np.float64]]
) -> str | None:
    items = []
    for ch in spec.channels:
        if ch in values and len(frames):
            items.append(curve_text(frames, [float(v) for v in values[ch]]))
        else:
            items.append("0")
    if all(i == "0" for i in items):
        return None
    # Nuke writes every animated knob as a list of per-index values: {{curve ...}} even for one value
    return "{" + " ".join(items) + "}"


def _look_animation(spec: mapping.KnobSpec, frames: Sequence[float], look: mapping.LookKnobValues) -> str:
    """The value of a look-at knob: ``{{curve ..} {curve ..}}`` per index when the track has look-at channels,
    else the constant defaults (``{x y}`` for the XY knob)."""
    columns = {
        mapping.LOOK_AT_KNOB: (look.x, look.y),
        mapping.LOOK_DEPTH_KNOB: (look.depth,),
        mapping.LOOK_WEIGHT_KNOB: (look.weight,),
    }[spec.name]
    if look.keyed:
        return "{" + " ".join(curve_text(frames, [float(v) for v in c]) for c in columns) + "}"
    consts = [fmt(float(c[0])) for c in columns]
    return consts[0] if len(consts) == 1 else "{" + " ".join(consts) + "}"


def nk_snippet(
    track: FaceTrack | None = None,
    *,
    name: str = "DVPortrait1",
    track_path: str = "",
    model_dir: str = "",
    output: str = "",
    frame_range: str = "",
    curves_file: str = "",
    plate: str = "",
    controls: Sequence[str] | None = None,
    standalone: bool = False,
    nuke_version: str = "15.0 v1",
) -> str:
    """The ``.nk`` text of a DVPortrait node keyed with ``track`` (pure: no I/O, no Nuke).

    Args:
        track: the animation source (edited tracks: apply the curves first); ``None`` gives an unkeyed node.
        name: the Group's name; ``track_path``/``model_dir``/``output``/``curves_file``: file knob values.
        frame_range: the ``frame range`` knob (default: the track's frames).
        plate: a footage path: adds a Read node feeding the group's ``plate`` input.
        controls: named controls to show (default: the track's, else the default face model's).
        standalone: a whole script (``Root`` with frame range, fps and format) instead of a paste snippet.
    """
    values = mapping.track_values(track) if track is not None else {}
    frames = [float(f) for f in track.frames] if track is not None else []
    look = mapping.look_knob_values(track) if track is not None and track.n_frames else None
    if controls is None:
        found = tuple(n for n in values if mapping.is_control(n))
        controls = found or mapping.DEFAULT_CONTROLS
    if not frame_range and track is not None and track.n_frames:
        frame_range = str(FrameSet.from_frames(int(f) for f in track.frames))
    settings = {
        "track_file": track_path,
        "model_dir": model_dir,
        "output": output,
        "curves_file": curves_file,
        "frame_range": frame_range,
    }
    lines: list[str] = []
    if standalone:
        lines.append(f"#! nuke {nuke_version.split()[0]}")
        lines.append(f"version {nuke_version}")
        root = ["Root {", " inputs 0"]
        if track is not None and track.n_frames:
            rate = Fraction(track.rate)
            root += [
                f" first_frame {int(track.frames[0])}",
                f" last_frame {int(track.frames[-1])}",
                f" fps {fmt(float(rate))}",
                f' format "{track.width} {track.height} 0 0 {track.width} {track.height} 1 dvp_{track.width}x{track.height}"',
            ]
        lines += root + ["}"]
    else:
        lines += ["set cut_paste_input [stack 0]", f"version {nuke_version}"]
    lines.append(f"add_layer {{{mapping.MATTE_CHANNEL.split('.')[0]} {mapping.MATTE_CHANNEL}}}")
    if plate:
        lines += ["Read {", " inputs 0", f" file {tcl_quote(plate)}"]
        if track is not None and track.n_frames:
            first, last = int(track.frames[0]), int(track.frames[-1])
            lines += [f" first {first}", f" last {last}", f" origfirst {first}", f" origlast {last}"]
        lines += [" name plate_read", " xpos 0", " ypos -120", "}"]
    elif standalone:
        lines.append("push 0")
    else:
        lines.append("push $cut_paste_input")
    lines += ["Group {", f" name {tcl_quote(name)}", " tile_color 0x7b4fa8ff", " label DVPortrait"]
    lines += [" xpos 0", " ypos 0"]
    for spec in mapping.knob_layout(tuple(controls)):
        lines.append(" " + _user_knob(spec))
        if spec.kind == "begin_closed_group":
            lines.append(f" {spec.name} 0")
        elif spec.name in settings and settings[spec.name]:
            lines.append(f" {spec.name} {tcl_quote(settings[spec.name])}")
        elif spec.name in mapping.LOOK_KNOBS:
            if look is not None:
                lines.append(f" {spec.name} {_look_animation(spec, frames, look)}")
        elif spec.channels:
            text = _animation(spec, frames, values)
            if text is not None:
                lines.append(f" {spec.name} {text}")
    lines.append("}")
    # the overlay's Read first: it stays at the bottom of the stack until the Switch takes it as input 2
    lines += [" Read {", "  inputs 0", "  on_error black", "  name overlay_read", _pos("overlay_read"), " }"]
    read = [" Read {", "  inputs 0"]
    if output:
        read.append(f"  file {tcl_quote(output)}")
    if frame_range:
        fs = FrameSet.parse(frame_range)
        first, last = min(fs), max(fs)
        read += [f"  first {first}", f"  last {last}", f"  origfirst {first}", f"  origlast {last}"]
    # the render is scene-linear ACEScg (dvp's EXR colour space); Nuke's OCIO configs name it ACEScg
    read += [
        f"  colorspace {mapping.RENDER_COLOURSPACE}",
        "  on_error black",
        "  name result",
        _pos("result"),
        " }",
    ]
    lines += read
    # identity: the EXR's data window already puts the crop on the plate; the Transform is a nudge handle
    lines += [" Transform {", "  name place", _pos("place"), " }", "set Nplace [stack 0]"]
    lines += ["push $Nplace", " Copy {", "  inputs 2", f"  from0 {mapping.MATTE_CHANNEL}", "  to0 rgba.alpha"]
    lines += ["  name matte_to_alpha", _pos("matte_to_alpha"), " }"]
    lines += [" Premult {", "  name premult", _pos("premult"), " }"]
    # the stack's top is a node's input 0: Merge2 gets B (0) = plate, A (1) = premult;
    # Switch 0 = place, 1 = over, 2 = overlay_read
    lines += [" Input {", "  inputs 0", "  name plate", _pos("plate"), " }"]
    lines += [" Merge2 {", "  inputs 2", "  operation over", "  name over", _pos("over"), " }"]
    lines += [
        "push $Nplace",
        " Switch {",
        "  inputs 3",
        "  which {{parent.view}}",
        "  name view_switch",
        _pos("view_switch"),
        " }",
    ]
    lines += [" Output {", "  name Output1", _pos("Output1"), " }", "end_group", ""]
    return "\n".join(lines)
