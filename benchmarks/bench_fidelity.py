"""Fidelity benchmark: track -> train under a named budget -> ``dvp eval``, for every clip; one JSON file.

For each clip of ``../shared/data`` and the bundled sample (``--clips`` picks some by name: ``wda_kh lp_d3``;
``sample`` is the bundled copy of wda_kh), under each ``--budget`` (names in
:data:`dvp_engine.pipeline.budgets.BUDGETS`: ``demo`` is exactly what ``make demo`` trains, ``gpu-5min`` five
minutes of training on one GPU, ``tiny`` seconds, for tests):

1. ``dvp track`` the whole clip (reused from ``--work`` when already there);
2. ``dvp train`` under the budget (a time-bounded budget passes ``--time-limit``: the iterations it reached are
   recorded), plus any ``--train-arg`` (e.g. ``--train-arg=--arch=paper``);
3. ``dvp eval`` on the held-out last 10 % of the clip (model, nearest-neighbour retrieval, mean training frame;
   ``--single-frame`` adds the Nw = 1 network trained the same way).

Writes one row per clip and budget (the eval summary per method, the paths of the full reports, the wall time
of each stage) and the machine to ``--out`` (default ``benchmarks/results/<machine>_fidelity.json``), and prints
the wall time of each stage as it finishes.

    .venv/bin/python benchmarks/bench_fidelity.py --budget demo --clips wda_kh
    python benchmarks/bench_fidelity.py --budget gpu-5min --device cuda --train-arg=--arch=paper
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dvp_engine.cli.main import main as dvp  # noqa: E402
from dvp_engine.core.atomic import write_text_atomic  # noqa: E402
from dvp_engine.core.errors import DvpError  # noqa: E402
from dvp_engine.pipeline.budgets import BUDGETS, TrainBudget  # noqa: E402
from dvp_engine.pipeline.evaluation import MIN_FRAMES  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SAMPLE = REPO / "dvp_engine" / "data" / "sample" / "wda_kh.mp4"


def available_clips() -> dict[str, Path]:
    """``{name: path}``: the bundled sample and every movie in ../shared/data (when present)."""
    clips = {"sample": SAMPLE}
    if DATA.is_dir():
        clips.update({p.stem: p for p in sorted(DATA.glob("*.mp4"))})
    return clips


def machine(device: str) -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _run(args: list[str], stage: str, clip: str) -> None:
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the benchmark's JSON alone
        code = dvp([*args, "-q"])
    if code:
        raise DvpError(f"{stage} failed (dvp exit code {code}); see the messages above", path=clip)


def _log_ms_per_iter(model: Path) -> float | None:
    """Mean ``ms_per_iter`` of the model's training log (None when there is none)."""
    log = model / "log.jsonl"
    if not log.is_file():
        return None
    vals = [json.loads(line).get("ms_per_iter") for line in log.read_text().splitlines() if line.strip()]
    vals = [float(v) for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def train(
    track: Path, clip: Path, model: Path, budget: TrainBudget, extra: list[str], device: str
) -> dict[str, Any]:
    """Train under the budget (a time-bounded one stops at its time limit); returns ``{"iters", "seconds",
    "ms_per_iter", "stopped_by_time"}``: the iterations reached, the wall time of the whole ``dvp train`` (data
    preparation included), the mean time per iteration from the log and whether the time limit ended it."""
    base = ["train", "--track", str(track), "--frames-from", str(clip), "-o", str(model), "--device", device,
            "--preview-every", "0", "--checkpoint-every", "0"]  # fmt: skip
    t0 = time.perf_counter()
    _run([*base, *budget.dvp_train_args(), *extra], "training", str(clip))
    seconds = round(time.perf_counter() - t0, 2)
    state = json.loads((model / "latest.json").read_text())
    reached = int(state["iteration"])
    ms = _log_ms_per_iter(model)
    return {
        "iters": reached,
        "seconds": seconds,
        "ms_per_iter": None if ms is None else round(ms, 1),
        "stopped_by_time": reached < budget.iters,
    }


def bench_clip(
    name: str,
    clip: Path,
    budget: TrainBudget,
    work: Path,
    extra: list[str],
    device: str,
    single_frame: bool,
    controllability: bool,
    frames: str | None = None,
) -> dict[str, Any]:
    """One row: track (reused if there), train, eval; wall time of each stage. ``frames``: a range of the clip
    to use instead of all of it."""
    from dvp_engine.tracking.pipeline import count_frames

    n = count_frames(clip, frames)
    if n is not None and n < MIN_FRAMES:
        what = f"frames {frames} of the clip are" if frames else "the clip has"
        raise DvpError(f"{what} {n} frames; the benchmark needs at least {MIN_FRAMES}", path=clip)
    folder = work / (name if not frames else f"{name}_{frames}")
    folder.mkdir(parents=True, exist_ok=True)
    track = folder / "track.npz"
    seconds: dict[str, Any] = {}
    t0 = time.perf_counter()
    if track.is_file():
        seconds["track"] = "reused"
    else:
        sel = ["--frames", frames] if frames else []
        _run(["track", str(clip), "-o", str(track), "--device", device, *sel], "tracking", str(clip))
        seconds["track"] = round(time.perf_counter() - t0, 2)
    took = seconds["track"] if seconds["track"] == "reused" else f"{seconds['track']} s"
    print(f"[{name} {budget.name}] track: {took}", file=sys.stderr, flush=True)
    tag = budget.name + "".join(a.replace("-", "").replace("=", "_") for a in extra)
    model = folder / f"model_{tag}"
    trained = train(track, clip, model, budget, extra, device)
    seconds["train"] = trained["seconds"]
    print(
        f"[{name} {budget.name}] train: {seconds['train']} s ({trained['iters']} iterations)", file=sys.stderr
    )
    t0 = time.perf_counter()
    out = folder / f"eval_{tag}"
    args = ["eval", "--model", str(model), "-o", str(out), "--device", device]
    if single_frame:
        args.append("--train-single-frame")
    if not controllability:
        args.append("--no-controllability")
    _run(args, "evaluation", str(clip))
    seconds["eval"] = round(time.perf_counter() - t0, 2)
    print(f"[{name} {budget.name}] eval: {seconds['eval']} s", file=sys.stderr, flush=True)
    report = json.loads((out / "report.json").read_text())
    return {
        "clip": name,
        "path": str(clip),
        "frames": n,
        "frame_range": frames,
        "budget": budget.name,
        "train_args": [*budget.dvp_train_args(), *extra],  # as run (a time limit may stop it sooner)
        "training": trained,
        "held_out_frames": len(report["held_out_frames"]),
        "summary": report["summary"],
        "report": str(out / "report.json"),
        "contact_sheet": report["contact_sheet"],
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", nargs="+", default=["demo"], choices=sorted(BUDGETS), help="budgets to train")
    p.add_argument("--clips", nargs="+", help="clip names (default: all; 'sample' is the bundled copy)")
    p.add_argument("--train-arg", action="append", default=[], metavar="ARG",
                   help="extra 'dvp train' argument, repeatable, e.g. --train-arg=--arch=paper")  # fmt: skip
    p.add_argument("--single-frame", action="store_true", help="also train and score the Nw = 1 baseline")
    p.add_argument("--no-controllability", action="store_true", help="skip re-tracking in eval (faster)")
    p.add_argument("--frames", metavar="RANGE", help="use only these frames of each clip, e.g. 1-40 (tests)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (tracking, training and eval)")
    p.add_argument("--work", type=Path, default=REPO / "bench_fidelity_work", help="tracks, models, reports")
    p.add_argument("--out", type=Path, help="JSON file (default benchmarks/results/<machine>_fidelity.json)")
    args = p.parse_args(argv)
    clips = available_clips()
    names = args.clips or [c for c in clips if c != "sample" or "wda_kh" not in clips]
    unknown = [c for c in names if c not in clips]
    if unknown:
        p.error(f"unknown clips {unknown}; available: {', '.join(clips)}")
    cpu_tag = f"cpu-{os.cpu_count()}core"
    out = (
        args.out
        or REPO / "benchmarks" / "results" / f"{cpu_tag if args.device == 'cpu' else 'gpu'}_fidelity.json"
    )
    result: dict[str, Any] = {"benchmark": "fidelity", "machine": machine(args.device), "rows": []}
    for name in names:
        for b in args.budget:
            try:
                row = bench_clip(
                    name, clips[name], BUDGETS[b], args.work, list(args.train_arg), args.device,
                    args.single_frame, not args.no_controllability, args.frames,
                )  # fmt: skip
            except DvpError as exc:
                print(f"bench_fidelity: error: {exc}", file=sys.stderr)
                return 1
            result["rows"].append(row)
            out.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out, json.dumps(result, indent=1) + "\n")  # after every row: nothing is lost
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
