"""Nuke plugin tests without Nuke: ``nuke`` is the strict fake in ``fake_nuke.py``."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "nuke_plugin"
for p in (str(PLUGIN), str(REPO)):
    if p not in sys.path:
        sys.path.insert(0, p)


def _load_fake() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nuke", Path(__file__).with_name("fake_nuke.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["nuke"] = mod
    spec.loader.exec_module(mod)
    return mod


FAKE = _load_fake()


@pytest.fixture
def nuke() -> Iterator[Any]:
    """The fake ``nuke`` in GUI mode, fresh state."""
    sys.modules["nuke"] = FAKE
    FAKE._reset(gui=True)
    yield FAKE
    FAKE._reset(gui=True)


@pytest.fixture
def nuke_t(nuke: Any) -> Any:
    """The fake ``nuke`` in terminal mode (``nuke -t``): any UI call raises."""
    nuke._reset(gui=False)
    return nuke


def synthetic_track(
    frames: Any, seed: int = 0, controls: tuple[str, ...] = ("face.jaw_open", "face.smile")
) -> Any:
    """A FaceTrack with every channel filled with distinct values and named controls in its metadata."""
    from dvp_engine.core import FaceTrack, layout

    rng = np.random.default_rng(seed)
    frames = np.asarray(list(frames), dtype=np.int64)
    n = len(frames)
    params = rng.normal(0.0, 0.3, (n, layout.FRAME_SIZE))
    params[:, layout.FRAME_LAYOUT["translation"]] = [0.01, -0.02, 0.7] + rng.normal(0, 0.01, (n, 3))
    params[:, layout.FRAME_LAYOUT["blink"]] = rng.uniform(0, 1, (n, 2))
    matrix = rng.normal(0, 1, (len(controls), layout.N_EXPRESSION))
    return FaceTrack.from_params(
        frames,
        params,
        rate=Fraction(25),
        width=640,
        height=480,
        intrinsics=(1000.0, 1000.0, 319.5, 239.5),
        confidence=rng.uniform(0.3, 1.0, n),
        valid=(rng.uniform(0, 1, n) > 0.1).astype(np.float32),
        metadata={"controls": {"names": list(controls), "matrix": matrix.tolist()}},
    )


@pytest.fixture
def make_track() -> Any:
    return synthetic_track
