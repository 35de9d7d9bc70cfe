"""Checkpoint round trips and errors, batched inference (OOM fallback), TorchScript export, metrics, windows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dvp_engine.core.errors import DvpError
from dvp_engine.network import (
    ArchitectureMismatchError,
    CheckpointError,
    GeneratorConfig,
    PairDataset,
    Renderer,
    SpaceTimeGenerator,
    current_colour,
    evaluate_dataset,
    evaluate_frames,
    export_torchscript,
    held_out_split,
    infer,
    init_weights,
    l1,
    load_generator,
    nearest_neighbour,
    psnr,
    ssim,
    stack_window,
    temporal_stability,
    window_indices,
    write_contact_sheet,
)
from dvp_engine.network.checkpoint import (
    flatten_optimizer_state,
    load_optimizer_state,
    save_module,
    save_optimizer,
    unflatten_optimizer_state,
)


def _gen(size: int = 32, nw: int = 2, ngf: int = 4, seed: int = 0) -> SpaceTimeGenerator:
    g = SpaceTimeGenerator(GeneratorConfig(size=size, nw=nw, ngf=ngf))
    init_weights(g, generator=torch.Generator().manual_seed(seed))
    # Non-trivial BN running statistics, so a round trip that dropped buffers would show.
    g.train()
    with torch.no_grad():
        g(torch.rand(4, g.config.in_channels, size, size) * 2 - 1)
    return g.eval()


# ----------------------------------------------------------------------------------------- checkpoints


def test_safetensors_round_trip(tmp_path: Path) -> None:
    g = _gen()
    f = tmp_path / "generator.safetensors"
    save_module(f, g, g.config.signature())
    h = load_generator(f, expect={"size": 32, "nw": 2})
    a, b = g.state_dict(), h.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.rand(2, 18, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g(x), h(x))


def test_optimizer_state_round_trip(tmp_path: Path) -> None:
    g = _gen()
    opt = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g.train()
    g(torch.rand(2, 18, 32, 32)).mean().backward()
    opt.step()
    tensors, rest = flatten_optimizer_state(opt.state_dict())
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    json.dumps(rest)  # the rest is JSON-able
    back = unflatten_optimizer_state(tensors, rest)
    assert back["param_groups"][0]["betas"] == (0.5, 0.999)
    f = tmp_path / "opt.safetensors"
    save_optimizer(f, opt)
    opt2 = torch.optim.Adam(g.parameters(), lr=1.0)
    load_optimizer_state(opt2, f)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for pid in s1["state"]:
        for k in s1["state"][pid]:
            assert torch.equal(s1["state"][pid][k], s2["state"][pid][k])


def test_architecture_mismatch_names_the_fields(tmp_path: Path) -> None:
    g = _gen(size=32, nw=2)
    f = tmp_path / "generator.safetensors"
    save_module(f, g, g.config.signature())
    with pytest.raises(ArchitectureMismatchError, match=r"size is 32 in the checkpoint, 64 expected") as e:
        load_generator(f, expect={"size": 64, "nw": 2})
    assert "generator.safetensors" in str(e.value)
    with pytest.raises(ArchitectureMismatchError, match=r"nw is 2 in the checkpoint, 11 expected"):
        load_generator(f, expect={"nw": 11})
    # Weights that do not fit the signature they claim.
    other = _gen(size=32, nw=3)
    f2 = tmp_path / "liar.safetensors"
    save_module(f2, other, g.config.signature())
    with pytest.raises(ArchitectureMismatchError, match=r"down\.0\.0\.weight.*shape"):
        load_generator(f2)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_truncated_or_corrupt_file_names_it(tmp_path: Path, damage: str) -> None:
    g = _gen()
    f = tmp_path / "generator.safetensors"
    save_module(f, g, g.config.signature())
    data = f.read_bytes()
    f.write_bytes(
        data[: len(data) // 2] if damage == "truncate" else b"\x08\x00\x00\x00\x00\x00\x00\x00{notjson"
    )
    with pytest.raises(CheckpointError, match=r"generator\.safetensors.*truncated or corrupt"):
        load_generator(f)
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "missing.safetensors")


# ------------------------------------------------------------------------------------------- inference


def test_infer_batches_match_single_pass() -> None:
    g = _gen()
    x = torch.rand(5, 18, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = g(x)
    out = infer(g, x.numpy(), batch=2, device="cpu")
    assert out.shape == (5, 3, 32, 32) and out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=1e-6)
    stream = list(Renderer(g, device="cpu", batch=3).render_stream(iter(x)))
    assert len(stream) == 5 and torch.allclose(torch.stack(stream), ref, atol=1e-6)


def test_infer_rejects_wrong_channels() -> None:
    with pytest.raises(Exception, match=r"needs \(N, 18, 32, 32\)"):
        infer(_gen(), torch.zeros(1, 99, 32, 32), device="cpu")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_infer_rejects_non_finite_volumes(bad: float) -> None:
    x = torch.rand(3, 18, 32, 32) * 2 - 1
    x[2, 17, 31, 0] = bad
    with pytest.raises(DvpError, match="NaN or infinite"):
        infer(_gen(), x, device="cpu")
    x[2, 17, 31, 0] = 0.5
    assert infer(_gen(), x, device="cpu").shape == (3, 3, 32, 32)


def test_oom_retries_with_half_batch() -> None:
    g = _gen()
    r = Renderer(g, device="cpu", batch=8)
    calls: list[int] = []

    def flaky(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        if x.shape[0] > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return g(x)

    r._run = flaky
    x = torch.rand(7, 18, 32, 32) * 2 - 1
    out = r.render(x)
    with torch.no_grad():
        assert torch.allclose(out, g(x), atol=1e-6)
    assert calls == [7, 3, 3, 1] and r.batch == 3
    assert r.events == ["out of GPU memory at batch 7; retrying with batch 3"]


# ---------------------------------------------------------------------------------------------- export


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_matches_eager(tmp_path: Path) -> None:
    g = _gen(size=32, nw=2)
    path = export_torchscript(g, tmp_path / "dvp.pt")
    ts = torch.jit.load(str(path))
    x01 = torch.rand(1, 18, 32, 32)
    with torch.no_grad():
        eager = ((g(x01 * 2 - 1) + 1) / 2).clamp(0, 1)
        got = ts(x01)
    assert got.shape == (1, 3, 32, 32)
    assert torch.allclose(got, eager, atol=1e-6)
    assert float(got.min()) >= 0.0 and float(got.max()) <= 1.0
    # One input tensor, one output tensor.
    args = [a for a in ts.graph.inputs()][1:]
    assert len(args) == 1 and len(list(ts.graph.outputs())) == 1


# --------------------------------------------------------------------------------------------- metrics


def test_psnr_of_known_mse() -> None:
    gt = torch.rand(2, 3, 16, 16) * 0.5 + 0.25
    sign = torch.where(torch.rand(2, 3, 16, 16) > 0.5, 1.0, -1.0)
    pred = gt + 0.05 * sign  # |error| = 0.05 everywhere -> MSE 0.0025 -> 26.0206 dB
    assert torch.allclose(psnr(pred, gt), torch.full((2,), 10 * math.log10(1 / 0.0025)), atol=1e-4)
    assert torch.allclose(l1(pred, gt), torch.full((2,), 0.05), atol=1e-6)
    assert math.isinf(float(psnr(gt, gt)[0]))


def test_ssim_identical_and_degraded() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 32, 32, generator=g)
    assert torch.allclose(ssim(img, img), torch.ones(2), atol=1e-6)
    noisy = (img + 0.2 * torch.randn(2, 3, 32, 32, generator=g)).clamp(0, 1)
    s = ssim(noisy, img)
    assert (s < 0.9).all() and (s > 0.0).all()
    assert float(ssim(1 - img, img).mean()) < 0.0  # anti-correlated


def test_temporal_stability() -> None:
    g = torch.Generator().manual_seed(1)
    gt = torch.rand(4, 3, 24, 24, generator=g)
    assert float(temporal_stability(gt + 0.1, gt).abs().max()) < 1e-6  # constant offset: no flicker
    flicker = gt.clone()
    flicker[2] += 0.1  # one frame brighter: two steps with |d| = 0.1
    assert torch.allclose(temporal_stability(flicker, gt), torch.tensor([0.0, 0.1, 0.1]), atol=1e-6)
    rep = evaluate_frames(flicker.clamp(0, 1), gt)
    assert set(rep) == {"psnr", "ssim", "l1", "temporal", "frames"} and rep["frames"] == 4


def test_nearest_neighbour_baseline() -> None:
    train = np.array([[0.0, 0.0], [1.0, 1000.0], [2.0, 0.0], [3.0, 2000.0]])
    query = np.array([[2.1, 0.0], [0.9, 1000.0], [2.0, 600.0]])
    # Standardised: dimension 2 spans ~0..2000 and would dominate raw distances.
    assert nearest_neighbour(train, query).tolist() == [2, 1, 2]
    assert nearest_neighbour(train, query, standardise=False).tolist() == [2, 1, 1]
    with pytest.raises(ValueError):
        nearest_neighbour(train, np.zeros((2, 3)))


def test_contact_sheet_png(tmp_path: Path) -> None:
    import OpenImageIO as oiio

    rows = [torch.zeros(3, 3, 8, 10), torch.full((3, 3, 8, 10), 0.5), torch.ones(3, 3, 8, 10)]
    f = tmp_path / "sheet.png"
    write_contact_sheet(f, rows, gap=2)
    buf = oiio.ImageBuf(str(f))
    px = buf.get_pixels(oiio.UINT8)
    assert px.shape == (3 * 8 + 4, 3 * 10 + 4, 3)
    assert (
        px[0, 0, 0] == 0 and px[10, 0, 0] == 128 and px[20, 0, 0] == 255 and px[8, 0, 0] == 255
    )  # gap white


# --------------------------------------------------------------------------------------- windows/splits


def test_window_indices_are_the_11_frames_ending_at_current() -> None:
    assert window_indices(20) == list(range(10, 21))
    assert len(window_indices(20)) == 11 and window_indices(20)[-1] == 20
    assert window_indices(3) == [0] * 8 + [1, 2, 3]  # clamped at the start
    assert window_indices(1005, nw=11, first=1001) == [1001] * 7 + [1002, 1003, 1004, 1005]
    assert window_indices(7, nw=1) == [7]
    with pytest.raises(ValueError):
        window_indices(2, first=3)


def test_current_colour_channels() -> None:
    vol = torch.arange(99, dtype=torch.float32).view(1, 99, 1, 1).expand(1, 99, 2, 2)
    assert current_colour(vol, 11)[0, :, 0, 0].tolist() == [90.0, 91.0, 92.0]


def test_held_out_split() -> None:
    train, held = held_out_split(100)
    assert held == list(range(90, 100)) and train == list(range(90))
    train, held = held_out_split(100, full_windows_only=True, nw=11)
    assert train[0] == 10 and not set(train) & set(held)
    assert held_out_split(5)[1] == [4]


def test_sequence_dataset_stacks_the_window() -> None:
    g = torch.Generator().manual_seed(2)
    cond = (torch.rand(6, 9, 4, 4, generator=g) * 255).to(torch.uint8).numpy()
    frames = torch.rand(6, 3, 4, 4, generator=g).numpy()
    ds = PairDataset.from_sequence(cond, frames, nw=3, indices=[0, 4])
    vol, frame = ds[1]  # sequence position 4: frames 2, 3, 4
    expect = torch.cat([torch.from_numpy(cond[i]).float() / 255 * 2 - 1 for i in (2, 3, 4)])
    assert vol.shape == (27, 4, 4) and torch.allclose(vol, expect, atol=1e-6)
    assert torch.allclose(frame, torch.from_numpy(frames[4]) * 2 - 1)
    assert torch.allclose(current_colour(vol[None], 3)[0], expect[18:21], atol=1e-6)
    vol0, _ = ds[0]  # position 0: first frame repeated
    assert torch.equal(vol0[:9], vol0[18:]) and torch.equal(vol0[9:18], vol0[18:])
    assert torch.allclose(stack_window(cond, 4, nw=3), expect, atol=1e-6)
    with pytest.raises(ValueError, match="6 conditioning frames but 5 video frames"):
        PairDataset.from_sequence(cond, frames[:5], nw=3)


def test_evaluate_dataset_matches_direct_metrics() -> None:
    g = _gen()
    vol = torch.rand(4, 18, 32, 32) * 2 - 1
    gt = torch.rand(4, 3, 32, 32) * 2 - 1
    ds = PairDataset.from_arrays(vol, gt)
    rep, out, gt01 = evaluate_dataset(Renderer(g, device="cpu").render, ds, batch=3)
    with torch.no_grad():
        ref = ((g(vol) + 1) / 2).clamp(0, 1)
    assert torch.allclose(out, ref, atol=1e-6) and torch.allclose(gt01, (gt + 1) / 2)
    assert rep["psnr"] == pytest.approx(float(psnr(ref, gt01).mean()), rel=1e-5)
    assert rep["frames"] == 4 and "temporal" in rep


def test_folded_batchnorm_computes_the_same_function() -> None:
    from dvp_engine.network.generator import fold_batchnorm

    g = SpaceTimeGenerator(GeneratorConfig(size=32, nw=2, ngf=8))
    init_weights(g, generator=torch.Generator().manual_seed(2))
    rng = torch.Generator().manual_seed(3)
    for m in g.modules():  # running statistics far from the identity, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=rng) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=rng) * 2 + 0.1)
            m.bias.data.copy_(torch.randn(m.num_features, generator=rng) * 0.1)
    g.eval()
    x = torch.rand(3, 18, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = g(x)
        folded = fold_batchnorm(g)
        out = folded(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d | torch.nn.Dropout) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())  # the original is untouched
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(Renderer(g, device="cpu").render(x), ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(Renderer(g, device="cpu", fold_bn=False).render(x), ref, rtol=0, atol=0)
