"""68 facial landmarks per frame: a small swappable :class:`LandmarkSource` protocol and the dlib implementation.

:class:`DlibLandmarkTracker` (alias :data:`LandmarkTracker`) runs dlib's frontal HOG face detector once, then
tracks the face box from the previous frame's landmarks and re-runs dlib's 68-point shape predictor
(``shape_predictor_68_face_landmarks.dat`` from the ``face-recognition-models`` package) inside it. Every frame a
cheap local detector pass on a crop around the tracked box (about 1-2 ms) scores the face; when that check fails
(no face, the box moved off the landmarks, the landmark spread no longer fits the box) or the face was lost, the
full-frame detector runs again (status ``redetected``).

Licence note: dlib's 68-point predictor was trained on the iBUG 300-W data set, whose terms exclude commercial
use. Studios that need a commercially clean pipeline swap in their own source: anything with ``track(image) ->
LandmarkResult`` and ``reset()`` satisfies :class:`LandmarkSource`.

Landmark order is iBUG-68 (0-16 jaw, 17-21 the actor's right brow, 22-26 left brow, 27-35 nose, 36-41 the actor's
RIGHT eye (image left), 42-47 the actor's LEFT eye (image right), 48-67 mouth). Coordinates are float32 pixels,
pixel ``(0, 0)``'s centre at ``(0, 0)`` (OpenCV/kornia convention), x right, y down. dlib rounds its points to
whole pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from .detect import Detection, FaceDetector, FrameError, as_rgb_uint8, box_iou, is_blank, model_path

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Box = tuple[float, float, float, float]

RIGHT_EYE = slice(36, 42)
"""dlib indices of the actor's right eye (image left): outer corner 36, upper lid 37-38, inner corner 39, lower
lid 40-41."""
LEFT_EYE = slice(42, 48)
"""dlib indices of the actor's left eye (image right): inner corner 42, upper lid 43-44, outer corner 45, lower
lid 46-47."""

# Points that move little with expression: nose bridge and tip (27-35) and the eyes (36-47).
_RIGID = np.r_[27:36, 36:48]


class LandmarkStatus(StrEnum):
    """Per-frame status of a landmark source.

    ``ok``: tracked (or first detected) face; ``redetected``: the full-frame detector ran again because the fit
    degraded or the face had been lost; ``multiple_faces_took_largest``: a full-frame detection found several
    faces and the largest was taken; ``tiny_face``: a face was found but is smaller than the source's minimum
    size: its landmarks are less reliable, so they are used with a confidence scaled down by the face's size
    (no hard drop at the threshold: a 63 px face is tracked like its 64 px neighbours, less trusted);
    ``no_face``: nothing found (black/flat frame, face left the picture); ``invalid_frame``: the frame was not a
    usable image (None, wrong shape or dtype, NaN); the track state is kept for the next frame.
    """

    OK = "ok"
    REDETECTED = "redetected"
    MULTIPLE = "multiple_faces_took_largest"
    TINY = "tiny_face"
    NO_FACE = "no_face"
    INVALID = "invalid_frame"


USABLE = frozenset(
    {LandmarkStatus.OK, LandmarkStatus.REDETECTED, LandmarkStatus.MULTIPLE, LandmarkStatus.TINY}
)
"""Statuses whose landmarks a tracker should use."""


@dataclass(frozen=True)
class LandmarkResult:
    """What a landmark source reports for one frame.

    Attributes:
        landmarks: ``(68, 2)`` float32 pixel coordinates (iBUG-68 order, pixel-centre convention), or None.
        confidence: in [0, 1]; 0 when no usable face. Built from the detector's score on the tracked box, the
            face size and how much of the face lies inside the frame.
        status: see :class:`LandmarkStatus`.
        message: a human-readable reason for any status other than ``ok`` ("" for ok).
        box: ``(left, top, right, bottom)`` pixel box the predictor ran in, or None.
        detected: True when the full-frame detector ran on this frame.
        n_faces: faces the full-frame detector found (0 when it did not run).
        score: the detector's SVM score for the face (NaN when unknown).
    """

    landmarks: F32 | None
    confidence: float
    status: LandmarkStatus
    message: str = ""
    box: Box | None = None
    detected: bool = False
    n_faces: int = 0
    score: float = float("nan")

    @property
    def found(self) -> bool:
        """True when the landmarks are usable (status ok, redetected, multiple_faces_took_largest or
        tiny_face; a tiny face's confidence is lower)."""
        return self.landmarks is not None and self.status in USABLE


@runtime_checkable
class LandmarkSource(Protocol):
    """Anything that turns frames, in order, into 68 landmarks. Sources may keep state between frames."""

    def track(self, image: Any) -> LandmarkResult:
        """Landmarks for the next frame: ``(H, W, 3)`` uint8 sRGB (other shapes/dtypes: see
        :func:`~dvp_engine.tracking.detect.as_rgb_uint8`). Must not raise on bad frames: return status
        ``invalid_frame`` / ``no_face``."""
        ...

    def reset(self) -> None:
        """Forget the tracked face (the next frame runs the full detector)."""
        ...


def inter_ocular_distance(landmarks: F32 | F64) -> float:
    """Distance between the outer eye corners (dlib points 36 and 45), pixels: the 300-W normalisation."""
    lm = np.asarray(landmarks, np.float64)
    return float(np.hypot(*(lm[45] - lm[36])))


def _frame_of(landmarks: F64) -> tuple[F64, float, float]:
    """Rigid frame of a landmark set: centroid of the rigid points, their RMS radius, eye-line angle (rad)."""
    pts = landmarks[_RIGID]
    c = pts.mean(axis=0)
    s = float(np.sqrt(np.mean(np.sum((pts - c) ** 2, axis=1))))
    d = landmarks[LEFT_EYE].mean(axis=0) - landmarks[RIGHT_EYE].mean(axis=0)
    return c, s, math.atan2(float(d[1]), float(d[0]))


@dataclass
class _BoxModel:
    """Where a detector box sits relative to the rigid landmark frame (learnt at each detection)."""

    offset: F64  # box centre - centroid, in the face's frame, units of the rigid radius
    width: float  # box width / rigid radius
    height: float

    @classmethod
    def learn(cls, landmarks: F64, box: Box) -> _BoxModel:
        c, s, a = _frame_of(landmarks)
        s = max(s, 1e-6)
        bc = np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])
        ca, sa = math.cos(a), math.sin(a)
        d = bc - c
        off = np.array([ca * d[0] + sa * d[1], -sa * d[0] + ca * d[1]]) / s
        return cls(off, (box[2] - box[0] + 1.0) / s, (box[3] - box[1] + 1.0) / s)

    def box(self, landmarks: F64) -> Box:
        c, s, a = _frame_of(landmarks)
        ca, sa = math.cos(a), math.sin(a)
        o = self.offset * s
        cx = c[0] + ca * o[0] - sa * o[1]
        cy = c[1] + sa * o[0] + ca * o[1]
        hw, hh = (self.width * s - 1.0) / 2.0, (self.height * s - 1.0) / 2.0
        return (cx - hw, cy - hh, cx + hw, cy + hh)


UPSIDE_DOWN_MARGIN = 0.5
"""How much higher (dlib SVM score) the face in the frame turned by 180 degrees must score than the upright
one for the frame to count as upside down (an upright face scores about 0.5-3, its upside-down view below 0)."""


def implausible(landmarks: F32 | F64) -> str:
    """Why a 68-point set cannot be a face ("" if it can): the order of the features along and across the
    eye line (brows above eyes above nose tip above mouth above chin; eye corners left to right; the nose tip
    between the eyes), checked in the face's own frame so any head roll passes. Catches a predictor that ran
    in a wrong box and scattered its points."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
        return "landmarks are not finite"
    _, s, a = _frame_of(lm)
    if s < 1e-6:
        return "landmarks collapsed to a point"
    ca, sa = math.cos(a), math.sin(a)
    c = lm - lm[_RIGID].mean(axis=0)
    u = (ca * c[:, 0] + sa * c[:, 1]) / s  # along the eye line (image right for an upright face)
    v = (-sa * c[:, 0] + ca * c[:, 1]) / s  # across it (down)
    eye_r, eye_l = v[36:42].mean(), v[42:48].mean()
    eyes_v = (eye_r + eye_l) / 2.0
    order = [
        ("brows above the eyes", v[17:27].mean() < eyes_v),
        ("nose tip below the eyes", v[30] > eyes_v),
        ("mouth below the nose tip", v[51] > v[30] and v[57] > v[30]),
        ("chin below the mouth", v[8] > v[57] - 0.05),
        ("eye corners in order", u[36] < u[39] < u[42] < u[45]),
        ("nose tip between the eyes", u[36] < u[30] < u[45]),
        ("mouth corners in order", u[48] < u[54]),
    ]
    for what, ok in order:
        if not ok:
            return f"implausible landmark layout ({what} fails)"
    return ""


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class DlibLandmarkTracker:
    """dlib frontal detector + 68-point shape predictor with box tracking (a :class:`LandmarkSource`).

    Args:
        predictor_path: the 68-point ``.dat`` file; default from ``face-recognition-models``
            (:func:`~dvp_engine.tracking.detect.model_path`).
        detect_factor: block-average factor for the full-frame detector (0 = long side ~256 px, i.e. 1/2 for
            512-pixel frames).
        min_face_px: faces whose box is narrower than this (pixels) get status ``tiny_face``.
        verify_every: run the local detector check every N frames (1 = every frame; larger is faster but
            notices a lost face later; the last score is reused in between).
        min_iou: the local detector's box must overlap the tracked box this much, else re-detect.
        max_spread_change: re-detect when the landmark spread relative to the detector box changes by more
            than this fraction from the value at the last detection.
        max_box_offset: re-detect when the local detector's box centre lies further than this fraction of its
            width from the box the landmarks predict.
        upsample_when_lost: dlib upsampling for the last full-frame pass (finds faces down to ~40 px).
    """

    name = "dlib-68"

    def __init__(
        self,
        predictor_path: str | Path | None = None,
        *,
        detect_factor: int = 0,
        min_face_px: float = 64.0,
        verify_every: int = 1,
        min_iou: float = 0.35,
        max_spread_change: float = 0.3,
        max_box_offset: float = 0.2,
        upsample_when_lost: int = 1,
    ) -> None:
        import dlib

        self._dlib = dlib
        path = Path(predictor_path) if predictor_path is not None else model_path()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: dlib shape predictor file not found")
        self._predictor = dlib.shape_predictor(str(path))
        self.detector = FaceDetector(detect_factor=detect_factor, upsample_when_lost=upsample_when_lost)
        self.min_face_px = float(min_face_px)
        self.verify_every = max(1, int(verify_every))
        self.min_iou = float(min_iou)
        self.max_spread_change = float(max_spread_change)
        self.max_box_offset = float(max_box_offset)
        self.reset()

    # ------------------------------------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget the tracked face; the next frame runs the full-frame detector."""
        self._prev: F64 | None = None
        self._box_model: _BoxModel | None = None
        self._score = float("nan")
        self._since_verify = 0
        self._ever_detected = False

    def __call__(self, image: Any) -> LandmarkResult:
        return self.track(image)

    # ------------------------------------------------------------------------------------------------ steps
    def _predict(self, rgb: npt.NDArray[np.uint8], box: Box) -> F64:
        rect = self._dlib.rectangle(
            int(round(box[0])), int(round(box[1])), int(round(box[2])), int(round(box[3]))
        )
        shape = self._predictor(rgb, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)

    def _confidence(self, score: float, landmarks: F64, box: Box, shape: tuple[int, ...]) -> float:
        # detector score: 0 (dlib's threshold) -> 0.88, 0.5 -> 0.97, -0.5 -> 0.6, -1 -> 0.2
        det = _sigmoid((score + 0.6) / 0.3) if math.isfinite(score) else 0.5
        width = box[2] - box[0] + 1.0
        size = min(1.0, width / (1.5 * self.min_face_px))
        h, w = shape[:2]
        pts = landmarks[_RIGID]
        inside = float(
            np.mean((pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1))
        )
        return float(np.clip(det * size * inside, 0.0, 1.0))

    def _result(
        self,
        rgb: npt.NDArray[np.uint8],
        lm: F64,
        box: Box,
        score: float,
        status: LandmarkStatus,
        message: str,
        detected: bool,
        n_faces: int,
    ) -> LandmarkResult:
        conf = self._confidence(score, lm, box, rgb.shape)
        width = box[2] - box[0] + 1.0
        if width < self.min_face_px:
            status = LandmarkStatus.TINY
            message = (
                f"small face ({width:.0f} px wide, under {self.min_face_px:.0f} px): tracked with confidence "
                f"{conf:.2f}"
            )
        fbox: Box = (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        return LandmarkResult(lm.astype(np.float32), conf, status, message, fbox, detected, n_faces, score)

    def _upside_down(self, rgb: npt.NDArray[np.uint8], score: float) -> bool:
        """True when the frame turned by 180 degrees holds a face scored clearly higher (by
        :data:`UPSIDE_DOWN_MARGIN`) than the best upright one (``score``; -inf when none): the face is upside
        down. dlib's frontal detector and predictor otherwise fit an upright face shape to it, which the
        tracker would take as a valid frame."""
        flipped = self.detector.detect(np.ascontiguousarray(rgb[::-1, ::-1]))
        return bool(flipped) and max(f.score for f in flipped) > score + UPSIDE_DOWN_MARGIN

    def _detect(self, rgb: npt.NDArray[np.uint8], why: str) -> LandmarkResult:
        dets: list[Detection] = self.detector.detect(rgb)
        had_track = self._ever_detected
        self._prev, self._box_model = None, None
        if self._upside_down(rgb, dets[0].score if dets else -math.inf):
            msg = "the face is upside down (the plate turned 180 degrees?); not tracked"
            return LandmarkResult(None, 0.0, LandmarkStatus.NO_FACE, msg, detected=True)
        if not dets:
            msg = "no face found" + (f" ({why})" if why else "")
            return LandmarkResult(None, 0.0, LandmarkStatus.NO_FACE, msg, detected=True)
        d = dets[0]
        lm = self._predict(rgb, d.box)
        self._box_model = _BoxModel.learn(lm, d.box)
        self._prev, self._score, self._since_verify = lm, d.score, 0
        self._ever_detected = True
        if len(dets) > 1:
            status = LandmarkStatus.MULTIPLE
            msg = f"{len(dets)} faces found, took the largest ({d.width:.0f} px wide)"
        elif had_track:
            status, msg = (
                LandmarkStatus.REDETECTED,
                f"face re-detected ({why})" if why else "face re-detected",
            )
        else:
            status, msg = LandmarkStatus.OK, ""
        return self._result(rgb, lm, d.box, d.score, status, msg, True, len(dets))

    def track(self, image: Any) -> LandmarkResult:
        """Landmarks for the next frame (call on the frames in order). Never raises on bad frames."""
        try:
            rgb = as_rgb_uint8(image)
        except FrameError as exc:
            return LandmarkResult(None, 0.0, LandmarkStatus.INVALID, f"invalid frame: {exc}")
        if is_blank(rgb):
            self._prev, self._box_model = None, None
            return LandmarkResult(
                None, 0.0, LandmarkStatus.NO_FACE, "no face found (the frame is black or flat)"
            )
        if self._prev is None or self._box_model is None:
            return self._detect(rgb, "face was lost" if self._ever_detected else "")

        bm = self._box_model
        box = bm.box(self._prev)
        lm = self._predict(rgb, box)
        box2 = bm.box(lm)
        bw = box[2] - box[0] + 1.0
        if max(abs(box2[0] - box[0]), abs(box2[1] - box[1])) > 0.08 * bw:  # fast motion: fit again
            box, lm = box2, self._predict(rgb, box2)
            box2 = bm.box(lm)
        bad = implausible(lm)
        if bad:
            return self._detect(rgb, bad)
        self._since_verify += 1
        score = self._score
        if self._since_verify >= self.verify_every:
            self._since_verify = 0
            det = self.detector.verify(rgb, box2)
            if det is None:
                return self._detect(rgb, "the tracked box no longer holds a face")
            iou = box_iou(det.box, box2)
            if iou < self.min_iou:
                return self._detect(rgb, f"tracked box drifted (overlap {iou:.2f} with the detector's)")
            off = math.hypot(
                det.centre[0] - (box2[0] + box2[2]) / 2.0, det.centre[1] - (box2[1] + box2[3]) / 2.0
            )
            if off > self.max_box_offset * det.width:
                return self._detect(rgb, f"landmarks moved off the face (box offset {off / det.width:.2f})")
            _, s, _ = _frame_of(lm)
            ratio = (det.width / max(s, 1e-6)) / bm.width
            if abs(ratio - 1.0) > self.max_spread_change:
                return self._detect(rgb, f"landmark spread no longer fits the face box (ratio {ratio:.2f})")
            score = det.score
        self._prev, self._score = lm, score
        return self._result(rgb, lm, box, score, LandmarkStatus.OK, "", False, 0)


LandmarkTracker = DlibLandmarkTracker
"""The default :class:`LandmarkSource` (what :mod:`dvp_engine.tracking.pipeline` instantiates)."""


def track_frames(frames: Iterable[Any], source: LandmarkSource | None = None) -> list[LandmarkResult]:
    """Run a landmark source over frames in order (default: a fresh :class:`DlibLandmarkTracker`)."""
    src = source if source is not None else DlibLandmarkTracker()
    return [src.track(f) for f in frames]
