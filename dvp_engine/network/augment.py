"""Augmentation that keeps the conditioning and the frame aligned (the ``fast`` architecture's training).

With ~200 training frames the generator memorises them; shifting the conditioning volume, the ground-truth
frame and the background input by the same random whole-pixel offset shows it every pose at many image
positions, so it has to use the inputs instead of the frame's position. The offsets are a pure function of
(seed, iteration), so resumed training draws the same ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["aligned_shift", "shift_offsets"]


def shift_offsets(batch: int, max_shift: int, seed: int, iteration: int) -> torch.Tensor:
    """``(batch, 2)`` integer offsets ``(dx, dy)`` in ``[-max_shift, max_shift]``, drawn from a generator
    seeded with ``(seed, iteration)`` (the global random stream is not touched)."""
    g = torch.Generator().manual_seed(seed * 1_000_033 + 977 * iteration + 13)
    return torch.randint(-max_shift, max_shift + 1, (batch, 2), generator=g)


def aligned_shift(images: Sequence[torch.Tensor], offsets: torch.Tensor) -> list[torch.Tensor]:
    """Shift every image of sample ``b`` by ``offsets[b] = (dx, dy)`` pixels (content moves right/down for
    positive values), the uncovered border repeating the edge pixels.

    Args:
        images: tensors ``(B, C_k, H, W)`` with the same ``B``, ``H``, ``W`` (conditioning, frame, background).
        offsets: ``(B, 2)`` integers, ``|offset| < min(H, W)``.
    Returns:
        The shifted tensors, same shapes and dtypes.
    """
    if not images:
        return []
    b, h, w = images[0].shape[0], images[0].shape[-2], images[0].shape[-1]
    m = int(offsets.abs().max()) if offsets.numel() else 0
    if m == 0:
        return list(images)
    out: list[torch.Tensor] = []
    for img in images:
        if img.shape[0] != b or img.shape[-2:] != (h, w):
            raise ValueError(f"images differ in batch or size: {tuple(img.shape)} vs ({b}, ..., {h}, {w})")
        padded = F.pad(img, (m, m, m, m), mode="replicate")
        rows = []
        for k in range(b):
            dx, dy = int(offsets[k, 0]), int(offsets[k, 1])
            rows.append(padded[k, :, m - dy : m - dy + h, m - dx : m - dx + w])
        out.append(torch.stack(rows))
    return out
