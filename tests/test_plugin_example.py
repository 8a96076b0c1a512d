"""A method installed from another distribution appears in `uasbench methods` and runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from uasbench.testing import method_checks

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "uasbench-example-plugin"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """Install the example plugin (its own distribution) into a private folder put on PYTHONPATH."""
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(EXAMPLE)], check=True, capture_output=True)
    env = dict(os.environ)
    env["COLUMNS"] = "200"  # one table row per method, whatever the terminal
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
    return env


@pytest.mark.slow
def test_plugin_is_listed_with_its_source_package(plugin_env):
    out = subprocess.run([sys.executable, "-m", "uasbench", "methods"], env=plugin_env, capture_output=True,
                         text=True, check=True, timeout=300).stdout
    line = next(row for row in out.splitlines() if "local_contrast" in row)
    assert "uasbench-example-plugin" in line
    assert "intensity" in out  # the built-ins are still there


@pytest.mark.slow
def test_plugin_fits_scores_and_round_trips(plugin_env, tmp_path):
    script = f"""
import numpy as np
from uasbench import create_method
from uasbench.registry import get_method
from uasbench.data.slices import SliceSet
rng = np.random.default_rng(0)
x = rng.normal(size=(4, 16, 16)).astype(np.float32)
x[3, 6:10, 6:10] += 5.0  # a bright lesion
s = SliceSet(x=x, brain=np.ones_like(x, bool), subjects=tuple("abcd"), z=np.arange(4))
m = create_method("local_contrast", "quick").fit(s.subset([0, 1, 2]))
maps = m.score(s)
assert maps[3, 6:10, 6:10].mean() > maps[3].mean() + 1.0, "lesion must score higher"
m.save(r"{tmp_path / 'm.pt'}")
again = get_method("local_contrast").load(r"{tmp_path / 'm.pt'}").score(s)
assert np.array_equal(maps, again)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], env=plugin_env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_plugin_passes_the_contract_kit_in_its_own_tests(plugin_env):
    """The example's own test file (what a plugin author writes) runs uasbench.testing against the installed
    plugin: every check passes, the slow lesion check included."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=EXAMPLE,
                         env=plugin_env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]
    checks = len(list(method_checks(type("AnyLearnedMethod", (), {"name": "any"}))))  # every check applies
    assert f"{checks} passed" in out.stdout
