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
from rich.console import Console
from rich.table import Table

from uasbench.errors import UasbenchError, UsageError

if TYPE_CHECKING:  # the CLI imports its layers lazily so that `uasbench --help` stays fast
    from uasbench.evaluation.protocol import EvaluationResult

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark unsupervised anomaly segmentation methods on multi-modal brain MRI.")
data_app = typer.Typer(no_args_is_help=True, help="Create and inspect datasets.")
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)


class Normalisation(str, Enum):
    paper = "paper"
    official = "official"


class Format(str, Enum):
    md = "md"
    csv = "csv"
    latex = "latex"
    html = "html"


class TableKind(str, Enum):
    metrics = "metrics"
    pairs = "pairs"


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the toolkit's user-facing errors into one line on stderr and the right exit code."""
    try:
        yield
    except UasbenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("interrupted: nothing was written as finished; rerun the same command to resume")
        raise typer.Exit(130) from None


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
    data: Annotated[Optional[Path], typer.Option(help="BraTS2021/2023 folder; default: the embedded phantom.")] = None,
    profile: Annotated[str, typer.Option(help="Config profile: quick (minutes on a CPU) or paper.")] = "quick",
    seed: Annotated[int, typer.Option(help="Seed of the split, the initialisation and the noise.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    out: Annotated[Path, typer.Option(help="Results folder; each run writes a sub-directory.")] = Path("results"),
    split: Annotated[Optional[Path], typer.Option(help="Split CSV (subject,split); default: seeded 80/10/10 (embedded phantom: its own split).")] = None,
    normalisation: Annotated[Normalisation, typer.Option(help="paper (z-score) or official (MMCCD code).")] = Normalisation.paper,
    erode_brain: Annotated[int, typer.Option(help="Erode the brain mask by this radius in pixels (official code: 4).")] = 0,
    median: Annotated[int, typer.Option(help="Median filter size for score maps (0: off).")] = 0,
    skip_bad_cases: Annotated[bool, typer.Option(help="Skip invalid cases (with a summary) instead of stopping.")] = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config field: NAME=VALUE.")] = None,
) -> None:
    """Train a method on healthy slices, score validation and test slices, evaluate, write a run directory."""
    from uasbench.data.preprocess import Protocol
    from uasbench.evaluation.postprocess import PostProcess
    from uasbench.modalities import Pair
    from uasbench.benchmark.run import RunSpec, run_benchmark, validate_spec

    with _user_errors():
        if data is not None and not data.is_dir():
            raise UasbenchError(f"--data {data}: no such folder")
        spec = RunSpec(method=method, pair=Pair.parse(pair), profile=profile, seed=seed, device=device,
                       data_root=data, split_file=split, out=out, overrides=_parse_overrides(set_ or []),
                       protocol=Protocol(normalisation=normalisation.value),
                       post=PostProcess(erode_brain_px=erode_brain, median_size=median),
                       on_bad_case="skip" if skip_bad_cases else "stop")
        validate_spec(spec)
        run_dir, result = run_benchmark(spec, log=lambda msg: console.print(msg, highlight=False))
        _print_summary(f"{method} {spec.pair} ({profile}, seed {seed})", result)
        console.print(f"run directory: {run_dir}", highlight=False)


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
        err_console.print(f"warning: {reason}", highlight=False)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `uasbench run`.")],
    erode_brain: Annotated[Optional[int], typer.Option(help="Brain-mask erosion radius (default: as recorded).")] = None,
    median: Annotated[Optional[int], typer.Option(help="Median filter size (default: as recorded).")] = None,
) -> None:
    """Recompute thresholds and metrics from the cached score maps, without running the model again."""
    import dataclasses

    from uasbench.evaluation.postprocess import PostProcess
    from uasbench.results import MANIFEST, SCORES, ScoredSplits, read_manifest, write_json
    from uasbench.benchmark.run import evaluate_scores, write_metrics

    with _user_errors():
        manifest = read_manifest(run_dir)
        post = PostProcess(**manifest["postprocess"])
        changes = {k: v for k, v in (("erode_brain_px", erode_brain), ("median_size", median)) if v is not None}
        post = dataclasses.replace(post, **changes)
        result = evaluate_scores(ScoredSplits.load(run_dir / SCORES), post, n_bootstrap=1000,
                                 seed=manifest["seed"])
        write_metrics(run_dir, result)
        write_json(run_dir / MANIFEST, {**manifest, "postprocess": post.to_dict()})
        _print_summary(f"{manifest['method']} {manifest['pair']} (re-evaluated)", result)


@app.command()
def leaderboard(
    results_dir: Annotated[Path, typer.Argument(help="Folder holding run directories (searched recursively).")],
    format: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.md,
    table: Annotated[TableKind, typer.Option(help="metrics: Table 1 (methods x metrics); pairs: Table 2 (Dice).")] = TableKind.metrics,
    threshold: Annotated[str, typer.Option(help="val_dice (headline), fpr_1, fpr_5 or oracle_test.")] = "val_dice",
    output: Annotated[Optional[Path], typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Aggregate finished runs into the paper's Table 1 or Table 2 layout (mean +/- std over seeds)."""
    from uasbench.report.leaderboard import collect_runs, render

    with _user_errors():
        if not results_dir.is_dir():
            raise UasbenchError(f"results folder {results_dir} does not exist")
        text = render(collect_runs(results_dir), table=table.value, fmt=format.value, threshold=threshold)
        if output is None:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        else:
            output.write_text(text)
            console.print(f"wrote {output}", highlight=False)


@app.command()
def figure(
    results_dir: Annotated[Path, typer.Argument(help="Folder holding run directories.")],
    pair: Annotated[str, typer.Option(help="Which modality pair to show.")] = "fl-t2",
    output: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("comparison.png"),
    examples: Annotated[int, typer.Option(help="Number of test slices to show.")] = 3,
) -> None:
    """The paper's Fig. 3: input and ground truth, then each method's anomaly map and segmentation."""
    from uasbench.report.figures import figure_from_runs
    from uasbench.modalities import Pair

    with _user_errors():
        path = figure_from_runs(results_dir, str(Pair.parse(pair)), output, n_examples=examples)
        console.print(f"wrote {path}", highlight=False)


@data_app.command("phantom")
def data_phantom(
    out: Annotated[Path, typer.Option(help="Folder to create (BraTS2021 layout).")],
    subjects: Annotated[int, typer.Option(help="Number of subjects (72: the embedded benchmark's).", min=1)] = 72,
    seed: Annotated[int, typer.Option(help="Dataset seed.")] = 0,
) -> None:
    """Write a synthetic multi-modal brain dataset with tumours in the exact BraTS2021 layout."""
    from uasbench.data.phantom import write_phantom_dataset

    with _user_errors():
        path = write_phantom_dataset(out, subjects, seed)
        console.print(f"wrote {subjects} subjects to {path}", highlight=False)


@data_app.command("prepare")
def data_prepare(
    data: Annotated[Optional[Path], typer.Argument(help="BraTS folder; default: the embedded phantom.")] = None,
    normalisation: Annotated[Normalisation, typer.Option(help="paper (z-score) or official (MMCCD code).")] = Normalisation.paper,
    skip_bad_cases: Annotated[bool, typer.Option(help="Skip invalid cases (with a summary) instead of stopping.")] = False,
) -> None:
    """Build the preprocessed slice cache once (e.g. before a cluster array job), as `run` would on first use."""
    from uasbench.data.benchmark_data import open_dataset_cache
    from uasbench.data.preprocess import Protocol

    with _user_errors():
        _, cache = open_dataset_cache(data, Protocol(normalisation=normalisation.value),
                                      on_bad_case="skip" if skip_bad_cases else "stop")
        console.print(f"slice cache {cache.path}: {len(cache.subjects)} cases ready", highlight=False, soft_wrap=True)
        for problem in cache.bad_cases.values():
            err_console.print(f"skipped: {problem}", highlight=False, soft_wrap=True)


@data_app.command("split")
def data_split(
    out: Annotated[Path, typer.Option(help="CSV to write (subject,split); pass it to `uasbench run --split`.")],
    data: Annotated[Optional[Path], typer.Option(help="BraTS folder; default: the embedded phantom.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the default split (80/10/10; embedded phantom: its own).")] = 0,
    train_list: Annotated[Optional[Path], typer.Option(help="Train subject IDs, one per line (official MMCCD list).")] = None,
    test_list: Annotated[Optional[Path], typer.Option(help="Test subject IDs, one per line.")] = None,
    val_list: Annotated[Optional[Path], typer.Option(help="Validation subject IDs, one per line.")] = None,
    val_last: Annotated[int, typer.Option(help="Validation = the last N IDs of the train list (IterMask2: 128).")] = 0,
    val_rest: Annotated[bool, typer.Option(help="Validation = the dataset's subjects in no list.")] = False,
) -> None:
    """Write a split file: the seeded default split of a dataset (as `run` uses it), or one made from subject lists."""
    from uasbench.data.benchmark_data import dataset_subjects, seeded_rule
    from uasbench.data.splits import assignment_from_lists, write_split_csv

    with _user_errors():
        if (train_list is None) != (test_list is None):
            raise UsageError("give both --train-list and --test-list, or neither (seeded split of --data)")
        subjects = None  # lists alone need no dataset; --data checks them against one
        if data is not None or train_list is None:
            subjects = dataset_subjects(data)
        if train_list is None:
            assignment = seeded_rule(data)[0](subjects, seed)
        else:
            assignment = assignment_from_lists(train_list, test_list, val=val_list, val_last=val_last,
                                               dataset=subjects, val_rest=val_rest)
        digest = write_split_csv(assignment, out)
        counts = {role: sum(r == role for r in assignment.values()) for role in ("train", "val", "test")}
        console.print(f"wrote {out}: " + ", ".join(f"{n} {role}" for role, n in counts.items())
                      + f" (sha256 {digest[:12]})", highlight=False, soft_wrap=True)


@data_app.command("inspect")
def data_inspect(
    path: Annotated[Path, typer.Argument(help="A BraTS2021/2023 folder.")],
    deep: Annotated[bool, typer.Option(help="Read every voxel (finds NaNs and truncated files); slower.")] = False,
) -> None:
    """Report the cases, modalities, label sets and problems found in a dataset folder."""
    from uasbench.data.brats import inspect_dataset

    with _user_errors():
        report = inspect_dataset(path, deep=deep)
        console.print(report.rich_table())
        if report.problems:
            raise typer.Exit(1)


SUMMARY_LABELS = {"auroc": "auroc (threshold-free, brain pixels)", "auprc": "auprc (threshold-free, brain pixels)",
                  "oracle_dice": "dice at the test-tuned threshold (ORACLE upper bound)",
                  "val_dice_threshold": "threshold (tuned on validation Dice)"}


def _print_summary(title: str, result: EvaluationResult) -> None:
    """One leaderboard row, printed as a two-column table so it fits any terminal width."""
    table = Table(title=title)
    table.add_column("metric (test; at the validation-tuned threshold unless named)")
    table.add_column("value", justify="right")
    for key, value in result.headline().items():
        undefined = value is None or not math.isfinite(value)
        table.add_row(SUMMARY_LABELS.get(key, key), "undefined" if undefined else f"{value:.4f}")
    console.print(table)
    headline = result.thresholds["val_dice"]
    if not headline.defined:
        console.print(f"headline threshold undefined: {headline.reason}", highlight=False)


if __name__ == "__main__":
    app()
