"""Track a portrait video with the parametric face model and write a FaceTrack (.npz).

Examples::

    dvp track dvp_engine/data/sample/wda_kh.mp4 -o wda.npz
    dvp track plate/shot.####.exr -o shot.npz --frames 1001-1100 --device cuda
    dvp track clip.mov -o clip.npz --smooth --focal 1400
    dvp track clip.mov --frames 120-160 --update clip.npz -o clip.npz --overwrite   # re-track a stretch

Chunked (a farm: identity once, chunks on many hosts, then a merge; see docs/farm.md)::

    dvp track clip.mov --identity-only -o work/clip.identity.npz
    dvp track clip.mov --identity work/clip.identity.npz --frames 1-100 -o work/clip.0001.npz
    dvp track --merge work/clip.0001.npz work/clip.0101.npz -o clip.npz

Frames where no face is found (or the fit fails) are flagged with ``track.valid = 0`` and hold the last good
parameters; the command reports them and exits 0 unless ``--strict`` (then the first bad frame is an error).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from dvp_engine.core.frames import FrameSet

from .common import StageProgress, UsageError, progress_mode
from .options import add_device, add_frames, float_type, int_type, parse_frames, resolve_device

NAME = "track"
HELP = "fit the face model to every frame of a video or image sequence"
log = logging.getLogger("dvp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", help="movie file or image-sequence pattern (not with --merge)")
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
    p.add_argument(
        "--identity-keyframes", type=int_type(1, 1000), default=5, help="keyframes for the identity solve (5)"
    )
    p.add_argument(
        "--focal",
        type=float_type(0, 1e6, lo_open=True),
        help="focal length in pixels (default: 2 x the larger image side)",
    )
    p.add_argument(
        "--eye-calibration",
        choices=("camera", "forward", "none"),
        default="camera",
        help="estimate the actor's eyeball centres assuming the actor mostly looks into the lens (camera, "
        "default; forward is tried next where the clip does not bear that out), or that the eyes point along "
        "the face on average (forward); none: the model's fixed centres. When no assumption holds, the centres "
        "follow the eye openings, set apart so that the eyes' gaze rays meet",
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
    chunk = p.add_mutually_exclusive_group()
    chunk.add_argument(
        "--identity-only",
        action="store_true",
        help="solve identity once (landmarks of every frame + identity mode) and write an identity file",
    )
    chunk.add_argument(
        "--identity",
        type=Path,
        metavar="IDENTITY.npz",
        help="track --frames with the identity file of --identity-only (a chunk for --merge)",
    )
    chunk.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="CHUNK.npz",
        help="join chunk tracks into one track (overlapping or missing frames are an error)",
    )


def run(args: argparse.Namespace) -> int:
    from dvp_engine.core import layout
    from dvp_engine.tracking.pipeline import track_video
    from dvp_engine.tracking.tracker import TrackerSettings

    if args.output.suffix != ".npz":
        raise UsageError("the output must be a .npz file", path=args.output)
    if args.output.exists() and not args.overwrite:
        raise UsageError("output exists; pass --overwrite to replace it", path=args.output)
    args.output.parent.mkdir(parents=True, exist_ok=True)  # a farm's job folder starts empty
    if args.merge:
        return _merge(args)
    if args.source is None:
        raise UsageError("the source video is required (except with --merge)")
    frames = parse_frames(args.frames)
    if args.identity_only or args.identity:
        return _chunked(args, frames)
    update = None
    if args.update is not None:
        from dvp_engine.core import FaceTrack

        if frames is None:
            raise UsageError("--update needs --frames: the stretch to re-track")
        update = FaceTrack.load(args.update)
    device = resolve_device(args.device)
    mode = progress_mode(args)
    progress = StageProgress(mode)

    intrinsics = _intrinsics(args)
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


def _chunked(args: argparse.Namespace, frames: FrameSet | None) -> int:
    from dvp_engine.tracking.chunks import solve_identity, track_chunk

    device = resolve_device(args.device)
    progress = StageProgress(progress_mode(args))
    strict = "error" if args.strict else "flag"
    try:
        if args.identity_only:
            intrinsics = _intrinsics(args)
            ident = solve_identity(
                args.source,
                frames=list(frames) if frames is not None else None,
                device=device,
                identity_keyframes=args.identity_keyframes,
                on_bad_frame=strict,
                intrinsics=intrinsics,
                progress=progress,
            )
            ident.save(args.output)
            log.info(
                "wrote %s: identity of %d frames solved on keyframes %s",
                args.output,
                len(ident.frames),
                ", ".join(map(str, ident.keyframes)) or "none (mean face)",
            )
            return 0
        if args.smooth:
            raise UsageError("--smooth applies to the whole track: pass it to --merge, not to a chunk")
        if args.focal is not None:
            raise UsageError("--focal belongs to --identity-only (a chunk uses the identity file's camera)")
        track = track_chunk(
            args.identity,
            args.source,
            list(frames) if frames is not None else None,
            device=device,
            on_bad_frame=strict,
            progress=progress,
        )
    finally:
        progress.close()
    track.save(args.output)
    log.info(
        "wrote %s: chunk of %d frames (%s)", args.output, track.n_frames, track.metadata["chunk"]["frames"]
    )
    return 0


def _merge(args: argparse.Namespace) -> int:
    from dvp_engine.core import FaceTrack
    from dvp_engine.tracking.chunks import merge_tracks

    if args.source is not None or args.frames is not None or args.identity_only:
        raise UsageError("--merge takes only chunk files and -o (the chunks define the frames)")
    parts = [FaceTrack.load(p) for p in args.merge]
    track = merge_tracks(
        parts,
        [str(p) for p in args.merge],
        smooth=1.0 if args.smooth else 0.0,
        identity=_chunks_identity(parts),
    )
    track.save(args.output)
    log.info("wrote %s: %d frames merged from %d chunks", args.output, track.n_frames, len(parts))
    return 0


def _chunks_identity(parts: list[Any]) -> Any:
    """The identity file the chunks name (for the clip-level eye calibration), or None when it is gone or
    changed (merge_tracks then warns that the eyes are not calibrated over the whole clip)."""
    from dvp_engine.core.atomic import sha256_file
    from dvp_engine.tracking.chunks import IdentitySolve

    chunk = parts[0].metadata.get("chunk") if parts else None
    if not isinstance(chunk, dict) or not isinstance(chunk.get("identity_path"), str):
        return None
    path = Path(chunk["identity_path"])
    if not path.is_file() or sha256_file(path) != chunk.get("identity"):
        log.warning("the chunks' identity file %s is gone or has changed", path)
        return None
    return IdentitySolve.load(path)


def _intrinsics(args: argparse.Namespace) -> tuple[float, float, float, float] | None:
    if args.focal is None:
        return None
    from dvp_engine.io.video import open_video

    with open_video(args.source) as v:
        w, h = v.size
    return (args.focal, args.focal, (w - 1) / 2, (h - 1) / 2)
