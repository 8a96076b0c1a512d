"""What a grid costs before it runs: network passes and FLOPs for training and scoring, and GPU-hours.

Each method describes its networks and how often a run uses them (``AnomalyMethod.network_costs``); the
FLOPs of one forward pass are counted with torch's ``FlopCounterMode`` on the meta device, so even the
paper's 128x128 UNets are priced in milliseconds without memory. A training sample counts as three forward
passes (forward + backward). GPU-hours are FLOPs at a stated dense bf16 throughput, i.e. at 100% of the
peak: a lower bound (small UNets reach a fraction of it). Scoring depends on how many slices are scored:
counted from the data folder and split when they are there, else assumed to be BraTS2021's (1251
subjects) under the benchmark's split rule, which the estimate says.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

from rich.table import Table

from uasbench.benchmark.config import BenchmarkConfig
from uasbench.data.preprocess import Preparation
from uasbench.method import MethodConfig, NetworkCost, forward_flops

#: NVIDIA H100 SXM, dense BF16 tensor-core peak (989 TFLOP/s without sparsity): an H100-class default.
H100_BF16_TFLOPS = 989.0
BRATS2021_SUBJECTS = 1251
#: Subjects ASSUMED per dataset family when a cross-dataset benchmark's test folder is not there (a dry run
#: without the data), by layout name: the public releases' training sets (BraTS 2021: 1251; MSLUB: 30
#: patients; ATLAS v2.0 training: 655; WMH 2017 training: 60; ISLES'22: 250); an undetected layout is priced
#: as BraTS 2021.
FAMILY_SUBJECTS = {"brats2021": 1251, "brats2023": 1251, "mslub": 30, "atlas2": 655, "wmh": 60, "isles22": 250}
#: Axial slices with brain ASSUMED per volume when a protocol scores every brain slice and the data is not
#: there: about 140 on the spatial standard's 1 mm grid (an adult brain is ~140 mm tall).
BRAIN_SLICES_PER_VOLUME = 140


@dataclasses.dataclass(frozen=True)
class SliceCounts:
    """Slices a run scores: labelled validation, healthy validation and test; ``source`` says where from."""

    val: int
    val_healthy: int
    test: int
    source: str

    @property
    def scored(self) -> int:
        return self.val + self.val_healthy + self.test


@dataclasses.dataclass(frozen=True)
class JobCost:
    name: str
    known: bool  # False when the method does not describe its networks
    method: str = ""
    train_samples: int = 0
    train_flops: float = 0.0
    score_passes: float = 0.0
    score_flops: float = 0.0

    @property
    def flops(self) -> float:
        return self.train_flops + self.score_flops

    def gpu_hours(self, tflops: float) -> float:
        return self.flops / (tflops * 1e12) / 3600


@functools.lru_cache(maxsize=None)
def _method_costs(method: str, config_json: str) -> tuple[tuple[NetworkCost, int], ...] | None:
    """The method's networks with their forward FLOPs, once per distinct config."""
    from uasbench.registry import get_method

    cls = get_method(method)
    config: MethodConfig = cls.Config(**json.loads(config_json))
    networks = cls.network_costs(config)
    return None if networks is None else tuple((n, forward_flops(n)) for n in networks)


def job_cost(name: str, method: str, config: MethodConfig, counts: SliceCounts) -> JobCost:
    networks = _method_costs(method, json.dumps(dataclasses.asdict(config), sort_keys=True))
    if networks is None:
        return JobCost(name, known=False, method=method)
    train_samples = sum(n.train_samples for n, _ in networks)
    train_flops = sum(3 * n.train_samples * flops for n, flops in networks)
    per_network = [(n.passes_per_slice * counts.scored + n.passes_per_val_slice_in_fit * counts.val, flops)
                   for n, flops in networks]
    return JobCost(name, True, method, train_samples, float(train_flops), sum(p for p, _ in per_network),
                   float(sum(p * flops for p, flops in per_network)))


def slice_counts(config: BenchmarkConfig) -> SliceCounts:
    """Upper bounds of the scored slices per run: one tumour slice per validation and test subject and up to
    the protocol's healthy slices per validation subject (subjects without tumour in range are left out)."""
    from uasbench.data.benchmark_data import dataset_subjects, seeded_rule
    from uasbench.data.splits import make_assignment, parse_split_csv

    if config.cross_dataset:
        return _cross_slice_counts(config)
    per_subject = Preparation().val_healthy_per_subject
    if config.split is not None and config.split.is_file():
        roles = list(parse_split_csv(config.split).values())
        source = f"split file {config.split}"
    elif config.data is None and config.data_missing is None:  # the embedded phantom has its own split rule
        _, source = _subject_count(config)
        roles = list(seeded_rule(None)[0](dataset_subjects(None), 0).values())
        source += ", its seeded split"
    else:
        n, source = _subject_count(config)
        roles = list(make_assignment([f"s{i:05d}" for i in range(n)], 0).values())
        source += ", seeded 80/10/10 split"
    n_val, n_test = roles.count("val"), roles.count("test")
    return SliceCounts(n_val, per_subject * n_val, n_test, source)


def _cross_slice_counts(config: BenchmarkConfig) -> SliceCounts:
    """Every test dataset's scored slices (a cross-dataset run scores all selected slices of its validation
    and test subjects; val_healthy counts at most the same slices again): counted from each folder when it is
    there, else from ``FAMILY_SUBJECTS`` and, for whole volumes, ``BRAIN_SLICES_PER_VOLUME``."""
    from uasbench.data.benchmark_data import dataset_subjects

    protocol = Preparation(slices=config.slices)
    per_volume = BRAIN_SLICES_PER_VOLUME if protocol.slices == "brain" else protocol.z_stop - protocol.z_start
    val = test = 0
    sources = []
    for d in config.test_data:
        if d.missing is None:
            n = len(dataset_subjects(d.path, layout=d.layout, card=d.card))
            sources.append(f"{d.path} ({n} subjects)")
        else:
            n = FAMILY_SUBJECTS.get(d.layout or "brats2021", BRATS2021_SUBJECTS)
            sources.append(f"ASSUMED {d.layout or 'brats2021'} ({n} subjects; {d.text!r}: {d.missing})")
        n_val = max(1, round(n / 3))
        val, test = val + n_val * per_volume, test + (n - n_val) * per_volume
    slices = (f"ASSUMED {per_volume} brain slices per volume" if protocol.slices == "brain"
              else f"{per_volume} slab slices per volume")
    return SliceCounts(val, val, test, "; ".join(sources) + f"; a third of each validates; {slices}")


def _subject_count(config: BenchmarkConfig) -> tuple[int, str]:
    from uasbench.data.benchmark_data import dataset_subjects
    from uasbench.data.phantom import DEFAULT_SUBJECTS

    if config.data is None and config.data_missing is None:
        return DEFAULT_SUBJECTS, f"the embedded phantom ({DEFAULT_SUBJECTS} subjects)"
    if config.data_missing is None and config.data is not None:
        n = len(dataset_subjects(config.data, layout=config.layout, card=config.card))
        return n, f"{config.data} ({n} subjects)"
    return BRATS2021_SUBJECTS, (f"ASSUMED BraTS2021 ({BRATS2021_SUBJECTS} subjects), since benchmark.data "
                                f"{config.data_text!r} is not available: {config.data_missing}")


def grid_costs(config: BenchmarkConfig, out: Path) -> tuple[list[JobCost], SliceCounts]:
    from uasbench.benchmark.jobs import job_name, method_config, specs

    counts = slice_counts(config)
    costs = [job_cost(job_name(spec), spec.method, method_config(spec), counts) for spec in specs(config, out)]
    return costs, counts



def _amount(value: float, unit: str = "") -> str:
    """Engineering notation (1.2 k, 3.4 P, ...) so that counts spanning twelve orders stay readable."""
    for factor, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def _hours(value: float) -> str:
    return f"{value:.2f}" if value >= 0.01 or value == 0 else "< 0.01"


#: Above this many jobs the table has one row per method (a table of 40,000 rows takes minutes to lay out).
MAX_JOB_ROWS = 200


def per_method(costs: list[JobCost]) -> list[JobCost]:
    """The jobs' costs summed per method, one row each, named ``<method> (<n> jobs)``."""
    groups: dict[str, list[JobCost]] = {}
    for c in costs:
        groups.setdefault(c.method, []).append(c)
    return [JobCost(f"{method} ({len(group)} jobs)", all(c.known for c in group), method,
                    sum(c.train_samples for c in group), sum(c.train_flops for c in group),
                    sum(c.score_passes for c in group), sum(c.score_flops for c in group))
            for method, group in groups.items()]


def cost_table(costs: list[JobCost], tflops: float) -> Table:
    """Jobs with their passes, FLOPs and GPU-hours (one row per method above ``MAX_JOB_ROWS`` jobs), and the
    totals of the priced ones."""
    rows = costs if len(costs) <= MAX_JOB_ROWS else per_method(costs)
    table = Table(title=f"estimated cost (GPU-hours at {tflops:g} dense bf16 TFLOP/s, 100% of peak: a lower bound)")
    for column in ("job", "train samples", "train FLOP", "score passes", "score FLOP", "GPU-h"):
        table.add_column(column, justify="left" if column == "job" else "right", overflow="fold")
    for c in rows:
        if not c.known:
            table.add_row(c.name, *(["unknown"] * 5))
        else:
            table.add_row(c.name, _amount(c.train_samples), _amount(c.train_flops), _amount(c.score_passes),
                          _amount(c.score_flops), _hours(c.gpu_hours(tflops)))
    known = [c for c in costs if c.known]
    unknown = len(costs) - len(known)
    table.add_section()
    table.add_row(f"total ({len(costs)} jobs" + (f", {unknown} unknown and not counted)" if unknown else ")"),
                  _amount(sum(c.train_samples for c in known)), _amount(sum(c.train_flops for c in known)),
                  _amount(sum(c.score_passes for c in known)), _amount(sum(c.score_flops for c in known)),
                  _hours(sum(c.gpu_hours(tflops) for c in known)))
    return table
