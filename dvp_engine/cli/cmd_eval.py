"""Evaluate a trained model on its held-out frames against the baselines, or on a track it never saw.

Examples::

    dvp eval --model model/ -o eval/
    dvp eval --model model/ -o eval/ --train-single-frame          # also train the Nw = 1 baseline
    dvp eval --model model/ -o eval/ --single-frame-model model_nw1/
    dvp eval --model model/ --track transferred.npz -o eval_cross/ # cross-reenactment: identity, control

Held-out mode writes ``eval/report.json``: for the model, nearest-neighbour retrieval, the single-frame network
and the mean training frame, PSNR / SSIM / L1 on the whole frame and in the face, mouth and eyes boxes,
sharpness and high-frequency fidelity in the face box, identity distance (dlib) and controllability (the output
re-tracked against the asked parameters), and ``eval/contact_sheet.png``. With ``--track`` there is no ground
truth: identity against the target's training frames and controllability. Prints the summary table as JSON;
docs/network.md says what each number means.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .options import (
    add_batch,
    add_device,
    add_frames,
    add_overwrite,
    parse_frames,
    refuse_existing,
    resolve_device,
)

NAME = "eval"
HELP = "score a model on held-out frames against nearest-neighbour, single-frame and mean-frame baselines"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="model folder written by 'dvp train'")
    p.add_argument("-o", "--output", type=Path, required=True, help="report folder")
    p.add_argument(
        "--track",
        type=Path,
        help="cross-reenactment: score this track (e.g. a transferred or edited one) instead of the held-out frames",
    )
    add_frames(p, "with --track: the frames to score (default all)")
    p.add_argument("--single-frame-model", type=Path, help="a model trained with --nw 1 on the same track")
    p.add_argument("--train-single-frame", action="store_true", help="train the Nw = 1 baseline the same way")
    p.add_argument(
        "--no-controllability",
        action="store_true",
        help="skip re-tracking the outputs (the slow part on a CPU: about a second a frame)",
    )
    add_batch(p, 8, "frames per forward pass (8)")
    add_overwrite(p, "a report")
    add_device(p)


def run(args: argparse.Namespace) -> int:
    refuse_existing([args.output / "report.json", args.output / "contact_sheet.png"], args.overwrite)
    device = resolve_device(args.device)
    if args.track is not None:
        from dvp_engine.pipeline.evaluation_cross import evaluate_cross

        report = evaluate_cross(
            args.model,
            args.track,
            args.output,
            frames=parse_frames(args.frames),
            device=device,
            batch=args.batch,
            controllability=not args.no_controllability,
        )
    else:
        from dvp_engine.pipeline.evaluation import evaluate_model

        report = evaluate_model(
            args.model,
            args.output,
            single_frame_model=args.single_frame_model,
            train_single_frame=args.train_single_frame,
            device=device,
            batch=args.batch,
            controllability=not args.no_controllability,
        )
    print(json.dumps({"report": str(args.output / "report.json"), "summary": report["summary"]}, indent=1))
    return 0
