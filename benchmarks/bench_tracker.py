"""Tracker benchmark: speed (ms/frame) and landmark reprojection error on the clips in ../shared/data.

Prints one JSON document on stdout. Per clip, ``--frames`` contiguous frames from the clip's middle are tracked
(landmarks, identity mode over ``--keyframes`` keyframes, tracking mode), on the CPU and, when CuPy and a CUDA
GPU are present, on CUDA as well (batched frames; same landmarks), with the largest parameter difference
between the two. Landmark error: RMS distance between the detected dlib-68 landmarks (jaw contour included,
weighted 0.2 as in the fit) and the projected model landmarks, over the inter-ocular distance (outer eye corners).

    .venv/bin/python benchmarks/bench_tracker.py [--frames 40] [--keyframes 5] [--clips wda_kh lp_d3]
    python benchmarks/bench_tracker.py --synthetic 256 --size 512   # no clips, no dlib, no video decoder

``--synthetic N`` tracks N frames of :func:`dvp_engine.tracking.synthetic.synthetic_scene` (known parameters,
each frame its own random pose, expression, blinks and gaze) instead of clips: the same speed figures plus the
error against the known parameters; it needs neither the clips nor dlib nor PyAV (a GPU machine without them).

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

from dvp_engine.core.rotation import euler_to_matrix  # noqa: E402
from dvp_engine.facemodel import load_default_model  # noqa: E402
from dvp_engine.tracking.pipeline import pick_keyframes  # noqa: E402
from dvp_engine.tracking.synthetic import synthetic_scene  # noqa: E402
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


def time_devices(
    images, obs, keys, w: int, h: int, model, devices: list[str], intrinsics=None
) -> tuple[dict, dict]:
    """Identity mode on ``keys`` then tracking mode on all frames, per device; (figures, results)."""
    out: dict = {}
    results = {}
    for device in devices:
        st = TrackerSettings(device=device, batch_size=4 if device == "cpu" else 64)
        tracker = Tracker(model, w, h, st, intrinsics)
        warm = Tracker(model, w, h, st, intrinsics)  # warm-up: imports, CuPy kernel compiles, allocations
        if keys:
            warm.fit_identity([images[i] for i in keys[:2]], [obs[i] for i in keys[:2]])
        warm.track(images[:4], obs[:4])
        t0 = time.perf_counter()
        tracker.fit_identity([images[i] for i in keys], [obs[i] for i in keys])
        t_id = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = tracker.track(images, obs)
        t_tr = time.perf_counter() - t0
        results[device] = res
        out[device] = {
            "tracking_ms_per_frame": round(1000 * t_tr / len(images), 2),
            "batch_size": st.batch_size,
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
    return out, results


def bench_synthetic(n_frames: int, size: int, keyframes: int, model, devices: list[str]) -> dict:
    """Track a synthetic scene with known parameters: speed and the error against the truth."""
    t0 = time.perf_counter()
    packed, images, obs, intr = synthetic_scene(model, n_frames, size, seed=0)
    out: dict = {
        "n_frames": n_frames,
        "size": [size, size],
        "scene_seconds": round(time.perf_counter() - t0, 1),
    }
    keys = [round(i * (n_frames - 1) / max(keyframes - 1, 1)) for i in range(keyframes)] if keyframes else []
    figures, results = time_devices(images, obs, keys, size, size, model, devices, intr)
    out.update(figures)
    for device, res in results.items():
        err = []
        for f in range(n_frames):
            r_true = euler_to_matrix(packed[f, :3], degrees=False)
            r_fit = euler_to_matrix(res.params[f, :3], degrees=False)
            cos = (np.trace(r_true.T @ r_fit) - 1) / 2
            err.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
        t_err = np.linalg.norm(res.params[:, 3:6] - packed[:, 3:6], axis=1) / np.linalg.norm(
            packed[:, 3:6], axis=1
        )
        out[device]["rotation_error_deg"] = stats(np.asarray(err))
        out[device]["translation_error_rel"] = stats(t_err)
    return out


def bench_clip(path: Path, n_frames: int, keyframes: int, model, devices: list[str]) -> dict:
    from dvp_engine.io.video import open_video
    from dvp_engine.tracking.pipeline import default_landmark_source, read_source, source_name

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
    figures, _ = time_devices(images, obs, keys, w, h, model, devices)
    out.update(figures)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--keyframes", type=int, default=5)
    ap.add_argument("--clips", nargs="*", default=None)
    ap.add_argument("--no-cuda", action="store_true")
    ap.add_argument(
        "--synthetic", type=int, default=0, metavar="N", help="track N synthetic frames, not the clips"
    )
    ap.add_argument("--size", type=int, default=512, help="synthetic image size (default 512, the clips')")
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if cuda_available() and not args.no_cuda else [])
    if args.synthetic:
        model = load_default_model()
        report = {
            "benchmark": "tracker_synthetic",
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "devices": devices},
            "target_ms_per_frame": {"tracking_cpu_2_cores": 60, "tracking_h100_batched": 5},
            "scene": bench_synthetic(args.synthetic, args.size, args.keyframes, model, devices),
        }
        if "cuda" in devices:
            import cupy

            report["machine"]["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        print(json.dumps(report, indent=1))
        return
    if not DATA.is_dir():
        print(json.dumps({"error": f"no clips at {DATA}"}))
        return
    clips = sorted(DATA.glob("*.mp4"))
    if args.clips:
        clips = [c for c in clips if c.stem in args.clips]
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
