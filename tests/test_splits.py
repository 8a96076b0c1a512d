"""Subject-level splits: disjoint, deterministic, cached with a checksum; user split files validated."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uasbench.data.splits import (
    assignment_from_lists, default_split, load_split, make_assignment, parse_split_csv, sha256_file, write_split_csv,
)
from uasbench.errors import UasbenchError

IDS = [f"BraTS2021_{i:05d}" for i in range(100)]


def test_eighty_ten_ten_by_subject():
    a = make_assignment(IDS, seed=0)
    counts = {s: list(a.values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 80, "val": 10, "test": 10} and set(a) == set(IDS)


def test_deterministic_and_independent_of_input_order():
    assert make_assignment(IDS, 3) == make_assignment(list(reversed(IDS)), 3)
    assert make_assignment(IDS, 3) != make_assignment(IDS, 4)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 300), seed=st.integers(0, 2**32 - 1))
def test_every_subject_in_exactly_one_split(n, seed):
    ids = [f"S{i}" for i in range(n)]
    a = make_assignment(ids, seed)
    assert sorted(a) == sorted(ids)  # each subject once: a dict cannot hold two splits for one subject
    assert "test" in a.values() and "train" in a.values()
    assert ("val" in a.values()) == (n >= 3)


def test_too_few_subjects():
    with pytest.raises(UasbenchError, match="at least 2 subjects"):
        make_assignment(["only"], 0)


def test_default_split_is_cached_with_checksum_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("UASBENCH_CACHE_DIR", str(tmp_path))
    first = default_split(IDS, seed=1)
    assert first.path.parent == tmp_path / "splits" and first.sha256 == sha256_file(first.path)
    assert first.path.read_text().splitlines()[0] == "subject,split"
    assert Path(str(first.path) + ".sha256").read_text().split()[0] == first.sha256
    mtime = first.path.stat().st_mtime_ns
    again = default_split(list(reversed(IDS)), seed=1)
    assert again == first and first.path.stat().st_mtime_ns == mtime
    assert default_split(IDS, seed=2).path != first.path
    assert default_split(IDS[:50], seed=1).path != first.path
    first.path.write_text(first.path.read_text().replace("test", "train"))
    with pytest.raises(UasbenchError, match="checksum"):
        default_split(IDS, seed=1)
    checksum = Path(str(first.path) + ".sha256")
    checksum.unlink()  # an edited split without its checksum is refused, not overwritten
    with pytest.raises(UasbenchError, match="no checksum file and differs"):
        default_split(IDS, seed=1)
    first.path.unlink()
    assert default_split(IDS, seed=1) == first and checksum.is_file()  # deleting both regenerates it
    checksum.unlink()
    assert default_split(IDS, seed=1) == first and checksum.is_file()  # an intact split gets its checksum back


def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "split.csv"
    path.write_text(body)
    return path


@pytest.mark.parametrize("body,message", [
    ("id,fold\nA,train\n", "header"),
    ("subject,split\nA,train\nB,holdout\n", "line 3: split 'holdout'"),
    ("subject,split\nA,train\nA,train\n", "subject A appears twice"),
    ("subject,split\nA,train\nB,test\nA,test\n", "subject A appears in both train and test"),
    ("subject,split\nA,train\nZ,test\n", "not in the dataset: Z"),
    ("subject,split\nA,val\nB,test\n", "no subject is assigned to train"),
    ("subject,split\nA,train,extra\n", "expected 2 columns"),
])
def test_bad_split_file_names_the_file(tmp_path, body, message):
    path = _csv(tmp_path, body)
    with pytest.raises(UasbenchError, match=message) as info:
        parse_split_csv(path, {"A", "B", "C"})
    assert str(path) in str(info.value)


def test_user_split_may_leave_val_empty_and_subjects_out(tmp_path):
    path = _csv(tmp_path, "subject,split\nTCGA-DU-7294,train\n TCGA-FG-6692 , Test\n\n")
    split = load_split(["TCGA-DU-7294", "TCGA-FG-6692", "OTHER"], 0, path)
    assert split.assignment == {"TCGA-DU-7294": "train", "TCGA-FG-6692": "test"}
    assert split.subjects("val") == [] and split.path == path and split.sha256 == sha256_file(path)


def test_unreadable_split_file(tmp_path):
    with pytest.raises(UasbenchError, match="missing.csv"):
        parse_split_csv(tmp_path / "missing.csv")


def _lists(tmp_path: Path, **lists: str) -> dict[str, Path]:
    paths = {}
    for name, body in lists.items():
        paths[name] = tmp_path / f"{name}.txt"
        paths[name].write_text(body)
    return paths


def test_official_style_lists_with_the_last_ids_as_validation(tmp_path):
    p = _lists(tmp_path, train="A\nB\n\nC  \nD\n", test="E\n# a comment\nF\n")
    assignment = assignment_from_lists(p["train"], p["test"], val_last=2)
    assert assignment == {"A": "train", "B": "train", "C": "val", "D": "val", "E": "test", "F": "test"}
    out = tmp_path / "split.csv"
    digest = write_split_csv(assignment, out)
    assert digest == sha256_file(out) and parse_split_csv(out) == assignment
    assert write_split_csv(assignment, out) == digest  # rewriting the same split is harmless
    with pytest.raises(UasbenchError, match="already exists"):
        write_split_csv({**assignment, "A": "val"}, out)


def test_validation_from_a_list_or_from_the_unlisted_dataset_subjects(tmp_path):
    p = _lists(tmp_path, train="A\nB\n", test="C\n", val="D\n")
    assert assignment_from_lists(p["train"], p["test"], val=p["val"])["D"] == "val"
    rest = assignment_from_lists(p["train"], p["test"], dataset=["A", "B", "C", "X", "Y"], val_rest=True)
    assert rest == {"A": "train", "B": "train", "C": "test", "X": "val", "Y": "val"}


@pytest.mark.parametrize("lists, kwargs, message", [
    ({"train": "A\nB\nA\n", "test": "C\n"}, {}, "train.txt: subject A is listed twice"),
    ({"train": "A\nB\n", "test": "B\n"}, {}, "subject B is in both"),
    ({"train": "A\n", "test": "\n\n"}, {}, "test.txt: no subject IDs"),
    ({"train": "A\nB\n", "test": "C\n"}, {"val_last": 2}, "--val-last 2"),
    ({"train": "A\nB\n", "test": "C\n"}, {"val_rest": True}, "--val-rest needs --data"),
    ({"train": "A\nB\n", "test": "C\n"}, {"val_last": 1, "val_rest": True, "dataset": ["A"]}, "choose one"),
    ({"train": "A\nB\n", "test": "Z\n"}, {"dataset": ["A", "B", "C"]}, "not in the dataset: Z"),
])
def test_bad_lists_are_named(tmp_path, lists, kwargs, message):
    p = _lists(tmp_path, **lists)
    with pytest.raises(UasbenchError, match=message):
        assignment_from_lists(p["train"], p["test"], **kwargs)


def test_split_command_from_lists_and_seeded(tmp_path, real_brats_root):
    from typer.testing import CliRunner

    from uasbench.cli import app

    p = _lists(tmp_path, train="TCGA-DU-7294\n", test="TCGA-FG-6692\n")
    out = tmp_path / "official.csv"
    result = CliRunner().invoke(app, ["data", "split", "--train-list", str(p["train"]), "--test-list", str(p["test"]),
                                      "--data", str(real_brats_root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 train, 0 val, 1 test" in result.output
    assert load_split(["TCGA-DU-7294", "TCGA-FG-6692"], 0, out).subjects("test") == ["TCGA-FG-6692"]
    seeded = tmp_path / "seeded.csv"
    result = CliRunner().invoke(app, ["data", "split", "--data", str(real_brats_root), "--seed", "3",
                                      "--out", str(seeded)])
    assert result.exit_code == 0, result.output
    from uasbench.data.benchmark_data import open_dataset_cache, tumour_subjects
    from uasbench.data.preprocess import Protocol

    tumour = tumour_subjects(open_dataset_cache(real_brats_root, Protocol(), progress=False)[1])
    assert parse_split_csv(seeded) == make_assignment(["TCGA-DU-7294", "TCGA-FG-6692"], 3, tumour=tumour)
    result = CliRunner().invoke(app, ["data", "split", "--train-list", str(p["train"]), "--out", str(seeded)])
    assert result.exit_code == 2 and "--test-list" in result.stderr
