"""Generator and discriminator architecture: paper Fig. 4 at 256, depth adaptation, shapes, init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dvp_engine.network import (
    DiscriminatorConfig,
    GeneratorConfig,
    PatchDiscriminator,
    SpaceTimeGenerator,
    count_parameters,
    generator_flops,
    init_weights,
)


def _expected_params(cfg: GeneratorConfig) -> int:
    """Independent count from the paper's description (conv weights + BN affine + biases where no BN)."""
    down, up = cfg.down_channels, cfg.up_channels
    n = 0
    cin = cfg.in_channels
    for i, c in enumerate(down):
        n += cin * c * 16 + (c if i == 0 else 2 * c)  # bias on the BN-less first layer, else BN gamma+beta
        cin = c
    for k, c in enumerate(up):
        cin = down[-1] if k == 0 else up[k - 1] + down[cfg.levels - 1 - k]
        last = k == len(up) - 1
        n += cin * c * 16 + 2 * c * c * 9
        n += 3 * c if last else 3 * 2 * c  # 3 biases (last) or 3 BN layers
    return n


def test_paper_channels_at_256() -> None:
    cfg = GeneratorConfig(size=256, nw=11)
    assert cfg.in_channels == 99
    assert cfg.levels == 8
    assert cfg.down_channels == (64, 128, 256, 512, 512, 512, 512, 512)
    assert cfg.up_channels == (512, 512, 512, 512, 256, 128, 64, 3)
    assert cfg.dropout == (0.5, 0.5, 0.5, 0, 0, 0, 0, 0)


def test_parameter_count_and_flops_at_256() -> None:
    cfg = GeneratorConfig(size=256, nw=11)
    g = SpaceTimeGenerator(cfg)
    n = count_parameters(g)
    assert n == _expected_params(cfg)
    assert abs(n - 75e6) / 75e6 < 0.01  # the reference: about 75 M
    flops = generator_flops(cfg)
    assert abs(flops - 25.8e9) / 25.8e9 < 0.005  # the reference: 25.8 GFLOP per frame


def test_layer_structure_at_256() -> None:
    g = SpaceTimeGenerator(GeneratorConfig(size=256, nw=11))
    # BN everywhere except the first down module and the last up module.
    assert not any(isinstance(m, nn.BatchNorm2d) for m in g.down[0])
    assert all(any(isinstance(m, nn.BatchNorm2d) for m in d) for d in g.down[1:])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in g.up[-1])
    for u in g.up[:-1]:
        assert sum(isinstance(m, nn.BatchNorm2d) for m in u) == 3  # deconv + 2 refinement convs
    drops = [[m.p for m in u if isinstance(m, nn.Dropout)] for u in g.up]
    assert drops == [[0.5], [0.5], [0.5], [], [], [], [], []]
    assert all(isinstance(d[-1], nn.LeakyReLU) and d[-1].negative_slope == 0.2 for d in g.down)
    convs = [[m for m in u if isinstance(m, nn.Conv2d)] for u in g.up]
    assert all(len(c) == 2 and all(m.kernel_size == (3, 3) and m.stride == (1, 1) for m in c) for c in convs)
    assert isinstance(g.up[-1][-1], nn.Tanh)


@pytest.mark.parametrize("size,levels", [(128, 7), (256, 8), (512, 9), (1024, 10)])
def test_depth_adapts_and_shapes(size: int, levels: int) -> None:
    cfg = GeneratorConfig(size=size, nw=11)
    assert cfg.levels == levels and len(cfg.up_channels) == levels
    with torch.device("meta"):
        g = SpaceTimeGenerator(cfg).eval()
        x = torch.empty(2, 99, size, size)
        feats = []
        h = x
        for d in g.down:
            h = d(h)
            feats.append(h.shape)
        y = g(x)
    assert feats[-1] == (2, 512, 1, 1)  # bottleneck always 1x1
    assert y.shape == (2, 3, size, size)


def test_forward_at_64_values() -> None:
    torch.manual_seed(0)
    g = SpaceTimeGenerator(GeneratorConfig(size=64, nw=11, ngf=8))
    init_weights(g)
    x = torch.rand(2, 99, 64, 64) * 2 - 1
    y = g.train()(x)
    assert y.shape == (2, 3, 64, 64)
    assert y.abs().max() < 1.0
    y.mean().backward()
    assert all(p.grad is not None for p in g.parameters())
    g.eval()
    with torch.no_grad():
        assert torch.equal(g(x), g(x))  # deterministic in eval mode (no dropout)


def test_single_frame_baseline_channels() -> None:
    cfg = GeneratorConfig(size=64, nw=1, ngf=8)
    assert cfg.in_channels == 9
    g = SpaceTimeGenerator(cfg).eval()
    assert g(torch.zeros(1, 9, 64, 64)).shape == (1, 3, 64, 64)


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="power of two"):
        GeneratorConfig(size=200)
    with pytest.raises(ValueError, match="nw"):
        GeneratorConfig(nw=0)


def test_patchgan_shape_and_init() -> None:
    cfg = DiscriminatorConfig(in_channels=99 + 3)
    with torch.device("meta"):
        d = PatchDiscriminator(cfg)
        out = d(torch.empty(1, 99, 256, 256), torch.empty(1, 3, 256, 256))
    assert out.shape == (1, 1, 30, 30)  # pix2pix's 70x70 PatchGAN at 256
    d = PatchDiscriminator(DiscriminatorConfig(in_channels=9 + 3, ndf=16))
    init_weights(d, generator=torch.Generator().manual_seed(1))
    w = torch.cat([m.weight.detach().flatten() for m in d.modules() if isinstance(m, nn.Conv2d)])
    assert abs(float(w.mean())) < 2e-3 and abs(float(w.std()) - 0.02) < 1e-3
    bn = [m for m in d.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        assert all(abs(float(m.weight.mean()) - 1.0) < 0.01 and float(m.bias.abs().max()) == 0.0 for m in bn)
