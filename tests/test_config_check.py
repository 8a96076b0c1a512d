"""config_check, the one validation path of typed inputs: hints, choices, bounds and cross-field rules of a
dataclass, reported as one line naming the key (and the file, for a table of a structured file)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from uasbench.config_check import Invalid, checked_table
from uasbench.errors import UsageError


@dataclass(frozen=True)
class Table:
    kind: Literal["a", "b"] = "a"
    jobs: int = field(default=1, metadata={"min": 1, "max": 64})
    share: float = field(default=0.5, metadata={"above": 0, "below": 1})
    low: int = 0
    high: int = 10
    name: str = field(default="x", metadata={"expected": "a run name"})

    def validate(self) -> None:
        if self.low > self.high:
            raise Invalid("low", f"must be <= high ({self.high})")


@dataclass(frozen=True)
class Needs:
    what: str


@pytest.mark.parametrize("values, message", [
    ({"kind": "c"}, "f.toml: settings.kind: must be one of a, b, got 'c'"),
    ({"jobs": 65}, "f.toml: settings.jobs: must be an integer >= 1 and <= 64, got 65"),
    ({"jobs": 0}, "f.toml: settings.jobs: must be an integer >= 1 and <= 64, got 0"),
    ({"share": 1.0}, "f.toml: settings.share: must be a number > 0 and < 1, got 1.0"),
    ({"low": 11}, "f.toml: settings.low: must be <= high (10)"),
    ({"name": 3}, "f.toml: settings.name: must be a run name, got 3"),
    ({"jbos": 2}, "f.toml: settings.jbos: unknown key (valid: kind, jobs, share, low, high, name)"),
    ([1, 2], "f.toml: settings: must be a table ([settings]), got list"),
])
def test_a_bad_table_is_one_line_naming_file_and_dotted_key(values: object, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        checked_table(Table, values, source="f.toml", key="settings")
    assert str(caught.value) == message and caught.value.exit_code == 2


def test_a_good_table_is_converted_and_a_missing_field_named() -> None:
    table = checked_table(Table, {"kind": "b", "jobs": 64.0, "share": 0.25}, source="f.toml", key="settings")
    assert (table.kind, table.jobs, table.share) == ("b", 64, 0.25) and type(table.jobs) is int
    with pytest.raises(UsageError, match=r"^f.toml: needs.what: missing$"):
        checked_table(Needs, {}, source="f.toml", key="needs")
