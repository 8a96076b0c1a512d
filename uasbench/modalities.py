"""Modality names and input/target pairs such as ``fl-t2`` or ``dwi-adc``: the one list of the toolkit's
modalities, in the order a slice cache stores them (BraTS's four first, so BraTS caches keep their layout)."""
from __future__ import annotations

from dataclasses import dataclass

from uasbench.errors import UsageError

# canonical name -> short name used in pairs (both spellings parse)
_SHORT_NAMES: dict[str, str] = {"flair": "fl", "t1": "t1", "t1ce": "t1ce", "t2": "t2", "pd": "pd", "dwi": "dwi",
                                "adc": "adc"}
MODALITIES: tuple[str, ...] = tuple(_SHORT_NAMES)
_PARSE = {**{m: m for m in MODALITIES}, **{short: m for m, short in _SHORT_NAMES.items()}}


def short_name(modality: str) -> str:
    """The name a pair uses for ``modality`` (``flair`` -> ``fl``)."""
    return _SHORT_NAMES[modality]


@dataclass(frozen=True)
class Pair:
    """Input modality X (scored at test time) and target modality Y (used in training by cyclic methods)."""

    input: str
    target: str

    @classmethod
    def parse(cls, text: str) -> "Pair":
        parts = text.lower().split("-")
        valid = f"any two of {', '.join(_SHORT_NAMES.values())} joined by '-', e.g. fl-t2, t1-fl, dwi-adc"
        if len(parts) != 2 or parts[0] not in _PARSE or parts[1] not in _PARSE:
            raise UsageError(f"invalid --pair {text!r}: use {valid}")
        pair = cls(_PARSE[parts[0]], _PARSE[parts[1]])
        if pair.input == pair.target:
            raise UsageError(f"invalid --pair {text!r}: input and target must differ ({valid})")
        return pair

    def __str__(self) -> str:
        return f"{short_name(self.input)}-{short_name(self.target)}"


# Names datasets give their channels (nnU-Net, Decathlon, file suffixes), compared lower-case without
# punctuation, mapped to the toolkit's modalities.
_ALIASES: dict[str, str] = {
    "flair": "flair", "t2f": "flair", "t2flair": "flair",
    "t1": "t1", "t1w": "t1", "t1n": "t1", "t1native": "t1",
    "t1ce": "t1ce", "t1c": "t1ce", "t1gd": "t1ce", "t1post": "t1ce", "t1wks": "t1ce", "t1contrast": "t1ce",
    "t2": "t2", "t2w": "t2",
    "pd": "pd", "pdw": "pd",
    "dwi": "dwi", "adc": "adc",
}


def modality_from_name(name: str) -> str | None:
    """The toolkit's modality a dataset's channel name means (``T1gd`` -> ``t1ce``), None when unknown."""
    return _ALIASES.get("".join(ch for ch in name.lower() if ch.isalnum()))


def known_names() -> str:
    """The channel names ``modality_from_name`` accepts, for error messages."""
    return ", ".join(sorted(_ALIASES))
