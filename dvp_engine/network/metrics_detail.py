"""Fine-detail metrics inside a box: sharpness (high-frequency energy ratio) and high-frequency fidelity.

A blurred face and a face covered in checkerboard artefacts can score alike on PSNR, and a plain energy ratio
rates the artefacts as "sharp". So two figures are reported side by side, both on the same band:

* **sharpness** = ``E[L(out)^2] / E[L(gt)^2]`` inside the box: the high-frequency energy of the output over that
  of the ground truth. 1.0 = as much fine detail as the footage; a blur drives it toward 0; noise or artefacts
  push it up (even above 1).
* **hf_fidelity** = the Pearson correlation of ``L(out)`` and ``L(gt)`` inside the box: 1.0 = the same detail in
  the same place; a blur keeps only the coarse part of the band (well below 1); noise that is not in the footage
  adds energy uncorrelated with it and lowers the figure. It cannot be raised by inventing detail.

``L`` is the 4-neighbour Laplacian (``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``, replicate padding) of the BT.709 luma of
the display-referred sRGB [0, 1] image: it responds to every frequency up to Nyquist, the two-pixel checkerboard of
a transposed convolution included.

Images are torch tensors ``(N, 3, H, W)`` in sRGB [0, 1]; boxes are ``(N, 4)`` integer ``(x0, y0, x1, y1)`` pixel
bounds, ``x1``/``y1`` exclusive (see :mod:`dvp_engine.network.metrics_regions`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

__all__ = ["detail_metrics", "hf_fidelity", "laplacian", "luma", "sharpness"]

_LUMA_709 = (0.2126, 0.7152, 0.0722)


def luma(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` sRGB [0, 1] -> ``(N, 1, H, W)`` BT.709 luma of the encoded values (float64)."""
    w = torch.tensor(_LUMA_709, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    return (x.double() * w).sum(1, keepdim=True)


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """4-neighbour Laplacian of ``(N, 1, H, W)`` images, same size (replicate padding)."""
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype, device=x.device)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k.view(1, 1, 3, 3))


def _full_boxes(n: int, h: int, w: int) -> npt.NDArray[np.int64]:
    return np.tile(np.array([0, 0, w, h], np.int64), (n, 1))


def _band_pairs(
    pred: torch.Tensor, target: torch.Tensor, boxes: npt.ArrayLike | None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(
            f"expected two (N,3,H,W) tensors of one shape, got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    n, _, h, w = pred.shape
    b = _full_boxes(n, h, w) if boxes is None else np.asarray(boxes, np.int64).reshape(n, 4)
    lp, lt = laplacian(luma(pred)), laplacian(luma(target))
    out = []
    for i in range(n):
        x0, y0, x1, y1 = (int(v) for v in b[i])
        if x1 - x0 < 3 or y1 - y0 < 3:
            raise ValueError(f"box {b[i].tolist()} of image {i} is smaller than 3 x 3 pixels")
        out.append((lp[i, 0, y0:y1, x0:x1].flatten(), lt[i, 0, y0:y1, x0:x1].flatten()))
    return out


def sharpness(pred: torch.Tensor, target: torch.Tensor, boxes: npt.ArrayLike | None = None) -> torch.Tensor:
    """Per-image high-frequency energy ratio ``(N,)``: ``mean(L(pred)^2) / mean(L(target)^2)`` in the box.

    1.0 for identical images; NaN where the target has no detail at all in the box (flat).
    """
    vals = []
    for p, t in _band_pairs(pred, target, boxes):
        et = float((t * t).mean())
        vals.append(float((p * p).mean()) / et if et > 1e-20 else float("nan"))
    return torch.tensor(vals, dtype=torch.float64)


def hf_fidelity(pred: torch.Tensor, target: torch.Tensor, boxes: npt.ArrayLike | None = None) -> torch.Tensor:
    """Per-image correlation ``(N,)`` in [-1, 1] of the Laplacian of ``pred`` and ``target`` in the box.

    1.0 for identical images (and for any positive scaling of them); NaN where either is flat in the box.
    """
    vals = []
    for p, t in _band_pairs(pred, target, boxes):
        p, t = p - p.mean(), t - t.mean()
        den = float(torch.sqrt((p * p).sum() * (t * t).sum()))
        vals.append(float((p * t).sum()) / den if den > 1e-20 else float("nan"))
    return torch.tensor(vals, dtype=torch.float64)


def detail_metrics(
    pred: torch.Tensor, target: torch.Tensor, boxes: npt.ArrayLike | None = None
) -> dict[str, float]:
    """Mean ``sharpness`` and ``hf_fidelity`` over the images (NaN frames left out; None if all are NaN)."""
    out: dict[str, float] = {}
    for name, fn in (("sharpness", sharpness), ("hf_fidelity", hf_fidelity)):
        v = fn(pred, target, boxes).numpy()
        v = v[np.isfinite(v)]
        out[name] = float(v.mean()) if v.size else float("nan")
    return out
