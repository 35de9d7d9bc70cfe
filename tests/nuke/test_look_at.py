"""The look-at knobs as an artist uses them: the XY handle on the plate, depth and weight, through Export
Curves into the track the renderer gets, back into the knobs, and through the .nk writer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dvp_engine.core import CurveSet, FaceTrack, apply_curves, layout
from dvp_engine.core.rotation import euler_to_matrix

FRAMES = list(range(1001, 1011))


def _nkparse() -> Any:
    spec = importlib.util.spec_from_file_location("nkparse", Path(__file__).with_name("nkparse.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["nkparse"] = mod
    spec.loader.exec_module(mod)
    return mod


def _node(tmp_path: Path, track: FaceTrack, name: str = "DVPortrait1") -> Any:
    from dvp_nuke import node as dnode

    path = tmp_path / f"{name}.npz"
    track.save(path)
    controls = tuple(n for n in track.metadata["controls"]["names"])
    n = dnode.create_node(name, output=str(tmp_path / "out" / "f.####.exr"), controls=controls)
    n.knob("track_file").setValue(str(path))
    dnode.import_track(n)
    return n


def _camera_point(x_nuke: float, y_nuke: float, depth: float, track: FaceTrack) -> np.ndarray:
    """The test's own conversion: Nuke pixel (bottom-left origin, y up, pixel centres at +0.5) -> OpenCV point."""
    fx, fy, cx, cy = track.intrinsics
    u = x_nuke - 0.5
    v = track.height - y_nuke - 0.5
    return np.array([(u - cx) / fx * depth, (v - cy) / fy * depth, depth])


def _model_centres() -> np.ndarray:
    from dvp_engine.facemodel import load_default_model

    m = load_default_model()
    return np.stack([m.eyeball_left_center, m.eyeball_right_center]).astype(np.float64)


def test_xy_handle_edit_reaches_the_rendered_gaze(nuke: Any, tmp_path: Path, make_track: Any) -> None:
    """Key the handle at two frames: look.* are the plate point at that depth, and the gaze the renderer
    gets points both eyes' rays through the target."""
    from dvp_nuke import node as dnode

    from dvp_engine.facemodel import load_default_model
    from dvp_engine.render.conditioning import track_render_inputs

    track = make_track(FRAMES)
    assert not any(c in track.channels for c in layout.LOOK_AT)
    n = _node(tmp_path, track)
    xy, depth, weight = n.knob("look_at"), n.knob("look_depth"), n.knob("look_weight")
    # without look channels: unanimated, the principal point between the lens and the face, weight 0
    assert not xy.isAnimated(0) and float(weight.value(0)) == 0.0
    assert xy.value(0) == pytest.approx(319.5 + 0.5) and xy.value(1) == pytest.approx(480 - 239.5 - 0.5)
    assert 0.3 < depth.value(0) < 0.4
    # the artist drags the handle at frame 1003 and 1008 (Nuke pixels), sets depth and weight
    xy.setAnimated(0)
    xy.setAnimated(1)
    xy.setValueAt(500.0, 1003, 0)
    xy.setValueAt(400.0, 1003, 1)
    xy.setValueAt(120.0, 1008, 0)
    xy.setValueAt(80.0, 1008, 1)
    depth.setValueAt(0.35, 1003, 0)
    depth.setValueAt(0.25, 1008, 0)
    weight.setValue(1.0, 0)
    curves = CurveSet.load(dnode.export_curves(n))
    assert set(layout.LOOK_AT) <= set(curves.curves)
    edited = apply_curves(track, curves)
    for f, want_xy, want_d in ((1003, (500.0, 400.0), 0.35), (1008, (120.0, 80.0), 0.25)):
        r = edited.index_of(f)
        got = np.array([edited.channels[c][r] for c in layout.LOOK_AT[:3]], np.float64)
        np.testing.assert_allclose(got, _camera_point(*want_xy, want_d, track), rtol=1e-6, atol=1e-7)
        # the target projects onto the plate point the handle shows
        fx, fy, cx, cy = track.intrinsics
        u, v = fx * got[0] / got[2] + cx, fy * got[1] / got[2] + cy
        np.testing.assert_allclose([u + 0.5, track.height - v - 0.5], want_xy, atol=1e-3)
    # between the keys: Nuke's interpolation of the handle, converted per frame
    r = edited.index_of(1005)
    t = (1005 - 1003) / 5
    mid = _camera_point(500 + t * (120 - 500), 400 + t * (80 - 400), 0.35 + t * (0.25 - 0.35), track)
    np.testing.assert_allclose([edited.channels[c][r] for c in layout.LOOK_AT[:3]], mid, rtol=1e-6, atol=1e-7)
    assert np.all(edited.channels["look.weight"] == 1.0)
    # what the renderer gets (dvp render applies the same curves): both eyes' rays pass through the target
    params, _ = track_render_inputs(edited, load_default_model())
    centres = _model_centres()
    gaze = params[:, layout.FRAME_LAYOUT["gaze"]]
    for r in range(edited.n_frames):
        rot = euler_to_matrix(np.array([[edited.channels[c][r] for c in layout.HEAD_ROTATION]], np.float64))[
            0
        ]
        trans = np.array([edited.channels[c][r] for c in layout.HEAD_TRANSLATION], np.float64)
        target = np.array([edited.channels[c][r] for c in layout.LOOK_AT[:3]], np.float64)
        for e in range(2):
            yaw, pitch = gaze[r, 2 * e], gaze[r, 2 * e + 1]
            d_head = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), -np.cos(yaw) * np.cos(pitch)])
            ray = rot @ d_head
            to_target = target - (rot @ centres[e] + trans)
            assert np.linalg.norm(np.cross(ray, to_target)) < 1e-5 * np.linalg.norm(to_target), (r, e)
            assert ray @ to_target > 0
    # the track's own gaze curves are not what renders here
    assert not np.allclose(gaze, track.params()[:, layout.FRAME_LAYOUT["gaze"]], atol=1e-3)


def test_track_with_look_channels_loads_into_the_knobs_and_round_trips(
    nuke: Any, tmp_path: Path, make_track: Any
) -> None:
    from dvp_nuke import node as dnode

    base = make_track(FRAMES)
    rng = np.random.default_rng(3)
    chans = dict(base.channels)
    chans["look.x"] = rng.uniform(-0.1, 0.1, len(FRAMES)).astype(np.float32)
    chans["look.y"] = rng.uniform(-0.1, 0.1, len(FRAMES)).astype(np.float32)
    chans["look.z"] = rng.uniform(0.2, 0.4, len(FRAMES)).astype(np.float32)
    chans["look.weight"] = np.linspace(0, 1, len(FRAMES)).astype(np.float32)
    track = base.replace(channels=chans)
    nuke._state.frame = 1.0  # not a tracked frame: no stray key from setAnimated
    n = _node(tmp_path, track)
    assert nuke._state.messages == []  # look.* are no longer "ignored" channels
    xy, depth, weight = n.knob("look_at"), n.knob("look_depth"), n.knob("look_weight")
    fx, fy, cx, cy = track.intrinsics
    for i in range(2):
        assert [k.x for k in xy.animation(i).keys()] == [float(f) for f in FRAMES]
    for r, f in enumerate(FRAMES):
        p = np.array([chans[c][r] for c in layout.LOOK_AT[:3]], np.float64)
        want_x = fx * p[0] / p[2] + cx + 0.5
        want_y = track.height - (fy * p[1] / p[2] + cy) - 0.5
        assert xy.getValueAt(f, 0) == pytest.approx(want_x, abs=1e-6)
        assert xy.getValueAt(f, 1) == pytest.approx(want_y, abs=1e-6)
        assert depth.getValueAt(f, 0) == pytest.approx(p[2], abs=1e-7)
        assert weight.getValueAt(f, 0) == pytest.approx(chans["look.weight"][r], abs=1e-7)
    # unedited: nothing exported for look-at
    assert not set(layout.LOOK_AT) & set(CurveSet.load(dnode.export_curves(n)).curves)
    # an edit of the weight alone exports the weight alone
    weight.setValueAt(0.0, 1010, 0)
    assert set(CurveSet.load(dnode.export_curves(n)).curves) == {"look.weight"}
    # move the handle at one frame: the target moves there, elsewhere it stays where the track had it
    xy.setValueAt(33.0, 1004, 0)
    xy.setValueAt(44.0, 1004, 1)
    curves = CurveSet.load(dnode.export_curves(n))
    assert set(curves.curves) == set(layout.LOOK_AT)
    edited = apply_curves(track, curves)
    r = edited.index_of(1004)
    np.testing.assert_allclose(
        [edited.channels[c][r] for c in layout.LOOK_AT[:3]],
        _camera_point(33.0, 44.0, float(chans["look.z"][r]), track),
        rtol=1e-6,
        atol=1e-7,
    )
    others = [i for i in range(len(FRAMES)) if i != r]
    for c in layout.LOOK_AT[:3]:
        np.testing.assert_allclose(edited.channels[c][others], chans[c][others], rtol=1e-6, atol=1e-7)
    # round trip: the edited track loaded into a second node shows the same knob values
    edited_path = tmp_path / "edited.npz"
    edited.save(edited_path)
    n2 = dnode.create_node("DVPortrait2", controls=("face.jaw_open", "face.smile"))
    n2.knob("track_file").setValue(str(edited_path))
    dnode.import_track(n2)
    for f in FRAMES:
        for knob, idx in (("look_at", 0), ("look_at", 1), ("look_depth", 0), ("look_weight", 0)):
            assert n2.knob(knob).getValueAt(f, idx) == pytest.approx(
                n.knob(knob).getValueAt(f, idx), abs=2e-4 if knob == "look_at" else 1e-6
            ), (knob, idx, f)


def test_target_behind_the_head_is_refused_naming_the_frame(
    nuke: Any, tmp_path: Path, make_track: Any
) -> None:
    from dvp_nuke import node as dnode

    track = make_track(FRAMES)  # the face about 0.7 m from the lens
    n = _node(tmp_path, track)
    n.knob("look_depth").setValue(3.0, 0)  # 3 m: behind the head
    w = n.knob("look_weight")
    for f, v in ((1004, 0.0), (1005, 1.0), (1006, 0.0)):  # only frame 1005 uses the target
        w.setValueAt(v, f, 0)
    nuke._state.this_node = n
    dest = tmp_path / "out" / "DVPortrait1_curves.json"
    dnode.on_button("export_curves")
    (msg,) = nuke._state.messages
    assert "frame 1005" in msg and "behind the face" in msg and "look at" in msg, msg
    assert not dest.exists()
    assert "error" in n.knob("status").value()
    # a depth of 0 (the lens plane) names the first frame too
    n.knob("look_depth").setValue(0.0, 0)
    with pytest.raises(dnode.DvpNukeError, match=r"frame 1001.*depth"):
        dnode.export_curves(n)


def test_nk_script_round_trips_the_look_knobs(make_track: Any) -> None:
    from dvp_nuke import mapping
    from dvp_nuke.nkscript import nk_snippet

    nkparse = _nkparse()
    base = make_track([1, 2, 3, 5])
    chans = dict(base.channels)
    chans.update(
        {
            "look.x": np.array([0.01, -0.02, 0.0, 0.03], np.float32),
            "look.y": np.array([0.0, 0.01, 0.02, -0.01], np.float32),
            "look.z": np.array([0.3, 0.32, 0.35, 0.2], np.float32),
            "look.weight": np.array([1, 0.5, 0, 1], np.float32),
        }
    )
    track = base.replace(channels=chans)
    top, _ = nkparse.parse_nodes(nk_snippet(track))
    (group,) = [g for g in top if g.cls == "Group"]
    defs = {str(u[1].text.split()[1]): u[1].text for u in group.user_knobs}
    assert defs["look_at"].startswith("12 ")  # XY_Knob
    want = mapping.look_knob_values(track)
    got = {k: nkparse.knob_animation(group.knobs[k]) for k in mapping.LOOK_KNOBS}
    for (frames, vals), w in zip(
        got["look_at"] + got["look_depth"] + got["look_weight"],
        [want.x, want.y, want.depth, want.weight],
        strict=True,
    ):
        assert frames == [1.0, 2.0, 3.0, 5.0]
        np.testing.assert_allclose(vals, w, rtol=1e-8)
    # back through the engine: the same channels (float32)
    back = mapping.look_channels_from_knobs(
        got["look_at"][0][1], got["look_at"][1][1], got["look_depth"][0][1], got["look_weight"][0][1], track
    )
    for c in layout.LOOK_AT:
        np.testing.assert_allclose(back[c], chans[c], rtol=1e-6, atol=1e-8)
    # a track without look-at: constant defaults, weight 0
    top, _ = nkparse.parse_nodes(nk_snippet(base))
    (group,) = [g for g in top if g.cls == "Group"]
    x, y = nkparse.knob_animation(group.knobs["look_at"])
    assert (x, y) == pytest.approx(mapping.default_look_knobs(base)[:2])
    assert nkparse.knob_animation(group.knobs["look_weight"]) == [0.0]
