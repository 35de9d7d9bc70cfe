"""render_conditioning_sequence: a track to 9-channel EXRs (read back and compared) and PNG previews."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from dvp_engine.core import layout
from dvp_engine.core.errors import DvpError, InputError
from dvp_engine.core.track import FaceTrack
from dvp_engine.facemodel import load_default_model
from dvp_engine.render.camera import Camera
from dvp_engine.render.conditioning import render_conditioning
from dvp_engine.render.sequence import CHANNEL_NAMES, render_conditioning_sequence
from dvp_engine.render.shading import ambient_sh

L = layout.FRAME_LAYOUT


def _track(tmp_path: Path) -> Path:
    p = np.zeros((3, layout.FRAME_SIZE))
    p[:, L["translation"]] = [0.0, 0.0, 0.6]
    p[:, L["sh"]] = ambient_sh(0.9).numpy()
    p[1, L["rotation"]] = np.deg2rad([0.0, 20.0, 0.0])
    p[2, L["translation"]] = [0.0, 0.0, -0.6]  # behind the camera: empty, flagged
    track = FaceTrack.from_params(
        [1001, 1002, 1003],
        p,
        rate=Fraction(25),
        width=512,
        height=512,
        intrinsics=(1200.0, 1200.0, 255.5, 255.5),
    )
    return track.save(tmp_path / "track.npz")


def test_exr_sequence_round_trips_the_conditioning_images(tmp_path: Path) -> None:
    from dvp_engine.io.images import read_image

    track_path = _track(tmp_path)
    seen: list[int] = []
    out = tmp_path / "cond" / "cond.####.exr"
    summary = render_conditioning_sequence(track_path, out, "1001-1003", size=32, progress=seen.append)
    assert seen == [1001, 1002, 1003]
    assert [p.name for p in summary.written] == ["cond.1001.exr", "cond.1002.exr", "cond.1003.exr"]
    assert summary.empty_frames == [1003] and summary.size == (32, 32)
    track = FaceTrack.load(track_path)
    expected = render_conditioning(
        load_default_model(),
        track.params(),
        track.identity,
        track.reflectance,
        Camera.from_intrinsics(track.intrinsics, 512, 512),
        32,
    ).images.numpy()
    for i, path in enumerate(summary.written):
        pixels, meta = read_image(path)
        assert pixels.shape == (32, 32, 9)
        np.testing.assert_allclose(pixels.transpose(2, 0, 1), expected[i], atol=2e-3)  # half floats
        assert meta["dvp:frame"] == 1001 + i and meta["dvp:synthetic"] == 1
        assert meta["dvp:visible"] == (0 if i == 2 else 1)
    assert len(CHANNEL_NAMES) == 9 and CHANNEL_NAMES[3] == "corr.R"


def test_preview_png_and_format_errors(tmp_path: Path) -> None:
    from dvp_engine.io.images import read_image

    track_path = _track(tmp_path)
    summary = render_conditioning_sequence(
        track_path, tmp_path / "prev.%04d.png", [1002], size=24, preview=True
    )
    pixels, _ = read_image(summary.written[0])
    assert pixels.shape == (24, 72, 3)
    # the middle third (correspondence) is never black on the face, the gaze third is mostly black
    assert (pixels[:, 24:48].max(axis=-1) > 0.09).mean() > 0.2
    assert (pixels[:, 48:].max(axis=-1) == 0).mean() > 0.9
    with pytest.raises(InputError, match="9 conditioning channels"):
        render_conditioning_sequence(track_path, tmp_path / "c.####.png", size=24)
    with pytest.raises(InputError, match="frame 999"):
        render_conditioning_sequence(track_path, tmp_path / "c.####.exr", [999], size=24)
    with pytest.raises(DvpError, match="overwrite"):
        render_conditioning_sequence(
            track_path, tmp_path / "prev.%04d.png", [1002], size=24, preview=True, overwrite=False
        )
