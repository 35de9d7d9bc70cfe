"""tools/build_face_model.py on a tiny subset of the real clips: valid output, byte-identical when rerun."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dvp_engine.facemodel import FaceModel

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "tools" / "build_face_model.py"
SHARED_DATA = REPO.parent / "shared" / "data"
CLIPS = ["wda_kh.mp4", "lp_d3.mp4"]


def _need_builder() -> None:
    if importlib.util.find_spec("mediapipe") is None:
        pytest.skip("mediapipe (build-time tool) is not installed")
    missing = [c for c in CLIPS if not (SHARED_DATA / c).is_file()]
    if missing:
        pytest.skip(f"clips {missing} not found in {SHARED_DATA}")


def _build(out: Path, *extra: str) -> None:
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = [sys.executable, str(BUILDER), "--data", str(SHARED_DATA), "--clips", *CLIPS,
           "--max-frames", "10", "--out", str(out), "--quiet", *extra]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.data
@pytest.mark.slow
def test_builder_subset_is_valid_and_deterministic(tmp_path: Path) -> None:
    _need_builder()
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    _build(a)
    _build(b)
    assert hashlib.sha256(a.read_bytes()).hexdigest() == hashlib.sha256(b.read_bytes()).hexdigest()

    m = FaceModel.load(a)
    assert json.loads(a.with_suffix(".json").read_text()) == m.header  # readable provenance sidecar
    assert m.expr_basis.shape == (64, 468, 3) and m.id_basis.shape == (80, 468, 3)
    prov = m.provenance
    assert [c["file"] for c in prov["clips"]] == sorted(CLIPS)
    for c in prov["clips"]:
        assert c["frames_used"] == 10  # evenly spaced over the first 90% (held-out frames excluded)
    # geometry and bases look like the full build's
    assert m.mean_shape[m.landmarks68[45], 0] > 0 > m.mean_shape[m.landmarks68[36], 0]
    flat = m.expr_basis.reshape(64, -1).astype(np.float64)
    gram = flat @ flat.T
    np.testing.assert_allclose(gram, np.diag(np.diag(gram)), atol=1e-4 * gram.max())  # orthogonal
    assert np.all(np.diff(m.expr_std[:5]) <= 1e-6)  # data components sorted by variance
    s = m.vertices(expression=m.control_to_expression({"face.jaw_open": 1.0}))[0] - m.mean_shape
    assert s[m.landmarks68[8], 1] > 0.002  # even 20 frames give a jaw that opens downward


def test_builder_numeric_helpers() -> None:
    """Pure-numpy parts of the builder: frame selection, Procrustes, mirror map."""
    spec = importlib.util.spec_from_file_location("build_face_model", BUILDER)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["build_face_model"] = mod
    spec.loader.exec_module(mod)
    idx = mod.select_frames(200, 10)
    assert idx[0] == 0 and idx[-1] == 179 and len(idx) == 10  # last 10% (frames 180..199) never used
    rng = np.random.default_rng(0)
    src = rng.normal(size=(30, 3))
    ang = 0.4
    R = np.array([[np.cos(ang), 0, np.sin(ang)], [0, 1, 0], [-np.sin(ang), 0, np.cos(ang)]])
    dst = 1.7 * src @ R.T + np.array([1.0, -2.0, 0.5])
    s, R2, t = mod.umeyama(src, dst)
    assert s == pytest.approx(1.7) and np.allclose(R2, R) and np.allclose(t, [1.0, -2.0, 0.5])
    half = rng.normal(size=(20, 3))
    half[:, 0] = np.abs(half[:, 0]) + 0.1
    pts = np.vstack([half, half * [-1, 1, 1], [[0.0, 1.0, 2.0]]])
    mm = mod.mirror_map(pts)
    assert np.array_equal(mm[mm], np.arange(len(pts)))
    assert np.array_equal(mm[:20], np.arange(20, 40)) and mm[40] == 40
