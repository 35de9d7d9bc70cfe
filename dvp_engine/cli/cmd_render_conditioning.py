"""Render the conditioning images of a track (paper section 5): colour, correspondence and eye gaze.

Examples::

    dvp render-conditioning track.npz -o cond/cond.####.exr --size 256          # 9-channel EXRs
    dvp render-conditioning track.npz -o preview/cond.####.png --preview --frames 1-10

Without ``--preview`` each frame is one 9-channel image (colour.RGB, correspondence.RGB, gaze.RGB; EXR or
TIFF); with ``--preview`` the three images side by side as an RGB image (any format). Values are display-
referred sRGB in [0, 1]. Frames where the head is behind the camera or outside the frame are written black and
reported, not treated as errors.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .common import Progress, progress_mode
from .options import add_batch, add_device, add_frames, int_type, parse_frames, resolve_device

NAME = "render-conditioning"
HELP = "render the colour, correspondence and eye-gaze conditioning images of a track"
log = logging.getLogger("dvp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("track", type=Path, help="FaceTrack (.npz)")
    p.add_argument("-o", "--output", required=True, help="output pattern, e.g. cond/cond.####.exr")
    add_frames(p)
    p.add_argument(
        "--size", type=int_type(1, 8192), default=256, help="square output size (default 256, the network's)"
    )
    p.add_argument("--preview", action="store_true", help="the three images side by side (RGB)")
    add_batch(p, 16, "frames per forward pass (16)")
    p.add_argument("--overwrite", action="store_true", help="replace frames that exist already")
    add_device(p)


def run(args: argparse.Namespace) -> int:
    from dvp_engine.core import FaceTrack
    from dvp_engine.render.sequence import render_conditioning_sequence

    frames = parse_frames(args.frames)
    n = len(frames) if frames is not None else FaceTrack.load(args.track).n_frames
    with Progress(n, "render-conditioning", progress_mode(args)) as bar:
        summary = render_conditioning_sequence(
            args.track,
            args.output,
            frames,
            args.size,
            args.preview,
            resolve_device(args.device),
            batch=args.batch,
            overwrite=args.overwrite,
            progress=bar.step,
        )
    w, h = summary.size
    log.info("wrote %d conditioning images (%dx%d) to %s", len(summary.written), w, h, args.output)
    if summary.empty_frames:
        from dvp_engine.core.frames import FrameSet

        log.warning(
            "the head covers no pixel (behind the camera or outside the frame) on frames %s: written black",
            FrameSet.from_frames(summary.empty_frames),
        )
    return 0
