"""The .nk writer (pure) and `dvp nuke-script` (batch.cli_main): parse the text back and compare."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dvp_engine.core import Curve, CurveSet, FrameSet, Key

_spec = importlib.util.spec_from_file_location("nkparse", Path(__file__).with_name("nkparse.py"))
assert _spec is not None and _spec.loader is not None
nkparse = importlib.util.module_from_spec(_spec)
sys.modules["nkparse"] = nkparse
_spec.loader.exec_module(nkparse)


def _group_animation(
    text: str, name: str = "DVPortrait1"
) -> tuple[Any, dict[str, tuple[list[float], list[float]]]]:
    from dvp_nuke import mapping

    top, inner = nkparse.parse_nodes(text)
    (group,) = [n for n in top if n.cls == "Group"]
    assert group.name == name
    anim: dict[str, tuple[list[float], list[float]]] = {}
    for knob, value in group.knobs.items():
        try:
            mapping.knob_to_channel(knob, 0)
        except KeyError:
            continue
        if True:
            for idx, item in enumerate(nkparse.knob_animation(value)):
                if isinstance(item, tuple):
                    anim[mapping.knob_to_channel(knob, idx)] = item
    return (top, inner, group), anim


def test_snippet_parses_back_to_the_same_animation(make_track: Any) -> None:
    from dvp_nuke import anim, mapping
    from dvp_nuke.nkscript import nk_snippet

    frames = [1001, 1002, 1003, 1005, 1007, 1009, 1010, 1020]  # gaps and changing spacing
    track = make_track(frames, controls=mapping.DEFAULT_CONTROLS)
    text = nk_snippet(track, track_path="/shots/a b/shot.npz", output="/out/sh.####.exr", model_dir="/m")
    (top, inner, group), got = _group_animation(text)
    want = anim.track_values(track)
    assert set(got) == set(want)
    for ch, values in want.items():
        f, v = got[ch]
        assert f == [float(x) for x in frames], ch
        np.testing.assert_array_equal(np.float32(v), np.float32(values), err_msg=ch)
    assert group.knobs["track_file"] == "/shots/a b/shot.npz"  # quoted and unquoted correctly
    assert list(FrameSet.parse(group.knobs["frame_range"])) == frames
    # knob definitions: every spec once, closed advanced group, buttons with their Python
    defs = {str(u[1].text.split()[1]): u[1].text for u in group.user_knobs}
    assert set(defs) == {s.name for s in mapping.knob_layout(mapping.DEFAULT_CONTROLS)}
    assert defs["head_ry"].startswith("7 ") and defs["gaze_left_x"].startswith("7 ")
    assert defs["advanced"].endswith("n 1") and group.knobs["advanced"] == "0"
    assert defs["advanced_end"].endswith("n -1")
    assert "on_button('render')" in nkparse.words(defs["render"])[0][-1]


def test_inside_graph_connections() -> None:
    from dvp_nuke.nkscript import nk_snippet

    text = nk_snippet(None, output="/out/f.####.exr", frame_range="1-10", plate="/plate/p.####.exr")
    top, inner = nkparse.parse_nodes(text)
    read_plate, group = top
    assert read_plate.cls == "Read" and group.inputs == [read_plate]
    nodes = {n.name: n for n in inner["DVPortrait1"]}
    assert nodes["place"].inputs == [nodes["result"]]
    assert nodes["matte_to_alpha"].inputs == [nodes["place"], nodes["place"]]
    assert nodes["matte_to_alpha"].knobs["from0"] == "matte.alpha"
    assert nodes["premult"].inputs == [nodes["matte_to_alpha"]]
    assert nodes["over"].inputs == [nodes["plate"], nodes["premult"]]  # B = plate, A = the render
    # show: result (0), over plate (1), overlay (2: the tracker's overlay, dvp overlay)
    assert nodes["view_switch"].inputs == [nodes["place"], nodes["over"], nodes["overlay_read"]]
    assert nodes["Output1"].inputs == [nodes["view_switch"]]
    assert nodes["result"].knobs["file"] == "/out/f.####.exr" and nodes["result"].knobs["last"] == "10"


def test_no_second_placement_and_standalone_script(make_track: Any) -> None:
    from dvp_nuke.nkscript import nk_snippet

    track = make_track(range(1, 4))  # 640 x 480: the render's EXR data window is the centred 480 square
    text = nk_snippet(track, standalone=True)
    top, inner = nkparse.parse_nodes(text)
    root = top[0]
    assert root.cls == "Root" and root.knobs["first_frame"] == "1" and root.knobs["last_frame"] == "3"
    place = {n.name: n for n in inner["DVPortrait1"]}["place"]
    assert "translate" not in place.knobs  # identity: the EXR places itself
    assert top[1].inputs == [None]


def test_curve_text_spacing() -> None:
    from dvp_nuke.nkscript import curve_text

    text = curve_text([1, 2, 3, 5, 7, 8], [0.5, 1, 2, 3, 4, 5])
    assert text == "{curve x1 0.5 x2 1 2 x5 3 4 x8 5}"
    assert nkparse.parse_curve(text[1:-1]) == ([1, 2, 3, 5, 7, 8], [0.5, 1, 2, 3, 4, 5])


def test_tcl_quote() -> None:
    from dvp_nuke.nkscript import tcl_quote

    assert tcl_quote("abc/def.npz") == "abc/def.npz"
    for text in ['a "b" [c] $d {e}\\', "two\nlines", "", "f.####.exr"]:
        quoted = tcl_quote(text)
        assert nkparse.words(f"k {quoted}")[0][1] == text


def test_batch_cli(tmp_path: Path, make_track: Any, capsys: Any) -> None:
    from dvp_nuke.batch import cli_main

    track = make_track(range(1001, 1011))
    tpath = tmp_path / "shot.npz"
    track.save(tpath)
    edits = CurveSet({"gaze.left.x": Curve([Key(1001, 30.0), Key(1010, 30.0)], mode="override")})
    cpath = edits.save(tmp_path / "edits.json")
    out = tmp_path / "shot.nk"
    argv = [str(tpath), "-o", str(out), "--curves", str(cpath), "--output", "/o/f.####.exr", "--script"]
    assert cli_main(argv) == 0
    _, got = _group_animation(out.read_text())
    assert got["gaze.left.x"][1] == [30.0] * 10
    np.testing.assert_array_equal(np.float32(got["head.ry"][1]), track.channels["head.ry"])
    assert cli_main(argv) == 2 and "exists" in capsys.readouterr().err
    assert cli_main(argv + ["--overwrite", "--frames", "9-1"]) == 2
    assert cli_main([str(tmp_path / "none.npz"), "-o", str(tmp_path / "x.nk")]) == 1
    assert "track file not found" in capsys.readouterr().err
    assert cli_main([str(tpath), "-o", str(tmp_path / "x.txt")]) == 2
    with pytest.raises(SystemExit):
        raise SystemExit(cli_main(["--help"]))


def test_nk_follows_real_nuke_script_conventions(make_track: Any) -> None:
    """What real .nk files do: {{curve}} on single knobs, l "" on text knobs, the matte layer declared,
    nodes placed in the DAG, the render's Read in the colour space dvp writes."""
    from dvp_nuke import mapping
    from dvp_nuke.nkscript import nk_snippet

    track = make_track([1, 2, 3], controls=mapping.DEFAULT_CONTROLS)
    text = nk_snippet(track, output="/out/f.####.exr", plate="/plate/p.####.exr")
    assert " blink_left {{curve x1 " in text and " blink_left {curve" not in text
    assert "add_layer {matte matte.alpha}" in text.splitlines()[:4]
    top, inner = nkparse.parse_nodes(text)  # single-value curves parse only as {{curve ...}}
    (group,) = [n for n in top if n.cls == "Group"]
    assert sum(1 for u in group.user_knobs if u[1].text.startswith("26 ")) == 2
    texts = [line for line in text.splitlines() if line.startswith(" addUserKnob {26 ")]
    assert len(texts) == 2 and all(' l "" ' in t for t in texts), texts
    nodes = inner["DVPortrait1"]
    places = {(n.knobs.get("xpos"), n.knobs.get("ypos")) for n in nodes}
    assert None not in {p[0] for p in places} and len(places) == len(nodes)  # every node has its own place
    assert all("xpos" in n.knobs for n in top)
    result = {n.name: n for n in nodes}["result"]
    assert result.knobs["colorspace"] == "ACEScg"
