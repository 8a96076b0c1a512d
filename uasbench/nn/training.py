"""The one training loop every learned method uses: sampling, Adam, precision, logging, resumable checkpoints.

Keeping it in one place means every method gets the same guarantees: a seeded run is reproducible, an
interrupted run resumes from ``workdir/ckpt_<name>.pt`` and ends with the same weights as an uninterrupted
one, and the loss curve is always on disk (``workdir/loss_<name>.csv``) for inspection.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from uasbench.checkpoints import load_checkpoint, save_checkpoint
from uasbench.errors import UasbenchError
from uasbench.files import open_in_place, writing

LossFn = Callable[[torch.nn.Module, list[torch.Tensor], torch.Generator], torch.Tensor]

_FLUSH_EVERY = 50  # steps between reading losses back from the device (each read is a sync)
_status = Console(stderr=True)  # says when a run resumes, beside the progress bars
#: Written by the engine into a work folder: the identity of the run it trains for. Every checkpoint written
#: there records it, and one that records another is refused (a copied or linked work folder or checkpoint).
WORK_IDENTITY = "run_identity.json"


@dataclass(frozen=True)
class TrainSettings:
    iterations: int  # optimiser steps (the paper counts iterations, batch 32)
    batch_size: int = 32
    lr: float = 1e-4  # Adam
    weight_decay: float = 0.0
    checkpoint_every: int = 1000
    amp: bool = True  # bf16 autocast on CUDA only; fp32 on CPU


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so network initialisation is reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA (no loss scaling needed, unlike fp16); a no-op on CPU, which stays fp32."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def as_image_tensor(array: np.ndarray) -> torch.Tensor:
    """(N, H, W) or (N, C, H, W) numpy -> float32 (N, C, H, W) tensor; bool masks become 0/1 floats."""
    if array.ndim not in (3, 4):
        raise ValueError(f"expected an (N, H, W) or (N, C, H, W) array, got shape {array.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(array)).float()
    return tensor.unsqueeze(1) if array.ndim == 3 else tensor


class _LossLog:
    """``loss_<name>.csv`` (step, loss), rewritten from the checkpoint's history on resume so it never holds
    steps that a resumed run is about to redo."""

    def __init__(self, path: Path | None, history: list[float]) -> None:
        self._file: BinaryIO | None = None
        self._path = path
        if path is not None:
            self._file = open_in_place(path)  # never through a planted link
            self._put("step,loss\n")
            self.write(1, history)

    def write(self, first_step: int, losses: list[float]) -> None:
        self._put("".join(f"{first_step + i},{loss:.6g}\n" for i, loss in enumerate(losses)))

    def _put(self, text: str) -> None:
        if self._file is not None and self._path is not None:
            with writing(self._path):
                self._file.write(text.encode("utf-8"))
                self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def work_identity(workdir: Path) -> dict[str, Any] | None:
    """The run identity the engine recorded in ``workdir`` (None when it recorded none: training outside a
    benchmark run); the work folder itself must not be a link."""
    if os.path.islink(workdir):
        raise UasbenchError(f"{workdir} is a symbolic link: refused to train in it (a planted link in a shared "
                            "folder could send this job's files anywhere); remove it")
    path = workdir / WORK_IDENTITY
    if not path.is_file():
        return None
    try:
        identity = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UasbenchError(f"cannot read {path}: {exc}; delete the work folder to train again") from None
    return identity if isinstance(identity, dict) else {"unreadable": True}


def _restore(ckpt_path: Path, net: torch.nn.Module, optimiser: torch.optim.Optimizer,
             index_gen: torch.Generator, noise_gen: torch.Generator,
             identity: dict[str, Any] | None) -> tuple[int, list[float]]:
    if os.path.islink(ckpt_path):
        raise UasbenchError(f"checkpoint {ckpt_path} is a symbolic link: refused (it could be another run's); "
                            "remove it")
    ckpt = load_checkpoint(ckpt_path)  # plain data only: a crafted file in a shared work folder runs no code
    if identity is not None and ckpt.get("identity") != identity:
        found = ckpt.get("identity")
        differ = (sorted(k for k in set(identity) | set(found) if identity.get(k) != found.get(k))
                  if isinstance(found, dict) else ["identity"])
        raise UasbenchError(f"checkpoint {ckpt_path} was made for another run ({', '.join(differ)} differ): "
                            "refused; delete it or use another results folder")
    try:
        net.load_state_dict(ckpt["net"])
        optimiser.load_state_dict(ckpt["optimiser"])
        index_gen.set_state(ckpt["index_generator"])
        noise_gen.set_state(ckpt["noise_generator"])
        torch.random.set_rng_state(ckpt["global_rng"])  # layers such as dropout draw from the global generators
        if ckpt.get("cuda_rng") is not None and noise_gen.device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["cuda_rng"], noise_gen.device)
        return int(ckpt["step"]), list(ckpt["losses"])
    except Exception as exc:
        raise UasbenchError(f"cannot resume from checkpoint {ckpt_path} ({type(exc).__name__}): it does not "
                            "match this network or is corrupt; delete it or use another work folder") from None


def train_network(net: torch.nn.Module, loss_fn: LossFn, arrays: Sequence[np.ndarray], settings: TrainSettings,
                  *, device: torch.device, seed: int, workdir: Path | None, name: str,
                  progress: bool = True) -> list[float]:
    """Train ``net`` for ``settings.iterations`` Adam steps on random batches of ``arrays``; returns the losses.

    Each step draws ``batch_size`` indices (with replacement) from a seeded CPU generator, hands the aligned
    batches as float32 (B, C, H, W) tensors on ``device`` to ``loss_fn(net, batch, generator)``, where
    ``generator`` is a seeded generator on ``device`` for any noise the loss draws. With a ``workdir``, a
    checkpoint is written every ``checkpoint_every`` steps and at the end, and a rerun resumes from it. The
    network is left on ``device`` in eval mode.
    """
    tensors = [as_image_tensor(a) for a in arrays]
    if not tensors or len({len(t) for t in tensors}) != 1 or len(tensors[0]) == 0:
        raise ValueError(f"train_network needs non-empty arrays with one first axis, got {[a.shape for a in arrays]}")
    net.to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    index_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed + 1)

    ckpt_path = workdir / f"ckpt_{name}.pt" if workdir is not None else None
    identity = work_identity(workdir) if workdir is not None else None
    step, losses = 0, []
    if ckpt_path is not None and os.path.lexists(ckpt_path):
        step, losses = _restore(ckpt_path, net, optimiser, index_gen, noise_gen, identity)
        if step >= settings.iterations:
            _status.print(f"{name}: reusing the finished training in {ckpt_path} (step {step} of "
                          f"{settings.iterations})", highlight=False, soft_wrap=True)
            net.eval()
            return losses[:settings.iterations]
        _status.print(f"{name}: resuming from step {step} of {settings.iterations} ({ckpt_path})",
                      highlight=False, soft_wrap=True)
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    log = _LossLog(workdir / f"loss_{name}.csv" if workdir is not None else None, losses)

    def checkpoint() -> None:
        if ckpt_path is not None:
            save_checkpoint({"net": net.state_dict(), "optimiser": optimiser.state_dict(), "step": step,
                          "index_generator": index_gen.get_state(), "noise_generator": noise_gen.get_state(),
                          "global_rng": torch.random.get_rng_state(),
                          "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                          "losses": losses, "settings": asdict(settings), "identity": identity}, ckpt_path)

    pending: list[torch.Tensor] = []  # losses still on the device

    def flush() -> None:
        values = torch.stack(pending).float().cpu().tolist() if pending else []
        pending.clear()
        if not all(np.isfinite(values)):
            raise UasbenchError(f"training of {name!r} diverged (non-finite loss before step {step}); "
                                "try a lower learning rate")
        log.write(len(losses) + 1, values)
        losses.extend(values)

    bar = Progress(TextColumn(f"[bold]{name}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]}"),
                   TimeRemainingColumn(), disable=not progress, transient=True)
    net.train()
    try:
        with bar:
            task = bar.add_task(name, total=settings.iterations, completed=step,
                                loss=f"{losses[-1]:.4g}" if losses else "-")
            while step < settings.iterations:
                idx = torch.randint(len(tensors[0]), (settings.batch_size,), generator=index_gen)
                batch = [t[idx].to(device, non_blocking=True) for t in tensors]
                with autocast(device, settings.amp):
                    loss = loss_fn(net, batch, noise_gen)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                pending.append(loss.detach())
                step += 1
                if step % _FLUSH_EVERY == 0 or step % settings.checkpoint_every == 0 or step == settings.iterations:
                    flush()
                    bar.update(task, completed=step, loss=f"{np.mean(losses[-_FLUSH_EVERY:]):.4g}")
                if step % settings.checkpoint_every == 0 or step == settings.iterations:
                    checkpoint()
    finally:
        log.close()
    net.eval()
    return losses


@torch.inference_mode()
def predict_batched(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, *, batch_size: int,
                    device: torch.device) -> np.ndarray:
    """Apply ``fn`` to ``x`` ((N, H, W) or (N, C, H, W)) in chunks on ``device``; float32 numpy result.

    Chunking keeps memory bounded for whole test sets; autocast (bf16 on CUDA) matches training precision.
    """
    inputs = as_image_tensor(x)
    outputs = []
    for start in range(0, max(len(inputs), 1), batch_size):  # an empty input still gets an empty output
        with autocast(device):
            out = fn(inputs[start:start + batch_size].to(device))
        outputs.append(out.float().cpu())
    return torch.cat(outputs).numpy()
