"""Diffusion maths against hand computations: schedule, forward noising, respacing, one DDIM step."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from uasbench.nn.diffusion import Schedule, keyed_generator


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


@pytest.mark.parametrize(("steps", "stride"), [(30, 34), (67, 15), (100, 10), (250, 4), (1000, 1)])
def test_respacing_finds_an_integer_stride_giving_exactly_the_steps(steps: int, stride: int) -> None:
    assert Schedule().respaced(steps) == list(range(0, 1000, stride))[::-1]


@pytest.mark.parametrize("steps", [1, 3, 7, 30, 64, 99, 300, 333, 999, 1000])
def test_respacing_gives_exactly_the_asked_number_of_distinct_steps(steps: int) -> None:
    ts = Schedule().respaced(steps)
    assert len(ts) == steps and ts == sorted(set(ts), reverse=True) and ts[-1] == 0 and ts[0] < 1000


def test_respacing_without_an_integer_stride_spreads_the_steps_evenly() -> None:
    ts = Schedule().respaced(64)  # 1000 / 15 gives 67 steps, 1000 / 16 gives 63: no integer stride
    assert ts[::-1] == [k * 1000 // 64 for k in range(64)]
    assert set(np.diff(ts[::-1])) == {15, 16}


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


class ConstantX0(torch.nn.Module):
    """Predicts x0 = the mean of the condition channel (or 0.5): a sampler check with a known answer."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        self.seen.append(int(t.item()))
        return t.float()[:, None]

    def forward(self, x: torch.Tensor, *, emb: torch.Tensor) -> torch.Tensor:
        assert emb.shape == (1, 1)
        if x.shape[1] == 2:
            return x[:, 1:].mean(dim=(1, 2, 3), keepdim=True).expand_as(x[:, :1])
        return torch.full_like(x, 0.5)


def test_ddim_sample_runs_the_steps_and_ends_on_x0() -> None:
    s, net = Schedule(), ConstantX0()
    y = torch.randn(3, 1, 4, 4)
    out = s.ddim_sample(net, y, [990, 500, 0])
    assert net.seen == [990, 500, 0]
    torch.testing.assert_close(out, torch.full_like(y, 0.5))
    cond = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 4, 4)
    out = s.ddim_sample(net, y, [40, 20], cond=lambda k: cond)
    expected = s.ddim_step(y, cond.clone(), 40, 20)  # first step, then the last returns x0 = cond
    assert not torch.allclose(expected, cond)
    torch.testing.assert_close(out, cond)


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
