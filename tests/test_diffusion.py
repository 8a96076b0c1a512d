"""Diffusion maths against hand computations: schedule, forward noising, respacing, one DDIM step."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from uasbench.errors import UsageError
from uasbench.nn.diffusion import DiffusionOptions, Schedule, keyed_generator

from toy_diffusion import ALPHA_BAR, ToyX0, hand_ddim


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
    y0, noise = torch.full((2, 1, 2, 2), 2.0), torch.full((2, 1, 2, 2), -0.5)
    out = s.q_sample(y0, torch.tensor([10, 500]), noise)
    for i, t in enumerate([10, 500]):
        ab = ALPHA_BAR[t]
        assert out[i].flatten()[0].item() == pytest.approx(math.sqrt(ab) * 2 - 0.5 * math.sqrt(1 - ab), rel=1e-5)


def test_the_whole_schedule_and_the_respacing_bounds() -> None:
    np.testing.assert_allclose(Schedule().alpha_bar, ALPHA_BAR, rtol=1e-12)
    s = Schedule(timesteps=10)
    assert s.respaced(1) == [0] and s.respaced(10) == list(range(9, -1, -1))
    for bad in (0, 11):
        with pytest.raises(ValueError, match="steps"):
            s.respaced(bad)


def test_diffusion_options_accept_every_step_count_of_the_chain_only() -> None:
    assert DiffusionOptions(train_timesteps=10, ddim_steps=1).ddim_steps == 1
    assert DiffusionOptions(train_timesteps=10, ddim_steps=10).ddim_steps == 10
    for bad in (0, 11):
        with pytest.raises(UsageError, match=f"ddim_steps={bad}: " + ("expected an integer >= 1" if bad == 0
                                                                     else r"must be in 1\.\.10")):
            DiffusionOptions(train_timesteps=10, ddim_steps=bad)


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
    to_zero = s.ddim_step(y_t, x0, 10, 0)  # a step TO t = 0 is a real step, not the prediction
    eps = (y_t - math.sqrt(ALPHA_BAR[10]) * x0) / math.sqrt(1 - ALPHA_BAR[10])
    torch.testing.assert_close(to_zero, math.sqrt(ALPHA_BAR[0]) * x0 + math.sqrt(1 - ALPHA_BAR[0]) * eps)


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


def test_x0_loss_feeds_the_network_the_noised_target_its_condition_and_t() -> None:
    """Draws come from the given generator only (timesteps first, then the noise), so training is reproducible."""
    s = Schedule()
    y0, cond = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def net(inp: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append((inp, t))
        return inp[:, :1] * 0.5

    loss = s.x0_loss(net, y0, torch.Generator().manual_seed(4), cond=cond)  # type: ignore[arg-type]
    replay = torch.Generator().manual_seed(4)
    t = torch.randint(1000, (3,), generator=replay)
    noise = torch.randn(y0.shape, generator=replay)
    ab = torch.as_tensor(ALPHA_BAR[t.numpy()], dtype=torch.float32).view(-1, 1, 1, 1)
    y_t = ab.sqrt() * y0 + (1 - ab).sqrt() * noise
    (inp, t_seen), = seen
    assert torch.equal(t_seen, t) and inp.shape == (3, 2, 4, 4)
    torch.testing.assert_close(inp[:, :1], y_t)
    assert torch.equal(inp[:, 1:], cond)
    assert loss.item() == pytest.approx(((0.5 * y_t - y0) ** 2).mean().item(), rel=1e-5)
    torch.manual_seed(0)  # the global generator is not used: moving it changes nothing
    again = s.x0_loss(lambda inp, t: inp[:, :1] * 0.5, y0, torch.Generator().manual_seed(4), cond=cond)
    assert again.item() == loss.item()


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
