"""The ``fast`` architecture: its inputs and losses have the properties they are built on, it learns a scene
better than the paper's configuration on the same budget, resumes exactly, exports, and refuses the other
architecture's checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dvp_engine.network import ArchitectureMismatchError, PairDataset, Renderer, TrainConfig, Trainer
from dvp_engine.network.arch import build_generator, generator_config
from dvp_engine.network.augment import aligned_shift, shift_offsets
from dvp_engine.network.checkpoint import load_generator
from dvp_engine.network.discriminator import DiscriminatorConfig, PatchDiscriminator
from dvp_engine.network.export import export_torchscript
from dvp_engine.network.fast_generator import FastGenerator, FastGeneratorConfig
from dvp_engine.network.generator import fold_batchnorm
from dvp_engine.network.inputs import NeuralTexture, estimate_background
from dvp_engine.network.losses import feature_matching_loss, l1_loss, region_weights

S = 64


def _smooth(g: torch.Generator, c: int, size: int, cells: int = 8) -> torch.Tensor:
    low = torch.rand(1, c, cells, cells, generator=g)
    return nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)[0]


def _scene(n: int, size: int = S, nw: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic plate: a static textured background and a disc ("head") moving over it, its own texture
    fixed to its surface. Conditioning per frame: a flat grey render of the disc, its correspondence code
    (position on the disc, as the face model's) and an empty gaze image. Returns volumes ``(n, 9 nw, S, S)``
    and frames ``(n, 3, S, S)`` in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    background = _smooth(g, 3, size) * 2 - 1
    skin = _smooth(g, 3, 64, cells=16) * 2 - 1  # the disc's texture, indexed by its surface position
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    radius = size * 0.22
    cond, frames = [], []
    for t in range(n):
        cx = size * (0.5 + 0.22 * np.sin(0.7 * t))
        cy = size * (0.5 + 0.15 * np.cos(0.45 * t))
        u, v = (xs - cx) / radius, (ys - cy) / radius
        inside = (u**2 + v**2) < 1.0
        code = torch.stack([0.1 + 0.45 * (u + 1), 0.1 + 0.45 * (v + 1), torch.full_like(u, 0.55)])
        code = torch.where(inside, code, torch.zeros_like(code))
        colour = torch.where(inside, torch.full((3, size, size), 0.6), torch.zeros(3, size, size))
        cond.append(torch.cat([colour, code, torch.zeros(3, size, size)]) * 2 - 1)
        grid = torch.stack([u, v], dim=-1)[None]
        tex = nn.functional.grid_sample(skin[None], grid, align_corners=False)[0]
        frames.append(torch.where(inside, tex, background))
    c = torch.stack(cond)
    vols = torch.stack([torch.cat([c[max(0, i - k)] for k in range(nw - 1, -1, -1)]) for i in range(n)])
    return vols, torch.stack(frames)


def _cfg(arch: str, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        arch=arch,
        size=S,
        nw=1,
        ngf=16,
        ndf=16,
        batch=4,
        iters=4,
        seed=1,
        lr=1e-3,
        log_every=1,
        preview_every=0,
        checkpoint_every=0,
        progress=False,
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------- inputs


def test_background_estimate_of_a_static_scene_equals_it() -> None:
    rng = np.random.default_rng(0)
    plate = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
    frames = np.repeat(plate[None], 20, axis=0)
    masks = np.zeros((20, 32, 32), np.float32)
    for t in range(20):  # an actor covering a different patch in each frame
        x = 2 + t
        frames[t, :, 8:16, x : x + 6] = rng.integers(0, 256, (3, 8, 6), dtype=np.uint8)
        masks[t, 8:16, x : x + 6] = 1.0
    est = estimate_background(frames, masks)
    assert est.reliable and est.spread == 0.0
    np.testing.assert_allclose(est.image.numpy(), plate.astype(np.float32) / 127.5 - 1.0, atol=1e-6)


def test_moving_background_is_flagged_and_replaced(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(1)
    wide = rng.integers(0, 256, (3, 32, 96), dtype=np.uint8)
    frames = np.stack([wide[:, :, 2 * t : 2 * t + 32] for t in range(20)])  # a panning camera
    with caplog.at_level(logging.WARNING, logger="dvp.network"):
        est = estimate_background(frames, label="pan.mp4")
    assert not est.reliable and est.spread > 0.04
    assert torch.all(est.image == 0)
    assert "pan.mp4" in caplog.text and "unreliable" in caplog.text


def test_background_needs_enough_frames() -> None:
    with pytest.raises(ValueError, match="too few"):
        estimate_background(np.zeros((3, 3, 8, 8), np.uint8))


def test_neural_texture_moves_with_the_geometry() -> None:
    """The texture is a function of the correspondence code: a face moved in the image gets the same features
    moved the same way (what lets appearance learned in one pose appear in another)."""
    tex = NeuralTexture(4, (8, 16))
    tex.reset_parameters(torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    code = torch.zeros(1, 3, 32, 32) - 1.0
    patch = torch.rand(1, 3, 10, 10, generator=g) * 1.6 - 0.8
    code[:, :, 5:15, 4:14] = patch
    moved = torch.zeros_like(code) - 1.0
    moved[:, :, 17:27, 19:29] = patch
    a, b = tex(code), tex(moved)
    assert a[:, :, 5:15, 4:14].abs().sum() > 0
    torch.testing.assert_close(b[:, :, 17:27, 19:29], a[:, :, 5:15, 4:14])
    assert torch.all(a[:, :, 20:, :] == 0)  # off the face: nothing


def test_aligned_shift_moves_everything_alike() -> None:
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(1, 2, 16, 16).repeat(3, 1, 1, 1)
    y = x[:, :1] * 2
    off = shift_offsets(3, 3, seed=0, iteration=5)
    assert torch.equal(off, shift_offsets(3, 3, seed=0, iteration=5))  # a function of (seed, iteration)
    assert off.abs().max() <= 3
    sx, sy = aligned_shift([x, y], torch.tensor([[2, -1], [0, 0], [-3, 2]]))
    assert torch.equal(sx[0, :, :15, 2:], x[0, :, 1:, :14])  # content moved 2 right, 1 up
    assert torch.equal(sx[1], x[1])
    assert torch.equal(sy, sx[:, :1] * 2)


# ------------------------------------------------------------------------------------------------- losses


def test_feature_matching_is_zero_for_identical_inputs() -> None:
    d = PatchDiscriminator(DiscriminatorConfig(in_channels=12, ndf=8)).requires_grad_(False)
    cond = torch.rand(2, 9, 32, 32) * 2 - 1
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    feats = d.features(cond, img)
    torch.testing.assert_close(feats[-1], d(cond, img))
    assert float(feature_matching_loss(feats, d.features(cond, img.clone()))) == 0.0
    assert float(feature_matching_loss(feats, d.features(cond, -img))) > 0.0


def test_region_weights_count_face_and_eyes_more() -> None:
    cur = torch.full((1, 9, 16, 16), -1.0)
    cur[:, 3:6, 4:12, 4:12] = 0.5  # face
    cur[:, 6:9, 6:7, 6:8] = 1.0  # an eye opening
    w = region_weights(cur, face=3.0, eyes=6.0, grow=0)
    assert float(w[0, 0, 0, 0]) == 1.0 and float(w[0, 0, 10, 10]) == 4.0 and float(w[0, 0, 6, 6]) == 10.0
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(l1_loss(a, b, torch.full((1, 1, 16, 16), 2.5)), l1_loss(a, b))


# ----------------------------------------------------------------------------------------- architecture


def test_fast_generator_has_no_transposed_convolutions_and_blends_the_background() -> None:
    g = FastGenerator(FastGeneratorConfig(size=32, nw=2, ngf=8))
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
    g.reset_parameters(torch.Generator().manual_seed(0))
    bg = torch.rand(3, 32, 32) * 2 - 1
    g.set_background(bg)
    x = torch.full((2, 18, 32, 32), -1.0)
    y = g.eval()(x)
    assert y.shape == (2, 3, 32, 32) and y.abs().max() <= 1.0
    # the blend starts near the background (blend logit -2: 88 % background)
    assert float((y - bg).abs().mean()) < 0.25 * float(bg.abs().mean() + 0.1)
    torch.testing.assert_close(fold_batchnorm(g)(x), y, atol=1e-5, rtol=1e-4)


def test_fast_learns_the_scene_better_than_paper_on_the_same_budget(tmp_path: Path) -> None:
    vols, frames = _scene(28)
    train, held = list(range(24)), list(range(24, 28))
    ds = PairDataset.from_arrays(vols, frames)
    results = {}
    for arch in ("paper", "fast"):
        bg = estimate_background(((frames[train] + 1) * 127.5).round().to(torch.uint8).numpy())
        t = Trainer(
            tmp_path / arch,
            ds.subset(train),
            ds.subset(held),
            _cfg(arch, iters=40),
            background=bg.image if arch == "fast" else None,
        )
        t.train()
        out = t.predict(vols[held])
        results[arch] = float((out - frames[held]).abs().mean())
    assert results["fast"] < 0.75 * results["paper"], results


def test_fast_resume_is_bit_exact(tmp_path: Path) -> None:
    vols, frames = _scene(10, size=32, nw=2)
    ds = PairDataset.from_arrays(vols, frames)
    bg = torch.rand(3, 32, 32) * 2 - 1
    cfg = _cfg("fast", size=32, nw=2, ngf=8, ndf=8, batch=2, iters=6)
    a = Trainer(tmp_path / "a", ds, None, cfg, background=bg)
    a.train()
    b = Trainer(tmp_path / "b", ds, None, cfg, background=bg)
    b.train(3)
    b2 = Trainer.resume(tmp_path / "b", ds, None)
    assert b2.config.arch == "fast" and b2.iteration == 3
    b2.train()
    for (k, va), vb in zip(a.G.state_dict().items(), b2.G.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    for va, vb in zip(a.D.state_dict().values(), b2.D.state_dict().values(), strict=True):
        assert torch.equal(va, vb)
    assert torch.equal(b2.G.background[0], bg)


def test_other_architecture_checkpoint_is_refused(tmp_path: Path) -> None:
    vols, frames = _scene(6, size=32, nw=2)
    ds = PairDataset.from_arrays(vols, frames)
    Trainer(tmp_path / "p", ds, None, _cfg("paper", size=32, nw=2, ngf=8, ndf=8, batch=2, iters=1)).train()
    with pytest.raises(ArchitectureMismatchError, match=r"'paper'.*'fast'"):
        Trainer.resume(tmp_path / "p", ds, None, arch="fast")
    with pytest.raises(ArchitectureMismatchError, match=r"'paper'.*'fast'"):
        load_generator(tmp_path / "p", expect={"arch": "fast"})
    Trainer(tmp_path / "f", ds, None, _cfg("fast", size=32, nw=2, ngf=8, ndf=8, batch=2, iters=1)).train()
    with pytest.raises(ArchitectureMismatchError, match=r"'fast'.*'paper'"):
        Trainer.resume(tmp_path / "f", ds, None, arch="paper")
    assert isinstance(load_generator(tmp_path / "f"), FastGenerator)


def test_fast_torchscript_export_matches_eager_with_the_background_inside(tmp_path: Path) -> None:
    g = build_generator(generator_config("fast", 32, 2, 8))
    assert isinstance(g, FastGenerator)
    g.reset_parameters(torch.Generator().manual_seed(2))
    g.set_background(torch.rand(3, 32, 32) * 2 - 1)
    g.eval()
    path = export_torchscript(g, tmp_path / "g.pt")
    ts = torch.jit.load(str(path))
    x = torch.rand(1, 18, 32, 32)
    with torch.no_grad():
        want = ((g(x * 2 - 1) + 1) / 2).clamp(0, 1)
        got = ts(x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    out = Renderer(g, device="cpu").render(x * 2 - 1)
    torch.testing.assert_close((out + 1) / 2, want, atol=1e-5, rtol=1e-4)
