"""The named generator architectures (``--arch``) and how a checkpoint's signature picks one.

* ``fast`` (the default): :class:`~.fast_generator.FastGenerator`, background and neural-texture inputs,
  resize-convolution upsampling, region-weighted L1 and discriminator feature matching, aligned shift
  augmentation, bf16 autocast on CPUs that have bf16 arithmetic.
* ``paper``: :class:`~.generator.SpaceTimeGenerator`, the paper's configuration (section 6, Fig. 4), kept as
  the reference every change is measured against.

The arch name is recorded in every checkpoint (``state.json`` ``config.arch``; the generator signature's
``kind``); resuming or loading one arch as the other is refused with an error naming both.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .fast_generator import FastGenerator, FastGeneratorConfig
from .generator import GeneratorConfig, SpaceTimeGenerator

__all__ = [
    "ARCHS",
    "ARCH_DEFAULTS",
    "DEFAULT_ARCH",
    "AnyGenerator",
    "AnyGeneratorConfig",
    "arch_of_signature",
    "build_generator",
    "config_from_signature",
    "generator_config",
]

ARCHS = ("fast", "paper")
DEFAULT_ARCH = "fast"
ARCH_DEFAULTS: dict[str, dict[str, int]] = {"fast": {"ngf": 32, "ndf": 32}, "paper": {"ngf": 64, "ndf": 64}}
"""Base widths of the generator (``ngf``) and discriminator (``ndf``) when not given."""

_KINDS = {"dvp.SpaceTimeGenerator": "paper", "dvp.FastGenerator": "fast"}

AnyGeneratorConfig = GeneratorConfig | FastGeneratorConfig
AnyGenerator = SpaceTimeGenerator | FastGenerator


def check_arch(arch: str) -> str:
    """``arch`` if it is a known architecture name, else ``ValueError`` listing them."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")
    return arch


def generator_config(arch: str, size: int, nw: int, ngf: int) -> AnyGeneratorConfig:
    """The generator configuration of a named architecture."""
    if check_arch(arch) == "paper":
        return GeneratorConfig(size=size, nw=nw, ngf=ngf)
    return FastGeneratorConfig(size=size, nw=nw, ngf=ngf)


def build_generator(config: AnyGeneratorConfig) -> AnyGenerator:
    """A freshly built (not initialised by the paper's rule) generator of ``config``'s architecture."""
    if isinstance(config, FastGeneratorConfig):
        return FastGenerator(config)
    return SpaceTimeGenerator(config)


def arch_of_signature(sig: dict[str, Any]) -> str:
    """The architecture name of a generator signature (``kind`` field); ``ValueError`` for other kinds."""
    kind = sig.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"checkpoint holds a {kind!r}, not a dvp generator")
    return _KINDS[str(kind)]


def config_from_signature(sig: dict[str, Any]) -> AnyGeneratorConfig:
    """The configuration a generator signature describes (``ValueError``/``KeyError`` when malformed)."""
    if arch_of_signature(sig) == "paper":
        return GeneratorConfig.from_signature(sig)
    return FastGeneratorConfig.from_signature(sig)


def is_generator(module: nn.Module) -> bool:
    return isinstance(module, SpaceTimeGenerator | FastGenerator)
