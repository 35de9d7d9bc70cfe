"""Named controls ``face.*``: one definition of what an edited set of controls does to the expression.

The face model's 12 shipped directions are far from orthogonal (brow_raise / brow_lower cosine -0.99), so
these tests use them: with projections applied one after another, an edit of one control was pulled back
by every later, unchanged one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dvp_engine.core import Curve, CurveSet, Key, SchemaError, apply_curves, controls, layout
from dvp_engine.core.curves import control_values
from dvp_engine.transfer import apply_sets

from .test_track import make_track

_MODEL = Path(__file__).resolve().parents[2] / "dvp_engine" / "data" / "face_model.npz"


def _shipped_controls() -> tuple[list[str], np.ndarray]:
    with np.load(_MODEL, allow_pickle=False) as z:
        matrix = np.asarray(z["control_matrix"], dtype=np.float64)
    doc = json.loads((_MODEL.with_suffix(".json")).read_text("utf-8"))
    names = [str(n) for n in doc["control_names"]]
    return names, matrix


def _track_with_controls(n: int = 6):  # type: ignore[no-untyped-def]
    names, matrix = _shipped_controls()
    t = make_track(n=n)
    t.metadata["controls"] = {"names": names, "matrix": matrix.tolist()}
    return t, names


def test_shipped_directions_are_far_from_orthogonal() -> None:
    names, m = _shipped_controls()
    u = m / np.linalg.norm(m, axis=1, keepdims=True)
    cos = u @ u.T
    assert cos[names.index("face.brow_raise"), names.index("face.brow_lower")] < -0.95


def test_all_controls_exported_as_overrides_one_edited_arrives_exactly() -> None:
    """Blender's export: every control as an override, smile +1; smile arrives +1, the rest unchanged."""
    t, names = _track_with_controls()
    frames = t.frames.astype(float)
    before = {n: control_values(t, n) for n in names}
    curves = {}
    for n in names:
        vals = before[n] + (1.0 if n == "face.smile" else 0.0)
        curves[n] = Curve([Key(f, float(v), "linear") for f, v in zip(frames, vals, strict=True)])
    out = apply_curves(t, CurveSet(curves))
    for n in names:
        want = before[n] + (1.0 if n == "face.smile" else 0.0)
        np.testing.assert_allclose(control_values(out, n), want, atol=2e-4, err_msg=n)
    # the face moved along the smile direction only (the rest of the expression is unchanged)
    d = controls.control_directions(t)["face.smile"]
    delta = np.stack([out.channels[c] - t.channels[c] for c in layout.EXPRESSION], axis=1)
    np.testing.assert_allclose(delta, np.outer(np.ones(len(frames)), d), atol=2e-4)


@pytest.mark.parametrize("first", ["face.brow_raise", "face.mouth_wide", "face.eye_squint"])
def test_order_of_overrides_does_not_matter(first: str) -> None:
    t, names = _track_with_controls()
    before = {n: control_values(t, n) for n in names}
    order = [first] + [n for n in names if n != first]
    f0 = float(t.frames[0])
    cs = CurveSet({n: Curve([Key(f0, float(before[n][0]) + (1.0 if n == first else 0.0))]) for n in order})
    out = apply_curves(t, cs)
    assert control_values(out, first)[0] == pytest.approx(before[first][0] + 1.0, abs=2e-4)
    for n in names:
        if n != first:
            assert control_values(out, n)[0] == pytest.approx(before[n][0], abs=2e-4), n


def test_offsets_of_several_controls_add_independently() -> None:
    t, names = _track_with_controls()
    before = {n: control_values(t, n) for n in names}
    out = apply_sets(t, ["face.brow_raise=+1", "face.brow_lower=-0.5", "face.eye_wide=+0.25"])
    want = {"face.brow_raise": 1.0, "face.brow_lower": -0.5, "face.eye_wide": 0.25}
    for n in names:
        np.testing.assert_allclose(control_values(out, n), before[n] + want.get(n, 0.0), atol=2e-4, err_msg=n)


def test_coordinates_reproduce_a_combination_of_directions() -> None:
    names, m = _shipped_controls()
    rng = np.random.default_rng(3)
    c = rng.normal(0, 1, (5, len(names)))
    residual = rng.normal(0, 1, (5, m.shape[1]))
    # a residual orthogonal to every direction does not change the coordinates
    q, _ = np.linalg.qr(m.T)
    residual -= residual @ q @ q.T
    np.testing.assert_allclose(controls.coordinates(c @ m + residual, m), c, atol=1e-9)


def test_curve_file_records_the_control_semantics(tmp_path: Path) -> None:
    t, _ = _track_with_controls()
    path = CurveSet({"face.smile": Curve([Key(1001, 0.5)], "offset")}).save(tmp_path / "c.json")
    doc = json.loads(path.read_text())
    assert doc["controls"] == controls.SEMANTICS == "least-squares"
    assert CurveSet.load(path).controls == "least-squares"
    doc["controls"] = "projection-sequential"
    path.write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match="c.json.*'projection-sequential'.*least-squares"):
        CurveSet.load(path)


def test_old_curve_file_with_control_overrides_is_refused(tmp_path: Path) -> None:
    """Before the semantics were recorded, face.* overrides meant projections applied in turn."""
    doc = {
        "schema": "DVPCurves.1",
        "channels": {"face.smile": {"mode": "override", "keys": [{"frame": 1, "value": 0.3}]}},
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match="old.json.*face.smile.*re-export"):
        CurveSet.load(path)
    # offsets meant the same then as now: accepted
    doc["channels"]["face.smile"]["mode"] = "offset"
    path.write_text(json.dumps(doc))
    assert CurveSet.load(path).curves["face.smile"].mode == "offset"


def test_control_and_its_raw_coefficient_both_edited_controls_win() -> None:
    """Bad input: face.smile and expr.j (which smile's direction covers) on the same frames.

    Documented rule: raw coefficients are applied first, then every named control in the file takes its
    curve's value; the raw edit survives only outside the span of the control directions.
    """
    t, names = _track_with_controls(n=3)
    d = controls.control_directions(t)["face.smile"]
    j = int(np.argmax(np.abs(d)))
    raw = layout.EXPRESSION[j]
    f = [float(x) for x in t.frames]
    cs = CurveSet(
        {
            raw: Curve([Key(x, 5.0) for x in f]),
            "face.smile": Curve([Key(x, 0.25) for x in f]),
        }
    )
    out = apply_curves(t, cs)
    np.testing.assert_allclose(control_values(out, "face.smile"), 0.25, atol=2e-4)
    only_raw = apply_curves(t, CurveSet({raw: cs.curves[raw]}))
    for n in names:
        if n != "face.smile":  # the other controls see the raw edit
            np.testing.assert_allclose(control_values(out, n), control_values(only_raw, n), atol=2e-4)
    assert not np.allclose(out.channels[raw], 5.0, atol=1e-3)  # the control won on the shared coefficient
