"""The one module that imports ``nuke``. Everything else in :mod:`dvp_nuke` goes through these functions.

Every ``nuke.*`` name used here is listed, with its documentation page, in ``NUKE_API_ALLOWLIST.txt``; a test
parses this file and fails on any name missing from the list.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

import nuke

from dvp_engine.nkscript import knobs as mapping
from dvp_engine.nkscript.knobs import KnobSpec

from .protocols import AnimationKey, Menu, Node, ProgressTask


def is_gui() -> bool:
    """True in an interactive Nuke session, False in terminal mode (``nuke -t``) and on a farm."""
    return bool(nuke.GUI)


def current_frame() -> int:
    """The frame the viewer shows."""
    return int(round(float(nuke.frame())))


def this_node() -> Node:
    """The node whose button was pressed."""
    return cast(Node, nuke.thisNode())


def message(text: str) -> None:
    """Tell the user: a dialog in the GUI (main thread only), a line on stderr in terminal mode."""
    if is_gui():
        nuke.message(text)
    else:
        print(f"DVPortrait: {text}", file=sys.stderr, flush=True)


def in_main_thread(call: Callable[..., Any], *args: Any) -> None:
    """Run ``call(*args)`` on Nuke's main thread (returns at once); called directly in terminal mode."""
    if is_gui():
        nuke.executeInMainThread(call, args)
    else:
        call(*args)


def progress_task(title: str) -> ProgressTask:
    """A cancellable progress bar (GUI only; create and use it from the worker thread)."""
    return cast(ProgressTask, nuke.ProgressTask(title))


def animation_keys(frames: Sequence[float], values: Sequence[float]) -> list[AnimationKey]:
    """``nuke.AnimationKey(frame, value)`` for each pair, for ``AnimationCurve.addKey`` (bulk keying)."""
    return [
        cast(AnimationKey, nuke.AnimationKey(float(f), float(v))) for f, v in zip(frames, values, strict=True)
    ]


def make_knob(spec: KnobSpec) -> Any:
    """A new knob for ``spec`` (not yet added to a node)."""
    k: Any
    if spec.kind == "tab":
        k = nuke.Tab_Knob(spec.name, spec.label)
    elif spec.kind == "begin_closed_group":
        k = nuke.Tab_Knob(spec.name, spec.label, nuke.TABBEGINCLOSEDGROUP)
    elif spec.kind == "end_group":
        k = nuke.Tab_Knob(spec.name, spec.label, nuke.TABENDGROUP)
    elif spec.kind == "file":
        k = nuke.File_Knob(spec.name, spec.label)
    elif spec.kind == "string":
        k = nuke.String_Knob(spec.name, spec.label)
    elif spec.kind == "enum":
        k = nuke.Enumeration_Knob(spec.name, spec.label, list(spec.values))
    elif spec.kind == "double":
        k = nuke.Double_Knob(spec.name, spec.label)
        if spec.range is not None:
            k.setRange(spec.range[0], spec.range[1])
    elif spec.kind == "xy":  # a 2D position: Nuke draws its handle in the Viewer
        k = nuke.XY_Knob(spec.name, spec.label)
    elif spec.kind == "button":
        k = nuke.PyScript_Knob(spec.name, spec.label, spec.command)
    elif spec.kind == "text":
        k = nuke.Text_Knob(spec.name, spec.label, str(spec.default))
    else:
        raise ValueError(f"unknown knob kind {spec.kind!r}")
    if spec.tooltip:
        k.setTooltip(spec.tooltip)
    if spec.kind not in ("tab", "begin_closed_group", "end_group"):
        if spec.startline:
            k.setFlag(nuke.STARTLINE)
        else:
            k.clearFlag(nuke.STARTLINE)
    return k


def new_group(name: str, specs: Sequence[KnobSpec]) -> tuple[Node, dict[str, Node]]:
    """A Group node with the user knobs of ``specs`` and its inside graph.

    Inside: ``plate`` (Input) and ``result`` (Read of the render) -> ``place`` (Transform, left at identity: the
    render's EXR data window already puts the crop on the plate; a handle to nudge it) -> ``matte_to_alpha`` (Copy ``matte.alpha`` to alpha) -> ``premult`` -> ``over``
    (Merge2 over the plate) -> ``view_switch`` (Switch: result alone or
    over the plate, driven by the ``view`` knob) -> Output. Returns the group and its inner nodes by name.
    """
    group = cast(Node, nuke.nodes.Group(name=name))
    for spec in specs:
        group.addKnob(make_knob(spec))
    group.begin()
    try:
        plate = cast(Node, nuke.nodes.Input(name="plate"))
        read = cast(Node, nuke.nodes.Read(name="result", on_error="black"))
        place = cast(Node, nuke.nodes.Transform(name="place"))
        copy = cast(
            Node, nuke.nodes.Copy(name="matte_to_alpha", from0=mapping.MATTE_CHANNEL, to0="rgba.alpha")
        )
        premult = cast(Node, nuke.nodes.Premult(name="premult"))
        over = cast(Node, nuke.nodes.Merge2(name="over", operation="over"))
        switch = cast(Node, nuke.nodes.Switch(name="view_switch"))
        overlay = cast(Node, nuke.nodes.Read(name="overlay_read", on_error="black"))
        out = cast(Node, nuke.nodes.Output(name="Output1"))
        place.setInput(0, read)
        copy.setInput(0, place)  # B: the opaque render
        copy.setInput(1, place)  # A: its head matte channel, copied into alpha
        premult.setInput(0, copy)
        over.setInput(0, plate)  # B
        over.setInput(1, premult)  # A
        switch.setInput(0, place)
        switch.setInput(1, over)
        switch.setInput(2, overlay)
        out.setInput(0, switch)
        which = switch.knob("which")
        if which is not None:
            which.setExpression("parent.view")
        colourspace = read.knob("colorspace")
        if colourspace is not None:
            colourspace.setValue(mapping.RENDER_COLOURSPACE)
        placed = [("result", read), ("place", place), ("matte_to_alpha", copy), ("premult", premult)]
        placed += [("plate", plate), ("over", over), ("view_switch", switch), ("Output1", out)]
        placed += [("overlay_read", overlay)]
        for node_name, node in placed:
            node.setXYpos(*mapping.INNER_POSITIONS[node_name])
    finally:
        group.end()
    return group, {
        "plate": plate,
        "result": read,
        "place": place,
        "matte_to_alpha": copy,
        "premult": premult,
        "over": over,
        "view_switch": switch,
        "overlay_read": overlay,
    }


def add_menu_command(menu_path: Sequence[str], label: str, command: str, icon: str = "") -> None:
    """Add ``command`` (Python text) as ``label`` under ``menu_path`` (first item: a top menu such as Nodes);
    ``icon``: a file name found on the plugin path."""
    menu = cast(Menu, nuke.menu(menu_path[0]))
    for sub in menu_path[1:]:
        menu = menu.addMenu(sub)
    menu.addCommand(label, command, icon=icon)


def plugin_add_path(path: str) -> None:
    """Add a folder to Nuke's plugin path (and ``sys.path``)."""
    nuke.pluginAddPath(path)
