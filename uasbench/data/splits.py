"""Subject-level train/val/test splits: seeded 80/10/10, or read from a user's ``subject,split`` CSV.

A generated split depends only on the sorted subject IDs and the seed (numpy's PCG64, never Python's
``hash()`` or set order), so it is the same on every machine. It is stored under
``cache_root()/splits/`` with its SHA-256 beside it and reused, after checking the checksum, whenever
the same subjects and seed come back (re-touching the files of a dataset keeps its split).
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from uasbench.errors import UasbenchError
from uasbench.files import write_text_atomic
from uasbench.paths import cache_root

SPLITS = ("train", "val", "test")
FRACTIONS = {"val": 0.1, "test": 0.1}


@dataclass(frozen=True)
class Split:
    """Which subjects go where; ``path`` is the CSV it was read from or written to."""

    assignment: dict[str, str]  # subject -> train | val | test
    path: Path
    sha256: str

    def subjects(self, split: str) -> list[str]:
        return sorted(s for s, name in self.assignment.items() if name == split)


def make_assignment(subjects: list[str], seed: int, tumour: Collection[str] | None = None) -> dict[str, str]:
    """80/10/10 by subject. Small sets: at least one test subject from 2 subjects, one val from 3.

    With ``tumour`` (the subjects with tumour in the protocol's slices), those subjects are handed out first,
    alternately to test and validation, so that a small dataset's validation split is not left without a
    tumour slice (its thresholds would be undefined); the seeded order decides within each group."""
    ids = sorted(set(subjects))
    n = len(ids)
    if n < 2:
        raise UasbenchError(f"a split needs at least 2 subjects, the dataset has {n}; pass a split file")
    n_test = max(1, round(n * FRACTIONS["test"]))
    n_val = max(1, round(n * FRACTIONS["val"])) if n >= 3 else 0
    order = list(np.random.default_rng(seed).permutation(n))
    roles = ["test"] * n_test + ["val"] * n_val + ["train"] * (n - n_test - n_val)
    if tumour is not None:
        with_tumour = set(tumour)
        order.sort(key=lambda i: ids[i] not in with_tumour)  # stable: tumour subjects first, seeded order kept
        pairs = min(n_test, n_val)
        roles = (["test", "val"] * pairs + ["test"] * (n_test - pairs) + ["val"] * (n_val - pairs)
                 + ["train"] * (n - n_test - n_val))
    return {ids[i]: role for i, role in zip(order, roles)}


def test_assignment(subjects: list[str], seed: int) -> dict[str, str]:
    """A test dataset's split in a cross-dataset run: a third of the subjects (at least one) validate the
    thresholds, the rest are tested; nothing is trained on."""
    ids = sorted(set(subjects))
    if len(ids) < 2:
        raise UasbenchError(f"a test dataset needs at least 2 subjects (validation and test), it has {len(ids)}; "
                            "pass a split file")
    n_val = max(1, round(len(ids) / 3))
    order = np.random.default_rng(seed).permutation(len(ids))
    return {ids[i]: "val" if k < n_val else "test" for k, i in enumerate(order)}


def to_csv(assignment: dict[str, str]) -> str:
    rows = "".join(f"{s},{assignment[s]}\n" for s in sorted(assignment))
    return "subject,split\n" + rows


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _few(names: list[str], n: int = 5) -> str:
    """The first ``n`` names for a one-line error message."""
    return ", ".join(names[:n]) + (" ..." if len(names) > n else "")


def parse_split_csv(path: Path, known: set[str] | None = None, *, need_train: bool = True) -> dict[str, str]:
    """Read and validate a ``subject,split`` CSV; every problem names the file (and the line). A test dataset of
    a cross-dataset run trains nothing (``need_train`` False)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (spreadsheet exports) is not data
    except (OSError, UnicodeDecodeError) as exc:
        raise UasbenchError(f"split file {path}: cannot read it ({exc})") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip().lower() for c in rows[0]] != ["subject", "split"]:
        raise UasbenchError(f"split file {path}: the first line must be the header 'subject,split'")
    assignment: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise UasbenchError(f"split file {path} line {line}: expected 2 columns 'subject,split', got {len(row)}")
        subject, split = row[0].strip(), row[1].strip().lower()
        if split not in SPLITS:
            raise UasbenchError(f"split file {path} line {line}: split {row[1]!r} is not one of {', '.join(SPLITS)}")
        if subject in assignment:
            what = "twice" if assignment[subject] == split else f"in both {assignment[subject]} and {split}"
            raise UasbenchError(f"split file {path} line {line}: subject {subject} appears {what}")
        assignment[subject] = split
    if known is not None:
        unknown = sorted(set(assignment) - known)
        if unknown:
            raise UasbenchError(f"split file {path}: {len(unknown)} subject(s) not in the dataset: {_few(unknown)}")
    if need_train and not any(s == "train" for s in assignment.values()):
        raise UasbenchError(f"split file {path}: no subject is assigned to train")
    return assignment


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def subjects_fingerprint(subjects: list[str]) -> str:
    return sha256_text("\n".join(sorted(set(subjects))))[:16]


def default_split(subjects: list[str], seed: int, assign: Callable[[list[str], int], dict[str, str]] = make_assignment,
                  name: str = "", *, need_train: bool = True) -> Split:
    """The seeded split of ``subjects`` (by ``assign``; ``name`` tells other rules' files apart), from the cache
    when present (checksum verified), else written there."""
    path = cache_root() / "splits" / f"{subjects_fingerprint(subjects)}-seed{seed}{name}.csv"
    checksum = path.with_name(path.name + ".sha256")
    if path.is_file() and checksum.is_file():
        digest = sha256_file(path)
        if checksum.read_text().split()[0] != digest:
            raise UasbenchError(f"split file {path} does not match its checksum {checksum.name}; delete both to regenerate")
        return Split(parse_split_csv(path, set(subjects), need_train=need_train), path, digest)
    text = to_csv(assign(subjects, seed))
    if path.is_file() and path.read_text() != text:  # edited, or its checksum lost: never overwrite silently
        raise UasbenchError(f"split file {path} has no checksum file and differs from the seeded split; "
                            f"pass it with --split to use it, or delete it to regenerate")
    _write_atomic(path, text)
    _write_atomic(checksum, f"{sha256_text(text)}  {path.name}\n")
    return Split(parse_split_csv(path, set(subjects), need_train=need_train), path, sha256_text(text))


def read_id_list(path: Path) -> list[str]:
    """Subject IDs one per line, as the official MMCCD lists (``brats_split_training.txt``); blank lines and
    ``#`` comments are skipped. An ID listed twice is an error naming the file."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UasbenchError(f"subject list {path}: cannot read it ({exc})") from None
    ids = [s for line in lines if (s := line.split("#", 1)[0].strip())]
    seen: set[str] = set()
    for subject in ids:
        if subject in seen:
            raise UasbenchError(f"subject list {path}: subject {subject} is listed twice")
        seen.add(subject)
    if not ids:
        raise UasbenchError(f"subject list {path}: no subject IDs in it")
    return ids


def assignment_from_lists(train: Path, test: Path, *, val: Path | None = None, val_last: int = 0,
                          dataset: list[str] | None = None, val_rest: bool = False) -> dict[str, str]:
    """A split from subject lists, e.g. the official MMCCD ones, which ship no validation list.

    Validation comes from one of: ``val`` (a third list); ``val_last`` (the last N IDs of the train list, the
    convention of the authors' follow-up IterMask2: N = 128); ``val_rest`` (the ``dataset`` subjects in no
    list: the 138 BraTS2021 subjects missing from the official lists). With ``dataset``, every listed ID must
    be one of its subjects.
    """
    if sum([val is not None, val_last > 0, val_rest]) > 1:
        raise UasbenchError("choose one source of validation subjects: --val-list, --val-last or --val-rest")
    if val_last < 0:
        raise UasbenchError(f"--val-last must be >= 0, got {val_last}")
    if val_rest and dataset is None:
        raise UasbenchError("--val-rest needs --data: the validation subjects are the dataset's unlisted ones")
    lists = {"train": read_id_list(train), "test": read_id_list(test)}
    if val is not None:
        lists["val"] = read_id_list(val)
    if val_last:
        if val_last >= len(lists["train"]):
            raise UasbenchError(f"--val-last {val_last}: the train list {train} has only {len(lists['train'])} "
                                "subjects, and some must stay for training")
        lists["train"], lists["val"] = lists["train"][:-val_last], lists["train"][-val_last:]
    files = {"train": train, "test": test, "val": val if val is not None else train}
    assignment: dict[str, str] = {}
    for role, ids in lists.items():
        for subject in ids:
            if subject in assignment:
                raise UasbenchError(f"subject {subject} is in both {files[assignment[subject]]} "
                                    f"({assignment[subject]}) and {files[role]} ({role})")
            assignment[subject] = role
    if dataset is not None:
        unknown = sorted(set(assignment) - set(dataset))
        if unknown:
            raise UasbenchError(f"{len(unknown)} listed subject(s) are not in the dataset: {_few(unknown)}")
        if val_rest:
            assignment.update({s: "val" for s in sorted(set(dataset) - set(assignment))})
    return assignment


def write_split_csv(assignment: dict[str, str], out: Path) -> str:
    """Write a split as the ``subject,split`` CSV every run can take with ``--split``; returns its SHA-256.
    An existing different file is never overwritten."""
    out = Path(out)
    text = to_csv(assignment)
    if out.exists() and (not out.is_file() or out.read_text() != text):
        raise UasbenchError(f"--out {out} already exists (and differs); choose another path or delete it")
    _write_atomic(out, text)
    return sha256_text(text)


def load_split(subjects: list[str], seed: int, split_file: Path | None, *, need_train: bool = True) -> Split:
    """A user's split file when given (validated against ``subjects``), else the seeded default split."""
    if split_file is None:
        return default_split(subjects, seed)
    return Split(parse_split_csv(split_file, set(subjects), need_train=need_train), Path(split_file),
                 sha256_file(split_file))
