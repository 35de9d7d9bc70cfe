"""Landmark and eye benchmark: speed on the CPU, jitter, detection rate and agreement with MediaPipe.

Prints one JSON document on stdout. Per clip in ../shared/data, ``--segments`` runs of ``--run`` consecutive
frames spread over the clip are tracked with a fresh :class:`DlibLandmarkTracker` each (so jitter is measured on
consecutive frames while the whole benchmark stays short).

* ms/frame: ``detect`` (full-frame detector, coarse-to-fine), ``predictor`` (one 68-point fit in a given box),
  ``track`` (a whole tracked frame: predictor + local detector check; re-detections excluded), ``pupils``
  (:func:`measure_eyes`, both eyes) - single-threaded CPU, medians.
* jitter: mean |second difference| of the landmark positions over consecutive frames, / inter-ocular distance
  (outer eye corners), for the rigid points (nose, eyes) and for all 68 (includes real motion: speech).
* detection: fraction of tracked frames with usable landmarks; fraction of every 10th frame where the full-frame
  detector alone finds the face; status counts.
* MediaPipe (build-time tool only, if installed): mean distance between dlib points and the MediaPipe face-mesh
  points defined the same way (eye corners and lids, nose, mouth, chin), / IOD; pupil vs MediaPipe iris centre,
  / eye width (corner distance).

    .venv/bin/python benchmarks/bench_landmarks.py [--clips wda_kh lp_d3] [--run 60] [--segments 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dvp_engine.tracking import eyes as E  # noqa: E402
from dvp_engine.tracking import landmarks as L  # noqa: E402
from dvp_engine.tracking.detect import FaceDetector  # noqa: E402

DATA = REPO.parent / "shared" / "data"

MP_PAIRS = {
    36: 33, 39: 133, 42: 362, 45: 263, 37: 160, 38: 158, 40: 153, 41: 144, 43: 385, 44: 387, 46: 373, 47: 380,
    27: 168, 30: 4, 33: 2, 48: 61, 54: 291, 51: 0, 57: 17, 62: 13, 66: 14, 8: 152,
}  # fmt: skip


def read_all(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def ms(times: list[float]) -> float | None:
    return round(float(np.median(times)) * 1e3, 2) if times else None


def bench_clip(path: Path, run: int, segments: int, mesh: Any) -> dict[str, Any]:
    frames = read_all(path)
    n = len(frames)
    run = min(run, n)
    starts = np.linspace(0, n - run, segments).astype(int) if segments > 1 else np.array([0])
    t_track: list[float] = []
    t_pred: list[float] = []
    t_pupil: list[float] = []
    jit_rigid: list[float] = []
    jit_all: list[float] = []
    status: Counter[str] = Counter()
    found = 0
    total = 0
    mp_err: list[float] = []
    iris_err: list[float] = []
    pupil_conf: list[float] = []
    for s0 in starts:
        src = L.DlibLandmarkTracker()
        lms: list[np.ndarray | None] = []
        for i in range(s0, s0 + run):
            img = frames[i]
            t0 = time.perf_counter()
            r = src.track(img)
            dt = time.perf_counter() - t0
            status[r.status.value] += 1
            total += 1
            if not r.detected:
                t_track.append(dt)
            if not r.found or r.landmarks is None:
                lms.append(None)
                continue
            found += 1
            lm = np.asarray(r.landmarks, np.float64)
            lms.append(lm)
            if r.box is not None and len(t_pred) < 200:
                t0 = time.perf_counter()
                src._predict(img, r.box)
                t_pred.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            eye = E.measure_eyes(img, lm)
            t_pupil.append(time.perf_counter() - t0)
            pupil_conf.extend(eye.pupil_confidence.tolist())
            if mesh is not None and (i - s0) % 10 == 0:
                res = mesh.process(img)
                if res.multi_face_landmarks:
                    h, w = img.shape[:2]
                    m = np.array(
                        [[p.x * w - 0.5, p.y * h - 0.5] for p in res.multi_face_landmarks[0].landmark]
                    )
                    iod = L.inter_ocular_distance(lm)
                    mp_err.append(
                        float(np.mean([np.linalg.norm(lm[k] - m[v]) for k, v in MP_PAIRS.items()]) / iod)
                    )
                    if len(m) > 473:
                        for k, ix in enumerate(E.EYE_INDICES):
                            pts = lm[list(ix)]
                            if E.eye_aspect_ratio_6(pts) < 0.2 or not np.all(np.isfinite(eye.pupils[k])):
                                continue
                            iris = min((m[468], m[473]), key=lambda p: np.linalg.norm(p - pts.mean(axis=0)))
                            iris_err.append(
                                float(np.linalg.norm(eye.pupils[k] - iris) / np.linalg.norm(pts[0] - pts[3]))
                            )
        for a, b, c in zip(lms, lms[1:], lms[2:], strict=False):
            if a is None or b is None or c is None:
                continue
            iod = L.inter_ocular_distance(b)
            d2 = np.linalg.norm(a - 2 * b + c, axis=1) / iod
            jit_rigid.append(float(d2[27:48].mean()))
            jit_all.append(float(d2.mean()))
    det = FaceDetector()
    t_det: list[float] = []
    hits = 0
    sample = list(range(0, n, 10))
    for i in sample:
        t0 = time.perf_counter()
        d = det.detect(frames[i])
        t_det.append(time.perf_counter() - t0)
        hits += bool(d)
    out: dict[str, Any] = {
        "frames_in_clip": n,
        "size": [int(frames[0].shape[1]), int(frames[0].shape[0])],
        "frames_tracked": total,
        "ms_per_frame": {
            "detect": ms(t_det),
            "predictor": ms(t_pred),
            "track": ms(t_track),
            "pupils": ms(t_pupil),
        },
        "jitter_rigid_iod": round(float(np.mean(jit_rigid)), 4) if jit_rigid else None,
        "jitter_all_iod": round(float(np.mean(jit_all)), 4) if jit_all else None,
        "tracked_found_rate": round(found / max(total, 1), 4),
        "detector_rate_every_10th": round(hits / len(sample), 4),
        "status": dict(status),
        "pupil_confidence_median": round(float(np.median(pupil_conf)), 3) if pupil_conf else None,
    }
    if mesh is not None:
        out["mediapipe_landmark_error_iod"] = {
            "mean": round(float(np.mean(mp_err)), 4) if mp_err else None,
            "max_frame": round(float(np.max(mp_err)), 4) if mp_err else None,
            "frames": len(mp_err),
        }
        out["mediapipe_iris_error_eye_width"] = {
            "median": round(float(np.median(iris_err)), 4) if iris_err else None,
            "p90": round(float(np.percentile(iris_err, 90)), 4) if iris_err else None,
            "eyes": len(iris_err),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="*", default=None, help="clip names without .mp4 (default: all)")
    ap.add_argument("--run", type=int, default=60, help="consecutive frames per segment")
    ap.add_argument("--segments", type=int, default=3, help="segments per clip")
    ap.add_argument("--no-mediapipe", action="store_true")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(json.dumps({"error": f"{DATA} not found"}))
        return
    names = args.clips or sorted(p.stem for p in DATA.glob("*.mp4"))
    mesh = None
    if not args.no_mediapipe:
        try:
            import mediapipe as mp

            mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True
            )
        except Exception:  # pragma: no cover - optional
            mesh = None
    t0 = time.perf_counter()
    clips = {name: bench_clip(DATA / f"{name}.mp4", args.run, args.segments, mesh) for name in names}
    doc = {
        "benchmark": "landmarks",
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "threads": "single-threaded (dlib, numpy)",
        },
        "settings": {"run": args.run, "segments": args.segments, "mediapipe": mesh is not None},
        "clips": clips,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
