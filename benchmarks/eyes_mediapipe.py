"""MediaPipe's iris and eyelid points as an independent check of the tracker's eyes (benchmarks and tests only).

MediaPipe FaceMesh (``refine_landmarks=True``, static-image mode: no state between frames) gives 478 points;
468 and 473 are the iris centres, and the eyelids are the contour points below. Nothing in ``dvp_engine``
imports this module or MediaPipe: the runtime tracker uses dlib and its own pupil detector.

Measures (per clip):

* **pupil error**: distance between the tracker's pupil and MediaPipe's iris centre over the eye width (dlib's
  corner-to-corner distance), frames where both found the eye;
* **eyelid aperture**: the mean distance of three upper/lower lid point pairs over the eye width; a blink is a
  run of frames where the aperture is below half of the eye's open value (its median over the clip); a blink
  is *seen* when the track's blink channel reaches 0.5 within one frame of the run; the closure
  ``1 - aperture / open`` is correlated (Pearson) with the blink channel, also with the closure clipped at 0
  (the channel's own range: eyes opened wider than usual are not a blink).

Eye order as everywhere in dvp: index 0 = the actor's left eye (image right), 1 = the actor's right eye.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# MediaPipe face-mesh indices: (iris centre, corners, upper/lower lid pairs) for the eye on the image left
# (the actor's right) and the image right (the actor's left)
_MP_EYES = {
    "image_left": (468, (33, 133), ((159, 145), (158, 153), (160, 144))),
    "image_right": (473, (362, 263), ((386, 374), (385, 380), (387, 373))),
}


class MediaPipeEyes:
    """MediaPipe FaceMesh with iris refinement; call on ``(H, W, 3)`` uint8 RGB frames."""

    def __init__(self) -> None:
        import mediapipe as mp

        self.mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
        )

    def close(self) -> None:
        self.mesh.close()

    def __call__(self, frame: np.ndarray) -> dict[str, Any] | None:
        """``{"iris": (2, 2) px, "aperture": (2,) aperture / eye width, "centre": (2, 2) eye centres,
        "points": (478, 3)}`` with eyes ordered (actor's left = image right, actor's right = image left);
        None without a face. ``points`` are MediaPipe's mesh and iris points: x, y in pixels (pixel-centre
        convention) and z in MediaPipe's relative depth scaled like x (toward the camera negative)."""
        res = self.mesh.process(np.ascontiguousarray(frame[..., :3]))
        if not res.multi_face_landmarks:
            return None
        h, w = frame.shape[:2]
        pts3 = np.array(
            [[p.x * w - 0.5, p.y * h - 0.5, p.z * w] for p in res.multi_face_landmarks[0].landmark]
        )
        pts = pts3[:, :2]
        iris, ap, centre = np.zeros((2, 2)), np.zeros(2), np.zeros((2, 2))
        for k, key in enumerate(("image_right", "image_left")):
            i, (c0, c1), pairs = _MP_EYES[key]
            width = float(np.linalg.norm(pts[c0] - pts[c1]))
            iris[k] = pts[i]
            ap[k] = np.mean([np.linalg.norm(pts[a] - pts[b]) for a, b in pairs]) / max(width, 1e-6)
            centre[k] = (pts[c0] + pts[c1]) / 2
        return {"iris": iris, "aperture": ap, "centre": centre, "points": pts3}


def pupil_errors(
    pupils: np.ndarray, conf: np.ndarray, landmarks: np.ndarray, mp_iris: np.ndarray, min_conf: float = 0.0
) -> np.ndarray:
    """``(F, 2)`` pupil-to-iris distance over the dlib eye width (NaN where either is missing).

    Args:
        pupils: ``(F, 2, 2)`` tracker pupils; conf: ``(F, 2)`` their confidences (0 = not found).
        landmarks: ``(F, 68, 2)`` dlib landmarks; mp_iris: ``(F, 2, 2)`` MediaPipe iris centres (NaN: no face).
        min_conf: pupils with a confidence at or below this are left out (NaN); 0 keeps every pupil found.
    """
    from dvp_engine.tracking.eyes import EYE_INDICES

    out = np.full(pupils.shape[:2], np.nan)
    for k, idx in enumerate(EYE_INDICES):
        eye = landmarks[:, list(idx)]
        width = np.linalg.norm(eye[:, 0] - eye[:, 3], axis=-1)
        d = np.linalg.norm(pupils[:, k] - mp_iris[:, k], axis=-1) / np.maximum(width, 1e-6)
        out[:, k] = np.where(conf[:, k] > min_conf, d, np.nan)
    return out


def mesh_head_rotation(points: np.ndarray, model_mesh: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Head rotation (model -> camera, ``(3, 3)``) from MediaPipe's mesh, an estimate independent of the tracker.

    The face model's vertices are MediaPipe's mesh topology (``tools/build_face_model.py``), so the rotation of
    the least-squares similarity fit (Umeyama) of the model's mean mesh onto MediaPipe's 468 points is the head
    rotation in the model's own frame. MediaPipe's points are orthographic (x, y pixels, z relative depth), so
    that rotation is relative to the viewing ray; it is turned into the camera frame by the rotation taking the
    optical axis onto the ray toward the head (``translation``, the tracked head position: only its direction
    is used, a degree or two off the axis).

    Args:
        points: ``(478, 3)`` or ``(468, 3)`` MediaPipe points (:class:`MediaPipeEyes`).
        model_mesh: ``(468, 3)`` model vertices, model frame (x = actor's left, y down, nose toward -z).
        translation: ``(3,)`` head position in the camera frame, metres.
    """
    src, dst = np.asarray(model_mesh, np.float64)[:468], np.asarray(points, np.float64)[:468]
    xs, xd = src - src.mean(0), dst - dst.mean(0)
    u, _sv, vt = np.linalg.svd(xd.T @ xs)
    d = np.diag([1.0, 1.0, float(np.sign(np.linalg.det(u) * np.linalg.det(vt)))])
    r_ray = u @ d @ vt
    ray = np.asarray(translation, np.float64) / max(float(np.linalg.norm(translation)), 1e-12)
    z = np.array([0.0, 0.0, 1.0])
    v, c = np.cross(z, ray), float(z @ ray)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    to_ray = np.eye(3) + vx + vx @ vx / (1.0 + c)
    return np.asarray(to_ray @ r_ray, np.float64)


def blink_events(aperture: np.ndarray, ratio: float = 0.5) -> list[tuple[int, int]]:
    """Runs ``(first, last)`` (indices, inclusive) where ``aperture < ratio x`` its median (NaN: not a blink)."""
    a = np.asarray(aperture, np.float64)
    open_level = float(np.nanmedian(a)) if np.any(np.isfinite(a)) else np.nan
    closed = np.nan_to_num(a, nan=np.inf) < ratio * open_level
    runs, start = [], None
    for i, c in enumerate(closed):
        if c and start is None:
            start = i
        if not c and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(closed) - 1))
    return runs


def blink_agreement(blink: np.ndarray, aperture: np.ndarray) -> dict[str, Any]:
    """Per eye: Pearson r of the blink channel with MediaPipe's closure, blinks MediaPipe sees and the track sees.

    Args:
        blink: ``(F, 2)`` the track's ``blink.left blink.right`` (0 open .. 1 closed).
        aperture: ``(F, 2)`` MediaPipe apertures (NaN: no face).
    """
    out: dict[str, Any] = {}
    for k, name in enumerate(("left", "right")):
        a = aperture[:, k]
        ok = np.isfinite(a)
        closure = 1.0 - a / np.nanmedian(a)
        r = (
            float(np.corrcoef(blink[ok, k], closure[ok])[0, 1])
            if ok.sum() > 2 and np.std(blink[ok, k]) > 0
            else None
        )
        # the channel cannot go below 0 (open): against the closure clipped at 0 too, wide-open eyes do not count
        clipped = np.clip(closure, 0.0, None)
        rc = (
            float(np.corrcoef(blink[ok, k], clipped[ok])[0, 1])
            if ok.sum() > 2 and np.std(blink[ok, k]) > 0 and np.std(clipped[ok]) > 0
            else None
        )
        events = blink_events(a)
        seen = [bool(np.max(blink[max(0, s - 1) : e + 2, k]) >= 0.5) for s, e in events]
        out[name] = {
            "pearson_r": None if r is None else round(r, 3),
            "pearson_r_closure_clipped_at_open": None if rc is None else round(rc, 3),
            "blinks_mediapipe": len(events),
            "blinks_seen": int(sum(seen)),
            "blink_p95": round(float(np.percentile(blink[:, k], 95)), 3),
            "blink_max_in_blinks": [
                round(float(np.max(blink[max(0, s - 1) : e + 2, k])), 3) for s, e in events
            ],
        }
    return out
