"""Regenerate ``assets/mni152_anatomy.npz`` from the MNI ICBM152 2009 maps shipped in the nilearn wheel.

Run ``python -m uasbench.data.build_anatomy`` (needs the ``anatomy`` extra, i.e. nilearn, installed).
nilearn is only read as a folder of NIfTI files, never imported, so it stays a build-time dependency.

Output: uint8 tissue probabilities (x255) for GM, WM, CSF and the lateral/third ventricles on a 2 mm grid,
cropped to the brain, aligned to the BraTS 240x240x155 array (axis 0 R->L, axis 1 A->P, axis 2 I->S).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from uasbench.errors import UasbenchError

ASSET = Path(__file__).with_name("assets") / "mni152_anatomy.npz"
GRID = (240, 240, 156)  # BraTS grid with z padded to an even length so that 2x2x2 blocks tile it
_PAD_X, _PAD_Y = (21, 22), (3, 4)  # MNI 197x233 -> BraTS 240x240, centred as in the BraTS/SRI24 frame


def nilearn_data_dir() -> Path:
    """The ``datasets/data`` folder of the installed nilearn, found without importing nilearn."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise UasbenchError("nilearn is not installed: `pip install nilearn` to rebuild the MNI152 anatomy asset")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def _load_mni(name: str) -> np.ndarray:
    path = nilearn_data_dir() / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
    if not path.is_file():
        raise UasbenchError(f"{path} not found: this nilearn version does not ship the ICBM152 2009 maps")
    return np.asarray(nib.load(path).dataobj, dtype=np.float32) / 255.0


def to_brats_grid(vol: np.ndarray) -> np.ndarray:
    """MNI RAS (197x233x189) -> BraTS (L,P,S) array order on the 240x240x156 grid.

    Flipping x and y turns RAS into LPS; the template's brain fills z 0..154, exactly BraTS's 155 slices.
    """
    lps = vol[::-1, ::-1, :155]
    return np.pad(lps, (_PAD_X, _PAD_Y, (0, GRID[2] - 155)))


def ventricle_map(csf: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Deep CSF (lateral and third ventricles): CSF-dominated voxels far from the brain surface."""
    depth = ndi.distance_transform_edt(brain)
    deep = (csf > 0.5) & (depth > 12)
    labels, n = ndi.label(deep)
    if n == 0:
        return np.zeros_like(csf)
    sizes = ndi.sum_labels(deep, labels, index=np.arange(1, n + 1))
    keep = np.isin(labels, 1 + np.flatnonzero(sizes >= 200))
    return csf * ndi.binary_dilation(keep, iterations=2)


def build_anatomy() -> dict[str, np.ndarray]:
    """Tissue maps at 2 mm, cropped to the brain's bounding box; ``offset`` is the crop origin in 2 mm voxels."""
    t1, gm, wm = (to_brats_grid(_load_mni(n)) for n in ("t1", "gm", "wm"))
    brain = ndi.binary_fill_holes(t1 > 0.02)
    gm, wm = gm * brain, wm * brain
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * brain
    maps = {"gm": gm, "wm": wm, "csf": csf, "ventricles": ventricle_map(csf, brain)}
    # 2x2x2 block means: the 2 mm voxel (i, j, k) covers 1 mm voxels 2i..2i+1 etc.
    coarse = {k: v.reshape(GRID[0] // 2, 2, GRID[1] // 2, 2, GRID[2] // 2, 2).mean(axis=(1, 3, 5))
              for k, v in maps.items()}
    occupied = np.argwhere(coarse["gm"] + coarse["wm"] + coarse["csf"] > 0)
    lo, hi = np.maximum(occupied.min(0) - 2, 0), np.minimum(occupied.max(0) + 3, np.array(GRID) // 2)
    crop = tuple(slice(a, b) for a, b in zip(lo, hi))
    out = {k: np.rint(v[crop] * 255).astype(np.uint8) for k, v in coarse.items()}
    out["offset"] = lo.astype(np.int16)
    return out


def main() -> None:
    arrays = build_anatomy()
    ASSET.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(ASSET, **arrays)
    print(f"wrote {ASSET} ({ASSET.stat().st_size / 1e6:.2f} MB, crop {arrays['gm'].shape} at 2 mm)")


if __name__ == "__main__":
    main()
