from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvp_engine.core import Curve, CurveSet, InputError, Key, SchemaError, apply_curves, layout
from dvp_engine.core.curves import control_values, curves_from_track

from .test_track import make_track


def test_interpolations_exact_at_keys_and_shaped_between() -> None:
    keys = [Key(0, 0.0, "linear"), Key(10, 10.0, "constant"), Key(20, 0.0, "smooth"), Key(30, 5.0)]
    c = Curve(keys)
    np.testing.assert_allclose(c.sample([0, 10, 20, 30]), [0, 10, 0, 5])
    np.testing.assert_allclose(c.sample([5]), [5.0])  # linear
    np.testing.assert_allclose(c.sample([15, 19.9]), [10.0, 10.0])  # constant holds
    assert 0.0 < c.sample([25])[0] < 5.0  # smooth segment stays between its keys here
    np.testing.assert_allclose(c.sample([-5, 40]), [0.0, 5.0])  # held beyond the ends


def test_bezier_slopes_are_used() -> None:
    flat = Curve([Key(0, 0.0, "bezier", out_slope=0.0), Key(10, 1.0, in_slope=0.0)])
    steep = Curve([Key(0, 0.0, "bezier", out_slope=1.0), Key(10, 1.0, in_slope=0.0)])
    assert flat.sample([1])[0] < steep.sample([1])[0]
    # derivative at the start equals out_slope
    eps = 1e-4
    assert abs((steep.sample([eps])[0] - steep.sample([0])[0]) / eps - 1.0) < 1e-2


def test_invalid_curves() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        Curve([Key(5, 0), Key(5, 1)])
    with pytest.raises(ValueError, match="non-finite value"):
        Curve([Key(1, float("nan"))])
    with pytest.raises(ValueError, match="interpolation"):
        Curve([Key(1, 0, "cubic")])
    with pytest.raises(ValueError, match="before its start"):
        Curve([Key(1, 0)], range=(10, 5))


def test_file_round_trip_and_nan_rejected(tmp_path: Path) -> None:
    cs = CurveSet(
        {
            "gaze.left.x": Curve([Key(1010, 0.0), Key(1040, 12.5, "linear", in_slope=0.5)], "override"),
            "head.ry": Curve([Key(1001, 10.0)], "offset", (1001, 1050)),
        }
    )
    path = cs.save(tmp_path / "c.json")
    back = CurveSet.load(path)
    assert back.to_json() == cs.to_json()
    doc = json.loads(path.read_text())
    doc["channels"]["head.ry"]["keys"][0]["value"] = float("nan")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))  # json.dumps writes NaN
    with pytest.raises(InputError, match="bad.json.*NaN"):
        CurveSet.load(bad)
    doc["schema"] = "DVPCurves.7"
    bad.write_text(json.dumps({"schema": "DVPCurves.7", "channels": {}}))
    with pytest.raises(SchemaError, match="DVPCurves.7"):
        CurveSet.load(bad)


key_lists = st.lists(
    st.tuples(
        st.integers(-100, 3000),
        st.floats(-1e4, 1e4),
        st.sampled_from(["constant", "linear", "smooth", "bezier"]),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda k: k[0],
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(keys=key_lists, mode=st.sampled_from(["override", "offset"]))
def test_curve_file_round_trip_property(tmp_path: Path, keys: list, mode: str) -> None:
    keys = sorted(keys)
    cs = CurveSet({"blink.left": Curve([Key(float(f), v, i) for f, v, i in keys], mode)})
    back = CurveSet.load(cs.save(tmp_path / "p.json"))
    frames = np.arange(keys[0][0] - 2, keys[-1][0] + 3)
    np.testing.assert_array_equal(
        back.curves["blink.left"].sample(frames), cs.curves["blink.left"].sample(frames)
    )
    np.testing.assert_allclose(back.curves["blink.left"].sample([k[0] for k in keys]), [k[1] for k in keys])


def test_apply_override_and_offset_only_in_range() -> None:
    t = make_track(n=10)  # frames 1001..1019 step 2
    cs = CurveSet(
        {
            "gaze.left.x": Curve([Key(1005, 3.0, "linear"), Key(1009, 7.0)], "override"),
            "head.ry": Curve([Key(1001, 10.0)], "offset", (1001, 1007)),
        }
    )
    out = apply_curves(t, cs)
    np.testing.assert_allclose(out.channel("gaze.left.x")[2:5], [3.0, 5.0, 7.0], atol=1e-6)
    np.testing.assert_array_equal(out.channel("gaze.left.x")[[0, 1, 5]], t.channel("gaze.left.x")[[0, 1, 5]])
    np.testing.assert_allclose(out.channel("head.ry")[:4], t.channel("head.ry")[:4] + 10.0, atol=1e-5)
    np.testing.assert_array_equal(out.channel("head.ry")[4:], t.channel("head.ry")[4:])
    # untouched channels are identical
    np.testing.assert_array_equal(out.channel("expr.05"), t.channel("expr.05"))


def test_apply_unknown_channel_lists_valid() -> None:
    with pytest.raises(KeyError, match="unknown channel 'gaze.left.z'.*gaze.left.x"):
        apply_curves(make_track(), CurveSet({"gaze.left.z": Curve([Key(1, 0.0)])}))


def test_named_control_override() -> None:
    t = make_track(n=4)
    d = np.zeros(64)
    d[[0, 3]] = [0.6, 0.8]
    t.metadata["controls"] = {"names": ["face.jaw_open"], "matrix": [d.tolist()]}
    out = apply_curves(t, CurveSet({"face.jaw_open": Curve([Key(1001, 2.0)], "override", (1001, 1007))}))
    np.testing.assert_allclose(control_values(out, "face.jaw_open"), 2.0, atol=1e-5)
    # only the control's direction moved
    np.testing.assert_array_equal(out.channel("expr.01"), t.channel("expr.01"))


def test_curves_from_track_reproduces_track() -> None:
    t = make_track(n=5)
    cs = curves_from_track(t, list(layout.GAZE))
    out = apply_curves(t.replace(channels={**t.channels, "gaze.left.x": np.zeros(5, np.float32)}), cs)
    np.testing.assert_allclose(out.channel("gaze.left.x"), t.channel("gaze.left.x"), atol=1e-6)
