"""The Fig. 3 comparison figure: a valid PNG, from arrays and from finished run directories."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.evaluation.postprocess import PostProcess
from uasbench.evaluation.evaluate import evaluate
from uasbench.report.figures import comparison_figure, figure_from_runs, pick_examples
from uasbench.results import ScoredSplits

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _stack(k: int = 3, size: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    brain = np.broadcast_to((yy - 12) ** 2 + (xx - 12) ** 2 < 10**2, (k, size, size)).copy()
    seg = np.stack([((yy - 12) ** 2 + (xx - 12) ** 2 < (2 + i) ** 2) for i in range(k)])
    x = (brain * 0.5 + seg * 0.5 + 0.05 * rng.normal(size=brain.shape)).astype(np.float32)
    return x, seg, brain


def test_comparison_figure_writes_png(tmp_path: Path) -> None:
    x, seg, brain = _stack()
    maps = {"dae": x + seg, "mmccd": x * 2}
    out = comparison_figure(x, seg, maps, {"dae": 0.9, "mmccd": None}, tmp_path / "sub" / "fig.png",
                            titles=["a", "b", "c"], masks={"dae": brain, "mmccd": brain})
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    image = mpimg.imread(out)
    assert image.ndim == 3 and image.shape[0] > image.shape[1]  # 5 rows x 3 columns


def test_comparison_figure_rejects_mismatched_maps(tmp_path: Path) -> None:
    x, seg, _ = _stack()
    with pytest.raises(UasbenchError, match="dae"):
        comparison_figure(x, seg, {"dae": x[:, :-1]}, {"dae": 0.5}, tmp_path / "fig.png")


def test_pick_examples_spans_tumour_sizes() -> None:
    seg = np.zeros((5, 4, 4), bool)
    for i, area in enumerate([3, 0, 5, 1, 2]):
        seg[i].flat[:area] = True
    assert pick_examples(seg, 3).tolist() == [1, 4, 2]
    assert len(pick_examples(seg, 10)) == 5


def _fake_run(root: Path, method: str, seed: int, val_has_tumour: bool) -> None:
    """A run directory as the runner leaves it, with metrics.json from the real evaluate()."""
    x, seg, brain = _stack(4)
    slices = SliceSet(x=x, brain=brain, subjects=tuple(f"s{i}" for i in range(4)), z=np.arange(4), seg=seg)
    val = slices if val_has_tumour else replace(slices, seg=np.zeros_like(seg))
    scored = ScoredSplits(val_maps=x + seg, val=val, healthy_maps=x, val_healthy=slices, test_maps=x + seg,
                          test=slices)
    post = PostProcess(erode_brain_px=1)
    run = root / f"{method}_s{seed}"
    run.mkdir(parents=True)
    scored.save(run / "scores.npz")
    manifest = {"method": method, "pair": "fl-t2", "profile": "quick", "seed": seed, "complete": True,
                "postprocess": post.to_dict()}
    (run / "manifest.json").write_text(json.dumps(manifest))
    result = evaluate(val_maps=scored.val_maps, val=val, healthy_maps=x, val_healthy=slices,
                      test_maps=scored.test_maps, test=slices, post=post, n_bootstrap=10)
    (run / "metrics.json").write_text(json.dumps(result.to_dict()))


def test_figure_from_runs(tmp_path: Path) -> None:
    _fake_run(tmp_path / "runs", "mmccd", 0, val_has_tumour=True)
    _fake_run(tmp_path / "runs", "dae", 1, val_has_tumour=False)  # undefined threshold
    out = figure_from_runs(tmp_path / "runs", "fl-t2", tmp_path / "fig.png", n_examples=2)
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(UasbenchError, match="no complete runs for pair t1-fl"):
        figure_from_runs(tmp_path / "runs", "t1-fl", tmp_path / "other.png")
