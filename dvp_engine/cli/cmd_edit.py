"""Edit a track: apply curve files and quick --set expressions, retime, then write a new track.

Examples::

    dvp edit track.npz --set head.ry=+10@1001-1050 -o edited.npz        # turn the head 10 degrees
    dvp edit track.npz --set gaze.left.x=5@1010-1040 --set gaze.right.x=5@1010-1040 -o looks_right.npz
    dvp edit track.npz --curves artist_edits.json -o edited.npz          # curves exported from Nuke/Blender
    dvp edit track.npz --speed 0.5 -o slow.npz                            # half speed (twice as many frames)
    dvp edit track.npz --hold 1020:12 -o freeze.npz                       # hold frame 1020 for 12 more frames
    dvp edit track.npz --look-at 960,540,0.05@1001-1040 -o at_lens.npz    # look at the lens (centre, 5 cm)
    dvp edit track.npz --look-at 1500,300@1041-1080 -o follow.npz         # follow a plate point

A ``--set`` value with a leading + or - is an offset, without a sign an override (``==-5`` overrides with a
negative value). ``--look-at X,Y[,DEPTH]@FRAMES`` points both eyes at the plate pixel (X, Y) at camera depth
DEPTH metres (default: halfway between the lens and the face), with vergence, through the ``look.*`` channels
(``look.weight`` blends it with the gaze curves). Order: curves, then --look-at, then --set, then --smooth-group, then retiming.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from dvp_engine.core import FaceTrack

from .common import UsageError
from .options import apply_curve_files, float_type

NAME = "edit"
HELP = "apply curve edits, --set expressions and retiming to a track"
log = logging.getLogger("dvp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("track", type=Path, help="input FaceTrack (.npz)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output FaceTrack (.npz)")
    p.add_argument(
        "--curves", type=Path, action="append", default=[], help="curve file(s) to apply, in order"
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="CHANNEL=VALUE[@FIRST-LAST]",
        help="override (no sign) or offset (+/-) a channel over a frame range",
    )
    p.add_argument(
        "--look-at",
        dest="look_at",
        action="append",
        default=[],
        metavar="X,Y[,DEPTH]@FIRST-LAST",
        help="both eyes look at plate pixel X,Y at camera depth DEPTH metres (default: halfway to the face)",
    )
    p.add_argument(
        "--smooth-group",
        dest="smooth_groups",
        action="append",
        default=[],
        metavar="GROUP=STRENGTH",
        help="smooth a channel group (pose, expression, gaze, blinks, light or all) with a Gaussian of STRENGTH "
        "frames; blinks use an edge-keeping filter so blinks stay sharp",
    )
    p.add_argument(
        "--speed", type=float_type(0, 100, lo_open=True), help="constant playback speed (0.5 = half speed)"
    )
    p.add_argument(
        "--hold", action="append", default=[], metavar="FRAME:COUNT", help="freeze FRAME for COUNT frames"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    from dvp_engine.transfer import apply_look_at, apply_sets, hold, speed_ramp

    if args.output.exists() and not args.overwrite:
        raise UsageError("output exists; pass --overwrite to replace it", path=args.output)
    track = FaceTrack.load(args.track)
    track = apply_curve_files(track, args.curves)
    try:
        track = apply_look_at(track, args.look_at)
        if args.look_at:
            _check_look_at(track, args.track)
        track = apply_sets(track, args.sets)
    except (KeyError, ValueError) as exc:
        raise UsageError(str(exc.args[0])) from None
    if args.smooth_groups:
        from dvp_engine.transfer.smoothing import parse_smooth_groups, smooth_track

        try:
            track = smooth_track(track, parse_smooth_groups(args.smooth_groups))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    for h in args.hold:
        frame, _, count = h.partition(":")
        try:
            if not re.fullmatch(r"\s*-?[0-9]{1,9}\s*", frame) or not re.fullmatch(r"\s*[0-9]{0,9}\s*", count):
                raise ValueError("expected FRAME:COUNT with ASCII digits, e.g. 1020:12")
            track = hold(track, int(frame), int(count or 1))
        except ValueError as exc:
            raise UsageError(f"--hold {h!r}: {exc}") from None
    if args.speed is not None:
        if args.speed <= 0:
            raise UsageError(f"--speed must be > 0, got {args.speed}")
        track = speed_ramp(track, args.speed)
    track.metadata["edited_from"] = str(args.track)
    track.save(args.output)
    log.info("wrote %s (%d frames)", args.output, track.n_frames)
    return 0


def _check_look_at(track: FaceTrack, path: Path) -> None:
    """A look-at target behind the face is an error now (naming the frame), not at render time."""
    import numpy as np

    from dvp_engine.core.errors import InputError
    from dvp_engine.core.gaze import eye_centres, resolved_gaze
    from dvp_engine.facemodel import load_default_model

    model = load_default_model()
    centres = eye_centres(track.eyes, np.stack([model.eyeball_left_center, model.eyeball_right_center]))
    try:
        resolved_gaze(track.channels, centres, [int(f) for f in track.frames])
    except InputError as exc:
        text = str(exc)
        prefix = f"frame {exc.frame}: "
        text = text[len(prefix) :] if text.startswith(prefix) else text
        raise InputError(f"--look-at: {text}", path=path, frame=exc.frame) from None
