"""The plugin passes uasbench's contract kit: run ``python -m pytest tests`` in this folder after installing it."""
from uasbench.testing import parametrize_with_checks

from uasbench_example_plugin.local_contrast import LocalContrast


@parametrize_with_checks([LocalContrast])
def test_uasbench_contract(method, check):
    check(method)
