"""The layout is the architecture: a plugin never imports another plugin, and a lower layer never imports a
higher one. Read from the source with ``ast`` (every import, also those inside functions), so the rule holds
for code paths no other test runs."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = "uasbench_methods"

#: Layers from the bottom up; a module may import its own layer and those below it. ``base`` holds the helpers
#: every layer shares (errors, paths, file writing, config checks, the lists of choices, checkpoints,
#: modalities); ``interface`` is the method contract (``AnomalyMethod``, its configs and costs) that the shared
#: networks of ``nn`` implement parts of; ``methods`` the registry and the plugins.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("uasbench.errors", "uasbench.paths", "uasbench.files", "uasbench.config_check", "uasbench.choices",
              "uasbench.checkpoints", "uasbench.modalities")),
    ("data", ("uasbench.data",)),
    ("interface", ("uasbench.method",)),
    ("nn", ("uasbench.nn",)),
    ("methods", ("uasbench.registry", "uasbench.testing", PLUGINS)),
    ("evaluation", ("uasbench.evaluation",)),
    ("results", ("uasbench.results", "uasbench.manifest", "uasbench.benchmark", "uasbench.predict")),
    ("report", ("uasbench.report",)),
    ("cli", ("uasbench.cli", "uasbench.__main__", "uasbench")),  # the package root re-exports the public API
]

#: Imports that break the order today, each with the change that removes it. Every entry must still exist
#: (the test fails when one is gone, so the list only shrinks).
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> list[Path]:
    return sorted([*(ROOT / "uasbench").rglob("*.py"), *(ROOT / PLUGINS).rglob("*.py")])


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (``from a.b import c`` counts as ``a.b.c`` when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if (ROOT / Path(*node.module.split("."), alias.name)).with_suffix(".py").exists())
    return {name for name in found if name.split(".")[0] in ("uasbench", PLUGINS)}


def _layer(module: str) -> int:
    """Index of the layer of ``module``: the longest matching prefix decides (``uasbench`` itself is last)."""
    best, index = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, index = len(prefix), i
    assert index >= 0, f"{module} belongs to no layer: add it to LAYERS"
    return index


@pytest.mark.parametrize("path", sorted((ROOT / PLUGINS).glob("*.py")), ids=lambda p: p.stem)
def test_no_plugin_imports_another_plugin(path: Path) -> None:
    others = {name for name in _imports(path) if name.startswith(PLUGINS)}
    assert not others, f"{path.name} imports {sorted(others)}: shared method pieces belong in uasbench/nn/"


def test_no_layer_imports_a_higher_one() -> None:
    found = set()
    for path in _modules():
        module = _module_name(path)
        for imported in _imports(path):
            if _layer(imported) > _layer(module):
                found.add((module, imported))
    unexpected = sorted(found - set(KNOWN_VIOLATIONS))
    assert not unexpected, "lower layers import higher ones:\n" + "\n".join(
        f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})" for a, b in unexpected)
    fixed = sorted(set(KNOWN_VIOLATIONS) - found)
    assert not fixed, f"no longer violated, remove from KNOWN_VIOLATIONS: {fixed}"


def test_the_import_reader_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from uasbench.report import leaderboard\n    import uasbench_methods.ae\n")
    assert _imports(source) == {"uasbench.report", "uasbench.report.leaderboard", "uasbench_methods.ae"}
