"""The ``uasbench`` command line. It only wires the layers together: data, methods, evaluation, results,
leaderboard. Bad input ends in one ``error:`` line and a non-zero exit, never a traceback."""
from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from uasbench import choices
from uasbench.errors import UasbenchError, UsageError

try:  # recent typer carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - typer with click as a dependency
    from click import exceptions as click_errors  # type: ignore[no-redef]

if TYPE_CHECKING:  # the CLI imports its layers lazily so that `uasbench --help` stays fast
    from uasbench.evaluation.evaluate import EvaluationResult
    from uasbench.manifest import RunManifest

class _OneLineUsageErrors(typer.core.TyperGroup):
    """Typer's own usage errors (``--jobs 0``, an unknown option, a missing argument) as one ``error:`` line
    and exit code 2, like every other bad input, instead of a boxed multi-line panel."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:  # a caller that handles click's exceptions itself
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError as exc:  # `uasbench` alone: the help, as before
            console.print(exc.ctx.get_help() if exc.ctx else str(exc), highlight=False)
            sys.exit(2)
        except click_errors.ClickException as exc:  # usage errors (exit 2) and unreadable files
            _print_error(" ".join(exc.format_message().split()))
            sys.exit(exc.exit_code)
        except typer.Abort:
            err_console.print("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=_OneLineUsageErrors,
                  help="Benchmark unsupervised anomaly segmentation methods on multi-modal brain MRI.")
data_app = typer.Typer(no_args_is_help=True, help="Create and inspect datasets.")
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)
# Upper bounds of the CLI's own size options (checked by typer before any work; a method's and the
# post-processing's sizes are bounded in their dataclasses' field metadata, see uasbench.config_check).
MAX_JOBS = 1024  # --jobs: worker processes at once
MAX_EXAMPLES = 50  # figure --examples: rows of one figure
MAX_SUBJECTS = 5000  # data phantom --subjects: a few MB each (BraTS 2021 has 1251)
MAX_TFLOPS = 1e6  # --gpu-tflops: far above any accelerator


def _choice_enum(name: str, values: tuple[str, ...]) -> Any:
    """A str Enum of ``values`` (from ``uasbench.choices``) for Typer; member names use _ for -."""
    return Enum(name, [(v.replace("-", "_"), v) for v in values], type=str)


LAYOUT_HELP = ("The data folder's layout when it is not detected, e.g. brats2021, ixi, isles22 (an unknown name "
               "lists every built-in layout; docs/how-to/other-datasets.md describes them).")
CARD_HELP = "A dataset card (TOML) describing the data folder's files; default: its dataset.toml, if any."



Normalisation = _choice_enum("Normalisation", choices.NORMALISATIONS)
SliceSelection = _choice_enum("SliceSelection", choices.SLICE_SELECTIONS)
Registration = _choice_enum("Registration", choices.REGISTRATIONS)
REGISTER_HELP = ("Register every scan (affine) to this template before slicing: mni152 puts any dataset in the "
                 "phantom's MNI152 frame, so a slice index means the same anatomy everywhere (a few s per case).")
Format = _choice_enum("Format", choices.FORMATS)
TableKind = _choice_enum("TableKind", choices.TABLES)
EvalProtocol = _choice_enum("EvalProtocol", choices.EVALUATION_PROTOCOLS)
Spread = _choice_enum("Spread", choices.SPREADS)
ExecutorKind = _choice_enum("ExecutorKind", choices.EXECUTORS)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the toolkit's user-facing errors into one line on stderr and the right exit code."""
    try:
        yield
    except UasbenchError as exc:
        _print_error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:  # a full disk, a read-only or vanished folder: the environment, not a bug to trace
        from uasbench.files import describe_os_error

        _print_error(describe_os_error(exc))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("interrupted: nothing was written as finished; rerun the same command to resume")
        raise typer.Exit(130) from None


def _print_error(message: str) -> None:
    """``error: message`` on one line of stderr; the message is escaped, so brackets in a path stay as typed."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _say(message: str) -> None:
    """One line on stdout, printed as typed: a case ID or path holding ``[red]`` stays literal, and a long
    line is never wrapped (scripts read ``run directory: ...``)."""
    console.print(escape(message), highlight=False, soft_wrap=True)


def _warn(message: str) -> None:
    """One line on stderr, printed as typed (no markup), never wrapped."""
    err_console.print(escape(message), highlight=False, soft_wrap=True)


def _print_version(value: bool) -> None:
    if value:
        from uasbench import __version__

        console.print(f"uasbench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Benchmark unsupervised anomaly segmentation methods on multi-modal brain MRI."""


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid --set {item!r}: use NAME=VALUE, e.g. --set iterations=200")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


@app.command()
def run(
    method: Annotated[str, typer.Option(help="Method name (see `uasbench methods`).")],
    pair: Annotated[str, typer.Option(help="Input-target modalities, e.g. fl-t2, t1-fl.")] = "fl-t2",
    data: Annotated[Optional[list[Path]], typer.Option(help="A data folder (see --layout); default: the embedded "
                                                            "phantom. With --train-data: a test dataset (repeat "
                                                            "for several).")] = None,
    layout: Annotated[Optional[list[str]], typer.Option(help=LAYOUT_HELP + " With several --data: once per --data, "
                                                             "in order (auto: detected).")] = None,
    card: Annotated[Optional[list[Path]], typer.Option(help=CARD_HELP + " With several --data: once per --data.")] = None,
    train_data: Annotated[Optional[list[Path]], typer.Option(help="Cross-dataset run: a folder whose healthy scans "
                                                                  "train the method (repeat for several); each "
                                                                  "--data is then validated and tested on its own.")] = None,
    train_layout: Annotated[Optional[list[str]], typer.Option(help="Layout of each --train-data, in order (auto: detected).")] = None,
    train_card: Annotated[Optional[list[Path]], typer.Option(help="A dataset card per --train-data, in order.")] = None,
    profile: Annotated[str, typer.Option(help="Config profile: quick (minutes on a CPU) or paper.")] = "quick",
    seed: Annotated[int, typer.Option(help="Seed of the split, the initialisation and the noise.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[Path, typer.Option(help="Results folder; each run writes a sub-directory.")] = Path("results"),
    split: Annotated[Optional[list[Path]], typer.Option(help="Split CSV (subject,split); default: seeded 80/10/10 (embedded phantom: its own split). With --train-data: one per --data, in order (val and test rows; default: a seeded third validates).")] = None,
    normalisation: Annotated[Normalisation, typer.Option(help="paper (z-score) or official (MMCCD code).")] = Normalisation.paper,
    slices: Annotated[SliceSelection, typer.Option(help="slab: the protocol's axial slab (--z-range); brain: every slice with brain (whole volumes).")] = SliceSelection.slab,
    z_range: Annotated[Optional[str], typer.Option(help="The slab START:STOP (STOP exclusive), axial slices of the spatial standard's 1 mm grid; default 70:90 (the paper's).")] = None,
    register: Annotated[Registration, typer.Option(help=REGISTER_HELP)] = Registration.none,
    erode_brain: Annotated[int, typer.Option(help="Erode the brain mask by this radius in pixels (official code: 4).")] = 0,
    median: Annotated[int, typer.Option(help="Median filter size for score maps (0: off).")] = 0,
    median_3d: Annotated[int, typer.Option(help="Cross-dataset runs: 3-D median filter size over each volume's scored slices (0: off).")] = 0,
    min_component: Annotated[int, typer.Option(help="Cross-dataset runs: drop predicted 3-D components smaller than this many voxels (0: off).")] = 0,
    skip_bad_cases: Annotated[bool, typer.Option(help="Skip invalid cases (with a summary) instead of stopping.")] = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config field: NAME=VALUE.")] = None,
    preset: Annotated[Optional[str], typer.Option(help="A named set of test-time fields, e.g. fast (README).")] = None,
) -> None:
    """Train a method on healthy slices, score validation and test slices, evaluate, write a run directory.

    With --train-data (cross-dataset): train on the healthy scans of those folders, then validate, test and
    report every --data folder on its own, per slice, per volume, per lesion and on its healthy scans."""
    from uasbench.data.preprocess import Preparation
    from uasbench.data.spatial import SpatialStandard
    from uasbench.evaluation.postprocess import PostProcess
    from uasbench.modalities import Pair
    from uasbench.benchmark.run import RunSpec, run_cross_dataset, run_one, validate_spec
    from uasbench.registry import get_method

    with _user_errors():
        tests, trains = list(data or []), list(train_data or [])
        for option, folders in (("--data", tests), ("--train-data", trains)):
            for folder in folders:
                if not folder.is_dir():
                    raise UasbenchError(f"{option} {folder}: no such folder")
        overrides = _parse_overrides(set_ or [])
        if preset is not None:
            overrides = {**get_method(method).preset_overrides(preset, profile), **overrides}
        protocol = Preparation(normalisation=normalisation.value, slices=slices.value, **_z_range(z_range),
                               spatial=SpatialStandard(register=register.value))
        post = PostProcess(erode_brain_px=erode_brain, median_size=median, median_3d=median_3d,
                           min_component_voxels=min_component)
        common = dict(method=method, pair=Pair.parse(pair), profile=profile, seed=seed, device=device, out=out,
                      overrides=overrides, protocol=protocol, post=post,
                      on_bad_case="skip" if skip_bad_cases else "stop")
        if trains:
            spec = RunSpec(**common, train_data=_sources(trains, "--train-data", train_layout, train_card, None),
                           test_data=_sources(tests, "--data", layout, card, split))
        else:
            for option, values in (("--train-layout", train_layout), ("--train-card", train_card)):
                if values:
                    raise UsageError(f"{option} describes a --train-data folder: give --train-data too")
            if len(tests) > 1:
                raise UsageError(f"{len(tests)} --data folders: several test datasets need --train-data "
                                 "(a cross-dataset run); a within-dataset run reads one folder")
            for option, values in (("--layout", layout), ("--card", card), ("--split", split)):
                if values and len(values) > 1:
                    raise UsageError(f"{option} given {len(values)} times for one data folder")
            if slices.value != "slab":
                raise UsageError("--slices brain scores whole volumes, which only the cross-dataset protocol "
                                 "evaluates: give --train-data")
            spec = RunSpec(**common, data_root=tests[0] if tests else None, layout=(layout or [None])[0],
                           card=(card or [None])[0], split_file=(split or [None])[0])
        validate_spec(spec)
        if spec.cross_dataset:
            run_dir, results = run_cross_dataset(spec, log=_say)
            for r in results:
                if r.slice_level is not None:
                    _print_summary(f"{method} {spec.pair} on {r.name}: slice level ({profile}, seed {seed})",
                                   r.slice_level)
                _print_volume_summary(f"{method} {spec.pair} on {r.name}: volume, lesion and healthy levels",
                                      r.volume_level)
        else:
            run_dir, result = run_one(spec, log=_say)
            _print_summary(f"{method} {spec.pair} ({profile}, seed {seed})", result)
        _say(f"run directory: {run_dir}")


def _z_range(text: Optional[str]) -> dict[str, int]:
    """``--z-range START:STOP`` as Protocol fields (its own checks bound them)."""
    if text is None:
        return {}
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().lstrip("-").isdigit() for p in parts):
        raise UsageError(f"--z-range {text!r}: give START:STOP in slices, e.g. 70:90 (STOP exclusive)")
    return {"z_start": int(parts[0]), "z_stop": int(parts[1])}


def _sources(folders: list[Path], option: str, layouts: Optional[list[str]], cards: Optional[list[Path]],
             splits: Optional[list[Path]]) -> tuple:
    """One Source per folder; a per-folder option is given once per folder, in order, or not at all."""
    from uasbench.data.benchmark_data import Source

    names = {"--data": ("--layout", "--card", "--split"), "--train-data": ("--train-layout", "--train-card", "")}
    aligned = []
    for name, values in zip(names[option], (layouts, cards, splits)):
        values = list(values or [])
        if values and len(values) != len(folders):
            raise UsageError(f"{name} given {len(values)} times for {len(folders)} {option} folder(s): give it once "
                             f"per {option}, in order, or not at all")
        aligned.append(values or [None] * len(folders))
    return tuple(Source(f.resolve(), layout=None if lay in (None, "auto") else lay, card=c, split_file=s)
                 for f, lay, c, s in zip(folders, *aligned))


@app.command()
def benchmark(
    config: Annotated[Path, typer.Argument(help="Benchmark file (TOML), e.g. benchmarks/paper-table1.toml.")],
    out: Annotated[Optional[Path], typer.Option(help="Results folder; default: results/<file name>.")] = None,
    executor: Annotated[ExecutorKind, typer.Option(help="serial (this process), local (--jobs N workers) or slurm.")] = ExecutorKind.serial,
    jobs: Annotated[int, typer.Option(help="Jobs at once with --executor local.", min=1, max=MAX_JOBS)] = 1,
    dry_run: Annotated[bool, typer.Option(help="List the jobs and their estimated cost; run nothing.")] = False,
    report_only: Annotated[bool, typer.Option(help="Only write the leaderboards and figures of finished runs.")] = False,
    data: Annotated[Optional[Path], typer.Option(help="BraTS folder, instead of the file's benchmark.data.")] = None,
    gpu_tflops: Annotated[float, typer.Option(help="Dense bf16 TFLOP/s for the dry run's GPU-hours (H100: 989).")] = 989.0,
    partition: Annotated[Optional[str], typer.Option(help="slurm: partition (overrides slurm.partition).")] = None,
    time_min: Annotated[Optional[int], typer.Option("--time", help="slurm: time limit per job in minutes.")] = None,
    gpus_per_job: Annotated[Optional[int], typer.Option(help="slurm: GPUs per job.")] = None,
    array_parallelism: Annotated[Optional[int], typer.Option(help="slurm: jobs of the array running at once.")] = None,
) -> None:
    """Run a grid of methods x pairs x seeds from one file; rerun it to complete only what is missing."""
    from uasbench.benchmark import grid
    from uasbench.benchmark.config import load_config, slurm_settings
    from uasbench.benchmark.cost import cost_table, grid_costs
    from uasbench.benchmark.executors import make_executor
    from uasbench.report.grid_report import write_grid_report

    from uasbench.files import check_output_folder

    with _user_errors():
        if dry_run and report_only:
            raise UsageError("choose --dry-run or --report-only, not both")
        if not (math.isfinite(gpu_tflops) and 0 < gpu_tflops <= MAX_TFLOPS):
            raise UsageError(f"invalid --gpu-tflops {gpu_tflops}: expected a number > 0 and <= {MAX_TFLOPS:g}")
        bench = load_config(config, data_override=data, need_data=not dry_run)
        slurm = slurm_settings(bench.slurm, {k: v for k, v in (
            ("partition", partition), ("timeout_min", time_min), ("gpus_per_job", gpus_per_job),
            ("array_parallelism", array_parallelism)) if v is not None}, "the command line")
        folder = out or grid.default_out(bench)
        if not dry_run:
            check_output_folder(folder, "--out")  # before any data is prepared
        if dry_run:
            costs, counts = grid_costs(bench, folder)
            _say(f"{config}: {len(costs)} jobs; scored slices per run: {counts.val} validation, "
                 f"{counts.val_healthy} healthy validation, {counts.test} test (upper bounds) from {counts.source}")
            console.print(cost_table(costs, gpu_tflops))
            return
        screen = Console(file=sys.stdout)  # bound now: a serial job sends sys.stdout to its log while it runs
        if report_only:
            written = grid.report_only(bench, folder, screen, write_grid_report)
        else:
            runner = make_executor(executor.value, jobs=jobs, slurm=slurm, folder=folder / ".submitit",
                                   name=f"uasbench-{bench.name}")
            written = grid.run_grid(bench, folder, runner, screen, write_grid_report)
        _say(f"wrote {len(written)} report files to {folder / grid.REPORT}")


@app.command()
def rescore(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `uasbench run`.")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="A test-time field to change: NAME=VALUE.")] = None,
    preset: Annotated[Optional[str], typer.Option(help="A named set of test-time fields, e.g. fast (README).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder of the new run directory (default: beside RUN_DIR).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Score a run's slices again from its checkpoint with new test-time settings (no training); write a new run."""
    from uasbench.benchmark.rescore import rescore as rescore_run

    with _user_errors():
        if not run_dir.is_dir():
            raise UsageError(f"RUN_DIR {run_dir}: no such folder")
        new_dir, result = rescore_run(run_dir, _parse_overrides(set_ or []), preset=preset, out=out, device=device,
                                      log=_say)
        _print_summary(f"{run_dir.name} (rescored)", result)
        _say(f"run directory: {new_dir}")


@app.command()
def methods() -> None:
    """List the installed methods with their source package, modalities and profiles."""
    from uasbench.registry import broken_plugins, method_infos

    table = Table(title="uasbench methods")
    for column in ("method", "source", "trains on", "scores", "profiles"):
        table.add_column(column, overflow="fold")  # never cut a name short with an ellipsis
    for name, info in sorted(method_infos().items()):
        table.add_row(name, info.source, " + ".join(info.cls.train_modalities),
                      " + ".join(info.cls.test_modalities), ", ".join(sorted(info.cls.profiles)))
    console.print(table)
    for reason in broken_plugins().values():
        _warn(f"warning: {reason}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `uasbench run`.")],
    erode_brain: Annotated[Optional[int], typer.Option(help="Brain-mask erosion radius (default: as recorded).")] = None,
    median: Annotated[Optional[int], typer.Option(help="Median filter size (default: as recorded).")] = None,
    protocol: Annotated[EvalProtocol, typer.Option(
        help="project (thresholds from validation) or mmccd-official (the authors' test-tuned ORACLE evaluation, "
             "written to metrics_mmccd_official.json).")] = EvalProtocol.project,
) -> None:
    """Recompute thresholds and metrics from the cached score maps, without running the model again."""
    import dataclasses

    from uasbench.evaluation.postprocess import PostProcess
    from uasbench.files import check_output_folder
    from uasbench.results import MANIFEST, SCORES, ScoredSplits, read_manifest, write_json
    from uasbench.benchmark.run import evaluate_scores, write_metrics

    with _user_errors():
        manifest = read_manifest(run_dir, required=("method", "pair", "seed", "postprocess"))
        check_output_folder(run_dir, "run directory")  # new metrics are written into it
        if protocol is EvalProtocol.mmccd_official:
            if erode_brain is not None or median is not None:
                raise UsageError("--erode-brain and --median do not apply to --protocol mmccd-official "
                                 "(its T2 brain mask and disk(4) erosion are fixed)")
            _evaluate_official(run_dir, manifest)
            return
        post = PostProcess.from_dict(manifest.postprocess or {})
        changes = {k: v for k, v in (("erode_brain_px", erode_brain), ("median_size", median)) if v is not None}
        post = dataclasses.replace(post, **changes)
        result = evaluate_scores(ScoredSplits.load(run_dir / SCORES), post, n_bootstrap=1000,
                                 seed=manifest.seed)
        write_metrics(run_dir, result)
        write_json(run_dir / MANIFEST, dataclasses.replace(manifest, postprocess=post.to_dict()).to_dict())
        _print_summary(f"{manifest.method} {manifest.pair} (re-evaluated)", result)


def _evaluate_official(run_dir: Path, manifest: RunManifest) -> None:
    """The official MMCCD evaluation of one run: written beside metrics.json, printed as an ORACLE."""
    from uasbench.evaluation.official import KEY, NOTE
    from uasbench.results import write_official_metrics

    path, result = write_official_metrics(run_dir, manifest)
    table = Table(title=f"{manifest.method} {manifest.pair}: official MMCCD evaluation (ORACLE, test-tuned)")
    table.add_column("metric (mean over test slices)")
    table.add_column("value", justify="right")
    for metric, summary in result["metrics"][KEY].items():
        value = summary["mean"]
        table.add_row(metric, "undefined" if value is None else f"{value:.4f}")
    table.add_row("threshold (k/1000, chosen on TEST)", f"{result['thresholds'][KEY]['value']:.3f}")
    table.add_row("empty predictions (left out of ASSD)", str(len(result["empty_predictions"])))
    console.print(table)
    console.print(NOTE, highlight=False, soft_wrap=True)
    if result["empty_predictions"]:
        console.print("empty predictions: " + ", ".join(result["empty_predictions"]), highlight=False, soft_wrap=True)
    _say(f"wrote {path}")


@app.command()
def leaderboard(
    results_dir: Annotated[Path, typer.Argument(help="Folder holding run directories (searched recursively).")],
    format: Annotated[Format, typer.Option("--format", help="md, csv, latex, or html: the full self-contained "
                                                           "report page (needs --output).")] = Format.md,
    table: Annotated[TableKind, typer.Option(help="metrics: Table 1 (methods x metrics); pairs: Table 2 (Dice); "
                                                  "tests: the pairwise tests behind the marks; ranks: rank stability.")] = TableKind.metrics,
    threshold: Annotated[Optional[str], typer.Option(help="val_dice (headline), fpr_1, fpr_5 or oracle_test.")] = None,
    protocol: Annotated[EvalProtocol, typer.Option(
        help="project, or mmccd-official: the authors' test-tuned ORACLE evaluation from the stored maps.")] = EvalProtocol.project,
    spread: Annotated[Spread, typer.Option(help="ci: bootstrap 95% CI over subjects; std: std over seeds.")] = Spread.ci,
    output: Annotated[Optional[Path], typer.Option(help="Write to this file instead of stdout (html: a folder "
                                                        "for index.html, or a .html file).")] = None,
) -> None:
    """Aggregate finished runs into the paper's Table 1 or Table 2 layout, with per-subject CIs and significance
    marks, or publish them all as one self-contained HTML page (--format html)."""
    from uasbench.files import check_output_file, write_text_atomic
    from uasbench.report.leaderboard import render
    from uasbench.report.runs import collect_runs
    from uasbench.report.levels import collect_levels, render_levels

    with _user_errors():
        if not results_dir.is_dir():
            raise UasbenchError(f"results folder {results_dir} does not exist")
        if format is Format.html:
            _write_page(results_dir, output, table, threshold, protocol, spread)
            return
        if output is not None:
            check_output_file(output, "--output")
        df = collect_runs(results_dir, protocol=protocol.value, warn=_warn)
        levels = collect_levels(results_dir) if protocol is EvalProtocol.project else None
        if levels is not None and not levels.empty and table is not TableKind.metrics:
            raise UsageError(f"--table {table.value} is for within-dataset runs; {results_dir} holds cross-dataset "
                             "runs, whose blocks are the metrics tables (drop --table)")
        if levels is not None and not levels.empty and threshold is not None:
            raise UsageError("--threshold is for within-dataset runs: each cross-dataset block names its thresholds")
        text = render(df, table=table.value, fmt=format.value, threshold=threshold, spread=spread.value) \
            if levels is None or levels.empty or not df.empty else ""
        if levels is not None and not levels.empty:
            text = "\n".join(t for t in (text, render_levels(levels, format.value, spread.value)) if t)
        if output is None:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        else:
            write_text_atomic(output, text)
            _say(f"wrote {output}")


def _write_page(results_dir: Path, output: Optional[Path], table: TableKind, threshold: Optional[str],
                protocol: EvalProtocol, spread: Spread) -> None:
    from uasbench.report.page import write_page

    chosen = [name for name, value, default in (("--table", table, TableKind.metrics), ("--threshold", threshold, None),
                                                ("--protocol", protocol, EvalProtocol.project),
                                                ("--spread", spread, Spread.ci)) if value != default]
    if chosen:
        raise UsageError(f"--format html writes the whole page (every table, threshold and protocol): drop "
                         f"{', '.join(chosen)}")
    if output is None:
        raise UsageError("--format html writes a page: give --output DIR (for DIR/index.html) or --output FILE.html")
    _say(f"wrote {write_page(results_dir, output, warn=_warn)}")


@app.command()
def figure(
    results_dir: Annotated[Path, typer.Argument(help="Folder holding run directories.")],
    pair: Annotated[str, typer.Option(help="Which modality pair to show.")] = "fl-t2",
    output: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("comparison.png"),
    examples: Annotated[int, typer.Option(help="Number of test slices to show.", max=MAX_EXAMPLES)] = 3,
) -> None:
    """The paper's Fig. 3: input and ground truth, then each method's anomaly map and segmentation."""
    from uasbench.files import check_output_file, writing
    from uasbench.report.figures import figure_from_runs
    from uasbench.modalities import Pair

    with _user_errors():
        if examples < 1:
            raise UsageError(f"invalid --examples {examples}: show at least 1 test slice")
        check_output_file(output, "--output")
        with writing(output):  # a full disk: one line naming the figure
            path = figure_from_runs(results_dir, str(Pair.parse(pair)), output, n_examples=examples)
        _say(f"wrote {path}")


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `uasbench run`.")],
    data: Annotated[Path, typer.Option(help="A data folder (any layout, or one a dataset card describes; labels "
                                            "optional), or a folder of NIfTI files of the run's input modality "
                                            "(one case per file), or one such file.")],
    out: Annotated[Path, typer.Option(help="Folder for <ID>_anomaly.nii.gz and <ID>_anomaly_seg.nii.gz.")],
    cases: Annotated[Optional[list[str]], typer.Option("--cases", help="Case ID to predict (repeat, or join "
                                                       "with commas); default: every case.")] = None,
    slices: Annotated[str, typer.Option(help="protocol (the run's axial slab) or all (every axial slice).")] = "protocol",
    threshold: Annotated[str, typer.Option(help="val_dice, fpr_1, fpr_5 (tuned by the run) or a number.")] = "val_dice",
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda; default: the run's device.")] = None,
    layout: Annotated[Optional[str], typer.Option(help=LAYOUT_HELP)] = None,
    card: Annotated[Optional[Path], typer.Option(help=CARD_HELP)] = None,
    tuned_on: Annotated[Optional[str], typer.Option(help="A cross-dataset run: the test dataset whose validation "
                                                         "data tuned the threshold (needed when it has several).")] = None,
) -> None:
    """Apply a trained run to scans: anomaly maps and segmentations as NIfTI on each scan's own grid."""
    from uasbench.predict import predict as predict_cases

    with _user_errors():
        if data.is_dir() and out.resolve().is_relative_to(data.resolve()):
            raise UsageError(f"--out {out} is inside --data {data}: a rerun would read the maps it wrote as scans; "
                             "write them outside the data folder")
        ids = [i for item in cases or [] for i in item.split(",") if i]
        summaries = predict_cases(run_dir, data, out, cases=ids, slices=slices, threshold=threshold,
                                  device=device, log=_say, layout=layout, card=card, tuned_on=tuned_on)
        table = Table(title=escape(f"uasbench predict: {len(summaries)} case(s) written to {out}"))
        for column in ("case", "slices", "flagged voxels", "Dice (scored slices)", "seconds"):
            table.add_column(column, justify="left" if column == "case" else "right")
        for s in summaries:
            table.add_row(escape(s.case), str(s.slices), str(s.flagged_voxels),
                          "no label" if s.dice is None else f"{s.dice:.4f}", f"{s.seconds:.1f}")
        console.print(table)


@data_app.command("phantom")
def data_phantom(
    out: Annotated[Path, typer.Option(help="Folder to create.")],
    subjects: Annotated[int, typer.Option(help="Number of subjects (72: the embedded benchmark's).", min=1,
                                          max=MAX_SUBJECTS)] = 72,
    seed: Annotated[int, typer.Option(help="Dataset seed.")] = 0,
    layout: Annotated[str, typer.Option(help="Write it in this built-in layout (ixi: healthy subjects only).")] = "brats2021",
    orientation: Annotated[Optional[str], typer.Option(help="Store the volumes in these axis codes, e.g. RAS or "
                                                            "LAS (default: the layout's usual one; BraTS: LPS).")] = None,
) -> None:
    """Write a synthetic multi-modal brain dataset with tumours in any built-in layout (default: BraTS2021)."""
    from uasbench.data.phantom_layouts import write_phantom_in_layout
    from uasbench.files import check_output_folder

    with _user_errors():
        check_output_folder(out, "--out")
        path, written = write_phantom_in_layout(out, subjects, seed, layout=layout, orientation=orientation)
        _say(f"wrote {written} subjects to {path} ({layout} layout)")


@data_app.command("prepare")
def data_prepare(
    data: Annotated[Optional[Path], typer.Argument(help="A data folder; default: the embedded phantom.")] = None,
    normalisation: Annotated[Normalisation, typer.Option(help="paper (z-score) or official (MMCCD code).")] = Normalisation.paper,
    skip_bad_cases: Annotated[bool, typer.Option(help="Skip invalid cases (with a summary) instead of stopping.")] = False,
    layout: Annotated[Optional[str], typer.Option(help=LAYOUT_HELP)] = None,
    card: Annotated[Optional[Path], typer.Option(help=CARD_HELP)] = None,
    register: Annotated[Registration, typer.Option(help=REGISTER_HELP)] = Registration.none,
) -> None:
    """Build the preprocessed slice cache once (e.g. before a cluster array job), as `run` would on first use."""
    from uasbench.data.benchmark_data import open_dataset_cache
    from uasbench.data.preprocess import Preparation
    from uasbench.data.spatial import SpatialStandard

    with _user_errors():
        protocol = Preparation(normalisation=normalisation.value, spatial=SpatialStandard(register=register.value))
        _, cache = open_dataset_cache(data, protocol,
                                      on_bad_case="skip" if skip_bad_cases else "stop", layout=layout, card=card)
        _say(f"slice cache {cache.path}: {len(cache.subjects)} cases ready")
        for problem in cache.bad_cases.values():
            _warn(f"skipped: {problem}")
        for case, dice in cache.below_registration_floor.items():
            _warn(f"registration below the floor: case {case} (brain-mask Dice {dice:.3f})")


@data_app.command("split")
def data_split(
    out: Annotated[Path, typer.Option(help="CSV to write (subject,split); pass it to `uasbench run --split`.")],
    data: Annotated[Optional[Path], typer.Option(help="A data folder; default: the embedded phantom.")] = None,
    layout: Annotated[Optional[str], typer.Option(help=LAYOUT_HELP)] = None,
    card: Annotated[Optional[Path], typer.Option(help=CARD_HELP)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the default split (80/10/10; embedded phantom: its own).")] = 0,
    train_list: Annotated[Optional[Path], typer.Option(help="Train subject IDs, one per line (official MMCCD list).")] = None,
    test_list: Annotated[Optional[Path], typer.Option(help="Test subject IDs, one per line.")] = None,
    val_list: Annotated[Optional[Path], typer.Option(help="Validation subject IDs, one per line.")] = None,
    val_last: Annotated[int, typer.Option(help="Validation = the last N IDs of the train list (IterMask2: 128).")] = 0,
    val_rest: Annotated[bool, typer.Option(help="Validation = the dataset's subjects in no list.")] = False,
) -> None:
    """Write a split file: the seeded default split of a dataset (as `run` uses it), or one made from subject lists."""
    from uasbench.data.benchmark_data import dataset_subjects, open_dataset_cache, seeded_rule
    from uasbench.data.preprocess import Preparation
    from uasbench.data.splits import assignment_from_lists, write_split_csv
    from uasbench.files import check_output_file

    with _user_errors():
        if (train_list is None) != (test_list is None):
            raise UsageError("give both --train-list and --test-list, or neither (seeded split of --data)")
        check_output_file(out, "--out")
        subjects = None  # lists alone need no dataset; --data checks them against one
        if data is not None or train_list is None:
            subjects = dataset_subjects(data, layout=layout, card=card)
        if train_list is None:
            cache = open_dataset_cache(data, Preparation())[1] if data is not None else None  # as `run` splits
            assignment = seeded_rule(data, cache)[0](subjects, seed)
        else:
            assignment = assignment_from_lists(train_list, test_list, val=val_list, val_last=val_last,
                                               dataset=subjects, val_rest=val_rest)
        digest = write_split_csv(assignment, out)
        counts = {role: sum(r == role for r in assignment.values()) for role in ("train", "val", "test")}
        console.print(f"wrote {out}: " + ", ".join(f"{n} {role}" for role, n in counts.items())
                      + f" (sha256 {digest[:12]})", highlight=False, soft_wrap=True)


@data_app.command("inspect")
def data_inspect(
    path: Annotated[Path, typer.Argument(help="A data folder (any layout, or one a dataset card describes).")],
    deep: Annotated[bool, typer.Option(help="Read every voxel (finds NaNs and truncated files); slower.")] = False,
    layout: Annotated[Optional[str], typer.Option(help=LAYOUT_HELP)] = None,
    card: Annotated[Optional[Path], typer.Option(help=CARD_HELP)] = None,
) -> None:
    """Report a dataset's layout, cases, modalities, labels and their meaning, healthy cases, orientation, spacing,
    grids, whether scans look skull-stripped, what preparation will do, and the problems found.

    Whether scans look skull-stripped is a heuristic on each case's first modality (many exact zeros and an
    all-zero outer voxel layer; the first few cases, all with --deep), shown beside what the layout documents."""
    from uasbench.data.inspect import inspect_dataset

    with _user_errors():
        report = inspect_dataset(path, deep=deep, layout=layout, card=card)
        console.print(report.rich_table())
        if report.problems:
            raise typer.Exit(1)


SUMMARY_LABELS = {"auroc": "auroc (threshold-free, brain pixels)", "auprc": "auprc (threshold-free, brain pixels)",
                  "oracle_dice": "dice at the test-tuned threshold (ORACLE upper bound)",
                  "val_dice_threshold": "threshold (tuned on validation Dice)"}


def _print_summary(title: str, result: EvaluationResult) -> None:
    """One leaderboard row, printed as a two-column table so it fits any terminal width."""
    table = Table(title=escape(title))
    table.add_column("metric (test; at the validation-tuned threshold unless named)")
    table.add_column("value", justify="right")
    for key, value in result.headline().items():
        undefined = value is None or not math.isfinite(value)
        table.add_row(SUMMARY_LABELS.get(key, key), "undefined" if undefined else f"{value:.4f}")
    console.print(table)
    headline = result.thresholds["val_dice"]
    if not headline.defined:
        _say(f"headline threshold undefined: {headline.reason}")


def _print_volume_summary(title: str, result: Any) -> None:
    """A cross-dataset test dataset's headline: volume and lesion metrics at each threshold, healthy FPs."""
    table = Table(title=title)
    table.add_column("threshold")
    for name in ("dice", "lesion_f1", "fp_lesions", "healthy fp_voxel_fraction"):
        table.add_column(name, justify="right")
    for key, thr in result.thresholds.items():
        row = [result.metrics[key].get(m) for m in ("dice", "lesion_f1", "fp_lesions")]
        row.append(result.healthy.get(key, {}).get("fp_voxel_fraction"))
        table.add_row(key, *["n/a" if s is None or not math.isfinite(s.mean) else f"{s.mean:.4f}" for s in row])
    console.print(table)


if __name__ == "__main__":
    app()
