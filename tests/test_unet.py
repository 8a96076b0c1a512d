"""The ADM UNet: the official parameter counts, both calling modes, the shared config fields."""
from __future__ import annotations

import pytest
import torch

from uasbench.errors import UasbenchError
from uasbench.nn.unet import NetOptions, UNet, UNetConfig

SMALL_NET = UNetConfig(channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_ds=(2,), groups=4)


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_paper_config_matches_the_official_parameter_counts() -> None:
    # official-mmccd-code.md section 2: f (2 input channels) 6,600,257; g 6,599,969 of which 681,216 are
    # time-embedding weights a translator never uses (ours omits them)
    assert n_params(UNet(UNetConfig(in_channels=2))) == 6_600_257
    assert n_params(UNet(UNetConfig())) == 6_599_969
    assert n_params(UNet(UNetConfig(timestep=False))) == 6_599_969 - 681_216


def test_forward_with_and_without_timestep() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 2, 16, 16)
    net = UNet(UNetConfig(**{**SMALL_NET.__dict__, "in_channels": 2})).eval()
    out = net(x, torch.tensor([1, 500, 999]))
    assert out.shape == (3, 1, 16, 16)
    assert torch.count_nonzero(out) == 0  # zero-initialised output conv
    with pytest.raises(ValueError, match="needs a timestep"):
        net(x)
    translator = UNet(UNetConfig(**{**SMALL_NET.__dict__, "timestep": False})).eval()
    assert translator(x[:, :1]).shape == (3, 1, 16, 16)
    with pytest.raises(ValueError, match="without a timestep"):
        translator.embed(torch.tensor([3]))


def test_a_shared_embedding_equals_per_sample_timesteps() -> None:
    torch.manual_seed(0)
    net = UNet(SMALL_NET).eval()
    for p in net.parameters():  # leave the zero initialisation so the output depends on t
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        shared = net(x, emb=net.embed(torch.tensor([250])))
        per_sample = net(x, torch.full((4,), 250))
        other = net(x, torch.full((4,), 700))
    torch.testing.assert_close(shared, per_sample)
    assert not torch.allclose(shared, other)


def test_net_options_build_the_configured_network_and_check_the_resolution() -> None:
    opts = NetOptions(resolution=16, channels=8, channel_mult=[1, 2], num_res_blocks=1, attention_ds=[2], groups=4)
    assert opts.channel_mult == (1, 2)
    assert n_params(opts.unet(timestep=False)) == n_params(UNet(UNetConfig(**{**SMALL_NET.__dict__, "timestep": False})))
    assert opts.train_settings().iterations == 100_000
    with pytest.raises(UasbenchError, match="resolution=20"):
        NetOptions(resolution=20)
