"""Blender add-on tests: run only with the bpy venv (``.venv-blender/bin/python -m pytest tests/blender``).

When ``bpy`` is not importable (the main venv) the whole folder is ignored at collection time.
"""

from __future__ import annotations

import importlib.util
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

if importlib.util.find_spec("bpy") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


@pytest.fixture
def factory() -> Any:
    """A fresh empty factory-settings session (preferences never saved)."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.use_preferences_save = False
    yield bpy
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture
def addon(factory: Any) -> Any:
    """The add-on from the source tree, registered for one test."""
    import blender_addon

    blender_addon.register()
    yield blender_addon
    blender_addon.unregister()


@pytest.fixture
def make_track() -> Any:
    """The :func:`synthetic_track` factory."""
    return synthetic_track


def shipped_control_matrix() -> tuple[list[str], Any]:
    """The shipped face model's named controls: ``(names, (12, 64) directions)``."""
    import json

    data = REPO / "dvp_engine" / "data"
    names = json.loads((data / "face_model.json").read_text("utf-8"))["control_names"]
    with np.load(data / "face_model.npz", allow_pickle=False) as z:
        return [str(n) for n in names], np.asarray(z["control_matrix"], dtype=np.float64)


def synthetic_track(frames: Any, seed: int = 0, n_controls: int = 2, shipped_controls: bool = False) -> Any:
    """A synthetic FaceTrack with every channel filled and ``n_controls`` random named controls
    (or, with ``shipped_controls``, the shipped face model's 12 controls)."""
    from dvp_engine.core import FaceTrack, layout

    rng = np.random.default_rng(seed)
    frames = np.asarray(frames, dtype=np.int64)
    n = len(frames)
    params = np.zeros((n, layout.FRAME_SIZE))
    t = np.linspace(0, 1, n)
    params[:, 0:3] = np.deg2rad(np.stack([10 * np.sin(3 * t), 25 * np.cos(2 * t), -8 * t], axis=1))
    params[:, 3:6] = np.stack([0.02 * t, -0.01 + 0.03 * t, 0.6 + 0.1 * t], axis=1)
    params[:, 6:] = rng.normal(0, 0.3, (n, layout.FRAME_SIZE - 6))
    params[:, layout.FRAME_LAYOUT["blink"]] = rng.uniform(0, 1, (n, 2))
    matrix = rng.normal(0, 1, (n_controls, layout.N_EXPRESSION))
    names = ["face.jaw_open", "face.smile", "face.brow_up"][:n_controls]
    if shipped_controls:
        names, matrix = shipped_control_matrix()
    return FaceTrack.from_params(
        frames,
        params,
        rate=Fraction(25),
        width=64,
        height=48,
        intrinsics=(70.0, 70.0, 30.5, 25.0),
        identity=rng.normal(0, 1, layout.N_IDENTITY),
        reflectance=rng.normal(0, 1, layout.N_REFLECTANCE),
        confidence=rng.uniform(0.5, 1, n),
        valid=(rng.uniform(0, 1, n) > 0.2).astype(np.float32),
        metadata={"controls": {"names": names, "matrix": matrix.tolist()}, "source": "synthetic"},
    )
