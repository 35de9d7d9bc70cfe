"""Export the generator as TorchScript for Nuke's CopyCat Inference node (turned into a ``.cat`` in Nuke).

The exported module has exactly one input and one output tensor, with the normalisation inside ``forward``:

* input ``(1, 9*Nw, S, S)`` float32 in **[0, 1]** (Nuke images; display-referred sRGB conditioning channels
  in the volume's channel order, see :mod:`dvp_engine.network.data`);
* output ``(1, 3, S, S)`` float32 in **[0, 1]** (display-referred sRGB).

Internally: ``x * 2 - 1`` -> generator (eval mode: BN running statistics, no dropout) -> ``(y + 1) / 2``,
clamped to [0, 1]. The ``fast`` architecture's extra inputs (the plate's background estimate, the neural
texture) are baked into the module as a buffer and parameters: the exported file has the same one input.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from dvp_engine.core.atomic import atomic_path

from .arch import AnyGenerator, build_generator
from .generator import fold_batchnorm

__all__ = ["CopyCatWrapper", "export_torchscript"]


class CopyCatWrapper(nn.Module):
    """One tensor in ([0, 1]) -> one tensor out ([0, 1]) around a generator of either architecture."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.generator(x * 2.0 - 1.0)
        return ((y + 1.0) * 0.5).clamp(0.0, 1.0)


def export_torchscript(generator: AnyGenerator, path: str | Path) -> Path:
    """Trace the generator (on the CPU, float32, eval mode) into a TorchScript file, written atomically.

    BatchNorm is folded into the convolutions first (:func:`~dvp_engine.network.generator.fold_batchnorm`), so
    the traced graph only uses conv, transposed conv, (leaky) ReLU, tanh, cat and arithmetic and runs at any
    ``S`` divisible by ``2**levels`` (the ``fast`` architecture: at its own ``S``; its background estimate and
    neural texture are part of the module, so the file still takes the volume alone). The file is saved by the installed torch; Nuke 13 reads
    torch 1.6 TorchScript and Nuke 14-15 torch 1.12 (see docs/network.md).

    Returns:
        The written path.
    """
    cfg = generator.config
    g = build_generator(cfg)
    g.load_state_dict({k: v.detach().float().cpu() for k, v in generator.state_dict().items()})
    wrapper = CopyCatWrapper(fold_batchnorm(g)).eval()
    example = torch.full((1, cfg.in_channels, cfg.size, cfg.size), 0.5)
    # TorchScript is deprecated in recent torch in favour of torch.export, but it is what Nuke's CatFileCreator
    # reads; silence the deprecation notice.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(wrapper, example, check_trace=False)  # type: ignore[no-untyped-call,unused-ignore]
    p = Path(path)
    with atomic_path(p) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, str(tmp))
    return p
