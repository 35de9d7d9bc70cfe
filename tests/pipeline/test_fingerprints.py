"""No stale results (issue 17, item 1): inputs are fingerprinted by content, an image sequence frame by frame,
and a model by the weights latest.json points to; a job reruns exactly what changed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dvp_engine.io.images import write_image
from dvp_engine.network import checkpoint as ck
from dvp_engine.pipeline import Step, run_steps
from dvp_engine.pipeline.reenact import model_weights
from dvp_engine.pipeline.steps import HASHES_NAME, HashCache, fingerprint


def plate(folder: Path, value: float, frames: range = range(1, 4)) -> str:
    folder.mkdir(exist_ok=True)
    for f in frames:
        write_image(folder / f"t.{f:04d}.png", np.full((8, 8, 3), value, np.float32))
    return str(folder / "t.####.png")


def test_a_sequence_is_fingerprinted_frame_by_frame(tmp_path: Path) -> None:
    pattern = plate(tmp_path / "p", 0.25)
    first = fingerprint({"v": Path(pattern)})
    assert first == fingerprint({"v": Path(pattern)})
    # rewriting the same pixels (a new mtime) changes nothing
    plate(tmp_path / "p", 0.25)
    assert fingerprint({"v": Path(pattern)}) == first
    # one regraded frame, same size, changes it
    write_image(tmp_path / "p" / "t.0002.png", np.full((8, 8, 3), 0.5, np.float32))
    regraded = fingerprint({"v": Path(pattern)})
    assert regraded != first
    # a missing frame changes it too
    (tmp_path / "p" / "t.0003.png").unlink()
    assert fingerprint({"v": Path(pattern)}) not in (first, regraded)


def test_regrading_every_plate_frame_reruns_the_step(tmp_path: Path) -> None:
    pattern = plate(tmp_path / "p", 0.25)
    out = tmp_path / "job" / "o.txt"
    calls: list[int] = []

    def run() -> None:
        calls.append(1)
        out.write_text("x")

    steps = [Step("track", run, [out], {"video": Path(pattern)})]
    assert run_steps(steps, tmp_path / "job") == ["track"]
    assert run_steps(steps, tmp_path / "job") == []
    plate(tmp_path / "p", 0.75)  # the regrade: same names, same sizes, new pixels
    assert run_steps(steps, tmp_path / "job") == ["track"]
    assert len(calls) == 2


def test_hashes_are_cached_by_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"1" * 100)
    cache = HashCache(tmp_path / HASHES_NAME)
    digest = cache.sha256(f)
    cache.save()
    import dvp_engine.pipeline.steps as steps

    reads: list[Path] = []
    real = steps.sha256_file
    monkeypatch.setattr(steps, "sha256_file", lambda p: reads.append(p) or real(p))
    again = HashCache(tmp_path / HASHES_NAME)
    assert again.sha256(f) == digest and reads == []  # from the cache file
    f.write_bytes(b"2" * 100)
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    assert again.sha256(f) != digest and reads == [f]


def tiny(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3))


def test_the_render_step_follows_the_weights_not_the_pointer(tmp_path: Path) -> None:
    """Two trainings (another --seed) leave latest.json's text the same but the weights differ."""
    model = tmp_path / "model"
    inputs = {"model": lambda: model_weights(model)}
    before_training = fingerprint(inputs)
    m = tiny(0)
    ck.write_checkpoint(model, 3, {"generator": (m, {})}, {}, {})
    pointer = (model / "latest.json").read_text()
    a = fingerprint(inputs)
    ck.write_checkpoint(model, 3, {"generator": (tiny(1), {})}, {}, {})
    assert (model / "latest.json").read_text() == pointer
    b = fingerprint(inputs)
    assert len({before_training, a, b}) == 3
    ck.write_checkpoint(model, 3, {"generator": (tiny(0), {})}, {}, {})  # the same weights again
    assert fingerprint(inputs) == a
    assert json.loads(pointer)["checkpoint"] == "checkpoints/iter_00000003"


def test_train_frame_cache_is_redone_after_a_plate_regrade(tmp_path: Path) -> None:
    from dvp_engine.core import FaceTrack, layout
    from dvp_engine.pipeline.portrait import Framing, prepare_data

    p = np.zeros((3, layout.FRAME_SIZE))
    p[:, layout.FRAME_LAYOUT["translation"].start + 2] = 0.6
    t = FaceTrack.from_params([1, 2, 3], p, rate=25, width=8, height=8, intrinsics=(16, 16, 3.5, 3.5))
    pattern = plate(tmp_path / "p", 0.25)
    framing = Framing.centred(8, 8, 8)
    _, frames_path = prepare_data(t, pattern, framing, tmp_path / "cache")
    dark = np.load(frames_path)
    plate(tmp_path / "p", 0.75)
    _, frames_path = prepare_data(t, pattern, framing, tmp_path / "cache")
    bright = np.load(frames_path)
    assert bright.mean() > dark.mean() + 50  # the regraded pixels, not the cached ones
