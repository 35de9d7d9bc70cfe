"""Eyes from the 68 landmarks: pupil centres, eyelid openness (blink) and a first gaze estimate.

Pupil centre (:func:`locate_pupil`): gradient-based centre localisation after Timm & Barth (VISAPP 2011,
"Accurate eye centre localisation by means of gradients"). The eye region is resampled into a canonical patch
aligned with the eye corners (the eye 40 patch pixels wide, whatever its size in the frame); for every candidate
centre ``c`` inside the eye opening the objective is the mean over strong image gradients ``g_i`` at ``x_i`` of
``max(0, d_i . g_i)^2`` with ``d_i = (x_i - c) / |x_i - c|`` (both unit vectors), weighted by the darkness of ``c``
(the pupil and iris are dark). The boundary of a dark disc maximises it at the disc centre, also when eyelids hide
part of the disc. Gradients are taken inside the eye polygon grown by 8 patch px (dlib's lid polygon is tight and the iris reaches
past it near the corners; eyelid edges point into the opening and so only vote for centres outside it); candidate
centres lie inside the polygon;
the peak is refined to sub-pixel precision by a parabola through its neighbours. Specular highlights (compact
bright spots on the cornea) are removed from the patch first by a grey-level opening with line elements. Confidence combines how much the
peak stands out, the iris/sclera contrast and the eye's openness (a closed eye gives 0).

Blink (:func:`eye_aspect_ratio`, :func:`blink_measure`): the eye aspect ratio ``EAR = (|p2-p6| + |p3-p5|) /
(2 |p1-p4|)`` of each eye's 6 landmarks, mapped to 0 = open .. 1 = closed relative to the actor's open-eye level
over a clip (a percentile of the EAR) and a closed level (``closed_ratio`` of it: dlib's lid points stay on the lash
line, so a shut eye keeps an EAR of about 0.3-0.4x the open value).

Gaze (:func:`gaze_from_pupils`): the pupil's offset from the middle of the eye opening, in the eye's own frame
(corner line = x axis), turned into yaw/pitch with an eyeball radius of ``radius_ratio`` (0.42) times the
corner-to-corner width (adult eyeball radius ~12 mm, palpebral fissure ~29 mm): a first estimate that ignores
head rotation and perspective; the model fit refines it.

Eye order everywhere: index 0 = the actor's LEFT eye (image right, dlib 42-47), 1 = the actor's RIGHT eye (image
left, dlib 36-41). Pixel coordinates: pixel (0, 0)'s centre at (0, 0), x right, y down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

EYE_INDICES: tuple[tuple[int, ...], tuple[int, ...]] = (tuple(range(42, 48)), tuple(range(36, 42)))
"""dlib landmark indices per eye, (left, right) = the actor's left (image right), right (image left).
Each in dlib order: corner, upper lid, upper lid, corner, lower lid, lower lid."""

PATCH_EYE_WIDTH = 40.0
"""Corner-to-corner eye width in the canonical patch (patch pixels)."""


def _eye_points(eye: Any) -> F64:
    """(6, 2) eye landmarks reordered so that point 0 is the image-left corner and point 3 the image-right one
    (dlib's right eye already is; dlib's left eye starts at the inner = image-left corner too)."""
    p = np.asarray(eye, np.float64).reshape(6, 2)
    return p


def eye_aspect_ratio(landmarks: Any) -> F64:
    """Eye aspect ratio per eye, ``(2,)`` (left, right) or ``(F, 2)`` for ``(F, 68, 2)`` landmarks.

    ``EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|)`` over each eye's 6 dlib points; about 0.3-0.45 open,
    0.1-0.15 closed (dlib). NaN where the corners coincide.
    """
    lm = np.asarray(landmarks, np.float64)
    single = lm.ndim == 2
    lm = lm.reshape(-1, 68, 2)
    out = np.empty((lm.shape[0], 2))
    for k, idx in enumerate(EYE_INDICES):
        e = lm[:, list(idx)]
        v = np.linalg.norm(e[:, 1] - e[:, 5], axis=-1) + np.linalg.norm(e[:, 2] - e[:, 4], axis=-1)
        h = 2.0 * np.linalg.norm(e[:, 0] - e[:, 3], axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, k] = np.where(h > 1e-9, v / np.where(h > 1e-9, h, 1.0), np.nan)
    return out[0] if single else out


def open_eye_level(ear: Any, percentile: float = 60.0) -> F64:
    """The actor's open-eye EAR per eye over a clip: a percentile of ``(F, 2)`` EAR values (NaN ignored).

    The 60th percentile sits on ordinary open eyes: blinks are short (a few % of frames) and wide-open eyes
    rarer than relaxed ones.
    """
    e = np.asarray(ear, np.float64).reshape(-1, 2)
    if not np.any(np.isfinite(e)):
        return np.full(2, np.nan)
    return np.asarray(np.nanpercentile(e, percentile, axis=0), np.float64)


def blink_measure(
    ear: Any, open_level: Any = None, closed_ratio: float = 0.4, percentile: float = 60.0
) -> F64:
    """Eyelid closure per eye, 0 = open .. 1 = closed, from eye aspect ratios.

    Args:
        ear: ``(2,)`` or ``(F, 2)`` EAR (:func:`eye_aspect_ratio`), eyes (left, right).
        open_level: ``(2,)`` or scalar open-eye EAR of this actor; None = :func:`open_eye_level` of ``ear``
            (pass a clip's worth of frames then).
        closed_ratio: EAR of a closed eye as a fraction of the open level.
        percentile: for the automatic open level.

    Returns:
        same shape as ``ear``, clipped to [0, 1]; NaN where the EAR is NaN.
    """
    e = np.asarray(ear, np.float64)
    lvl = (
        open_eye_level(e, percentile)
        if open_level is None
        else np.broadcast_to(np.asarray(open_level, np.float64), (2,))
    )
    closed = closed_ratio * lvl
    with np.errstate(invalid="ignore", divide="ignore"):
        b = (lvl - e) / (lvl - closed)
    return np.clip(b, 0.0, 1.0)


# ------------------------------------------------------------------------------------------------ sampling
def _bilinear(grey: npt.NDArray[Any], x: F64, y: F64) -> F64:
    """Sample a 2-D image at float pixel coordinates (pixel-centre convention), clamped at the border."""
    h, w = grey.shape
    x = np.clip(x, 0.0, w - 1.0)
    y = np.clip(y, 0.0, h - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.intp), w - 2) if w > 1 else np.zeros(x.shape, np.intp)
    y0 = np.minimum(np.floor(y).astype(np.intp), h - 2) if h > 1 else np.zeros(y.shape, np.intp)
    fx, fy = x - x0, y - y0
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    g = grey
    top = g[y0, x0] * (1 - fx) + g[y0, x1] * fx
    bot = g[y1, x0] * (1 - fx) + g[y1, x1] * fx
    return np.asarray(top * (1 - fy) + bot * fy, np.float64)


def _grey(image: Any, dtype: Any = None) -> npt.NDArray[Any]:
    """Grey float32 on a 0-255 scale (uint8 as is; float frames in [0, 1] are scaled by 255)."""
    a = np.asarray(image)
    dt = np.dtype(dtype) if dtype is not None else a.dtype
    if a.ndim == 3:
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    a = np.asarray(a, np.float32)
    if np.issubdtype(dt, np.floating):
        a = a * 255.0
    return a


def _inside_polygon(px: F64, py: F64, poly: F64) -> npt.NDArray[np.bool_]:
    """Even-odd point-in-polygon test, vectorised over points."""
    inside = np.zeros(px.shape, bool)
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        cond = (y1 > py) != (y2 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = (x2 - x1) * (py - y1) / (y2 - y1 + 1e-300) + x1
        inside ^= cond & (px < xc)
    return inside


def _poly_distance(px: F64, py: F64, poly: F64) -> F64:
    """Distance from points to the polygon's boundary (all edges at once)."""
    a = poly
    ab = np.roll(poly, -1, axis=0) - poly
    ll = np.maximum(np.sum(ab * ab, axis=1), 1e-12)
    qx, qy = px.reshape(-1, 1), py.reshape(-1, 1)
    t = np.clip(((qx - a[:, 0]) * ab[:, 0] + (qy - a[:, 1]) * ab[:, 1]) / ll, 0.0, 1.0)
    d = np.hypot(qx - (a[:, 0] + t * ab[:, 0]), qy - (a[:, 1] + t * ab[:, 1])).min(axis=1)
    return np.asarray(d.reshape(px.shape), np.float64)


def _smooth3(a: F64) -> F64:
    """Separable [1, 2, 1]/4 blur with edge replication."""
    p = np.pad(a, 1, mode="edge")
    b = (p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]) / 4.0
    return (b[:-2] + 2 * b[1:-1] + b[2:]) / 4.0


def _remove_highlights(a: F64, size: int) -> F64:
    """Bright spots narrower than ``size`` in every direction (specular highlights on the cornea) replaced by
    their surroundings: the larger of two grey-level openings, by a horizontal and by a vertical line of
    ``size`` pixels (edges replicated). A region at least ``size`` long in one of the two directions survives
    one of them (the sclera, including the thin slivers beside a narrowed eye's iris), a compact spot neither.
    """
    if size <= 1:
        return a
    r = size // 2

    def line(x: F64, op: Any, axis: int) -> F64:
        pad = [(r, r) if ax == axis else (0, 0) for ax in range(2)]
        p = np.pad(x, pad, mode="edge")
        n = x.shape[axis]
        return np.asarray(
            op(np.stack([np.take(p, range(i, i + n), axis=axis) for i in range(2 * r + 1)]), axis=0)
        )

    opened = [line(line(a, np.min, ax), np.max, ax) for ax in (0, 1)]
    return np.asarray(np.maximum(opened[0], opened[1]), np.float64)


def _eye_lid_curve(eye: F64) -> F64:
    """A smoother eye-opening polygon through the 6 points (corner, 2 upper, corner, 2 lower): each side is
    drawn as a Catmull-Rom-like curve through its points (12 points per side)."""
    upper = eye[[0, 1, 2, 3]]
    lower = eye[[3, 4, 5, 0]]

    def curve(p: F64) -> F64:
        # parameterise by chord length and interpolate piecewise-cubic (Catmull-Rom, ends duplicated)
        q = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
        out = []
        for i in range(1, len(q) - 2):
            p0, p1, p2, p3 = q[i - 1], q[i], q[i + 1], q[i + 2]
            for t in np.linspace(0.0, 1.0, 4, endpoint=False):
                out.append(
                    0.5
                    * (
                        2 * p1
                        + (-p0 + p2) * t
                        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t * t
                        + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
                    )
                )
        return np.array(out)

    return np.vstack([curve(upper), curve(lower)])


@dataclass(frozen=True)
class PupilResult:
    """One eye's pupil.

    Attributes:
        centre: ``(2,)`` pixel coordinates (x, y) in the frame (NaN when not found).
        confidence: in [0, 1] (0: eye closed, too small or no contrast).
        openness: eye height / width of the landmark polygon (the EAR), for reference.
    """

    centre: F64
    confidence: float
    openness: float


def locate_pupil(
    image: Any,
    eye: Any,
    *,
    patch_width: float = PATCH_EYE_WIDTH,
    min_eye_px: float = 6.0,
    grow: float = 8.0,
    dark_weight: float = 0.5,
    dark_blur: int = 4,
    highlight_px: int = 7,
) -> PupilResult:
    """Pupil (iris) centre of one eye by gradient-based centre localisation (Timm & Barth, see module doc).

    Args:
        image: ``(H, W, 3)`` or ``(H, W)`` frame, uint8 or float [0, 1] (any colour space; only contrast
            matters).
        eye: ``(6, 2)`` dlib eye landmarks (pixels) in dlib order: corner, upper lid x2, corner, lower lid x2.
        patch_width: corner-to-corner width of the canonical patch the search runs in.
        min_eye_px: eyes narrower than this (frame pixels) are not searched.
        grow: gradients are collected in the lid polygon grown by this many patch pixels.
        dark_weight: weight of the darkness prior (0 = gradients only; Timm & Barth use 1).
        dark_blur: [1, 2, 1] blur passes for the darkness map (wider than the iris' dark rim and eye corners).
        highlight_px: specular highlights smaller than this (patch pixels, in every direction) are removed
            before the search (:func:`_remove_highlights`; 0 = keep them). A highlight's edges vote for
            centres beside it and it brightens the darkness map: ring lights put them in the upper iris and
            pull the centre down by about 4 % of the eye width (the sample clip, against MediaPipe's iris).

    Returns:
        :class:`PupilResult` in frame pixel coordinates.
    """
    nan = np.full(2, np.nan)
    e = _eye_points(eye)
    if not np.all(np.isfinite(e)):
        return PupilResult(nan, 0.0, float("nan"))
    frame = np.asarray(image)
    if frame.ndim not in (2, 3) or frame.shape[0] < 2 or frame.shape[1] < 2:
        return PupilResult(nan, 0.0, float("nan"))
    c0, c1 = e[0], e[3]
    width = float(np.hypot(*(c1 - c0)))
    ear = float(eye_aspect_ratio_6(e))
    if width < min_eye_px or not math.isfinite(ear):
        return PupilResult(nan, 0.0, ear)
    ex = (c1 - c0) / width
    if ex[0] < 0:  # keep the patch x axis pointing to image right
        ex = -ex
    ey = np.array([-ex[1], ex[0]])  # image-down side of the corner line
    mid = (c0 + c1) / 2.0
    s = width / patch_width  # frame pixels per patch pixel
    # patch extent: the eye width plus margins, and tall enough for the opening plus margins
    loc = (e - mid) @ np.stack([ex, ey], axis=1) / s  # eye points in patch units, origin at mid
    pad = grow + 2.0
    half_w = patch_width / 2.0 + pad
    top, bot = float(loc[:, 1].min()) - pad, float(loc[:, 1].max()) + pad
    us = np.arange(-half_w, half_w + 1e-9, 1.0)
    vs = np.arange(np.floor(top), np.ceil(bot) + 1e-9, 1.0)
    uu, vv = np.meshgrid(us, vs)
    fx = mid[0] + s * (uu * ex[0] + vv * ey[0])
    fy = mid[1] + s * (uu * ex[1] + vv * ey[1])
    # convert only the frame region the patch samples to grey
    h, w = frame.shape[:2]
    x0 = int(np.clip(np.floor(fx.min()) - 1, 0, w - 2))
    y0 = int(np.clip(np.floor(fy.min()) - 1, 0, h - 2))
    x1 = int(np.clip(np.ceil(fx.max()) + 2, x0 + 2, w))
    y1 = int(np.clip(np.ceil(fy.max()) + 2, y0 + 2, h))
    grey = _grey(frame[y0:y1, x0:x1], frame.dtype)
    patch = _bilinear(grey, fx - x0, fy - y0)
    patch = _smooth3(_remove_highlights(patch, highlight_px))
    poly = _eye_lid_curve(loc)
    inside = _inside_polygon(uu, vv, poly)
    if inside.sum() < 6:
        return PupilResult(nan, 0.0, ear)
    dist = _poly_distance(uu, vv, poly)
    # gradients (central differences) in the opening grown by `grow` patch px: the iris often reaches past
    # dlib's tight lid polygon near the corners; lid edges themselves only vote for centres outside the eye
    # (their gradients point into the opening), so they do little harm.
    grads = np.gradient(patch)
    gy, gx = np.asarray(grads[0], np.float64), np.asarray(grads[1], np.float64)
    mag = np.hypot(gx, gy)
    grad_mask = inside | (dist < grow)
    m = mag[grad_mask]
    thr = float(m.mean() + 0.3 * m.std())
    sel = grad_mask & (mag > max(thr, 1e-6))
    if sel.sum() < 3:
        return PupilResult(nan, 0.0, ear)
    gxu = (gx[sel] / mag[sel]).astype(np.float32)
    gyu = (gy[sel] / mag[sel]).astype(np.float32)
    xs, ys = uu[sel].astype(np.float32), vv[sel].astype(np.float32)
    wgt = (mag[sel] / mag[sel].max()).astype(np.float32)
    wsum = float(wgt.sum())
    # darkness prior: smoothed inverse intensity, normalised over the opening
    dark_img = patch
    for _ in range(dark_blur):
        dark_img = _smooth3(dark_img)
    vals = dark_img[inside]
    lo, hi = float(vals.min()), float(vals.max())

    def objective(mask: npt.NDArray[np.bool_]) -> F64:
        cx = uu[mask].astype(np.float32)
        cy = vv[mask].astype(np.float32)
        dx = xs[None, :] - cx[:, None]
        dy = ys[None, :] - cy[:, None]
        nrm = np.sqrt(dx * dx + dy * dy)
        nrm[nrm < 1e-6] = np.inf
        dot = np.maximum(0.0, (dx * gxu[None, :] + dy * gyu[None, :]) / nrm)
        obj = (dot * dot) @ wgt / wsum
        dark = (hi - dark_img[mask]) / max(hi - lo, 1e-6)
        return np.asarray(obj, np.float64) * ((1.0 - dark_weight) + dark_weight * dark)

    # coarse-to-fine: every second candidate first, then all candidates within 2 px of the coarse peak
    ui, vi = np.rint(uu).astype(np.intp), np.rint(vv).astype(np.intp)
    coarse = inside & (ui % 2 == 0) & (vi % 2 == 0)
    if coarse.sum() < 1:
        coarse = inside
    coarse_score = objective(coarse)
    kc = int(np.argmax(coarse_score))
    bu, bv = uu[coarse][kc], vv[coarse][kc]
    fine = inside & (np.abs(uu - bu) <= 2.5) & (np.abs(vv - bv) <= 2.5)
    score = objective(fine)
    full: F64 = np.full((patch.shape[0], patch.shape[1]), np.nan)
    full[fine] = score
    k = int(np.argmax(score))
    iy, ix = (int(v) for v in np.argwhere(fine)[k])
    # sub-pixel: parabola through the peak and its neighbours (where inside)
    du = dv = 0.0
    if 0 < ix < full.shape[1] - 1 and np.isfinite(full[iy, ix - 1]) and np.isfinite(full[iy, ix + 1]):
        a, b, c = full[iy, ix - 1], full[iy, ix], full[iy, ix + 1]
        den = a - 2 * b + c
        du = float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den < 0 else 0.0
    if 0 < iy < full.shape[0] - 1 and np.isfinite(full[iy - 1, ix]) and np.isfinite(full[iy + 1, ix]):
        a, b, c = full[iy - 1, ix], full[iy, ix], full[iy + 1, ix]
        den = a - 2 * b + c
        dv = float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den < 0 else 0.0
    pu, pv = float(uu[iy, ix]) + du, float(vv[iy, ix]) + dv
    centre = mid + s * (pu * ex + pv * ey)
    # confidence: peak prominence x contrast x openness
    prom = float((score[k] - np.median(coarse_score)) / max(score[k], 1e-12))
    contrast = float(np.clip((hi - lo) / 60.0, 0.0, 1.0))  # grey levels (0-255) between iris and sclera
    openf = float(np.clip((ear - 0.12) / 0.12, 0.0, 1.0))
    conf = float(np.clip(prom, 0.0, 1.0) * contrast * openf)
    return PupilResult(centre, conf, ear)


def eye_aspect_ratio_6(eye: Any) -> float:
    """EAR of one eye's 6 points (dlib order)."""
    e = np.asarray(eye, np.float64).reshape(6, 2)
    h = 2.0 * float(np.hypot(*(e[0] - e[3])))
    if h <= 1e-9:
        return float("nan")
    return (float(np.hypot(*(e[1] - e[5]))) + float(np.hypot(*(e[2] - e[4])))) / h


@dataclass(frozen=True)
class EyeMeasurement:
    """Both eyes of one frame; index 0 = the actor's left eye (image right), 1 = right eye (image left).

    Attributes:
        pupils: ``(2, 2)`` pupil pixel positions (NaN where not found).
        pupil_confidence: ``(2,)`` in [0, 1].
        ear: ``(2,)`` eye aspect ratios (feed a clip's worth to :func:`blink_measure`).
        gaze: ``(2, 2)`` first-estimate (yaw, pitch) degrees per eye relative to the head
            (:func:`gaze_from_pupils`; NaN where no pupil).
    """

    pupils: F64
    pupil_confidence: F64
    ear: F64
    gaze: F64


def measure_eyes(image: Any, landmarks: Any) -> EyeMeasurement:
    """Pupils, eye aspect ratios and a first gaze estimate for both eyes of one frame.

    Args:
        image: ``(H, W, 3)`` uint8 (or float [0, 1]) frame.
        landmarks: ``(68, 2)`` dlib landmarks of the face in that frame (pixels).
    """
    lm = np.asarray(landmarks, np.float64).reshape(68, 2)
    res = [locate_pupil(image, lm[list(idx)]) for idx in EYE_INDICES]
    pupils = np.stack([r.centre for r in res])
    conf = np.array([r.confidence for r in res])
    ear = eye_aspect_ratio(lm)
    return EyeMeasurement(pupils, conf, ear, gaze_from_pupils(lm, pupils))


def gaze_from_pupils(
    landmarks: Any, pupils: Any, radius_ratio: float = 0.42, pitch_offset: float = 0.0
) -> F64:
    """First estimate of gaze (yaw, pitch) in degrees per eye, relative to the head, from pupil positions.

    The pupil's offset from the midpoint of the eye corners, measured along the corner line (x) and across it
    (y, image-down positive), divided by the eyeball radius in pixels (``radius_ratio`` x corner distance), gives
    ``sin(yaw)`` and ``sin(pitch)``. Positive yaw = looking toward image right (model +x, the actor's left);
    positive pitch = looking down (model +y), matching ``d = (sin(yaw) cos(pitch), sin(pitch), -cos(yaw)
    cos(pitch))``. ``pitch_offset`` (fraction of the eye width) moves the zero-pitch pupil height above (<0)
    or below the corner line. Ignores head rotation and perspective.

    Args:
        landmarks: ``(68, 2)`` dlib landmarks.
        pupils: ``(2, 2)`` pupil positions, eyes (left, right) as :data:`EYE_INDICES`.

    Returns:
        ``(2, 2)``: ``[[left yaw, left pitch], [right yaw, right pitch]]`` degrees (NaN where the pupil is NaN).
    """
    lm = np.asarray(landmarks, np.float64).reshape(68, 2)
    pup = np.asarray(pupils, np.float64).reshape(2, 2)
    out = np.full((2, 2), np.nan)
    for k, idx in enumerate(EYE_INDICES):
        e = lm[list(idx)]
        c0, c1 = e[0], e[3]
        w = float(np.hypot(*(c1 - c0)))
        if w <= 1e-9 or not np.all(np.isfinite(pup[k])):
            continue
        ex = (c1 - c0) / w
        if ex[0] < 0:
            ex = -ex
        ey = np.array([-ex[1], ex[0]])
        d = pup[k] - (c0 + c1) / 2.0
        r = radius_ratio * w
        sx = float(np.clip(d @ ex / r, -1.0, 1.0))
        sy = float(np.clip((d @ ey - pitch_offset * w) / r, -1.0, 1.0))
        pitch = math.asin(sy)
        yaw = math.asin(float(np.clip(sx / max(math.cos(pitch), 1e-6), -1.0, 1.0)))
        out[k] = (math.degrees(yaw), math.degrees(pitch))
    return out
