"""Model statistics: parameter counts and FLOPs (torch.utils.flop_counter)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .generator import GeneratorConfig, SpaceTimeGenerator

__all__ = ["count_parameters", "generator_flops"]


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; BN running statistics are buffers and not counted."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def generator_flops(config: GeneratorConfig) -> int:
    """Forward FLOPs per frame (multiply and add counted separately: 2 per MAC) of the generator.

    Counts convolutions and transposed convolutions (BN, activations and concatenations are negligible and
    not counted), measured with ``torch.utils.flop_counter`` on a batch of 1 on the meta device (no compute).
    """
    with torch.device("meta"):
        g = SpaceTimeGenerator(config).eval()
        x = torch.empty(1, config.in_channels, config.size, config.size)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        g(x)
    return int(fc.get_total_flops())
