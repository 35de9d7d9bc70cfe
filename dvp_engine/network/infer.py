"""Batched inference: conditioning volumes -> frames, bf16 on CUDA, out-of-memory fallback to smaller batches."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dvp_engine.core.errors import DvpError

from .arch import AnyGenerator
from .checkpoint import load_generator
from .generator import fold_batchnorm

__all__ = ["Renderer", "infer", "resolve_device"]

log = logging.getLogger("dvp.network")


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"``: CUDA when torch sees a GPU, else the CPU; any other name as torch reads it."""
    if isinstance(name, str) and name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Renderer:
    """Runs a trained generator over conditioning volumes in batches.

    Args:
        model: a generator (either architecture, :mod:`.arch`), or a path (model folder, checkpoint folder, generator file).
        device: "auto" (CUDA if present), "cpu", "cuda", ...
        batch: frames per forward pass; halved (and logged, see ``events``) on GPU out-of-memory.
        bf16: bf16 autocast on CUDA (default on CUDA; always off on the CPU).
        channels_last: channels_last memory format on CUDA (default on CUDA).
        compile: ``torch.compile`` the generator (pays off on long sequences on CUDA).
        fold_bn: fold BatchNorm into the convolutions (:func:`~dvp_engine.network.generator.fold_batchnorm`;
            the same function, faster); the renderer then works on a folded copy, a given model is left as it is.
        expect: architecture fields to check when loading from a path, e.g. ``{"size": 256, "nw": 11}``.

    ``render(volumes)``: ``(N, 9*Nw, S, S)`` float in [-1, 1] (numpy or torch) -> ``(N, 3, S, S)`` float32 CPU
    tensor in [-1, 1]. The generator runs in eval mode (BN running statistics, no dropout): deterministic.
    """

    def __init__(
        self,
        model: AnyGenerator | str | Path,
        device: str | torch.device = "auto",
        batch: int = 16,
        bf16: bool | None = None,
        channels_last: bool | None = None,
        compile: bool = False,
        expect: dict[str, Any] | None = None,
        fold_bn: bool = True,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        dev = resolve_device(device)
        self.device = dev
        cuda = dev.type == "cuda"
        self.bf16 = cuda if bf16 is None else (bf16 and cuda)
        self.memory_format = (
            torch.channels_last
            if (cuda if channels_last is None else channels_last)
            else torch.contiguous_format
        )
        if isinstance(model, nn.Module):
            g = model
        else:
            g = load_generator(model, expect=expect, device="cpu")
        if fold_bn:
            g = fold_batchnorm(g)
        g.to(dev).to(memory_format=self.memory_format)  # type: ignore[call-overload,unused-ignore]
        self.model: AnyGenerator = g.eval()
        self._run: Any = torch.compile(self.model) if compile else self.model
        self.batch = batch
        self.events: list[str] = []
        """Human-readable notes such as out-of-memory batch reductions."""

    @property
    def in_channels(self) -> int:
        return self.model.config.in_channels

    def _forward(self, x: torch.Tensor, on_device: bool = False) -> torch.Tensor:
        x = x.to(self.device, dtype=torch.float32, non_blocking=True).contiguous(
            memory_format=self.memory_format
        )
        ctx = (
            torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        )
        with torch.inference_mode(), ctx:
            y: torch.Tensor = self._run(x)
        y = y.float().contiguous()
        return y if on_device else y.cpu()

    def _check(self, v: torch.Tensor) -> None:
        c = self.model.config
        if v.ndim != 4 or v.shape[1] != c.in_channels:
            raise DvpError(
                f"conditioning volumes are {tuple(v.shape)}, the model needs (N, {c.in_channels}, {c.size}, {c.size})"
            )
        # the extremes instead of an elementwise mask (20 ms a frame at 256 on a CPU, 30x the cost): NaN
        # propagates into both, an infinity is one of them
        if not v.is_floating_point() or v.numel() == 0:
            return
        lo, hi = torch.aminmax(v)
        if bool(torch.isfinite(lo) & torch.isfinite(hi)):
            return
        raise DvpError("conditioning volumes contain NaN or infinite values")

    def render_batches(
        self, volumes: torch.Tensor | np.ndarray, on_device: bool = False
    ) -> Iterator[torch.Tensor]:
        """Yield outputs batch by batch (``(b, 3, S, S)`` float32, [-1, 1]) in order: on the CPU, or left on
        the renderer's device with ``on_device`` (for post-processing there)."""
        v = torch.from_numpy(np.ascontiguousarray(volumes)) if isinstance(volumes, np.ndarray) else volumes
        self._check(v)
        i, n = 0, int(v.shape[0])
        while i < n:
            b = min(self.batch, n - i)
            try:
                out = self._forward(v[i : i + b], on_device)
            except torch.OutOfMemoryError as exc:
                if b <= 1:
                    raise DvpError(f"out of GPU memory even at batch 1 ({exc})") from exc
                self.batch = max(1, b // 2)
                msg = f"out of GPU memory at batch {b}; retrying with batch {self.batch}"
                self.events.append(msg)
                log.warning(msg)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            yield out
            i += b

    def render(self, volumes: torch.Tensor | np.ndarray, on_device: bool = False) -> torch.Tensor:
        """All outputs ``(N, 3, S, S)`` float32 in [-1, 1], on the CPU (or the renderer's device with
        ``on_device``)."""
        parts = list(self.render_batches(volumes, on_device))
        if not parts:
            c = self.model.config
            return torch.empty(0, c.out_channels, c.size, c.size, device=self.device if on_device else "cpu")
        return torch.cat(parts)

    def render_stream(self, volumes: Iterable[torch.Tensor | np.ndarray]) -> Iterator[torch.Tensor]:
        """Render an iterable of single volumes ``(9*Nw, S, S)`` (e.g. from a sliding-window renderer),
        grouping them into batches; yields single frames ``(3, S, S)`` in order."""
        buf: list[torch.Tensor] = []
        for vol in volumes:
            buf.append(torch.from_numpy(np.ascontiguousarray(vol)) if isinstance(vol, np.ndarray) else vol)
            if len(buf) >= self.batch:
                yield from self.render(torch.stack(buf))
                buf = []
        if buf:
            yield from self.render(torch.stack(buf))


def infer(
    model: AnyGenerator | str | Path,
    volumes: torch.Tensor | np.ndarray,
    batch: int = 16,
    device: str | torch.device = "auto",
    bf16: bool | None = None,
) -> torch.Tensor:
    """One-shot :class:`Renderer`: volumes ``(N, 9*Nw, S, S)`` in [-1, 1] -> frames ``(N, 3, S, S)`` in [-1, 1]."""
    return Renderer(model, device=device, batch=batch, bf16=bf16).render(volumes)
