"""Conditioning image sequences: a track's conditioning images written to files (``dvp render-conditioning``).

Output per frame (pattern ``cond.####.exr`` or ``cond.%04d.tif``):

* **EXR / TIFF**: one 9-channel image ``colour.R colour.G colour.B corr.R corr.G corr.B gaze.R gaze.G gaze.B``
  (half float for EXR), the display-referred [0, 1] values exactly as the network sees them (before its
  mapping to [-1, 1]). They are data, not pictures: no OCIO conversion to scene-linear is applied. EXR metadata:
  ``dvp:synthetic = 1``, ``dvp:frame``, ``dvp:conditioning`` (the channel layout), ``dvp:visible``
  (0 where the head covered no pixel), ``dvp:track``.
* **preview** (any format, typically PNG): the three images side by side, ``(H, 3 W)`` RGB.

Formats with at most 4 channels (PNG, JPEG, DPX) need ``preview=True``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dvp_engine.core.errors import InputError
from dvp_engine.core.frames import FrameSet
from dvp_engine.core.track import FaceTrack
from dvp_engine.facemodel import FaceModel, load_default_model

from .camera import Camera, size_tuple
from .conditioning import ConditioningRenderer, eyeball_follows_face, track_render_inputs

__all__ = ["CHANNEL_NAMES", "RenderSummary", "render_conditioning_sequence"]

#: channel names of the 9-channel conditioning files, in network order.
CHANNEL_NAMES = tuple(f"{part}.{c}" for part in ("colour", "corr", "gaze") for c in "RGB")
_MULTI_CHANNEL = {".exr", ".tif", ".tiff"}


@dataclass
class RenderSummary:
    """What :func:`render_conditioning_sequence` did.

    Attributes:
        written: the files written, in frame order.
        empty_frames: frame numbers whose head covered no pixel (behind the camera or outside the frame);
            their images are black.
        size: ``(width, height)`` of the images.
    """

    written: list[Path] = field(default_factory=list)
    empty_frames: list[int] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)


def render_conditioning_sequence(
    track_path: str | os.PathLike[str],
    out_pattern: str | os.PathLike[str],
    frames: FrameSet | str | Iterable[int] | None = None,
    size: int | Sequence[int] | None = 256,
    preview: bool = False,
    device: str | torch.device = "cpu",
    *,
    batch: int = 16,
    overwrite: bool = True,
    model: FaceModel | None = None,
    progress: Callable[[int], None] | None = None,
) -> RenderSummary:
    """Render the conditioning images of a track's frames to an image sequence.

    Args:
        track_path: a ``FaceTrack`` ``.npz``.
        out_pattern: output pattern (``cond.####.exr``, ``cond.%04d.tif``, ``preview.####.png``).
        frames: frame numbers to render (``FrameSet``, text like ``"1001-1100x2"``, or ints); default all.
        size: output size, int (square) or ``(width, height)`` — e.g. the network's 256 — with the track's
            intrinsics scaled to it; ``None`` renders at the track's image size.
        preview: write the three images side by side as RGB (PNG-friendly) instead of 9 channels.
        device: torch device.
        batch: frames rendered at once.
        overwrite: replace existing files; if False, existing frames raise before anything is written.
        model: face model (default: the shipped one).
        progress: called with each frame number once its file is written.
    The pupils follow the tracker's ``eyeball_follows_face`` setting recorded in the track's metadata.

    Returns:
        :class:`RenderSummary` (files written, frames with an empty render).
    Raises:
        InputError / SchemaError: unreadable track, frames not in the track, a format that cannot hold 9
            channels without ``preview``, NaN parameters (naming the frame).
    """
    from dvp_engine.io.images import write_image
    from dvp_engine.io.output import output_sequence

    track_path = Path(track_path)
    out_pattern = Path(out_pattern)
    track = FaceTrack.load(track_path)
    wanted = track.frames_of(frames)
    suffix = out_pattern.suffix.lower()
    if not preview and suffix not in _MULTI_CHANNEL:
        raise InputError(
            f"{suffix or 'this format'} cannot hold the 9 conditioning channels: write .exr or .tif, "
            "or ask for the side-by-side preview",
            path=out_pattern,
        )
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    seq = output_sequence(out_pattern, FrameSet(wanted), overwrite=overwrite)
    camera = Camera.from_intrinsics(track.intrinsics, track.width, track.height)
    out_w, out_h = size_tuple(size) if size is not None else camera.size
    face_model = model if model is not None else load_default_model()
    renderer = ConditioningRenderer(face_model, device=device)
    try:
        params, centres = track_render_inputs(track, face_model)
    except InputError as exc:
        raise InputError(str(exc), path=track_path) from exc
    follows = eyeball_follows_face(track)
    summary = RenderSummary(size=(out_w, out_h))
    for start in range(0, len(wanted), batch):
        chunk = wanted[start : start + batch]
        rows = np.array([track.index_of(f) for f in chunk])
        try:
            with torch.inference_mode():
                res = renderer.render(
                    params[rows],
                    track.identity,
                    track.reflectance,
                    camera,
                    (out_w, out_h),
                    eyeball_follows_face=follows,
                    eye_centres=centres,
                )
        except InputError as exc:
            raise InputError(f"{exc} (frames {chunk[0]}-{chunk[-1]})", path=track_path) from exc
        images = (res.side_by_side() if preview else res.images).float().cpu().numpy()
        for i, f in enumerate(chunk):
            img = np.transpose(images[i], (1, 2, 0))
            visible = bool(res.visible[i])
            if not visible:
                summary.empty_frames.append(f)
            if preview:
                path = write_image(seq.path(f), img)
            else:
                meta = {
                    "dvp:synthetic": 1,
                    "dvp:frame": int(f),
                    "dvp:conditioning": "colour, correspondence, eye gaze (RGB each); display-referred [0, 1]",
                    "dvp:visible": int(visible),
                    "dvp:track": str(track_path),
                }
                path = write_image(seq.path(f), img, meta, channel_names=CHANNEL_NAMES)
            summary.written.append(path)
            if progress is not None:
                progress(f)
    return summary
