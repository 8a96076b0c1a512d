"""Test-time settings: declared per method, excluded from the resume key, and changed by `uasbench rescore`
without training again (its maps equal a fresh run's with the same settings)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from uasbench.benchmark.run import RunSpec, run_one
from uasbench.cli import app
from uasbench.data.phantom import write_phantom_dataset
from uasbench.method import test_time_fields
from uasbench.modalities import Pair
from uasbench.registry import get_method
from uasbench.report.runs import collect_runs
from uasbench.results import MANIFEST, SCORES, ScoredSplits

pytestmark = pytest.mark.slow
cli = CliRunner()
SPLIT = {"train": [0, 1, 4], "val": [2], "test": [3]}  # subjects 0 and 4 are healthy (phantom.subject_kind)
TINY = {"iterations": 3, "channels": 16, "channel_mult": [1, 2], "attention_ds": [], "num_res_blocks": 1}


def test_each_method_declares_its_test_time_fields() -> None:
    assert test_time_fields(get_method("mmccd").Config) == {
        "ddim_steps", "stride", "directions", "test_band_width", "max_batch", "infer_batch", "engine"}
    assert test_time_fields(get_method("ddpm").Config) == {"ddim_steps", "noise_levels", "infer_batch"}
    assert test_time_fields(get_method("cyclic_unet").Config) == {"infer_batch"}
    for name in ("ae", "vae", "dae", "intensity"):  # their scoring has no setting of its own
        assert test_time_fields(get_method(name).Config) == frozenset(), name


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("phantom") / "data"
    write_phantom_dataset(root, n_subjects=5, seed=4, progress=False)
    split = root.parent / "split.csv"
    split.write_text("subject,split\n" + "\n".join(f"UASPH_{i:05d},{role}" for role, ids in SPLIT.items()
                                                  for i in ids) + "\n")
    return root, split


def _run(data: tuple[Path, Path], out: Path, method: str, **overrides) -> Path:
    root, split = data
    spec = RunSpec(method=method, pair=Pair.parse("fl-t2"), profile="quick", device="cpu", data_root=root,
                   split_file=split, out=out, overrides={**TINY, **overrides}, n_bootstrap=20)
    return run_one(spec, log=lambda msg: None)[0]


@pytest.fixture(scope="module")
def mmccd_parent(tiny_data, tmp_path_factory) -> Path:
    return _run(tiny_data, tmp_path_factory.mktemp("results"), "mmccd", ddim_steps=2, stride=8)


def _no_training(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a training step ran")
    monkeypatch.setattr(torch.optim.Adam, "step", refuse)


def test_a_test_time_override_reuses_the_trained_networks(tiny_data, mmccd_parent, monkeypatch) -> None:
    _no_training(monkeypatch)
    run = _run(tiny_data, mmccd_parent.parent, "mmccd", ddim_steps=3, stride=16, directions=["vertical"])
    parent, child = (json.loads((r / MANIFEST).read_text()) for r in (mmccd_parent, run))
    assert child["workdir"] == parent["workdir"]  # the same resume key, so the same checkpoints
    with pytest.raises(AssertionError, match="a training step ran"):  # a training field changes the key
        _run(tiny_data, mmccd_parent.parent, "mmccd", ddim_steps=2, stride=8, iterations=4)


def test_rescored_maps_equal_a_fresh_run_with_the_same_settings(tiny_data, mmccd_parent, tmp_path,
                                                                  monkeypatch) -> None:
    changes = ["--set", "ddim_steps=3", "--set", "stride=16", "--set", "test_band_width=8"]
    _no_training(monkeypatch)
    result = cli.invoke(app, ["rescore", str(mmccd_parent), *changes, "--out", str(tmp_path / "re"),
                              "--device", "cpu"])
    assert result.exit_code == 0, result.output
    (rescored,) = (tmp_path / "re").iterdir()
    manifest = json.loads((rescored / MANIFEST).read_text())
    assert manifest["rescored_from"] == str(mmccd_parent.resolve())
    assert manifest["rescored_fields"] == {"ddim_steps": 3, "stride": 16, "test_band_width": 8}
    assert manifest["overrides"] == {**TINY, "ddim_steps": 3, "stride": 16, "test_band_width": 8}
    assert manifest["config"]["ddim_steps"] == 3 and manifest["complete"] is True

    fresh = _run(tiny_data, mmccd_parent.parent, "mmccd", ddim_steps=3, stride=16, test_band_width=8)
    ours, theirs, parent = (ScoredSplits.load(r / SCORES) for r in (rescored, fresh, mmccd_parent))
    for split in ("val_maps", "healthy_maps", "test_maps"):
        np.testing.assert_array_equal(getattr(ours, split), getattr(theirs, split))
    assert not np.array_equal(ours.test_maps, parent.test_maps)  # the settings did change the maps

    (tmp_path / "all").mkdir()
    for r in (mmccd_parent, rescored):
        shutil.copytree(r, tmp_path / "all" / r.name)
    variants = set(collect_runs(tmp_path / "all")["variant"])
    assert len(variants) == 2 and any("ddim_steps=3" in v for v in variants)  # its own leaderboard row


def test_rescore_picks_ddpm_noise_level_again_on_validation(tiny_data, tmp_path, monkeypatch) -> None:
    parent = _run(tiny_data, tmp_path / "p", "ddpm", ddim_steps=2, noise_levels=[100, 300])
    _no_training(monkeypatch)
    result = cli.invoke(app, ["rescore", str(parent), "--set", "noise_levels=[200, 500]", "--out",
                              str(tmp_path / "re"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    (rescored,) = (tmp_path / "re").iterdir()
    fresh = _run(tiny_data, tmp_path / "p", "ddpm", ddim_steps=2, noise_levels=[200, 500])
    ours, theirs = (ScoredSplits.load(r / SCORES) for r in (rescored, fresh))
    np.testing.assert_array_equal(ours.test_maps, theirs.test_maps)
    np.testing.assert_array_equal(ours.val_maps, theirs.val_maps)


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "iterations=5"], "training field(s) of method 'mmccd'"),
    (["--set", "band_width=8"], "training field(s) of method 'mmccd'"),
    ([], "nothing to rescore"),
    (["--set", "bogus=1"], "unknown config option(s) bogus"),
    (["--set", "stride=0"], "stride=0"),
    (["--device", "tpu"], "invalid --device"),
])
def test_rescore_refuses_bad_input_with_one_line(mmccd_parent, tmp_path, args, message) -> None:
    if "--device" in args:
        args = [*args, "--set", "stride=16"]
    result = cli.invoke(app, ["rescore", str(mmccd_parent), *args, "--out", str(tmp_path / "re")])
    assert result.exit_code != 0
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "re").exists()


def test_rescore_refuses_a_folder_that_is_not_a_finished_run(tmp_path) -> None:
    missing = cli.invoke(app, ["rescore", str(tmp_path / "nope"), "--set", "stride=4"])
    assert missing.exit_code == 2 and "no such folder" in missing.stderr
    empty = cli.invoke(app, ["rescore", str(tmp_path), "--set", "stride=4"])
    assert empty.exit_code == 1 and "is not a run directory" in empty.stderr


def test_every_preset_sets_only_valid_test_time_fields() -> None:
    from uasbench.registry import method_infos

    for name, info in method_infos().items():
        for preset, by_profile in info.cls.presets.items():
            for profile, overrides in by_profile.items():
                assert set(overrides) <= test_time_fields(info.cls.Config), (name, preset)
                info.cls.config_for(profile, overrides)  # a valid config


def test_the_fast_preset_rescores_a_run(mmccd_parent, tmp_path) -> None:
    result = cli.invoke(app, ["rescore", str(mmccd_parent), "--preset", "fast", "--set", "max_batch=8",
                              "--out", str(tmp_path / "re"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    (rescored,) = (tmp_path / "re").iterdir()
    manifest = json.loads((rescored / MANIFEST).read_text())
    preset = get_method("mmccd").presets["fast"]["quick"]
    assert manifest["rescored_fields"] == {**preset, "max_batch": 8}
    assert all(manifest["config"][k] == v for k, v in preset.items())  # JSON values: lists, not tuples


@pytest.mark.parametrize("command", ["run", "rescore"])
def test_an_unknown_preset_is_refused_with_one_line(mmccd_parent, command) -> None:
    args = (["run", "--method", "mmccd", "--profile", "quick"] if command == "run"
            else ["rescore", str(mmccd_parent)])
    result = cli.invoke(app, [*args, "--preset", "slowest"])
    assert result.exit_code == 2 and "invalid --preset 'slowest' for method 'mmccd'" in result.stderr
    assert result.stderr.count("\n") == 1
