"""Modality names and input/target pairs such as ``fl-t2``."""
from __future__ import annotations

from dataclasses import dataclass

from uasbench.errors import UsageError

MODALITIES: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")
_SHORT = {"fl": "flair", "flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2"}
_ABBREV = {"flair": "fl", "t1": "t1", "t1ce": "t1ce", "t2": "t2"}


@dataclass(frozen=True)
class Pair:
    """Input modality X (scored at test time) and target modality Y (used in training by cyclic methods)."""

    input: str
    target: str

    @classmethod
    def parse(cls, text: str) -> "Pair":
        parts = text.lower().split("-")
        valid = "any two of fl, t1, t1ce, t2 joined by '-', e.g. fl-t2, t1-fl"
        if len(parts) != 2 or parts[0] not in _SHORT or parts[1] not in _SHORT:
            raise UsageError(f"invalid --pair {text!r}: use {valid}")
        pair = cls(_SHORT[parts[0]], _SHORT[parts[1]])
        if pair.input == pair.target:
            raise UsageError(f"invalid --pair {text!r}: input and target must differ ({valid})")
        return pair

    def __str__(self) -> str:
        return f"{_ABBREV[self.input]}-{_ABBREV[self.target]}"
