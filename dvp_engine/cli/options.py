"""Argument helpers shared by subcommands: frame ranges, devices."""

from __future__ import annotations

import argparse
from pathlib import Path

from dvp_engine.core import FaceTrack
from dvp_engine.core.frames import FrameSet

from .common import UsageError


def add_frames(
    p: argparse.ArgumentParser, help_text: str = "frames to process, e.g. 1001-1100x2 or 1,5,9-12"
) -> None:
    """Add ``--frames``."""
    p.add_argument("--frames", metavar="RANGE", help=help_text)


def parse_frames(text: str | None) -> FrameSet | None:
    """``--frames`` text to a FrameSet (None when not given); bad text is a usage error (exit 2)."""
    if text is None:
        return None
    try:
        return FrameSet.parse(text)
    except ValueError as exc:
        raise UsageError(f"--frames: {exc}") from None


def add_device(p: argparse.ArgumentParser) -> None:
    """Add ``--device cpu|cuda|auto``."""
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when present; default)")


def add_framing(p: argparse.ArgumentParser) -> None:
    """``--framing``: the square crop of the plate the network is trained on."""
    p.add_argument(
        "--framing",
        default="auto",
        metavar="auto|centred|head|X,Y,SIDE",
        help="square crop of the plate the model sees: auto (default: the whole plate if square, else head), "
        "centred (largest centred square), head (smallest square holding head and shoulders in every frame), "
        "or X,Y,SIDE in plate pixels",
    )


def add_matte(p: argparse.ArgumentParser) -> None:
    """``--matte layer|alpha``: how rendered EXRs carry the head matte (dvp_engine.io.output.MATTE_MODES)."""
    p.add_argument(
        "--matte",
        choices=("layer", "alpha"),
        default="layer",
        help="layer (default): opaque RGB plus the channel matte.A (Nuke: matte.alpha); alpha: RGBA with the "
        "colour premultiplied by the matte (Blender's sequencer and compositor read only RGBA)",
    )


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``."""
    if name != "auto":
        if name.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise UsageError(f"--device {name}: no CUDA device is available on this machine")
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def apply_curve_files(track: FaceTrack, paths: list[Path]) -> FaceTrack:
    """Apply curve files in order; an unknown channel is a usage error naming the file and the valid channels."""
    from dvp_engine.core import CurveSet, apply_curves

    for c in paths:
        try:
            track = apply_curves(track, CurveSet.load(c))
        except KeyError as exc:
            raise UsageError(str(exc.args[0]), path=c) from None
    return track
