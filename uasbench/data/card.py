"""A dataset card: a small TOML file (``dataset.toml`` next to the data, or ``--card FILE``) that says how to read
a folder no built-in layout knows.

    [dataset]
    name = "my-ms-study"
    [files]                       # one pattern per modality, relative to the data folder
    flair = "{case}/FLAIR.nii.gz" # {case} is the case ID (no "/"), * any characters within one folder name
    t1 = "{case}/T1*.nii.gz"
    label = "{case}/lesions.nii.gz"
    [labels]
    anomalous = [1]
    ignored = [2]

Every key is a field of one of the dataclasses below, checked by ``uasbench.config_check`` from the field's type
hint and bounds, so a wrong value is one line naming the dotted key and what is allowed. ``describe_keys`` lists
the keys for the reference page.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
import typing
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

from uasbench.config_check import _describe, checked_values
from uasbench.data.layouts.base import BRAIN, LABEL, NONZERO, Case, Dataset, Labels
from uasbench.errors import UasbenchError, UsageError
from uasbench.modalities import MODALITIES

CARD_FILE = "dataset.toml"
CASE = "{case}"
_LABEL_VALUE = {"min": 0, "max": 255}


@dataclass(frozen=True)
class CardDataset:
    """The ``[dataset]`` table."""

    name: str = field(default="", metadata={"help": "A name shown by `data inspect` (default: the folder's name)."})
    healthy: bool = field(default=False, metadata={
        "help": "true: every case is healthy and there are no label files (a training set such as IXI)."})
    brain_mask: str = field(default=NONZERO, metadata={
        "help": "\"nonzero\": the brain is the non-zero voxels of each skull-stripped image; or a file pattern "
                "with {case} of a brain-mask file (images are zeroed outside it)."})
    same_grid: bool = field(default=True, metadata={
        "help": "true: every file of a case must share one voxel grid (checked); false: the spatial standard "
                "brings the modalities onto one grid."})
    skull_stripped: bool = field(default=True, metadata={"help": "Whether the images are skull-stripped."})


CardFiles = make_dataclass(
    "CardFiles",
    [(m, str | None, field(default=None, metadata={"help": f"File pattern of the {m} image."})) for m in MODALITIES]
    + [("label", str | None, field(default=None, metadata={
        "help": "File pattern of the label file (required unless dataset.healthy is true)."}))],
    frozen=True)
CardFiles.__doc__ = "The ``[files]`` table: a pattern per modality (at least one) and for the label file."


@dataclass(frozen=True)
class CardLabels:
    """The ``[labels]`` table."""

    anomalous: list[int] | None = field(default=None, metadata={**_LABEL_VALUE, "help": (
        "Label values that make the anomaly mask (default: every non-zero value that is not ignored).")})
    ignored: list[int] = field(default_factory=list, metadata={**_LABEL_VALUE, "help": (
        "Label values left out of scoring (e.g. another pathology); their voxels count neither way.")})
    allowed: list[int] | None = field(default=None, metadata={**_LABEL_VALUE, "help": (
        "The values a label file may hold; any other value makes the case bad (default: any value 0..255).")})
    names: list[str] = field(default_factory=list, metadata={
        "help": "Optional meaning of each value, as \"VALUE=NAME\" strings, shown by `data inspect`."})


_TABLES: dict[str, type] = {"dataset": CardDataset, "files": CardFiles, "labels": CardLabels}


@dataclass(frozen=True)
class DatasetCard:
    """A checked card, with the file it came from."""

    path: Path
    dataset: CardDataset
    files: Any  # CardFiles
    labels: CardLabels
    digest: str

    @property
    def patterns(self) -> dict[str, str]:
        """name -> pattern of every file the card names (modalities, ``seg``, ``brainmask``)."""
        out = {m: getattr(self.files, m) for m in MODALITIES if getattr(self.files, m) is not None}
        if self.files.label is not None:
            out[LABEL] = self.files.label
        if self.dataset.brain_mask != NONZERO:
            out[BRAIN] = self.dataset.brain_mask
        return out


def describe_keys() -> list[tuple[str, str, str, str]]:
    """(dotted key, what it takes, default, meaning) of every card key, for the reference page."""
    rows = []
    for table, cls in _TABLES.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            bounds = {k: v for k, v in f.metadata.items() if k in ("min", "max", "above")}
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            rows.append((f"{table}.{f.name}", _describe(hints[f.name], bounds),
                         "none" if default is None else json.dumps(default), f.metadata.get("help", "")))
    return rows


def _fail(path: Path, key: str, problem: str) -> UsageError:
    return UsageError(f"{path.name}: key {key}: {problem}")


def _checked(path: Path, table: str, cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise _fail(path, table, "expected a table ([" + table + "])")
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise _fail(path, f"{table}.{unknown[0]}", f"unknown key (valid: {', '.join(valid)})")
    values = {}
    for key, value in raw.items():
        try:
            values.update(checked_values(cls, {key: value}, "dataset card"))
        except UsageError as exc:
            raise _fail(path, f"{table}.{key}", "expected " + str(exc).partition(": expected ")[2]) from None
    return cls(**values)


def _check_pattern(path: Path, key: str, pattern: str) -> None:
    if not pattern or pattern.startswith("/") or ".." in Path(pattern).parts:
        raise _fail(path, key, f"{pattern!r} must be a path relative to the data folder")
    if CASE not in pattern:
        raise _fail(path, key, f"{pattern!r} must contain {CASE} (the case ID)")


def load_card(path: Path) -> DatasetCard:
    """Read and check a card; UsageError naming the file and the dotted key of the first problem."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--card {path}: no such file")
    try:
        text = path.read_bytes()
        raw = tomllib.loads(text.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path.name}: not valid TOML ({' '.join(str(exc).split())})") from None
    unknown = sorted(set(raw) - set(_TABLES))
    if unknown:
        raise _fail(path, unknown[0], f"unknown table (valid: {', '.join(_TABLES)})")
    if "files" not in raw:
        raise _fail(path, "files", "missing table [files] (a file pattern per modality, e.g. flair = \"{case}/FLAIR.nii.gz\")")
    tables = {name: _checked(path, name, cls, raw.get(name, {})) for name, cls in _TABLES.items()}
    dataset, files, labels = tables["dataset"], tables["files"], tables["labels"]
    card = DatasetCard(path, dataset, files, labels, hashlib.sha256(text).hexdigest()[:16])
    modalities = [m for m in MODALITIES if getattr(files, m) is not None]
    if not modalities:
        raise _fail(path, "files", f"name at least one modality ({', '.join(MODALITIES)})")
    if dataset.healthy and files.label is not None:
        raise _fail(path, "files.label", "a healthy-only dataset (dataset.healthy = true) has no label files")
    if not dataset.healthy and files.label is None:
        raise _fail(path, "files.label", "missing (or set dataset.healthy = true for a dataset without labels)")
    for name, pattern in card.patterns.items():
        _check_pattern(path, {LABEL: "files.label", BRAIN: "dataset.brain_mask"}.get(name, f"files.{name}"), pattern)
    overlap = set(labels.anomalous or ()) & set(labels.ignored)
    if overlap:
        raise _fail(path, "labels.ignored", f"value(s) {sorted(overlap)} are also anomalous")
    for item in labels.names:
        if not re.fullmatch(r"\d+=.+", item):
            raise _fail(path, "labels.names", f"{item!r}: expected \"VALUE=NAME\", e.g. \"1=lesion\"")
    return card


def _regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\{case\}|\*)", pattern)
    out, seen = [], False
    for part in parts:
        if part == CASE:
            out.append("(?P=case)" if seen else "(?P<case>[^/]+)")
            seen = True
        else:
            out.append("[^/]*" if part == "*" else re.escape(part))
    return re.compile("".join(out))


def _file(root: Path, pattern: str, case_id: str) -> Path | None:
    """The one file ``pattern`` names for ``case_id`` (None when none or several match)."""
    concrete = pattern.replace(CASE, case_id)
    if "*" not in concrete:
        path = root / concrete
        return path if path.is_file() else None
    matches = [p for p in root.glob(concrete) if p.is_file()]
    return matches[0] if len(matches) == 1 else None


def open_card_dataset(root: Path, card: DatasetCard) -> Dataset:
    """The cases of ``root`` as the card describes them: IDs from the first modality's pattern."""
    patterns = card.patterns
    first = next(iter(patterns))
    regex = _regex(patterns[first])
    ids = sorted({m.group("case") for p in root.glob(patterns[first].replace(CASE, "*"))
                  if (m := regex.fullmatch(p.relative_to(root).as_posix()))})
    if not ids:
        raise UasbenchError(f"no cases in {root} match {card.path.name}'s files.{first} = {patterns[first]!r}")
    cases = tuple(Case(cid, root, "card", {name: p for name, pat in patterns.items() if (p := _file(root, pat, cid))},
                       expected={name: pat.replace(CASE, cid) for name, pat in patterns.items()}) for cid in ids)
    labels = None
    if not card.dataset.healthy:
        lab = card.labels
        meaning = {int(v): n for v, _, n in (item.partition("=") for item in lab.names)}
        labels = Labels(meaning, None if lab.allowed is None else frozenset(lab.allowed) | {0},
                        None if lab.anomalous is None else frozenset(lab.anomalous), frozenset(lab.ignored))
    modalities = tuple(m for m in MODALITIES if m in patterns)
    return Dataset(root, "card", cases, modalities, labels, name=card.dataset.name or root.name,
                   brain_mask=NONZERO if card.dataset.brain_mask == NONZERO else "file",
                   same_grid=card.dataset.same_grid, skull_stripped=card.dataset.skull_stripped, card=card.digest)
