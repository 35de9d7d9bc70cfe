"""Benchmark the conditioning renderer: ms/frame for the three images at 256 and 512, single and batched,
on the CPU and (when present) CUDA, plus peak memory. Prints JSON to stdout.

    .venv/bin/python benchmarks/bench_render.py [--threads 2] [--repeats 20] [--batch-cpu 8] [--batch-cuda 64]

Targets (issue 3): <= 15 ms/frame at 256 on 2 CPU cores; <= 0.5 ms/frame at 256 batched on an H100.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dvp_engine.core import layout  # noqa: E402
from dvp_engine.facemodel import load_default_model  # noqa: E402
from dvp_engine.render.camera import Camera  # noqa: E402
from dvp_engine.render.conditioning import ConditioningRenderer  # noqa: E402
from dvp_engine.render.shading import ambient_sh  # noqa: E402

L = layout.FRAME_LAYOUT
CAMERA = Camera(1200.0, 1200.0, 255.5, 255.5, 512, 512)


def make_params(n: int, seed: int = 0) -> np.ndarray:
    """Plausible frames: head turns within +-20 deg, some expression, gaze and blinks."""
    rng = np.random.default_rng(seed)
    p = np.zeros((n, layout.FRAME_SIZE))
    p[:, L["rotation"]] = np.deg2rad(rng.uniform(-20, 20, size=(n, 3)) * [0.5, 1.0, 0.3])
    p[:, L["translation"]] = np.c_[rng.uniform(-0.01, 0.01, (n, 2)), rng.uniform(0.5, 0.65, n)]
    p[:, L["expression"]] = rng.normal(scale=0.5, size=(n, 64))
    p[:, L["sh"]] = ambient_sh(0.8).numpy()
    p[:, L["gaze"]] = np.deg2rad(rng.uniform(-15, 15, size=(n, 4)))
    p[:, L["blink"]] = rng.uniform(0, 0.3, size=(n, 2))
    return p


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_case(
    renderer: ConditioningRenderer, size: int, batch: int, n_frames: int, repeats: int
) -> dict[str, Any]:
    """Render the same ``n_frames`` frames ``batch`` at a time; ms per frame over ``repeats`` passes."""
    device = renderer.device
    params = torch.as_tensor(make_params(n_frames), dtype=torch.float32, device=device)
    chunks = [params[i : i + batch] for i in range(0, n_frames, batch)]
    zeros = torch.zeros(80, device=device)
    coverage = []
    with torch.inference_mode():
        for c in chunks[:3]:
            renderer.render(c, zeros, zeros, CAMERA, size)
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for c in chunks:
                res = renderer.render(c, zeros, zeros, CAMERA, size)
                coverage.append(res.coverage)
            _sync(device)
            times.append(time.perf_counter() - t0)
    out: dict[str, Any] = {
        "size": size,
        "batch": batch,
        "frames": n_frames,
        "ms_per_frame_median": round(1000 * statistics.median(times) / n_frames, 3),
        "ms_per_frame_min": round(1000 * min(times) / n_frames, 3),
        "face_coverage_mean": round(float(torch.cat(coverage).float().mean()), 3),
    }
    if device.type == "cuda":
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument(
        "--repeats", type=int, default=10, help="passes over the frames (median and min reported)"
    )
    ap.add_argument("--batch-cpu", type=int, default=8, help="frames per call on the CPU (and frames timed)")
    ap.add_argument("--batch-cuda", type=int, default=64, help="frames per call on CUDA (and frames timed)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--no-cpu", action="store_true", help="only CUDA")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_default_model()
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result: dict[str, Any] = {
        "benchmark": "render_conditioning",
        "what": "colour + correspondence + eye-gaze images (one z-buffer pass), parameters to (B, 9, S, S)",
        "mesh": {"vertices": model.n_vertices, "triangles": int(len(model.faces))},
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "cases": [],
    }
    devices = [] if args.no_cpu else [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
        result["cuda_device"] = torch.cuda.get_device_name(0)
    for device in devices:
        renderer = ConditioningRenderer(model, device=device)
        big = args.batch_cuda if device.type == "cuda" else args.batch_cpu
        for size in args.sizes:
            for batch in (1, big):
                case = time_case(renderer, size, batch, big, args.repeats)
                case["device"] = device.type
                result["cases"].append(case)
    result["rss_after_imports_mb"] = round(baseline_rss, 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
