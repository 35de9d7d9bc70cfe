"""Tracker benchmark: speed (ms/frame) and landmark reprojection error on the clips in ../shared/data.

Prints one JSON document on stdout. Per clip, ``--frames`` contiguous frames from the clip's middle are tracked
(landmarks, identity mode over ``--keyframes`` keyframes, tracking mode), on the CPU and, when CuPy and a CUDA
GPU are present, on CUDA as well (batched frames; same landmarks), with the largest parameter difference
between the two. Landmark error: RMS distance between the detected dlib-68 landmarks (jaw contour included,
weighted 0.2 as in the fit) and the projected model landmarks, over the inter-ocular distance (outer eye corners).

    .venv/bin/python benchmarks/bench_tracker.py [--frames 40] [--keyframes 5] [--clips wda_kh lp_d3]

Paper (GPU, 2018): 250 ms/frame tracking mode, 670 ms/frame with identity.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dvp_engine.facemodel import load_default_model  # noqa: E402
from dvp_engine.io.video import open_video  # noqa: E402
from dvp_engine.tracking.pipeline import default_landmark_source, pick_keyframes, read_source, source_name  # noqa: E402
from dvp_engine.tracking.tracker import Tracker, TrackerSettings  # noqa: E402
from dvp_engine.tracking.xp import cuda_available  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def stats(a: np.ndarray) -> dict[str, float]:
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {}
    return {
        "mean": round(float(a.mean()), 4),
        "median": round(float(np.median(a)), 4),
        "max": round(float(a.max()), 4),
    }


def bench_clip(path: Path, n_frames: int, keyframes: int, model, devices: list[str]) -> dict:
    with open_video(path) as v:
        total = v.n_frames
        w, h = v.size
    first = max(1, total // 2 - n_frames // 2)
    numbers, images, _ = read_source(path, range(first, first + n_frames))
    out: dict = {"frames": f"{numbers[0]}-{numbers[-1]}", "n_frames": len(numbers), "size": [w, h]}

    source = default_landmark_source()
    t0 = time.perf_counter()
    obs = [source(img) for img in images]
    out["landmarks_ms_per_frame"] = round(1000 * (time.perf_counter() - t0) / len(images), 2)
    out["landmark_source"] = source_name(source)
    out["faces_found"] = int(sum(o.found for o in obs))

    keys = pick_keyframes(obs, keyframes)
    results = {}
    for device in devices:
        st = TrackerSettings(device=device, batch_size=4 if device == "cpu" else 64)
        tracker = Tracker(model, w, h, st)
        Tracker(model, w, h, st).track(images[:4], obs[:4])  # warm-up (imports, kernels, allocations)
        t0 = time.perf_counter()
        tracker.fit_identity([images[i] for i in keys], [obs[i] for i in keys])
        t_id = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = tracker.track(images, obs)
        t_tr = time.perf_counter() - t0
        results[device] = res
        out[device] = {
            "tracking_ms_per_frame": round(1000 * t_tr / len(images), 2),
            "identity_ms_per_keyframe": round(1000 * t_id / max(len(keys), 1), 2),
            "identity_keyframes": len(keys),
            # the paper's "all parameters" figure: one frame of tracking plus one keyframe's share of identity
            "identity_plus_tracking_ms_per_frame": round(
                1000 * (t_tr / len(images) + t_id / max(len(keys), 1)), 2
            ),
            "landmark_error_over_iod": stats(res.landmark_error),
            "photometric_l1": stats(res.photo_error),
            "confidence": stats(res.confidence) | {"min": round(float(res.confidence.min()), 4)},
            "valid_fraction": round(float(res.valid.mean()), 4),
        }
    if "cpu" in results and "cuda" in results:
        out["cuda_vs_cpu_max_abs_param_diff"] = float(
            np.abs(results["cuda"].params - results["cpu"].params).max()
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--keyframes", type=int, default=5)
    ap.add_argument("--clips", nargs="*", default=None)
    ap.add_argument("--no-cuda", action="store_true")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(json.dumps({"error": f"no clips at {DATA}"}))
        return
    clips = sorted(DATA.glob("*.mp4"))
    if args.clips:
        clips = [c for c in clips if c.stem in args.clips]
    devices = ["cpu"] + (["cuda"] if cuda_available() and not args.no_cuda else [])
    model = load_default_model()
    report: dict = {
        "benchmark": "tracker",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "devices": devices},
        "settings": TrackerSettings().as_dict(),
        "paper_ms_per_frame": {"tracking": 250, "identity": 670},
        "target_ms_per_frame": {"tracking_cpu_2_cores": 60, "tracking_h100_batched": 5},
        "clips": {},
    }
    for clip in clips:
        report["clips"][clip.stem] = bench_clip(clip, args.frames, args.keyframes, model, devices)
    cpu = [c["cpu"]["tracking_ms_per_frame"] for c in report["clips"].values()]
    report["summary"] = {"cpu_tracking_ms_per_frame_mean": round(float(np.mean(cpu)), 2) if cpu else None}
    if "cuda" in devices:
        gpu = [c["cuda"]["tracking_ms_per_frame"] for c in report["clips"].values()]
        report["summary"]["cuda_tracking_ms_per_frame_mean"] = round(float(np.mean(gpu)), 2)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
