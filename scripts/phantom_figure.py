"""Render docs/figures/phantom_vs_real.png: phantom subjects next to the two real BraTS cases.

Usage: python scripts/phantom_figure.py [--real DIR] [--out PNG] [--seed S] [--subjects 0,1,2,...]
Each row is one subject at its largest-tumour slice within z 70..89 (z=80 when there is none there);
columns FLAIR, T1, T1ce, T2 and the segmentation over FLAIR; np.rot90 display, 1-99 percentile window.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from uasbench.data.phantom import IMAGE_MODALITIES, PROTOCOL_SLICES, generate_subject  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SEG_CMAP = ListedColormap([(0, 0, 0, 0), (1, 0.2, 0.2, 0.8), (0.2, 0.9, 0.2, 0.5), (0, 0, 0, 0), (1, 1, 0, 0.8)])


def protocol_slice(seg: np.ndarray) -> int:
    area = (seg[:, :, PROTOCOL_SLICES.start:PROTOCOL_SLICES.stop] > 0).sum(axis=(0, 1))
    return PROTOCOL_SLICES.start + int(area.argmax()) if area.any() else 80


def window(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img[img != 0], (1, 99)) if (img != 0).any() else (0, 1)
    return np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)


def load_real(case: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    vols = {m: np.asarray(nib.load(case / f"{case.name}_{m}.nii.gz").dataobj) for m in IMAGE_MODALITIES}
    return vols, np.rint(np.asarray(nib.load(case / f"{case.name}_seg.nii.gz").dataobj)).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=REPO / "tests" / "fixtures" / "real-brats",
                        help="BraTS-layout cases (default: the in-repository fixture; its slabs only)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures" / "phantom_vs_real.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subjects", default="0,2,3,1,7")
    args = parser.parse_args()

    rows = []
    for i in (int(s) for s in args.subjects.split(",")):
        s = generate_subject(i, args.seed)
        rows.append((f"{s.case_id}\n{s.params['kind']}", s.images, s.seg))
    for case in sorted(p for p in args.real.iterdir() if p.is_dir()):
        vols, seg = load_real(case)
        rows.append((f"{case.name}\nreal BraTS", vols, seg))

    fig, axes = plt.subplots(len(rows), 5, figsize=(12.5, 2.6 * len(rows)), facecolor="black")
    for r, (title, vols, seg) in enumerate(rows):
        z = protocol_slice(seg)
        for c, m in enumerate(IMAGE_MODALITIES):
            axes[r, c].imshow(np.rot90(window(vols[m][:, :, z].astype(np.float32))), cmap="gray", vmin=0, vmax=1)
            if r == 0:
                axes[r, c].set_title(m.upper(), color="white")
        axes[r, 4].imshow(np.rot90(window(vols["flair"][:, :, z].astype(np.float32))), cmap="gray")
        axes[r, 4].imshow(np.rot90(seg[:, :, z]), cmap=SEG_CMAP, vmin=0, vmax=4, interpolation="nearest")
        axes[r, 0].set_ylabel(f"{title}\nz={z}", color="white", fontsize=8)
        if r == 0:
            axes[r, 4].set_title("seg (1 red, 2 green, 4 yellow)", color="white", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80, facecolor="black")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
