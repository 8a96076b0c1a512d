"""Rescoring's config rules without a trained run: only test-time fields change, on top of the run's own config."""
from __future__ import annotations

import pytest

from uasbench.benchmark.rescore import check_test_time_changes, rescored_config
from uasbench.errors import UsageError
from uasbench.manifest import RunManifest
from uasbench_methods.ddpm import DDPM


def test_a_training_field_is_refused_with_the_valid_test_time_fields():
    with pytest.raises(UsageError, match=r"--set iterations: training field.*ddim_steps"):
        check_test_time_changes(DDPM, {"iterations": 5, "ddim_steps": 4})
    check_test_time_changes(DDPM, {"ddim_steps": 4, "noise_levels": [100]})  # test-time only: accepted


def test_the_changes_go_on_top_of_the_runs_profile_and_overrides():
    manifest = RunManifest(method="ddpm", profile="quick", pair="fl-t2", seed=0, overrides={"iterations": 3})
    config = rescored_config(manifest, {"ddim_steps": 4})
    assert (config.iterations, config.ddim_steps, config.resolution) == (3, 4, 32)  # 32: the quick profile's
