"""Argument helpers shared by subcommands: frame ranges, devices, and value checks at parse time.

The ``*_type`` helpers are argparse ``type=`` functions: a bad value (``--batch 0``, ``--feather nan``,
``--device bogus``) is refused while the command line is parsed, with a usage message naming the option and
exit code 2, before anything is read or written.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from pathlib import Path

from dvp_engine.core import FaceTrack
from dvp_engine.core.frames import FrameSet

from .common import UsageError


def int_type(lo: int | None = 1, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer (ASCII digits) in ``[lo, hi]`` (either end open when ``None``)."""

    def parse(text: str) -> int:
        t = text.strip()
        if not re.fullmatch(r"[-+]?[0-9]{1,18}", t):
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
        v = int(t)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be {_span(lo, hi)}, got {v}")
        return v

    parse.__name__ = "integer"
    return parse


def float_type(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); NaN and inf refused."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be {_span(lo, hi, lo_open)}, got {v:g}")
        return v

    parse.__name__ = "number"
    return parse


def _span(lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"{'>' if lo_open else '>='} {lo:g} and <= {hi:g}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    return f"<= {hi:g}" if hi is not None else "a number"


_DEVICE = re.compile(r"auto|cpu|cuda|cuda:[0-9]{1,2}|mps", re.ASCII)


def device_type(text: str) -> str:
    """An argparse type: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r} (expected auto, cpu, cuda, cuda:N or mps)")
    return text


#: Options whose value may start with '-' (a negative frame range such as ``-5--1``); :func:`join_dash_values`
#: lets ``--frames -5--1`` mean ``--frames=-5--1``.
DASH_VALUE_OPTIONS: tuple[str, ...] = ("--frames", "--track-frames")
_RANGE_LIKE = re.compile(r"-[0-9][-0-9,xX+ ]*", re.ASCII)


def join_dash_values(argv: list[str]) -> list[str]:
    """``[..., "--frames", "-5--1"]`` -> ``[..., "--frames=-5--1"]`` (argparse would read ``-5--1`` as an option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in DASH_VALUE_OPTIONS and i + 1 < len(argv) and _RANGE_LIKE.fullmatch(argv[i + 1]):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def add_overwrite(p: argparse.ArgumentParser, what: str = "output files") -> None:
    """Add ``--overwrite`` (replace ``what`` that exist already)."""
    p.add_argument("--overwrite", action="store_true", help=f"replace {what} that exist already")


def refuse_existing(paths: list[Path], overwrite: bool) -> None:
    """A usage error naming the first of ``paths`` that exists, unless ``overwrite``."""
    if overwrite:
        return
    existing = [p for p in paths if p.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UsageError(f"output exists{more}; pass --overwrite to replace it", path=existing[0])


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
    p.add_argument(
        "--device",
        type=device_type,
        default="auto",
        help="cpu, cuda, cuda:N or auto (CUDA when present; default)",
    )


def add_batch(p: argparse.ArgumentParser, default: int, help_text: str | None = None) -> None:
    """Add ``--batch`` (an integer 1..4096)."""
    p.add_argument("--batch", type=int_type(1, 4096), default=default, help=help_text)


def add_time_limit(p: argparse.ArgumentParser) -> None:
    """``--time-limit MINUTES``: stop training early after that much training time (``args.time_limit``,
    minutes, or None)."""
    p.add_argument(
        "--time-limit",
        type=float_type(0.0, 10080.0, lo_open=True),
        metavar="MINUTES",
        help="stop training after this many minutes of training (checkpointed; --resume continues it to --iters)",
    )


def minutes_to_seconds(minutes: float | None) -> float | None:
    """``--time-limit`` minutes as seconds (None stays None)."""
    return None if minutes is None else 60.0 * minutes


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
        except (KeyError, ValueError) as exc:
            raise UsageError(str(exc.args[0]), path=c) from None
    return track
