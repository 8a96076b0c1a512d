"""Reconstruction-residual methods: a network trained on healthy slices reproduces healthy tissue, and what it
cannot reproduce (a tumour) leaves a residual ``|x - f(x)|``.

``ReconstructionMethod`` holds what AE, VAE and DAE share: the internal grid, training through
``uasbench.nn.training``, scoring as the residual and persistence; subclasses supply the network and the
training loss. ``DenseAutoEncoderMethod`` is Baur et al.'s (MedIA 2021) dense-bottleneck auto-encoder as a
method, deterministic (AE) or variational (VAE); the plugins set the name, profiles and the VAE's loss.
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from uasbench.data.preprocess import Preparation, resize
from uasbench.data.slices import SliceSet
from uasbench.errors import UasbenchError
from uasbench.method import AnomalyMethod, MethodConfig, NetworkCost
from uasbench.nn.autoencoders import ConvAutoEncoder
from uasbench.nn.training import TrainSettings, predict_batched, seed_everything, train_network


@dataclass
class ReconstructionConfig(MethodConfig):
    image_size: int | None = field(default=None, metadata={"min": 1})  # internal square grid; None: the input grid
    iterations: int = field(default=20_000, metadata={"min": 1})
    batch_size: int = field(default=32, metadata={"min": 1})
    lr: float = field(default=1e-4, metadata={"above": 0})
    weight_decay: float = field(default=0.0, metadata={"min": 0})
    checkpoint_every: int = field(default=1000, metadata={"min": 1})


class ReconstructionMethod(AnomalyMethod):
    """Anomaly map = |x - f(x)| for a network f trained on healthy slices (at ``image_size``, maps upsampled
    back to the input grid; the residual is taken at the internal grid so downsampling itself is no error)."""

    Config = ReconstructionConfig
    train_modalities = ("input",)

    def __init__(self, config: MethodConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.net: nn.Module | None = None
        self.size: int | None = None

    @abstractmethod
    def _build_net(self, size: int) -> nn.Module:
        """The untrained network for ``size`` x ``size`` slices; ValueError if the size does not fit it."""

    @abstractmethod
    def _loss(self, net: nn.Module, batch: list[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """Training loss on a batch ``[x, brain]`` of (B, 1, S, S) tensors."""

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        assert self.net is not None
        return self.net(x)

    @classmethod
    def network_costs(cls, config: MethodConfig) -> list[NetworkCost]:
        """One network, trained for iterations x batch samples and run once per scored slice (at the
        protocol's 128x128 grid unless ``image_size`` says otherwise)."""
        assert isinstance(config, ReconstructionConfig)
        size = config.image_size or Preparation().size
        method = cls(config)
        return [NetworkCost(cls.name, lambda: method._build_net(size), (1, size, size),
                            train_samples=config.iterations * config.batch_size, passes_per_slice=1)]

    def _prepare(self, x: np.ndarray, brain: np.ndarray) -> None:
        """Hook to derive data-dependent settings from the (resized) training slices before training."""

    def _internal_size(self, shape: tuple[int, ...]) -> int:
        if self.config.image_size is not None:
            return self.config.image_size
        if shape[-1] != shape[-2]:
            raise UasbenchError(f"method {self.name!r} needs square slices, got {shape[-2]}x{shape[-1]}; "
                                "set the option image_size")
        return shape[-1]

    def _make_net(self, size: int) -> nn.Module:
        try:
            net = self._build_net(size)
        except ValueError as exc:
            raise UasbenchError(f"method {self.name!r}: option image_size={size} does not fit the network: "
                                f"{exc}") from None
        return net.to(self.device)

    def _fit(self, train: SliceSet, val: SliceSet | None, workdir: Path | None) -> None:
        del val  # nothing here is tuned on validation
        c = self.config
        self.size = self._internal_size(train.x.shape)
        x = resize(train.x, self.size)
        brain = resize(train.brain.astype(np.float32), self.size) > 0.5
        self._prepare(x, brain)
        seed_everything(self.seed)
        self.net = self._make_net(self.size)
        settings = TrainSettings(iterations=c.iterations, batch_size=c.batch_size, lr=c.lr,
                                 weight_decay=c.weight_decay, checkpoint_every=c.checkpoint_every)
        train_network(self.net, self._loss, [x, brain], settings, device=self.device, seed=self.seed,
                      workdir=workdir, name=self.name)

    def _score(self, slices: SliceSet) -> np.ndarray:
        assert self.size is not None
        x = resize(slices.x, self.size)
        rec = predict_batched(self._reconstruct, x, batch_size=self.config.batch_size, device=self.device)[:, 0]
        return resize(np.abs(x - rec), slices.x.shape[-2:], mode="bilinear")

    def get_state(self) -> dict[str, Any]:
        assert self.net is not None
        return {"size": self.size, "net": {k: v.detach().cpu() for k, v in self.net.state_dict().items()}}

    def set_state(self, state: dict[str, Any]) -> None:
        self.size = int(state["size"])
        self.net = self._make_net(self.size)
        self.net.load_state_dict(state["net"])
        self.net.eval()


@dataclass
class AEConfig(ReconstructionConfig):
    bottleneck_res: int = field(default=8, metadata={"min": 1})  # Baur: 128x128 -> 8x8 before the dense layer
    latent: int = field(default=128, metadata={"min": 1})  # Baur's zDim
    width: int = field(default=32, metadata={"min": 1})  # filters of the first convolution (32, 64, 128, 128 ...)
    dropout: float = field(default=0.1, metadata={"min": 0, "max": 1})  # on the dense bottleneck, as in Baur's code


#: The profiles of the AE, which the VAE shares (the VAE adds its KL weight to ``tiny``).
AUTOENCODER_PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": {"image_size": 64, "bottleneck_res": 4, "width": 16, "batch_size": 16, "lr": 1e-3, "iterations": 1000,
              "checkpoint_every": 250},
    "tiny": {"image_size": None, "bottleneck_res": 4, "latent": 32, "width": 8, "batch_size": 8, "lr": 3e-3,
             "iterations": 100, "checkpoint_every": 1000},
}


class DenseAutoEncoderMethod(ReconstructionMethod):
    """Baur's dense-bottleneck convolutional auto-encoder as a method, with an L1 reconstruction loss; with
    ``variational`` its bottleneck outputs a mean and a log-variance and the map uses the posterior mean."""

    Config = AEConfig
    variational: ClassVar[bool] = False

    def _build_net(self, size: int) -> nn.Module:
        c = self.config
        return ConvAutoEncoder(size=size, bottleneck_res=c.bottleneck_res, latent=c.latent, width=c.width,
                               dropout=c.dropout, variational=self.variational)

    def _reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        assert self.net is not None
        return self.net(x)[0]  # the (posterior-mean) reconstruction; mu and logvar are for the loss

    def _loss(self, net: nn.Module, batch: list[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        x = batch[0]
        return (net(x)[0] - x).abs().mean()
