"""Train the rendering-to-video network of one target actor on a tracked video (paper section 6).

Examples::

    dvp track target.mp4 -o target.npz
    dvp train --track target.npz --frames-from target.mp4 -o model/ --size 256 --iters 31000
    dvp train --track target.npz --frames-from target.mp4 -o model/ --resume      # continue exactly

The model folder holds safetensors checkpoints (``checkpoints/iter_N/``), ``log.jsonl`` (losses, held-out L1),
preview contact sheets of held-out frames (``previews/``), ``dvp_model.json`` (framing, splits) and a cache of
the conditioning images and video frames (``cache/``). The last 10 % of the frames are never trained on.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from .common import Progress, StageProgress, progress_mode
from .options import add_device, add_framing, add_time_limit, int_type, minutes_to_seconds, resolve_device

NAME = "train"
HELP = "train the space-time generator of a target actor"
log = logging.getLogger("dvp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--track", type=Path, required=True, help="FaceTrack of the target video (.npz)")
    p.add_argument("--frames-from", required=True, help="the target video (movie or image sequence)")
    p.add_argument("-o", "--output", type=Path, required=True, help="model folder")
    p.add_argument(
        "--size",
        type=int_type(16, 4096),
        help="network resolution (128, 256, 512, 1024; default 256, or the checkpoint's with --resume)",
    )
    p.add_argument("--iters", type=int_type(1), default=31000, help="total iterations (paper: 31000)")
    add_time_limit(p)
    p.add_argument(
        "--batch",
        type=int_type(2, 4096),
        help="batch size (paper: 16; default 16, or the checkpoint's with --resume)",
    )
    p.add_argument(
        "--arch",
        choices=("fast", "paper"),
        default="fast",
        help="network architecture: fast (default; background and texture inputs, learns far more per "
        "iteration) or paper (the paper's U-Net, the reference); recorded in the checkpoints",
    )
    p.add_argument(
        "--ngf",
        type=int_type(1, 1024),
        help="generator base width (default: fast 32, paper 64, or the checkpoint's with --resume; smaller "
        "trains faster)",
    )
    p.add_argument(
        "--nw",
        type=int_type(1, 99),
        help="frames in the space-time window (paper: 11; 1 = single frame; default 11, or the checkpoint's)",
    )
    p.add_argument(
        "--seed", type=int_type(0), help="random seed (default 0, or the checkpoint's with --resume)"
    )
    add_framing(p)
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue from the folder's latest checkpoint (other --size/--nw/--ngf/--batch/--seed: an error)",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in a folder that holds a model (its checkpoints go)",
    )
    p.add_argument(
        "--preview-every",
        type=int_type(0),
        default=1000,
        help="iterations between held-out previews (0: only at the end)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int_type(0),
        default=1000,
        help="iterations between checkpoints (0: only at the end)",
    )
    add_device(p)


def run(args: argparse.Namespace) -> int:
    from dvp_engine.pipeline.portrait import train_portrait

    device = resolve_device(args.device)
    mode = progress_mode(args)
    progress = StageProgress(mode)

    line = None
    if mode == "lines":
        line = Progress(args.iters, "train", "lines")

        def on_log(it: int, rec: dict[str, Any]) -> None:
            assert line is not None
            line.step(n=it - line.done)
            line.note(**{k: float(v) for k, v in rec.items() if k.startswith("loss")})

    try:
        losses = train_portrait(
            args.track,
            args.frames_from,
            args.output,
            size=args.size,
            iters=args.iters,
            batch=args.batch,
            ngf=args.ngf,
            arch=args.arch,
            nw=args.nw,
            device=device,
            seed=args.seed,
            resume=args.resume,
            overwrite=args.overwrite,
            preview_every=args.preview_every,
            checkpoint_every=args.checkpoint_every,
            log_every=min(50, max(1, args.iters // 20)),
            bar=mode == "bar",
            on_log=on_log if line is not None else None,
            progress=progress,
            framing=args.framing,
            time_limit=minutes_to_seconds(args.time_limit),
        )
    finally:
        progress.close()
    log.info(
        "trained %s: %s", args.output, ", ".join(f"{k}={v:.4f}" for k, v in losses.items() if "loss" in k)
    )
    return 0
