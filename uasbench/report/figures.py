"""The paper's Fig. 3: example test slices with their ground truth, then every method's anomaly map and
its segmentation at the method's own validation threshold; and the report page's plots (rank stability,
loss curves).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from uasbench.errors import UasbenchError  # noqa: E402
from uasbench.evaluation.postprocess import PostProcess, apply_postprocess  # noqa: E402
from uasbench.report.columns import method_sort_key  # noqa: E402

GT_COLOUR = "lime"
SEG_COLOUR = (1.0, 0.1, 0.1, 0.55)  # translucent red over the input image


def comparison_figure(x: np.ndarray, seg: np.ndarray, maps: dict[str, np.ndarray],
                      thresholds: dict[str, float | None], out: Path,
                      titles: list[str] | None = None, masks: dict[str, np.ndarray] | None = None) -> Path:
    """Write a PNG grid: one column per slice; rows: input + GT contour, then map and segmentation per method.

    ``masks`` (optional, per method) are the evaluation masks: segmentations are drawn inside them only,
    exactly as the metrics count them. A method whose threshold is ``None`` (undefined) gets its map row
    and a segmentation row saying so.
    """
    x, seg = np.asarray(x), np.asarray(seg, dtype=bool)
    if x.ndim != 3 or seg.shape != x.shape:
        raise UasbenchError(f"figure input images {x.shape} and masks {seg.shape} must be equal (K,H,W) stacks")
    for name, m in maps.items():
        if np.shape(m) != x.shape:
            raise UasbenchError(f"figure: anomaly maps of {name} have shape {np.shape(m)}, expected {x.shape}")
    k = len(x)
    n_rows = 1 + 2 * len(maps)
    fig, axes = plt.subplots(n_rows, k, figsize=(2.0 * k + 1.2, 2.0 * n_rows), squeeze=False)
    for j in range(k):
        _image(axes[0, j], x[j])
        if seg[j].any():
            axes[0, j].contour(seg[j], levels=[0.5], colors=GT_COLOUR, linewidths=1.0)
        if titles is not None:
            axes[0, j].set_title(titles[j], fontsize=8)
    axes[0, 0].set_ylabel("input + GT", fontsize=9)
    for i, (name, m) in enumerate(maps.items()):
        map_ax, seg_ax = axes[1 + 2 * i], axes[2 + 2 * i]
        threshold = thresholds.get(name)
        low, high = float(np.min(m)), float(np.max(m))  # one colour scale per method, shared by its columns
        for j in range(k):
            map_ax[j].imshow(m[j], cmap="inferno", interpolation="nearest", vmin=low, vmax=high)
            _image(seg_ax[j], x[j])
            if threshold is None:
                seg_ax[j].text(0.5, 0.5, "threshold\nundefined", ha="center", va="center",
                               transform=seg_ax[j].transAxes, color="white", fontsize=8)
            else:
                overlay = np.zeros(x[j].shape + (4,))
                inside = True if masks is None else masks[name][j]
                overlay[(m[j] > threshold) & inside] = SEG_COLOUR
                seg_ax[j].imshow(overlay, interpolation="nearest")
            if seg[j].any():
                seg_ax[j].contour(seg[j], levels=[0.5], colors=GT_COLOUR, linewidths=0.6)
            for ax in (map_ax[j], seg_ax[j]):
                ax.set_xticks([])
                ax.set_yticks([])
        map_ax[0].set_ylabel(f"{name}\nmap", fontsize=9)
        seg_ax[0].set_ylabel(f"{name}\nseg", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return out


def _image(ax: plt.Axes, img: np.ndarray) -> None:
    ax.imshow(img, cmap="gray", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def pick_examples(seg: np.ndarray, n: int) -> np.ndarray:
    """Slices spread over the range of tumour sizes (small to large), deterministic."""
    order = np.argsort(seg.reshape(len(seg), -1).sum(axis=1), kind="stable")
    return order[np.unique(np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(int))]


def figure_from_runs(results_dir: Path, pair: str, out: Path, n_examples: int = 3) -> Path:
    """Fig. 3 from finished runs of one pair: one run per method (its lowest seed), post-processed as
    that run was evaluated, segmented at its ``val_dice`` threshold."""
    from uasbench.report.runs import collect_runs
    from uasbench.results import METRICS_JSON, SCORES, ScoredSplits, read_manifest

    df = collect_runs(results_dir)
    df = df[df["pair"] == pair]
    if df.empty:
        raise UasbenchError(f"no complete runs for pair {pair} under {results_dir}")
    chosen = df.sort_values("seed").groupby("method")["run"].first()
    maps: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    thresholds: dict[str, float | None] = {}
    reference = None
    for method in sorted(chosen.index, key=method_sort_key):
        run = Path(chosen[method])
        scored = ScoredSplits.load(run / SCORES)
        post = PostProcess.from_dict(read_manifest(run).postprocess or {})
        maps[method], masks[method] = apply_postprocess(scored.test_maps, scored.test.brain, post)
        thresholds[method] = json.loads((run / METRICS_JSON).read_text())["thresholds"]["val_dice"]["value"]
        key = (scored.test.subjects, tuple(np.asarray(scored.test.z).tolist()))
        if reference is None:
            reference = (key, scored.test)
        elif key != reference[0]:
            raise UasbenchError(f"run {run} was tested on other slices than the other {pair} runs")
    test = reference[1]
    idx = pick_examples(np.asarray(test.seg, dtype=bool), n_examples)
    titles = [f"{test.subjects[i]} z={int(test.z[i])}" for i in idx]
    return comparison_figure(test.x[idx], np.asarray(test.seg, dtype=bool)[idx],
                             {m: v[idx] for m, v in maps.items()}, thresholds, out, titles,
                             {m: v[idx] for m, v in masks.items()})


def png_bytes(fig: plt.Figure) -> bytes:
    """Render a figure to PNG bytes and close it (the report page embeds them as data URIs)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def rank_stability_figure(shares: pd.DataFrame, title: str) -> bytes:
    """A blob plot (challengeR's idea): per method, a disc per rank with area proportional to how often
    bootstrap resamples of the subjects gave it that rank; x marks its rank on all subjects, the bar
    spans the 2.5-97.5% quantiles of its bootstrap ranks. ``shares`` is ``statistics.rank_stability``'s."""
    shares = shares.sort_values("rank")
    ranks = np.array([c for c in shares.columns if c != "rank"], dtype=int)
    k = len(ranks)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(shares), 1.2 + 0.6 * k))
    for i, (method, row) in enumerate(shares.iterrows()):
        p = row[list(ranks)].to_numpy(dtype=float)
        ax.scatter(np.full(k, i), ranks, s=900 * p, color="tab:blue", alpha=0.6, linewidths=0)
        cumulative = np.cumsum(p)
        low, high = ranks[np.searchsorted(cumulative, 0.025)], ranks[min(np.searchsorted(cumulative, 0.975), k - 1)]
        ax.plot([i, i], [low, high], color="black", linewidth=1)
        ax.scatter([i], [row["rank"]], marker="x", color="black", s=40)
    ax.set_xticks(range(len(shares)), [str(m) for m in shares.index], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(ranks)
    ax.set_ylim(k + 0.6, 0.4)  # rank 1 on top
    ax.set_ylabel("rank")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return png_bytes(fig)


def loss_curves_figure(curves: dict[str, list[tuple[str, pd.DataFrame]]]) -> bytes:
    """One panel per method: each (network, seed) loss log as a faint raw line and a running mean."""
    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves) + 0.4, 2.6), squeeze=False)
    for ax, (method, logs) in zip(axes[0], curves.items()):
        for name, log in logs:
            loss = log["loss"].to_numpy(dtype=float)
            window = max(1, len(loss) // 50)
            smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
            line, = ax.plot(log["step"].to_numpy()[window - 1:], smooth, linewidth=1, label=name)
            ax.plot(log["step"], loss, linewidth=0.5, alpha=0.25, color=line.get_color())
        ax.set_yscale("log")
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    axes[0, 0].set_ylabel("training loss", fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)
