"""The ``fast`` generator: the default architecture, built to learn more per iteration and per FLOP.

Same job as the paper's (:mod:`.generator`): a full frame from a conditioning volume ``(B, 9*Nw, S, S)`` in
[-1, 1] to ``(B, 3, S, S)`` in [-1, 1]; hair, body and background included. What differs, and why
(measurements: docs/network.md, "Architectures"):

* **Appearance from the footage.** Two extra inputs: the plate's static background (the median of the
  training frames, :func:`~.inputs.estimate_background`, stored in the module as the buffer ``background``, so
  checkpoints and the TorchScript export carry it) and a learned neural texture sampled through the current
  frame's correspondence image (:class:`~.inputs.NeuralTexture`). The output is a blend
  ``a * tanh(rgb) + (1 - a) * background`` with a predicted per-pixel ``a``: the network only has to make what
  differs from the plate (the head, the moving body).
* **No checkerboard.** Upsampling is bilinear resize then a 3x3 convolution, never a strided transposed
  convolution.
* **Less arithmetic.** 3x3 convolutions (not 4x4), a bottleneck at ``S / 2**levels`` (8x8 at 256; not 1x1),
  one refinement convolution per scale, and a thin full-resolution head that sees the current frame's
  conditioning, the background and the texture directly (fine detail does not have to pass the bottleneck).

Encoder level ``i`` (``0..levels-1``): ``Conv3x3 s2 (-> BN) -> LReLU(0.2) -> Conv3x3 -> BN -> LReLU`` with
``min(ngf * 2**i, 8 ngf)`` channels (level 0 has no BN on its first convolution). Decoder level ``i``
(``levels-1..1``): ``resize x2 -> Conv3x3 -> BN -> ReLU``, concatenated with encoder level ``i-1``, then
``Conv3x3 -> BN -> ReLU``. Head: ``resize x2``, concatenated with (current conditioning, background, texture),
``Conv3x3 -> ReLU -> Conv3x3`` to 4 channels (RGB, blend logit).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .inputs import NeuralTexture

__all__ = ["FAST_ARCH_VERSION", "FastGenerator", "FastGeneratorConfig"]

FAST_ARCH_VERSION = 1
"""Bumped whenever the ``fast`` layer layout changes so old checkpoints are refused with a clear error."""


@dataclass(frozen=True)
class FastGeneratorConfig:
    """Architecture of :class:`FastGenerator`.

    Attributes:
        size: input and output width = height in pixels; a power of two >= 16.
        nw: temporal window length Nw.
        ngf: base channel width (32 by default; the encoder doubles it per level up to 8 ngf).
        texture_channels: feature channels of the neural texture (0: no texture).
        texture_resolutions: side of each texture grid (coarse to fine).
        out_channels: output image channels (3).
        channels_per_frame: conditioning channels per frame (9).
    """

    size: int = 256
    nw: int = 11
    ngf: int = 32
    texture_channels: int = 8
    texture_resolutions: tuple[int, ...] = field(default=(16, 64))
    out_channels: int = 3
    channels_per_frame: int = 9

    def __post_init__(self) -> None:
        if self.size < 16 or self.size & (self.size - 1):
            raise ValueError(f"generator size must be a power of two >= 16, got {self.size}")
        if self.nw < 1:
            raise ValueError(f"window length nw must be >= 1, got {self.nw}")
        if self.ngf < 4:
            raise ValueError(f"ngf must be >= 4, got {self.ngf}")

    @property
    def arch(self) -> str:
        return "fast"

    @property
    def in_channels(self) -> int:
        """Conditioning channels of the volume, ``channels_per_frame * nw`` (99 for Nw = 11)."""
        return self.channels_per_frame * self.nw

    @property
    def levels(self) -> int:
        """Encoder levels: ``log2(size) - 3`` (bottleneck 8x8), at most 6."""
        return max(1, min(6, int(math.log2(self.size)) - 3))

    @property
    def down_channels(self) -> tuple[int, ...]:
        return tuple(min(self.ngf * 2**i, self.ngf * 8) for i in range(self.levels))

    def signature(self) -> dict[str, Any]:
        """JSON-able architecture signature stored in checkpoints and checked on load."""
        d = asdict(self)
        d["texture_resolutions"] = list(self.texture_resolutions)
        return {
            "kind": "dvp.FastGenerator",
            "arch": "fast",
            "arch_version": FAST_ARCH_VERSION,
            **d,
            "in_channels": self.in_channels,
            "levels": self.levels,
            "down_channels": list(self.down_channels),
        }

    @classmethod
    def from_signature(cls, sig: dict[str, Any]) -> FastGeneratorConfig:
        return cls(
            size=int(sig["size"]),
            nw=int(sig["nw"]),
            ngf=int(sig["ngf"]),
            texture_channels=int(sig.get("texture_channels", 8)),
            texture_resolutions=tuple(int(r) for r in sig.get("texture_resolutions", (16, 64))),
            out_channels=int(sig.get("out_channels", 3)),
            channels_per_frame=int(sig.get("channels_per_frame", 9)),
        )


def _conv(cin: int, cout: int, stride: int, norm: bool, act: nn.Module) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(act)
    return nn.Sequential(*layers)


def _upsample() -> nn.Module:
    return nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False)


class FastGenerator(nn.Module):
    """See the module docstring. ``forward(x, background=None)``: ``x`` ``(B, 9*Nw, S, S)`` in [-1, 1] ->
    ``(B, 3, S, S)`` in [-1, 1]; ``background`` ``(B, 3, S, S)`` replaces the stored one (training with
    shifted crops passes the background shifted alike). Works at any batch size (no 1x1 BN)."""

    background: torch.Tensor

    def __init__(self, config: FastGeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = c = config if config is not None else FastGeneratorConfig()
        self.register_buffer("background", torch.zeros(1, 3, c.size, c.size))
        self.texture = (
            NeuralTexture(c.texture_channels, c.texture_resolutions) if c.texture_channels else None
        )
        extra = 3 + c.texture_channels
        lrelu = 0.2
        down = c.down_channels
        self.down = nn.ModuleList()
        cin = c.in_channels + extra
        for i, cout in enumerate(down):
            self.down.append(
                nn.Sequential(
                    _conv(cin, cout, 2, i > 0, nn.LeakyReLU(lrelu, inplace=True)),
                    _conv(cout, cout, 1, True, nn.LeakyReLU(lrelu, inplace=True)),
                )
            )
            cin = cout
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for i in range(c.levels - 1, 0, -1):
            self.up.append(
                nn.Sequential(_upsample(), _conv(down[i], down[i - 1], 1, True, nn.ReLU(inplace=True)))
            )
            self.merge.append(_conv(2 * down[i - 1], down[i - 1], 1, True, nn.ReLU(inplace=True)))
        head = max(8, c.ngf // 2)
        self.head_up = _upsample()
        self.head = nn.Sequential(
            nn.Conv2d(down[0] + c.channels_per_frame + extra, head, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(head, c.out_channels + 1, 3, padding=1),
        )

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialise reproducibly from ``generator``: convolutions ~ N(0, sqrt(2 / fan_in)) (He), biases 0,
        BN weights 1 and biases 0, the texture N(0, 0.1); the blend logit's bias starts at -2 (the output
        starts close to the background)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                with torch.no_grad():
                    fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                    m.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
                    if m.bias is not None:
                        m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                with torch.no_grad():
                    m.weight.fill_(1.0)
                    m.bias.zero_()
        last = self.head[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        with torch.no_grad():
            last.weight.mul_(0.1)
            last.bias[-1] = -2.0
        if self.texture is not None:
            self.texture.reset_parameters(generator)

    def set_background(self, image: torch.Tensor) -> None:
        """Store a background ``(3, S, S)`` (or ``(1, 3, S, S)``) in [-1, 1]."""
        bg = image.reshape(1, 3, self.config.size, self.config.size).to(self.background)
        self.background.copy_(bg)

    def forward(self, x: torch.Tensor, background: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        b = x.shape[0]
        cur = x[:, c.channels_per_frame * (c.nw - 1) :]
        bg = self.background.expand(b, -1, -1, -1) if background is None else background
        bg = bg.to(x.dtype)
        extra = [bg]
        if self.texture is not None:
            extra.append(self.texture(cur[:, 3:6]).to(x.dtype))
        h = torch.cat([x, *extra], dim=1)
        skips: list[torch.Tensor] = []
        for d in self.down:
            h = d(h)
            skips.append(h)
        skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            h = merge(torch.cat([up(h), skips.pop()], dim=1))
        out = self.head(torch.cat([self.head_up(h), cur, *extra], dim=1))
        rgb = torch.tanh(out[:, : c.out_channels])
        a = torch.sigmoid(out[:, c.out_channels :])
        return a * rgb + (1.0 - a) * bg
