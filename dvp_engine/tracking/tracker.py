"""The monocular face tracker (paper section 4): identity over keyframes, then per-frame tracking.

:class:`Tracker` turns frames plus per-frame landmark observations (:class:`FrameObservation`, from any
landmark source: dlib by default, see :mod:`dvp_engine.tracking.pipeline`) into packed FaceTrack parameters:

1. **identity mode** (:meth:`Tracker.fit_identity`): K keyframes spread over the clip, identity alpha and
   reflectance beta solved jointly with each keyframe's pose, expression, blinks and SH light, then held fixed;
2. **tracking mode** (:meth:`Tracker.track`): per frame pose (6), expression (64), blinks (2) and SH (27)
   warm-started from the last good frame (pose first re-aligned on the landmarks alone), frames solved in
   batches (block-diagonal normal equations, batched Cholesky: many frames at once on the GPU); then gaze per
   eye from the pupils (:func:`~dvp_engine.tracking.solver.solve_gaze`).

Lost frames (the landmark source found no face, the fit's landmark error exceeds
``max_landmark_error`` of the inter-ocular distance, or the fitted head is tilted more than ``max_tilt_deg``
from upright: an upside-down face) get ``valid = 0``, confidence 0 and parameters
interpolated between the neighbouring good frames (held before the first and after the last good frame;
:func:`interpolate_lost`); the next frame with a face is
re-initialised from its landmarks, so tracking recovers. ``confidence`` in [0, 1] combines the detector's
confidence, the landmark error and the photometric error (see :func:`confidence_from_errors`).

Camera: a pinhole with ``fx = fy = focal_factor * max(width, height)`` (default 2.0, a 28 degree field of view
across the long side: portrait footage is usually shot or cropped with a moderate telephoto), principal point at
the image centre ``((w - 1) / 2, (h - 1) / 2)``. Pass explicit intrinsics when the camera is known.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from dvp_engine.core import layout
from dvp_engine.core.gaze import EyeCalibration

from . import solver as S
from .eye_calibration import calibrate_eyes_in_order, calibration_inputs
from .xp import Array, asnumpy, blas_threads, box_blur, get_xp

ProgressFn = Callable[[int, int], None]


@dataclass
class FrameObservation:
    """What a landmark source reports for one frame.

    Attributes:
        landmarks: ``(68, 2)`` dlib/iBUG-68 pixel positions, or None when no face was found.
        landmark_confidence: scalar or ``(68,)`` in [0, 1].
        pupils: ``(2, 2)`` pupil pixel positions (the actor's left eye first = image right), or None.
        pupil_confidence: ``(2,)`` in [0, 1] (0 = not found, e.g. a closed eye).
        message: why the face was not found, or a warning (two faces, tiny face), for the log.
    """

    landmarks: npt.NDArray[np.float64] | None
    landmark_confidence: float | npt.NDArray[np.float64] = 1.0
    pupils: npt.NDArray[np.float64] | None = None
    pupil_confidence: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(2))
    message: str = ""

    @property
    def found(self) -> bool:
        """A face with finite landmarks was reported."""
        return self.landmarks is not None and bool(np.all(np.isfinite(self.landmarks)))


@dataclass
class TrackerSettings:
    """Tracker settings (stored in the track's metadata).

    Attributes:
        solver: energy weights and iteration counts.
        device: ``"cpu"`` (numpy) or ``"cuda"`` (CuPy).
        batch_size: frames solved together (CPU default 4; use 64-256 on a GPU).
        identity_keyframes: K frames for the identity solve (0 = mean identity).
        focal_factor: ``fx = fy = focal_factor * max(width, height)`` when no intrinsics are given.
        blur_radius: box-blur radius (pixels) applied to the frame before the photometric term (default 0:
            the model colour is compared with the frame at the vertex; blur biases the fit at colour edges).
        max_landmark_error: fraction of the inter-ocular distance above which a fitted frame counts as lost.
        max_tilt_deg: largest angle (degrees) between the fitted head's up axis and the upright head's (the
            model's +y); a fit tilted further (an upside-down face: roll or pitch near 180) counts as lost.
        smooth: temporally smooth the curves (off by default; see :func:`smooth_params`).
        smooth_sigma: Gaussian sigma in frames for ``smooth``.
        blas_threads: numpy's OpenBLAS threads while solving on the CPU (the systems are small: one thread is
            as fast on a quiet machine and much faster on a busy one); None leaves BLAS as it is.
        eyeball_follows_face: move the eyeball centres with the mean displacement of their eye openings
            (identity + expression) in the gaze solve, every frame. Off by default because the renderer
            (:mod:`dvp_engine.render.conditioning`) places pupils around one pair of centres per track (the
            track's eye calibration, ``FaceTrack.eyes.centres``), and gaze must mean the same in both; the
            calibration (``eye_calibration``) is what accounts for the actor's eye openings then. Eye
            calibration is off with it.
        eye_calibration: how the actor's eyeball centres are estimated from the clip
            (:func:`~dvp_engine.tracking.eye_calibration.calibrate_eyes`): ``"camera"`` (the actor looks into
            the lens in most frames; where the clip does not bear that out, ``"forward"`` is tried next),
            ``"forward"`` (the eyes point along the face on average) or ``"none"`` (the face model's fixed
            centres). When no assumption holds, the model's centres moved with the fitted face's eye openings
            are used, set apart so that the eyes' gaze rays meet (method ``binocular``; ``openings`` when that
            cannot be set either), with a note in the track.
        eye_calibration_min_frames: fewest frames with a pupil (per eye) to calibrate; fewer falls back to
            ``openings``, with a note in the track.
    """

    solver: S.SolverSettings = field(default_factory=S.SolverSettings)
    device: str = "cpu"
    batch_size: int = 4
    identity_keyframes: int = 5
    focal_factor: float = 2.0
    blur_radius: int = 0
    max_landmark_error: float = 0.15
    max_tilt_deg: float = 100.0
    smooth: bool = False
    smooth_sigma: float = 1.0
    eyeball_follows_face: bool = False
    eye_calibration: str = "camera"
    eye_calibration_min_frames: int = 30
    blink_obs_min_frames: int = 30
    blas_threads: int | None = 1

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "solver"}
        d["solver"] = self.solver.as_dict()
        return d


def default_intrinsics(
    width: int, height: int, focal_factor: float = 2.0
) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)``: ``fx = fy = focal_factor * max(w, h)``, principal point at the image centre."""
    f = float(focal_factor) * max(width, height)
    return (f, f, (width - 1) / 2.0, (height - 1) / 2.0)


def confidence_from_errors(
    land_rel: npt.NDArray[np.float64], photo: npt.NDArray[np.float64], detector: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Per-frame confidence in [0, 1].

    ``detector * exp(-0.5 (e_land / 0.06)^2) * exp(-0.5 (e_photo / 0.2)^2)`` with ``e_land`` the RMS landmark
    error over the inter-ocular distance and ``e_photo`` the mean l1 sRGB error of the visible vertices: a
    3%-of-IOD landmark fit with 0.05 colour error gives ~0.85, a 10% fit ~0.25.
    """
    c = detector * np.exp(-0.5 * (land_rel / 0.06) ** 2) * np.exp(-0.5 * (photo / 0.2) ** 2)
    return np.clip(np.nan_to_num(c, nan=0.0), 0.0, 1.0)


@dataclass
class TrackResult:
    """Tracker output (numpy).

    Attributes:
        params: ``(F, FRAME_SIZE)`` packed FaceTrack parameters (radians).
        confidence, valid: ``(F,)``.
        landmark_error: ``(F,)`` RMS landmark reprojection error / inter-ocular distance (NaN where lost).
        photo_error: ``(F,)`` mean l1 colour error (NaN where lost).
        model_landmarks: ``(F, 68, 2)`` projected model landmarks (pixels).
        identity, reflectance: ``(80,)``.
        timings: seconds spent in each stage.
        messages: per-frame notes (why a frame was lost).
        eyes: the eye calibration the gaze was solved with (:mod:`dvp_engine.tracking.eye_calibration`).
    """

    params: npt.NDArray[np.float64]
    confidence: npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_]
    landmark_error: npt.NDArray[np.float64]
    photo_error: npt.NDArray[np.float64]
    model_landmarks: npt.NDArray[np.float64]
    identity: npt.NDArray[np.float64]
    reflectance: npt.NDArray[np.float64]
    timings: dict[str, float]
    messages: dict[int, str]
    eyes: EyeCalibration | None = None


def head_tilt_deg(rotation: npt.ArrayLike) -> float:
    """Angle in degrees between the head's up axis and the upright head's, for Euler angles ``(rx, ry, rz)``
    in radians (``R = Rz @ Ry @ Rx``): 0 upright, 90 lying on its side, 180 upside down. Yaw alone is 0."""
    from dvp_engine.core.rotation import euler_to_matrix

    r = euler_to_matrix(np.asarray(rotation, np.float64), degrees=False)
    return float(np.degrees(np.arccos(np.clip(r[1, 1], -1.0, 1.0))))


def to_packed(local: npt.NDArray[np.float64], gaze: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Solver-order local parameters ``(B, 99)`` + gaze ``(B, 4)`` to the FaceTrack packed layout ``(B, 103)``."""
    L = layout.FRAME_LAYOUT
    out = np.zeros((local.shape[0], layout.FRAME_SIZE))
    out[:, L["rotation"]] = local[:, S.ROT]
    out[:, L["translation"]] = local[:, S.TRANS]
    out[:, L["expression"]] = local[:, S.EXPR]
    out[:, L["sh"]] = local[:, S.SH]
    out[:, L["blink"]] = local[:, S.BLINK]
    out[:, L["gaze"]] = gaze
    return out


def from_packed(packed: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Inverse of :func:`to_packed`: ``(local (B, 99), gaze (B, 4))``."""
    L = layout.FRAME_LAYOUT
    p = np.atleast_2d(packed)
    local = np.zeros((p.shape[0], S.N_LOCAL))
    local[:, S.ROT] = p[:, L["rotation"]]
    local[:, S.TRANS] = p[:, L["translation"]]
    local[:, S.EXPR] = p[:, L["expression"]]
    local[:, S.SH] = p[:, L["sh"]]
    local[:, S.BLINK] = p[:, L["blink"]]
    return local, p[:, L["gaze"]].copy()


def interpolate_lost(
    params: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """Lost frames' parameters ``(F, P)`` interpolated linearly (per column, over frame index) between the
    nearest valid frames on each side; before the first / after the last valid frame they hold its values.
    Unchanged when no frame is valid."""
    good = np.flatnonzero(valid)
    if good.size == 0 or good.size == len(valid):
        return params.copy()
    idx = np.arange(len(valid), dtype=np.float64)
    out = params.copy()
    for c in range(params.shape[1]):
        out[:, c] = np.interp(idx, good.astype(np.float64), params[good, c])
    return out


def smooth_params(
    params: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_], sigma: float
) -> npt.NDArray[np.float64]:
    """Gaussian temporal smoothing of every packed curve within runs of valid frames.

    Lost frames are left as they are and never mix into valid ones; each run is smoothed separately with a
    normalised Gaussian of ``sigma`` frames (truncated at 3 sigma, renormalised at run ends). Blinks are
    smoothed too (use a small sigma to keep fast blinks).
    """
    out = params.copy()
    if sigma <= 0:
        return out
    r = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return out
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1)
    for run in runs:
        seg = params[run]
        num = np.zeros_like(seg)
        den = np.zeros((len(run), 1))
        for j, w in enumerate(k):
            o = j - r
            lo, hi = max(0, -o), min(len(run), len(run) - o)
            if lo >= hi:
                continue
            num[lo:hi] += w * seg[lo + o : hi + o]
            den[lo:hi] += w
        out[run] = num / den
    return out


class Tracker:
    """Fits the face model to frames (see the module docstring).

    Args:
        model: a :class:`~dvp_engine.facemodel.FaceModel`.
        width, height: frame size in pixels.
        settings: :class:`TrackerSettings`.
        intrinsics: ``(fx, fy, cx, cy)``; default :func:`default_intrinsics`.
    """

    def __init__(
        self,
        model: Any,
        width: int,
        height: int,
        settings: TrackerSettings | None = None,
        intrinsics: Sequence[float] | None = None,
    ) -> None:
        self.model = model
        self.settings = settings or TrackerSettings()
        self.width = int(width)
        self.height = int(height)
        if intrinsics is None:
            intrinsics = default_intrinsics(self.width, self.height, self.settings.focal_factor)
        fx, fy, cx, cy = (float(v) for v in intrinsics)
        self.intrinsics = (fx, fy, cx, cy)
        self.xp = get_xp(self.settings.device)
        self.m = S.prepare_model(model, self.xp, self.settings.solver)
        self.alpha = self.xp.zeros(80)
        self.beta = self.xp.zeros(80)
        self._shape = self.m.shape(None)
        self._albedo = self.m.albedo(None)
        self.timings: dict[str, float] = {"identity": 0.0, "tracking": 0.0, "gaze": 0.0, "prepare": 0.0}

    # ------------------------------------------------------------------ data preparation
    def _observations(
        self,
        frames: Sequence[npt.NDArray[Any]] | None,
        obs: Sequence[FrameObservation],
        blink: npt.NDArray[np.float64] | None = None,
    ) -> S.Observations:
        xp = self.xp
        b = len(obs)
        lm = np.zeros((b, 68, 2))
        lw = np.zeros((b, 68))
        for i, o in enumerate(obs):
            if o.found and o.landmarks is not None:
                lm[i] = o.landmarks
                lw[i] = np.clip(
                    np.broadcast_to(np.asarray(o.landmark_confidence, np.float64), (68,)), 0.0, 1.0
                )
        d = lm[:, 45] - lm[:, 36]
        scale = np.maximum(np.sqrt((d * d).sum(-1)), 1.0)
        images = None
        image_scale = 1.0
        if frames is not None:
            t0 = time.perf_counter()
            arr = np.stack([_check_image(f) for f in frames])
            if arr.dtype == np.uint8:
                image_scale = 1.0 / 255.0
            elif arr.dtype == np.uint16:
                image_scale = 1.0 / 65535.0
            images = xp.asarray(arr)
            if self.settings.blur_radius > 0:
                images = box_blur(xp, images.astype(xp.float32) * image_scale, self.settings.blur_radius)
                image_scale = 1.0
            self.timings["prepare"] += time.perf_counter() - t0
        bt = bw = None
        if blink is not None:
            ok = np.isfinite(blink)
            bt, bw = xp.asarray(np.where(ok, blink, 0.0)), xp.asarray(ok.astype(np.float64))
        return S.Observations(
            images, xp.asarray(lm), xp.asarray(lw), xp.asarray(scale), self.intrinsics, image_scale, bt, bw
        )

    def blink_measures(self, observations: Sequence[FrameObservation]) -> npt.NDArray[np.float64] | None:
        """``(F, 2)`` eyelid closure per frame from the landmarks' eye aspect ratio, relative to this clip's
        open-eye level (:func:`~dvp_engine.tracking.eyes.blink_measure`; NaN where no face), or None when the
        term is off or the clip is too short to know the actor's open eyes."""
        from .eyes import blink_measure, eye_aspect_ratio

        if self.settings.solver.w_blink_obs <= 0:
            return None
        ear = np.full((len(observations), 2), np.nan)
        for k, o in enumerate(observations):
            if o.found and o.landmarks is not None:
                ear[k] = eye_aspect_ratio(np.asarray(o.landmarks, np.float64))
        if int(np.isfinite(ear[:, 0]).sum()) < self.settings.blink_obs_min_frames:
            return None
        return np.asarray(blink_measure(ear), np.float64)

    def _start(self, obs: S.Observations, prev: Array | None) -> Array:
        """Start values for a batch: the previous good frame's, or a frontal pose from the landmarks."""
        xp = self.xp
        b = obs.landmarks.shape[0]
        if prev is not None:
            return xp.tile(prev[None], (b, 1))
        x = xp.zeros((b, S.N_LOCAL))
        x[:, S.SH] = S.ambient_sh(xp)
        x[:, 0:6] = S.initial_pose(self.m, obs.landmarks, obs.landmark_weights, self.intrinsics, self._shape)
        return x

    def _align_landmarks(self, obs: S.Observations, x: Array, cold: bool) -> Array:
        st = self.settings.solver
        pose_only = np.zeros(S.N_LOCAL, bool)
        pose_only[0:6] = True
        if cold:
            x, _ = S.solve_tracking(
                self.m, obs, x, st, shape=self._shape, albedo=self._albedo, iterations=6,
                photometric=False, active=pose_only,
            )  # fmt: skip
        no_sh = np.ones(S.N_LOCAL, bool)
        no_sh[S.SH] = False
        x, _ = S.solve_tracking(
            self.m, obs, x, st, shape=self._shape, albedo=self._albedo,
            iterations=st.landmark_iterations + (4 if cold else 0), photometric=False, active=no_sh,
        )  # fmt: skip
        return x

    # ------------------------------------------------------------------ identity mode
    def fit_identity(
        self, frames: Sequence[npt.NDArray[Any]], observations: Sequence[FrameObservation]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Identity mode (see :meth:`_fit_identity`), with numpy's BLAS limited to ``settings.blas_threads``."""
        with blas_threads(self.settings.blas_threads if self.xp is np else None):
            return self._fit_identity(frames, observations)

    def _fit_identity(
        self, frames: Sequence[npt.NDArray[Any]], observations: Sequence[FrameObservation]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Identity mode: solve alpha and beta jointly over keyframes, then hold them fixed.

        Args:
            frames: K keyframe images ``(H, W, 3)`` (uint8 or float sRGB [0, 1]).
            observations: their landmark observations (frames without a face are skipped).

        Returns:
            ``(alpha (80,), beta (80,))`` numpy; also stored on the tracker for :meth:`track`.
        """
        t0 = time.perf_counter()
        keep = [i for i, o in enumerate(observations) if o.found]
        if not keep:
            raise ValueError("identity mode: no keyframe has a detected face")
        obs = self._observations([frames[i] for i in keep], [observations[i] for i in keep])
        x = self._start(obs, None)
        x = self._align_landmarks(obs, x, cold=True)
        x = self._solve_light(obs, x)  # light first, then the joint solve
        alpha, beta, _, _ = S.solve_identity(self.m, obs, x, self.settings.solver)
        self.set_identity(asnumpy(alpha), asnumpy(beta))
        self.timings["identity"] += time.perf_counter() - t0
        return asnumpy(alpha), asnumpy(beta)

    def set_identity(self, alpha: npt.ArrayLike, beta: npt.ArrayLike) -> None:
        """Hold identity ``alpha (80,)`` and reflectance ``beta (80,)`` fixed for tracking."""
        xp = self.xp
        self.alpha = xp.asarray(np.asarray(alpha, np.float64))
        self.beta = xp.asarray(np.asarray(beta, np.float64))
        self._shape = self.m.shape(self.alpha)
        self._albedo = self.m.albedo(self.beta)

    def _solve_light(self, obs: S.Observations, x: Array) -> Array:
        """Two solver iterations on the SH light alone (linear given the geometry): the start of a joint solve
        from a cold start."""
        sh_only = np.zeros(S.N_LOCAL, bool)
        sh_only[S.SH] = True
        x, _ = S.solve_tracking(
            self.m, obs, x, self.settings.solver, shape=self._shape, albedo=self._albedo, iterations=2,
            active=sh_only,
        )  # fmt: skip
        return x

    # ------------------------------------------------------------------ tracking mode
    def track(
        self,
        frames: Callable[[int], npt.NDArray[Any]] | Sequence[npt.NDArray[Any]],
        observations: Sequence[FrameObservation],
        *,
        progress: ProgressFn | None = None,
        start: npt.NDArray[np.float64] | None = None,
        eyes: EyeCalibration | None = None,
        blink_closure: npt.NDArray[np.float64] | None = None,
    ) -> TrackResult:
        """Tracking mode (see :meth:`_track`), with numpy's BLAS limited to ``settings.blas_threads``."""
        with blas_threads(self.settings.blas_threads if self.xp is np else None):
            return self._track(
                frames, observations, progress=progress, start=start, eyes=eyes, blink_closure=blink_closure
            )

    def _track(
        self,
        frames: Callable[[int], npt.NDArray[Any]] | Sequence[npt.NDArray[Any]],
        observations: Sequence[FrameObservation],
        *,
        progress: ProgressFn | None = None,
        start: npt.NDArray[np.float64] | None = None,
        eyes: EyeCalibration | None = None,
        blink_closure: npt.NDArray[np.float64] | None = None,
    ) -> TrackResult:
        """Tracking mode over a sequence.

        Args:
            frames: the images ``(H, W, 3)`` (uint8 or float sRGB), as a sequence or a function index -> image
                (called once per frame, in order, so a decoder can stream).
            observations: one :class:`FrameObservation` per frame.
            progress: called with ``(frames_done, total)``.
            start: ``(FRAME_SIZE,)`` packed parameters the first frame starts from (a warm start, e.g. an
                artist's keyed values when re-tracking a stretch); None: a cold start from the landmarks.
            eyes: a fixed eye calibration to solve the gaze with (no calibration from these frames).
            blink_closure: ``(F, 2)`` eyelid closure observations of these frames measured over the whole clip
                (:meth:`blink_measures` of every frame, rows of these: a chunk of a longer clip), instead of
                measuring them over these frames alone.

        Returns:
            :class:`TrackResult` with packed parameters, confidence and validity.
        """
        xp = self.xp
        st = self.settings
        n = len(observations)
        get = frames if callable(frames) else frames.__getitem__
        params = np.zeros((n, layout.FRAME_SIZE))
        conf = np.zeros(n)
        valid = np.zeros(n, bool)
        lerr = np.full(n, np.nan)
        perr = np.full(n, np.nan)
        mlm = np.full((n, 68, 2), np.nan)
        messages: dict[int, str] = {}
        # last good local parameters (a given start counts as the frame before the first)
        prev: Array | None = None if start is None else xp.asarray(from_packed(np.asarray(start)[None])[0][0])
        follow = np.zeros((n, 2, 3))  # eyeball centres per frame with ``eyeball_follows_face``
        blinks = self.blink_measures(observations) if blink_closure is None else blink_closure
        last_ok = -1
        t_track = 0.0
        i = 0
        while i < n:
            j = min(n, i + max(1, st.batch_size))
            idx = list(range(i, j))
            imgs = [get(k) for k in idx]
            found = [k for k in idx if observations[k].found]
            for k in idx:
                if not observations[k].found:
                    messages[k] = observations[k].message or "no face found"
            if found:
                t0 = time.perf_counter()
                sel = [k - i for k in found]
                obs = self._observations(
                    [imgs[s] for s in sel], [observations[k] for k in found],
                    None if blinks is None else blinks[found],
                )  # fmt: skip
                cold = prev is None or last_ok != i - 1
                x = self._start(obs, None if cold else prev)
                # large (GPU) batches start every frame from the previous batch's last frame, up to seconds
                # apart: give their pose the longer landmark-only alignment of a cold start
                x = self._align_landmarks(obs, x, cold=cold or len(found) > 8)
                if cold:
                    x = self._solve_light(obs, x)
                x, lin = S.solve_tracking(self.m, obs, x, st.solver, shape=self._shape, albedo=self._albedo)
                t_track += time.perf_counter() - t0
                if st.eyeball_follows_face:
                    follow[found] = asnumpy(self.m.eyeball_centres(self._shape, x[:, S.EXPR]))
                xn = asnumpy(x)
                scale = asnumpy(obs.scale)
                le = asnumpy(lin.land_err) / scale
                pe = asnumpy(lin.photo_err)
                det = np.array([float(np.mean(observations[k].landmark_confidence)) for k in found])
                c = confidence_from_errors(le, pe, det)
                proj = asnumpy(self._project_landmarks(x))
                for r, k in enumerate(found):
                    tilt = head_tilt_deg(xn[r, S.ROT])
                    ok = bool(
                        le[r] <= st.max_landmark_error
                        and np.all(np.isfinite(xn[r]))
                        and tilt <= st.max_tilt_deg
                    )
                    lerr[k], perr[k], mlm[k] = le[r], pe[r], proj[r]
                    if ok:
                        params[k] = to_packed(xn[r : r + 1], np.zeros((1, 4)))[0]
                        conf[k] = c[r]
                        valid[k] = True
                        prev = xp.asarray(xn[r])
                        last_ok = k
                    elif tilt > st.max_tilt_deg:
                        messages[k] = (
                            f"fit rejected: the head is tilted {tilt:.0f} degrees from upright (upside down?), "
                            f"more than {st.max_tilt_deg:g}"
                        )
                    else:
                        messages[k] = f"fit rejected: landmark error {le[r]:.3f} of the inter-ocular distance"
            if progress is not None:
                progress(j, n)
            i = j
        t0 = time.perf_counter()
        eyes = self.solve_clip_gaze(params, valid, observations, follow, eyes)
        t_gaze = time.perf_counter() - t0
        # lost frames: interpolated between the neighbouring good frames (held before the first / after the
        # last good one); flagged valid 0, confidence 0
        params = interpolate_lost(params, valid)
        conf = np.where(valid, conf, 0.0)
        if st.smooth:
            params = smooth_params(params, valid, st.smooth_sigma)
        self.timings["tracking"] += t_track
        self.timings["gaze"] += t_gaze
        return TrackResult(
            params=params,
            confidence=conf,
            valid=valid,
            landmark_error=lerr,
            photo_error=perr,
            model_landmarks=mlm,
            identity=asnumpy(self.alpha),
            reflectance=asnumpy(self.beta),
            timings=dict(self.timings),
            messages=messages,
            eyes=eyes,
        )

    def solve_clip_gaze(
        self,
        params: npt.NDArray[np.float64],
        valid: npt.NDArray[np.bool_],
        observations: Sequence[FrameObservation],
        follow: npt.NDArray[np.float64],
        fixed: EyeCalibration | None = None,
    ) -> EyeCalibration:
        """Calibrate the eyes over the clip, then solve every valid frame's gaze in ``params`` (in place).

        An eye whose pupil was not seen in a frame keeps the gaze of the previous frame where it was (not
        invented; 0 before the first).
        """
        st = self.settings
        xp = self.xp
        n = len(observations)
        pup = np.full((n, 2, 2), np.nan)
        pw = np.zeros((n, 2))
        for k, o in enumerate(observations):
            if valid[k] and o.pupils is not None and np.all(np.isfinite(o.pupils)):
                pup[k] = o.pupils
                pw[k] = np.clip(np.asarray(o.pupil_confidence, np.float64), 0.0, 1.0)
        model_centres = asnumpy(self.m.eye_centres)
        if fixed is not None:
            eyes = fixed
        elif st.eyeball_follows_face:
            eyes = EyeCalibration(
                model_centres, self.m.eyeball_radius, "model", 0,
                "not calibrated: the eyeball centres follow the eye openings (eyeball_follows_face)",
            )  # fmt: skip
        elif st.eye_calibration == "none":
            eyes = EyeCalibration(
                model_centres, self.m.eyeball_radius, "model", 0, "not calibrated (eye_calibration 'none')"
            )
        else:
            # the estimate starts from (and its prior pulls toward) the model's centres moved with the fitted
            # face's eye openings (identity only): the eyeball sits behind its opening
            face_centres = asnumpy(self.m.eyeball_centres(self._shape, xp.zeros((1, layout.N_EXPRESSION))))[0]
            rot, trans, rows = calibration_inputs(params, valid)
            # an actor who does not look into the lens may still look along the face on average
            methods = ("camera", "forward") if st.eye_calibration == "camera" else (st.eye_calibration,)
            eyes = calibrate_eyes_in_order(
                methods, model_centres, self.m.eyeball_radius, rot, trans, pup[rows], pw[rows],
                self.intrinsics, min_frames=st.eye_calibration_min_frames, start=face_centres,
            )  # fmt: skip
        rows = np.flatnonzero(valid & (pw.max(axis=1) > 0))
        gaze = np.zeros((n, 4))
        seen = np.zeros((n, 2), bool)
        chunk = 256
        for i in range(0, len(rows), chunk):
            r = rows[i : i + chunk]
            local, _ = from_packed(params[r])
            centres = follow[r] if st.eyeball_follows_face else np.broadcast_to(eyes.centres, (len(r), 2, 3))
            g = S.solve_gaze(
                self.m, xp.asarray(local), xp.asarray(np.nan_to_num(pup[r])), xp.asarray(pw[r]),
                self.intrinsics, iterations=8, centres=xp.asarray(np.ascontiguousarray(centres)),
            )  # fmt: skip
            gaze[r] = asnumpy(g)
            seen[r] = pw[r] > 0
        # forward-fill each eye's gaze over frames where its pupil was not seen
        g0 = layout.FRAME_LAYOUT["gaze"].start
        for e in range(2):
            src = np.maximum.accumulate(np.where(seen[:, e], np.arange(n), -1))
            held = np.where(src[:, None] >= 0, gaze[np.maximum(src, 0), 2 * e : 2 * e + 2], 0.0)
            params[valid, g0 + 2 * e : g0 + 2 * e + 2] = held[valid]
        return eyes

    def _project_landmarks(self, local: Array) -> Array:
        from .xp import euler_rotation

        xp = self.xp
        rot, _ = euler_rotation(xp, local[:, S.ROT])
        lm_idx = self.m.landmarks
        b = local.shape[0]
        v = (
            self._shape[lm_idx][None]
            + (local[:, S.EXPR] @ self.m.expr_basis + local[:, S.BLINK] @ self.m.blink_basis).reshape(
                b, self.m.n, 3
            )[:, lm_idx]
        )
        xc = xp.einsum("bij,bnj->bni", rot, v) + local[:, None, S.TRANS]
        return S.project(xc, self.intrinsics)


def _check_image(img: npt.NDArray[Any]) -> npt.NDArray[Any]:
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {a.shape}")
    a = a[..., :3]
    if a.dtype in (np.uint8, np.uint16):
        return a
    return np.asarray(a, np.float32)
