"""Eyes benchmark (JSON on stdout): calibrated gaze on synthetic actors, at-lens gaze, pupils and blinks against
MediaPipe on the clips in ../shared/data.

1. **synthetic**: ``--actors`` actors, each with random eyeball offsets from the model's centres (+-2 mm across,
   +-1.5 mm in depth), ``--synthetic-frames`` renders each (random head poses; 80 % of the frames look into the
   lens, the rest anywhere within +-15 degrees): gaze bias (mean error per axis, worst actor) and RMS against
   the known gaze, and the error of the calibrated eyeball centres.
2. **clips** (``--clips``, ``--frames``): the clip tracked with the default settings (``camera`` calibration);
   median gaze per axis per eye, vergence (median of right yaw - left yaw), the median gaze minus the
   direction of the lens (what the calibration assumes), the calibration itself; the tracker's pupils against
   MediaPipe's iris centres (% of the eye width) and its blink channels against MediaPipe's eyelid aperture
   (Pearson r, blinks seen; see ``benchmarks/eyes_mediapipe.py``); and the tracked head rotation against the
   rotation of the model's mean mesh fitted to MediaPipe's mesh (an independent head pose), with the direction
   of the lens in the head frame under that pose (what an at-lens gaze reads if the head pose is MediaPipe's).

    .venv/bin/python benchmarks/bench_eyes.py --clips wda_kh --frames 1-200 > benchmarks/results/x_eyes.json
    .venv/bin/python benchmarks/bench_eyes.py --clips lp_d6 --frames 1-300 --actors 0

Targets (issue 14): synthetic bias <= 1 deg and RMS <= 2 deg; at-lens median gaze within +-3 deg per axis per
eye and vergence <= 4 deg; pupil vs iris mean <= 3 % of the eye width; blink r >= 0.8 and every blink seen.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from eyes_mediapipe import MediaPipeEyes, blink_agreement, mesh_head_rotation, pupil_errors  # noqa: E402

from dvp_engine.core import layout  # noqa: E402
from dvp_engine.core.gaze import look_at_angles  # noqa: E402
from dvp_engine.core.rotation import euler_to_matrix, matrix_to_euler  # noqa: E402
from dvp_engine.facemodel import load_default_model  # noqa: E402
from dvp_engine.tracking.synthetic import synthetic_scene  # noqa: E402
from dvp_engine.tracking.tracker import Tracker, TrackerSettings, from_packed  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def r(x: float, n: int = 2) -> float:
    return round(float(x), n)


def synthetic(model, actors: int, frames: int, size: int) -> dict:
    rng = np.random.default_rng(14)
    per = []
    all_err = []
    for a in range(actors):
        off = np.column_stack([rng.uniform(-0.002, 0.002, (2, 2)), rng.uniform(-0.0015, 0.0015, 2)])
        packed, images, obs, intr = synthetic_scene(model, frames, size, seed=100 + a, eye_offsets=off,
                                                    at_camera=0.8)  # fmt: skip
        st = TrackerSettings(identity_keyframes=0, eye_calibration_min_frames=min(30, frames // 2))
        res = Tracker(model, size, size, st, intr).track(images, obs)
        err = np.rad2deg(from_packed(res.params)[1] - from_packed(packed)[1])
        all_err.append(err)
        true = np.stack([model.eyeball_left_center, model.eyeball_right_center]) + off
        per.append({
            "offsets_mm": np.round(off * 1000, 2).tolist(),
            "calibration": res.eyes.method if res.eyes else None,
            "centre_error_mm": np.round((res.eyes.centres - true) * 1000, 2).tolist() if res.eyes else None,
            "gaze_bias_deg": np.round(err.mean(axis=0), 2).tolist(),
            "gaze_rms_deg": r(np.sqrt((err**2).mean())),
        })  # fmt: skip
    e = np.concatenate(all_err)
    return {
        "actors": actors,
        "frames_per_actor": frames,
        "size": size,
        "worst_gaze_bias_deg": r(max(np.abs(p["gaze_bias_deg"]).max() for p in per)),
        "gaze_rms_deg": r(np.sqrt((e**2).mean())),
        "per_actor": per,
    }


class Recorder:
    """The default landmark source, keeping every observation (pupils, landmarks) for the comparison."""

    def __init__(self) -> None:
        from dvp_engine.tracking.pipeline import default_landmark_source

        self.src = default_landmark_source()
        self.obs: list = []

    def __call__(self, img):
        o = self.src(img)
        self.obs.append(o)
        return o


def clip(model, name: str, frames: str | None) -> dict:
    from dvp_engine.tracking.pipeline import read_source, track_video

    path = DATA / f"{name}.mp4"
    if not path.is_file():
        return {"skipped": f"{path} not found"}
    rec = Recorder()
    t0 = time.perf_counter()
    track = track_video(path, frames=frames, landmark_source=rec)
    t_track = time.perf_counter() - t0
    ch = track.channels
    gaze = np.stack([ch[g] for g in layout.GAZE], 1).astype(np.float64)
    valid = ch[layout.VALID] > 0.5
    rot = euler_to_matrix(np.stack([ch[n] for n in layout.HEAD_ROTATION], 1))
    trans = np.stack([ch[n] for n in layout.HEAD_TRANSLATION], 1)
    centres = track.eyes.centres if track.eyes is not None else None
    lens = (
        look_at_angles(rot, trans, centres, np.zeros(3))
        if centres is not None
        else np.full_like(gaze, np.nan)
    )
    med = np.median(gaze[valid], axis=0)
    out: dict = {
        "frames": f"{int(track.frames[0])}-{int(track.frames[-1])}",
        "tracked_seconds": r(t_track, 1),
        "eye_calibration": None if track.eyes is None else {
            "method": track.eyes.method, "frames_used": track.eyes.frames_used, "note": track.eyes.note,
            "offsets_mm": None if track.eyes.offsets is None else np.round(track.eyes.offsets * 1000, 2).tolist(),
        },
        "median_gaze_deg": dict(zip(layout.GAZE, np.round(med, 2).tolist(), strict=True)),
        "vergence_deg": r(np.median(gaze[valid, 2] - gaze[valid, 0])),
        "median_gaze_minus_lens_direction_deg": dict(
            zip(layout.GAZE, np.round(np.median(gaze[valid] - lens[valid], axis=0), 2).tolist(), strict=True)
        ),
        "median_head_rotation_deg": np.round(np.median(rot_euler(ch)[valid], axis=0), 2).tolist(),
        "median_head_depth_m": r(np.median(trans[valid, 2]), 3),
    }  # fmt: skip
    # MediaPipe on the same frames
    try:
        mp = MediaPipeEyes()
    except ImportError as exc:
        out["mediapipe"] = {"skipped": f"mediapipe not installed ({exc})"}
        return out
    numbers, images, _ = read_source(path, [int(f) for f in track.frames])
    n = len(numbers)
    iris = np.full((n, 2, 2), np.nan)
    ap = np.full((n, 2), np.nan)
    mp_rot = np.full((n, 3, 3), np.nan)
    mesh = np.asarray(model.vertices(), np.float64).reshape(-1, 3)
    t0 = time.perf_counter()
    for i, img in enumerate(images):
        m = mp(img)
        if m is not None:
            iris[i], ap[i] = m["iris"], m["aperture"]
            mp_rot[i] = mesh_head_rotation(m["points"], mesh, trans[i])
    mp.close()
    have = valid & np.isfinite(mp_rot[:, 0, 0])
    if have.any():
        mp_euler = matrix_to_euler(mp_rot[have])
        # the gaze an actor looking into the lens would have under MediaPipe's head pose (same eyeball centres)
        mp_lens = (
            look_at_angles(mp_rot[have], trans[have], centres, np.zeros(3)) if centres is not None else None
        )
        out["head_pose_vs_mediapipe_mesh"] = {
            "frames": int(have.sum()),
            "median_mediapipe_rotation_deg": np.round(np.median(mp_euler, axis=0), 2).tolist(),
            "median_tracker_minus_mediapipe_deg": np.round(
                np.median(rot_euler(ch)[have] - mp_euler, axis=0), 2
            ).tolist(),
            "median_lens_direction_under_mediapipe_pose_deg": None if mp_lens is None else dict(
                zip(layout.GAZE, np.round(np.median(mp_lens, axis=0), 2).tolist(), strict=True)
            ),
        }  # fmt: skip
    lm = np.stack([o.landmarks if o.found else np.full((68, 2), np.nan) for o in rec.obs])
    pup = np.stack([o.pupils if o.pupils is not None else np.full((2, 2), np.nan) for o in rec.obs])
    pconf = np.stack([np.asarray(o.pupil_confidence, np.float64) for o in rec.obs])
    err = pupil_errors(pup, pconf, lm, iris) * 100
    # the pupils the tracker leans on: its pupil term is weighted by the confidence and the eye calibration
    # uses pupils of confidence >= 0.2 (a slit of an eye looking down still finds a "pupil" of low confidence)
    err_conf = pupil_errors(pup, pconf, lm, iris, min_conf=0.2) * 100
    blink = np.stack([ch[b] for b in layout.BLINK], 1).astype(np.float64)
    out["mediapipe"] = {
        "seconds": r(time.perf_counter() - t0, 1),
        "frames_with_face": int(np.isfinite(ap[:, 0]).sum()),
        "pupil_error_pct_eye_width": {
            name: {"mean": r(np.nanmean(err[:, k])), "p95": r(np.nanpercentile(err[:, k], 95)),
                   "frames": int(np.isfinite(err[:, k]).sum())}
            for k, name in enumerate(("left", "right"))
        },
        "pupil_error_pct_mean_both": r(np.nanmean(err)),
        "pupil_error_pct_mean_both_confidence_over_0.2": r(np.nanmean(err_conf)),
        "pupil_share_confidence_over_0.2": r(np.mean(np.isfinite(err_conf)) / max(np.mean(np.isfinite(err)), 1e-9)),
        "blink": blink_agreement(blink, ap),
    }  # fmt: skip
    return out


def rot_euler(ch: dict) -> np.ndarray:
    return np.stack([ch[n] for n in layout.HEAD_ROTATION], 1).astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="*", default=["wda_kh"])
    ap.add_argument("--frames", default=None, help="frame range per clip (default: all)")
    ap.add_argument("--actors", type=int, default=4)
    ap.add_argument("--synthetic-frames", type=int, default=40)
    ap.add_argument("--size", type=int, default=192)
    args = ap.parse_args()
    model = load_default_model()
    doc: dict = {
        "benchmark": "bench_eyes",
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    if args.actors > 0:
        doc["synthetic"] = synthetic(model, args.actors, args.synthetic_frames, args.size)
    doc["clips"] = {c: clip(model, c, args.frames) for c in args.clips}
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
