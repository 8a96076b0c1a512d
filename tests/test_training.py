"""The shared training loop: it learns, it is reproducible, it resumes exactly, it logs."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from uasbench.errors import UasbenchError
from uasbench.nn.training import TrainSettings, predict_batched, seed_everything, train_network

CPU = torch.device("cpu")


def _data(n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8, 8)).astype(np.float32)
    mask = x > 0
    return x, mask


def _net(seed: int = 0) -> torch.nn.Module:
    seed_everything(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(4, 1, 3, padding=1))


def _denoise_loss(net: torch.nn.Module, batch: list[torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    x, mask = batch
    noisy = x + 0.1 * torch.randn(x.shape, generator=gen, device=x.device)
    return ((net(noisy) - x) ** 2 * (1 + mask)).mean()


def _train(net: torch.nn.Module, iterations: int, workdir: Path | None, seed: int = 0, every: int = 5) -> list[float]:
    settings = TrainSettings(iterations=iterations, batch_size=4, lr=1e-2, checkpoint_every=every)
    return train_network(net, _denoise_loss, list(_data()), settings, device=CPU, seed=seed, workdir=workdir,
                         name="toy", progress=False)


def _weights(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def test_training_reduces_the_loss() -> None:
    losses = _train(_net(), 60, None)
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])


def test_same_seed_same_weights_other_seed_differs() -> None:
    a, b, c = _net(), _net(), _net()
    _train(a, 10, None)
    _train(b, 10, None)
    _train(c, 10, None, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(_weights(a), _weights(b)))
    assert not all(torch.equal(p, q) for p, q in zip(_weights(a), _weights(c)))


def test_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    whole = _net()
    whole_losses = _train(whole, 12, tmp_path / "whole", every=4)
    # "interrupted" at step 8 (a checkpoint), then rerun to 12 in the same work folder with a fresh network
    part_dir = tmp_path / "part"
    _train(_net(), 8, part_dir, every=4)
    resumed = _net(seed=99)  # a different init: the checkpoint must overwrite it
    resumed_losses = _train(resumed, 12, part_dir, every=4)
    assert resumed_losses == whole_losses
    assert all(torch.equal(p, q) for p, q in zip(_weights(whole), _weights(resumed)))
    with (part_dir / "loss_toy.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert float(rows[-1]["loss"]) == pytest.approx(whole_losses[-1], rel=1e-5)


def test_finished_checkpoint_only_loads_weights(tmp_path: Path) -> None:
    trained = _net()
    losses = _train(trained, 6, tmp_path)
    reloaded = _net(seed=5)
    assert _train(reloaded, 6, tmp_path) == losses
    assert all(torch.equal(p, q) for p, q in zip(_weights(trained), _weights(reloaded)))
    assert not (tmp_path / "ckpt_toy.pt.tmp").exists()


def test_mismatched_checkpoint_is_a_user_error(tmp_path: Path) -> None:
    _train(_net(), 5, tmp_path)
    other = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(UasbenchError, match="ckpt_toy.pt"):
        _train(other, 10, tmp_path)


def test_predict_batched_chunks_and_returns_float32() -> None:
    x, _ = _data(10)
    out = predict_batched(lambda t: t * 2, x, batch_size=3, device=CPU)
    assert out.dtype == np.float32 and out.shape == (10, 1, 8, 8)
    np.testing.assert_allclose(out[:, 0], 2 * x)
    assert predict_batched(lambda t: t * 2, x[:0], batch_size=3, device=CPU).shape == (0, 1, 8, 8)


def test_diverging_loss_is_reported_not_silently_logged() -> None:
    def nan_loss(net: torch.nn.Module, batch: list[torch.Tensor], gen: torch.Generator) -> torch.Tensor:
        return net(batch[0]).mean() * float("nan")

    settings = TrainSettings(iterations=3, batch_size=2)
    with pytest.raises(UasbenchError, match="diverged"):
        train_network(_net(), nan_loss, [_data()[0]], settings, device=CPU, seed=0, workdir=None, name="toy",
                      progress=False)
