"""Face-region boxes from a track and PSNR / SSIM / L1 inside them.

Whole-frame scores are dominated by background, hair and shoulders; a compositor judges the face. The regions
come from the face model's dlib-68 landmark vertices, evaluated with the track's identity, expression and blinks,
posed and projected with the track's camera (:func:`region_boxes`):

* ``face``: all 68 landmarks (jaw line, brows, eyes, nose, mouth);
* ``mouth``: landmarks 48-67 (outer and inner lip contours);
* ``eyes``: landmarks 36-47 (both eye contours).

Each box is the landmarks' bounding box grown by ``pad`` (default 15 %) of its longer side on every side, at least
``min_side`` pixels a side, clipped to the image. Boxes are ``(x0, y0, x1, y1)`` integer pixel bounds with ``x1``
and ``y1`` exclusive: the pixels ``image[y0:y1, x0:x1]``.

Images are torch tensors ``(N, 3, H, W)`` in display-referred sRGB [0, 1]; SSIM inside a box is the mean of the
full frame's SSIM map (kornia, 11-pixel Gaussian window, sigma 1.5, same-size padding) over the box, so small
boxes need no window of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import kornia.metrics
import numpy as np
import numpy.typing as npt
import torch

from dvp_engine.core import FaceTrack, layout
from dvp_engine.core.rotation import euler_to_matrix

__all__ = ["REGIONS", "box_crops", "project_landmarks", "region_boxes", "region_metrics"]

REGIONS: dict[str, tuple[int, ...]] = {
    "face": tuple(range(68)),
    "mouth": tuple(range(48, 68)),
    "eyes": tuple(range(36, 48)),
}
"""dlib/iBUG-68 landmark indices of each region."""


def project_landmarks(
    model: Any,
    params: npt.ArrayLike,
    identity: npt.ArrayLike,
    intrinsics: tuple[float, float, float, float],
) -> npt.NDArray[np.float64]:
    """Pixel positions ``(N, 68, 2)`` of the model's landmark vertices for packed parameter rows.

    Args:
        model: a :class:`~dvp_engine.facemodel.FaceModel`.
        params: ``(N, FRAME_SIZE)`` packed FaceTrack parameters (radians, metres).
        identity: ``(80,)`` identity coefficients.
        intrinsics: ``(fx, fy, cx, cy)`` of the image the boxes are for (e.g. the network crop's).
    """
    p = np.atleast_2d(np.asarray(params, np.float64))
    L = layout.FRAME_LAYOUT
    lm = np.asarray(model.landmarks68, np.int64)
    verts = np.asarray(
        model.vertices(np.asarray(identity, np.float64), p[:, L["expression"]], p[:, L["blink"]]), np.float64
    )[:, lm]
    fx, fy, cx, cy = intrinsics
    out = np.zeros((p.shape[0], lm.size, 2))
    for i in range(p.shape[0]):
        rot = euler_to_matrix(p[i, L["rotation"]], degrees=False)
        xc = verts[i] @ rot.T + p[i, L["translation"]]
        z = np.maximum(xc[:, 2], 1e-6)
        out[i] = np.stack([fx * xc[:, 0] / z + cx, fy * xc[:, 1] / z + cy], axis=1)
    return out


def _box(points: npt.NDArray[np.float64], pad: float, min_side: int, w: int, h: int) -> list[int]:
    lo, hi = points.min(axis=0), points.max(axis=0)
    grow = pad * float((hi - lo).max())
    lo, hi = lo - grow, hi + grow
    centre, half = 0.5 * (lo + hi), np.maximum(0.5 * (hi - lo), 0.5 * min_side)
    x0, y0 = np.floor(centre - half).astype(int)
    x1, y1 = np.ceil(centre + half).astype(int) + 1
    x0, x1 = int(np.clip(x0, 0, w - 1)), int(np.clip(x1, 1, w))
    y0, y1 = int(np.clip(y0, 0, h - 1)), int(np.clip(y1, 1, h))
    return [x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)]


def region_boxes(
    model: Any,
    track: FaceTrack,
    indices: Sequence[int],
    intrinsics: tuple[float, float, float, float],
    size: tuple[int, int],
    *,
    params: npt.ArrayLike | None = None,
    pad: float = 0.15,
    min_side: int = 8,
) -> dict[str, npt.NDArray[np.int64]]:
    """Per-frame boxes of every region in :data:`REGIONS`, ``{name: (N, 4) int64 (x0, y0, x1, y1)}``.

    Args:
        model: the face model the track was made with.
        track: gives the identity and (unless ``params`` is given) the per-frame parameters.
        indices: track rows (not frame numbers) to box.
        intrinsics: ``(fx, fy, cx, cy)`` of the image the boxes are for (for a network image,
            ``Framing.intrinsics(track.intrinsics)``).
        size: ``(width, height)`` of that image in pixels.
        params: ``(N, FRAME_SIZE)`` rows to use instead of ``track.params()[indices]``.
        pad: growth on every side, as a fraction of the landmarks' bounding box's longer side.
        min_side: smallest box side in pixels (a box is grown about its centre to reach it).
    """
    rows = track.params()[list(indices)] if params is None else np.atleast_2d(np.asarray(params, np.float64))
    pix = project_landmarks(model, rows, track.identity, intrinsics)
    w, h = size
    return {
        name: np.array([_box(pix[i, list(lm)], pad, min_side, w, h) for i in range(len(rows))], np.int64)
        for name, lm in REGIONS.items()
    }


def box_crops(images: torch.Tensor, boxes: npt.ArrayLike, side: int) -> torch.Tensor:
    """The boxed part of every image, resized to ``(N, C, side, side)`` (bilinear; boxes are squared first about
    their centre, within the image where it allows, so faces keep their aspect)."""
    import torch.nn.functional as F

    n, _, h, w = images.shape
    b = np.asarray(boxes, np.int64).reshape(n, 4)
    crops = []
    for i in range(n):
        x0, y0, x1, y1 = (int(v) for v in b[i])
        s = min(max(x1 - x0, y1 - y0), w, h)
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        sx = int(np.clip(cx - s // 2, 0, w - s))
        sy = int(np.clip(cy - s // 2, 0, h - s))
        crop = images[i : i + 1, :, sy : sy + s, sx : sx + s].float()
        crops.append(F.interpolate(crop, size=(side, side), mode="bilinear", align_corners=False))
    return torch.cat(crops).clamp(0.0, 1.0)


def region_metrics(pred: torch.Tensor, target: torch.Tensor, boxes: npt.ArrayLike) -> dict[str, float]:
    """Mean PSNR (dB), SSIM and L1 inside per-frame boxes.

    Args:
        pred, target: ``(N, 3, H, W)`` sRGB [0, 1].
        boxes: ``(N, 4)`` ``(x0, y0, x1, y1)``, exclusive upper bounds.
    Returns:
        ``{"psnr", "ssim", "l1"}``: means over frames of the per-frame values (PSNR is ``inf`` when the boxed
        pixels are identical in every frame).
    """
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(
            f"expected two (N,C,H,W) tensors of one shape, got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    n = pred.shape[0]
    b = np.asarray(boxes, np.int64).reshape(n, 4)
    smap = kornia.metrics.ssim(pred.float(), target.float(), 11, max_val=1.0, eps=0.0, padding="same")
    ps, ss, ls = [], [], []
    for i in range(n):
        x0, y0, x1, y1 = (int(v) for v in b[i])
        p = pred[i, :, y0:y1, x0:x1].double()
        t = target[i, :, y0:y1, x0:x1].double()
        if p.numel() == 0:
            raise ValueError(f"box {b[i].tolist()} of image {i} is empty")
        mse = float((p - t).pow(2).mean())
        ps.append(10.0 * np.log10(1.0 / mse) if mse > 0 else float("inf"))
        ss.append(float(smap[i, :, y0:y1, x0:x1].mean()))
        ls.append(float((p - t).abs().mean()))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss)), "l1": float(np.mean(ls))}
