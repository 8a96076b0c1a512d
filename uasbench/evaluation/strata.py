"""Results by lesion size and by lesion kind: which subjects fall in which group, and their summaries.

Size: terciles of the test set's per-subject lesion volume (voxels in the scored slices). The cut-offs
``q1 <= q2`` are the 1/3 and 2/3 quantiles (numpy's linear interpolation); a subject is ``small`` when its
volume is at most ``q1``, ``medium`` up to ``q2``, ``large`` above. The cut-offs are returned so that a
report prints them: they are a property of this test set, not fixed sizes.

Kind: a per-subject label the data supplies (the phantom's low-grade vs glioblastoma-like subjects);
groups in sorted order of the labels.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from uasbench.errors import UasbenchError
from uasbench.evaluation.metrics import Summary, summarize

SIZE_GROUPS = ("small", "medium", "large")


def size_terciles(subjects: Sequence[str], lesion_voxels: Sequence[float]) -> tuple[list[float], dict[str, list[str]]]:
    """The cut-offs ``[q1, q2]`` and the subjects of each size group."""
    volumes = np.asarray(lesion_voxels, dtype=float)
    if len(volumes) != len(subjects):
        raise UasbenchError(f"{len(volumes)} lesion volumes for {len(subjects)} subjects")
    if len(volumes) == 0:
        return [float("nan"), float("nan")], {g: [] for g in SIZE_GROUPS}
    q1, q2 = (float(q) for q in np.quantile(volumes, [1 / 3, 2 / 3]))
    group = np.where(volumes <= q1, 0, np.where(volumes <= q2, 1, 2))
    return [q1, q2], {name: [s for s, g in zip(subjects, group) if g == i] for i, name in enumerate(SIZE_GROUPS)}


def kind_groups(subjects: Sequence[str], kinds: Mapping[str, str]) -> dict[str, list[str]]:
    """Subjects grouped by their kind label; every subject needs one."""
    missing = [s for s in subjects if s not in kinds]
    if missing:
        raise UasbenchError(f"no lesion kind given for subject(s) {', '.join(missing[:5])}")
    return {k: [s for s in subjects if kinds[s] == k] for k in sorted({kinds[s] for s in subjects})}


def group_summaries(per_subject: Mapping[str, Mapping[str, Sequence[float]]], subjects: Sequence[str],
                    members: Sequence[str], n_bootstrap: int, seed: int) -> dict[str, dict[str, Summary]]:
    """``{key: {metric: Summary}}`` over the ``members`` only (same seeded bootstrap as the whole set)."""
    pick = np.isin(np.asarray(subjects), list(members))
    return {key: {m: summarize(np.asarray(v, dtype=float)[pick], n_bootstrap, seed) for m, v in d.items()}
            for key, d in per_subject.items()}
