"""The run manifest as a type: what one run records about itself (``manifest.json`` in its folder).

Every writer builds a ``RunManifest`` and every reader goes through ``RunManifest.from_dict``, which checks
each field against its type hint (through ``config_check``, the one validation path) so a manifest edited by
hand or planted in a shared folder is one line naming the field, never a crash deep in a reader.

Versions: manifests written before this type existed carry no ``manifest_version`` and read as version 1;
version 2 adds the field itself. Keys a newer writer adds that this reader does not know are kept in
``extra`` and written back unchanged, so a manifest survives a round trip through an older uasbench.

The preprocessing recipe is stored under the key ``protocol`` (the attribute is ``preparation``): checkpoints,
work folders and benchmark grids identify a run by that key, so renaming it on disk would make every earlier
run look like another one.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from uasbench.config_check import Problem, check_fields
from uasbench.errors import UasbenchError

MANIFEST = "manifest.json"
#: The version this uasbench writes; a manifest without the field is version 1.
MANIFEST_VERSION = 2
#: Attribute -> stored key, where the two differ.
_STORED_AS = {"preparation": "protocol"}
_ATTRIBUTE = {key: name for name, key in _STORED_AS.items()}
#: The order of the stored keys (as runs wrote them before the type existed), then ``extra``, then ``complete``.
_ORDER = ("manifest_version", "method", "method_source", "profile", "overrides", "config", "pair", "train_modalities",
          "test_modalities", "seed", "data_root", "data_fingerprint", "split_file", "split_sha256", "preparation",
          "postprocess", "data_report", "counts", "versions", "code_revision", "device", "wall_times_s", "created",
          "workdir", "rescored_from", "rescored_fields")


@dataclasses.dataclass(frozen=True)
class RunManifest:
    """What ran (method, profile, config, pair, seed), on what (data, split, preprocessing, post-processing),
    how (versions, code revision, device, wall times) and whether the run folder is complete."""

    method: str
    profile: str
    pair: str
    seed: int
    manifest_version: int = 1
    method_source: str | None = None
    overrides: dict[str, Any] | None = None  # the --set fields that make the config differ from its profile
    config: dict[str, Any] | None = None
    train_modalities: list[str] | None = None
    test_modalities: list[str] | None = None
    data_root: str | None = None
    data_fingerprint: str | None = None
    split_file: str | None = None
    split_sha256: str | None = None
    preparation: dict[str, Any] | None = None  # the preprocessing recipe, stored as "protocol"
    postprocess: dict[str, Any] | None = None
    data_report: dict[str, Any] | None = None
    counts: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    code_revision: str | None = None
    device: dict[str, Any] | None = None
    wall_times_s: dict[str, Any] | None = None
    created: str | None = None
    workdir: str | None = None
    rescored_from: str | None = None  # rescored runs: the parent run folder and the fields changed
    rescored_fields: dict[str, Any] | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # keys of a newer writer, kept as read
    complete: bool = False

    @property
    def override_values(self) -> dict[str, Any]:
        """``overrides``, ``{}`` when none were recorded."""
        return self.overrides or {}

    def to_dict(self) -> dict[str, Any]:
        """The manifest as stored: ``manifest_version`` first, ``complete`` last, unset fields left out."""
        stored = {_STORED_AS.get(name, name): getattr(self, name) for name in _ORDER if getattr(self, name) is not None}
        return {**stored, **self.extra, "complete": self.complete}

    @classmethod
    def from_dict(cls, data: Any, source: str | Path = MANIFEST) -> "RunManifest":
        """A stored manifest, each known field checked against its type (UasbenchError ``SOURCE: seed is '0',
        not an integer``; ``SOURCE lacks seed``); unknown keys go to ``extra``."""
        if not isinstance(data, dict):
            raise UasbenchError(f"{source} holds a JSON {type(data).__name__}, not a run manifest (an object)")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known, extra = {}, {}
        for key, value in data.items():
            name = _ATTRIBUTE.get(key, key)
            if name in names and key not in _STORED_AS:
                known[name] = value
            else:
                extra[key] = value
        try:
            checked = check_fields(cls, known)
        except Problem as problem:
            key = _STORED_AS.get(problem.keys[0], problem.keys[0])
            if problem.kind == "missing":
                raise UasbenchError(f"{source} lacks {key}") from None
            raise UasbenchError(f"{source}: {key} is {problem.value!r}, not {problem.expected}") from None
        return cls(**checked, extra=extra)


def read_manifest_file(path: Path, *, complete: bool = True, required: tuple[str, ...] = ()) -> RunManifest:
    """The manifest at ``path`` (``run_dir/manifest.json``): a missing, unreadable or malformed one, one without
    a stored key of ``required``, and (with ``complete``) one not marked complete are a UasbenchError naming it."""
    run_dir = path.parent
    if not path.is_file():
        raise UasbenchError(f"{run_dir} is not a run directory (no {MANIFEST})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UasbenchError(f"{path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise UasbenchError(f"cannot read {path}: {exc.strerror or exc}") from None
    if complete and isinstance(data, dict) and data.get("complete") is not True:
        raise UasbenchError(f"run {run_dir} did not finish (manifest not marked complete)")
    manifest = RunManifest.from_dict(data, path)
    missing = [key for key in required if key not in data]
    if missing:
        raise UasbenchError(f"{path} lacks {', '.join(missing)}; it was not written by `uasbench run`")
    return manifest
