"""The published leaderboard: ONE self-contained HTML page that opens from disk with no network and no
JavaScript. Images are embedded as base64 data URIs and the style sheet is inline; the only links are
relative ones to each run's own files, so the page travels with (and next to) its results folder.

The page is ``page.html`` (a ``string.Template``) filled with sections built here from the same
functions the text leaderboards use, so a number on the page is the number ``uasbench leaderboard``
prints.
"""
from __future__ import annotations

import base64
import html
import os
import tempfile
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path
from string import Template
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pandas as pd

from uasbench.errors import UasbenchError
from uasbench.evaluation.official import PROTOCOL as OFFICIAL
from uasbench.files import write_text_atomic
from uasbench.manifest import RunManifest
from uasbench.report import columns as cols
from uasbench.report import leaderboard as lb
from uasbench.report import render as rd
from uasbench.report import runs as runs_
from uasbench.report import levels
from uasbench.report import statistics as st
from uasbench.report.table import Table
from uasbench.results import CHECKPOINT, MANIFEST, METRICS_CSV, METRICS_JSON, SCORES

PAGE_NAME = "index.html"
RUN_FILES = (MANIFEST, METRICS_JSON, METRICS_CSV, SCORES, CHECKPOINT)
GRID_NOTE = ("Thresholds are searched over 1000 quantiles of each method's in-mask scores (the official code "
             "uses k/1000 for k < 100 on min-max normalised maps, reproduced in its own section). Tumour "
             "outside the evaluation mask counts as missed.")


def page_path(output: Path) -> Path:
    """``--output``: a file ending in .html, or a folder that receives ``index.html``."""
    output = Path(output)
    return output if output.suffix.lower() in (".html", ".htm") else output / PAGE_NAME


def write_page(results_dir: Path, output: Path, warn: Callable[[str], None] | None = None) -> Path:
    """Build the page for every complete run under ``results_dir`` and write it atomically; runs that fail the
    leaderboard's checks are listed on the page and passed to ``warn`` (see ``runs.collect_runs``)."""
    path = page_path(output)
    if path.parent.exists() and not path.parent.is_dir():
        raise UasbenchError(f"--output {output}: {path.parent} is not a folder")
    df = runs_.collect_runs(results_dir, warn=warn)
    if df.empty and not levels.cross_dataset_runs(results_dir):
        raise UasbenchError(f"no complete runs under {results_dir} to publish")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = build_page(Path(results_dir), df, path.parent.resolve())
    write_text_atomic(path, text)
    return path


def build_page(results_dir: Path, df: pd.DataFrame, page_dir: Path) -> str:
    template = Template(files("uasbench.report").joinpath("page.html").read_text(encoding="utf-8"))
    cross = levels.levels_text(results_dir, "html") or '<p class="note">No cross-dataset runs.</p>'
    if df.empty:  # cross-dataset runs only: the within-dataset sections say so
        none = '<p class="note">No within-dataset runs.</p>'
        return template.substitute(title=html.escape(f"uasbench leaderboard: {results_dir.resolve().name}"),
                                   summary=none, protocols=_protocols(), table2=none, table1=none, levels=cross,
                                   official=none, statistics=none, figures=none, losses=none, provenance=none)
    labelled = cols.labelled(df)
    pairs = sorted(df["pair"].unique(), key=cols.pair_sort_key)
    return template.substitute(
        title=html.escape(f"uasbench leaderboard: {results_dir.resolve().name}"),
        summary=_summary(results_dir, df),
        protocols=_protocols(),
        table2=lb.render(df, table="pairs", fmt="html", threshold="val_dice", explain=False),
        table1="\n".join(_oracle_box(t, lb.render(df, table="metrics", fmt="html", threshold=t, explain=False))
                         for t in lb.THRESHOLDS),
        levels=cross,
        official=_official(results_dir),
        statistics="\n".join(_statistics(labelled, pair) for pair in pairs),
        figures="\n".join(_comparison(results_dir, pair) for pair in pairs),
        losses="\n".join(_losses(labelled, pair) for pair in pairs),
        provenance=_provenance(df, page_dir),
    )


def _summary(results_dir: Path, df: pd.DataFrame) -> str:
    runs = df.drop_duplicates("run")
    ignored = df.attrs.get("ignored", 0)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"{len(runs)} complete runs of {runs['method'].nunique()} methods on "
            f"{runs['pair'].nunique()} modality pair(s), seeds {', '.join(map(str, sorted(runs['seed'].unique())))}, "
            f"from <code>{html.escape(str(results_dir))}</code>; generated {when}.")
    if ignored:
        text += f" {ignored} unfinished run folder(s) were ignored."
    skipped = df.attrs.get("skipped", [])
    if skipped:
        items = "".join(f"<li><code>{html.escape(run)}</code>: {html.escape(reason)}</li>" for run, reason in skipped)
        text += (f" {len(skipped)} run folder(s) were skipped because they failed the leaderboard's checks:"
                 f'</p>\n<ul class="skipped">{items}</ul>\n<p>')
    return text


def _protocols() -> str:
    names = {"val_dice": "val_dice (headline)", "fpr_1": "fpr_1", "fpr_5": "fpr_5",
             "oracle_test": "oracle_test (ORACLE)", lb.OFFICIAL_KEY: f"{OFFICIAL} (ORACLE)"}
    items = "".join(f"<dt>{html.escape(names[k])}</dt><dd>{html.escape(lb.PROTOCOL_NOTES[k])}</dd>" for k in names)
    notes = " ".join([lb.COMMON_NOTE, lb.PROJECT_METRICS_NOTE, GRID_NOTE, lb.SPREAD_NOTES["ci"], lb.MARKS_NOTE,
                      f"With fewer than {st.MIN_SUBJECTS} paired subjects no test is run and the table says so."])
    return f'<dl class="protocols">{items}</dl>\n<p class="note">{html.escape(notes)}</p>'


def _oracle_box(threshold: str, body: str) -> str:
    return f'<div class="oracle">\n{body}</div>' if threshold == "oracle_test" else body


def _official(results_dir: Path) -> str:
    try:
        df = runs_.collect_runs(results_dir, protocol=OFFICIAL, warn=lambda _: None)  # skips were listed once
        table = lb.render(df, table="metrics", fmt="html", explain=False)
    except UasbenchError as exc:
        return f'<p class="note">Not available for these runs: {html.escape(str(exc))}</p>'
    runs = df[df["metric"] == "dice"].drop_duplicates("run").sort_values(["pair", "method", "seed"])
    rows = pd.DataFrame({"run": [Path(r).name for r in runs["run"]],
                         "threshold (test-tuned, of k/1000)": [f"{v:.3f}" for v in runs["threshold_value"]],
                         "empty predictions": runs["empty_predictions"].astype(int)})
    return table + rd.table_text(Table.from_frame(
        "Threshold chosen by the official search, per run", rows,
        "Empty predictions: slices on which the official ASSD would crash; left out of the ASSD mean, counted 0 "
        "in the other overlap metrics."), "html")


def _statistics(df: pd.DataFrame, pair: str) -> str:
    stats = cols.column_stats(df, cols.Column("Dice", pair, "val_dice", "dice"), cols.row_labels(df))
    title = f"Pair {pair}"
    parts = [f"<h3>{html.escape(title)}</h3>", f'<p class="note">{html.escape(cols.friedman_text(stats))}</p>',
             rd.table_text(Table.from_frame("Paired Wilcoxon signed-rank tests (Holm-corrected)", cols.tests_frame(stats),
                                            "Median difference A-B over the subjects both methods have, with its "
                                            "bootstrap 95% CI; Holm over all pairs of this comparison."), "html")]
    shares = cols.rank_shares(stats)
    frame, note = cols.ranks_display(stats, shares)
    parts.append(rd.table_text(Table.from_frame("Rank stability", frame, note), "html"))
    if shares is not None:
        from uasbench.report.figures import rank_stability_figure

        parts.append(_image(rank_stability_figure(shares, f"{pair}: Dice rank over bootstrap resamples"),
                            f"rank stability blob plot for {pair}"))
    return "\n".join(parts)


def _image(png: bytes, alt: str) -> str:
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>'


def _comparison(results_dir: Path, pair: str) -> str:
    from uasbench.report.figures import figure_from_runs

    with tempfile.TemporaryDirectory() as tmp:
        try:
            png = figure_from_runs(results_dir, pair, Path(tmp) / "fig.png").read_bytes()
        except UasbenchError as exc:
            return f'<p class="note">Pair {html.escape(pair)}: no figure ({html.escape(str(exc))}).</p>'
    caption = (f"Pair {pair}: per test slice the input with the ground-truth contour, then each method's anomaly "
               "map and its segmentation at its validation-tuned threshold (lowest seed).")
    return f'<h3>Pair {html.escape(pair)}</h3>\n{_image(png, caption)}\n<p class="note">{html.escape(caption)}</p>'


def _losses(df: pd.DataFrame, pair: str) -> str:
    runs = df[df["pair"] == pair].drop_duplicates("run").sort_values(["sort", "seed"])
    curves: dict[str, list[tuple[str, pd.DataFrame]]] = {}
    without = []
    for run in runs.itertuples():
        logs = sorted(Path(run.run).glob("loss_*.csv"))
        if not logs:
            without.append(run.label)
        for log in logs:
            frame = _read_loss(log)
            if frame is not None:
                curves.setdefault(run.label, []).append((f"{log.stem.removeprefix('loss_')} s{run.seed}", frame))
    parts = [f"<h3>Pair {html.escape(pair)}</h3>"]
    if curves:
        from uasbench.report.figures import loss_curves_figure

        parts.append(_image(loss_curves_figure(curves), f"training loss curves for {pair}"))
    missing = sorted(set(without) - set(curves))
    if missing:
        parts.append(f'<p class="note">No loss log (not a learned method, or a run made before loss logs '
                     f'travelled with it): {html.escape(", ".join(missing))}.</p>')
    return "\n".join(parts)


def _read_loss(path: Path) -> pd.DataFrame | None:
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    return frame if {"step", "loss"} <= set(frame.columns) and len(frame) else None


def _provenance(df: pd.DataFrame, page_dir: Path) -> str:
    runs = cols.labelled(df).drop_duplicates("run").sort_values(["pair", "sort", "seed"])
    rows = [_provenance_row(Path(r.run), RunManifest.from_dict(runs_.read_json(Path(r.run) / MANIFEST)), page_dir)
            for r in runs.itertuples()]
    header = ["Run", "Method", "Pair", "Seed", "Settings", "Data fingerprint", "Split SHA-256", "Code revision",
              "Device", "Wall time (s)", "Versions", "Files"]
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<table class="provenance"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>\n'
            '<p class="note">Links are relative to this page: keep it beside the results folder it was made from.</p>')


def _provenance_row(run: Path, manifest: RunManifest, page_dir: Path) -> list[str]:
    def esc(value: Any) -> str:
        return html.escape(str(value))

    def link(target: Path, text: str) -> str:
        return f'<a href="{quote(os.path.relpath(target.resolve(), page_dir))}">{esc(text)}</a>'

    def known(value: str | None) -> str:
        return "unknown" if value is None else value

    device = manifest.device or {}
    device_text = " ".join(str(device[k]) for k in ("type", "gpu", "cpu") if device.get(k))
    if device.get("torch_threads"):
        device_text += f", {device['torch_threads']} threads"
    times = ", ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in (manifest.wall_times_s or {}).items())
    versions = ", ".join(f"{k} {v}" for k, v in (manifest.versions or {}).items())
    present = [run / name for name in RUN_FILES if (run / name).is_file()] + sorted(run.glob("loss_*.csv"))
    split = manifest.split_sha256 or ""
    return [link(run, run.name), esc(manifest.method), esc(manifest.pair), esc(manifest.seed),
            esc(runs_.variant_label(manifest.profile, manifest.override_values)),
            f"<code>{esc(known(manifest.data_fingerprint))}</code>",
            f'<code title="{esc(split)}">{esc(split[:12])}</code>',
            f"<code>{esc(known(manifest.code_revision))}</code>", esc(device_text), esc(times),
            esc(versions), " ".join(link(f, f.name) for f in present)]
