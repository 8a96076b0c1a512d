"""Render docs/figures/predict_overlay.png: a run's `uasbench predict` output overlaid on a real case.

Usage: python scripts/predict_figure.py RUN_DIR [--real DIR] [--case ID] [--out PNG] [--threshold T]
Runs `uasbench predict RUN_DIR --data REAL --cases ID` into a temporary folder, reads the two NIfTI files
back with nibabel (so the figure shows what a viewer would overlay) and draws, at the case's largest-tumour
slice inside the scored slab: the input with the label contour, the anomaly map over the input, the
segmentation with the label contour, and a coronal cut showing that only the scored slab carries a map.
np.rot90 display, 1-99 percentile window.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

from uasbench.modalities import Pair  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _load(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def _show(ax: plt.Axes, image: np.ndarray, title: str, window: tuple[float, float]) -> None:
    ax.imshow(np.rot90(image), cmap="gray", vmin=window[0], vmax=window[1], interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _overlay_map(ax: plt.Axes, values: np.ndarray, vmax: float) -> None:
    ax.imshow(np.rot90(np.ma.masked_equal(values, 0)), cmap="inferno", vmin=0, vmax=vmax, alpha=0.6,
              interpolation="nearest")


def draw(scan: np.ndarray, labels: np.ndarray | None, anomaly: np.ndarray, segmentation: np.ndarray,
         title: str, out: Path) -> Path:
    scored = np.flatnonzero(anomaly.any(axis=(0, 1)))
    area = (labels[:, :, scored] > 0).sum(axis=(0, 1)) if labels is not None else np.zeros(len(scored))
    z = int(scored[area.argmax()]) if area.any() else int(scored[len(scored) // 2])
    window = tuple(np.percentile(scan[scan > 0], [1, 99]))
    vmax = float(np.percentile(anomaly[anomaly > 0], 99.5))
    truth = None if labels is None else labels[:, :, z] > 0

    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    _show(axes[0], scan[:, :, z], f"input, axial z={z} (label contour)", window)
    _show(axes[1], scan[:, :, z], "anomaly map (<ID>_anomaly.nii.gz)", window)
    _overlay_map(axes[1], anomaly[:, :, z], vmax)
    _show(axes[2], scan[:, :, z], "segmentation (<ID>_anomaly_seg.nii.gz)", window)
    axes[2].imshow(np.rot90(np.ma.masked_equal(segmentation[:, :, z], 0)), cmap="autumn", alpha=0.6,
                   interpolation="nearest")
    if truth is not None and truth.any():
        for ax in (axes[0], axes[2]):
            ax.contour(np.rot90(truth), levels=[0.5], colors="lime", linewidths=0.8)
    y = int(np.argmax(segmentation.sum(axis=(0, 2)))) if segmentation.any() else scan.shape[1] // 2
    _show(axes[3], scan[:, y, :], f"coronal y={y}: only the scored slab has a map", window)
    _overlay_map(axes[3], anomaly[:, y, :], vmax)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=90)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--real", type=Path, default=REPO / "tests" / "fixtures" / "real-brats",
                        help="BraTS-layout cases (default: the in-repository fixture; its slabs only)")
    parser.add_argument("--case", default="TCGA-FG-6692")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures" / "predict_overlay.png")
    parser.add_argument("--threshold", default="val_dice")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "uasbench", "predict", str(args.run_dir), "--data", str(args.real),
                        "--cases", args.case, "--threshold", args.threshold, "--out", tmp], check=True)
        anomaly = _load(Path(tmp) / f"{args.case}_anomaly.nii.gz")
        segmentation = _load(Path(tmp) / f"{args.case}_anomaly_seg.nii.gz")
    run = json.loads((args.run_dir / "manifest.json").read_text())
    modality = Pair.parse(run["pair"]).input
    folder = args.real / args.case
    seg_path = folder / f"{args.case}_seg.nii.gz"
    settings = "".join(f", {k}={v}" for k, v in run["overrides"].items())
    title = (f"uasbench predict: {run['method']} ({run['profile']} profile{settings}, {run['pair']}, trained on "
             f"the embedded phantom) applied to the real case {args.case}, threshold {args.threshold}")
    path = draw(_load(folder / f"{args.case}_{modality}.nii.gz"), _load(seg_path) if seg_path.exists() else None,
                anomaly, segmentation, title, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
