from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dvp_engine.core import layout
from dvp_engine.core.rotation import axis_angle_to_matrix, euler_to_matrix, matrix_to_euler


def test_layout_sizes_match_paper() -> None:
    # 6 pose + 64 expression + 27 SH + 4 gaze (paper, without identity) + 2 blinks
    assert layout.FRAME_SIZE == 103
    assert len(layout.FRAME_CHANNELS) == layout.FRAME_SIZE
    assert len(set(layout.FRAME_CHANNELS)) == layout.FRAME_SIZE
    assert layout.FRAME_LAYOUT["sh"].stop - layout.FRAME_LAYOUT["sh"].start == 27
    assert layout.FRAME_CHANNELS[layout.FRAME_LAYOUT["gaze"].start] == "gaze.left.x"


def test_pack_unpack_round_trip_and_units() -> None:
    rng = np.random.default_rng(0)
    chans = {n: rng.normal(size=5).astype(np.float32) for n in layout.FRAME_CHANNELS}
    p = layout.pack(chans)
    assert p.shape == (5, 103)
    np.testing.assert_allclose(p[:, 1], np.deg2rad(chans["head.ry"]), rtol=1e-6)
    back = layout.unpack(p)
    for n in layout.FRAME_CHANNELS:
        np.testing.assert_allclose(back[n], chans[n], rtol=1e-5, atol=1e-6)


def test_pack_errors() -> None:
    with pytest.raises(ValueError, match="head.tz"):
        layout.pack({"head.rx": np.zeros(3)})
    with pytest.raises(ValueError, match="different lengths"):
        layout.pack({"head.tz": np.zeros(3), "head.rx": np.zeros(4)})
    with pytest.raises(KeyError, match="valid channels"):
        layout.channel_unit("head.bogus")


def test_euler_matches_composition() -> None:
    def rx(a: float) -> np.ndarray:
        c, s = np.cos(a), np.sin(a)
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])

    def ry(a: float) -> np.ndarray:
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])

    def rz(a: float) -> np.ndarray:
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])

    a = np.deg2rad([10.0, -25.0, 40.0])
    np.testing.assert_allclose(euler_to_matrix(a, degrees=False), rz(a[2]) @ ry(a[1]) @ rx(a[0]), atol=1e-12)


@given(st.floats(-179, 179), st.floats(-89, 89), st.floats(-179, 179))
def test_euler_round_trip(x: float, y: float, z: float) -> None:
    r = euler_to_matrix([x, y, z])
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(r)), r, atol=1e-9)


def test_axis_angle_agrees_with_euler() -> None:
    np.testing.assert_allclose(
        axis_angle_to_matrix([0, np.pi / 2, 0]), euler_to_matrix([0, 90, 0]), atol=1e-12
    )
    np.testing.assert_allclose(axis_angle_to_matrix([0, 0, 0]), np.eye(3))


def test_gaze_direction_convention() -> None:
    np.testing.assert_allclose(layout.gaze_direction(0, 0), [0, 0, -1], atol=1e-12)
    # positive yaw looks toward +x (image right), positive pitch toward +y (down)
    assert layout.gaze_direction(30, 0)[0] > 0.4
    assert layout.gaze_direction(0, 20)[1] > 0.3


def test_cli_protocol_lines_round_trip() -> None:
    from dvp_engine.core.cli_protocol import ErrorLine, Progress, format_error, format_progress, parse_line

    assert parse_line(format_progress(3, 100, 1003) + "\n") == Progress(3, 100, 1003)
    assert parse_line(format_progress(3, 100)) == Progress(3, 100, None)
    assert parse_line(format_error("out/f.0037.exr: frame 37: disk full")) == ErrorLine(
        "out/f.0037.exr: frame 37: disk full", 37
    )
    assert parse_line(format_error("model/: not a dvp model folder")).frame is None  # type: ignore[union-attr]
    assert parse_line("dvp: wrote 5 frames") is None


def test_gaze_angles_inverts_gaze_direction() -> None:
    from dvp_engine.core.layout import gaze_angles, gaze_direction

    rng = np.random.default_rng(7)
    ang = np.column_stack([rng.uniform(-80, 80, 50), rng.uniform(-80, 80, 50)])
    np.testing.assert_allclose(gaze_angles(gaze_direction(ang[:, 0], ang[:, 1])), ang, atol=1e-9)
    np.testing.assert_allclose(gaze_angles([0.0, 0.0, -1.0]), [0.0, 0.0], atol=1e-12)  # out of the face
