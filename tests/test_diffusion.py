"""Diffusion maths against hand computations: schedule, forward noising, respacing, one DDIM step."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from uasbench.nn.diffusion import Schedule, keyed_generator

from toy_diffusion import ToyX0, hand_ddim


def test_linear_schedule_values() -> None:
    ab = Schedule().alpha_bar
    assert len(ab) == 1000
    assert ab[0] == pytest.approx(1 - 1e-4)
    assert ab[1] == pytest.approx((1 - 1e-4) * (1 - (1e-4 + (0.02 - 1e-4) / 999)))
    assert ab[990] == pytest.approx(4.8e-5, rel=0.02)  # official-mmccd-code.md section 3
    assert np.all(np.diff(ab) < 0)


def test_respacing_is_the_official_grid() -> None:
    s = Schedule()
    ts = s.respaced(100)
    assert ts[:3] == [990, 980, 970] and ts[-1] == 0 and len(ts) == 100
    assert s.respaced(20, start=250) == [250, 200, 150, 100, 50, 0]
    with pytest.raises(ValueError):
        s.respaced(0)


def test_q_sample_by_hand() -> None:
    s = Schedule()
    y0, noise = torch.full((2, 1, 2, 2), 2.0), torch.full((2, 1, 2, 2), -1.0)
    out = s.q_sample(y0, torch.tensor([10, 500]), noise)
    for i, t in enumerate([10, 500]):
        ab = s.alpha_bar[t]
        assert out[i].flatten()[0].item() == pytest.approx(math.sqrt(ab) * 2 - math.sqrt(1 - ab), rel=1e-5)


def test_one_ddim_step_by_hand() -> None:
    s = Schedule()
    y_t, x0 = torch.tensor([0.7, -1.3]), torch.tensor([0.2, 0.5])
    t, t_prev = 500, 490
    ab, abp = s.alpha_bar[t], s.alpha_bar[t_prev]
    expected = []
    for yv, xv in zip(y_t.tolist(), x0.tolist()):
        eps = (yv / math.sqrt(ab) - xv) / math.sqrt(1 / ab - 1)  # guided-diffusion's form
        expected.append(math.sqrt(abp) * xv + math.sqrt(1 - abp) * eps)
    torch.testing.assert_close(s.ddim_step(y_t, x0, t, t_prev), torch.tensor(expected))
    assert torch.equal(s.ddim_step(y_t, x0, 0, -1), x0)  # the last step returns the prediction


@pytest.mark.parametrize("timesteps", [[990, 500, 0], [900, 800, 700, 600, 500, 400, 300, 200, 100, 0], [250, 200]])
def test_ddim_sample_equals_a_hand_written_loop(timesteps: list[int]) -> None:
    s, net = Schedule(), ToyX0()
    y = torch.randn(3, 1, 5, 5, generator=torch.Generator().manual_seed(1))
    out = s.ddim_sample(net, y, timesteps)
    assert net.seen == timesteps  # one network pass per step, in order
    np.testing.assert_allclose(out.numpy(), hand_ddim(y.numpy(), timesteps), rtol=1e-4, atol=1e-4)
    # the loop really moves: a sampler that skipped the intermediate steps would give another answer
    assert not np.allclose(out.numpy(), hand_ddim(y.numpy(), timesteps[-1:]), atol=1e-3)


def test_ddim_sample_feeds_the_condition_of_each_step() -> None:
    s, net = Schedule(), ToyX0()
    timesteps = [600, 400, 200, 0]
    y = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    conds = torch.randn(len(timesteps), 2, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    out = s.ddim_sample(net, y, timesteps, cond=lambda k: conds[k])
    expected = hand_ddim(y.numpy(), timesteps, cond=lambda k: conds[k].numpy().astype(np.float64))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)
    reversed_conds = hand_ddim(y.numpy(), timesteps, cond=lambda k: conds[-1 - k].numpy().astype(np.float64))
    assert not np.allclose(expected, reversed_conds, atol=1e-3)


def test_x0_loss_is_zero_for_a_perfect_predictor() -> None:
    s = Schedule()
    y0 = torch.randn(4, 1, 4, 4)
    perfect = lambda inp, t: y0  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    assert s.x0_loss(perfect, y0, gen).item() == 0.0  # type: ignore[arg-type]
    zero = lambda inp, t: torch.zeros_like(y0)  # noqa: E731
    assert s.x0_loss(zero, y0, gen, cond=y0).item() == pytest.approx(y0.pow(2).mean().item())  # type: ignore[arg-type]


def test_keyed_generators_depend_on_the_key_only() -> None:
    cpu = torch.device("cpu")
    a = torch.randn(5, generator=keyed_generator(cpu, 1, 2, 3))
    assert torch.equal(a, torch.randn(5, generator=keyed_generator(cpu, 1, 2, 3)))
    assert not torch.equal(a, torch.randn(5, generator=keyed_generator(cpu, 1, 3, 2)))
    assert not torch.equal(a, torch.randn(5, generator=keyed_generator(cpu, 1, 2)))
