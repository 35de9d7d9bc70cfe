"""Reenact a target video with a source actor's performance, end to end, resumably.

Examples::

    dvp reenact --source actor.mp4 --target portrait.mp4 --mode full -o out/
    dvp reenact --source dub.mp4 --target portrait.mp4 --mode dubbing --model out/model -o dub_out/
    dvp reenact --source portrait.mp4 --target portrait.mp4 --set gaze.left.x=+15@181-200 \\
        --set gaze.right.x=+15@181-200 --frames 181-200 -o gaze_out/          # edit only

Steps: track the target (and the source), train the target's network (unless ``--model``), transfer the
parameters (modes: full, expression, gaze, pose, dubbing), apply ``--curves``/``--set`` edits, render EXRs
and write a side-by-side preview MP4 and a contact sheet. Rerunning the same command skips finished steps
(an interrupted job continues where it stopped); changing an input redoes only what depends on it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from .common import StageProgress, UsageError, progress_mode
from .options import (
    add_batch,
    add_device,
    add_frames,
    add_framing,
    add_matte,
    add_time_limit,
    int_type,
    minutes_to_seconds,
    parse_frames,
    resolve_device,
)

NAME = "reenact"
HELP = "track, train, transfer, edit and render in one resumable job"
log = logging.getLogger("dvp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True, help="source actor video (movie or sequence)")
    p.add_argument("--target", required=True, help="target actor video (movie or sequence)")
    p.add_argument("--mode", default="full", choices=("full", "expression", "gaze", "pose", "dubbing"))
    p.add_argument("-o", "--output", type=Path, required=True, help="job folder")
    p.add_argument("--model", type=Path, help="a trained target model folder (skip training)")
    add_frames(p, "output frames to render (default all)")
    p.add_argument("--track-frames", help="frames of the videos to track (default all)")
    p.add_argument(
        "--source-reference",
        type=int_type(-999_999_999, 999_999_999),
        help="neutral frame of the source (default: automatic)",
    )
    p.add_argument(
        "--target-reference",
        type=int_type(-999_999_999, 999_999_999),
        help="neutral frame of the target (default: automatic)",
    )
    p.add_argument(
        "--curves", type=Path, action="append", default=[], help="curve file(s) applied after transfer"
    )
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="CHANNEL=VALUE[@FIRST-LAST]")
    p.add_argument(
        "--size", type=int_type(16, 4096), default=256, help="network resolution when training (256)"
    )
    p.add_argument("--iters", type=int_type(1), default=31000, help="training iterations (31000)")
    add_time_limit(p)
    add_batch(p, 16, "training batch (16)")
    p.add_argument(
        "--arch", choices=("fast", "paper"), default="fast", help="network architecture when training (fast)"
    )
    p.add_argument("--ngf", type=int_type(1, 1024), help="generator base width (default: fast 32, paper 64)")
    p.add_argument("--seed", type=int_type(0), default=0)
    add_framing(p)
    p.add_argument(
        "--no-preview", dest="preview", action="store_false", help="skip the preview MP4 and contact sheet"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace frames in an output folder from elsewhere"
    )
    add_device(p)
    add_matte(p)


def run(args: argparse.Namespace) -> int:
    from dvp_engine.pipeline.reenact import ReenactSettings, run_reenact

    frames = parse_frames(args.frames)
    for c in args.curves:
        if not c.is_file():
            raise UsageError("curve file not found", path=c)
    settings = ReenactSettings(
        source=args.source,
        target=args.target,
        out=args.output,
        mode=args.mode,
        model=args.model,
        size=args.size,
        iters=args.iters,
        time_limit=minutes_to_seconds(args.time_limit),
        batch=args.batch,
        ngf=args.ngf,
        arch=args.arch,
        frames=list(frames) if frames is not None else None,
        source_reference=args.source_reference,
        target_reference=args.target_reference,
        curves=args.curves,
        sets=args.sets,
        device=resolve_device(args.device),
        overwrite=args.overwrite,
        preview=args.preview,
        seed=args.seed,
        track_frames=args.track_frames,
        framing=args.framing,
        matte=args.matte,
    )
    mode = progress_mode(args)
    progress = StageProgress(mode)

    def on_log(it: int, rec: dict[str, Any]) -> None:
        progress("train", it, args.iters)

    try:
        res = run_reenact(settings, progress=progress, on_log=on_log)
    except (KeyError, ValueError) as exc:
        raise UsageError(str(exc.args[0] if exc.args else exc)) from None
    finally:
        progress.close()
    for line in res.report:
        log.info(line)
    log.info("steps run: %s", ", ".join(res.ran) or "none (all up to date)")
    log.info("frames: %s", res.frames_pattern)
    if res.preview is not None:
        log.info("preview: %s", res.preview)
        log.info("contact sheet: %s", res.contact_sheet)
    return 0
