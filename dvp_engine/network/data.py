"""Training data for the network: sliding windows, the held-out split and (volume, frame) pair datasets.

Volume channel layout (the contract with the conditioning renderer): a volume stacks the Nw frames of its
window oldest first, current frame last; each frame contributes 9 channels in the order
colour RGB, correspondence RGB, eye-gaze RGB. So the current frame's colour render is channels
``9*(Nw-1) : 9*(Nw-1) + 3`` (see :func:`current_colour`). Everything is display-referred sRGB mapped to [-1, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from dvp_engine.render.volume import (
    ArrayLike,
    gather_windows,
    take_rows,
    to_network_range,
    window_indices,
    writable_array,
)

__all__ = [
    "CHANNELS_PER_FRAME",
    "PairDataset",
    "current_colour",
    "gather_windows",
    "held_out_split",
    "stack_window",
    "to_network_range",
    "window_indices",
]

CHANNELS_PER_FRAME = 9


def held_out_split(
    n_frames: int, fraction: float = 0.1, nw: int = 11, full_windows_only: bool = False
) -> tuple[list[int], list[int]]:
    """Split sequence positions ``0..n_frames-1`` into (train, held_out).

    The held-out set is the last ``ceil(fraction * n_frames)`` frames (at least 1): they are never trained on.
    With ``full_windows_only`` the first ``nw - 1`` frames (whose windows would reach before the start) are left
    out of training, as in the paper's corpus of ``Nt - (Nw - 1)`` volumes.

    Raises:
        ValueError: too few frames to leave a non-empty training set.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"held-out fraction must be in (0, 1), got {fraction}")
    n_held = max(1, math.ceil(fraction * n_frames))
    start = nw - 1 if full_windows_only else 0
    train = list(range(start, n_frames - n_held))
    if not train:
        raise ValueError(f"{n_frames} frames leave no training frames (held out {n_held}, skipped {start})")
    return train, list(range(n_frames - n_held, n_frames))


def stack_window(
    conditioning: ArrayLike, frame_idx: int, nw: int = 11, unit_range: bool = True
) -> torch.Tensor:
    """The conditioning volume of sequence position ``frame_idx``: ``(9*nw, H, W)`` float32 in [-1, 1].

    Args:
        conditioning: per-frame conditioning images ``(T, 9, H, W)`` (colour, correspondence, gaze; uint8 or
            float, see :func:`to_network_range`); numpy memory maps work and are read lazily.
        frame_idx: position in ``0..T-1``; the window is :func:`window_indices` ``(frame_idx, nw)``.
    """
    idx = window_indices(frame_idx, nw, 0)
    if frame_idx >= len(conditioning):
        raise IndexError(f"frame {frame_idx} outside the {len(conditioning)} conditioning frames")
    parts = [to_network_range(conditioning[i], unit_range) for i in idx]
    for i, p in zip(idx, parts, strict=True):
        if p.ndim != 3 or p.shape[0] != CHANNELS_PER_FRAME:
            raise ValueError(f"conditioning frame {i} has shape {tuple(p.shape)}, expected (9, H, W)")
    return torch.cat(parts, dim=0)


def current_colour(volume: torch.Tensor, nw: int) -> torch.Tensor:
    """The current frame's colour render from volumes ``(B, 9*nw, H, W)`` -> ``(B, 3, H, W)`` (same range)."""
    c0 = CHANNELS_PER_FRAME * (nw - 1)
    return volume[:, c0 : c0 + 3]


def _to_tensor(a: ArrayLike) -> torch.Tensor:
    t = torch.from_numpy(writable_array(a)) if isinstance(a, np.ndarray) else a
    return t.to(torch.float32)


class _Sequence:
    """The per-frame arrays behind a :meth:`PairDataset.from_sequence` dataset, with device copies."""

    def __init__(self, conditioning: ArrayLike, frames: ArrayLike, nw: int, unit_range: bool) -> None:
        self.conditioning, self.frames, self.nw, self.unit_range = conditioning, frames, nw, unit_range
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole sequence on ``device`` (uploaded once, in its stored dtype)."""
        if device not in self._on:

            def up(a: ArrayLike) -> torch.Tensor:
                t = torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a
                return t.to(device)

            self._on[device] = (up(self.conditioning), up(self.frames))
        return self._on[device]


class PairDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(conditioning volume, ground-truth frame) pairs, from arrays or from a callable.

    Items: ``volume`` ``(9*Nw, H, W)`` float32 in [-1, 1] and ``frame`` ``(3, H, W)`` float32 in [-1, 1].

    Build with :meth:`from_arrays` (volumes ``(N, 9*Nw, H, W)``, frames ``(N, 3, H, W)``, numpy or torch) or
    :meth:`from_callable` (``fn(i) -> (volume, frame)`` for ``i`` in ``indices``), e.g. to read pre-rendered
    volumes cached on disk. ``indices`` restricts the dataset to a subset (such as the training split).
    """

    def __init__(
        self,
        n: int,
        fetch: Callable[[int], tuple[ArrayLike, ArrayLike]],
        indices: Sequence[int] | None = None,
        sequence: _Sequence | None = None,
    ) -> None:
        self._fetch = fetch
        self._sequence = sequence
        self._n = n
        self.indices = list(range(n)) if indices is None else [int(i) for i in indices]
        for i in self.indices:
            if not 0 <= i < n:
                raise IndexError(f"dataset index {i} outside 0..{n - 1}")

    @classmethod
    def from_arrays(
        cls, volumes: ArrayLike, frames: ArrayLike, indices: Sequence[int] | None = None
    ) -> PairDataset:
        """Dataset over in-memory arrays; checks matching counts and sizes."""
        if volumes.ndim != 4 or frames.ndim != 4:
            raise ValueError(
                f"expected volumes (N,C,H,W) and frames (N,3,H,W), got {volumes.shape}, {frames.shape}"
            )
        if volumes.shape[0] != frames.shape[0]:
            raise ValueError(f"{volumes.shape[0]} volumes but {frames.shape[0]} frames")
        if tuple(volumes.shape[2:]) != tuple(frames.shape[2:]):
            raise ValueError(
                f"volume size {tuple(volumes.shape[2:])} != frame size {tuple(frames.shape[2:])}"
            )
        if volumes.shape[1] % CHANNELS_PER_FRAME:
            raise ValueError(f"volume channels {volumes.shape[1]} are not a multiple of {CHANNELS_PER_FRAME}")
        v, f = _to_tensor(volumes), _to_tensor(frames)
        return cls(int(v.shape[0]), lambda i: (v[i], f[i]), indices)

    @classmethod
    def from_callable(
        cls, n: int, fn: Callable[[int], tuple[ArrayLike, ArrayLike]], indices: Sequence[int] | None = None
    ) -> PairDataset:
        """Dataset calling ``fn(i) -> (volume (9Nw,H,W), frame (3,H,W))`` for each sequence position ``i``."""
        return cls(n, fn, indices)

    @classmethod
    def from_sequence(
        cls,
        conditioning: ArrayLike,
        frames: ArrayLike,
        nw: int = 11,
        indices: Sequence[int] | None = None,
        unit_range: bool = True,
    ) -> PairDataset:
        """Dataset that stacks sliding windows on the fly from per-frame conditioning images.

        Storing the 9 conditioning channels per frame (instead of whole volumes) is Nw times smaller; uint8
        arrays and numpy memory maps (``np.load(path, mmap_mode="r")``) keep 2,000 frames at 256 in ~1.2 GB.

        Args:
            conditioning: ``(T, 9, H, W)`` per frame: colour RGB, correspondence RGB, eye-gaze RGB.
            frames: ``(T, 3, H, W)`` ground-truth video frames, same size.
            nw: window length; item i's volume is :func:`stack_window` ``(conditioning, i, nw)``.
            unit_range: float inputs are in [0, 1] (True) or already in [-1, 1] (False); uint8 is [0, 255].
        """
        if len(conditioning) != len(frames):
            raise ValueError(f"{len(conditioning)} conditioning frames but {len(frames)} video frames")
        if conditioning.ndim != 4 or conditioning.shape[1] != CHANNELS_PER_FRAME or frames.ndim != 4:
            raise ValueError(f"expected (T,9,H,W) and (T,3,H,W), got {conditioning.shape} and {frames.shape}")
        if tuple(conditioning.shape[2:]) != tuple(frames.shape[2:]):
            raise ValueError(
                f"conditioning size {tuple(conditioning.shape[2:])} != frame size {tuple(frames.shape[2:])}"
            )

        def fetch(i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return stack_window(conditioning, i, nw, unit_range), to_network_range(frames[i], unit_range)

        return cls(len(frames), fetch, indices, _Sequence(conditioning, frames, nw, unit_range))

    def subset(self, indices: Sequence[int]) -> PairDataset:
        """The same source restricted to sequence positions ``indices``."""
        return PairDataset(self._n, self._fetch, indices, self._sequence)

    @property
    def gathers(self) -> bool:
        """Whether :meth:`gather` builds batches directly (datasets made by :meth:`from_sequence`)."""
        return self._sequence is not None

    def gather(
        self, ks: Sequence[int], device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The items ``ks`` as one batch built on ``device``: ``(B, 9*Nw, H, W)`` and ``(B, 3, H, W)`` float32
        in [-1, 1], equal to stacking ``self[k]``.

        Each conditioning frame a batch needs is converted once and the windows are gathered from them, on
        the device: on CUDA the whole per-frame sequence is uploaded once (uint8: 2,000 frames at 256 are
        1.6 GB) and batches never pass through the host, so the GPU is not starved by a data loader building
        26 MB float volumes per item on the CPU. On the CPU only the frames a batch needs are read (memory
        maps stay lazy).

        Raises:
            TypeError: the dataset was not made by :meth:`from_sequence` (see :attr:`gathers`).
        """
        if self._sequence is None:
            raise TypeError("gather needs a dataset made by PairDataset.from_sequence")
        seq = self._sequence
        dev = torch.device(device)
        pos = [self.indices[k] for k in ks]
        # CUDA: the whole sequence lives on the GPU; the CPU reads only the rows a batch needs
        cond, frames = seq.on(dev) if dev.type != "cpu" else (seq.conditioning, seq.frames)
        volumes = gather_windows(cond, [window_indices(i, seq.nw, 0) for i in pos], dev, seq.unit_range)
        return volumes, to_network_range(take_rows(frames, pos, dev), seq.unit_range)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = self.indices[k]
        vol, frame = self._fetch(i)
        return _to_tensor(vol), _to_tensor(frame)
