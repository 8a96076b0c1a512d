"""Run directories as ``uasbench run`` leaves them, without training anything: synthetic test slices,
maps that find the lesions more or less well, and metrics from the real ``evaluate``. For the report
page and the official-protocol CLI tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from uasbench.data.slices import SliceSet
from uasbench.evaluation.postprocess import PostProcess
from uasbench.evaluation.evaluate import evaluate
from uasbench.results import ScoredSplits

SIZE = 32


def slices(n: int, seed: int, prefix: str = "S") -> SliceSet:
    """``n`` slices, one per subject: a disk brain (its T2 mask one pixel larger) with a square lesion."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    brain = np.broadcast_to((yy - 16) ** 2 + (xx - 16) ** 2 < 13**2, (n, SIZE, SIZE)).copy()
    brain_t2 = np.broadcast_to((yy - 16) ** 2 + (xx - 16) ** 2 < 14**2, (n, SIZE, SIZE)).copy()
    seg = np.zeros_like(brain)
    for i in range(n):
        r, c, w = rng.integers(8, 16), rng.integers(8, 16), rng.integers(3, 8)
        seg[i, r:r + w, c:c + w] = True
    x = (brain * (1.0 + 0.1 * rng.normal(size=brain.shape)) + seg).astype(np.float32)
    return SliceSet(x=x, brain=brain, subjects=tuple(f"{prefix}{i:02d}" for i in range(n)), z=np.full(n, 80),
                    seg=seg, brain_t2=brain_t2)


def write_run(root: Path, method: str, seed: int, quality: float, *, n_test: int = 8, pair: str = "fl-t2",
              with_t2: bool = True, losses: bool = True) -> Path:
    """A complete run folder; maps are uniform noise plus ``quality`` on the lesion (1: separable)."""
    rng = np.random.default_rng(1000 * seed + len(method))
    val, test = slices(4, seed, "V"), slices(n_test, 7)  # one test set shared by every method and seed
    healthy = SliceSet(x=val.x, brain=val.brain, subjects=val.subjects, z=val.z, seg=np.zeros_like(val.seg))
    if not with_t2:
        test = SliceSet(x=test.x, brain=test.brain, subjects=test.subjects, z=test.z, seg=test.seg)

    def score(s: SliceSet) -> np.ndarray:
        return (quality * s.seg + rng.random(s.x.shape)).astype(np.float32)

    scored = ScoredSplits(val_maps=score(val), val=val, healthy_maps=score(healthy), val_healthy=healthy,
                          test_maps=score(test), test=test)
    post = PostProcess()
    result = evaluate(val_maps=scored.val_maps, val=val, healthy_maps=scored.healthy_maps, val_healthy=healthy,
                      test_maps=scored.test_maps, test=test, post=post, n_bootstrap=50, seed=seed)
    run = root / f"{method}_{pair}_quick_s{seed}"
    run.mkdir(parents=True)
    scored.save(run / "scores.npz")
    (run / "metrics.json").write_text(json.dumps(result.to_dict()))
    manifest = {"method": method, "pair": pair, "profile": "quick", "overrides": {}, "seed": seed,
                "train_modalities": ["input"], "data_fingerprint": "fp-test", "split_sha256": f"split-{seed}",
                "postprocess": post.to_dict(), "code_revision": "abc123", "versions": {"uasbench": "0.1.0"},
                "device": {"type": "cpu", "torch_threads": 1, "cpu": "x86_64"},
                "wall_times_s": {"fit_s": 1.5, "score_s": 0.25}, "complete": True}
    (run / "manifest.json").write_text(json.dumps(manifest))
    if losses:
        steps = np.arange(1, 41)
        (run / "loss_net.csv").write_text("step,loss\n" + "".join(f"{s},{1.0 / s:.6g}\n" for s in steps))
    return run
