"""Checkpoints hold plain data and load without running code; config values are checked by type and range."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from uasbench.checkpoints import check_plain, load_checkpoint, save_checkpoint
from uasbench.errors import UasbenchError, UsageError
from uasbench.nn.training import TrainSettings, train_network
from uasbench.registry import create_method, get_method

# Every method's save/load round trip (plain data, same maps) is a check of the contract kit: see
# tests/test_method_contract.py.


class RunsCode:
    """Unpickled by a full pickle loader, this calls ``open(marker, "w")``: the marker file proves code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_crafted_method_checkpoint_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"method": "intensity", "config": {}, "seed": 0, "state": RunsCode(marker)}, tmp_path / "evil.pt")
    refused = r"evil.pt refused: it holds more than plain data \(it asks for io.open\), and loading it could run code"
    with pytest.raises(UasbenchError, match=refused):
        get_method("intensity").load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_a_crafted_training_checkpoint_is_refused_on_resume(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    work = tmp_path / "work"
    work.mkdir()
    torch.save({"net": RunsCode(marker), "step": 0}, work / "ckpt_toy.pt")
    net = torch.nn.Conv2d(1, 1, 1)
    with pytest.raises(UasbenchError, match="ckpt_toy.pt refused"):
        train_network(net, lambda n, b, g: n(b[0]).mean(), [np.zeros((2, 4, 4), np.float32)],
                      TrainSettings(iterations=2, batch_size=1), device=torch.device("cpu"), seed=0,
                      workdir=work, name="toy", progress=False)
    assert not marker.exists()


def test_resume_says_from_which_step(tmp_path: Path, capsys) -> None:
    def train(iterations: int) -> None:
        train_network(torch.nn.Conv2d(1, 1, 1), lambda n, b, g: n(b[0]).pow(2).mean(),
                      [np.ones((2, 4, 4), np.float32)], TrainSettings(iterations=iterations, batch_size=1,
                                                                       checkpoint_every=2),
                      device=torch.device("cpu"), seed=0, workdir=tmp_path, name="toy", progress=False)

    train(2)
    train(4)
    assert "toy: resuming from step 2 of 4" in capsys.readouterr().err
    train(4)
    assert "toy: reusing the finished training" in capsys.readouterr().err


def test_saving_anything_but_plain_data_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"checkpoint\['state'\]\['maps'\] is a numpy.ndarray"):
        save_checkpoint({"state": {"maps": np.zeros(3)}}, tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []
    check_plain({"a": [1, 2.0, "s", None, (torch.zeros(1),)], 3: {"b": True}})


def test_truncated_or_missing_checkpoints_are_one_line(tmp_path: Path) -> None:
    save_checkpoint({"x": torch.zeros(100)}, tmp_path / "ok.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "ok.pt").read_bytes()[:200])
    for name in ("cut.pt", "missing.pt"):
        with pytest.raises(UasbenchError, match=name):
            load_checkpoint(tmp_path / name)


@pytest.mark.parametrize("method, overrides, message", [
    ("ddpm", {"iterations": "abc"}, "iterations='abc' for method 'ddpm': expected an integer >= 1"),
    ("ddpm", {"iterations": 0}, "iterations=0"),
    ("mmccd", {"iterations": -5}, "iterations=-5"),
    ("cyclic_unet", {"iterations": 2.5}, "iterations=2.5"),
    ("ae", {"lr": "fast"}, "lr='fast' for method 'ae': expected a number > 0"),
    ("ae", {"lr": float("nan")}, "lr=nan"),
    ("ae", {"image_size": "x"}, "expected an integer >= 1 or null"),
    ("ae", {"dropout": 1.5}, "expected a number >= 0 and <= 1"),
    ("ae", {"iterations": True}, "iterations=True"),
    ("dae", {"features": [8, 8]}, "expected a list of 6 values, each an integer >= 1"),
    ("mmccd", {"directions": "h"}, "expected a list, each item one of vertical, horizontal"),
    ("mmccd", {"band_width": 64}, "band_width=64 for method 'mmccd': must be in 1..resolution"),
    ("itermask2", {"norm": "layer"}, "norm='layer' for method 'itermask2': expected one of group, batch"),
    ("itermask2", {"tau_quantile": 1}, "expected a number > 0 and < 1"),
    ("dae", {"features": [8, 8, 8, 8, 8, 12]}, "for method 'dae': every width must be a multiple of 8"),
    ("intensity", {"n_bins": 0}, "n_bins=0"),
])
def test_config_values_are_checked_by_type_and_range(method: str, overrides: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("[", r"\[")):
        get_method(method).config_for("quick", overrides)


def test_lossless_conversions_are_accepted() -> None:
    config = get_method("ddpm").config_for("quick", {"iterations": 1e3, "lr": 1, "channel_mult": [1, 2]})
    assert (config.iterations, config.lr, config.channel_mult) == (1000, 1.0, (1, 2))
    assert type(config.iterations) is int and type(config.lr) is float


def test_a_config_built_by_hand_is_checked_too() -> None:
    config_cls = get_method("ae").Config
    with pytest.raises(UsageError, match="batch_size=0"):
        create_method("ae", "quick", device="cpu").__class__(config_cls(batch_size=0))
