"""Apply a finished run to new scans: the run's preprocessing, method, post-processing and threshold, with
the maps put back on each scan's own grid.

What is reused from the run, so that a map means what it meant in the benchmark: the recorded protocol
(normalisation, input-modality brain mask, resize), the method and its checkpoint (through the registry),
the recorded post-processing, and a validation-tuned threshold from ``metrics.json``. Scans are read by the
slice cache's own reader (``read_case``: the dataset's layout or card, its brain-mask file, the run's
spatial standard, statistics of the scan as stored), so a scan stored in another orientation (RAS, LAS,
LPI, ...) or on another grid is sliced as the run's data was; the maps are then put back onto the scan's own
grid (exactly, when the standard only reoriented, padded or cropped it). Slices are scored one at a time: a
slice's map then depends neither on which other slices or cases are predicted with it nor on ``--slices``
(the diffusion methods key their noise by a slice's position in what they score).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uasbench.data.layouts.base import BadCaseError, read_case
from uasbench.data.preprocess import Preparation, prepare_slices, resize
from uasbench.data.slices import SliceSet
from uasbench.data.spatial import SpatialRecord, standard_shape
from uasbench.errors import UasbenchError, UsageError
from uasbench.evaluation.metrics import overlap
from uasbench.evaluation.postprocess import PostProcess, apply_postprocess
from uasbench.method import AnomalyMethod, resolve_device
from uasbench.modalities import Pair
from uasbench.predict.cases import Scan, check_grid, find_cases, open_scan, select_cases
from uasbench.predict.nifti import check_output_folder, like_scan, save_together
from uasbench.registry import get_method
from uasbench.manifest import RunManifest
from uasbench.results import CHECKPOINT, CROSS_VOLUMES, METRICS_JSON, read_manifest

THRESHOLD_NAMES = ("val_dice", "fpr_1", "fpr_5")
SLICE_CHOICES = ("protocol", "all")


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """What a run directory says about how to score: read without loading the network."""

    path: Path
    manifest: RunManifest
    pair: Pair
    protocol: Preparation
    post: PostProcess
    thresholds: dict[str, dict[str, Any]]
    tuned_on: str | None = None  # a cross-dataset run: the test dataset whose volume-level thresholds these are

    @classmethod
    def read(cls, run_dir: Path, tuned_on: str | None = None) -> "TrainedRun":
        """The run in ``run_dir``. A cross-dataset run tuned its thresholds per test dataset: ``tuned_on`` names
        the one whose validation data tuned those offered (optional when it was tested on one)."""
        run_dir = Path(run_dir)
        manifest = read_manifest(run_dir, required=("postprocess",))
        if not (run_dir / CHECKPOINT).is_file():
            raise UasbenchError(f"run {run_dir} has no {CHECKPOINT}: nothing to predict with")
        post = PostProcess.from_dict(manifest.postprocess or {})
        tested_on = list(manifest.extra.get("datasets", {}).get("test", {}))
        if tested_on:
            source = _cross_thresholds(run_dir, tested_on, tuned_on, post)
            tuned_on = source.stem
        elif tuned_on is not None:
            raise UsageError(f"--tuned-on {tuned_on}: run {run_dir} is not a cross-dataset run; its thresholds were "
                             "tuned on its own validation split")
        else:
            source = run_dir / METRICS_JSON
        try:
            thresholds = json.loads(source.read_text())["thresholds"]
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise UasbenchError(f"run {run_dir}: cannot read the thresholds in {source.name} ({exc})") from None
        return cls(run_dir, manifest, Pair.parse(manifest.pair), _recorded_protocol(manifest, run_dir), post,
                   thresholds, tuned_on)

    def threshold(self, choice: str | float) -> tuple[str, float]:
        """(name, value) of ``--threshold``: a number as given, or one the run tuned on validation data."""
        if not isinstance(choice, str):
            return "value", float(choice)
        entry = self.thresholds.get(choice) or {}
        if entry.get("value") is None:
            reason = entry.get("reason") or "not recorded"
            raise UasbenchError(f"--threshold {choice}: run {self.path} has no such threshold ({reason}); "
                                "pick another or give a number")
        return choice, float(entry["value"])

    def load_method(self, device: str | None) -> AnomalyMethod:
        """The trained method on ``device`` (default: the kind of device the run used)."""
        if device is None:
            device = (self.manifest.device or {}).get("type", "cpu")
            if device == "cuda" and not torch.cuda.is_available():
                raise UsageError(f"run {self.path} ran on cuda and no CUDA device is available here; "
                                 "pass --device cpu")
        return get_method(self.manifest.method).load(self.path / CHECKPOINT, device=resolve_device(device))


def _cross_thresholds(run_dir: Path, tested_on: list[str], tuned_on: str | None, post: PostProcess) -> Path:
    """The file holding a cross-dataset run's thresholds for whole volumes (what predict produces): the
    volume level of the test dataset ``tuned_on``. Refuses 3-D post-processing, which predict does not apply."""
    if post.median_3d or post.min_component_voxels:
        raise UasbenchError(f"run {run_dir} post-processes whole volumes (median_3d={post.median_3d}, "
                            f"min_component_voxels={post.min_component_voxels}), which predict does not apply; "
                            "predict with a run made without --median-3d and --min-component")
    if tuned_on is None:
        if len(tested_on) > 1:
            raise UsageError(f"run {run_dir} was tested on {', '.join(tested_on)}, each with its own thresholds: "
                             "say whose with --tuned-on NAME")
        tuned_on = tested_on[0]
    if tuned_on not in tested_on:
        raise UsageError(f"--tuned-on {tuned_on}: run {run_dir} was tested on {', '.join(tested_on)}")
    return run_dir / CROSS_VOLUMES / f"{tuned_on}.json"


def _recorded_protocol(manifest: RunManifest, run_dir: Path) -> Preparation:
    """The run's data preparation (a cross-dataset run records it with its datasets)."""
    recorded = manifest.preparation or manifest.extra.get("datasets", {}).get("preparation", {}).get("protocol")
    if recorded is None:
        raise UasbenchError(f"run {run_dir}: its manifest records no preprocessing protocol; it was not written "
                            "by `uasbench run`")
    try:
        protocol = Preparation.from_dict(recorded)
    except TypeError as exc:
        raise UasbenchError(f"run {run_dir}: its preprocessing protocol is not one this uasbench knows ({exc})") from None
    current = Preparation()
    if (protocol.name, protocol.version) != (current.name, current.version):
        raise UasbenchError(f"run {run_dir} used protocol {protocol.name} v{protocol.version}; this uasbench "
                            f"implements {current.name} v{current.version}: train the run again")
    return protocol


def parse_threshold(text: str) -> str | float:
    """``val_dice``, ``fpr_1``, ``fpr_5`` or a finite number; anything else is a usage error."""
    if text in THRESHOLD_NAMES:
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(f"invalid --threshold {text!r}: use {', '.join(THRESHOLD_NAMES)} or a number "
                         "(test-tuned thresholds are not offered)")
    return value


def slices_to_score(slices: str, protocol: Preparation, depth: int) -> range:
    """The axial slices to score: the protocol's slab or every slice of the scan."""
    return protocol.z_range(depth) if slices == "protocol" else range(depth)


@dataclasses.dataclass(frozen=True)
class CaseSummary:
    """One line of the summary table (the volumes themselves are written, not kept)."""

    case: str
    slices: int
    flagged_voxels: int
    dice: float | None
    seconds: float  # reading, preprocessing, scoring, resampling and writing


@dataclasses.dataclass(frozen=True)
class CasePrediction:
    """One scan's result. ``maps`` are the method's raw maps on the protocol grid (what a run stores in
    ``scores.npz``); ``anomaly`` and ``segmentation`` are on the scan's own grid; ``z`` and ``dice`` refer to
    the standard grid (``spatial`` says what it took to get there from the scan)."""

    case: str
    z: range
    maps: np.ndarray  # (N, S, S) float32
    anomaly: np.ndarray  # (H, W, D) float32, zero outside the brain and the scored slices
    segmentation: np.ndarray  # (H, W, D) uint8
    dice: float | None  # whole tumour on the scored slices (standard grid), when the case has labels
    spatial: SpatialRecord | None = None


def score_slices(method: AnomalyMethod, x: np.ndarray, brain: np.ndarray, case: str, z: range,
                 advance: Callable[[], None] = lambda: None) -> np.ndarray:
    """The method's maps of (N, S, S) slices, one slice per call (see the module docstring)."""
    maps = []
    for i, zi in enumerate(z):
        one = SliceSet(x=x[i:i + 1], brain=brain[i:i + 1], subjects=(case,), z=np.array([zi]))
        maps.append(method.score(one)[0])
        advance()
    return np.stack(maps)


def to_scan_grid(maps: np.ndarray, brain: np.ndarray, scan_brain: np.ndarray,
                 post: PostProcess) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S) method maps -> (N, H, W) maps on the scan's grid and the mask they are defined on.

    The run's post-processing comes first, on the grid its threshold was tuned on; then bilinear
    resampling, and zero outside the scan's brain (``vol > 0``) and the run's evaluation mask.
    """
    processed, mask = apply_postprocess(maps, brain, post)
    shape = scan_brain.shape[-2:]
    inside = scan_brain & (resize(mask, shape, mode="bilinear") >= 0.5)
    return np.where(inside, resize(processed, shape, mode="bilinear"), 0).astype(np.float32), inside


def standard_depth(scan: Scan, protocol: Preparation) -> int:
    """How many axial slices the scan has once on the run's spatial standard (headers only)."""
    return standard_shape({scan.modality: scan.image}, protocol.spatial)[2]


def predict_scan(method: AnomalyMethod, run: TrainedRun, scan: Scan, z: range, threshold: float,
                 advance: Callable[[], None] = lambda: None) -> CasePrediction:
    """Score the slab ``z`` (of the standard grid) of one scan and return its maps on the method's grid and
    on the scan's own grid. The scan is read and prepared as the run's slice cache prepared its data (the
    same reader: brain-mask file, spatial standard, statistics of the scan as stored)."""
    vols = read_case(scan.dataset, scan.case, (scan.modality,), run.protocol.spatial, axial=z, label_optional=True)
    slab = vols.images[scan.modality]  # the axial positions z of the standard grid
    try:
        x, brain = prepare_slices(slab, scan.modality, run.protocol, range(len(z)), native=vols.native[scan.modality])
    except ValueError as exc:
        raise BadCaseError(scan.case.id, f"file {scan.case.files[scan.modality].name}: {exc}") from None
    maps = score_slices(method, x, brain, scan.case.id, z, advance)
    anomaly, inside = to_scan_grid(maps, brain, np.moveaxis(slab, 2, 0) > 0, run.post)
    flagged = (anomaly > threshold) & inside
    dice = None
    labels = scan.dataset.labels
    if vols.seg is not None and labels is not None:
        ignored = labels.ignore(vols.seg)
        scored = inside if ignored is None else inside & ~np.moveaxis(ignored, 2, 0)
        truth = np.moveaxis(labels.anomaly(vols.seg), 2, 0) & scored
        # one "slice" holding the whole slab: a volume Dice with the metrics' empty-mask rule
        dice = float(overlap((flagged & scored).reshape(1, -1, 1), truth.reshape(1, -1, 1))[0]["dice"][0])
    shape = vols.spatial.grid.shape
    anomaly_std = np.zeros(shape, dtype=np.float32)
    anomaly_std[:, :, z.start:z.stop] = np.moveaxis(anomaly, 0, 2)
    segmentation_std = np.zeros(shape, dtype=np.uint8)
    segmentation_std[:, :, z.start:z.stop] = np.moveaxis(flagged, 0, 2)
    anomaly_out = vols.spatial.to_scan(anomaly_std, scan.image, nearest=False).astype(np.float32, copy=False)
    segmentation_out = vols.spatial.to_scan(segmentation_std, scan.image, nearest=True)
    return CasePrediction(scan.case.id, z, maps, np.ascontiguousarray(anomaly_out),
                          np.ascontiguousarray(segmentation_out), dice, vols.spatial)


def where_scored(result: CasePrediction) -> str:
    """The slab in words, with what the spatial standard did to the scan when it did anything."""
    z = f"z {result.z.start}..{result.z.stop - 1}"
    if result.spatial is None or result.spatial.untouched:
        return z
    return f"{z} of the standard grid after: {'; '.join(result.spatial.lines())}"


def output_paths(out: Path, case: str) -> tuple[Path, Path]:
    return out / f"{case}_anomaly.nii.gz", out / f"{case}_anomaly_seg.nii.gz"


def predict(run_dir: Path, data: Path, out: Path, *, cases: list[str] | None = None, slices: str = "protocol",
            threshold: str = "val_dice", device: str | None = None, progress: bool = True,
            log: Callable[[str], None] = print, layout: str | None = None, card: Path | None = None,
            tuned_on: str | None = None) -> list[CaseSummary]:
    """Check everything, then predict every selected case and write its two NIfTI files into ``out``.

    Every check that can fail on the user's input (run folder, threshold, cases, grids, output folder)
    happens before the first slice is scored.
    """
    from rich.progress import Progress

    if slices not in SLICE_CHOICES:
        raise UsageError(f"invalid --slices {slices!r}: use {' or '.join(SLICE_CHOICES)}")
    choice = parse_threshold(threshold)
    run = TrainedRun.read(run_dir, tuned_on)
    name, value = run.threshold(choice)
    modality = run.pair.input
    dataset = find_cases(data, modality, layout, card)
    scans = [open_scan(dataset, c, modality) for c in select_cases(dataset.cases, cases or [], data)]
    depths = [standard_depth(scan, run.protocol) for scan in scans]
    slabs = [slices_to_score(slices, run.protocol, depth) for depth in depths]
    for scan, z, depth in zip(scans, slabs, depths):
        check_grid(scan, z, depth)
    out = check_output_folder(out)
    method = run.load_method(device)
    log(f"{run.manifest.method} {run.pair} from {run.path}: {len(scans)} case(s), {modality} input, "
        f"threshold {name} = {value:.6g}" + (f" (volume level, tuned on {run.tuned_on})" if run.tuned_on else ""))

    results = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("Scoring", total=sum(len(z) for z in slabs))
        for scan, z in zip(scans, slabs):
            bar.update(task, description=f"Scoring {scan.case.id}")
            start = time.perf_counter()
            result = predict_scan(method, run, scan, z, value, lambda: bar.advance(task))
            what = f"uasbench {run.manifest.method} {run.pair}"
            map_path, seg_path = output_paths(out, scan.case.id)
            save_together({map_path: like_scan(result.anomaly, scan.image, f"{what} anomaly map"),
                           seg_path: like_scan(result.segmentation, scan.image, f"{what} {name} > {value:.6g}")})
            summary = CaseSummary(scan.case.id, len(z), int(result.segmentation.sum()), result.dice,
                                  time.perf_counter() - start)
            where = where_scored(result)
            if result.dice is not None:
                dice = f"Dice {result.dice:.4f} on {where}"
            else:
                dice = "no label" if result.spatial.untouched else f"no label, scored {where}"
            log(f"{scan.case.id}: wrote {map_path.name}, {seg_path.name} ({dice}, {summary.seconds:.1f} s)")
            results.append(summary)
    return results
