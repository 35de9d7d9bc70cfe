"""Knob <-> channel mapping, Import Track and Export Curves against the strict fake ``nuke``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dvp_engine.core import CurveSet, FaceTrack, apply_curves, layout
from dvp_engine.core.curves import control_values


def _all_channels() -> list[str]:
    from dvp_nuke import mapping

    return list(layout.FRAME_CHANNELS + layout.AUX_CHANNELS + mapping.DEFAULT_CONTROLS) + ["face.x2_custom"]


def test_mapping_round_trips_for_every_channel() -> None:
    from dvp_nuke import mapping

    seen: set[tuple[str, int]] = set()
    for ch in _all_channels():
        knob, idx = mapping.channel_to_knob(ch)
        assert knob.replace("_", "a").isalnum(), knob  # a legal Nuke knob name
        assert mapping.knob_to_channel(knob, idx) == ch
        assert (knob, idx) not in seen
        seen.add((knob, idx))
    specs = mapping.knob_layout()
    on_node = mapping.channel_knobs(specs)
    assert set(on_node) == set(layout.FRAME_CHANNELS + layout.AUX_CHANNELS + mapping.DEFAULT_CONTROLS)
    for ch, pair in on_node.items():
        assert mapping.channel_to_knob(ch) == pair
    assert len({s.name for s in specs}) == len(specs)  # knob names unique


@pytest.mark.parametrize("bad", ["expr.64", "light.sh.27", "head.scale", "face.", "face.a.b", "gaze.left.z"])
def test_unmappable_channels(bad: str) -> None:
    from dvp_nuke import mapping

    with pytest.raises(mapping.UnmappableChannel):
        mapping.channel_to_knob(bad)


def test_advanced_group_is_closed_and_holds_raw_coefficients() -> None:
    from dvp_nuke import mapping

    specs = mapping.knob_layout()
    kinds = [s.kind for s in specs]
    start, end = kinds.index("begin_closed_group"), kinds.index("end_group")
    inside = {ch for s in specs[start:end] for ch in s.channels}
    assert inside == set(layout.EXPRESSION + layout.LIGHT)
    outside = {ch for s in specs[:start] + specs[end:] for ch in s.channels}
    assert set(layout.HEAD_ROTATION + layout.GAZE + layout.BLINK) <= outside
    kinds_of = {s.name: s.kind for s in specs}
    # XY/XYZ viewer handles would edit degrees and metres as pixels: the only XY knob holds plate pixels
    assert kinds_of["head_ry"] == "double" and kinds_of["gaze_left_x"] == "double"
    assert [s.name for s in specs if s.kind in ("xy", "xyz")] == ["look_at"]
    assert not specs[kinds.index("xy")].channels  # converted by the engine, not mapped per channel
    assert mapping.channel_to_knob("head.ry") == ("head_ry", 0)
    assert mapping.channel_to_knob("gaze.right.y") == ("gaze_right_y", 0)
    by_name = {s.name: s for s in specs}
    assert by_name["head_rx"].startline and not by_name["head_ry"].startline  # one line per group


def _node_with_track(nuke: Any, tmp_path: Path, track: FaceTrack, **kw: Any) -> Any:
    from dvp_nuke import node as dnode

    path = tmp_path / "shot.npz"
    track.save(path)
    n = dnode.create_node("DVPortrait1", output=str(tmp_path / "out" / "f.####.exr"), **kw)
    n.knob("track_file").setValue(str(path))
    return n


def test_import_sets_exactly_the_tracked_keys(nuke: Any, tmp_path: Path, make_track: Any) -> None:
    from dvp_nuke import anim
    from dvp_nuke import node as dnode

    nuke._state.frame = 5.0  # the current frame is not a tracked frame: setAnimated must leave no key there
    frames = [1001, 1002, 1003, 1005, 1010]  # gaps stay gaps
    track = make_track(frames, controls=("face.jaw_open", "face.smile"))
    n = _node_with_track(nuke, tmp_path, track)
    report = dnode.import_track(n)
    values = anim.track_values(track)
    assert set(report.loaded) == set(values)
    for ch, vals in values.items():
        knob_name, idx = anim.node_channels(n)[ch]
        curve = n.knob(knob_name).animation(idx)
        keys = curve.keys()
        assert [k.x for k in keys] == [float(f) for f in frames], ch
        np.testing.assert_allclose([k.y for k in keys], vals, rtol=0, atol=1e-12, err_msg=ch)
    # named controls of the default model that this track lacks are reported, not animated
    assert "face.frown" in report.missing and not n.knob("face_frown").isAnimated(0)
    assert n.knob("frame_range").value() == "1001-1003,1005,1010"
    assert any("not in the track" in m for m in nuke._state.messages)
    # importing again replaces the animation instead of adding to it
    dnode.import_track(n)
    assert len(n.knob("head_ry").animation(0).keys()) == len(frames)


def test_channel_mismatch_reports_and_loads_the_rest(nuke: Any, tmp_path: Path, make_track: Any) -> None:
    from dvp_nuke import node as dnode

    base = make_track(range(1, 11), controls=("face.jaw_open", "face.new_ctrl"))
    chans = {k: v for k, v in base.channels.items() if not k.startswith("blink.")}
    chans["head.scale"] = np.ones(10, np.float32)  # a channel this dvp does not know
    track = base.replace(channels=chans)
    n = _node_with_track(nuke, tmp_path, track)
    n.knob("blink_left").setValueAt(0.7, 3.0, 0)  # stale animation from an earlier track
    report = dnode.import_track(n)
    assert report.extra == ["head.scale"]
    assert {"blink.left", "blink.right"} <= set(report.missing)
    assert report.added == ["face.new_ctrl"] and n.knob("face_new_ctrl").isAnimated(0)
    assert not n.knob("blink_left").isAnimated(0) and n.knob("blink_left").value() == 0.0
    text = nuke._state.messages[-1]
    assert "head.scale" in text and "blink.left" in text and "ignored" in text
    # matching channels still loaded
    np.testing.assert_allclose(
        [k.y for k in n.knob("head_rz").animation(0).keys()], track.channels["head.rz"], atol=1e-12
    )


def test_export_after_edits_reproduces_them(nuke: Any, tmp_path: Path, make_track: Any) -> None:
    from dvp_nuke import node as dnode

    frames = list(range(1001, 1021))
    track = make_track(frames)
    n = _node_with_track(nuke, tmp_path, track)
    dnode.import_track(n)
    # the artist's edits: keys moved, a named control pushed, a raw coefficient changed
    n.knob("gaze_left_x").setValueAt(15.0, 1005, 0)
    n.knob("gaze_left_y").setValueAt(-4.0, 1006, 0)
    n.knob("blink_right").setValueAt(1.0, 1010, 0)
    n.knob("head_tz").setValueAt(0.9, 1001, 0)
    n.knob("expr_07").setValueAt(2.5, 1012, 0)
    jaw_before = control_values(track, "face.jaw_open")
    n.knob("face_jaw_open").setValueAt(float(jaw_before[15]) + 1.25, 1016, 0)
    n.knob("track_confidence").setValueAt(0.0, 1002, 0)  # display-only: never exported
    out = dnode.export_curves(n)
    curves = CurveSet.load(out)
    assert set(curves.curves) == {
        "gaze.left.x",
        "gaze.left.y",
        "blink.right",
        "head.tz",
        "expr.07",
        "face.jaw_open",
    }
    assert curves.curves["face.jaw_open"].mode == "offset"
    edited = apply_curves(track, curves)
    i = {f: k for k, f in enumerate(frames)}
    assert edited.channels["gaze.left.x"][i[1005]] == pytest.approx(15.0, abs=1e-5)
    assert edited.channels["gaze.left.y"][i[1006]] == pytest.approx(-4.0, abs=1e-5)
    assert edited.channels["blink.right"][i[1010]] == pytest.approx(1.0, abs=1e-6)
    assert edited.channels["head.tz"][i[1001]] == pytest.approx(0.9, abs=1e-6)
    # every other frame and channel is untouched
    for ch in ("gaze.left.x", "head.rx", "blink.left", "track.confidence"):
        mask = np.ones(len(frames), bool)
        if ch == "gaze.left.x":
            mask[i[1005]] = False
        np.testing.assert_allclose(edited.channels[ch][mask], track.channels[ch][mask], atol=1e-6, err_msg=ch)
    # the raw edit holds, and the control lands on the artist's value where it was keyed
    jaw_after = control_values(edited, "face.jaw_open")
    assert jaw_after[i[1016]] == pytest.approx(jaw_before[15] + 1.25, abs=1e-4)
    np.testing.assert_allclose(
        np.delete(jaw_after, [i[1012], i[1016]]), np.delete(jaw_before, [i[1012], i[1016]]), atol=1e-4
    )
    assert edited.channels["expr.07"][i[1012]] != pytest.approx(track.channels["expr.07"][i[1012]])


def test_export_without_edits_is_empty_and_needs_a_track(nuke: Any, tmp_path: Path, make_track: Any) -> None:
    from dvp_nuke import node as dnode

    track = make_track(range(1, 6))
    n = _node_with_track(nuke, tmp_path, track)
    dnode.import_track(n)
    assert CurveSet.load(dnode.export_curves(n)).curves == {}
    n.knob("track_file").setValue("")
    with pytest.raises(dnode.DvpNukeError, match="track"):
        dnode.export_curves(n)


def test_node_layout_in_the_fake(nuke: Any) -> None:
    from dvp_nuke import node as dnode

    n = dnode.create_node()
    assert isinstance(n.knob("head_ry"), nuke.Double_Knob)
    assert isinstance(n.knob("gaze_right_x"), nuke.Double_Knob)
    assert isinstance(n.knob("track_file"), nuke.File_Knob)
    assert isinstance(n.knob("render"), nuke.PyScript_Knob)
    assert n.knob("advanced")._kind == nuke.TABBEGINCLOSEDGROUP
    read = n.node("result")
    assert read is not None and read.Class() == "Read"
    sw = n.node("view_switch")
    assert sw.knob("which")._expr == {0: "parent.view"}
    over = n.node("over")
    assert over.input(0) is n.node("plate") and over.input(1) is n.node("premult")
    copy = n.node("matte_to_alpha")
    assert copy.input(0) is n.node("place") and copy.input(1) is n.node("place")
    assert copy.knob("from0").value() == "matte.alpha" and copy.knob("to0").value() == "rgba.alpha"
    assert n.node("premult").input(0) is copy and sw.input(0) is n.node("place")


def test_create_node_from_track_shows_its_controls(nuke: Any, tmp_path: Path, make_track: Any) -> None:
    from dvp_nuke import node as dnode

    track = make_track(range(1, 6), controls=("face.jaw_open", "face.lip_roll"))
    path = tmp_path / "t.npz"
    track.save(path)
    n = dnode.create_node("Actor", track=str(path))
    assert n.knob("face_lip_roll").isAnimated(0) and n.knob("face_smile") is None
    assert nuke._state.messages == []  # the node matches the track: nothing to report
    assert n.knob("status").value().startswith("track: 5 frames 1-5")
    # the render's EXR data window places the crop on the plate: the inside Transform must not move it again
    assert n.node("place").knob("translate").value(0) == 0.0
    assert n.node("place").knob("translate").value(1) == 0.0


def test_bad_track_file_is_a_clear_error(nuke: Any, tmp_path: Path) -> None:
    from dvp_nuke import node as dnode

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    n = dnode.create_node()
    n.knob("track_file").setValue(str(bad))
    nuke._state.this_node = n
    dnode.on_button("import_track")
    assert str(bad) in nuke._state.messages[-1] and "FaceTrack" in nuke._state.messages[-1]
    assert not n.knob("head_rx").isAnimated(0)


def test_import_falls_back_to_set_value_at(nuke: Any, make_track: Any) -> None:
    from dvp_nuke import anim
    from dvp_nuke import node as dnode

    def no_key_objects(frames: Any, values: Any) -> Any:
        raise TypeError("AnimationKey() takes no arguments")

    track = make_track([3, 4, 8], controls=())
    n = dnode.create_node(controls=())
    anim.import_track(n, track, no_key_objects)
    keys = n.knob("gaze_right_y").animation(0).keys()
    assert [k.x for k in keys] == [3.0, 4.0, 8.0]
    np.testing.assert_allclose([k.y for k in keys], track.channels["gaze.right.y"], atol=1e-12)


def test_inner_graph_is_placed_and_reads_acescg(nuke: Any) -> None:
    """Issue 15 item 12 in Python: the inner nodes get their own DAG positions; the Read's colour space."""
    from dvp_nuke import mapping
    from dvp_nuke import node as dnode

    n = dnode.create_node("DVPortrait1")
    n.begin()
    try:
        inner = {name: n.node(name) for name in mapping.INNER_POSITIONS}
    finally:
        n.end()
    assert len({node.xy for node in inner.values()}) == len(inner)
    assert inner["result"].knob("colorspace").value() == "ACEScg"
