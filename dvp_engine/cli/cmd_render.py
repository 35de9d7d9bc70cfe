"""Render photo-real frames from a (possibly edited or transferred) track with a trained model.

Examples::

    dvp render --model model/ --track target.npz -o out/frame.####.exr
    dvp render --model model/ --track edited.npz -o out/frame.####.exr --frames 181-200 --resume
    dvp render --model model/ --track target.npz --curves nuke_edits.json -o out/frame.####.exr

Output EXRs are scene-linear ACEScg RGB plus the feathered head matte in the channel matte.A (``--matte alpha``:
premultiplied RGBA instead, for Blender) with metadata: the source frame,
the generator checkpoint's sha256, the frame's parameters and ``dvp:synthetic = 1``. A failing frame is named
and the frames already written are kept; ``--resume`` skips frames already on disk.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dvp_engine.pipeline.portrait import OUTPUT_SIZES

from .common import Progress, progress_mode
from .options import (
    add_batch,
    add_device,
    add_frames,
    add_matte,
    apply_curve_files,
    float_type,
    int_type,
    parse_frames,
    resolve_device,
)

NAME = "render"
HELP = "render frames from a track with a trained model (EXR, scene-linear, with matte)"
log = logging.getLogger("dvp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="model folder written by 'dvp train'")
    p.add_argument("--track", type=Path, required=True, help="FaceTrack to render (.npz)")
    p.add_argument("--curves", type=Path, action="append", default=[], help="curve file(s) applied first")
    p.add_argument("-o", "--output", required=True, help="output pattern, e.g. out/frame.####.exr")
    add_frames(p)
    add_device(p)
    add_batch(p, 16, "frames per forward pass (halved on GPU OOM)")
    p.add_argument(
        "--output-size",
        choices=OUTPUT_SIZES,
        default="plate",
        help="plate (default): the face crop at the plate's resolution, placed in the plate (EXR data window; "
        "other formats padded to the plate size); crop: the crop alone; network: the network's S x S image",
    )
    p.add_argument(
        "--writers",
        type=int_type(1, 64),
        default=None,
        help="threads writing frames (default: up to 8); 1 writes in order and stops at the first failure",
    )
    p.add_argument(
        "--feather",
        type=float_type(0, 64),
        default=4.0,
        help="matte feather in pixels at 256, 0-64 (default 4)",
    )
    add_matte(p)
    p.add_argument(
        "--allow-nan",
        action="store_true",
        help="write frames holding NaN/inf pixels (by default such a frame is an error naming it)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--overwrite", action="store_true", help="replace frames that exist already")
    group.add_argument(
        "--resume",
        action="store_true",
        help="skip frames that exist already and read back whole (right size and channels); redo the others",
    )


def run(args: argparse.Namespace) -> int:
    from dvp_engine.core import FaceTrack
    from dvp_engine.pipeline.portrait import render_portrait

    track = FaceTrack.load(args.track)
    track = apply_curve_files(track, args.curves)
    frames = parse_frames(args.frames)
    wanted = list(frames) if frames is not None else [int(f) for f in track.frames]
    if args.overwrite or args.resume:
        _remove_stale_temporaries(args.output, wanted)
    with Progress(len(wanted), "render", progress_mode(args)) as bar:
        res = render_portrait(
            args.model,
            track,
            args.output,
            frames=wanted,
            device=resolve_device(args.device),
            batch=args.batch,
            overwrite=args.overwrite,
            resume=args.resume,
            output_size=args.output_size,
            feather=args.feather,
            writers=args.writers,
            matte=args.matte,
            track_label=str(args.track),
            progress=bar.step,
            allow_nan=args.allow_nan,
        )
    for e in res.events:
        log.warning(e)
    log.info(
        "wrote %d frames to %s%s",
        len(res.written),
        res.pattern,
        f" ({len(res.skipped)} already there, skipped)" if res.skipped else "",
    )
    return 0


def _remove_stale_temporaries(pattern: str, frames: list[int]) -> None:
    """Remove what a killed render of these frames left (temporary files never renamed into place), so a
    retried farm task leaves its chunk clean; other frames' files are not touched."""
    from dvp_engine.core.atomic import stale_temporaries
    from dvp_engine.core.sequence import ImageSequence

    seq = ImageSequence.parse(pattern)
    for f in frames:
        for tmp in stale_temporaries(seq.path(f)):
            log.info("removing %s (left by an interrupted render)", tmp)
            tmp.unlink(missing_ok=True)
