"""Write the side-by-side preview MP4 and the contact sheet of rendered frames (the last step of ``dvp reenact``).

Example::

    dvp preview --source actor.mp4 --source-track work/source.npz --track work/reenacted.npz \\
        --model model/ --frames-from out/frames/frame.####.exr -o out/

Writes ``out/preview.mp4`` (source | colour conditioning | result) and ``out/contact_sheet.png`` (rows: source,
colour conditioning, eye-gaze conditioning, result) over the rendered frames of the track.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .options import add_device, add_frames, parse_frames, resolve_device

NAME = "preview"
HELP = "side-by-side preview MP4 and contact sheet of rendered frames"
log = logging.getLogger("dvp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True, help="the source video (movie or sequence)")
    p.add_argument("--source-track", type=Path, required=True, help="FaceTrack of the source video (.npz)")
    p.add_argument("--track", type=Path, required=True, help="the FaceTrack that was rendered (.npz)")
    p.add_argument("--model", type=Path, required=True, help="the model folder that rendered it")
    p.add_argument("--frames-from", required=True, help="the rendered frames, e.g. out/frames/frame.####.exr")
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="folder for preview.mp4, contact_sheet.png"
    )
    add_frames(p, "frames to show (default: every rendered frame of the track)")
    add_device(p)


def run(args: argparse.Namespace) -> int:
    from dvp_engine.pipeline.reenact import write_previews

    frames = parse_frames(args.frames)
    args.output.mkdir(parents=True, exist_ok=True)
    mp4, sheet = write_previews(
        args.source,
        args.source_track,
        args.track,
        args.frames_from,
        args.model,
        args.output,
        list(frames) if frames is not None else None,
        resolve_device(args.device),
    )
    log.info("wrote %s and %s", mp4, sheet)
    return 0
