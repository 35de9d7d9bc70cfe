"""Colour management through OpenColorIO.

Config: the file or URI in ``$OCIO`` if set, else the built-in ACES studio config
``ocio://studio-config-latest`` (:func:`get_config`). Colour spaces are named as in the config; aliases and
roles are accepted (``"ACEScg"``, ``"lin_ap1"``, ``"scene_linear"``, ``"sRGB - Texture"``).

dvp's working images (video frames, renders, network input/output) are *sRGB-encoded, display-referred*
values in [0, 1]: the sRGB piecewise transfer function over Rec.709 primaries, with no tone mapping. In the
studio config that space is ``"sRGB Encoded Rec.709 (sRGB)"`` (alias ``"sRGB - Texture"``, role
``texture_paint``); :func:`srgb_space` finds it by name, alias or role. Scene-linear output (EXR) is
``ACEScg`` (role ``scene_linear``), see :func:`scene_linear_space`. The conversion between them is the
inverse sRGB curve followed by the Rec.709 -> AP1 matrix, so it round-trips exactly (no view transform).

Processors are cached per (config, source, destination).
"""

from __future__ import annotations

import difflib
import functools
import os
from typing import Any

import numpy as np
import numpy.typing as npt
import PyOpenColorIO as ocio

from dvp_engine.core.errors import DvpError

__all__ = [
    "DEFAULT_CONFIG",
    "ColourError",
    "acescg_to_srgb_display",
    "colour_spaces",
    "convert",
    "get_config",
    "resolve_space",
    "scene_linear_space",
    "srgb_display_to_acescg",
    "srgb_space",
]

DEFAULT_CONFIG = "ocio://studio-config-latest"

_SRGB_CANDIDATES = (
    "sRGB Encoded Rec.709 (sRGB)",
    "sRGB - Texture",
    "srgb_tx",
    "Utility - sRGB - Texture",
    "Input - Generic - sRGB - Texture",
    "sRGB",
    "srgb",
)
_SRGB_ROLES = ("texture_paint", "color_picking", "matte_paint")
_LINEAR_CANDIDATES = ("ACEScg", "ACES - ACEScg", "lin_ap1", "lin_ap1_scene")
_LINEAR_ROLES = ("scene_linear", "rendering", "compositing_linear")


class ColourError(DvpError):
    """An OCIO config cannot be loaded or a colour space is unknown."""


def config_source() -> str:
    """The config in use: ``$OCIO`` if set and non-empty, else :data:`DEFAULT_CONFIG`."""
    return os.environ.get("OCIO") or DEFAULT_CONFIG


@functools.lru_cache(maxsize=8)
def _load_config(source: str) -> Any:
    try:
        return ocio.Config.CreateFromFile(source)
    except Exception as exc:  # OCIO raises its own Exception type
        raise ColourError(f"cannot load OCIO config ({exc})", path=source) from exc


def get_config(source: str | None = None) -> Any:
    """The OCIO config for ``source`` (default :func:`config_source`), loaded once and cached."""
    return _load_config(source or config_source())


def colour_spaces(config: Any = None) -> list[str]:
    """All colour space names of the config."""
    cfg = config if config is not None else get_config()
    return [cs.getName() for cs in cfg.getColorSpaces()]


def _all_names(cfg: Any) -> list[str]:
    names: list[str] = []
    for cs in cfg.getColorSpaces():
        names.append(cs.getName())
        names.extend(cs.getAliases())
    names.extend(role for role, _ in cfg.getRoles())
    return names


def resolve_space(name: str, config: Any = None) -> str:
    """The canonical colour space name for a name, alias or role.

    Raises:
        ColourError: unknown name; the message lists the closest matches in the config.
    """
    cfg = config if config is not None else get_config()
    cs = cfg.getColorSpace(name)
    if cs is not None:
        return str(cs.getName())
    names = _all_names(cfg)
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.4)
    lower = [n for n in names if name.lower() in n.lower() and n not in close]
    hint = ", ".join(repr(n) for n in [*close, *lower][:6])
    raise ColourError(
        f"unknown colour space {name!r} in OCIO config {cfg.getName()!r}"
        + (f"; did you mean {hint}?" if hint else "; run colour_spaces() for the list")
    )


def _find(cfg: Any, candidates: tuple[str, ...], roles: tuple[str, ...], what: str) -> str:
    for name in (*candidates, *roles):
        cs = cfg.getColorSpace(name)
        if cs is not None:
            return str(cs.getName())
    raise ColourError(
        f"OCIO config {cfg.getName()!r} has no {what} colour space (tried {', '.join(candidates + roles)})"
    )


def srgb_space(config: Any = None) -> str:
    """The sRGB-encoded Rec.709 space (``"sRGB Encoded Rec.709 (sRGB)"`` in the studio config).

    Found by name or alias first, then by the ``texture_paint`` / ``color_picking`` roles.
    """
    cfg = config if config is not None else get_config()
    return _find(cfg, _SRGB_CANDIDATES, _SRGB_ROLES, "sRGB-encoded")


def scene_linear_space(config: Any = None) -> str:
    """The scene-linear output space: ``ACEScg`` if present, else the ``scene_linear`` role."""
    cfg = config if config is not None else get_config()
    return _find(cfg, _LINEAR_CANDIDATES, _LINEAR_ROLES, "scene-linear (ACEScg)")


@functools.lru_cache(maxsize=64)
def _processor(source: str, src: str, dst: str) -> Any:
    cfg = _load_config(source)
    try:
        return cfg.getProcessor(src, dst).getDefaultCPUProcessor()
    except Exception as exc:
        raise ColourError(f"OCIO cannot build a transform from {src!r} to {dst!r} ({exc})") from exc


def convert(
    pixels: npt.ArrayLike, src: str, dst: str, *, config: str | None = None
) -> npt.NDArray[np.float32]:
    """Convert pixels between named colour spaces.

    Args:
        pixels: ``(..., 3)`` RGB or ``(..., 4)`` RGBA (alpha passes through unchanged) numbers.
        src, dst: colour space names, aliases or roles of the config.
        config: config file or URI; default ``$OCIO`` or :data:`DEFAULT_CONFIG`.

    Returns:
        A new float32 array of the same shape.

    Raises:
        ColourError: unknown colour space (with close matches) or unloadable config.
        ValueError: the last axis is not 3 or 4.
    """
    source = config or config_source()
    cfg = _load_config(source)
    s, d = resolve_space(src, cfg), resolve_space(dst, cfg)
    arr = np.array(pixels, dtype=np.float32, copy=True, order="C")
    if arr.ndim < 1 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"pixels must be (..., 3) or (..., 4), got shape {arr.shape}")
    if s == d or arr.size == 0:
        return arr
    proc = _processor(source, s, d)
    flat = arr.reshape(-1, arr.shape[-1])
    if arr.shape[-1] == 3:
        proc.applyRGB(flat)
    else:
        proc.applyRGBA(flat)
    return flat.reshape(arr.shape)


def srgb_display_to_acescg(pixels: npt.ArrayLike, *, config: str | None = None) -> npt.NDArray[np.float32]:
    """sRGB-encoded display-referred values ([0, 1]) -> scene-linear ACEScg (see :func:`srgb_space`)."""
    cfg = get_config(config)
    return convert(pixels, srgb_space(cfg), scene_linear_space(cfg), config=config)


def acescg_to_srgb_display(pixels: npt.ArrayLike, *, config: str | None = None) -> npt.NDArray[np.float32]:
    """Scene-linear ACEScg -> sRGB-encoded display-referred values (inverse of :func:`srgb_display_to_acescg`).

    No tone mapping: values above 1 stay above 1 (clip them yourself for 8-bit output).
    """
    cfg = get_config(config)
    return convert(pixels, scene_linear_space(cfg), srgb_space(cfg), config=config)
