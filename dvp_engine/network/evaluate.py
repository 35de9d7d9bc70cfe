"""Evaluation: PSNR, SSIM, L1, temporal stability, the nearest-neighbour baseline and contact sheets.

All image metrics take torch tensors ``(N, 3, H, W)`` in display-referred sRGB **[0, 1]** (map network outputs
with :func:`to_unit`). Sequence metrics treat N as time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import kornia.metrics
import numpy as np
import torch
from torch.utils.data import Dataset

from dvp_engine.core.atomic import atomic_path
from dvp_engine.core.errors import DvpError

__all__ = [
    "contact_sheet",
    "evaluate_dataset",
    "evaluate_frames",
    "l1",
    "nearest_neighbour",
    "psnr",
    "ssim",
    "temporal_stability",
    "to_unit",
    "write_contact_sheet",
    "write_png",
]


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Network space [-1, 1] -> [0, 1] (clamped)."""
    return ((x + 1.0) * 0.5).clamp(0.0, 1.0)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(
            f"expected two (N,C,H,W) tensors of one shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB, ``10 log10(range^2 / MSE)``, ``(N,)``; identical images give ``inf``."""
    _check_pair(pred, target)
    mse = (pred.double() - target.double()).pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(data_range**2 / mse)).float()


def ssim(
    pred: torch.Tensor, target: torch.Tensor, window_size: int = 11, data_range: float = 1.0
) -> torch.Tensor:
    """Per-image mean SSIM ``(N,)`` (kornia, Gaussian window sigma 1.5, valid region only, no eps term).

    Images must be at least ``2 * window_size`` pixels a side.
    """
    _check_pair(pred, target)
    m = kornia.metrics.ssim(
        pred.float(), target.float(), window_size, max_val=data_range, eps=0.0, padding="valid"
    )
    return m.flatten(1).mean(1)


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image mean absolute error ``(N,)`` in the images' units."""
    _check_pair(pred, target)
    return (pred - target).abs().flatten(1).mean(1)


def temporal_stability(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Temporal error ``(N-1,)``: mean ``|(p_t - p_{t-1}) - (g_t - g_{t-1})|`` over pixels, per step.

    Zero when the output changes from frame to frame exactly as the ground truth does (a constant offset
    is not penalised; flicker is). Frames must be consecutive.
    """
    _check_pair(pred, target)
    if pred.shape[0] < 2:
        raise ValueError("temporal stability needs at least 2 consecutive frames")
    dp = pred[1:] - pred[:-1]
    dg = target[1:] - target[:-1]
    return (dp - dg).abs().flatten(1).mean(1)


def evaluate_frames(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Mean PSNR (dB), SSIM, L1 and temporal error over a sequence ``(N,3,H,W)`` in [0, 1]."""
    out = {
        "psnr": float(psnr(pred, target).mean()),
        "ssim": float(ssim(pred, target).mean()),
        "l1": float(l1(pred, target).mean()),
        "frames": int(pred.shape[0]),
    }
    if pred.shape[0] >= 2:
        out["temporal"] = float(temporal_stability(pred, target).mean())
    return out


def evaluate_dataset(
    render: Callable[[torch.Tensor], torch.Tensor],
    dataset: Dataset[tuple[torch.Tensor, torch.Tensor]],
    batch: int = 16,
) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
    """Run ``render`` over a (volume, frame) dataset in order and score it with :func:`evaluate_frames`.

    Args:
        render: volumes ``(B, 9*Nw, S, S)`` in [-1, 1] -> frames ``(B, 3, S, S)`` in [-1, 1], e.g.
            ``Renderer(model).render``.
        dataset: e.g. the held-out :class:`~dvp_engine.network.data.PairDataset` (consecutive frames, so the
            temporal measure is meaningful).
    Returns:
        (metrics, outputs ``(N, 3, S, S)`` in [0, 1], ground truth ``(N, 3, S, S)`` in [0, 1]).
    """
    outs: list[torch.Tensor] = []
    gts: list[torch.Tensor] = []
    n = len(dataset)  # type: ignore[arg-type]
    for s in range(0, n, batch):
        items = [dataset[k] for k in range(s, min(n, s + batch))]
        outs.append(to_unit(render(torch.stack([v for v, _ in items])).float().cpu()))
        gts.append(to_unit(torch.stack([f for _, f in items]).float()))
    out, gt = torch.cat(outs), torch.cat(gts)
    return evaluate_frames(out, gt), out, gt


def nearest_neighbour(
    train_params: np.ndarray,
    query_params: np.ndarray,
    standardise: bool = True,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Nearest-neighbour retrieval baseline: for each query, the training frame with the closest parameters.

    Args:
        train_params: ``(N, P)`` per-frame parameter vectors of the training frames (e.g. pose, expression,
            gaze, blink of the target track).
        query_params: ``(M, P)`` parameter vectors to render.
        standardise: divide every dimension by its standard deviation over the training frames, so
            parameters of different units (degrees, metres, coefficients) weigh alike.
        weights: optional ``(P,)`` extra weight per dimension (applied after standardising).
    Returns:
        ``(M,)`` int64 indices into the training frames (Euclidean distance; the first on ties). The
        baseline's output for query m is training frame ``idx[m]``.
    """
    a = np.asarray(train_params, dtype=np.float64)
    q = np.asarray(query_params, dtype=np.float64)
    if a.ndim != 2 or q.ndim != 2 or a.shape[1] != q.shape[1] or a.shape[0] == 0:
        raise ValueError(f"expected (N,P) and (M,P) parameter arrays, got {a.shape} and {q.shape}")
    scale = np.ones(a.shape[1])
    if standardise:
        sd = a.std(axis=0)
        scale = np.where(sd > 1e-12, 1.0 / np.where(sd > 1e-12, sd, 1.0), 0.0)
    if weights is not None:
        scale = scale * np.asarray(weights, dtype=np.float64)
    a_s, q_s = a * scale, q * scale
    d2 = (q_s**2).sum(1)[:, None] - 2.0 * q_s @ a_s.T + (a_s**2).sum(1)[None, :]
    idx: np.ndarray = np.argmin(d2, axis=1).astype(np.int64)
    return idx


def contact_sheet(rows: Sequence[torch.Tensor | np.ndarray], gap: int = 2) -> np.ndarray:
    """Tile rows of images into one ``(H_total, W_total, 3)`` float32 [0, 1] array.

    Args:
        rows: each ``(N, 3, H, W)`` in [0, 1] (torch or numpy), all the same shape; e.g.
            [input colour render, output, ground truth] with one column per frame.
        gap: white pixels between tiles.
    """
    arrs = [
        r.detach().float().cpu().numpy() if isinstance(r, torch.Tensor) else np.asarray(r, np.float32)
        for r in rows
    ]
    if not arrs or any(a.shape != arrs[0].shape or a.ndim != 4 for a in arrs):
        raise ValueError(f"rows must be (N,3,H,W) arrays of one shape, got {[a.shape for a in arrs]}")
    n, c, h, w = arrs[0].shape
    sheet = np.ones((len(arrs) * (h + gap) - gap, n * (w + gap) - gap, 3), np.float32)
    for r, a in enumerate(arrs):
        for i in range(n):
            tile = np.clip(a[i].transpose(1, 2, 0), 0.0, 1.0)
            if c == 1:
                tile = np.repeat(tile, 3, axis=2)
            sheet[r * (h + gap) : r * (h + gap) + h, i * (w + gap) : i * (w + gap) + w] = tile[..., :3]
    return sheet


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write ``(H, W, 3)`` float [0, 1] as an 8-bit sRGB PNG via OpenImageIO, atomically."""
    import OpenImageIO as oiio

    img = np.ascontiguousarray((np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    p = Path(path)
    with atomic_path(p) as tmp:
        out = oiio.ImageOutput.create(str(tmp))
        if out is None:
            raise DvpError(f"cannot create PNG writer ({oiio.geterror()})", path=p)
        spec = oiio.ImageSpec(img.shape[1], img.shape[0], img.shape[2], "uint8")
        ok = out.open(str(tmp), spec) and out.write_image(img)
        out.close()
        if not ok:
            raise DvpError(f"cannot write PNG ({out.geterror()})", path=p)


def write_contact_sheet(path: str | Path, rows: Sequence[torch.Tensor | np.ndarray], gap: int = 2) -> None:
    """:func:`contact_sheet` written as a PNG (rows e.g. input colour render, output, ground truth)."""
    write_png(path, contact_sheet(rows, gap))
