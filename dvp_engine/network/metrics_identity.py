"""Identity: distance between dlib's 128-d face descriptors of two images of a face.

dlib's face recognition network (``dlib_face_recognition_resnet_model_v1.dat``, shipped by the
``face-recognition-models`` package; no download) maps an aligned face chip to a 128-d descriptor; the
Euclidean distance between two descriptors below **0.6** is dlib's "same person" threshold (99.38 % on LFW).
Blur, lost glasses or another actor's features all raise it.

Faces are found with dlib's frontal detector and aligned with its 5-point shape predictor. Images are upscaled
first (bilinear) so that their shorter side is at least ``min_side`` pixels: a 128-pixel network frame holds a
face of about 60 pixels, too small for the detector. When the detector finds no face in an image but a hint box
is given (e.g. the tracked face's box), the box is used for alignment and the image counts as ``undetected``;
without a hint the image has no descriptor (NaN).

Images are ``(N, H, W, 3)`` uint8 sRGB or torch ``(N, 3, H, W)`` float sRGB [0, 1] (:func:`as_uint8_images`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dvp_engine.core.errors import DvpError

__all__ = [
    "SAME_PERSON",
    "Descriptors",
    "FaceDescriber",
    "as_uint8_images",
    "identity_distances",
    "mean_descriptor",
]

SAME_PERSON = 0.6
"""dlib's same-person threshold on the descriptor distance."""

RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
ALIGNMENT_MODEL = "shape_predictor_5_face_landmarks.dat"


def _model_file(name: str) -> str:
    from dvp_engine.tracking.detect import model_path

    try:
        return str(model_path(name))
    except FileNotFoundError as exc:
        raise DvpError(
            f"identity metric: dlib's model {name} is missing ({exc}); it ships with the face-recognition-models "
            "package: pip install face-recognition-models"
        ) from exc


def as_uint8_images(images: Any) -> npt.NDArray[np.uint8]:
    """``(N, H, W, 3)`` uint8 from uint8 ``(N, H, W, 3)`` arrays or float torch/numpy ``(N, 3, H, W)`` in [0, 1]."""
    if hasattr(images, "detach"):
        images = images.detach().float().cpu().numpy()
    a = np.asarray(images)
    if a.dtype == np.uint8:
        if a.ndim != 4 or a.shape[3] != 3:
            raise ValueError(f"uint8 images must be (N, H, W, 3), got {a.shape}")
        return np.ascontiguousarray(a)
    if a.ndim != 4 or a.shape[1] != 3:
        raise ValueError(f"float images must be (N, 3, H, W) in [0, 1], got {a.shape}")
    out: npt.NDArray[np.uint8] = (np.clip(a.transpose(0, 2, 3, 1), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(out)


@dataclass
class Descriptors:
    """Face descriptors of a set of images.

    Attributes:
        vectors: ``(N, 128)`` float64 (NaN rows: no face found and no hint box).
        detected: ``(N,)`` bool, the detector found the face (False: the hint box was used, or nothing).
    """

    vectors: npt.NDArray[np.float64]
    detected: npt.NDArray[np.bool_]

    @property
    def found(self) -> npt.NDArray[np.bool_]:
        """Images that have a descriptor."""
        return np.asarray(np.isfinite(self.vectors).all(axis=1), bool)


class FaceDescriber:
    """dlib detector + 5-point alignment + ResNet face descriptor (models loaded once).

    Raises:
        DvpError: dlib's model files are missing (the message names the ``face-recognition-models`` package).
    """

    def __init__(self, min_side: int = 512) -> None:
        rec, align = _model_file(RECOGNITION_MODEL), _model_file(ALIGNMENT_MODEL)
        import dlib

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._align = dlib.shape_predictor(align)
        self._net = dlib.face_recognition_model_v1(rec)
        self.min_side = int(min_side)

    def describe(self, images: Any, hints: npt.ArrayLike | None = None) -> Descriptors:
        """Descriptors of every image.

        Args:
            images: see :func:`as_uint8_images`.
            hints: optional ``(N, 4)`` boxes ``(x0, y0, x1, y1)`` in the images' pixels: the face to describe
                when the detector finds several (the one overlapping most) or none (the box itself).
        """
        imgs = as_uint8_images(images)
        n, h, w, _ = imgs.shape
        scale = max(1.0, self.min_side / min(h, w))
        hint = None if hints is None else np.asarray(hints, np.float64).reshape(n, 4) * scale
        vecs = np.full((n, 128), np.nan)
        det = np.zeros(n, bool)
        for i in range(n):
            img = _upscale(imgs[i], scale)
            rects = list(self._detector(img, 0))
            rect = None
            if rects:
                rect = max(rects, key=lambda r: _overlap(r, hint[i]) if hint is not None else r.area())
                if hint is not None and _overlap(rect, hint[i]) <= 0.0:
                    rect = None
            if rect is not None:
                det[i] = True
            elif hint is not None:
                x0, y0, x1, y1 = (int(round(v)) for v in hint[i])
                rect = self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1)
            if rect is None:
                continue
            shape = self._align(img, rect)
            vecs[i] = np.asarray(self._net.compute_face_descriptor(img, shape, 0), np.float64)
        return Descriptors(vecs, det)


def _upscale(img: npt.NDArray[np.uint8], scale: float) -> npt.NDArray[np.uint8]:
    if scale <= 1.0:
        return img
    import torch
    import torch.nn.functional as F

    h, w = img.shape[:2]
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False)
    out: npt.NDArray[np.uint8] = t[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
    return np.ascontiguousarray(out)


def _overlap(rect: Any, box: npt.NDArray[np.float64]) -> float:
    """Intersection over union of a dlib rectangle and an ``(x0, y0, x1, y1)`` box."""
    r = (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
    ix = max(0.0, min(r[2], box[2]) - max(r[0], box[0]))
    iy = max(0.0, min(r[3], box[3]) - max(r[1], box[1]))
    inter = ix * iy
    union = (r[2] - r[0]) * (r[3] - r[1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def identity_distances(
    pred: Any,
    reference: Any,
    *,
    hints: npt.ArrayLike | None = None,
    describer: FaceDescriber | None = None,
) -> tuple[npt.NDArray[np.float64], dict[str, int]]:
    """Per-image descriptor distance between ``pred[i]`` and ``reference[i]`` (``(N,)``, NaN where either has no
    face), and counts ``{"frames", "undetected_output", "undetected_reference", "no_descriptor"}``.

    ``reference`` may also be a single ``(128,)`` descriptor (e.g. the mean over an actor's training frames) that
    every prediction is compared with.
    """
    d = describer or FaceDescriber()
    p = d.describe(pred, hints)
    ref_arr = np.asarray(reference) if not hasattr(reference, "detach") else None
    if ref_arr is not None and ref_arr.ndim == 1:
        ref_vec = np.broadcast_to(ref_arr.astype(np.float64), p.vectors.shape)
        r_detected = np.ones(len(ref_vec), bool)
    else:
        r = d.describe(reference, hints)
        ref_vec, r_detected = r.vectors, r.detected
    dist = np.linalg.norm(p.vectors - ref_vec, axis=1)
    counts = {
        "frames": int(len(dist)),
        "undetected_output": int((~p.detected).sum()),
        "undetected_reference": int((~r_detected).sum()),
        "no_descriptor": int((~np.isfinite(dist)).sum()),
    }
    return dist, counts


def mean_descriptor(
    describer: FaceDescriber, images: Any, hints: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """Mean descriptor ``(128,)`` of the images that have one (an actor's reference); NaN if none has."""
    desc = describer.describe(images, None if hints is None else np.asarray(hints))
    ok = desc.found
    if not ok.any():
        return np.full(128, np.nan)
    out: npt.NDArray[np.float64] = desc.vectors[ok].mean(axis=0)
    return out
