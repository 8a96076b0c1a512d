"""The band masks, Eq. 10 aggregation, and batched == sequential for MMCCD's inference engine."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from uasbench.nn.diffusion import Schedule
from uasbench.nn.masked_inference import EngineOptions, MaskedCycle, band_masks, coverage, default_max_batch
from uasbench.nn.unet import UNet, UNetConfig

from toy_diffusion import ToyBack, ToyX0, hand_ddim


def test_the_official_mask_set() -> None:
    masks = band_masks(128, 16, 2)
    assert masks.shape == (128, 128, 128)
    cov = coverage(masks)
    assert int(cov.min()) == 2 and int(cov.max()) == 16
    # per direction, coordinate c is covered min(c // 2 + 1, 8) times (official-mmccd-code.md "Coverage")
    per_direction = np.minimum(np.arange(128) // 2 + 1, 8)
    np.testing.assert_array_equal(coverage(masks[:64])[0].numpy(), per_direction)
    np.testing.assert_array_equal(coverage(masks[64:])[:, 0].numpy(), per_direction)
    assert masks[0][:, :16].all() and masks[0].sum() == 16 * 128  # first: a vertical band at column 0
    assert masks[63].sum() == 2 * 128  # truncated at the far edge
    assert masks[64][:16].all()  # then the horizontal bands


def test_mask_options() -> None:
    assert band_masks(32, 4, 4, ("horizontal",)).shape == (8, 32, 32)
    with pytest.raises(ValueError):
        band_masks(32, 4, 2, ("diagonal",))
    with pytest.raises(ValueError):
        band_masks(32, 40, 2)


def tiny_nets(seed: int = 0) -> tuple[UNet, UNet]:
    torch.manual_seed(seed)
    cfg = dict(channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_ds=(2,), groups=4)
    f, g = UNet(UNetConfig(in_channels=2, **cfg)), UNet(UNetConfig(timestep=False, **cfg))
    for p in [*f.parameters(), *g.parameters()]:  # random weights everywhere, so outputs depend on every input
        torch.nn.init.normal_(p, std=0.1)
    return f, g


def test_eq10_averages_over_the_masks_covering_each_pixel(monkeypatch: pytest.MonkeyPatch) -> None:
    f, g = tiny_nets()
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[0, :, :2] = True  # columns 0-1
    masks[1, :, 1:3] = True  # columns 1-2
    masks[2, :2, :] = True  # rows 0-1
    engine = MaskedCycle(f, g, masks, steps=2)
    # error of (slice i, mask r) = 10 * i + r + 1 everywhere
    monkeypatch.setattr(engine, "_errors",
                        lambda x, s, m: (10.0 * s + m + 1).float().view(-1, 1, 1, 1).expand(-1, 1, 4, 4))
    maps = engine.score_batched(np.zeros((2, 4, 4), np.float32), max_batch=4)
    expected = np.array([
        [(1 + 3) / 2, (1 + 2 + 3) / 3, (2 + 3) / 2, 3],
        [(1 + 3) / 2, (1 + 2 + 3) / 3, (2 + 3) / 2, 3],
        [1, (1 + 2) / 2, 2, 0],  # column 3, rows 2-3: covered by no mask -> 0
        [1, (1 + 2) / 2, 2, 0],
    ])
    np.testing.assert_allclose(maps[0], expected)
    np.testing.assert_allclose(maps[1], np.where(expected > 0, expected + 10, 0))


def _pairs_seen(net: ToyX0, x: np.ndarray, masks: np.ndarray) -> dict[tuple[int, int], list]:
    """Group the forward network's input rows by (slice, mask), told apart by content: outside its band a
    row's condition is its slice, inside it something else (noise)."""
    seen: dict[tuple[int, int], list] = {}
    for inputs, steps in net.calls:
        for row, t in zip(inputs.numpy(), steps.tolist()):
            y, cond = row
            i = int(np.argmax([(cond == xi).sum() for xi in x]))
            band = cond != x[i]
            r = [k for k, m in enumerate(masks) if np.array_equal(m, band)]
            assert len(r) == 1, "the condition must be the slice with exactly one band replaced"
            seen.setdefault((i, r[0]), []).append((int(t), y, cond))
    return seen


@pytest.mark.parametrize("order", ["sequential", "batched"])
def test_each_mask_runs_its_own_cycle_as_a_hand_written_loop(order: str) -> None:
    """Per (slice, mask): DDIM from one initial noise shared by the slice's masks, the band of the condition
    refilled with fresh noise at every step, then g, then the squared error; Eq. 10 averages over masks."""
    f, g, steps = ToyX0(), ToyBack(), 4
    masks = band_masks(8, 3, 3)  # 6 bands: vertical at columns 0, 3, 6 (truncated), then horizontal
    engine = MaskedCycle(f, g, masks, steps=steps, seed=5)
    x = np.random.default_rng(0).normal(size=(2, 8, 8)).astype(np.float32)
    maps = engine.score_sequential(x, batch_size=1) if order == "sequential" else engine.score_batched(x, max_batch=4)

    m = masks.numpy()
    seen = _pairs_seen(f, x, m)
    timesteps = Schedule().respaced(steps)
    assert sorted(seen) == [(i, r) for i in range(2) for r in range(len(m))]  # every pair, once
    expected = np.zeros((2, 8, 8))
    for (i, r), trail in seen.items():
        assert [t for t, _, _ in trail] == timesteps
        y_init = trail[0][1]
        assert np.array_equal(y_init, seen[(i, 0)][0][1])  # the initial noise is shared by the slice's masks
        assert not np.array_equal(y_init, seen[(1 - i, r)][0][1])  # ... and not by other slices
        bands = [cond[m[r]] for _, _, cond in trail]
        assert all(not np.allclose(a, b) for a, b in zip(bands, bands[1:]))  # refilled at every step
        conds = [cond.astype(np.float64) for _, _, cond in trail]
        path: list[np.ndarray] = []
        y0 = hand_ddim(y_init, timesteps, cond=lambda k: conds[k], path=path)
        for (_, y, _), y_hand in zip(trail, path):  # the network saw the loop's own trajectory
            np.testing.assert_allclose(y, y_hand, rtol=1e-4, atol=1e-4)
        expected[i] += (ToyBack.formula(y0) - x[i]) ** 2 * m[r]
    expected /= m.sum(axis=0)
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5)


def test_batched_equals_sequential_within_rounding_and_is_reproducible() -> None:
    """The same numbers enter the same formulas in both orders; only the network's float sums may run in another
    order when its batch size changes (CPU convolutions are not batch-invariant), so the maps agree to float32
    rounding, not bit for bit (the README says so). Repeating one order is bit-identical."""
    f, g = tiny_nets()
    engine = MaskedCycle(f, g, band_masks(16, 4, 3), steps=4, seed=7)
    x = np.random.default_rng(0).normal(size=(3, 16, 16)).astype(np.float32)
    sequential = engine.score_sequential(x, batch_size=2)
    assert sequential.shape == (3, 16, 16) and sequential.dtype == np.float32 and sequential.std() > 0
    rounding = dict(rtol=1e-5, atol=1e-5 * float(np.abs(sequential).max()))
    for max_batch in (1, 5, 64):
        np.testing.assert_allclose(engine.score_batched(x, max_batch=max_batch), sequential, **rounding)
    np.testing.assert_array_equal(engine.score_batched(x, max_batch=5), engine.score_batched(x, max_batch=5))
    np.testing.assert_array_equal(engine.score_sequential(x, batch_size=2), sequential)
    # a slice's map does not depend on the other slices scored with it
    np.testing.assert_allclose(engine.score_batched(x[:1]), sequential[:1], **rounding)
    other_seed = MaskedCycle(f, g, engine.masks, steps=4, seed=8).score_batched(x)
    assert not np.allclose(other_seed, sequential, **rounding)
    assert engine.passes_per_slice() == (len(engine.masks) * 4, len(engine.masks))


def test_size_mismatch_is_refused() -> None:
    f, g = tiny_nets()
    with pytest.raises(ValueError, match="differ in size"):
        MaskedCycle(f, g, band_masks(16, 4, 4), steps=2).score_batched(np.zeros((1, 8, 8), np.float32))


def test_default_chunk_is_large_on_gpu_and_about_64k_pixels_on_cpu() -> None:
    assert default_max_batch(torch.device("cuda"), 128) == 256
    assert default_max_batch(torch.device("cpu"), 32) == 64
    assert default_max_batch(torch.device("cpu"), 128) == 4
    assert default_max_batch(torch.device("cpu"), 512) == 1


@pytest.mark.parametrize("options", [
    EngineOptions(channels_last=True),
    pytest.param(EngineOptions(compile=True), marks=pytest.mark.slow),
], ids=["channels_last", "compile"])
def test_the_fast_engine_equals_the_eager_fp32_engine(options: EngineOptions) -> None:
    f, g = tiny_nets()
    x = np.random.default_rng(1).normal(size=(3, 8, 8)).astype(np.float32)
    masks = band_masks(8, 2, 2)
    eager = MaskedCycle(f, g, masks, steps=3).score_batched(x, max_batch=8)
    fast_f, fast_g = tiny_nets()  # the same weights, in networks the options may convert in place
    fast = MaskedCycle(fast_f, fast_g, masks, steps=3, options=options).score_batched(x, max_batch=8)
    # fp32 kernels in another memory layout or fused by the compiler sum in another order: 1e-4 relative
    np.testing.assert_allclose(fast, eager, rtol=1e-4, atol=1e-5)
    assert np.abs(eager).max() > 1e-3  # the maps are not trivially zero
