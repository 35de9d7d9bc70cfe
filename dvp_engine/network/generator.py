"""The space-time rendering-to-video generator T of the paper (section 6, Fig. 4).

A U-Net encoder-decoder with cascaded-refinement upsampling modules. Input: a conditioning space-time volume
``X`` of shape ``(B, 9*Nw, H, W)`` in the network space ``[-1, 1]`` (display-referred sRGB mapped to [-1, 1]);
output: one frame ``(B, 3, H, W)`` in ``[-1, 1]`` (tanh).

At 256x256 (Fig. 4):

* 8 downsampling modules ``Conv4x4 s2 -> BN -> LeakyReLU(0.2)`` with (64, 128, 256, 512, 512, 512, 512, 512)
  output channels; the first has no BN.
* 8 upsampling modules ``DeConv4x4 s2 -> BN -> Dropout -> ReLU -> Refine -> Refine`` with
  (512, 512, 512, 512, 256, 128, 64, 3) output channels, where ``Refine = Conv3x3 s1 -> BN -> ReLU``; dropout
  probabilities (0.5, 0.5, 0.5, 0, 0, 0, 0, 0); the last module has no BN and its final activation is the tanh.
* U-Net skips: upsampling module k > 1 takes the previous module's output concatenated with the matching
  encoder output (same resolution).

The depth adapts to the input size: ``levels = log2(size)`` modules each way (7 at 128, 9 at 512, 10 at 1024),
so the bottleneck is always 1x1. Channel widths follow the same rule as Fig. 4 (``min(ngf * 2**i, 8 * ngf)`` in
the encoder; the decoder mirrors it); ``ngf`` (64 in the paper) may be lowered for tests.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import torch
from torch import nn

__all__ = ["ARCH_VERSION", "GeneratorConfig", "SpaceTimeGenerator"]

ARCH_VERSION = 1
"""Bumped whenever the layer layout changes so old checkpoints are refused with a clear error."""


@dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of :class:`SpaceTimeGenerator`.

    Attributes:
        size: input and output width = height in pixels; a power of two >= 16 (256 in the paper).
        nw: temporal window length Nw (11 in the paper; 1 for the single-frame baseline).
        ngf: base channel width (64 in the paper).
        out_channels: output image channels (3, RGB).
        channels_per_frame: conditioning channels per frame (9: colour, correspondence, eye gaze).
    """

    size: int = 256
    nw: int = 11
    ngf: int = 64
    out_channels: int = 3
    channels_per_frame: int = 9

    def __post_init__(self) -> None:
        if self.size < 16 or self.size & (self.size - 1):
            raise ValueError(f"generator size must be a power of two >= 16, got {self.size}")
        if self.nw < 1:
            raise ValueError(f"window length nw must be >= 1, got {self.nw}")
        if self.ngf < 1:
            raise ValueError(f"ngf must be >= 1, got {self.ngf}")

    @property
    def arch(self) -> str:
        """The architecture name (``--arch paper``)."""
        return "paper"

    @property
    def in_channels(self) -> int:
        """Input channels, ``channels_per_frame * nw`` (99 for Nw = 11)."""
        return self.channels_per_frame * self.nw

    @property
    def levels(self) -> int:
        """Number of down (and up) modules, ``log2(size)``; 8 at 256."""
        return int(math.log2(self.size))

    @property
    def down_channels(self) -> tuple[int, ...]:
        """Encoder output channels, (64, 128, 256, 512, 512, 512, 512, 512) at 256 with ngf 64."""
        return tuple(min(self.ngf * 2**i, self.ngf * 8) for i in range(self.levels))

    @property
    def up_channels(self) -> tuple[int, ...]:
        """Decoder output channels, (512, 512, 512, 512, 256, 128, 64, 3) at 256 with ngf 64."""
        down = self.down_channels
        # Module k (0-based) outputs the resolution of encoder level L-2-k, with that level's width.
        return tuple(down[self.levels - 2 - k] for k in range(self.levels - 1)) + (self.out_channels,)

    @property
    def dropout(self) -> tuple[float, ...]:
        """Dropout probability per up module: 0.5 for the first three, then 0."""
        return tuple(0.5 if k < 3 else 0.0 for k in range(self.levels))

    def signature(self) -> dict[str, Any]:
        """JSON-able architecture signature stored in checkpoints and checked on load."""
        return {
            "kind": "dvp.SpaceTimeGenerator",
            "arch_version": ARCH_VERSION,
            **asdict(self),
            "in_channels": self.in_channels,
            "levels": self.levels,
            "down_channels": list(self.down_channels),
            "up_channels": list(self.up_channels),
            "dropout": list(self.dropout),
        }

    @classmethod
    def from_signature(cls, sig: dict[str, Any]) -> GeneratorConfig:
        """Inverse of :meth:`signature` (extra keys are ignored; derived keys are re-checked by the caller)."""
        return cls(
            size=int(sig["size"]),
            nw=int(sig["nw"]),
            ngf=int(sig["ngf"]),
            out_channels=int(sig.get("out_channels", 3)),
            channels_per_frame=int(sig.get("channels_per_frame", 9)),
        )


class _Down(nn.Sequential):
    """Conv 4x4 stride 2 (-> BN) -> LeakyReLU(0.2); halves the resolution."""

    def __init__(self, cin: int, cout: int, norm: bool) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        super().__init__(*layers)


class _Up(nn.Sequential):
    """DeConv 4x4 stride 2 (-> BN) -> Dropout -> ReLU, then two Refine = Conv 3x3 (-> BN) -> ReLU.

    ``last=True``: no BN anywhere and the final ReLU is replaced by tanh (Fig. 4: the last upsampling module has
    no BN; the final non-linearity is the tanh).
    """

    def __init__(self, cin: int, cout: int, dropout: float, last: bool) -> None:
        norm = not last
        layers: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm2d(cout))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.ReLU(inplace=True))
        for r in range(2):
            layers.append(nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=not norm))
            if norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.Tanh() if (last and r == 1) else nn.ReLU(inplace=True))
        super().__init__(*layers)


class SpaceTimeGenerator(nn.Module):
    """Rendering-to-video translation network T (paper Fig. 4), depth adapted to ``config.size``.

    ``forward(x)``: ``x`` ``(B, 9*Nw, S, S)`` float in [-1, 1] -> ``(B, 3, S, S)`` in [-1, 1]. The spatial size
    must be divisible by ``2**levels`` (it is meant to equal ``config.size``). Training needs batch >= 2 (the 1x1
    bottleneck has BN, which cannot normalise a single value); eval mode works at any batch.
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else GeneratorConfig()
        c = self.config
        down_ch = c.down_channels
        up_ch = c.up_channels
        self.down = nn.ModuleList()
        cin = c.in_channels
        for i, cout in enumerate(down_ch):
            self.down.append(_Down(cin, cout, norm=i != 0))
            cin = cout
        self.up = nn.ModuleList()
        for k, cout in enumerate(up_ch):
            # Input: previous output (+ the skip of the same resolution for k > 0).
            skip = down_ch[c.levels - 1 - k] if k > 0 else 0
            cin_k = (down_ch[-1] if k == 0 else up_ch[k - 1]) + skip
            self.up.append(_Up(cin_k, cout, c.dropout[k], last=k == c.levels - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        h = x
        for d in self.down:
            h = d(h)
            skips.append(h)
        skips.pop()  # the bottleneck itself is not a skip
        for k, u in enumerate(self.up):
            if k > 0:
                h = torch.cat([h, skips.pop()], dim=1)
            h = u(h)
        return h


M = TypeVar("M", bound=nn.Module)


def fold_batchnorm(generator: M) -> M:
    """An inference copy of ``generator`` with every BatchNorm folded into the convolution before it.

    In eval mode BN is the affine map ``gamma * (y - mean) / sqrt(var + eps) + beta`` with the running
    statistics, so it merges into that convolution's weights and bias (a ``Conv2d`` scales its output
    channels, dim 0 of the weight; a ``ConvTranspose2d`` its dim 1); dropout, a no-op in eval mode, is dropped.
    The copy computes the same function as ``generator.eval()`` (up to float rounding) with fewer kernels
    and one memory pass less per layer. The original is not changed; the copy is in eval mode and must not
    be trained.
    """
    import copy

    folded = copy.deepcopy(generator).eval()
    modules = [m for m in folded.modules() if isinstance(m, nn.Sequential)]
    with torch.no_grad():
        for seq in modules:
            for i in range(len(seq) - 1):
                conv, bn = seq[i], seq[i + 1]
                if not isinstance(bn, nn.BatchNorm2d) or not isinstance(conv, nn.Conv2d | nn.ConvTranspose2d):
                    continue
                assert bn.running_mean is not None and bn.running_var is not None
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                shape = (1, -1, 1, 1) if isinstance(conv, nn.ConvTranspose2d) else (-1, 1, 1, 1)
                conv.weight.mul_(scale.reshape(shape))
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
                seq[i + 1] = nn.Identity()
            for i in range(len(seq)):
                if isinstance(seq[i], nn.Dropout):
                    seq[i] = nn.Identity()
    return folded
