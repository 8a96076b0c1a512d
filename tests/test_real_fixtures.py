"""The in-repository real-data fixtures: small, attributed, and exactly what the script cuts from the whole cases."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import FIXTURES, REAL_DATASETS, load_script
from uasbench.data.layouts import open_dataset
from uasbench.data.layouts.base import read_case


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != "README.md")


def test_fixtures_are_small_and_each_names_its_source_and_licence():
    size = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    assert size < 15e6
    licences = {"brats": "CC BY 3.0", "ixi": "CC BY-SA 3.0", "mslub": "CC BY", "isles22": "CC BY-SA 4.0"}
    for name in REAL_DATASETS:
        readme = (FIXTURES / f"real-{name}" / "README.md").read_text()
        assert licences[name] in readme and "scripts/make_test_fixtures.py" in readme


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL_DATASETS)
def test_the_script_reproduces_the_fixture_from_the_whole_cases(name, whole_real_data, tmp_path):
    """Same files, headers and voxels as a fresh cut (compared decoded: gzip bytes may differ across zlibs)."""
    source = whole_real_data(name)
    script = load_script("make_test_fixtures")
    script.make_fixture(source, tmp_path, script.CUTS[name])
    fixture = FIXTURES / f"real-{name}"
    assert _files(tmp_path) == _files(fixture)
    for rel in _files(fixture):
        if rel.endswith(".nii.gz"):
            made, kept, whole = (nib.load(root / rel) for root in (tmp_path, fixture, source))
            assert made.header.binaryblock == kept.header.binaryblock
            np.testing.assert_array_equal(np.asanyarray(made.dataobj), np.asanyarray(kept.dataobj))
            assert nib.aff2axcodes(kept.affine) == nib.aff2axcodes(whole.affine)
            assert kept.get_data_dtype() == whole.get_data_dtype()
        elif rel.endswith(".json"):
            assert (fixture / rel).read_bytes() == (source / rel).read_bytes()


@pytest.mark.slow
def test_whole_brats_cases_have_the_tumour_extents_the_fixture_relies_on(whole_real_data):
    data = open_dataset(whole_real_data("brats"))
    segs = {c.id: read_case(data, c).seg for c in data.cases}
    tumour_z = {k: np.flatnonzero(s.any(axis=(0, 1))) for k, s in segs.items()}
    assert set(np.unique(segs["TCGA-DU-7294"])) == {0, 1, 2} and tumour_z["TCGA-DU-7294"].min() > 89
    assert 100 in tumour_z["TCGA-DU-7294"] and 100 in tumour_z["TCGA-FG-6692"]
    area = (segs["TCGA-FG-6692"][:, :, 70:90] > 0).sum(axis=(0, 1))
    assert 70 + int(area.argmax()) == 87
