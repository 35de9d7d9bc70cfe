"""Writing output frames the way every dvp command does: colour-managed, with metadata, never half-written.

EXR frames are scene-linear (ACEScg by default, converted from the engine's display-referred sRGB through
OpenColorIO), half float, ZIP compression, and carry metadata (``dvp:*`` attributes). Integer formats (PNG,
JPEG, TIFF, DPX) get the sRGB-encoded values as they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dvp_engine import __version__
from dvp_engine.core.errors import DvpError
from dvp_engine.core.frames import FrameSet
from dvp_engine.core.sequence import ImageSequence

from .images import paste, write_image

FLOAT_SUFFIXES = {".exr"}
MATTE_CHANNEL = "matte.A"
"""Name of the head-matte channel in rendered frames (layer ``matte``, channel ``A``)."""
MATTE_MODES = ("layer", "alpha")
"""How the matte is stored: ``layer`` (opaque RGB + the channel ``matte.A``; Nuke) or ``alpha`` (RGBA,
colour premultiplied by the matte; Blender's sequencer and compositor, which read ``R,G,B,matte.A`` EXRs as
multilayer files without alpha or colour management)."""


def output_sequence(pattern: str | Path, frames: FrameSet, *, overwrite: bool) -> ImageSequence:
    """Parse an output pattern and refuse to replace existing frames unless ``overwrite``.

    A concrete name (``out/f.0021.exr``) is accepted for one frame only, and only when its number is that
    frame; several frames need a placeholder (``####``, ``%04d``), so that no two frames share one file and a
    version such as ``_v001`` is never taken as a frame number.

    Raises:
        DvpError: the pattern has no frame placeholder, its folder cannot be created, or frames exist already.
    """
    from dvp_engine.core.sequence import is_pattern

    text = str(pattern)
    try:
        seq = ImageSequence.parse(text)
    except ValueError as exc:
        raise DvpError(f"not an output pattern: {exc}", path=text) from None
    if not is_pattern(text) and (len(frames) != 1 or seq.first != frames.first):
        raise DvpError(
            f"the output has no frame placeholder for {len(frames)} frame(s) {frames}; write e.g. "
            f"'{seq.directory / (seq.prefix.rstrip('.') + '.####' + seq.suffix)}'",
            path=text,
        )
    try:
        seq.directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DvpError(f"cannot create output folder ({exc.strerror})", path=seq.directory) from exc
    if not overwrite:
        existing = [f for f in frames if seq.path(f).exists()]
        if existing:
            raise DvpError(
                f"the output folder already holds {len(existing)} of these frames (first {existing[0]}); "
                "pass --overwrite to replace them",
                path=seq.path(existing[0]),
            )
    return seq


def write_frame(
    path: str | Path,
    rgb: npt.ArrayLike,
    *,
    matte: npt.ArrayLike | None = None,
    metadata: Mapping[str, Any] | None = None,
    colourspace: str = "ACEScg",
    compression: str = "zip",
    dtype: str | None = None,
    placement: tuple[int, int, int, int] | None = None,
    matte_as: str = "layer",
    allow_nan: bool = False,
) -> Path:
    """Write one frame.

    Args:
        path: destination; ``.exr`` is written scene-linear, other formats sRGB-encoded.
        rgb: ``(H, W, 3)`` display-referred sRGB in [0, 1] (the engine's working space).
        matte: optional ``(H, W)`` head matte in [0, 1], written as an extra channel ``matte.A`` (a layer
            ``matte`` in Nuke). The RGB is a full, opaque frame, so it gets no alpha: an RGBA with the matte in
            A would be read as premultiplied, which this RGB is not.
        metadata: extra attributes; values that are dicts or lists of non-numbers are stored as JSON strings.
        colourspace: the EXR's colour space (an OCIO name; ``ACEScg`` by default).
        compression: EXR compression.
        dtype: pixel type (default half for EXR, 8 bit for PNG/JPEG).
        placement: ``(x, y, plate_width, plate_height)``: ``rgb`` is a crop whose top-left corner sits at
            ``(x, y)`` in a plate of that size. EXR stores it as a data window in the plate's display
            window (small files; Nuke and OIIO place it); other formats get the whole plate-sized frame,
            zero (and matte 0) outside the crop.
        matte_as: ``layer`` (default): ``R, G, B, matte.A`` with opaque RGB; ``alpha``: ``R, G, B, A`` with the
            colour premultiplied by the matte (the EXR convention), for hosts that only read RGBA.
        allow_nan: write NaN/inf pixels as they are; by default a frame holding any is refused (DvpError),
            so a broken model or input never leaves a plausible-looking file behind.

    Raises:
        DvpError: non-finite pixels (unless ``allow_nan``), a format that cannot hold the channels, or the
            file cannot be written; the path is named.
    """
    if matte_as not in MATTE_MODES:
        raise ValueError(f"matte_as must be one of {MATTE_MODES}, got {matte_as!r}")
    dest = Path(path)
    raw = np.asarray(rgb, dtype=np.float32)
    if not allow_nan:
        bad = int(np.count_nonzero(~np.isfinite(raw)))
        if matte is not None:
            bad += int(np.count_nonzero(~np.isfinite(np.asarray(matte, dtype=np.float32))))
        if bad:
            raise DvpError(
                f"{bad} pixel values are NaN or inf (a broken model or input); nothing written "
                "(--allow-nan keeps them)",
                path=dest,
            )
    pixels = np.clip(raw, 0.0, 1.0)
    meta: dict[str, Any] = {"Software": f"dvp {__version__}"}
    if dest.suffix.lower() in FLOAT_SUFFIXES:
        from .colour import convert, srgb_space

        pixels = convert(pixels, srgb_space(), colourspace)
        meta["oiio:ColorSpace"] = colourspace
    for k, v in (metadata or {}).items():
        if isinstance(v, dict) or (
            isinstance(v, list | tuple) and not all(isinstance(x, int | float) for x in v)
        ):
            meta[k] = json.dumps(v, sort_keys=True)
        else:
            meta[k] = v
    kwargs: dict[str, Any] = {"metadata": meta}
    if matte is not None:
        a = np.clip(np.asarray(matte, dtype=np.float32), 0.0, 1.0)[..., None]
        if matte_as == "alpha":
            pixels = np.concatenate([pixels * a, a], axis=-1)
            kwargs["channel_names"] = ["R", "G", "B", "A"]
        else:
            pixels = np.concatenate([pixels, a], axis=-1)
            kwargs["channel_names"] = ["R", "G", "B", MATTE_CHANNEL]
    if dtype is not None:
        kwargs["dtype"] = dtype
    if dest.suffix.lower() == ".exr":
        kwargs["compression"] = compression
        if placement is not None:
            kwargs["data_window"] = placement
    elif placement is not None:
        x, y, width, height = placement
        pixels = paste(pixels, x, y, width, height)
    try:
        return write_image(dest, pixels, **kwargs)
    except ValueError as exc:  # a format that cannot hold these channels or this layout
        raise DvpError(str(exc).removeprefix(f"{dest}: "), path=dest) from None
