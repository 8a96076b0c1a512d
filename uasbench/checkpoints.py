"""Checkpoints that hold plain data only, so loading one can never run code.

A pickle may name any Python callable to rebuild an object, so ``torch.load(weights_only=False)`` on a file
dropped into a shared results folder runs whatever its author wanted. Every checkpoint uasbench writes is
plain data (tensors, numbers, strings, None, and lists, tuples and dicts of them), checked before saving,
and every one it reads goes through torch's ``weights_only`` unpickler, which refuses anything else.
"""
from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from uasbench.errors import UasbenchError
from uasbench.files import atomic_write

PLAIN = "tensors, numbers, strings, lists, tuples and dicts"
_SCALARS = (type(None), bool, int, float, str, torch.dtype, torch.Size)


def check_plain(value: Any, where: str = "checkpoint") -> None:
    """TypeError naming the first value that is not plain data (e.g. a numpy array: store a tensor)."""
    if isinstance(value, torch.Tensor) or type(value) in _SCALARS:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if type(key) not in (str, int):
                raise TypeError(f"{where}: key {key!r} is a {type(key).__name__}; use str or int keys")
            check_plain(item, f"{where}[{key!r}]")
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__name__}; a checkpoint holds only "
                    f"{PLAIN} (convert numpy arrays to tensors, dataclasses to dicts)")


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Check ``payload`` is plain data, then write it atomically (a new file created without following links
    beside ``path``, renamed onto it); a full disk is one line naming ``path`` (``files.atomic_write``)."""
    check_plain(payload)
    with atomic_write(Path(path)) as handle:
        torch.save(payload, handle)  # a file object: torch's disk-full RuntimeError keeps the OSError behind it


def load_checkpoint(path: Path, *, header_only: bool = False) -> dict[str, Any]:
    """Read a plain-data checkpoint; anything else (code, custom classes, a corrupt file) is one line.

    ``header_only`` maps the tensors instead of reading them (``mmap``), so the leaderboard can read a large
    checkpoint's method, seed and run identity cheaply."""
    path = Path(path)
    if not path.is_file():
        raise UasbenchError(f"checkpoint {path} does not exist (or is not a file)")
    if not zipfile.is_zipfile(path):  # torch.save always writes a zip archive; old raw pickles are not read
        raise UasbenchError(f"cannot read checkpoint {path}: it is truncated or not a checkpoint written by "
                            "torch.save")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=header_only)
    except pickle.UnpicklingError as exc:
        wanted = re.search(r"GLOBAL (\S+)", str(exc))
        detail = f" (it asks for {wanted.group(1)})" if wanted else ""
        raise UasbenchError(f"checkpoint {path} refused: it holds more than plain data{detail}, and loading it "
                            f"could run code (a checkpoint holds only {PLAIN}); delete it") from None
    except (RuntimeError, EOFError, ValueError) as exc:
        raise UasbenchError(f"cannot read checkpoint {path}: it is truncated or not a checkpoint "
                            f"({type(exc).__name__})") from None
    if not isinstance(payload, dict):
        raise UasbenchError(f"checkpoint {path} holds a {type(payload).__name__}, not a dict of saved state")
    return payload
