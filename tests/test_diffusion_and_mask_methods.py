"""IterMask2, AnoDDPM and pDDPM, and the shared pieces they added: simplex noise, cosine schedule, epsilon and
ancestral steps, the UNet's BatchNorm option and healthy validation slices reaching ``fit``."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.method import AnomalyMethod
from uasbench.nn.diffusion import Schedule, keyed_generator
from uasbench.nn.simplex import SimplexNoise, draw_noise
from uasbench.nn.unet import UNet, UNetConfig
from uasbench_methods.anoddpm import AnoDDPM
from uasbench_methods.itermask2 import IterMask2, high_pass, square_mask
from uasbench_methods.pddpm import PDDPM, grid_boxes

from synthetic import disk_slices

EXTRA = {IterMask2: {"hp_radius": 2.0, "max_iters": 20}, AnoDDPM: {"noise_levels": (4,), "simplex_frequency": 4.0},
         PDDPM: {"patch_size": 8, "simplex_frequency": 4.0}}


def slices(n: int, *, tumour: bool = False, seed: int = 0) -> SliceSet:
    return disk_slices(n, 32, seed, lesion=(slice(10, 18), slice(12, 20)) if tumour else None, paired=False)


def build(cls: type[AnomalyMethod], **overrides: object) -> AnomalyMethod:
    """The method's ``tiny`` profile, trained for 3 steps (what these tests look at needs no learning)."""
    return cls.from_profile("tiny", {"iterations": 3, "batch_size": 4, "infer_batch": 8, **EXTRA[cls], **overrides},
                            seed=3)


def gens(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


# -- simplex noise -----------------------------------------------------------------------------------------
def test_simplex_fields_have_the_configured_scale_and_are_smooth() -> None:
    fields = SimplexNoise(frequency=64.0, std=0.5).fields((64, 64), gens(*range(24)))  # finest octave: 2 px
    assert fields.shape == (24, 64, 64)
    assert 0.45 < float(fields.std()) < 0.55  # the official fields' std (pooled)
    assert abs(float(fields.mean())) < 0.1  # official per-field means vary by about 0.1
    per_field = fields.flatten(1)
    assert (per_field.std(dim=1) > 0.3).all()  # no degenerate field
    neighbours = np.corrcoef(fields[:, :, :-1].flatten(), fields[:, :, 1:].flatten())[0, 1]
    far = np.corrcoef(fields[:, :, :-32].flatten(), fields[:, :, 32:].flatten())[0, 1]
    assert neighbours > 0.8 and abs(far) < 0.3  # spatially correlated at the feature size, not beyond


def test_simplex_fields_are_deterministic_per_generator_and_independent_of_the_batch() -> None:
    noise = SimplexNoise(frequency=8.0)
    a = noise.fields((32, 32), gens(1, 2, 3))
    np.testing.assert_array_equal(a, noise.fields((32, 32), gens(1, 2, 3)))
    np.testing.assert_array_equal(a[1], noise.fields((32, 32), gens(2))[0])  # a field does not depend on its batch
    assert not torch.allclose(a[0], a[1])
    both = draw_noise("simplex", (2, 3, 32, 32), gens(5, 6), noise)
    assert both.shape == (2, 3, 32, 32) and torch.equal(both[:, 0], both[:, 2])  # shared by the channels
    with pytest.raises(UasbenchError, match="octaves"):
        SimplexNoise(octaves=0)


# -- diffusion maths ---------------------------------------------------------------------------------------
def test_cosine_schedule_matches_its_closed_form() -> None:
    schedule = Schedule(1000, kind="cosine")
    f = lambda t: np.cos((t / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    np.testing.assert_allclose(schedule.alpha_bar[:990], f(np.arange(1, 991)) / f(0), rtol=1e-9)
    assert schedule.betas.max() <= 0.999 and abs(schedule.alpha_bar[499] - 0.494) < 0.01  # pDDPM's t_test
    np.testing.assert_allclose(Schedule().alpha_bar[199], 0.659, atol=1e-3)  # linear: AnoDDPM's lambda 200


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ancestral_step_equals_ho_et_al_equation_11(kind: str) -> None:
    schedule, t = Schedule(1000, kind=kind), 250
    g = torch.Generator().manual_seed(0)
    x_t, eps, z = (torch.randn((2, 1, 8, 8), generator=g, dtype=torch.float64) for _ in range(3))
    x0 = schedule.x0_from_eps(x_t, eps, t)
    beta, ab = schedule.betas[t], schedule.alpha_bar[t]
    expected = (x_t - beta / np.sqrt(1 - ab) * eps) / np.sqrt(1 - beta) + np.sqrt(beta) * z
    torch.testing.assert_close(schedule.ancestral_step(x_t, x0, t, z), expected)
    torch.testing.assert_close(schedule.ancestral_step(x_t, x0, 0, z), x0)  # the last step returns x0


def test_eps_loss_vanishes_for_a_network_that_recovers_the_noise() -> None:
    schedule = Schedule()
    x0 = torch.randn((4, 1, 8, 8), generator=torch.Generator().manual_seed(1))

    def oracle(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = torch.as_tensor(schedule.alpha_bar)[t].float().view(-1, 1, 1, 1)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    noise = lambda shape: torch.randn(shape)  # noqa: E731
    loss = schedule.eps_loss(oracle, x0, torch.Generator().manual_seed(2), noise, t_max=800)
    assert float(loss) < 1e-8


def test_unet_batch_norm_option() -> None:
    net = UNet(UNetConfig(channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_ds=(2,), timestep=False,
                          norm="batch"))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in net.modules())
    assert net.eval()(torch.randn(2, 1, 16, 16)).shape == (2, 1, 16, 16)
    with pytest.raises(UasbenchError, match="norm"):
        IterMask2.from_profile("quick", {"norm": "layer"})


# -- the methods -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [IterMask2, AnoDDPM, PDDPM])
def test_tiny_fit_score_save_load(cls: type[AnomalyMethod], tmp_path: Path) -> None:
    method = build(cls).fit(slices(8), slices(3, tumour=True, seed=1), val_healthy=slices(2, seed=4),
                            workdir=tmp_path / "work")
    test = slices(2, tumour=True, seed=2)
    maps = method.score(test)
    assert maps.shape == (2, 32, 32) and maps.dtype == np.float32 and np.isfinite(maps).all() and maps.std() > 0
    np.testing.assert_array_equal(method.score(test), maps)  # keyed noise: reproducible
    method.config.infer_batch = 1
    np.testing.assert_allclose(method.score(test), maps, rtol=1e-4, atol=1e-5)  # a slice's map ignores its batch
    assert list((tmp_path / "work").glob("ckpt_*.pt"))
    method.save(tmp_path / "m.pt")
    np.testing.assert_allclose(cls.load(tmp_path / "m.pt").score(test), maps, rtol=1e-5, atol=1e-6)


def test_itermask2_calibrates_on_healthy_validation_slices_or_warns() -> None:
    healthy = build(IterMask2).fit(slices(6), val_healthy=slices(2, seed=4))
    assert healthy.tau > 0
    with pytest.warns(UserWarning, match="training slices"):
        build(IterMask2).fit(slices(6))


def test_itermask2_loop_terminates_and_its_mask_only_shrinks() -> None:
    method = build(IterMask2, max_iters=50, stop_ratio=0.01).fit(slices(6), val_healthy=slices(2, seed=4))
    x, x_f, brain = method._inputs(slices(3, tumour=True, seed=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = method.refine(x, x_f, brain, [keyed_generator(torch.device("cpu"), 0, i) for i in range(3)])
    assert ((result.passes >= 1) & (result.passes <= 50)).all()
    for sizes, passes in zip(result.mask_sizes, result.passes):
        run = sizes[:passes]
        assert (run >= 0).all() and (sizes[passes:] == -1).all()
        assert (np.diff(run) <= 0).all()  # never grows
        if passes > 1:  # every pass but the last removed at least stop_ratio of the mask
            assert (run[1:] <= run[:-1] * (1 - 0.01) + 1e-6).all()
    assert not (result.mask & (brain == 0)).any()  # inside the brain
    # A cap that is hit is reported, and stops the loop.
    method.tau, method.config.stop_ratio, method.config.max_iters = 0.0, 0.0, 2  # never stops by itself
    with pytest.warns(UserWarning, match="max_iters=2"):
        capped = method.refine(x, x_f, brain, [keyed_generator(torch.device("cpu"), 0, i) for i in range(3)])
    assert (capped.passes == 2).all()


def test_itermask2_high_pass_and_training_masks() -> None:
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    spectrum = torch.fft.fftshift(torch.fft.fft2(high_pass(x, 4.0)), dim=(-2, -1)).abs()
    rows, cols = torch.meshgrid(torch.arange(32) - 16, torch.arange(32) - 16, indexing="ij")
    inside = (rows**2 + cols**2) < 16
    torch.testing.assert_close(spectrum[..., inside], torch.ones_like(spectrum[..., inside]))
    brain = disk_slices(1, 128).brain[0]
    rng = np.random.default_rng(0)
    fractions = [square_mask(brain, rng).sum() / brain.sum() for _ in range(40)]
    assert all(f > 0 for f in fractions) and 0.02 < np.mean(fractions) < 0.4  # official: mean 0.13
    assert not any((square_mask(brain, rng) & ~brain).any() for _ in range(5))


def test_pddpm_patches_tile_the_image_exactly_once() -> None:
    for size, patch, count in ((128, 64, 4), (32, 16, 4), (30, 16, 4), (32, 8, 16)):
        boxes = grid_boxes(size, patch)
        assert len(boxes) == count and torch.equal(boxes.sum(dim=0), torch.ones(size, size, dtype=torch.long))


def test_pddpm_makes_one_pass_per_patch() -> None:
    method = build(PDDPM).fit(slices(6))
    calls = []
    method.net.register_forward_hook(lambda *_: calls.append(1))
    method.score(slices(3, seed=2))
    assert len(calls) == 4  # 2x2 grid, all slices of the batch at once


def test_anoddpm_needs_validation_to_choose_lambda() -> None:
    with pytest.raises(UasbenchError, match="validation"):
        build(AnoDDPM, noise_levels=(3, 5)).fit(slices(6))
    method = build(AnoDDPM, noise_levels=(3, 5)).fit(slices(6), slices(3, tumour=True, seed=1))
    assert set(method.val_auprc) == {3, 5} and method.noise_level in (3, 5)


# -- healthy validation slices reach fit -------------------------------------------------------------------
def test_val_healthy_reaches_only_methods_that_declare_it() -> None:
    seen: dict[str, object] = {}

    class Old(AnomalyMethod):
        name = "old_style"

        def _fit(self, train, val, workdir):  # a plugin written before val_healthy existed
            seen["old"] = (len(train), val)

        def _score(self, slices):
            return np.zeros(slices.x.shape)

    class New(Old):
        name = "new_style"

        def _fit(self, train, val, workdir, *, val_healthy=None):
            seen["new"] = val_healthy

    healthy = slices(2, seed=5)
    Old().fit(slices(3), val_healthy=healthy)
    New().fit(slices(3), val_healthy=healthy)
    assert seen == {"old": (3, None), "new": healthy}
    assert not Old.wants_val_healthy() and New.wants_val_healthy() and IterMask2.wants_val_healthy()
