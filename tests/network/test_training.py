"""Training: L1 decreases, exact resume, DDP single-process path, logs, previews, checkpoints."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from dvp_engine.core.errors import DvpError
from dvp_engine.network import (
    ArchitectureMismatchError,
    CheckpointError,
    PairDataset,
    TrainConfig,
    Trainer,
    held_out_split,
)
from dvp_engine.network.checkpoint import latest_checkpoint

S = 64


def _data(n: int = 12, nw: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random volumes; the target frame is a fixed function of the current colour render."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 9 * nw, 8, 8, generator=g) * 2 - 1
    vol = torch.nn.functional.interpolate(low, size=(S, S), mode="bilinear", align_corners=False)
    c0 = 9 * (nw - 1)
    frame = (0.8 * vol[:, c0 : c0 + 3].flip(1) + 0.1).clamp(-1, 1)
    return vol, frame


def _cfg(**kw: object) -> TrainConfig:
    base = dict(
        size=S,
        nw=2,
        ngf=8,
        ndf=8,
        batch=2,
        iters=4,
        seed=3,
        log_every=1,
        preview_every=0,
        checkpoint_every=0,
        progress=False,
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _state(t: Trainer) -> dict[str, torch.Tensor]:
    out = {f"G.{k}": v for k, v in t.G.state_dict().items()}
    out.update({f"D.{k}": v for k, v in t.D.state_dict().items()})
    for name, opt in (("og", t.opt_g), ("od", t.opt_d)):
        for pid, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                out[f"{name}.{pid}.{k}"] = v
    return out


def test_training_lowers_l1_on_fixed_batch(tmp_path: Path) -> None:
    vol, frame = _data(n=4)
    ds = PairDataset.from_arrays(vol, frame)
    t = Trainer(tmp_path / "m", ds, None, _cfg(batch=4, iters=20, ngf=16, lr=1e-3, log_every=1))

    def heldout_l1() -> float:
        return float((t.predict(vol) - frame).abs().mean())

    # BN running stats need a few updates before eval-mode output means anything: compare train-mode losses
    # from the log (dropout active, same batch every iteration) and the eval-mode L1 at the end.
    t.train()
    lines = [json.loads(x) for x in (tmp_path / "m" / "log.jsonl").read_text().splitlines()]
    l1s = [r["loss_l1"] for r in lines if "loss_l1" in r]
    assert len(l1s) == 20
    assert sum(l1s[-5:]) / 5 < 0.85 * sum(l1s[:3]) / 3
    assert heldout_l1() < l1s[0]


def test_resume_is_bit_exact(tmp_path: Path) -> None:
    vol, frame = _data(n=5)
    ds = PairDataset.from_arrays(vol, frame)
    straight = Trainer(tmp_path / "a", ds, None, _cfg(iters=4))
    straight.train()

    first = Trainer(tmp_path / "b", ds, None, _cfg(iters=4))
    first.train(iters=2)
    assert first.iteration == 2
    del first
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    resumed = Trainer.resume(tmp_path / "b", ds, None)
    assert resumed.iteration == 2
    resumed.train()
    assert resumed.iteration == 4

    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"differs after resume: {diff[:5]}"
    # The log of the resumed run continues the first one.
    iters = [json.loads(x)["iter"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert iters == [1, 2, 3, 4]


def test_resume_different_seed_differs(tmp_path: Path) -> None:
    """Guard for the exactness test: a different seed gives different weights."""
    vol, frame = _data(n=5)
    ds = PairDataset.from_arrays(vol, frame)
    a = Trainer(tmp_path / "a", ds, None, _cfg(iters=1, seed=1))
    a.train()
    b = Trainer(tmp_path / "b", ds, None, _cfg(iters=1, seed=2))
    b.train()
    assert not torch.equal(a.G.down[0][0].weight, b.G.down[0][0].weight)


def test_checkpoint_files_previews_and_log(tmp_path: Path) -> None:
    vol, frame = _data(n=10)
    train_idx, held_idx = held_out_split(10, 0.2)
    ds = PairDataset.from_arrays(vol, frame)
    t = Trainer(
        tmp_path / "m",
        ds.subset(train_idx),
        ds.subset(held_idx),
        _cfg(iters=4, preview_every=2, checkpoint_every=2, keep_checkpoints=1, n_preview=2),
    )
    t.train()
    ck = latest_checkpoint(tmp_path / "m")
    assert ck.name == "iter_00000004"
    names = {p.name for p in ck.iterdir()}
    assert names == {
        "generator.safetensors",
        "discriminator.safetensors",
        "optimizer_g.safetensors",
        "optimizer_d.safetensors",
        "state.json",
    }
    assert [p.name for p in (tmp_path / "m" / "checkpoints").iterdir()] == ["iter_00000004"]  # keep=1
    state = json.loads((ck / "state.json").read_text())
    assert state["iteration"] == 4 and state["config"]["size"] == S and state["generator"]["nw"] == 2
    previews = sorted(p.name for p in (tmp_path / "m" / "previews").iterdir())
    assert previews == ["iter_00000002.png", "iter_00000004.png"]
    import OpenImageIO as oiio

    spec = oiio.ImageInput.open(str(tmp_path / "m" / "previews" / previews[0])).spec()
    assert (spec.width, spec.height) == (2 * S + 2, 3 * S + 4)  # 2 columns, 3 rows, 2-pixel gaps
    recs = [json.loads(x) for x in (tmp_path / "m" / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in recs if "heldout_l1" in r] == [2, 4]


def test_resume_refuses_other_architecture_and_corrupt_files(tmp_path: Path) -> None:
    vol, frame = _data(n=4)
    ds = PairDataset.from_arrays(vol, frame)
    Trainer(tmp_path / "m", ds, None, _cfg(iters=2)).train()
    with pytest.raises(ArchitectureMismatchError, match="ngf is 8 in the checkpoint, 16 asked"):
        Trainer.resume(tmp_path / "m", ds, None, ngf=16)
    f = latest_checkpoint(tmp_path / "m") / "optimizer_g.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="optimizer_g.safetensors.*truncated or corrupt"):
        Trainer.resume(tmp_path / "m", ds, None)


def test_bad_inputs(tmp_path: Path) -> None:
    vol, frame = _data(n=4)
    ds = PairDataset.from_arrays(vol, frame)
    with pytest.raises(DvpError, match="batch must be >= 2"):
        Trainer(tmp_path, ds, None, _cfg(batch=1))
    with pytest.raises(DvpError, match="size 128"):
        Trainer(tmp_path, ds, None, _cfg(size=128))
    with pytest.raises(ValueError, match="4 volumes but 3 frames"):
        PairDataset.from_arrays(vol, frame[:3])


def test_ddp_single_process_matches_plain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.distributed as dist

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in dict(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0"
    ).items():
        monkeypatch.setenv(k, v)
    vol, frame = _data(n=4)
    ds = PairDataset.from_arrays(vol, frame)
    plain = Trainer(tmp_path / "a", ds, None, _cfg(iters=2), distributed=False)
    plain.train()
    try:
        ddp = Trainer(tmp_path / "b", ds, None, _cfg(iters=2), distributed=True)
        assert ddp.ddp and dist.is_initialized()
        ddp.train()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    a, b = _state(plain), _state(ddp)
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    assert worst < 1e-5


# ------------------------------------------------------------------------------------------ CUDA
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@needs_cuda
def test_cuda_training_bf16_channels_last_fused_lowers_l1_and_resumes(tmp_path: Path) -> None:
    """The CUDA training path (bf16 autocast, channels_last, fused Adam) learns like the CPU path, and a
    resumed run continues from the checkpoint (same iteration count, finite weights)."""
    vol, frame = _data(n=4)
    ds = PairDataset.from_arrays(vol, frame)
    cfg = _cfg(batch=4, iters=20, ngf=16, lr=1e-3, device="cuda", checkpoint_every=10)
    t = Trainer(tmp_path / "m", ds, None, cfg)
    assert t.amp and t.memory_format == torch.channels_last
    assert t.opt_g.defaults.get("fused") is True
    t.train()
    lines = [json.loads(x) for x in (tmp_path / "m" / "log.jsonl").read_text().splitlines()]
    l1s = [r["loss_l1"] for r in lines if "loss_l1" in r]
    assert sum(l1s[-5:]) / 5 < 0.85 * sum(l1s[:3]) / 3
    more = Trainer.resume(tmp_path / "m", ds, None, iters=30)
    assert more.iteration == 20 and more.amp
    more.train()
    assert more.iteration == 30
    assert all(torch.isfinite(p).all() for p in more.G.parameters())


@needs_cuda
def test_cuda_bf16_inference_matches_cpu_fp32() -> None:
    from dvp_engine.network import GeneratorConfig, Renderer, SpaceTimeGenerator, init_weights

    g = SpaceTimeGenerator(GeneratorConfig(size=64, nw=2, ngf=16))
    init_weights(g, generator=torch.Generator().manual_seed(1))
    vol, _ = _data(n=6)
    cpu = Renderer(g, device="cpu", batch=4).render(vol)
    gpu = Renderer(g, device="cuda", batch=4)
    assert gpu.bf16 and gpu.memory_format == torch.channels_last
    out = gpu.render(vol)
    assert out.shape == cpu.shape
    assert (out - cpu).abs().mean() < 0.02 and (
        out - cpu
    ).abs().max() < 0.2  # bf16 rounding, not a different net


def _sequence(t: int = 9, nw: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    cond = rng.integers(0, 256, (t, 9, S, S), dtype=np.uint8)
    frames = rng.integers(0, 256, (t, 3, S, S), dtype=np.uint8)
    return cond, frames


def test_gathered_batches_equal_stacked_items(tmp_path: Path) -> None:
    cond, frames = _sequence()
    np.save(tmp_path / "c.npy", cond)
    mm = np.load(tmp_path / "c.npy", mmap_mode="r")  # a read-only memory map, as the pipeline's cache
    ds = PairDataset.from_sequence(mm, frames, nw=3).subset([0, 1, 4, 7, 8])
    assert ds.gathers and not PairDataset.from_arrays(*_data(n=2)).gathers
    ks = [4, 0, 2, 2, 1]  # any order, repeats, the first frames' padded windows
    vol, real = ds.gather(ks, "cpu")
    assert vol.shape == (5, 27, S, S) and real.shape == (5, 3, S, S)
    torch.testing.assert_close(vol, torch.stack([ds[k][0] for k in ks]), rtol=0, atol=0)
    torch.testing.assert_close(real, torch.stack([ds[k][1] for k in ks]), rtol=0, atol=0)
    with pytest.raises(TypeError, match="from_sequence"):
        PairDataset.from_arrays(*_data(n=2)).gather([0])


def test_training_on_gathered_batches_equals_the_data_loader(tmp_path: Path) -> None:
    cond, frames = _sequence()
    ds = PairDataset.from_sequence(cond, frames, nw=2)
    a = Trainer(tmp_path / "a", ds, None, _cfg(iters=3, gather_batches=True))
    b = Trainer(tmp_path / "b", ds, None, _cfg(iters=3, gather_batches=False))
    a.train()
    b.train()
    sa, sb = _state(a), _state(b)
    assert [k for k in sa if not torch.equal(sa[k], sb[k])] == []


@needs_cuda
def test_cuda_gathered_batches_equal_stacked_items() -> None:
    cond, frames = _sequence()
    ds = PairDataset.from_sequence(cond, frames, nw=3)
    vol, real = ds.gather([8, 0, 3], "cuda")
    assert vol.device.type == "cuda"
    torch.testing.assert_close(vol.cpu(), torch.stack([ds[k][0] for k in (8, 0, 3)]), rtol=0, atol=0)
    torch.testing.assert_close(real.cpu(), torch.stack([ds[k][1] for k in (8, 0, 3)]), rtol=0, atol=0)


def test_trainers_keep_their_own_random_stream(tmp_path: Path) -> None:
    """Dropout draws from the global RNG; each trainer swaps in its own stream, so interleaving two trainers
    (or disturbing the global RNG) changes nothing, and training leaves the caller's RNG as it was."""
    vol, frame = _data(n=5)
    ds = PairDataset.from_arrays(vol, frame)
    alone = Trainer(tmp_path / "alone", ds, None, _cfg(iters=4))
    alone.train()
    a = Trainer(tmp_path / "a", ds, None, _cfg(iters=4))
    other = Trainer(tmp_path / "o", ds, None, _cfg(iters=4, seed=9))
    a.train(iters=2)
    other.train()
    torch.manual_seed(777)
    before = torch.get_rng_state()
    a.train()
    assert torch.equal(torch.get_rng_state(), before)  # the caller's stream is untouched
    sa, sb = _state(alone), _state(a)
    assert [k for k in sa if not torch.equal(sa[k], sb[k])] == []
    assert any(not torch.equal(sa[k], v) for k, v in _state(other).items())  # the guard: other seeds differ


DDP_SCRIPT = """
import hashlib, json, os, sys
import numpy as np, torch
from dvp_engine.network import PairDataset, TrainConfig, Trainer
out = sys.argv[1]
rng = np.random.default_rng(5)
cond = rng.integers(0, 256, (9, 9, 32, 32), dtype=np.uint8)
frames = rng.integers(0, 256, (9, 3, 32, 32), dtype=np.uint8)
cfg = TrainConfig(size=32, nw=2, ngf=8, ndf=8, batch=2, iters=3, seed=3, log_every=1, preview_every=0,
                  checkpoint_every=0, progress=False, device="cpu")
t = Trainer(out, PairDataset.from_sequence(cond, frames, nw=2), None, cfg)
assert t.ddp and t.world == 2
t.train()
def digest(module):
    h = hashlib.sha256()
    for _, v in sorted(module.named_parameters()):  # BN running statistics are per rank (local batches)
        h.update(v.detach().numpy().tobytes())
    return h.hexdigest()
with open(os.path.join(out, f"rank{t.rank}.json"), "w") as fh:
    json.dump({"rank": t.rank, "iteration": t.iteration, "g": digest(t.G), "d": digest(t.D)}, fh)
"""


def test_ddp_two_processes_stay_in_sync(tmp_path: Path) -> None:
    """torchrun with two CPU processes (gloo): both ranks end with identical weights of G and D (gradients
    all-reduced); only rank 0 writes the log and the checkpoint."""
    import subprocess
    import sys

    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "model"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
         str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["iteration"] for r in ranks] == [3, 3]
    assert ranks[0]["g"] == ranks[1]["g"] and ranks[0]["d"] == ranks[1]["d"]
    assert [json.loads(x)["iter"] for x in (out / "log.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert latest_checkpoint(out).name == "iter_00000003"


def test_a_time_limit_stops_early_and_equals_the_same_iterations_trained_straight(tmp_path: Path) -> None:
    """``time_limit``: the run stops after the iteration that reaches it, previewed and checkpointed, and its
    weights are those of a run of that many iterations (what a resume continues from)."""
    vol, frame = _data()
    ds = PairDataset.from_arrays(vol, frame)
    held = PairDataset.from_arrays(vol[:2], frame[:2])
    t = Trainer(tmp_path / "a", ds, held, _cfg(iters=100000, log_every=5))
    t.train(time_limit=0.5)
    k = t.iteration
    assert t.stopped_by_time and 1 <= k < 100000
    ck = latest_checkpoint(tmp_path / "a")
    assert ck is not None and ck.name == f"iter_{k:08d}"
    lines = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in lines if "loss_l1" in r][-1] == k  # the last iteration is logged
    assert any("heldout_l1" in r and r["iter"] == k for r in lines)  # and previewed
    straight = Trainer(tmp_path / "b", ds, held, _cfg(iters=k, log_every=5))
    straight.train()
    assert not straight.stopped_by_time
    a, b = _state(t), _state(straight)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    with pytest.raises(DvpError, match="time limit"):
        t.train(time_limit=0)
