"""The local-training hooks: what a client may do beyond plain local SGD on cross-entropy. The
trainer declares them and calls them; algorithms implement them (FedProx's proximal pull,
SCAFFOLD's control variates, MOON's contrastive term, ...). Plain torch, no Ray."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from fedmr_ray.config import TrainConfig
from fedmr_ray.train.steps import Entries, TrainJob, forward_with_representation

if TYPE_CHECKING:
    from fedmr_ray.models import ModelSpec
    from fedmr_ray.models.info import ModelInfo


@dataclass
class LocalRun:
    """One client's local training, as a LocalRule sees it: the model being trained, what the
    client started from, its stored state and the server's."""

    job: TrainJob
    model: torch.nn.Module  # the model being trained (its entries change step by step)
    spec: ModelSpec
    info: ModelInfo
    config: TrainConfig
    device: torch.device
    start_entries: list[torch.Tensor]  # the model it received, every state entry
    start_params: list[torch.Tensor]  # the same, its parameters only
    client: dict[str, list[torch.Tensor]]  # its stored state (the rule's client_reads)
    server: dict[str, list[torch.Tensor]]  # the server state (the rule's server_state)
    generator: torch.Generator  # for the rule's own random numbers, seeded by (seed, round, client)
    samples: int = 0  # the client's training samples
    steps: int = 0  # local steps taken so far
    scratch: dict = field(default_factory=dict)

    @property
    def params(self) -> list[torch.Tensor]:
        return list(self.model.parameters())

    def entries(self) -> list[torch.Tensor]:
        """The model's state entries now."""
        return [t.detach() for t in self.model.state_dict().values()]

    def state(self) -> Entries:
        """The same, as arrays."""
        return [t.cpu().numpy().copy() for t in self.entries()]

    def head(self, representation: torch.Tensor) -> torch.Tensor:
        """The model's last linear layer applied to a representation."""
        return self.model.get_submodule(self.info.head)(representation)

    def frozen_model(self, entries: Sequence[torch.Tensor]) -> torch.nn.Module:
        """A copy of the model with these entries, in training mode, for forward passes only."""
        model = self.spec.build().to(self.device)
        model.load_state_dict(dict(zip(self.info.names, entries, strict=True)))
        return model.requires_grad_(False)

    def representation_of(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return forward_with_representation(model, self.info.head, x)[1]


class LocalRule:
    """The hooks; the defaults add nothing. Rules are stateless: what one client's training needs
    lives in `run.scratch`.

    server_state: server state a client reads (sent with every job).
    client_state: per-client state the rule writes, one list of entries shaped like the model's
      state entries each, kept by the server for every client that has trained.
    client_reads: the subset of it a client reads back (sent when the client has it).
    representation: whether `loss` needs the input of the model's last linear layer.
    """

    server_state: tuple[str, ...] = ()
    client_state: tuple[str, ...] = ()
    client_reads: tuple[str, ...] = ()
    representation: bool = False

    def start(self, run: LocalRun) -> None:
        """Once per client and round, before its first step."""

    def loss(self, run: LocalRun, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor,
             representation: torch.Tensor | None) -> torch.Tensor | None:
        """A term added to the batch's cross-entropy, or None."""
        return None

    def grads(self, run: LocalRun, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """The gradients of the parameters, adjusted before the SGD step."""
        return grads

    def finish(self, run: LocalRun) -> dict[str, list[np.ndarray]]:
        """The client's new state, after its last step."""
        return {}
