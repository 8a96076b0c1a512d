"""Every fixed set of choices the toolkit offers, each listed once.

The command line builds its option types from these tuples, and the benchmark file, the report and the
preprocessing check values against them, so adding a choice is one edit here (plus the code that gives it a
meaning). This module imports nothing of the toolkit: every layer may read it.
"""
from __future__ import annotations

#: Thresholds of every run: the first three are tuned on validation data, ``oracle_test`` on the test split
#: (an upper bound, labelled as such wherever it is shown).
THRESHOLDS = ("val_dice", "fpr_1", "fpr_5", "oracle_test")
#: How runs are evaluated: the project's protocol, or the MMCCD authors' own (test-tuned) evaluation.
OFFICIAL_EVALUATION = "mmccd-official"
EVALUATION_PROTOCOLS = ("project", OFFICIAL_EVALUATION)
#: Evaluation levels of a cross-dataset run, one leaderboard block each per test dataset.
EVALUATION_LEVELS = ("slice", "volume", "lesion", "healthy")
#: Leaderboard output formats, table kinds and the spread shown beside a mean.
FORMATS = ("md", "csv", "latex", "html")
TABLES = ("metrics", "pairs", "tests", "ranks")
SPREADS = ("ci", "std")
#: Intensity normalisations of the preprocessing: the paper's z-score or the authors' code.
NORMALISATIONS = ("paper", "official")
#: Which axial slices a protocol keeps: the slab ``z_start..z_stop - 1`` (the paper's, or any range in
#: millimetres of the spatial standard's 1 mm grid), or every slice of the volume that holds brain.
SLICE_SELECTIONS = ("slab", "brain")
#: Registration of every scan before slicing: none, or affine to the MNI152 template (the phantom's anatomy).
REGISTRATIONS = ("none", "mni152")
#: Devices by name (``cuda:N`` picks one GPU of several).
DEVICES = ("auto", "cpu", "cuda")
#: Where the jobs of a benchmark grid run.
EXECUTORS = ("serial", "local", "slurm")
