"""Shared fixtures: the real portrait clips in ../shared/data (skip cleanly when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

try:  # the Blender test environment (bpy, numpy<2) has no hypothesis
    from hypothesis import settings
except ImportError:  # pragma: no cover
    pass
else:
    # CI runs property tests with a fixed seed sequence (reproducible); locally they explore new examples.
    settings.register_profile("ci", derandomize=True, deadline=None)
    settings.register_profile("dev", deadline=None)
    settings.load_profile("ci" if os.environ.get("CI") else "dev")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real test clips; skips the test when it is absent."""
    if not (SHARED_DATA / "wda_kh.mp4").is_file():
        pytest.skip(f"real test clips not found in {SHARED_DATA} (see the README's Test data section)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_clip(shared_data: Path) -> Path:
    """The 200-frame public-domain sample clip."""
    return shared_data / "wda_kh.mp4"
