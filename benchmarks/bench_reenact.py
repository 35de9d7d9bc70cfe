"""End-to-end timing of the `make demo` job (track, train, transfer, render, preview), JSON on stdout.

    python benchmarks/bench_reenact.py                 # the demo's settings on this machine
    python benchmarks/bench_reenact.py --iters 50      # a quicker run (training time scales linearly)

Per step seconds come from the job state (`.dvp-job.json`), so they are the wall time of each resumable step.
With CUDA it also times a 1000-frame reenactment excluding training (transfer + conditioning + network +
EXR writing) with the trained model; the issue's target is <= 30 s on an H100.

    python benchmarks/bench_reenact.py --render-only 1000 --device cuda   # GPU machine: no clip, no training

``--render-only N`` skips the demo job: it times the same transfer + conditioning + network + EXR steps for an
N-frame synthetic target track (smooth head motion, speech-like expressions, gaze; a 512 x 512 plate) through a
256 x 256 paper-size generator with random weights (speed does not depend on the weights), so it needs neither
the video decoder nor dlib nor a trained model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=900)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--keep", type=Path, help="job folder to keep (default: a temporary one)")
    p.add_argument("--render-only", type=int, default=0, metavar="N", help="time an N-frame render only")
    p.add_argument("--device", default="auto", help="--render-only: cpu, cuda or auto (default)")
    p.add_argument("--batch-render", type=int, default=64, help="--render-only: frames per network pass")
    args = p.parse_args()
    if args.render_only:
        print(json.dumps(bench_render_only(args.render_only, args.device, args.batch_render), indent=1))
        return 0

    import torch

    from dvp_engine.cli.main import main as dvp
    from dvp_engine.pipeline.steps import JobState
    from tools.demo import HELD_OUT, SAMPLE, edit_curves

    out = args.keep or Path(tempfile.mkdtemp(prefix="dvp_bench_"))
    out.mkdir(parents=True, exist_ok=True)
    curves = out / "edits.json"
    edit_curves().save(curves)
    t0 = time.perf_counter()
    code = dvp(
        ["reenact", "--source", str(SAMPLE), "--target", str(SAMPLE), "--curves", str(curves),
         "--frames", f"{HELD_OUT[0]}-{HELD_OUT[1]}", "--size", str(args.size), "--ngf", str(args.ngf),
         "--batch", "4", "--iters", str(args.iters), "--device", "cpu", "-o", str(out), "-q"]
    )  # fmt: skip
    total = time.perf_counter() - t0
    if code:
        return code
    state = JobState.load(out).done
    cache_state = JobState.load(out / "model" / "cache").done
    result: dict[str, object] = {
        "benchmark": "reenact_demo",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "settings": {"frames": 200, "size": args.size, "ngf": args.ngf, "iters": args.iters, "batch": 4},
        "seconds_total": round(total, 2),
        "seconds_per_step": {k: v["seconds"] for k, v in state.items()},
        "seconds_training_data": {k: v["seconds"] for k, v in cache_state.items()},
    }
    log = [
        json.loads(line) for line in (out / "model" / "log.jsonl").read_text().splitlines() if line.strip()
    ]
    ms = [r["ms_per_iter"] for r in log if "ms_per_iter" in r]
    if ms:
        result["train_ms_per_iter"] = round(sum(ms) / len(ms), 1)
    held = [r["heldout_l1"] for r in log if "heldout_l1" in r]
    if held:
        result["heldout_l1_last"] = round(held[-1], 4)
    if torch.cuda.is_available():
        result["cuda_1000_frames"] = bench_cuda(out)
    print(json.dumps(result, indent=1))
    return 0


def bench_cuda(job: Path) -> dict[str, object]:
    """1000-frame transfer + render on CUDA with the trained model (no training), in seconds."""
    import numpy as np

    from dvp_engine.core import FaceTrack

    target = FaceTrack.load(job / "work" / "target.npz")
    reps = int(np.ceil(1000 / target.n_frames))
    idx = np.concatenate([np.arange(target.n_frames) if r % 2 == 0 else np.arange(target.n_frames)[::-1]
                          for r in range(reps)])[:1000]  # fmt: skip
    long = target.replace(frames=np.arange(1, 1001), channels={k: v[idx] for k, v in target.channels.items()})
    timing = time_render(job / "model", long, "cuda", 64)
    return {"seconds": timing["seconds_total_excluding_training"], "gpu": timing["gpu"]}


def synthetic_track(n: int, width: int = 512, height: int = 512):  # noqa: ANN201
    """An n-frame target track: a slow head sway, speech-like expression curves, wandering gaze, blinks."""
    import numpy as np

    from dvp_engine.core import FaceTrack, layout
    from dvp_engine.facemodel import load_default_model
    from dvp_engine.tracking.tracker import default_intrinsics

    model = load_default_model()
    t = np.arange(n) / 25.0
    rng = np.random.default_rng(0)
    L = layout.FRAME_LAYOUT
    p = np.zeros((n, layout.FRAME_SIZE))
    p[:, L["rotation"]] = np.deg2rad(
        np.stack([4 * np.sin(0.7 * t), 12 * np.sin(0.4 * t), 3 * np.sin(0.3 * t)], 1)
    )
    p[:, L["translation"]] = np.stack([0.01 * np.sin(0.2 * t), 0.005 * np.sin(0.5 * t), 0.7 + 0 * t], 1)
    freq = rng.uniform(0.5, 4.0, 64)
    p[:, L["expression"]] = (
        np.sin(np.outer(t, freq) + rng.uniform(0, 6.3, 64)) * np.asarray(model.expr_std) * 0.5
    )
    sh = np.zeros(27)
    sh[[0, 9, 18]] = 0.9
    p[:, L["sh"]] = sh
    p[:, L["gaze"]] = np.deg2rad(10 * np.sin(np.outer(t, [0.9, 0.6, 0.9, 0.6])))
    p[:, L["blink"]] = (np.sin(2.1 * t) > 0.97)[:, None] * 0.9
    return FaceTrack.from_params(
        np.arange(1001, 1001 + n), p, rate=25, width=width, height=height,
        intrinsics=default_intrinsics(width, height),
    )  # fmt: skip


def untrained_model(model_dir: Path, track, size: int = 256, ngf: int = 64) -> None:  # noqa: ANN001
    """A model folder holding a paper-size generator with the paper's random initialisation."""
    import torch

    from dvp_engine.network.checkpoint import write_checkpoint
    from dvp_engine.network.discriminator import init_weights
    from dvp_engine.network.generator import GeneratorConfig, SpaceTimeGenerator
    from dvp_engine.pipeline.portrait import Framing, ModelInfo

    cfg = GeneratorConfig(size=size, ngf=ngf)
    g = SpaceTimeGenerator(cfg)
    init_weights(g, generator=torch.Generator().manual_seed(0))
    info = ModelInfo(Framing.centred(track.width, track.height, size), cfg.nw, "synthetic", "synthetic", [], [],
                     track.identity.tolist(), track.reflectance.tolist())  # fmt: skip
    model_dir.mkdir(parents=True, exist_ok=True)
    info.save(model_dir)
    write_checkpoint(
        model_dir, 0, {"generator": (g, cfg.signature())}, {}, {"note": "random weights (speed only)"}
    )


def bench_render_only(n: int, device: str, batch: int) -> dict[str, object]:
    """N-frame transfer + render (conditioning, network, EXR writing) with an untrained paper-size model."""
    import torch

    from dvp_engine.network.infer import resolve_device

    dev = str(resolve_device(device))
    with tempfile.TemporaryDirectory() as d:
        track = synthetic_track(n)
        untrained_model(Path(d) / "model", track)
        timing = time_render(Path(d) / "model", track, dev, batch)
    return {
        "benchmark": "reenact_render_only",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "settings": {"frames": n, "plate": [512, 512], "size": 256, "ngf": 64, "batch": batch, "device": dev},
        **timing,
        "target_seconds_1000_frames_h100": 30,
    }


def time_render(model_dir: Path, track, device: str, batch: int) -> dict[str, object]:  # noqa: ANN001
    """Transfer (full, the track onto itself) + render of every track frame to EXR, after a one-frame warm-up
    (kernels, cuDNN autotuning, allocator); seconds, frames and output size."""
    import torch

    from dvp_engine.pipeline.portrait import render_portrait
    from dvp_engine.transfer import transfer

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with tempfile.TemporaryDirectory() as d:
        render_portrait(model_dir, track, Path(d) / "w" / "f.####.exr", frames=[int(track.frames[0])],
                        device=device, batch=batch)  # fmt: skip
        sync()
        t0 = time.perf_counter()
        new, _ = transfer(track, track, "full")
        t_transfer = time.perf_counter() - t0
        res = render_portrait(model_dir, new, Path(d) / "o" / "f.####.exr", device=device, batch=batch)
        sync()
        total = time.perf_counter() - t0
        size_mb = sum(p.stat().st_size for p in (Path(d) / "o").iterdir()) / 1e6
    out: dict[str, object] = {
        "frames_written": len(res.written),
        "seconds_total_excluding_training": round(total, 2),
        "seconds_transfer": round(t_transfer, 3),
        "ms_per_frame": round(1000 * total / track.n_frames, 2),
        "exr_megabytes": round(size_mb, 1),
    }
    if device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(0)
        out["events"] = res.events
    return out


if __name__ == "__main__":
    sys.exit(main())
