"""Track a portrait video with the parametric face model and write a FaceTrack (.npz).

Examples::

    dvp track dvp_engine/data/sample/wda_kh.mp4 -o wda.npz
    dvp track plate/shot.####.exr -o shot.npz --frames 1001-1100 --device cuda
    dvp track clip.mov -o clip.npz --smooth --focal 1400
    dvp track clip.mov --frames 120-160 --update clip.npz -o clip.npz --overwrite   # re-track a stretch

Frames where no face is found (or the fit fails) are flagged with ``track.valid = 0`` and hold the last good
parameters; the command reports them and exits 0 unless ``--strict`` (then the first bad frame is an error).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .common import StageProgress, UsageError, progress_mode
from .options import add_device, add_frames, parse_frames, resolve_device

NAME = "track"
HELP = "fit the face model to every frame of a video or image sequence"
log = logging.getLogger("dvp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="movie file or image-sequence pattern")
    p.add_argument("-o", "--output", type=Path, required=True, help="output FaceTrack (.npz)")
    add_frames(p)
    add_device(p)
    p.add_argument("--smooth", action="store_true", help="temporal smoothing of the curves (off by default)")
    p.add_argument(
        "--smooth-group",
        dest="smooth_groups",
        action="append",
        default=[],
        metavar="GROUP=STRENGTH",
        help="smooth a channel group (pose, expression, gaze, blinks, light or all) with a Gaussian of STRENGTH "
        "frames; blinks use an edge-keeping filter so blinks stay sharp",
    )
    p.add_argument("--identity-keyframes", type=int, default=5, help="keyframes for the identity solve (5)")
    p.add_argument("--focal", type=float, help="focal length in pixels (default: 2 x the larger image side)")
    p.add_argument(
        "--eye-calibration",
        choices=("camera", "forward", "none"),
        default="camera",
        help="estimate the actor's eyeball centres assuming the actor mostly looks into the lens (camera, "
        "default), or that the eyes point along the face on average (forward); none: the model's centres",
    )
    p.add_argument(
        "--update",
        type=Path,
        metavar="TRACK.npz",
        help="re-track --frames into this existing track (its identity, camera and eyes kept; the stretch starts "
        "from the track's values before it) and write the merged track to -o (may be the same file with "
        "--overwrite)",
    )
    p.add_argument("--strict", action="store_true", help="fail on the first frame without a face")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    from dvp_engine.core import layout
    from dvp_engine.core.frames import FrameSet
    from dvp_engine.tracking.pipeline import track_video
    from dvp_engine.tracking.tracker import TrackerSettings

    if args.output.suffix != ".npz":
        raise UsageError("the output must be a .npz file", path=args.output)
    if args.output.exists() and not args.overwrite:
        raise UsageError("output exists; pass --overwrite to replace it", path=args.output)
    frames = parse_frames(args.frames)
    update = None
    if args.update is not None:
        from dvp_engine.core import FaceTrack

        if frames is None:
            raise UsageError("--update needs --frames: the stretch to re-track")
        update = FaceTrack.load(args.update)
    device = resolve_device(args.device)
    mode = progress_mode(args)
    progress = StageProgress(mode)

    intrinsics = None
    if args.focal is not None:
        from dvp_engine.io.video import open_video

        with open_video(args.source) as v:
            w, h = v.size
        intrinsics = (args.focal, args.focal, (w - 1) / 2, (h - 1) / 2)
    from dvp_engine.transfer.smoothing import parse_smooth_groups

    try:
        smoothing = parse_smooth_groups(args.smooth_groups)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    settings = TrackerSettings(eye_calibration=args.eye_calibration)
    if device.startswith("cuda"):
        settings.batch_size = 64
    try:
        track = track_video(
            args.source,
            frames=list(frames) if frames is not None else None,
            device=device,
            smooth=args.smooth,
            progress=progress,
            identity_keyframes=args.identity_keyframes,
            on_bad_frame="error" if args.strict else "flag",
            intrinsics=intrinsics,
            settings=settings,
            smoothing=smoothing,
            update=update,
        )
    finally:
        progress.close()
    track.save(args.output)
    valid = track.channels.get(layout.VALID)
    lost = [int(f) for f in track.frames[valid < 0.5]] if valid is not None else []
    log.info(
        "wrote %s: %d frames, mean confidence %.3f",
        args.output,
        track.n_frames,
        float(track.channels[layout.CONFIDENCE].mean()) if track.n_frames else 0.0,
    )
    if track.eyes is not None:
        if track.eyes.fallback:
            log.warning("eyes not calibrated: %s", track.eyes.note)
        else:
            log.info("eyes calibrated (%s, %d frames)", track.eyes.method, track.eyes.frames_used)
    if len(lost):
        log.warning(
            "face lost on %d frames: %s (flagged track.valid = 0)", len(lost), FrameSet.from_frames(lost)
        )
    return 0
