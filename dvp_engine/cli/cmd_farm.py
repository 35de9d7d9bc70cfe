"""Write the ``dvp reenact`` job for a render farm: an Open Job Description bundle or an OpenCue job spec.

Examples::

    dvp farm openjd -o bundle/ --source /show/actor.mp4 --target /show/portrait.mp4 --mode full \\
        --job-dir /show/dvp/job1 --chunk 10
    deadline bundle submit bundle/                 # AWS Deadline Cloud
    openjd run bundle/template.yaml                # or run it here, step by step, with openjd-cli

    dvp farm opencue -o job.xml --source /show/actor.mp4 --target /show/portrait.mp4 --job-dir /show/dvp/job1

The steps (track target and source, train, transfer, render in chunks, preview) are plain ``dvp`` commands
over one job folder on shared storage and produce what ``dvp reenact -o JOB_DIR`` with the same settings does.
Paths must be absolute (farm hosts do not share this working directory). ``--track-chunk N`` tracks long
plates in chunks of N frames on many hosts (identity solved once, then merged; within a stated tolerance of
one process, see docs/farm.md). See docs/farm.md for submitting and what each step needs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .common import UsageError
from .options import add_frames, add_framing, float_type

NAME = "farm"
HELP = "write the reenact job as an OpenJD bundle (Deadline Cloud) or an OpenCue job spec"
log = logging.getLogger("dvp")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "format", choices=("openjd", "opencue"), help="openjd: a job bundle folder; opencue: a spec XML"
    )
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="bundle folder (openjd) or .xml file (opencue)"
    )
    p.add_argument("--source", required=True, help="source actor video (absolute path)")
    p.add_argument("--target", required=True, help="target actor video (absolute path)")
    p.add_argument("--job-dir", type=Path, required=True, help="the job folder on shared storage (absolute)")
    p.add_argument("--mode", default="full", choices=("full", "expression", "gaze", "pose", "dubbing"))
    p.add_argument("--model", type=Path, help="a trained target model folder (skip training)")
    add_frames(p, "output frames to render (default all)")
    p.add_argument("--track-frames", help="frames of the videos to track (default all)")
    p.add_argument("--source-reference", type=int, help="neutral frame of the source (default: automatic)")
    p.add_argument("--target-reference", type=int, help="neutral frame of the target (default: automatic)")
    p.add_argument(
        "--curves", type=Path, action="append", default=[], help="curve file(s) applied after transfer"
    )
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="CHANNEL=VALUE[@FIRST-LAST]")
    p.add_argument("--size", type=int, default=256, help="network resolution when training (256)")
    p.add_argument("--iters", type=int, default=31000, help="training iterations (31000)")
    p.add_argument(
        "--time-limit",
        type=float_type(0.0, 10080.0, lo_open=True),
        metavar="MINUTES",
        help="the train task stops after this many minutes of training, checkpointed, and the render steps use "
        "that model (per attempt: a retried task resumes and may train as long again)",
    )
    p.add_argument("--batch", type=int, default=16, help="training batch (16)")
    p.add_argument("--ngf", type=int, default=64, help="generator base width (64)")
    p.add_argument("--seed", type=int, default=0)
    add_framing(p)
    p.add_argument("--no-preview", dest="preview", action="store_false", help="no preview step")
    p.add_argument("--chunk", type=int, default=10, help="frames per render task (10)")
    p.add_argument(
        "--track-chunk", type=int, default=0, help="frames per tracking task (0, default: one task per video)"
    )
    p.add_argument(
        "--train-gpus",
        type=int,
        default=1,
        help="GPUs of the training host; more than 1 trains with DDP (torchrun)",
    )
    p.add_argument("--no-gpu", dest="gpu", action="store_false", help="no GPU host requirements (a CPU farm)")
    p.add_argument(
        "--device", default="auto", help="--device of every step (auto: CUDA when the host has it)"
    )
    p.add_argument("--dvp", default="dvp", help="the dvp command on the farm hosts (default: dvp on PATH)")
    p.add_argument("--name", default="", help="job name (default: dvp reenact <target> (<mode>))")
    p.add_argument("--show", default="dvp", help="OpenCue show (opencue only)")
    p.add_argument("--shot", default="reenact", help="OpenCue shot (opencue only)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle or spec")


def run(args: argparse.Namespace) -> int:
    from dvp_engine.farm.job import FarmSettings, FarmSettingsError, describe_job

    settings = FarmSettings(
        source=args.source,
        target=args.target,
        out=args.job_dir,
        mode=args.mode,
        model=args.model,
        frames=args.frames,
        track_frames=args.track_frames,
        source_reference=args.source_reference,
        target_reference=args.target_reference,
        curves=args.curves,
        sets=args.sets,
        size=args.size,
        iters=args.iters,
        time_limit=args.time_limit,
        batch=args.batch,
        ngf=args.ngf,
        seed=args.seed,
        framing=args.framing,
        preview=args.preview,
        chunk=args.chunk,
        track_chunk=args.track_chunk,
        train_gpus=args.train_gpus,
        gpu=args.gpu,
        device=args.device,
        dvp=args.dvp,
        name=args.name,
    )
    try:
        job = describe_job(settings)
    except FarmSettingsError as exc:
        raise UsageError(str(exc)) from None  # the message names the path
    if args.format == "openjd":
        from dvp_engine.farm.openjd import write_bundle

        tpl, vals = write_bundle(job, args.output, overwrite=args.overwrite)
        log.info("wrote %s and %s (%d steps)", tpl, vals, len(job.steps))
    else:
        from dvp_engine.farm.opencue import write_spec

        if args.output.suffix != ".xml":
            raise UsageError("the OpenCue job spec must be an .xml file", path=args.output)
        spec = write_spec(job, args.output, overwrite=args.overwrite, show=args.show, shot=args.shot)
        log.info("wrote %s (%d layers)", spec, len(job.steps))
    return 0
