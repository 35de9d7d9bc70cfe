"""Draw a track over its footage so a person can judge it at a glance (PNG per frame).

Example::

    dvp overlay clip.npz clip.mp4 -o preview/ --frames 1-50 --shaded 0.4

Each ``preview/overlay.####.png`` shows the fitted mesh (wireframe, optionally the shaded model blended in),
the detected and the model's 68 landmarks, the pupils with gaze rays, and the frame's confidence.
See docs/tracker.md for how to read it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .common import UsageError
from .options import add_frames, add_overwrite, float_type, parse_frames, refuse_existing

NAME = "overlay"
HELP = "draw the fitted mesh, landmarks, pupils and gaze over the footage (PNG)"
log = logging.getLogger("dvp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("track", type=Path, help="FaceTrack (.npz)")
    p.add_argument("source", help="the tracked movie or image sequence")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    add_frames(p)
    p.add_argument(
        "--shaded",
        type=float_type(0, 1),
        default=0.0,
        help="opacity of the shaded model under the wireframe (0-1)",
    )
    p.add_argument("--no-detect", dest="detect", action="store_false", help="draw the model only (faster)")
    add_overwrite(p, "overlay images")


def run(args: argparse.Namespace) -> int:
    from dvp_engine.core import FaceTrack
    from dvp_engine.tracking.overlay import draw_overlay

    if not 0.0 <= args.shaded <= 1.0:
        raise UsageError(f"--shaded must be in [0, 1], got {args.shaded}")
    track = FaceTrack.load(args.track)
    frames = parse_frames(args.frames)
    todo = list(frames) if frames is not None else [int(f) for f in track.frames]
    refuse_existing([args.output / f"overlay.{f:04d}.png" for f in todo], args.overwrite)
    paths = draw_overlay(
        track,
        args.source,
        args.output,
        list(frames) if frames is not None else None,
        detect=args.detect,
        shaded=args.shaded,
    )
    log.info("wrote %d overlay images to %s", len(paths), args.output)
    return 0
