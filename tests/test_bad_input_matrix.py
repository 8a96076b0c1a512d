"""The bad-input matrix, through the real command line in a subprocess: every case exits non-zero with exactly
one ``error:`` line naming the culprit, prints no traceback, and leaves nothing that looks like a finished run
(no new run directory, no changed metrics, no output file).

Read-only folders are made with chmod; when the tests run as root (who ignores permission bits), the command
runs without the capabilities that let root write anywhere (``setpriv``), like an ordinary user.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from test_brats_loader import write_case
from test_layouts import CARD_ERRORS
from uasbench.benchmark.run import RunSpec, run_one
from uasbench.modalities import Pair
from uasbench.results import MANIFEST, METRICS_JSON, SCORES, manifest_paths

pytestmark = pytest.mark.slow
MARKER_NAME = "pwned"


class _RunsCode:
    """Pickled, this asks the loader to call ``open(marker, "w")``: a file appears if the pickle is executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@dataclass
class World:
    root: Path
    data: Path
    split: Path
    healthy_test_split: Path
    intensity_run: Path  # a finished run to evaluate, rank and draw
    trained_out: Path  # results folder of a finished AE run, with its .work checkpoints
    readonly: Path
    extra: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("matrix")
    data = root / "data"
    for i in range(6):  # SYN_005 has no tumour: a test split of it alone has nothing to evaluate
        write_case(data, f"SYN_{i:03d}", seed=i, tumour_z=None if i == 5 else (80, 84))
    split = root / "split.csv"
    split.write_text("subject,split\nSYN_000,train\nSYN_001,train\nSYN_002,train\nSYN_003,val\nSYN_004,test\n")
    healthy = root / "healthy_test.csv"
    healthy.write_text("subject,split\nSYN_000,train\nSYN_001,train\nSYN_003,val\nSYN_005,test\n")
    common = dict(pair=Pair.parse("fl-t2"), device="cpu", data_root=data, split_file=split, n_bootstrap=20)
    run, _ = run_one(RunSpec(method="intensity", out=root / "results", **common), log=lambda _: None)
    trained = root / "trained"
    run_one(RunSpec(method="ae", out=trained, overrides={"iterations": 2}, **common), log=lambda _: None)
    readonly = root / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    return World(root, data, split, healthy, run, trained, readonly)


def _unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permission bits cannot be enforced")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", caps, "--inh-caps", caps]


def _snapshot(world: World) -> dict[str, str]:
    """Every finished-looking file of the test world with its content: what a failed command must not change."""
    seen = {}
    for results in (world.intensity_run.parent, world.trained_out, world.root / "copies"):
        if results.is_dir():
            for manifest in manifest_paths(results):
                for name in (MANIFEST, METRICS_JSON):
                    path = manifest.parent / name
                    seen[str(path)] = path.read_text() if path.is_file() else ""
    for entry in (*world.root.iterdir(), *world.readonly.iterdir()):  # an output that should not exist
        seen[f"entry:{entry}"] = ""
    return seen


def _copy_run(world: World, name: str) -> Path:
    copy = world.root / "copies" / name
    shutil.copytree(world.intensity_run, copy)
    return copy


# Each case: (id, function(world) -> (argv, env changes, run unprivileged), exit code, message fragment).
def _set(method: str, option: str):
    return lambda w: (["run", "--method", method, "--set", option, "--out", str(w.root / "results")], {}, False)


def _run_out(out_of):
    return lambda w: (["run", "--method", "intensity", "--out", str(out_of(w))], {}, False)


def _evaluate_broken_manifest(name: str, content: str):
    def build(w: World):
        run = _copy_run(w, name)
        (run / MANIFEST).write_text(content)
        return ["evaluate", str(run)], {}, False
    return build


def _evaluate_random_scores(w: World):
    run = _copy_run(w, "random-scores")
    (run / SCORES).write_bytes(os.urandom(4096))
    return ["evaluate", str(run)], {}, False


def _evaluate_readonly_run(w: World):
    run = _copy_run(w, "readonly-run")
    run.chmod(0o555)
    return ["evaluate", str(run)], {}, True


def _readonly_cache(w: World):
    cache = w.root / "readonly-cache"
    cache.mkdir(mode=0o555)
    return (["run", "--method", "intensity", "--data", str(w.data), "--split", str(w.split), "--out",
             str(w.root / "results"), "--device", "cpu"], {"UASBENCH_CACHE_DIR": str(cache)}, True)


def _crafted_work_checkpoint(w: World):
    """A crafted pickle in place of a training checkpoint, in a copy of the trained results folder (the other
    cases keep reading the genuine one, whatever order they run in)."""
    out = w.root / "crafted"
    shutil.copytree(w.trained_out, out)
    (ckpt,) = out.glob(".work/*/ckpt_ae.pt")
    torch.save({"net": _RunsCode(w.root / MARKER_NAME)}, ckpt)
    return (["run", "--method", "ae", "--set", "iterations=2", "--data", str(w.data), "--split", str(w.split),
             "--out", str(out), "--device", "cpu"], {}, False)


def _file(w: World) -> Path:
    path = w.root / "a-file.txt"
    path.write_text("not a folder\n")
    return path


CASES = [
    ("set-iterations-abc", _set("ddpm", "iterations=abc"), 2,
     "invalid option iterations='abc' for method 'ddpm': expected an integer >= 1"),
    ("set-lr-fast", _set("ae", "lr=fast"), 2, "invalid option lr='fast' for method 'ae': expected a number > 0"),
    ("set-resolution-abc", _set("mmccd", "resolution=abc"), 2,
     "invalid option resolution='abc' for method 'mmccd': expected an integer >= 1"),
    ("set-iterations-0-ddpm", _set("ddpm", "iterations=0"), 2, "invalid option iterations=0 for method 'ddpm'"),
    ("set-channels-0-pddpm", _set("pddpm", "channels=0"), 2,
     "invalid option channels=0 for method 'pddpm': expected an integer >= 1"),
    ("set-dropout-2-anoddpm", _set("anoddpm", "dropout=2"), 2,
     "invalid option dropout=2 for method 'anoddpm': expected a number >= 0 and <= 1"),
    ("set-iterations-neg-mmccd", _set("mmccd", "iterations=-5"), 2,
     "invalid option iterations=-5 for method 'mmccd': expected an integer >= 1"),
    ("set-iterations-0-cyclic", _set("cyclic_unet", "iterations=0"), 2,
     "invalid option iterations=0 for method 'cyclic_unet'"),
    ("set-iterations-2.5", _set("cyclic_unet", "iterations=2.5"), 2,
     "invalid option iterations=2.5 for method 'cyclic_unet': expected an integer >= 1"),
    ("out-is-a-file", _run_out(_file), 1, "is a file, not a folder"),
    ("out-under-a-file", _run_out(lambda w: _file(w) / "results"), 1, "lies under the file"),
    ("out-under-readonly", lambda w: (["run", "--method", "intensity", "--out", str(w.readonly / "results")],
                                      {}, True), 1, "cannot be created: no permission to write in"),
    ("cache-readonly", _readonly_cache, 1, "permission denied (this is the uasbench cache"),
    ("split-out-readonly", lambda w: (["data", "split", "--data", str(w.data), "--out",
                                       str(w.readonly / "split.csv")], {}, True), 1,
     "is not writable (permission denied)"),
    ("phantom-out-readonly", lambda w: (["data", "phantom", "--subjects", "1", "--out",
                                         str(w.readonly / "phantom")], {}, True), 1,
     "cannot be created: no permission to write in"),
    ("leaderboard-output-readonly", lambda w: (["leaderboard", str(w.intensity_run.parent), "--output",
                                                str(w.readonly / "board.md")], {}, True), 1,
     "is not writable (permission denied)"),
    ("figure-output-readonly", lambda w: (["figure", str(w.intensity_run.parent), "--output",
                                           str(w.readonly / "fig.png")], {}, True), 1,
     "is not writable (permission denied)"),
    ("evaluate-readonly-run", _evaluate_readonly_run, 1, "is not writable (permission denied)"),
    ("evaluate-manifest-list", _evaluate_broken_manifest("list", "[1, 2]"), 1, "holds a JSON list, not a run manifest"),
    ("evaluate-manifest-no-postprocess", _evaluate_broken_manifest(
        "no-postprocess", json.dumps({"complete": True, "method": "intensity", "pair": "fl-t2", "profile": "quick", "seed": 0})), 1,
     "lacks postprocess"),
    ("evaluate-random-scores", _evaluate_random_scores, 1, "not a .npz archive"),
    ("figure-examples-0", lambda w: (["figure", str(w.intensity_run.parent), "--examples", "0",
                                      "--output", str(w.root / "fig.png")], {}, False), 2, "--examples 0"),
    ("all-healthy-test-split", lambda w: (["run", "--method", "intensity", "--data", str(w.data), "--split",
                                           str(w.healthy_test_split), "--out", str(w.root / "results"),
                                           "--device", "cpu"], {}, False), 1,
     "the test split has no slice with tumour"),
    ("crafted-work-checkpoint", _crafted_work_checkpoint, 1,
     "refused: it holds more than plain data (it asks for io.open)"),
]


# --- dataset layouts, cards and modalities (issue 21) ---
def _with_card(text: str, name: str, command: list[str]):
    def build(w: World):
        card = w.root / "cards" / f"{name}.toml"
        card.parent.mkdir(exist_ok=True)
        card.write_text(text)
        swap = {"DATA": str(w.data), "OUT": str(w.root / "results"), "RUN": str(w.intensity_run)}
        return [*(swap.get(c, c) for c in command), "--card", str(card)], {}, False
    return build


def _benchmark_layout(w: World):
    path = w.root / "cards" / "bad-layout.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'[benchmark]\ndata = "{w.data}"\nlayout = "brats"\n[[grid]]\nmethods = ["intensity"]\n'
                    'pairs = ["fl-t2"]\n')
    return ["benchmark", str(path), "--out", str(w.root / "results")], {}, False


_RUN = ["run", "--method", "intensity", "--device", "cpu"]
CASES += [
    ("layout-unknown-run", lambda w: ([*_RUN, "--data", str(w.data), "--layout", "brats",
                                       "--out", str(w.root / "results")], {}, False), 2,
     "--layout brats: unknown layout (choose from brats2021, brats2023, ixi,"),
    ("layout-unknown-inspect", lambda w: (["data", "inspect", str(w.data), "--layout", "nope"], {}, False), 2,
     "--layout nope: unknown layout"),
    ("layout-wrong-for-folder", lambda w: (["data", "prepare", str(w.data), "--layout", "ixi"], {}, False), 1,
     "no ixi cases found in"),
    ("layout-without-data", lambda w: ([*_RUN, "--layout", "ixi", "--out", str(w.root / "results")], {}, False), 2,
     "--layout and --card describe a data folder: give the folder too"),
    ("layout-and-card", lambda w: (["data", "split", "--data", str(w.data), "--out", str(w.root / "s.csv"),
                                    "--layout", "brats2021", "--card", str(w.split)], {}, False), 2,
     "give --layout or --card, not both"),
    ("card-missing", lambda w: (["data", "inspect", str(w.data), "--card", str(w.root / "no.toml")], {}, False), 2,
     "no.toml: no such file"),
    ("pair-the-data-lacks", lambda w: ([*_RUN, "--pair", "dwi-adc", "--data", str(w.data),
                                        "--out", str(w.root / "results")], {}, False), 1,
     "has no dwi, adc; it holds flair, t1, t1ce, t2"),
    ("pair-unknown-modality", lambda w: ([*_RUN, "--pair", "ct-t2", "--out", str(w.root / "results")], {}, False), 2,
     "invalid --pair 'ct-t2': use any two of fl, t1, t1ce, t2, pd, dwi, adc"),
    ("phantom-layout-unknown", lambda w: (["data", "phantom", "--subjects", "1", "--out", str(w.root / "ph"),
                                           "--layout", "nope"], {}, False), 2, "--layout nope: unknown layout"),
    ("phantom-orientation", lambda w: (["data", "phantom", "--subjects", "1", "--out", str(w.root / "ph"),
                                        "--orientation", "LPX"], {}, False), 2,
     "--orientation 'LPX': give three axis codes"),
    ("benchmark-layout", _benchmark_layout, 2, "benchmark.layout: invalid value 'brats' (valid: brats2021,"),
    *((f"card-{i:02d}", _with_card(text, f"card-{i:02d}", ["data", "inspect", "DATA"]), 2, message)
      for i, (text, message) in enumerate(CARD_ERRORS)),
    ("card-through-run", _with_card(CARD_ERRORS[1][0], "run-card", [*_RUN, "--data", "DATA", "--out", "OUT"]), 2,
     CARD_ERRORS[1][1]),
]


# --- predict reads any dataset folder (issue 21) ---
def _predict(data, *extra: str):
    return lambda w: (["predict", str(w.intensity_run), "--data", str(data(w)), "--out", str(w.root / "maps"),
                       "--threshold", "0.5", *extra], {}, False)


def _one_scan(w: World) -> Path:
    return w.data / "SYN_004" / "SYN_004_flair.nii.gz"


CASES += [
    ("predict-layout-unknown", _predict(lambda w: w.data, "--layout", "nope"), 2, "--layout nope: unknown layout"),
    ("predict-layout-wrong-for-folder", _predict(lambda w: w.data, "--layout", "ixi"), 1,
     "no ixi cases found in"),
    ("predict-layout-and-card", _predict(lambda w: w.data, "--layout", "brats2021", "--card", "c.toml"), 2,
     "give --layout or --card, not both"),
    ("predict-layout-on-a-file", _predict(_one_scan, "--layout", "brats2021"), 2,
     "--layout and --card describe a data folder; --data"),
    ("predict-card-missing", _predict(lambda w: w.data, "--card", "missing-card.toml"), 2,
     "missing-card.toml: no such file"),
    ("predict-input-the-data-lacks", _predict(lambda w: _ixi_folder(w)), 1,
     "the run's input modality flair: dataset"),
    ("predict-tuned-on-a-within-dataset-run", _predict(lambda w: w.data, "--tuned-on", "ms"), 2,
     "--tuned-on ms: run"),
    ("register-unknown-run", lambda w: ([*_RUN, "--register", "talairach", "--out", str(w.root / "results")], {},
                                        False), 2, "Invalid value for '--register'"),
    ("register-unknown-prepare", lambda w: (["data", "prepare", str(w.data), "--register", "mni"], {}, False), 2,
     "Invalid value for '--register'"),
    ("benchmark-register", lambda w: (["benchmark", str(_bench_file(w, "register", 'register = "atlas"')),
                                       "--dry-run"], {}, False), 2, "benchmark.register: must be one of none, mni152, got 'atlas'"),
    *((f"predict-card-{i:02d}", _with_card(text, f"predict-card-{i:02d}", ["predict", "RUN", "--data", "DATA",
                                                                         "--out", "OUT"]), 2, message)
      for i, (text, message) in enumerate(CARD_ERRORS[:2])),
]


# --- cross-dataset runs and slice selection (issue 22) ---
def _ixi_folder(w: World) -> Path:
    """A healthy-only IXI-layout folder (T1 and T2 of two subjects): names are all its checks read first."""
    import nibabel as nib
    import numpy as np

    folder = w.root / "ixi"
    if not folder.is_dir():
        folder.mkdir()
        for i in range(2):
            for m in ("T1", "T2"):
                vol = np.zeros((12, 12, 92), np.int16)
                vol[2:-2, 2:-2, :] = 100 + i
                nib.save(nib.Nifti1Image(vol, np.eye(4)), folder / f"IXI00{i}-Guys-100{i}-{m}.nii.gz")
    return folder


def _lesions_only(w: World) -> Path:
    """A BraTS-layout folder whose every subject has a lesion: no healthy scan to train on."""
    folder = w.root / "lesions-only"
    if not folder.is_dir():
        for i in range(2):
            write_case(folder, f"LES_{i:03d}", seed=10 + i)
    return folder


def _cross(*extra: str, train=lambda w: w.data, tests=(lambda w: w.data,)):
    def build(w: World):
        argv = [*_RUN, "--pair", "t2-t1", "--train-data", str(train(w))]
        for t in tests:
            argv += ["--data", str(t(w))]
        return [*argv, *extra, "--out", str(w.root / "results")], {}, False
    return build


def _benchmark_toml(name: str, body: str):
    def build(w: World):
        path = w.root / "cards" / f"{name}.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(body.replace("DATA", str(w.data)))
        return ["benchmark", str(path), "--out", str(w.root / "results")], {}, False
    return build


_GRID = '[[grid]]\nmethods = ["intensity"]\npairs = ["t2-t1"]\n'
CASES += [
    ("cross-pair-a-test-dataset-lacks", lambda w: ([*_RUN, "--pair", "fl-t2", "--train-data", str(w.data), "--data",
                                            str(_lesions_only(w)), "--data", str(_ixi_folder(w)),
                                            "--out", str(w.root / "results")], {}, False), 1,
     "for modalities flair: dataset"),
    ("cross-train-without-healthy-subset", _cross(train=_lesions_only), 1,
     "is free of lesions: no healthy scan to train on"),
    ("cross-test-healthy-only", _cross(tests=(_ixi_folder,), train=_ixi_folder), 1,
     "a healthy-only dataset (ixi) has no lesions to test on"),
    ("cross-split-count", _cross("--split", "s.csv", tests=(lambda w: w.data, _lesions_only)), 2,
     "--split given 1 times for 2 --data folder(s)"),
    ("cross-layout-count", _cross("--layout", "brats2021", "--layout", "ixi", "--layout", "ixi"), 2,
     "--layout given 3 times for 1 --data folder(s)"),
    ("cross-no-test-data", lambda w: ([*_RUN, "--train-data", str(w.data), "--out", str(w.root / "results")],
                                      {}, False), 2, "--train-data needs at least one --data test dataset"),
    ("cross-train-data-missing", _cross(train=lambda w: w.root / "nowhere"), 1, "nowhere: no such folder"),
    ("cross-median-3d-too-large", _cross("--median-3d", "99"), 2,
     "invalid option median_3d=99 for post-processing (--median-3d): expected an integer >= 0 and <= 15"),
    ("cross-min-component-negative", _cross("--min-component", "-1"), 2,
     "invalid option min_component_voxels=-1 for post-processing (--min-component): expected an integer >= 0"),
    ("cross-volume-option-within-dataset", lambda w: ([*_RUN, "--min-component", "5", "--out", str(w.root / "results")],
                                                {}, False), 2, "--min-component and --median-3d act on whole volumes"),
    ("cross-several-data-without-train-data", lambda w: ([*_RUN, "--data", str(w.data), "--data", str(w.data),
                                                    "--out", str(w.root / "results")], {}, False), 2,
     "several test datasets need --train-data"),
    ("cross-train-layout-without-train-data", lambda w: ([*_RUN, "--train-layout", "ixi", "--out", str(w.root / "results")],
                                                   {}, False), 2, "--train-layout describes a --train-data folder"),
    ("cross-slices-brain-within-dataset", lambda w: ([*_RUN, "--slices", "brain", "--out", str(w.root / "results")],
                                               {}, False), 2, "--slices brain scores whole volumes"),
    ("cross-z-range-not-a-range", _cross("--z-range", "70"), 2, "--z-range '70': give START:STOP"),
    ("cross-z-range-reversed", _cross("--z-range", "90:70"), 1, "protocol options z_start=90, z_stop=70"),
    ("cross-toml-test-data-without-train-data", _benchmark_toml("no-train", f'[benchmark]\n[[test_data]]\npath = "DATA"\n{_GRID}'),
     2, "train_data: missing [[train_data]] entries"),
    ("cross-toml-min-component-bounds", _benchmark_toml("min-comp", f'[benchmark]\nmin_component = 200000\n[[train_data]]\n'
                                                  f'path = "DATA"\n[[test_data]]\npath = "DATA"\n{_GRID}'),
     2, "benchmark.min_component"),
    ("cross-toml-slices-within-dataset", _benchmark_toml("slices", f'[benchmark]\nslices = "brain"\n{_GRID}'), 2,
     "benchmark.slices: applies to a cross-dataset benchmark"),
    ("cross-toml-train-split", _benchmark_toml("train-split", f'[benchmark]\n[[train_data]]\npath = "DATA"\nsplit = "x.csv"\n'
                                          f'[[test_data]]\npath = "DATA"\n{_GRID}'), 1, "no such file"),
]


@pytest.mark.parametrize("build, code, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_leaves_no_finished_run(world, build, code, message):
    argv, env, unprivileged = build(world)
    before = _snapshot(world)
    proc = subprocess.run([*(_unprivileged() if unprivileged else []), sys.executable, "-m", "uasbench", *argv],
                          capture_output=True, text=True, timeout=600, cwd=world.root, env={**os.environ, **env})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert message in lines[0], lines[0]
    print(lines[0])  # the matrix's messages, listed with `pytest -rP`
    assert _snapshot(world) == before  # no new run, no changed metrics, no new output
    assert not (world.root / MARKER_NAME).exists()  # the crafted pickle did not run


# -- issue 24: sizes, usage errors, outputs, work folders and checkpoints made for another run ----------------
# Each case's message is what `docs/reference/errors.md` lists; the harness above checks one `error:` line,
# the exit code, no traceback and no new or changed finished run.

def _bench_file(w: World, name: str, extra: str = "") -> Path:
    path = w.root / f"{name}.toml"
    path.write_text(f'[benchmark]\ndata = "{w.data}"\nsplit = "{w.split}"\n{extra}\n'
                    '[[grid]]\nmethods = ["intensity"]\npairs = ["fl-t2"]\n')
    return path


def _benchmark_out_is_a_file(w: World):
    return ["benchmark", str(_bench_file(w, "out-file")), "--out", str(_file(w))], {}, False


def _work_folder_of_another_seed(w: World):
    """A copy of seed 0's work folder planted where seed 1's job looks for its own."""
    (work,) = w.trained_out.glob(".work/ae_*_s0_*")
    out = w.root / "planted-work"
    seed1 = w.extra.setdefault("seed1-key", _work_key(w, seed=1))
    shutil.copytree(work, out / ".work" / seed1)
    return (["run", "--method", "ae", "--set", "iterations=2", "--data", str(w.data), "--split", str(w.split),
             "--seed", "1", "--out", str(out), "--device", "cpu"], {}, False)


def _work_key(w: World, seed: int) -> str:
    """The work folder name a job of ``seed`` uses (as uasbench.benchmark.run computes it)."""
    from uasbench.benchmark.run import _run_key
    from uasbench.data.benchmark_data import load_benchmark_data
    from uasbench.registry import get_method

    spec = RunSpec(method="ae", pair=Pair.parse("fl-t2"), seed=seed, data_root=w.data, split_file=w.split,
                   overrides={"iterations": 2})
    data = load_benchmark_data(w.data, spec.pair, split_file=w.split, seed=seed, progress=False)
    return _run_key(spec, get_method("ae").config_for("quick", spec.overrides), data)


def _checkpoint_of_another_seed(w: World):
    """Seed 0's training checkpoint copied into seed 1's (otherwise genuine) work folder."""
    (ckpt,) = w.trained_out.glob(".work/ae_*_s0_*/ckpt_ae.pt")
    out = w.root / "planted-ckpt"
    work = out / ".work" / w.extra.setdefault("seed1-key", _work_key(w, seed=1))
    work.mkdir(parents=True)
    (work / "run_identity.json").write_text((ckpt.parent / "run_identity.json").read_text()
                                            .replace('"seed": 0', '"seed": 1'))
    shutil.copy(ckpt, work / "ckpt_ae.pt")
    return (["run", "--method", "ae", "--set", "iterations=2", "--data", str(w.data), "--split", str(w.split),
             "--seed", "1", "--out", str(out), "--device", "cpu"], {}, False)


def _predict_out_inside_data(w: World):
    return (["predict", str(w.intensity_run), "--data", str(w.data), "--out", str(w.data / "maps")], {}, False)


ISSUE_24_CASES = [
    ("erode-brain-huge", lambda w: (["run", "--method", "intensity", "--erode-brain", "100000", "--out",
                                     str(w.root / "results")], {}, False), 2,
     "invalid option erode_brain_px=100000 for post-processing (--erode-brain): expected an integer >= 0 and <= 64"),
    ("median-huge", lambda w: (["run", "--method", "intensity", "--median", "100000", "--out",
                                str(w.root / "results")], {}, False), 2,
     "invalid option median_size=100000 for post-processing (--median): expected an integer >= 0 and <= 64"),
    ("benchmark-erode-brain-huge", lambda w: (["benchmark", str(_bench_file(w, "erode", "erode_brain = 100000")),
                                               "--dry-run"], {}, False), 2,
     "benchmark.erode_brain: invalid option erode_brain_px=100000 for post-processing"),
    ("benchmark-slurm-mem-huge", lambda w: (["benchmark", str(_bench_file(w, "mem", "[slurm]\nmem_gb = 10000000")),
                                             "--dry-run"], {}, False), 2,
     "mem.toml: slurm.mem_gb: must be an integer >= 1 and <= 65536, got 10000000"),
    ("benchmark-time-huge", lambda w: (["benchmark", str(_bench_file(w, "time")), "--time", "99999999",
                                        "--dry-run"], {}, False), 2,
     "invalid option timeout_min=99999999 for the command line (--time)"),
    ("gpu-tflops-nan", lambda w: (["benchmark", str(_bench_file(w, "nan")), "--dry-run", "--gpu-tflops", "nan"],
                                  {}, False), 2, "invalid --gpu-tflops nan: expected a number > 0"),
    ("jobs-0", lambda w: (["benchmark", str(_bench_file(w, "jobs")), "--jobs", "0"], {}, False), 2,
     "Invalid value for '--jobs'"),
    ("jobs-huge", lambda w: (["benchmark", str(_bench_file(w, "jobs")), "--jobs", "100000"], {}, False), 2,
     "Invalid value for '--jobs'"),
    ("unknown-option", lambda w: (["run", "--method", "intensity", "--bogus"], {}, False), 2,
     "No such option: --bogus"),
    ("examples-huge", lambda w: (["figure", str(w.intensity_run.parent), "--examples", "100000", "--output",
                                  str(w.root / "fig.png")], {}, False), 2, "Invalid value for '--examples'"),
    ("phantom-subjects-huge", lambda w: (["data", "phantom", "--subjects", "100000", "--out",
                                          str(w.root / "phantom")], {}, False), 2, "Invalid value for '--subjects'"),
    ("benchmark-out-is-a-file", _benchmark_out_is_a_file, 1, "is a file, not a folder"),
    ("predict-out-inside-data", _predict_out_inside_data, 2, "is inside --data"),
    ("work-folder-of-another-seed", _work_folder_of_another_seed, 1,
     "was made for another run (seed 0, not 1): refused to reuse it"),
    ("checkpoint-of-another-seed", _checkpoint_of_another_seed, 1, "was made for another run (seed differ): refused"),
]


@pytest.mark.parametrize("build, code, message", [c[1:] for c in ISSUE_24_CASES], ids=[c[0] for c in ISSUE_24_CASES])
def test_issue_24_bad_input_gives_one_line_and_leaves_no_finished_run(world, build, code, message):
    test_bad_input_gives_one_line_and_leaves_no_finished_run(world, build, code, message)
