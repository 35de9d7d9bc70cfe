"""The space-time conditioning volume (paper section 5): which frames make a volume and how they are stacked.

A volume of frame ``i`` stacks the conditioning images of the ``Nw`` frames ``i - Nw + 1 .. i`` oldest first,
current frame last, each frame contributing 9 channels (colour RGB, correspondence RGB, eye-gaze RGB), mapped
from display-referred sRGB [0, 1] (or uint8 0..255) to the network space [-1, 1]. The renderer
(:func:`dvp_engine.render.conditioning.build_volumes`), the portrait pipeline and the network's datasets
(:mod:`dvp_engine.network.data`) all build their volumes here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["ArrayLike", "gather_windows", "take_rows", "to_network_range", "window_indices", "writable_array"]

ArrayLike = np.ndarray | torch.Tensor


def window_indices(frame_idx: int, nw: int = 11, first: int = 0) -> list[int]:
    """Indices of the Nw frames whose conditioning images form the volume of ``frame_idx``.

    Returns exactly ``nw`` indices ending at ``frame_idx`` (oldest first, ``frame_idx`` last):
    ``[frame_idx - nw + 1, ..., frame_idx]``. Indices before ``first`` (the start of the sequence) are clamped to
    ``first``, i.e. the first frame is repeated; the paper instead drops the first Nw - 1 frames from training
    (use ``held_out_split(..., full_windows_only=True)``).

    Args:
        frame_idx: position of the current frame (0-based index into the sequence, or a frame number when
            ``first`` is the first frame number).
        nw: window length (>= 1).
        first: first valid index of the sequence.
    Raises:
        ValueError: ``nw < 1`` or ``frame_idx < first``.
    """
    if nw < 1:
        raise ValueError(f"window length must be >= 1, got {nw}")
    if frame_idx < first:
        raise ValueError(f"frame {frame_idx} is before the first frame {first}")
    return [max(first, i) for i in range(frame_idx - nw + 1, frame_idx + 1)]


def writable_array(a: np.ndarray) -> np.ndarray:
    """A contiguous array torch may wrap: read-only memory maps are copied (torch needs writable memory)."""
    a = np.ascontiguousarray(a)
    return a if a.flags.writeable else a.copy()


def to_network_range(a: ArrayLike, unit_range: bool = True) -> torch.Tensor:
    """Images to float32 torch in the network space [-1, 1].

    ``uint8`` arrays are read as [0, 255]; float arrays as [0, 1] when ``unit_range`` (the project's numpy
    convention) or as already in [-1, 1] otherwise.
    """
    t = torch.from_numpy(writable_array(a)) if isinstance(a, np.ndarray) else a
    if t.dtype == torch.uint8:
        return t.to(torch.float32) * (2.0 / 255.0) - 1.0
    t = t.to(torch.float32)
    return t * 2.0 - 1.0 if unit_range else t


def take_rows(a: ArrayLike, rows: list[int], device: torch.device) -> torch.Tensor:
    """Rows of a numpy array / memory map (only those rows are read) or a tensor, as a tensor on ``device``."""
    if isinstance(a, torch.Tensor):
        return a.index_select(0, torch.tensor(rows, dtype=torch.long, device=a.device)).to(device)
    return torch.from_numpy(np.ascontiguousarray(a[rows])).to(device)


def gather_windows(
    conditioning: ArrayLike,
    windows: Sequence[Sequence[int]],
    device: torch.device | str = "cpu",
    unit_range: bool = True,
) -> torch.Tensor:
    """Conditioning volumes of many windows at once: ``(B, 9*Nw, H, W)`` float32 in [-1, 1] on ``device``.

    Args:
        conditioning: per-frame images ``(T, 9, H, W)`` (uint8 or float, see :func:`to_network_range`): a
            numpy array or memory map (only the rows the windows use are read) or a tensor on any device.
        windows: B rows of Nw indices into ``conditioning``, oldest first (e.g. :func:`window_indices`).

    Each frame the windows share is converted once and the windows are gathered from them on ``device``;
    volume ``b`` equals ``torch.cat([to_network_range(conditioning[j]) for j in windows[b]])``.
    """
    dev = torch.device(device)
    needed = sorted({j for w in windows for j in w})
    at = {j: n for n, j in enumerate(needed)}
    block = to_network_range(take_rows(conditioning, needed, dev), unit_range)
    idx = torch.tensor([[at[j] for j in w] for w in windows], device=dev)
    h, w = block.shape[-2:]
    return block[idx].reshape(len(windows), -1, h, w)
