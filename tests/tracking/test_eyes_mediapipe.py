"""The benchmark's MediaPipe comparison (benchmarks/eyes_mediapipe.py), checked at tiny size."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from eyes_mediapipe import blink_agreement, blink_events, pupil_errors  # noqa: E402

SAMPLE = REPO / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"


def test_blink_events_and_agreement_on_known_series() -> None:
    ap = np.full(30, 0.3)
    ap[5:8] = 0.05  # a blink MediaPipe sees (below half the open value)
    ap[20:22] = 0.1  # a second one
    ap[12] = 0.2  # a squint, not a blink
    assert blink_events(ap) == [(5, 7), (20, 21)]
    closure = 1 - ap / 0.3
    blink = np.stack([closure, 0.4 * closure], axis=1)  # right eye: moves with the lids but never reaches 0.5
    res = blink_agreement(blink, np.stack([ap, ap], axis=1))
    assert res["left"]["pearson_r"] == pytest.approx(1.0) and res["left"]["blinks_seen"] == 2
    assert res["right"]["pearson_r"] == pytest.approx(1.0) and res["right"]["blinks_seen"] == 0
    assert res["right"]["blinks_mediapipe"] == 2


def test_pupil_error_is_relative_to_the_eye_width() -> None:
    lm = np.zeros((1, 68, 2))
    lm[0, 42], lm[0, 45] = [100, 50], [140, 50]  # left eye, 40 px wide
    lm[0, 36], lm[0, 39] = [20, 50], [50, 50]  # right eye, 30 px wide
    pupils = np.array([[[120.0, 50.0], [35.0, 50.0]]])
    iris = pupils + [[[2.0, 0.0], [0.0, 3.0]]]
    err = pupil_errors(pupils, np.array([[1.0, 0.0]]), lm, iris)
    assert err[0, 0] == pytest.approx(0.05) and np.isnan(err[0, 1])  # right: no pupil found


def test_mediapipe_iris_near_the_tracker_pupils_on_three_sample_frames() -> None:
    pytest.importorskip("mediapipe")
    if not SAMPLE.is_file():
        pytest.skip(f"{SAMPLE} not found")
    from eyes_mediapipe import MediaPipeEyes

    from dvp_engine.tracking.pipeline import default_landmark_source, read_source

    try:
        src = default_landmark_source()
    except (ImportError, FileNotFoundError) as exc:
        pytest.skip(f"dlib or its model missing: {exc}")
    _, frames, _ = read_source(SAMPLE, [1, 60, 120])
    mp = MediaPipeEyes()
    obs = [src(f) for f in frames]
    ref = [mp(f) for f in frames]
    mp.close()
    assert all(r is not None for r in ref)
    iris = np.stack([r["iris"] for r in ref])
    assert np.all(iris[:, 0, 0] > iris[:, 1, 0])  # the actor's left eye is on the image right
    err = pupil_errors(np.stack([o.pupils for o in obs]), np.stack([o.pupil_confidence for o in obs]),
                       np.stack([o.landmarks for o in obs]), iris)  # fmt: skip
    assert np.nanmax(err) < 0.15, err  # within 15 % of the eye width on every frame
    ap = np.stack([r["aperture"] for r in ref])
    assert np.all((ap > 0.15) & (ap < 0.6)), ap  # open eyes
