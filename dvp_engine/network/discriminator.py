"""PatchGAN discriminator D (paper section 6, after Isola et al. 2017) and the paper's weight initialisation."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["DiscriminatorConfig", "PatchDiscriminator", "init_weights"]


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Architecture of :class:`PatchDiscriminator`.

    Attributes:
        in_channels: conditioning channels plus image channels (``9*Nw + 3``; 102 for Nw = 11).
        ndf: base width (64, as pix2pix).
        n_layers: stride-2 layers after the first (3 gives pix2pix's 70x70 receptive field).
    """

    in_channels: int = 9 * 11 + 3
    ndf: int = 64
    n_layers: int = 3

    def signature(self) -> dict[str, Any]:
        """JSON-able architecture signature stored in checkpoints."""
        return {"kind": "dvp.PatchDiscriminator", **asdict(self)}


class PatchDiscriminator(nn.Module):
    """PatchGAN classifier on ``cat(volume, image)``.

    ``forward(volume, image)``: ``volume`` ``(B, 9*Nw, H, W)`` and ``image`` ``(B, 3, H, W)``, both in [-1, 1]
    -> logits ``(B, 1, H/8 - 2, W/8 - 2)`` (30x30 at 256), one per overlapping 70x70 patch; positive = real.
    Layers: Conv4x4 s2 -> LReLU; ``n_layers - 1`` x (Conv4x4 s2 -> BN -> LReLU); Conv4x4 s1 -> BN -> LReLU;
    Conv4x4 s1 -> 1 channel (no sigmoid: the loss is BCE-with-logits).
    """

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else DiscriminatorConfig()
        c = self.config
        layers: list[nn.Module] = [
            nn.Conv2d(c.in_channels, c.ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        mult = 1
        for n in range(1, c.n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < c.n_layers else 1
            layers += [
                nn.Conv2d(c.ndf * prev, c.ndf * mult, 4, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(c.ndf * mult),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(c.ndf * mult, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, volume: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(torch.cat([volume, image], dim=1))
        return out

    def features(self, volume: torch.Tensor, image: torch.Tensor) -> list[torch.Tensor]:
        """The activations after each LeakyReLU, then the logits last (the same logits as ``forward``): what
        :func:`~dvp_engine.network.losses.feature_matching_loss` compares."""
        h = torch.cat([volume, image], dim=1)
        feats: list[torch.Tensor] = []
        for layer in self.net:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(h)
        feats.append(h)
        return feats


def init_weights(module: nn.Module, std: float = 0.02, generator: torch.Generator | None = None) -> None:
    """Paper/pix2pix initialisation, in place: conv and deconv weights ~ N(0, std), biases 0;
    BN weights ~ N(1, std), BN biases 0.

    The paper's text prints N(0, 0.2); its reference implementation (pix2pix-tensorflow) and pix2pix use 0.02,
    which we follow. ``generator`` makes the initialisation reproducible without touching the global RNG.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            with torch.no_grad():
                m.weight.normal_(0.0, std, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.normal_(1.0, std, generator=generator)
                m.bias.zero_()
