"""Single images and image sequences through OpenImageIO: EXR, PNG, JPEG, TIFF, DPX (and whatever else OIIO reads).

Arrays are ``(H, W, C)`` float32. Integer files read as [0, 1] (OIIO's normalised conversion); float files
(EXR) read as stored. Writes are atomic: the image goes to a temporary file in the destination folder
(same extension, so the format is the same) and is renamed over the destination only when complete.

EXR metadata round-trips through :func:`write_image` / :func:`read_image` for these Python types:

==============================  ====================================  ==============================
written value                   stored as (OIIO TypeDesc)             read back as
==============================  ====================================  ==============================
``str``                         string                                ``str``
``int`` / ``bool`` / np integer int                                   ``int``
``float`` / np floating         float                                 ``float``
1-D float sequence/array (n)    ``float[n]`` (n=3 becomes v3f in EXR)  ``(n,)`` float32 ndarray
1-D int sequence, n = 2 or 3    ``int[n]`` (v2i / v3i in EXR)         ``(n,)`` int32 ndarray
1-D int sequence, other n       ``float[n]`` (EXR has no int vector)  ``(n,)`` float32 ndarray
(3, 3) / (4, 4) float array     matrix33 / matrix44 (row-major)       ``(3,3)``/``(4,4)`` float32
``dict`` / list of ``str``      JSON text in a string                 ``str`` (``json.loads`` it)
==============================  ====================================  ==============================

Values are converted to Python ``float``/``int`` before they reach OIIO (OIIO silently drops numpy float32
attribute lists in some paths). PNG/JPEG/TIFF/DPX keep only the metadata their formats allow.

Data and display windows: an EXR may store only part of its frame (the data window, e.g. a bounding box from
Nuke) or more than it (overscan). :func:`read_image` returns the display window by default, so pixel
coordinates are always plate coordinates; :func:`write_image` can write a crop as a data window placed in a
larger display window (``data_window=``), which is how rendered face crops land in the plate in Nuke.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import OpenImageIO as oiio

from dvp_engine.core.atomic import atomic_path
from dvp_engine.core.errors import DvpError, InputError
from dvp_engine.core.frames import FrameSet
from dvp_engine.core.sequence import ImageSequence

__all__ = [
    "EXR_COMPRESSIONS",
    "image_info",
    "read_image",
    "read_sequence",
    "write_image",
    "write_sequence",
]

log = logging.getLogger(__name__)

PixelType = Literal["half", "float", "uint8", "uint16"]
MetadataFn = Callable[[int], Mapping[str, Any]]

#: OpenEXR compressions OIIO accepts (``dwaa``/``dwab`` also take a level: ``"dwaa:45"``).
EXR_COMPRESSIONS = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab", "htj2k")

_DEFAULT_DTYPE: dict[str, PixelType] = {
    "openexr": "half",
    "png": "uint8",
    "jpeg": "uint8",
    "tiff": "uint16",
    "dpx": "uint16",
}
_ALLOWED_DTYPES: dict[str, tuple[PixelType, ...]] = {
    "openexr": ("half", "float"),
    "png": ("uint8", "uint16"),
    "jpeg": ("uint8",),
    "tiff": ("uint8", "uint16", "half", "float"),
    "dpx": ("uint8", "uint16"),
}
_OIIO_FORMATS = {"half": "half", "float": "float", "uint8": "uint8", "uint16": "uint16"}


# --------------------------------------------------------------------------- metadata
def _to_attribute(name: str, value: Any) -> tuple[oiio.TypeDesc, Any]:
    """The OIIO (TypeDesc, value) for one metadata item (Python scalars only)."""
    if isinstance(value, str):
        return oiio.TypeString, value
    if isinstance(value, (bool, np.bool_)):
        return oiio.TypeInt, int(value)
    if isinstance(value, (int, np.integer)):
        return oiio.TypeInt, int(value)
    if isinstance(value, (float, np.floating)):
        return oiio.TypeFloat, float(value)
    if isinstance(value, Mapping):
        return oiio.TypeString, json.dumps(value, sort_keys=True)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return oiio.TypeString, json.dumps(list(value))
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata {name!r}: unsupported value {value!r}") from exc
    if arr.dtype.kind in "iu" and arr.ndim == 1 and arr.size in (2, 3):
        return oiio.TypeDesc(f"int[{arr.size}]"), tuple(int(v) for v in arr)
    if arr.dtype.kind in "fiu" and arr.size:
        flat = tuple(float(v) for v in arr.reshape(-1))
        if arr.shape == (3, 3):
            return oiio.TypeMatrix33, flat
        if arr.shape == (4, 4):
            return oiio.TypeMatrix44, flat
        if arr.ndim == 1:
            return oiio.TypeDesc(f"float[{arr.size}]"), flat
    raise TypeError(
        f"metadata {name!r}: unsupported value of type {type(value).__name__} with shape {arr.shape} "
        "(use str, int, float, 1-D numbers, a 3x3/4x4 matrix or a dict)"
    )


def _from_attribute(param: Any) -> Any:
    """Python value of an OIIO ParamValue (see the module table)."""
    t = param.type
    value = param.value
    if t.basetype == oiio.STRING and t.arraylen == 0:
        return str(value)
    if isinstance(value, tuple):
        if t.basetype in (oiio.FLOAT, oiio.HALF, oiio.DOUBLE):
            arr = np.asarray(value, dtype=np.float32)
            if t.aggregate == oiio.MATRIX33:
                return arr.reshape(3, 3)
            if t.aggregate == oiio.MATRIX44:
                return arr.reshape(4, 4)
            return arr
        if t.basetype in (oiio.INT, oiio.UINT, oiio.INT16, oiio.UINT16, oiio.INT8, oiio.UINT8):
            return np.asarray(value, dtype=np.int32)
        return value
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return int(value)
    return value


def _geterror(source: Any) -> str:
    """OIIO's pending error text (of ``oiio`` or of an ImageInput/ImageOutput); a message that is not UTF-8
    (from a damaged file) is returned as a placeholder instead of raising."""
    try:
        return str(source.geterror())
    except UnicodeDecodeError:
        return "(undecodable error message from OpenImageIO)"


def _spec_metadata(spec: Any) -> dict[str, Any]:
    """The attributes of an OIIO spec; an attribute whose name or text is not UTF-8 (a damaged header) is left
    out rather than failing the read."""
    out: dict[str, Any] = {}
    for i in range(len(spec.extra_attribs)):
        try:
            p = spec.extra_attribs[i]
            out[p.name] = _from_attribute(p)
        except UnicodeDecodeError:
            continue
    return out


def _channel_names(spec: Any, path: Path) -> tuple[str, ...]:
    try:
        return tuple(spec.channelnames)
    except UnicodeDecodeError:
        raise InputError("damaged image header (channel names are not UTF-8)", path=path) from None


# --------------------------------------------------------------------------- reading
def _open_input(path: Path) -> Any:
    if not path.exists():
        raise InputError("no such file", path=path)
    if path.is_dir():
        raise InputError("is a folder, not an image", path=path)
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        err = _geterror(oiio) or "unknown error"
        raise InputError(f"not a readable image ({err})", path=path)
    return inp


def read_image(
    path: str | os.PathLike[str], *, window: Literal["display", "data"] = "display"
) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
    """Read the first subimage of an image file.

    Args:
        path: the image file.
        window: ``"display"`` (default) returns the file's display window (the frame a compositor sees:
            pixels outside the stored data window are 0, overscan beyond the display window is cut off), so
            pixel coordinates are plate coordinates; ``"data"`` returns the stored data window as it is.

    Returns:
        ``(pixels, metadata)``: pixels ``(H, W, C)`` float32 in the file's own colour space (integer files
        normalised to [0, 1], float files as stored); metadata maps attribute names to values as in the
        module table, plus ``"oiio:channelnames"`` (tuple of str), ``"oiio:format"`` (the file's pixel
        type, e.g. ``"half"``) and, when the data window differs from the display window,
        ``"dvp:data_window"`` = ``(x, y, width, height)`` relative to the display window's origin.

    Raises:
        InputError: the file is missing, is not an image, or cannot be decoded (the path is named).
    """
    if window not in ("display", "data"):
        raise ValueError(f"window must be 'display' or 'data', got {window!r}")
    p = Path(path)
    inp = _open_input(p)
    try:
        spec = inp.spec()
        pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
        if pixels is None:
            raise InputError(f"cannot decode image ({_geterror(inp) or _geterror(oiio)})", path=p)
        meta = _spec_metadata(spec)
        meta["oiio:channelnames"] = _channel_names(spec, p)
        meta["oiio:format"] = str(spec.format)
    finally:
        inp.close()
    arr = np.asarray(pixels, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    data = np.ascontiguousarray(arr.reshape(spec.height, spec.width, spec.nchannels))
    (x, y, w, h), (fx, fy, fw, fh) = _windows(spec)
    if (x, y, w, h) == (fx, fy, fw, fh):
        return data, meta
    meta["dvp:data_window"] = (x - fx, y - fy, w, h)
    if window == "data":
        return data, meta
    return paste(data, x - fx, y - fy, fw, fh), meta


def _windows(spec: Any) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """``(data window, display window)`` of an OIIO spec, each ``(x, y, width, height)`` in pixels (a format
    without a display window has it equal to the data window)."""
    data = (spec.x, spec.y, spec.width, spec.height)
    if spec.full_width <= 0 or spec.full_height <= 0:
        return data, data
    return data, (spec.full_x, spec.full_y, spec.full_width, spec.full_height)


def paste(data: npt.NDArray[Any], x: int, y: int, width: int, height: int) -> npt.NDArray[np.float32]:
    """Place an ``(h, w, C)`` data window at ``(x, y)`` in a zero ``(height, width, C)`` frame.

    The part of the data window outside the frame is cut off (overscan); ``(x, y)`` may be negative.
    """
    out = np.zeros((height, width, data.shape[2]), np.float32)
    h, w = data.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = data[y0 - y : y1 - y, x0 - x : x1 - x]
    return out


def image_info(path: str | os.PathLike[str]) -> str:
    """A few summary lines about an image file (size, channels, pixel type, metadata), header only."""
    p = Path(path)
    inp = _open_input(p)
    try:
        spec = inp.spec()
        fmt = inp.format_name()
        meta = _spec_metadata(spec)
    finally:
        inp.close()
    lines = [
        f"image {p} ({fmt})",
        f"  size: {spec.width}x{spec.height}, channels: {','.join(_channel_names(spec, p))}, pixels: {spec.format}",
    ]
    (x, y, w, h), (fx, fy, fw, fh) = _windows(spec)
    if (x, y, w, h) != (fx, fy, fw, fh):
        lines.append(f"  data window: {w}x{h} at ({x}, {y}) in a display window of {fw}x{fh} at ({fx}, {fy})")
    for key in sorted(meta):
        text = (
            repr(meta[key]) if not isinstance(meta[key], np.ndarray) else np.array2string(meta[key].ravel())
        )
        lines.append(f"  {key}: {text if len(text) < 120 else text[:117] + '...'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- writing
def _format_name(path: Path) -> str:
    out = oiio.ImageOutput.create(str(path))
    if out is None:
        raise DvpError(f"no image writer for extension {path.suffix!r} ({_geterror(oiio)})", path=path)
    return str(out.format_name())


def write_image(
    path: str | os.PathLike[str],
    pixels: npt.ArrayLike,
    metadata: Mapping[str, Any] | None = None,
    *,
    dtype: PixelType | None = None,
    compression: str | None = None,
    channel_names: Iterable[str] | None = None,
    data_window: tuple[int, int, int, int] | None = None,
) -> Path:
    """Write one image atomically (temporary file beside ``path``, then rename).

    Args:
        path: destination; the extension picks the format (``.exr .png .jpg .tif .dpx`` ...).
        pixels: ``(H, W, C)`` or ``(H, W)`` numbers; floats are written as they are to float files and
            clamped/rounded from [0, 1] for integer files (uint8/uint16 arrays are taken as already scaled).
        metadata: attributes (see the module table); EXR keeps them all.
        dtype: ``"half"``, ``"float"``, ``"uint8"`` or ``"uint16"``; default per format: EXR half,
            PNG/JPEG uint8, TIFF/DPX uint16.
        compression: e.g. ``"zip"`` (EXR default), ``"piz"``, ``"dwaa:45"`` for EXR; ``"lzw"``/``"zip"``
            for TIFF; a JPEG quality as ``"jpeg:95"``.
        channel_names: default ``R,G,B`` (+``A``), ``Y`` for one channel.
        data_window: EXR only: ``(x, y, display_width, display_height)``: the pixels are a data window
            whose top-left corner sits at ``(x, y)`` in a display window of that size (origin 0, 0), so a
            compositing application places a crop where it belongs in the plate.

    Returns:
        The destination path.

    Raises:
        DvpError: the folder does not exist or is not writable, or OIIO fails (the path is named).
        ValueError: bad array shape, dtype not supported by the format, unknown compression.
    """
    dest = Path(path)
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1 or not 1 <= arr.shape[2] <= 64:
        raise ValueError(f"{dest}: image must be (H, W, C), got shape {np.shape(pixels)}")
    fmt = _format_name(dest)
    pixel_type: PixelType = dtype or _DEFAULT_DTYPE.get(fmt, "float")
    allowed = _ALLOWED_DTYPES.get(fmt)
    if pixel_type not in _OIIO_FORMATS or (allowed is not None and pixel_type not in allowed):
        raise ValueError(f"{dest}: pixel type {pixel_type!r} not supported for {fmt} (use one of {allowed})")
    if fmt == "jpeg" and arr.shape[2] not in (1, 3):
        raise ValueError(f"{dest}: JPEG needs 1 or 3 channels, got {arr.shape[2]}")
    if arr.dtype == np.uint8 or arr.dtype == np.uint16:
        data = np.ascontiguousarray(arr)
    else:
        data = np.ascontiguousarray(arr, dtype=np.float32)
    h, w, c = data.shape
    spec = oiio.ImageSpec(w, h, c, _OIIO_FORMATS[pixel_type])
    if data_window is not None:
        if fmt != "openexr":
            raise ValueError(f"{dest}: a data window needs an EXR file, not {fmt}")
        x, y, full_w, full_h = (int(v) for v in data_window)
        if full_w < 1 or full_h < 1:
            raise ValueError(f"{dest}: display window must be at least 1x1, got {full_w}x{full_h}")
        spec.x, spec.y = x, y
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, full_w, full_h
    names = list(channel_names) if channel_names is not None else _default_channel_names(c)
    if len(names) != c:
        raise ValueError(f"{dest}: {len(names)} channel names for {c} channels")
    spec.channelnames = tuple(names)
    if c == 4 and names[3] == "A":
        spec.alpha_channel = 3
    if fmt == "openexr":
        comp = compression or "zip"
        if comp.split(":")[0] not in EXR_COMPRESSIONS:
            raise ValueError(
                f"{dest}: unknown EXR compression {comp!r} (one of {', '.join(EXR_COMPRESSIONS)})"
            )
        spec.attribute("compression", comp)
    elif compression:
        spec.attribute("compression", compression)
    for key, value in (metadata or {}).items():
        typedesc, v = _to_attribute(key, value)
        spec.attribute(key, typedesc, v)
    with atomic_path(dest) as tmp:
        out = oiio.ImageOutput.create(str(dest))
        if out is None:
            raise DvpError(f"no image writer ({_geterror(oiio)})", path=dest)
        try:
            if not out.open(str(tmp), spec):
                raise DvpError(f"cannot write image ({_geterror(out) or _geterror(oiio)})", path=dest)
            if not out.write_image(data):
                raise DvpError(f"cannot write image ({_geterror(out) or _geterror(oiio)})", path=dest)
        finally:
            out.close()
    return dest


def _default_channel_names(c: int) -> list[str]:
    return {1: ["Y"], 2: ["Y", "A"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}.get(
        c, [f"C{i}" for i in range(c)]
    )


# --------------------------------------------------------------------------- sequences
def _as_sequence(seq: ImageSequence | str | os.PathLike[str]) -> ImageSequence:
    return seq if isinstance(seq, ImageSequence) else ImageSequence.parse(seq)


def read_sequence(
    seq: ImageSequence | str | os.PathLike[str],
    frames: FrameSet | str | None = None,
    *,
    on_missing: Literal["error", "skip"] = "error",
    on_error: Callable[[DvpError], None] | None = None,
) -> Iterator[tuple[int, npt.NDArray[np.float32], dict[str, Any]]]:
    """Read the frames of an image sequence lazily: yields ``(frame, pixels (H, W, C) float32, metadata)``.

    Args:
        seq: an :class:`ImageSequence` or a pattern (``plate/wda.####.exr``, ``plate/wda.%04d.exr``).
        frames: the frames to read; default: all frames found on disk (:meth:`ImageSequence.scan`),
            restricted to the sequence's first..last when it has them.
        on_missing: ``"error"`` checks every frame exists *before* reading any and raises an error that
            lists the missing frame numbers; ``"skip"`` reads the frames that exist (logging the rest).
        on_error: if given, a frame that exists but cannot be read is passed to it as an
            :class:`InputError` (with ``.frame`` and ``.path`` set) and skipped, and reading goes on;
            without it the error is raised (which ends the iteration).

    Raises:
        InputError: missing frames (``on_missing="error"``), a pattern that matches no files, or an
            unreadable frame (the message names the file and frame).
    """
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
    s = _as_sequence(seq)
    wanted = (
        s.scan().frames if frames is None else (FrameSet.parse(frames) if isinstance(frames, str) else frames)
    )
    assert wanted is not None
    if on_missing == "error":
        s.require(wanted)
        todo = wanted
    else:
        gone = s.missing(wanted)
        if gone:
            log.warning("%s: skipping %d missing frames: %s", s.hash_pattern, len(gone), gone)
        todo = wanted - gone
        if not todo:
            raise InputError(f"none of frames {wanted} exist", path=s.hash_pattern)
    return _read_frames(s, todo, on_error)


def _read_frames(
    s: ImageSequence, todo: FrameSet, on_error: Callable[[DvpError], None] | None
) -> Iterator[tuple[int, npt.NDArray[np.float32], dict[str, Any]]]:
    for f in todo:
        try:
            pixels, meta = read_image(s.path(f))
        except DvpError as exc:
            err = InputError(_bare(exc), path=s.path(f), frame=f)
            if on_error is None:
                raise err from exc
            on_error(err)
            continue
        yield f, pixels, meta


def write_sequence(
    seq: ImageSequence | str | os.PathLike[str],
    frames: Iterable[tuple[int, npt.ArrayLike]],
    metadata: Mapping[str, Any] | MetadataFn | None = None,
    *,
    dtype: PixelType | None = None,
    compression: str | None = None,
    make_dirs: bool = True,
) -> ImageSequence:
    """Write ``(frame, pixels)`` pairs to an image sequence, each file atomically.

    Args:
        seq: the destination sequence or pattern (``out/render.####.exr``).
        frames: ``(frame_number, (H, W, C) array)`` pairs.
        metadata: attributes for every frame, or a function ``frame -> attributes``.
            ``"dvp:frame"`` (int) is added to every file.
        dtype, compression: as in :func:`write_image`.
        make_dirs: create the destination folder if missing.

    Returns:
        The sequence with the frames written (``frames`` set).
    """
    s = _as_sequence(seq)
    if make_dirs and str(s.directory):
        try:
            s.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DvpError(f"cannot create output folder ({exc.strerror})", path=s.directory) from exc
    written: list[int] = []
    for frame, pixels in frames:
        f = int(frame)
        meta = dict(metadata(f) if callable(metadata) else (metadata or {}))
        meta.setdefault("dvp:frame", f)
        try:
            write_image(s.path(f), pixels, meta, dtype=dtype, compression=compression)
        except DvpError as exc:
            raise DvpError(_bare(exc), path=s.path(f), frame=f) from exc
        written.append(f)
    if not written:
        raise ValueError(f"{s.hash_pattern}: no frames to write")
    return s.with_frames(written)


def _bare(exc: DvpError) -> str:
    """The message of ``exc`` without its ``path: frame N:`` prefix."""
    msg = str(exc)
    prefix = f"{exc.path}: " if exc.path else ""
    if prefix and msg.startswith(prefix):
        msg = msg[len(prefix) :]
    if exc.frame is not None and msg.startswith(f"frame {exc.frame}: "):
        msg = msg[len(f"frame {exc.frame}: ") :]
    return msg
