"""Transfer a source actor's performance onto a target track (the transfer step of ``dvp reenact``).

Examples::

    dvp transfer --source-track actor.npz --target-track portrait.npz --mode full -o reenacted.npz
    dvp transfer --source-track dub.npz --target-track portrait.npz --mode dubbing -o dubbed.npz \\
        --curves nuke_edits.json --set head.ry=+5@1001-1020

Modes: full (pose, expression, gaze), expression, gaze, pose, dubbing (mouth only), each relative to a neutral
reference frame of each actor (chosen automatically unless given). Curve files, then ``--set`` edits, are
applied afterwards. The same file as source and target track is an edit of the target (its length is kept).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .common import UsageError

NAME = "transfer"
HELP = "transfer a source track onto a target track (modes full, expression, gaze, pose, dubbing)"
log = logging.getLogger("dvp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source-track", type=Path, required=True, help="FaceTrack of the source actor (.npz)")
    p.add_argument("--target-track", type=Path, required=True, help="FaceTrack of the target actor (.npz)")
    p.add_argument("--mode", default="full", choices=("full", "expression", "gaze", "pose", "dubbing"))
    p.add_argument("-o", "--output", type=Path, required=True, help="output FaceTrack (.npz)")
    p.add_argument("--source-reference", type=int, help="neutral frame of the source (default: automatic)")
    p.add_argument("--target-reference", type=int, help="neutral frame of the target (default: automatic)")
    p.add_argument(
        "--curves", type=Path, action="append", default=[], help="curve file(s) applied after transfer"
    )
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="CHANNEL=VALUE[@FIRST-LAST]")
    p.add_argument("--source-video", default="", help="the source video, recorded in the track's metadata")
    p.add_argument("--target-video", default="", help="the target video, recorded in the track's metadata")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    from dvp_engine.pipeline.reenact import transfer_job

    if args.output.suffix != ".npz":
        raise UsageError("the output must be a .npz file", path=args.output)
    if args.output.exists() and not args.overwrite:
        raise UsageError("output exists; pass --overwrite to replace it", path=args.output)
    args.output.parent.mkdir(parents=True, exist_ok=True)  # a farm's job folder starts empty
    for c in args.curves:
        if not c.is_file():
            raise UsageError("curve file not found", path=c)
    try:
        new = transfer_job(
            args.target_track,
            args.source_track,
            args.output,
            args.mode,
            source_reference=args.source_reference,
            target_reference=args.target_reference,
            curves=args.curves,
            sets=args.sets,
            source_video=args.source_video,
            target_video=args.target_video,
        )
    except (KeyError, ValueError) as exc:
        raise UsageError(str(exc.args[0] if exc.args else exc)) from None
    log.info("wrote %s (%d frames, mode %s)", args.output, new.n_frames, args.mode)
    return 0
