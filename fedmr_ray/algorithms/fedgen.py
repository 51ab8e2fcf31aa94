"""FedGen (Zhu et al., ICML 2021): data-free knowledge distillation with a server-side generator.

The server keeps a generator G(y) of representations (the input of the model's last linear
layer) and trains it after every round so that the clients' classifier heads, weighted by how
much of each label each client holds, classify G(y) as y. From the second round on, a client adds
to its cross-entropy alpha x CE(head(G(y')), y') for labels y' drawn uniformly and
beta x KL(its prediction || softmax(head(G(y)))) for its batch's labels y. The model itself is
averaged as in FedAvg. Settings follow the reference (models/generator.py, utils/model_config.py,
Algorithm/Training_FedGen.py): hidden 512, noise 100 (uniform), per-dataset learning rates and
weights, 50 Adam steps a round with a fresh optimizer, batch 128, an L1 diversity loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedmr_ray.algorithms.base import AlgorithmContext, ServerTask
from fedmr_ray.algorithms.fedavg import FedAvg
from fedmr_ray.rng import Stream, torch_seed
from fedmr_ray.train.hooks import LocalRule

HIDDEN = 512
NOISE = 100
BATCH = 128
TEACHER_STEPS = 50  # ensemble_epochs (50) // n_teacher_iters (5) epochs of n_teacher_iters steps
MIN_SAMPLES_PER_LABEL = 1


@dataclass(frozen=True)
class DatasetSettings:
    lr: float  # ensemble_lr
    weight_decay: float
    alpha: float  # generative_alpha: weight of the clients' teacher loss
    beta: float  # generative_beta: weight of the clients' latent (KL) loss


# The reference's FedGenRUNCONFIGS; datasets it does not list take CIFAR-10's.
SETTINGS = {
    "femnist": DatasetSettings(3e-4, 1e-2, 10.0, 10.0),
    "cifar10": DatasetSettings(3e-4, 1e-2, 0.2, 0.2),
    "cifar100": DatasetSettings(1e-4, 1e-2, 10.0, 1.0),
    "cifar100-coarse": DatasetSettings(1e-4, 1e-2, 10.0, 1.0),  # what the reference calls cifar100
}


class Generator(nn.Module):
    def __init__(self, num_classes: int, latent: int):
        super().__init__()
        self.num_classes = num_classes
        self.body = nn.Sequential(nn.Linear(NOISE + num_classes, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.ReLU())
        self.representation = nn.Linear(HIDDEN, latent)

    def forward(self, labels: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(representations, the noise they came from) for these labels."""
        noise = torch.rand((len(labels), NOISE), generator=generator).to(labels.device)
        one_hot = F.one_hot(labels, self.num_classes).float()
        return self.representation(self.body(torch.cat([noise, one_hot], dim=1))), noise


def build_generator(num_classes: int, latent: int, entries=None) -> Generator:
    model = Generator(num_classes, latent)
    if entries is not None:
        state = {name: torch.as_tensor(np.asarray(value)) for name, value in zip(model.state_dict(), entries)}
        model.load_state_dict(state)
    return model


def diversity_loss(noise: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """exp(-mean over pairs of (L2 distance of the noises x L1 distance of the outputs))."""
    output_distance = (output[None] - output[:, None]).abs().mean(dim=2)
    noise_distance = (noise[None] - noise[:, None]).pow(2).mean(dim=2)
    return torch.exp(torch.mean(-noise_distance * output_distance))


def train_generator(state: list[np.ndarray], heads: list[list[np.ndarray]], *, label_counts: np.ndarray,
                    num_classes: int, latent: int, settings: DatasetSettings, seed: int, round_index: int) -> list[np.ndarray]:
    """One round of the server's generator training against the cohort's classifier heads
    (heads[k] = [weight, bias] of client k's last linear layer); returns the new state."""
    torch.manual_seed(torch_seed(seed, Stream.SERVER, round_index))
    draw = torch.Generator().manual_seed(torch_seed(seed, Stream.SERVER, round_index, 1))
    rng = np.random.default_rng(torch_seed(seed, Stream.SERVER, round_index, 2))
    model = build_generator(num_classes, latent, state)
    model.train()
    weights = [torch.as_tensor(np.asarray(w)) for w, _ in heads]
    biases = [torch.as_tensor(np.asarray(b)) for _, b in heads]
    totals = label_counts.sum(axis=0)
    label_weights = label_counts / np.maximum(totals, 1)  # [client, label]: share of each label
    qualified = np.flatnonzero(label_counts.max(axis=0) > MIN_SAMPLES_PER_LABEL)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    for _ in range(TEACHER_STEPS):
        optimizer.zero_grad()
        y = rng.choice(qualified, BATCH)
        output, noise = model(torch.as_tensor(y), draw)
        teacher = torch.zeros(())
        for k, (w, b) in enumerate(zip(weights, biases)):
            share = torch.as_tensor(label_weights[k, y], dtype=torch.float32)
            # the reference multiplies the per-sample losses [B] by the shares reshaped to
            # [B, 1] and takes the mean of the [B, B] product: mean(loss) x mean(share)
            teacher = teacher + torch.mean(F.cross_entropy(F.linear(output, w, b), torch.as_tensor(y),
                                                           reduction="none") * share[:, None])
        (teacher + diversity_loss(noise, output)).backward()
        optimizer.step()
    return [t.detach().cpu().numpy().copy() for t in model.state_dict().values()]


class DistillationRule(LocalRule):
    server_state = ("generator",)

    def __init__(self, num_classes: int, latent: int, settings: DatasetSettings):
        self.num_classes, self.latent, self.settings = num_classes, latent, settings

    def start(self, run) -> None:
        if run.job.round == 0:
            return  # the generator has not been trained yet: plain training, as the reference
        generator = build_generator(self.num_classes, self.latent, [t.cpu() for t in run.server["generator"]])
        run.scratch["generator"] = generator.to(run.device).eval()

    def loss(self, run, x, y, logits, representation) -> torch.Tensor | None:
        generator = run.scratch.get("generator")
        if generator is None:
            return None
        with torch.no_grad():
            target = F.softmax(run.head(generator(y, run.generator)[0]), dim=1)
        latent = self.settings.beta * F.kl_div(F.log_softmax(logits, dim=1), target, reduction="batchmean")
        sampled = torch.randint(0, self.num_classes, (BATCH,), generator=run.generator).to(y.device)
        with torch.no_grad():
            generated = generator(sampled, run.generator)[0]
        teacher = self.settings.alpha * F.cross_entropy(run.head(generated), sampled)
        return teacher + latent


class FedGen(FedAvg):
    def __init__(self, ctx: AlgorithmContext):
        self.num_classes, self.latent = ctx.num_classes, ctx.info.representation_dim
        self.settings = SETTINGS.get(ctx.dataset, SETTINGS["cifar10"])
        self.head_entries = ctx.info.head_entries
        self.label_counts = ctx.label_counts
        self.seed = ctx.seed
        self.local = DistillationRule(self.num_classes, self.latent, self.settings)

    def initial_server_state(self) -> dict[str, list[np.ndarray]]:
        torch.manual_seed(torch_seed(self.seed, Stream.INIT, 1 << 20))
        return {"generator": [t.numpy().copy() for t in build_generator(self.num_classes, self.latent).state_dict().values()]}

    def server_task(self, round_index: int, cohort: np.ndarray) -> ServerTask:
        return ServerTask(train_generator, "generator", self.head_entries, {
            "label_counts": self.label_counts(cohort), "num_classes": self.num_classes, "latent": self.latent,
            "settings": self.settings, "seed": self.seed, "round_index": round_index})


def make(ctx: AlgorithmContext) -> FedGen:
    return FedGen(ctx)
