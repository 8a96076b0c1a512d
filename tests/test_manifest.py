"""The typed run manifest: written and read through one type, each field checked as written, old manifests
(without a version) still readable, keys of a newer writer kept."""
from __future__ import annotations

import json
import re

import pytest

from uasbench.errors import UasbenchError
from uasbench.manifest import MANIFEST, MANIFEST_VERSION, RunManifest, read_manifest_file

OLD = {"method": "ae", "pair": "fl-t2", "profile": "quick", "overrides": {}, "seed": 3,
       "train_modalities": ["input"], "data_fingerprint": "fp", "split_sha256": "s",
       "protocol": {"name": "mmccd", "version": 2}, "postprocess": {"median_size": 5}, "complete": True}


def test_a_manifest_without_a_version_reads_as_version_1_and_round_trips():
    manifest = RunManifest.from_dict(OLD)
    assert manifest.manifest_version == 1 and manifest.seed == 3
    assert manifest.preparation == {"name": "mmccd", "version": 2}  # stored under its old key "protocol"
    assert manifest.to_dict() == {"manifest_version": 1, **OLD}
    assert list(manifest.to_dict())[-1] == "complete"


def test_keys_of_a_newer_writer_are_kept_as_read():
    stored = {**OLD, "manifest_version": MANIFEST_VERSION + 1, "datasets": {"train": "a", "test": "b"}}
    manifest = RunManifest.from_dict(stored)
    assert manifest.extra == {"datasets": {"train": "a", "test": "b"}}
    assert manifest.to_dict()["datasets"] == {"train": "a", "test": "b"}


@pytest.mark.parametrize(("change", "message"), [
    ({"seed": "0"}, "seed is '0', not an integer"),
    ({"seed": True}, "seed is True, not an integer"),
    ({"method": 7}, "method is 7, not a string"),
    ({"overrides": [1]}, "overrides is [1], not"),
    ({"protocol": "mmccd"}, "protocol is 'mmccd', not"),
    ({"complete": "yes"}, "complete is 'yes', not true or false"),
])
def test_a_field_of_the_wrong_type_is_one_line_naming_it(change, message):
    with pytest.raises(UasbenchError, match=re.escape(f"manifest.json: {message}")):
        RunManifest.from_dict({**OLD, **change})


def test_a_missing_field_or_a_list_is_refused():
    with pytest.raises(UasbenchError, match="lacks pair"):
        RunManifest.from_dict({k: v for k, v in OLD.items() if k != "pair"})
    with pytest.raises(UasbenchError, match="holds a JSON list, not a run manifest"):
        RunManifest.from_dict([1, 2])


def test_reading_a_file_checks_the_complete_flag_and_required_keys(tmp_path):
    path = tmp_path / MANIFEST
    path.write_text(json.dumps({**OLD, "complete": False}))
    with pytest.raises(UasbenchError, match="did not finish"):
        read_manifest_file(path)
    assert read_manifest_file(path, complete=False).complete is False
    path.write_text(json.dumps({k: v for k, v in OLD.items() if k != "postprocess"}))
    with pytest.raises(UasbenchError, match="lacks postprocess"):
        read_manifest_file(path, required=("postprocess",))


def test_every_field_has_its_place_in_the_stored_order():
    from dataclasses import fields

    from uasbench.manifest import _ORDER

    assert set(_ORDER) == {f.name for f in fields(RunManifest)} - {"extra", "complete"}
