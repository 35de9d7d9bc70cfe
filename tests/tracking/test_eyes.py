"""Eyes: pupil localisation (synthetic ground truth, real clip vs MediaPipe iris), blink measure, gaze estimate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dvp_engine.tracking import eyes as E
from dvp_engine.tracking.pipeline import read_source

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def synth_eye(
    px: float,
    py: float,
    *,
    r: float = 8.0,
    size: tuple[int, int] = (80, 120),
    centre: tuple[float, float] = (60.0, 40.0),
    axes: tuple[float, float] = (25.0, 10.0),
    roll_deg: float = 0.0,
    ss: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Skin (150) with a white sclera ellipse (230) and a dark iris disc (60) at (px, py), visible only inside
    the ellipse; anti-aliased by ``ss`` x ``ss`` supersampling. Returns the uint8 image and dlib-order eye
    points (corner, 2 upper lid, corner, 2 lower lid) on the ellipse."""
    h, w = size
    cx, cy = centre
    a, b = axes
    ys, xs = (np.mgrid[0 : h * ss, 0 : w * ss] + 0.5) / ss - 0.5
    t = math.radians(roll_deg)
    u = (xs - cx) * math.cos(t) + (ys - cy) * math.sin(t)
    v = -(xs - cx) * math.sin(t) + (ys - cy) * math.cos(t)
    sclera = (u / a) ** 2 + (v / b) ** 2 <= 1.0
    img = np.full(xs.shape, 150.0)
    img[sclera] = 230.0
    img[sclera & ((xs - px) ** 2 + (ys - py) ** 2 <= r * r)] = 60.0
    img = img.reshape(h, ss, w, ss).mean(axis=(1, 3))
    ang = np.deg2rad([180.0, 120.0, 60.0, 0.0, -60.0, -120.0])
    eu, ev = a * np.cos(ang), -b * np.sin(ang)
    pts = np.stack(
        [cx + eu * math.cos(t) - ev * math.sin(t), cy + eu * math.sin(t) + ev * math.cos(t)], axis=1
    )
    return np.round(img).astype(np.uint8), pts


@pytest.mark.parametrize(
    ("px", "py", "kw"),
    [
        (60.0, 40.0, {}),
        (53.3, 41.2, {}),
        (67.6, 38.4, {}),
        (45.2, 40.7, {}),  # near the corner: the disc is cut by the lids
        (74.5, 40.0, {}),
        (60.4, 35.5, {}),  # looking up: the upper lid hides the top of the disc
        (56.7, 43.1, {"roll_deg": 20.0}),  # rolled head
        (62.3, 39.4, {"r": 4.0, "axes": (14.0, 6.0)}),  # small eye (28 px wide)
    ],
)
def test_pupil_synthetic_within_one_pixel(px: float, py: float, kw: dict) -> None:
    img, eye = synth_eye(px, py, **kw)
    res = E.locate_pupil(img, eye)
    err = float(np.hypot(*(res.centre - (px, py))))
    assert err < 1.0, f"pupil at {res.centre}, truth ({px}, {py}): {err:.2f} px"
    assert res.confidence > 0.5
    # same answer from an RGB float frame
    rgb = np.repeat(img[..., None], 3, axis=2).astype(np.float32) / 255.0
    assert np.allclose(E.locate_pupil(rgb, eye).centre, res.centre, atol=0.05)


def test_pupil_bad_input() -> None:
    img, eye = synth_eye(60, 40)
    closed = eye.copy()
    closed[[1, 2, 4, 5], 1] = 40.0  # lids together
    r = E.locate_pupil(img, closed)
    assert r.confidence == 0.0
    nan = E.locate_pupil(img, np.full((6, 2), np.nan))
    assert nan.confidence == 0.0 and np.all(np.isnan(nan.centre))
    tiny = E.locate_pupil(img, eye * 0.05)
    assert tiny.confidence == 0.0
    flat = E.locate_pupil(np.full((80, 120), 128, np.uint8), eye)
    assert flat.confidence < 0.05
    # eye partly outside the frame: no crash
    off = E.locate_pupil(img, eye + [100.0, 0.0])
    assert off.confidence <= 1.0


def _face_with_eyes(w_eye: float = 40.0) -> np.ndarray:
    """Synthetic 68 landmarks with level eyes (only the eye points matter here)."""
    lm = np.zeros((68, 2))
    for idx, cx in ((range(36, 42), 200.0), (range(42, 48), 300.0)):
        ang = np.deg2rad([180.0, 120.0, 60.0, 0.0, -60.0, -120.0])
        lm[list(idx)] = np.stack([cx + w_eye / 2 * np.cos(ang), 250.0 - 8.0 * np.sin(ang)], axis=1)
    return lm


def test_eye_aspect_ratio_and_order() -> None:
    lm = _face_with_eyes()
    ear = E.eye_aspect_ratio(lm)
    assert np.allclose(ear, 8.0 * math.sin(math.radians(60)) / 20.0)
    assert E.eye_aspect_ratio(np.stack([lm, lm])).shape == (2, 2)
    lm2 = lm.copy()
    lm2[[43, 44], 1] += 6.0  # the actor's LEFT eye (dlib 42-47) closes: index 0
    e2 = E.eye_aspect_ratio(lm2)
    assert e2[0] < ear[0] and e2[1] == pytest.approx(ear[1])


def test_blink_measure_series() -> None:
    rng = np.random.default_rng(0)
    ear = 0.35 + 0.02 * rng.standard_normal((100, 2))
    ear[40:44] = 0.12  # a blink
    ear[70, 0] = np.nan
    b = E.blink_measure(ear)
    assert b.shape == (100, 2)
    assert np.all(b[40:44] > 0.9)
    assert np.nanmedian(b[:40]) < 0.05
    assert np.isnan(b[70, 0]) and np.isfinite(b[70, 1])
    assert np.nanmin(b) >= 0.0 and np.nanmax(b) <= 1.0
    # explicit open level, one frame
    one = E.blink_measure(np.array([0.35, 0.14]), open_level=0.35)
    assert one[0] == pytest.approx(0.0) and one[1] == pytest.approx(1.0)
    # monotone: smaller EAR, more closed
    s = E.blink_measure(np.linspace(0.4, 0.1, 20)[:, None].repeat(2, 1), open_level=0.35)
    assert np.all(np.diff(s[:, 0]) >= 0)


def test_gaze_from_pupils_signs() -> None:
    lm = _face_with_eyes(w_eye=40.0)
    centres = np.array([lm[[42, 45]].mean(axis=0), lm[[36, 39]].mean(axis=0)])
    assert np.allclose(E.gaze_from_pupils(lm, centres), 0.0, atol=1e-9)
    r = 0.42 * 40.0
    right = centres + [r * math.sin(math.radians(20)), 0.0]  # image right = model +x = positive yaw
    g = E.gaze_from_pupils(lm, right)
    assert np.allclose(g[:, 0], 20.0) and np.allclose(g[:, 1], 0.0, atol=1e-9)
    down = centres + [0.0, r * math.sin(math.radians(-10))]  # image up = negative pitch
    g = E.gaze_from_pupils(lm, down)
    assert np.allclose(g[:, 1], -10.0) and np.allclose(g[:, 0], 0.0, atol=1e-9)
    g = E.gaze_from_pupils(lm, np.array([[np.nan, np.nan], centres[1]]))
    assert np.all(np.isnan(g[0])) and np.allclose(g[1], 0.0, atol=1e-9)


def _read(path: Path, indices: list[int]) -> list[np.ndarray]:
    """The given 0-based frames of a movie as (H, W, 3) uint8 RGB, through the engine's reader (frames from 1)."""
    return read_source(path, [i + 1 for i in indices])[1]


def _track(frames: list[np.ndarray]) -> list[np.ndarray]:
    L = pytest.importorskip("dvp_engine.tracking.landmarks")
    try:
        src = L.DlibLandmarkTracker()
    except (ImportError, FileNotFoundError) as exc:
        pytest.skip(f"dlib or its model missing: {exc}")
    res = [src.track(f) for f in frames]
    assert all(r.found for r in res)
    return [np.asarray(r.landmarks, np.float64) for r in res]


def test_blink_on_real_clip() -> None:
    """lp_d6 has blinks: frames 390-394 are shut (checked by eye), 384-389 open."""
    clip = DATA / "lp_d6.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} not found")
    idx = list(range(360, 400))
    lms = _track(_read(clip, idx))
    b = E.blink_measure(E.eye_aspect_ratio(np.stack(lms)))
    closed = b[[idx.index(i) for i in (392, 393)]]
    opened = b[[idx.index(i) for i in range(384, 390)]]
    assert np.all(closed > 0.8), closed
    assert np.all(opened < 0.3), opened


def test_pupils_on_real_clip_vs_mediapipe_iris() -> None:
    clip = DATA / "wda_kh.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} not found")
    idx = [0, 50, 100, 150]
    frames = _read(clip, idx)
    lms = _track(frames)
    ms = [E.measure_eyes(f, lm) for f, lm in zip(frames, lms, strict=True)]
    for lm, m in zip(lms, ms, strict=True):
        assert m.pupils.shape == (2, 2) and m.pupil_confidence.shape == (2,) and m.gaze.shape == (2, 2)
        assert m.pupils[0, 0] > m.pupils[1, 0]  # the actor's left eye is on the image right
        for k, ix in enumerate(E.EYE_INDICES):
            eye = lm[list(ix)]
            lo, hi = eye.min(axis=0) - 3, eye.max(axis=0) + 3
            assert np.all((m.pupils[k] > lo) & (m.pupils[k] < hi))
            assert m.pupil_confidence[k] > 0.2
        assert np.all(np.abs(m.gaze) < 30.0)  # she looks at the camera
    mp = pytest.importorskip("mediapipe")
    errs = []
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=1, refine_landmarks=True
    ) as mesh:
        for f, lm, m in zip(frames, lms, ms, strict=True):
            res = mesh.process(f)
            h, w = f.shape[:2]
            pts = np.array([[p.x * w - 0.5, p.y * h - 0.5] for p in res.multi_face_landmarks[0].landmark])
            for k, ix in enumerate(E.EYE_INDICES):
                eye = lm[list(ix)]
                iris = min((pts[468], pts[473]), key=lambda p: np.linalg.norm(p - eye.mean(axis=0)))
                errs.append(np.linalg.norm(m.pupils[k] - iris) / np.linalg.norm(eye[0] - eye[3]))
    assert np.median(errs) < 0.06 and max(errs) < 0.2, np.round(errs, 3)


@pytest.mark.parametrize(("px", "py"), [(60.0, 40.0), (55.4, 41.3), (64.2, 38.9)])
def test_specular_highlights_do_not_pull_the_pupil(px: float, py: float) -> None:
    """Two ring-light reflections in the upper iris (bright spots, ~2.5 px across): the centre stays within
    half a pixel of the disc's; with highlight removal off the same image is more than a pixel off."""
    img, eye = synth_eye(px, py)
    f = img.astype(np.float64)
    ys, xs = np.mgrid[0 : f.shape[0], 0 : f.shape[1]]
    for dx in (-2.5, 2.5):
        f[(xs - (px + dx)) ** 2 + (ys - (py - 3.5)) ** 2 <= 1.6**2] = 255.0
    spot = np.round(f).astype(np.uint8)
    with_removal = E.locate_pupil(spot, eye)
    without = E.locate_pupil(spot, eye, highlight_px=0)
    err = float(np.hypot(*(with_removal.centre - (px, py))))
    err_off = float(np.hypot(*(without.centre - (px, py))))
    assert err < 0.5, f"pupil at {with_removal.centre}, truth ({px}, {py}): {err:.2f} px"
    assert err_off > 1.0, (
        f"without highlight removal the error is only {err_off:.2f} px: the test shows nothing"
    )
    assert with_removal.confidence > 0.5
