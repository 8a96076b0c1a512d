"""Folders described by a ``dataset.json``: nnU-Net v2 raw datasets and the Medical Segmentation Decathlon.

* ``nnunet``: ``dataset.json`` with ``channel_names`` ({"0": "T2", ...}), ``labels`` ({"background": 0, ...})
  and ``file_ending``; images ``imagesTr/<case>_<4-digit channel><ending>``, labels ``labelsTr/<case><ending>``.
* ``msd``: ``dataset.json`` with ``modality`` ({"0": "FLAIR", ...}), ``labels`` ({"0": "background", ...}) and
  a ``training`` list of {"image", "label"}; a multi-channel image is one 4-D file.

Channel names are mapped to the toolkit's modalities (``T1gd`` -> ``t1ce``); a name the toolkit does not know
is refused with one line, since guessing what a channel is would corrupt every result made from it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from uasbench.data.layouts.base import LABEL, Case, Dataset, Labels, Layout
from uasbench.errors import UasbenchError
from uasbench.modalities import MODALITIES, known_names, modality_from_name

DATASET_JSON = "dataset.json"


def _read_json(root: Path) -> dict[str, Any] | None:
    path = root / DATASET_JSON
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UasbenchError(f"{path}: not readable JSON ({' '.join(str(exc).split())})") from None
    return raw if isinstance(raw, dict) else None


def _channels(path: Path, key: str, raw: Any) -> dict[str, int]:
    """modality -> channel index from {"0": "FLAIR", ...}; unknown or repeated names are refused."""
    if not isinstance(raw, dict) or not raw:
        raise UasbenchError(f"{path}: key {key} must map channel numbers to names, e.g. {{\"0\": \"FLAIR\"}}")
    channels: dict[str, int] = {}
    for index, name in raw.items():
        modality = modality_from_name(str(name))
        if not str(index).isdigit() or modality is None:
            raise UasbenchError(f"{path}: {key} channel {index!s} {name!r} is not a known modality (known names: "
                                f"{known_names()}; write a dataset card for other data)")
        if modality in channels:
            raise UasbenchError(f"{path}: {key} names {modality} twice")
        channels[modality] = int(index)
    return dict(sorted(channels.items(), key=lambda kv: MODALITIES.index(kv[0])))


def _labels(path: Path, pairs: list[tuple[str, Any]]) -> Labels:
    """Labels from (name, value) pairs: every non-zero value anomalous, nnU-Net's ``ignore`` label ignored."""
    meaning: dict[int, str] = {}
    ignored: set[int] = set()
    for name, value in pairs:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) and not (isinstance(v, str) and v.isdigit()):
                raise UasbenchError(f"{path}: label {name!r} has value {v!r}, expected an integer")
            meaning.setdefault(int(v), name)
            if name == "ignore":
                ignored.add(int(v))
    return Labels(meaning, frozenset(meaning) | {0}, ignored=frozenset(ignored))


class NnUnet(Layout):
    name = "nnunet"
    naming = "dataset.json (channel_names, labels, file_ending) + imagesTr/<case>_0000<ending> + labelsTr/<case><ending>"
    space = "as the dataset was made (one grid per case)"

    def detect(self, root: Path) -> bool:
        raw = _read_json(root)
        return raw is not None and "channel_names" in raw and (root / "imagesTr").is_dir()

    def open(self, root: Path) -> Dataset:
        raw = _read_json(root)
        path = root / DATASET_JSON
        if raw is None or "channel_names" not in raw:
            raise UasbenchError(f"no nnU-Net dataset in {root} (expected {self.naming})")
        channels = _channels(path, "channel_names", raw["channel_names"])
        ending = raw.get("file_ending", ".nii.gz")
        if ending not in (".nii.gz", ".nii"):
            raise UasbenchError(f"{path}: file_ending {ending!r} is not NIfTI (.nii.gz or .nii)")
        labels = raw.get("labels", {})
        if not isinstance(labels, dict):
            raise UasbenchError(f"{path}: key labels must map names to values, e.g. {{\"background\": 0}}")
        images = root / "imagesTr"
        ids = sorted({p.name[: -len(ending) - 5] for p in images.glob(f"*_[0-9][0-9][0-9][0-9]{ending}")})
        if not ids:
            raise UasbenchError(f"no nnU-Net cases in {images} (expected <case>_0000{ending})")
        cases = []
        for cid in ids:
            names = {m: f"{cid}_{i:04d}{ending}" for m, i in channels.items()} | {LABEL: f"{cid}{ending}"}
            files = {m: p for m, n in names.items() if (p := (root / ("labelsTr" if m == LABEL else "imagesTr") / n)).is_file()}
            cases.append(Case(cid, images, self.name, files, expected=names))
        return Dataset(root, self.name, tuple(cases), tuple(channels), _labels(path, list(labels.items())))


class Msd(Layout):
    name = "msd"
    naming = "dataset.json (modality, labels, training) + imagesTr/<case>.nii.gz (4-D for several channels) + labelsTr/"
    space = "as the task was made (Task01_BrainTumour: BraTS's SRI24 1 mm grid)"

    def detect(self, root: Path) -> bool:
        raw = _read_json(root)
        return raw is not None and "modality" in raw and "training" in raw

    def open(self, root: Path) -> Dataset:
        raw = _read_json(root)
        path = root / DATASET_JSON
        if raw is None or "modality" not in raw or "training" not in raw:
            raise UasbenchError(f"no Decathlon dataset in {root} (expected {self.naming})")
        channels = _channels(path, "modality", raw["modality"])
        labels = raw.get("labels", {})
        if not isinstance(labels, dict) or not isinstance(raw["training"], list):
            raise UasbenchError(f"{path}: labels must map values to names and training must be a list")
        cases = []
        for entry in raw["training"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
                raise UasbenchError(f"{path}: every training entry needs an \"image\" path, got {entry!r}")
            image = root / entry["image"]
            cid = next((image.name[: -len(e)] for e in (".nii.gz", ".nii") if image.name.endswith(e)), image.name)
            files = {m: image for m in channels if image.is_file()}
            label = entry.get("label")
            if isinstance(label, str) and (root / label).is_file():
                files[LABEL] = root / label
            expected = {m: image.name for m in channels} | {LABEL: str(label)}
            multi = dict(channels) if len(channels) > 1 else {}
            cases.append(Case(cid, image.parent, self.name, files, channels=multi, expected=expected))
        if not cases:
            raise UasbenchError(f"{path}: the training list is empty")
        return Dataset(root, self.name, tuple(sorted(cases, key=lambda c: c.id)), tuple(channels),
                       _labels(path, [(str(name), value) for value, name in labels.items()]))
