"""Synthetic multi-modal brain MRI phantom in the exact BraTS2021 layout (the default benchmark data set).

Why physics rather than painted intensities: contrasts between tissues, tumour compartments and
modalities then follow from one set of (PD, T1, T2) values per tissue and the sequence equations, so
cross-modal relations (what MMCCD learns) are consistent, and a lesion can be made genuinely invisible
on T1 while obvious on T2/FLAIR.

Per subject (one ``np.random.default_rng((seed, index))``, so subject k never depends on N):
anatomy (MNI152 GM/WM/CSF, 2 mm) -> random affine + smooth elastic warp (+ tumour mass effect) ->
normal look-alikes (periventricular caps, WM hyperintensities, choroid plexus, vessels) -> tumour
geometry -> per-compartment signal from spin-echo / inversion-recovery equations, mixed by tissue
fraction, with texture and bias field, still at 2 mm -> upsampled once to 1 mm -> in the tumour's box
only: 1 mm BraTS labels 1/2/4, tumour signal, PSF blur -> Rician noise and gain on brain voxels -> int16,
background exactly 0.

Version 3 (this one) moved the mixing before the upsampling and confined the 1 mm label work to the
tumour's box: about 4x faster than version 2 (``benchmarks/phantom_generation.py``) with the same tumour
labels; the images differ in detail (no PSF outside the tumour box, where the trilinear upsampling already
smooths more than the PSF did).
"""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import nibabel as nib
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from scipy import ndimage as ndi
from scipy.special import ndtri

from uasbench.data.anatomy import (BRATS_SHAPE, TISSUES, Anatomy, embed, load_anatomy, upsample2, upsample2_above,
                                   upsample2_at, upsample2_box)
from uasbench.errors import UasbenchError
from uasbench.paths import cache_root

PHANTOM_VERSION = "4"  # 4: images upsampled slab by slab (1-ulp rounding moves +-1 on ~0.01% of voxels)
CASE_PREFIX = "UASPH"
IMAGE_MODALITIES = ("flair", "t1", "t1ce", "t2")
BRATS_AFFINE = np.array([[-1, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
PROTOCOL_SLICES = range(70, 90)  # the MMCCD axial slab
N_SITES = 4
# The embedded benchmark: 72 subjects, 24 healthy ones and 48 with a tumour whose largest slice lies in the
# protocol slab; its split (``default_assignment``) trains on every healthy subject and evaluates 22 + 22.
DEFAULT_SUBJECTS = 72
EVAL_SUBJECTS = 22  # tumour subjects in validation, and again in test
# Subject kind by index % 12: 4 healthy (a third: whole healthy slabs to train on), 2 low-grade T1-iso (a third
# of tumours), 6 glioblastoma-like.
_KIND_CYCLE = "HLGGHGGLHGGH"
_KINDS = {"H": "healthy", "L": "low_grade_t1_iso", "G": "glioblastoma"}

# Normal tissue (PD relative to water, T1 ms, T2 ms) per field strength (Rooney 2007, Stanisz 2005 ranges).
_NORMAL = {
    3.0: {"wm": (0.69, 850.0, 75.0), "gm": (0.80, 1350.0, 95.0), "csf": (1.0, 4300.0, 1500.0)},
    1.5: {"wm": (0.69, 680.0, 80.0), "gm": (0.80, 1100.0, 95.0), "csf": (1.0, 4200.0, 1800.0)},
}
_R1_GD = {3.0: 4.0, 1.5: 4.5}  # gadolinium relaxivity, 1/(s mM)
_BLOOD_T1 = {3.0: 1650.0, 1.5: 1350.0}


@dataclass(frozen=True)
class Tissue:
    """One compartment: proton density, relaxation times (ms), gadolinium concentration after contrast (mM)."""

    pd: float
    t1: float
    t2: float
    gd: float = 0.0
    flow_void: float = 1.0  # signal factor for moving blood on the non-contrast sequences


@dataclass(frozen=True)
class Acquisition:
    """One site's acquisition: field strength and (TR, TE[, TI]) in ms for each sequence."""

    field_t: float
    t1: tuple[float, float]
    t2: tuple[float, float]
    flair: tuple[float, float, float]


@dataclass
class PhantomSubject:
    """A generated case: int16 images and uint8 ``seg`` on 240x240x155, the dominant tissue
    (0 background, 1 CSF, 2 GM, 3 WM) for tests/figures, and the drawn parameters (JSON-ready)."""

    case_id: str
    images: dict[str, np.ndarray]
    seg: np.ndarray
    tissue: np.ndarray
    params: dict = field(default_factory=dict)


def spin_echo(t: Tissue, tr: float, te: float, t1: float | None = None) -> float:
    """Magnitude of a 90-180 spin echo, exact in TR/TE (no TR >> TE shortcut): used for T1w and T2w."""
    t1 = t.t1 if t1 is None else t1
    return t.pd * (1 - 2 * np.exp(-(tr - te / 2) / t1) + np.exp(-tr / t1)) * np.exp(-te / t.t2)


def inversion_recovery(t: Tissue, tr: float, te: float, ti: float) -> float:
    """Magnitude-reconstructed inversion recovery (FLAIR when TI nulls CSF)."""
    return t.pd * abs(1 - 2 * np.exp(-ti / t.t1) + np.exp(-tr / t.t1)) * np.exp(-te / t.t2)


def csf_null_ti(t1_csf: float, tr: float) -> float:
    """Inversion time that nulls a T1 of ``t1_csf`` at repetition time ``tr``."""
    return t1_csf * np.log(2 / (1 + np.exp(-tr / t1_csf)))


def signals(t: Tissue, p: Acquisition) -> np.ndarray:
    """Signal of one compartment in (flair, t1, t1ce, t2); T1ce shortens T1 by the Gd relaxivity."""
    t1_post = 1 / (1 / t.t1 + _R1_GD[p.field_t] * t.gd / 1000)
    void = t.flow_void
    return np.array([inversion_recovery(t, *p.flair) * void, spin_echo(t, *p.t1) * void,
                     spin_echo(t, *p.t1, t1=t1_post) * (1.0 if t.gd else void), spin_echo(t, *p.t2) * void])


def draw_site(seed: int, site: int) -> Acquisition:
    """Clinical-range protocol of one scanner site (even sites 3 T, odd 1.5 T); FLAIR TI aims at the CSF null
    with a small error."""
    rng = np.random.default_rng((seed, 1_000_003, site))
    field_t = 3.0 if site % 2 == 0 else 1.5
    t1 = (float(rng.uniform(400, 650)), float(rng.uniform(8, 15)))
    t2 = (float(rng.uniform(4000, 6000)), float(rng.uniform(80, 110)))
    tr_f = float(rng.uniform(8000, 11000))
    ti = csf_null_ti(_NORMAL[field_t]["csf"][1], tr_f) * float(rng.uniform(0.97, 1.03))
    return Acquisition(field_t, t1, t2, (tr_f, float(rng.uniform(100, 140)), ti))


def _smooth_fields(rng: np.random.Generator, shape: tuple[int, ...], scale: float, n: int) -> np.ndarray:
    """``n`` smooth random fields (unit std) with correlation length ~``scale`` voxels: coarse noise, upsampled."""
    coarse = [int(np.ceil(s / scale)) + 3 for s in shape]
    noise = ndi.gaussian_filter(rng.standard_normal((n, *coarse), dtype=np.float32), (0, 0.8, 0.8, 0.8))
    with torch.no_grad():
        up = torch.nn.functional.interpolate(torch.from_numpy(noise)[None], size=shape, mode="trilinear",
                                             align_corners=True)[0].numpy()
    up -= up.mean(axis=(1, 2, 3), keepdims=True)
    return up / up.std(axis=(1, 2, 3), keepdims=True)


def _z_to_grid(z: float, anat: Anatomy) -> float:
    """BraTS 1 mm axial index -> continuous coordinate on the cropped 2 mm grid."""
    return (z + 0.5) / 2 - 0.5 - anat.offset[2]


def _expand(x: np.ndarray, centre: np.ndarray, amplitude: float, sigma: np.ndarray) -> np.ndarray:
    """Sample closer to ``centre`` (Gaussian profile, per-axis ``sigma`` in voxels): the content there grows."""
    d = x - centre[:, None, None, None]
    pull = 1 - amplitude * np.exp(-((d / sigma[:, None, None, None]) ** 2).sum(0) / 2)
    return centre[:, None, None, None] + d * pull


def _resample(stack: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Trilinear sampling of (C, X, Y, Z) maps at voxel coordinates (3, ...), zero outside: all channels in one
    torch ``grid_sample`` call, several times faster than one ``scipy.ndimage.map_coordinates`` per channel."""
    size = np.array(stack.shape[1:], np.float32)[:, None, None, None]
    grid = (coords * (2 / (size - 1)) - 1)[::-1]  # grid_sample wants (z, y, x) order, normalised to [-1, 1]
    grid_t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(grid, 0, -1)))[None]
    with torch.no_grad():
        out = torch.nn.functional.grid_sample(torch.from_numpy(stack)[None], grid_t, mode="bilinear",
                                              padding_mode="zeros", align_corners=True)
    return out[0].numpy()


class _Warp:
    """Random affine + elastic warp of the template on the 2 mm grid, with ventricle enlargement (atrophy,
    common in the older glioma population) and, optionally, a tumour's mass effect."""

    def __init__(self, rng: np.random.Generator, anat: Anatomy):
        self.stack = np.stack([getattr(anat, k) for k in TISSUES])
        shape = anat.shape
        self.grid = np.indices(shape, dtype=np.float32)
        self.centre = (np.array(shape, dtype=np.float32) - 1) / 2
        ax, ay, az = np.deg2rad(rng.uniform(-3, 3)), np.deg2rad(rng.uniform(-3, 3)), np.deg2rad(rng.uniform(-6, 6))
        rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        self.matrix = (rz @ ry @ rx @ np.diag(1 / rng.uniform(0.94, 1.06, 3))).astype(np.float32)
        self.shift = rng.uniform(-1, 1, 3).astype(np.float32)
        self.elastic = _smooth_fields(rng, shape, 5.0, 3) * np.float32(rng.uniform(0.6, 1.0))  # ~1.2-2 mm std
        vent = np.argwhere(anat.ventricles > 0.5)
        self.ventricle_centre = vent.mean(0).astype(np.float32)
        self.ventricle_sigma = (vent.std(0) * 1.5).astype(np.float32)
        self.atrophy = float(rng.uniform(0.0, 0.35))
        self.params = {"rotation_deg": [float(np.rad2deg(a)) for a in (ax, ay, az)],
                       "elastic_std_mm": float(2 * self.elastic.std()), "ventricle_expansion": self.atrophy}

    def sample(self, mass_centre: np.ndarray | None = None, amplitude: float = 0.0,
               sigma: float = 1.0) -> dict[str, np.ndarray]:
        """Warped tissue maps; a mass effect samples closer to its centre, i.e. pushes tissue outwards."""
        x = self.grid
        if mass_centre is not None and amplitude > 0:
            x = _expand(x, mass_centre, amplitude, np.full(3, sigma, np.float32))
        rel = (x - self.centre[:, None, None, None]).reshape(3, -1)
        src = (self.matrix @ rel).reshape(x.shape) + (self.centre + self.shift)[:, None, None, None] + self.elastic
        src = _expand(src, self.ventricle_centre, self.atrophy, self.ventricle_sigma)
        return dict(zip(TISSUES, _resample(self.stack, src)))


def _jitter(rng: np.random.Generator, t: tuple[float, float, float], rel: float = 0.05) -> Tissue:
    pd, t1, t2 = (v * rng.uniform(1 - rel, 1 + rel) for v in t)
    return Tissue(float(pd), float(t1), float(t2))


def _iso_t1(rng: np.random.Generator, wm: Tissue, p: Acquisition, t1_ratio: float, t2: float) -> Tissue:
    """A lesion with long T1/T2 whose PD is solved so its T1w signal equals WM's for this protocol."""
    probe = Tissue(1.0, wm.t1 * t1_ratio, t2)
    pd = spin_echo(wm, *p.t1) / spin_echo(probe, *p.t1) * rng.uniform(0.99, 1.01)
    return Tissue(float(pd), probe.t1, t2)


def _tissues(rng: np.random.Generator, p: Acquisition) -> dict[str, Tissue]:
    """Per-subject relaxation parameters of every compartment (pathology T1 relative to WM, 3 T ranges)."""
    normal = {k: _jitter(rng, v) for k, v in _NORMAL[p.field_t].items()}
    wm = normal["wm"]
    u = rng.uniform
    return {
        **normal,
        "cap": Tissue(u(0.74, 0.80), wm.t1 * u(1.15, 1.4), u(95, 130)),
        "choroid": Tissue(u(0.80, 0.90), wm.t1 * u(1.3, 1.6), u(100, 140), gd=u(0.2, 0.4)),
        "vessel": Tissue(0.85, _BLOOD_T1[p.field_t], 150.0, gd=u(0.6, 1.0), flow_void=u(0.15, 0.35)),
        "edema": Tissue(u(0.80, 0.88), wm.t1 * u(1.5, 1.9), u(120, 200), gd=u(0.0, 0.02)),
        "enhancing": Tissue(u(0.80, 0.86), wm.t1 * u(1.6, 2.1), u(90, 130), gd=u(0.2, 0.5)),
        "necrosis": Tissue(u(0.88, 0.97), wm.t1 * u(2.6, 4.0), u(200, 500)),
        "lgg_core": _iso_t1(rng, wm, p, u(1.3, 1.5), u(150, 200)),
        "lgg_infiltration": _iso_t1(rng, wm, p, u(1.15, 1.3), u(110, 150)),
    }


def _distance_near(mask: np.ndarray, reach: int) -> np.ndarray:
    """Distance (voxels) to ``mask``, exact up to ``reach`` voxels and ``inf`` beyond: the transform runs on the
    mask's bounding box grown by ``reach`` only."""
    out = np.full(mask.shape, np.inf, np.float32)
    hit = np.argwhere(mask)
    if len(hit):
        box = tuple(slice(max(int(a) - reach, 0), int(b) + reach + 1) for a, b in zip(hit.min(0), hit.max(0)))
        out[box] = ndi.distance_transform_edt(~mask[box])
    return out


def _normal_lookalikes(rng: np.random.Generator, maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Healthy structures a naive intensity threshold mistakes for tumour (2 mm fractions in [0, 1])."""
    shape = maps["wm"].shape
    vent = maps["ventricles"] > 0.4
    near_vent = _distance_near(vent, 6) * 2  # mm; caps reach at most 9 mm from the ventricles
    patch = _smooth_fields(rng, shape, 4.0, 3)
    thickness = rng.uniform(2, 6)
    caps = np.clip(1.5 - near_vent / thickness, 0, 1) * (patch[0] > rng.uniform(-0.8, 0.4))
    coarse = (slice(None, None, 2),) * 3  # depth > 20 mm needs no 2 mm precision: a 4 mm grid is 8x cheaper
    depth = ndi.distance_transform_edt((maps["gm"] + maps["wm"] + maps["csf"] > 0.5)[coarse]) * 4
    deep_wm = np.argwhere((maps["wm"][coarse] > 0.8) & (depth > 20)) * 2
    n_wmh = rng.poisson(3)
    if n_wmh and len(deep_wm):
        spots = np.zeros(shape, np.float32)
        spots[tuple(deep_wm[rng.integers(len(deep_wm), size=n_wmh)].T)] = 1
        caps = np.maximum(caps, np.clip(ndi.gaussian_filter(spots, rng.uniform(0.6, 1.4)) * 12, 0, 1))
    caps *= maps["wm"] * rng.uniform(0.4, 1.0)
    # choroid plexus: lumps in the posterior half (atria) of the lateral ventricles
    y_mid = np.median(np.argwhere(vent)[:, 1]) if vent.any() else shape[1] / 2
    posterior = (np.arange(shape[1]) > y_mid)[None, :, None]
    choroid = maps["ventricles"] * posterior * np.clip(patch[1] - 0.3, 0, 1)
    # vessels: intersections of two smooth level sets are curves; keep the sulcal/cortical ones
    g = _smooth_fields(rng, shape, 6.0, 2)
    tubes = np.exp(-(g[0] ** 2 + g[1] ** 2) / (2 * 0.12 ** 2))
    vessel = tubes * np.clip(maps["csf"] + 0.5 * maps["gm"], 0, 1) * (maps["ventricles"] < 0.2) * (patch[2] > 0)
    return {"cap": caps, "choroid": choroid, "vessel": np.clip(vessel * 0.8, 0, 1)}


_SIZES = {  # (solid radius R mm, edema extent E mm) ranges and probability, per size class
    "small": ((4, 8), (2, 8), 0.35), "medium": ((8, 13), (6, 16), 0.4), "large": ((12, 18), (10, 22), 0.25)}


def _tumour_size(rng: np.random.Generator, kind: str) -> dict:
    classes = list(_SIZES)
    cls = classes[rng.choice(len(classes), p=[_SIZES[c][2] for c in classes])]
    (r_lo, r_hi), (e_lo, e_hi), _ = _SIZES[cls]
    e_scale = 1.0 if kind == "G" else 0.4  # the infiltrative type has little oedema beyond its T2 signal
    return {"size_class": cls, "R": float(rng.uniform(r_lo, r_hi)), "E": float(rng.uniform(e_lo, e_hi) * e_scale),
            "axes": [float(v) for v in (rng.uniform(0.8, 1.25), rng.uniform(0.8, 1.25), rng.uniform(0.5, 0.75))],
            "rotation": np.linalg.qr(rng.standard_normal((3, 3)))[0].tolist()}


def _tumour_fields(kind: str, maps: dict[str, np.ndarray], centre: np.ndarray, size: dict,
                   noise: np.ndarray) -> dict[str, np.ndarray]:
    """Signed geometry on the 2 mm grid, each field < 1 (``core``, ``necrosis``) or < 0 (``edema``, mm) inside.

    Lobulated shapes come from smooth noise at two scales added to an ellipsoidal distance; the necrosis and
    edema borders get their own noise (irregular rim thickness), and the edema margin grows with the local WM
    probability, so oedema spreads along white matter.
    """
    d = (np.indices(maps["wm"].shape, dtype=np.float32) - centre[:, None, None, None]) * 2  # mm
    rot = np.array(size["rotation"], np.float32) / np.array(size["axes"], np.float32)[:, None]
    dist = np.sqrt((np.einsum("ij,jxyz->ixyz", rot, d) ** 2).sum(0))
    d[2] *= 1.4  # oedema spreads more in-plane than across slices: keeps healthy slices in the protocol slab
    dist_edema = np.sqrt((np.einsum("ij,jxyz->ixyz", rot, d) ** 2).sum(0))
    rough = 0.35 if kind == "L" else 0.3
    rr = dist + rough * size["R"] * (noise[0] + 0.4 * noise[3])
    wm = ndi.gaussian_filter(maps["wm"], 1.0)
    margin = size["R"] + size["E"] * np.clip(0.2 + 1.1 * wm + 0.4 * noise[2], 0, None)
    return {"core": rr / size["R"], "necrosis": rr / size["R"] + 0.15 * noise[1],
            "edema": dist_edema + 0.2 * (size["R"] + size["E"]) * noise[2] - margin}


def _tumour_extent(fields: dict[str, np.ndarray], maps: dict[str, np.ndarray], anat: Anatomy) -> np.ndarray:
    """Approximate whole-tumour area per 1 mm axial slice (BraTS z index), from the 2 mm fields."""
    brain = maps["gm"] + maps["wm"] + maps["csf"] > 0.5
    area2 = (((fields["edema"] < 0) | (fields["core"] < 1)) & brain).sum(axis=(0, 1))
    area = np.zeros(2 * (len(area2) + anat.offset[2]), int)
    area[2 * anat.offset[2]:] = np.repeat(area2, 2)
    return area


def _place_tumour(rng: np.random.Generator, kind: str, warp: _Warp, maps: dict[str, np.ndarray],
                  anat: Anatomy) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Draw a tumour whose largest slice lies in z 70..89; return its parameters, the anatomy deformed by
    its mass effect, and its fields.

    The centre starts in deep white matter; it is then moved in z so that the largest slice stays inside the
    protocol slab while, when the tumour is small enough, a few slices at one end of the slab stay healthy.
    The mass effect, which barely moves the tumour's own extent, is applied once the centre is fixed.
    """
    size = _tumour_size(rng, kind)
    noise = np.concatenate([_smooth_fields(rng, anat.shape, 4.0, 3), _smooth_fields(rng, anat.shape, 1.5, 1)])
    k = int(round(_z_to_grid(rng.uniform(74, 86), anat)))
    brain = maps["gm"] + maps["wm"] + maps["csf"] > 0.5
    depth = ndi.distance_transform_edt(brain[:, :, k]) * 2
    ok = (maps["wm"][:, :, k] > 0.6) & (depth > max(size["R"], 12)) & (maps["ventricles"][:, :, k] < 0.1)
    cand = np.argwhere(ok) if ok.any() else np.argwhere(maps["wm"][:, :, k] > 0.3)
    centre = np.array([*cand[rng.integers(len(cand))], k], np.float32)
    mass = float(rng.uniform(0.15, 0.35)) if kind == "G" and size["R"] > 8 else 0.0
    healthy_on_top, gap = bool(rng.random() < 0.5), int(rng.integers(0, 4))
    placed = None
    for _ in range(8):  # placed on the anatomy without mass effect: one warp instead of one per try
        fields = _tumour_fields(kind, maps, centre, size, noise)
        area = _tumour_extent(fields, maps, anat)
        z, peak = np.flatnonzero(area), int(area.argmax())
        if 72 <= peak <= 86:  # 2 mm estimate: keep a margin so the 1 mm peak stays in 70..89
            placed = centre.copy()
        target = 87 - gap - (z[-1] - peak) if healthy_on_top else 72 + gap + (peak - z[0])
        shift = int(np.clip(target, 72, 86)) - peak
        if abs(shift) < 2 and placed is not None:
            break
        centre[2] += shift // 2
    centre = placed if placed is not None else centre
    deformed = warp.sample(centre, mass, 1.5 * size["R"] / 2) if mass else maps
    fields = _tumour_fields(kind, deformed, centre, size, noise)
    params = {**size, "z_centre": float(2 * (centre[2] + anat.offset[2]) + 0.5),
              "centre_grid2mm": centre.tolist(), "mass_effect": mass}
    return params, deformed, fields


def _bias_basis(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Two smooth log-bias fields (3rd-order polynomials, as TorchIO's RandomBiasField), max |.| = 1.

    Each modality's bias is a random combination of the two: coils are shared, sequences differ.
    """
    c = [np.linspace(-1, 1, s, dtype=np.float32) for s in shape]
    terms = [(i, j, k) for i in range(4) for j in range(4) for k in range(4) if i + j + k <= 3]
    out = np.zeros((2, *shape), np.float32)
    for field_ in out:
        for a, (i, j, k) in zip(rng.uniform(-1, 1, len(terms)), terms):
            field_ += np.float32(a) * (c[0][:, None, None] ** i) * (c[1][None, :, None] ** j) * (c[2] ** k)
        field_ /= np.abs(field_).max()
    return out


def _normal_signal(maps: dict[str, np.ndarray], look: dict[str, np.ndarray], tissues: dict[str, Tissue],
                   proto: Acquisition) -> np.ndarray:
    """(4, X, Y, Z) noise-free signal of normal tissue and look-alikes on the 2 mm grid, mixed by fraction.

    Mixing commutes with the (linear) upsampling, so mixing at 2 mm costs an eighth of mixing at 1 mm. The
    fractions are not renormalised to 1: at the brain's edge the partial volume with the background darkens
    the signal, as a scanner's PSF does.
    """
    vessel = look["vessel"]
    keep = 1 - vessel
    cap, choroid = maps["wm"] * keep * look["cap"], maps["csf"] * keep * look["choroid"]
    fracs = {"gm": maps["gm"] * keep, "wm": maps["wm"] * keep - cap, "csf": maps["csf"] * keep - choroid,
             "cap": cap, "choroid": choroid, "vessel": vessel}
    table = np.stack([signals(tissues[n], proto) for n in fracs]).astype(np.float32)  # (K, 4)
    return np.einsum("kxyz,km->mxyz", np.stack(list(fracs.values())), table)


def _tumour_box(tumour: dict[str, np.ndarray], margin: int = 3) -> tuple[slice, ...]:
    """The 2 mm bounding box of the tumour plus ``margin`` voxels: the only place labels need 1 mm fields."""
    inside = np.argwhere((tumour["edema"] < 0) | (tumour["core"] < 1))
    lo = np.maximum(inside.min(0) - margin, 0)
    hi = np.minimum(inside.max(0) + margin + 1, tumour["core"].shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _tumour_labels(box: dict[str, np.ndarray], brain: np.ndarray, kind: str, necrosis_fraction: float) -> np.ndarray:
    """BraTS labels (uint8) inside the tumour box at 1 mm: oedema 2 (not in CSF), core 4 (1 if low grade),
    necrosis 1."""
    lab = np.zeros(brain.shape, np.uint8)
    lab[(box["edema"] < 0) & (box["csf_share"] < 0.7)] = 2
    lab[box["core"] < 1] = 1 if kind == "L" else 4
    if kind == "G":
        lab[box["necrosis"] < necrosis_fraction] = 1
    lab[~brain] = 0
    return lab


def _draw_acquisition(rng: np.random.Generator) -> dict[str, dict]:
    """Per modality: bias amplitude and direction, PSF sigma (1 mm voxels), noise level, receiver gain."""
    return {name: {"bias_amplitude": float(rng.uniform(0.05, 0.2)), "bias_angle": float(rng.uniform(0, 2 * np.pi)),
                   "psf_sigma_vox": float(rng.uniform(0.4, 0.7)), "noise_rel_p99": float(rng.uniform(0.008, 0.025)),
                   "gain_wm": float(rng.uniform(400, 1200))} for name in IMAGE_MODALITIES}


# Standard normal noise by table look-up (inverse CDF at 65536 equiprobable points, |z| <= 4.3): a uniform
# 16-bit draw and a gather cost a sixth of numpy's normal sampler, and MR noise needs no tails beyond 4.3 sigma.
_NORMAL_QUANTILES = ndtri((np.arange(2 ** 16) + 0.5) / 2 ** 16).astype(np.float32)


def _rician(rng: np.random.Generator, clean: np.ndarray, sigma: np.float32, gain: np.float32,
            idx_full: np.ndarray) -> np.ndarray:
    """Magnitude image ``|clean + sigma (n1 + i n2)| * gain`` as int16 (>= 1) on the BraTS grid, brain voxels
    ``idx_full`` only, computed in place."""
    noise = _NORMAL_QUANTILES[rng.integers(0, len(_NORMAL_QUANTILES), (2, len(clean)), dtype=np.uint16)]
    noise *= sigma
    clean += noise[0]
    np.square(clean, out=clean)
    np.square(noise[1], out=noise[1])
    clean += noise[1]
    np.sqrt(clean, out=clean)
    clean *= gain
    np.rint(clean, out=clean)
    np.clip(clean, 1, 32767, out=clean)
    out = np.zeros(BRATS_SHAPE, np.int16)
    out.reshape(-1)[idx_full] = clean
    return out


def _upsample_tissue(tissue2: np.ndarray) -> np.ndarray:
    """Nearest-neighbour x2 of a label map (each 2 mm voxel becomes a 2x2x2 block)."""
    x, y, z = tissue2.shape
    return np.broadcast_to(tissue2[:, None, :, None, :, None], (x, 2, y, 2, z, 2)).reshape(2 * x, 2 * y, 2 * z)


def case_id(index: int) -> str:
    return f"{CASE_PREFIX}_{index:05d}"


def subject_kind(index: int) -> str:
    """``healthy``, ``low_grade_t1_iso`` or ``glioblastoma``: fixed by the index, so small sets mix all three."""
    return _KINDS[_KIND_CYCLE[index % len(_KIND_CYCLE)]]


def _subject_geometry(index: int, seed: int) -> tuple:
    """The 2 mm stage of a subject: site, tissue parameters, warped anatomy and tumour fields.

    Returns the subject's generator positioned after these draws, so the 1 mm stage continues the same stream.
    """
    rng = np.random.default_rng((seed, index))
    anat = load_anatomy()
    kind = _KIND_CYCLE[index % len(_KIND_CYCLE)]
    site = int(rng.integers(N_SITES))
    proto = draw_site(seed, site)
    tissues = _tissues(rng, proto)
    warp = _Warp(rng, anat)
    maps = warp.sample()
    params: dict = {"kind": _KINDS[kind], "site": site, "protocol": proto.__dict__, "warp": warp.params}
    tumour = None
    if kind != "H":
        tumour_params, maps, tumour = _place_tumour(rng, kind, warp, maps, anat)
        params["tumour"] = {**tumour_params, "necrosis_fraction_of_radius": float(rng.uniform(0.45, 0.8))}
    return rng, kind, proto, tissues, maps, tumour, params


def tumour_area_per_slice(index: int, seed: int = 0) -> np.ndarray:
    """Cheap (2 mm) estimate of the whole-tumour area per axial slice z = 0..154, without synthesising images."""
    _, _, _, _, maps, tumour, _ = _subject_geometry(index, seed)
    if tumour is None:
        return np.zeros(BRATS_SHAPE[2], int)
    return _tumour_extent(tumour, maps, load_anatomy())[:BRATS_SHAPE[2]]


def generate_subject(index: int, seed: int = 0) -> PhantomSubject:
    """Generate subject ``index`` of the data set with ``seed``; identical for the same (seed, index).

    Everything smooth is computed on the 2 mm grid (normal-tissue signal, texture, bias) and upsampled only
    where it is needed (brain voxels, slab by slab); only the tumour's box gets 1 mm label fields, its own signal
    and the PSF blur; Rician noise is drawn for brain voxels only.
    """
    rng, kind, proto, tissues, maps, tumour, params = _subject_geometry(index, seed)
    anat = load_anatomy()
    look = _normal_lookalikes(rng, maps)
    texture = ndi.gaussian_filter(rng.standard_normal(anat.shape, dtype=np.float32), 1.0)
    texture *= np.float32(0.02 / texture.std())
    log_bias = _bias_basis(rng, anat.shape)
    acq = _draw_acquisition(rng)
    bias = np.stack([np.exp(a["bias_amplitude"] * (np.cos(a["bias_angle"]) * log_bias[0]
                                                   + np.sin(a["bias_angle"]) * log_bias[1])) for a in acq.values()])
    total = maps["gm"] + maps["wm"] + maps["csf"]
    normal = _normal_signal(maps, look, tissues, proto)
    brain2 = total > 0.5
    p99 = [float(np.percentile(v[brain2], 99)) for v in normal]
    smooth = normal * (1 + texture) * bias
    brain = upsample2_above(total, 0.5)
    seg = np.zeros(brain.shape, np.uint8)
    if tumour is not None:
        box2 = _tumour_box(tumour)
        fields = {"core": tumour["core"], "necrosis": tumour["necrosis"], "edema": tumour["edema"],
                  "csf_share": maps["csf"] / np.maximum(total, 1e-3), "texture": texture}
        stack = upsample2(np.concatenate([np.stack([v[box2] for v in fields.values()]), bias[(slice(None), *box2)]]))
        up, box_bias = dict(zip(fields, stack)), stack[len(fields):]
        box = tuple(slice(2 * b.start, 2 * b.stop) for b in box2)
        lab = _tumour_labels(up, brain[box], kind, params["tumour"]["necrosis_fraction_of_radius"])
        seg[box] = lab
        compartments = ({1: "lgg_core", 2: "lgg_infiltration"} if kind == "L"
                        else {1: "necrosis", 2: "edema", 4: "enhancing"})
        heterogeneity = 1 + 4 * up["texture"]  # tumours are more heterogeneous than normal tissue
    brain[:, :, BRATS_SHAPE[2] - 2 * anat.offset[2]:] = False  # beyond the BraTS grid
    idx = np.flatnonzero(brain)  # brain voxels of the crop, in the same order as ...
    idx_full = np.flatnonzero(embed(brain, anat.offset))  # ... the same voxels of the 240x240x155 grid
    wm_sig = signals(tissues["wm"], proto)
    if tumour is not None:
        in_box = np.zeros(brain.shape, bool)
        in_box[box] = True
        box_voxels = in_box.reshape(-1)[idx]  # brain voxels in the tumour box, in the order of ...
        box_brain = brain[box]  # ... these
    images = {}
    for m, (name, a) in enumerate(acq.items()):
        sig = upsample2_at(smooth[m], idx)
        if tumour is not None:  # the box's compartments written in, the box blurred by the PSF
            region = upsample2_box(smooth[m:m + 1], box2)[0]
            for label, compartment in compartments.items():
                inside = lab == label
                region[inside] = signals(tissues[compartment], proto)[m] * (heterogeneity * box_bias[m])[inside]
            sig[box_voxels] = ndi.gaussian_filter(region, a["psf_sigma_vox"], truncate=3.0)[box_brain]
        images[name] = _rician(rng, sig, np.float32(a["noise_rel_p99"] * p99[m]),
                               np.float32(a["gain_wm"] / wm_sig[m]), idx_full)
        a.update(gain=float(a["gain_wm"] / wm_sig[m]),
                 noise_sigma_rel_wm=a["noise_rel_p99"] * p99[m] / float(wm_sig[m]))
    tissue2 = np.where(maps["wm"] >= np.maximum(maps["gm"], maps["csf"]), 3,
                       np.where(maps["gm"] >= maps["csf"], 2, 1)).astype(np.uint8)
    tissue = np.zeros(BRATS_SHAPE, np.uint8)
    tissue.reshape(-1)[idx_full] = _upsample_tissue(tissue2).reshape(-1)[idx]
    seg_full = embed(seg, anat.offset)
    params.update(acquisition=acq, tissues={k: v.__dict__ for k, v in tissues.items()},
                  lookalikes_cm3={k: float(v.sum() * 8 / 1000) for k, v in look.items()})
    params.update(_seg_summary(seg_full))
    return PhantomSubject(case_id(index), images, seg_full, tissue,
                          {"generator": "uasbench.phantom", "version": PHANTOM_VERSION, "seed": seed,
                           "index": index, **params})


def _seg_summary(seg: np.ndarray) -> dict:
    """Volumes per label and where the tumour sits relative to the protocol slab (z 70..89)."""
    area = (seg > 0).sum(axis=(0, 1))
    slab = area[PROTOCOL_SLICES.start:PROTOCOL_SLICES.stop]
    out = {"volume_cm3": {str(lab): float((seg == lab).sum() / 1000) for lab in (1, 2, 4)},
           "healthy_protocol_slices": int((slab == 0).sum())}
    if area.any():
        out["largest_slice"] = int(area.argmax())
        out["tumour_z_range"] = [int(np.flatnonzero(area)[0]), int(np.flatnonzero(area)[-1])]
    return out


def _save(vol: np.ndarray, path: Path) -> None:
    img = nib.Nifti1Image(vol, BRATS_AFFINE)
    img.set_qform(BRATS_AFFINE, code=1)
    img.set_sform(BRATS_AFFINE, code=1)
    nib.save(img, path)  # nibabel gzips at compresslevel 1: fast, and the zero background packs well


def write_subject(folder: Path, index: int, seed: int) -> dict:
    """Generate one subject and write ``<ID>/<ID>_{flair,t1,t1ce,t2,seg}.nii.gz`` + ``<ID>_phantom.json``."""
    subject = generate_subject(index, seed)
    case = folder / subject.case_id
    case.mkdir(parents=True, exist_ok=True)
    for name, vol in subject.images.items():
        _save(vol, case / f"{subject.case_id}_{name}.nii.gz")
    _save(subject.seg, case / f"{subject.case_id}_seg.nii.gz")
    (case / f"{subject.case_id}_phantom.json").write_text(json.dumps(subject.params, indent=1))
    return subject.params


def _init_worker() -> None:
    torch.set_num_threads(1)


def write_phantom_dataset(out: Path, n_subjects: int, seed: int = 0, *, progress: bool = True,
                          workers: int | None = None, writer: Callable[[Path, int, int], Any] | None = None,
                          indices: list[int] | None = None, finish: Callable[[Path], Any] | None = None) -> Path:
    """Write ``n_subjects`` phantom cases into ``out`` atomically (temp sibling folder, then one rename).
    ``writer(folder, index, seed)`` writes one subject (default: BraTS2021 files); ``indices`` picks which
    subjects (default: 0..n-1), e.g. only healthy ones; ``finish(folder)`` completes the folder before it is
    renamed into place (e.g. a dataset.json)."""
    out = Path(out)
    if n_subjects < 1:
        raise UasbenchError(f"--subjects must be at least 1 (got {n_subjects})")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UasbenchError(f"{out} already exists and is not an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    workers = max(1, min(workers or os.cpu_count() or 1, n_subjects))
    bar = Progress(TextColumn("phantom"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   disable=not progress, transient=False)
    try:
        with bar:
            task = bar.add_task("subjects", total=n_subjects)
            chosen = list(range(n_subjects)) if indices is None else indices
            writer = writer or write_subject
            if workers == 1:
                for i in chosen:
                    writer(tmp, i, seed)
                    bar.advance(task)
            else:
                with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
                    for fut in as_completed([pool.submit(writer, tmp, i, seed) for i in chosen]):
                        fut.result()
                        bar.advance(task)
        if finish is not None:
            finish(tmp)
        try:
            os.replace(tmp, out)
        except OSError as exc:
            raise UasbenchError(f"{out} appeared while the phantom was being generated ({exc.strerror})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def default_assignment(subjects: list[str], seed: int) -> dict[str, str]:
    """The embedded benchmark's split: every healthy subject and the tumour subjects not drawn train; ``seed``
    shuffles the tumour subjects into ``EVAL_SUBJECTS`` validation and as many test subjects.

    Unlike BraTS's 80/10/10, most tumour subjects are evaluated: training needs only healthy slices, which the
    healthy subjects give 20 at a time, and 22 + 22 evaluated subjects let thresholds and means mean something.
    """
    expected = [case_id(i) for i in range(DEFAULT_SUBJECTS)]
    if sorted(subjects) != expected:
        raise UasbenchError(f"the embedded benchmark's split is for its {DEFAULT_SUBJECTS} subjects "
                            f"{expected[0]}..{expected[-1]}; pass a split file for other subjects")
    tumour = [case_id(i) for i in range(DEFAULT_SUBJECTS) if subject_kind(i) != "healthy"]
    drawn = [tumour[i] for i in np.random.default_rng(seed).permutation(len(tumour))[:2 * EVAL_SUBJECTS]]
    roles = {s: "train" for s in expected}
    roles.update({s: "val" for s in drawn[:EVAL_SUBJECTS]})
    roles.update({s: "test" for s in drawn[EVAL_SUBJECTS:]})
    return roles


def default_phantom_root(*, progress: bool = True) -> Path:
    """The embedded benchmark's volumes (seed 0) in the cache, written when first needed.

    ``load_benchmark_data`` never needs them (it generates straight into the slice cache); commands that read
    case files do, and the generator is deterministic, so they are the same volumes whenever written.
    """
    root = cache_root() / f"phantom-{PHANTOM_VERSION}-n{DEFAULT_SUBJECTS}-s0"
    if root.is_dir() and any(root.iterdir()):
        return root
    Console(stderr=True).print(f"Writing the embedded phantom's {DEFAULT_SUBJECTS} subjects as NIfTI into {root}")
    try:
        write_phantom_dataset(root, DEFAULT_SUBJECTS, 0, progress=progress)
    except UasbenchError:
        if not (root.is_dir() and any(root.iterdir())):  # a concurrent process finished first: use its copy
            raise
    return root
