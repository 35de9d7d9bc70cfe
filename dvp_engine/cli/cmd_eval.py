"""Evaluate a trained model on its held-out frames against the paper's baselines.

Examples::

    dvp eval --model model/ -o eval/
    dvp eval --model model/ -o eval/ --train-single-frame          # also train the Nw = 1 baseline
    dvp eval --model model/ -o eval/ --single-frame-model model_nw1/

Writes ``eval/report.json`` (PSNR, SSIM, L1, temporal error for the model, nearest-neighbour retrieval and the
single-frame network) and ``eval/contact_sheet.png``; prints the JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .options import add_batch, add_device, add_overwrite, refuse_existing, resolve_device

NAME = "eval"
HELP = "score a model on held-out frames against nearest-neighbour and single-frame baselines"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="model folder written by 'dvp train'")
    p.add_argument("-o", "--output", type=Path, required=True, help="report folder")
    p.add_argument("--single-frame-model", type=Path, help="a model trained with --nw 1 on the same track")
    p.add_argument("--train-single-frame", action="store_true", help="train the Nw = 1 baseline the same way")
    add_batch(p, 8, "frames per forward pass (8)")
    add_overwrite(p, "a report")
    add_device(p)


def run(args: argparse.Namespace) -> int:
    from dvp_engine.pipeline.evaluation import evaluate_model

    refuse_existing([args.output / "report.json", args.output / "contact_sheet.png"], args.overwrite)
    report = evaluate_model(
        args.model,
        args.output,
        single_frame_model=args.single_frame_model,
        train_single_frame=args.train_single_frame,
        device=resolve_device(args.device),
        batch=args.batch,
    )
    print(json.dumps({k: report[k] for k in ("model", "nearest_neighbour", "single_frame")}, indent=1))
    return 0
