"""The `fedmr-ray` command: parses and validates flags, calls fedmr_ray, shows progress."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from typer import Abort

try:  # recent typer vendors click
    from typer._click.core import ParameterSource
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.core import ParameterSource
    from click.exceptions import NoArgsIsHelpError, UsageError

from cli.k8s import k8s_app
from fedmr_ray.api import Interrupted
from fedmr_ray.config import (
    AlgorithmConfig,
    ConfigError,
    DataConfig,
    RuntimeConfig,
    SimulationConfig,
    TrainConfig,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Federated Model Recombination (FedMR) simulated on Ray.")

S, D, T, A, R = SimulationConfig, DataConfig, TrainConfig, AlgorithmConfig, RuntimeConfig


def _opt(help_text: str, panel: str, **kwargs) -> typer.Option:
    return typer.Option(help=help_text, rich_help_panel=panel, **kwargs)


@app.callback()
def _commands() -> None:
    """Federated Model Recombination (FedMR) simulated on Ray."""


FED, ALG, LOCAL, DATA, RAY, OUT = "Federation", "Algorithm", "Local training", "Data", "Ray", "Output"

# The data and model flags, shared by `simulate` and `partition`.
ModelOpt = Annotated[str, _opt("Model: mlp, cnn, cnn-femnist, resnet20, vgg16 (`fedmr-ray models` lists them "
                               "with their sizes), or package.module:factory, a factory(num_classes, "
                               "input_shape) -> nn.Module of your own.", DATA)]
DatasetOpt = Annotated[str, _opt("Dataset: synthetic (LEAF Synthetic(alpha, beta), generated from the seed), "
                                 "or, read from --data-dir: cifar10, cifar100, cifar100-coarse (its 20 "
                                 "superclasses), mnist, fmnist, femnist (LEAF).", DATA)]
DataDirOpt = Annotated[Path | None, _opt("Folder holding the dataset's files \\[default: for fmnist "
                                         "/usr/share/datasets/fashion-mnist where present, else data/<dataset>].",
                                         DATA, show_default=False)]
CacheDirOpt = Annotated[Path | None, _opt("Where decoded datasets are cached \\[default: "
                                          "$XDG_CACHE_HOME/fedmr-ray, else ~/.cache/fedmr-ray].",
                                          DATA, show_default=False)]
PartitionOpt = Annotated[str | None, _opt("How the training samples are split among the clients: iid, dirichlet "
                                          "(label skew, see --alpha), shards (--shards-per-client label-sorted "
                                          "shards each) or natural (the dataset's own users) \\[default: natural "
                                          "for synthetic and femnist, else dirichlet].", DATA, show_default=False)]
AlphaOpt = Annotated[float, _opt("Dirichlet partition: concentration; lower gives more label skew.", DATA)]
ShardsOpt = Annotated[int, _opt("Shards partition: shards per client.", DATA)]
MinSamplesOpt = Annotated[int, _opt("Dirichlet partition: redraw until every client holds this many samples.",
                                    DATA)]
PartitionFileOpt = Annotated[Path | None, _opt("Read the partition from a file: a run's partition.parquet "
                                               "(client_id, sample_index), or JSON mapping client id -> list of "
                                               "sample indices (the reference's format).", DATA,
                                               show_default=False)]
SyntheticAlphaOpt = Annotated[float, _opt("Synthetic: alpha, how much the clients' models differ.", DATA)]
SyntheticBetaOpt = Annotated[float, _opt("Synthetic: beta, how much the clients' inputs differ.", DATA)]


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path.expanduser().absolute())


def _data_config(dataset: str, data_dir: Path | None, cache_dir: Path | None, partition: str | None, alpha: float,
                 shards_per_client: int, min_samples: int, partition_file: Path | None, synthetic_alpha: float,
                 synthetic_beta: float, augment: bool = False) -> DataConfig:
    return DataConfig(
        dataset=dataset, synthetic_alpha=synthetic_alpha, synthetic_beta=synthetic_beta, data_dir=_path(data_dir),
        cache_dir=_path(cache_dir), partition=partition, alpha=alpha, shards_per_client=shards_per_client,
        min_samples=min_samples, partition_file=_path(partition_file), augment=augment)


@app.command()
def simulate(
    ctx: typer.Context,
    clients: Annotated[int, _opt("Number of simulated clients.", FED)] = S.clients,
    fraction: Annotated[float, _opt("Fraction of clients sampled per round, in (0, 1]; "
                                    "K = max(1, int(fraction x clients)).", FED)] = S.fraction,
    rounds: Annotated[int, _opt("Communication rounds.", FED)] = S.rounds,
    eval_every: Annotated[int, _opt("Evaluate the global model every N rounds (and after the last).",
                                    FED)] = S.eval_every,
    seed: Annotated[int, _opt("Seed of every random number (data, init, sampling, training, "
                              "recombination).", FED)] = S.seed,
    algorithm: Annotated[str, _opt("fedmr, fedavg, fedprox, scaffold, moon, fedgen, clusamp or fedindep.",
                                   ALG)] = A.name,
    first_stage_bound: Annotated[int, _opt("FedMR: rounds before this one average the K models "
                                           "(stage one); from it on they are recombined.", ALG)] = A.first_stage_bound,
    granularity: Annotated[str, _opt("FedMR: what moves together: tensor (each state entry), layer "
                                     "(each module), or block:P (chunks of about P x L entries).",
                                     ALG)] = A.granularity,
    diverse_init: Annotated[bool, _opt("FedMR: give each of the K models its own random "
                                       "initialisation.", ALG)] = A.diverse_init,
    mu: Annotated[float | None, _opt("FedProx: weight of the proximal term \\[default: 0.01]; MOON: weight "
                                     "of the contrastive loss \\[default: 5].", ALG, show_default=False)] = A.mu,
    server_lr: Annotated[float, _opt("SCAFFOLD: the server's step size.", ALG)] = A.server_lr,
    temperature: Annotated[float, _opt("MOON: temperature of the contrastive loss.", ALG)] = A.temperature,
    local_epochs: Annotated[int, _opt("Local epochs per round.", LOCAL)] = T.local_epochs,
    batch_size: Annotated[int, _opt("Local batch size.", LOCAL)] = T.batch_size,
    lr: Annotated[float, _opt("SGD learning rate.", LOCAL)] = T.lr,
    momentum: Annotated[float, _opt("SGD momentum (a fresh optimizer every round).", LOCAL)] = T.momentum,
    weight_decay: Annotated[float, _opt("SGD weight decay.", LOCAL)] = T.weight_decay,
    client_batch: Annotated[int, _opt("Clients an executor trains at once, each step vectorised over "
                                      "them, where that gives the same numbers as one by one (checked "
                                      "at start; small models without dropout or BatchNorm); 1 trains "
                                      "them one by one.", LOCAL)] = T.client_batch,
    model: ModelOpt = S.model,
    dataset: DatasetOpt = D.dataset,
    data_dir: DataDirOpt = None,
    cache_dir: CacheDirOpt = None,
    partition: PartitionOpt = D.partition,
    alpha: AlphaOpt = D.alpha,
    shards_per_client: ShardsOpt = D.shards_per_client,
    min_samples: MinSamplesOpt = D.min_samples,
    partition_file: PartitionFileOpt = None,
    augment: Annotated[bool, _opt("CIFAR: augment the training images with random crops (4-pixel padding) and "
                                  "horizontal flips.", DATA)] = D.augment,
    synthetic_alpha: SyntheticAlphaOpt = D.synthetic_alpha,
    synthetic_beta: SyntheticBetaOpt = D.synthetic_beta,
    num_actors: Annotated[int | None, _opt("Executor actors \\[default: as many as the cluster's "
                                           "resources hold, at most one per sampled client].",
                                           RAY, show_default=False)] = R.num_actors,
    max_actors: Annotated[int | None, _opt("Elastic pool: grow to this many executors, asking the cluster "
                                           "for them (an autoscaler adds nodes for the ones that do not fit) "
                                           "\\[default: as many as fit, following the cluster as it grows and "
                                           "shrinks].", RAY, show_default=False)] = R.max_actors,
    cpus_per_actor: Annotated[float, _opt("CPUs per executor; torch threads follow it.", RAY)] = R.cpus_per_actor,
    gpus_per_actor: Annotated[float, _opt("GPUs per executor, fractional; > 0 trains on CUDA "
                                          "(CPU where none is visible).", RAY)] = R.gpus_per_actor,
    address: Annotated[str | None, _opt("Ray cluster to connect to \\[default: RAY_ADDRESS, else a "
                                        "local Ray with this machine's CPUs].", RAY,
                                        show_default=False)] = R.address,
    serial: Annotated[bool, _opt("Run without Ray, in this process, clients one after another "
                                 "(the reference backend).", RAY)] = False,
    output: Annotated[Path | None, _opt("Run directory \\[default: runs/<timestamp>-<algorithm>].",
                                        OUT, show_default=False)] = None,
    quiet: Annotated[bool, _opt("No progress bar.", OUT)] = False,
    checkpoint_every: Annotated[int, _opt("Write a checkpoint into the run directory every N rounds "
                                          "(0: only when interrupted with Ctrl-C).", OUT)] = S.checkpoint_every,
    resume: Annotated[Path | None, _opt("Continue the run in this directory from its checkpoint, with its "
                                        "own config.json; --rounds, --checkpoint-every and the Ray flags "
                                        "may change.", OUT, show_default=False)] = None,
) -> None:
    """Simulate federated learning with FedMR (or FedAvg) and write the run directory."""
    from cli.progress import run_with_progress

    if resume is not None:
        config = _resumed_config(ctx, resume)
        run_with_progress(config, serial=serial, quiet=quiet, resume=resume)
        return
    if output is None:
        output = Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{algorithm}"
    config = SimulationConfig(
        clients=clients, fraction=fraction, rounds=rounds, eval_every=eval_every, seed=seed,
        model=model, output=str(output),
        data=_data_config(dataset, data_dir, cache_dir, partition, alpha, shards_per_client, min_samples,
                          partition_file, synthetic_alpha, synthetic_beta, augment),
        train=TrainConfig(local_epochs, batch_size, lr, momentum, weight_decay, client_batch),
        algorithm=AlgorithmConfig(algorithm, first_stage_bound, granularity, diverse_init, mu, server_lr,
                                  temperature),
        runtime=RuntimeConfig(num_actors=num_actors, max_actors=max_actors, cpus_per_actor=cpus_per_actor,
                              gpus_per_actor=gpus_per_actor, address=address),
        checkpoint_every=checkpoint_every,
    ).validate()  # before Ray starts

    run_with_progress(config, serial=serial, quiet=quiet)


# what may change when a run resumes: how long it runs, how often it checkpoints, where it runs
RESUMABLE = {"rounds", "checkpoint_every", "num_actors", "max_actors", "cpus_per_actor", "gpus_per_actor",
             "address", "serial", "quiet", "resume"}


def _resumed_config(ctx: typer.Context, run_dir: Path) -> SimulationConfig:
    """The run's own config.json, with the flags given that may change on resume."""
    given = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
    fixed = sorted(given - RESUMABLE)
    if fixed:
        flag = "--" + fixed[0].replace("_", "-")
        raise ConfigError(f"{flag}: cannot change when resuming {run_dir} (its config.json holds it); "
                          f"with --resume only --rounds, --checkpoint-every and the Ray flags may be given")
    try:
        raw = json.loads((run_dir / "config.json").read_text())
        config = SimulationConfig.from_dict(raw)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(f"--resume {run_dir}: no readable config.json of a fedmr-ray run in it "
                          f"({type(err).__name__})") from None
    p = ctx.params
    runtime = {k: p[k] for k in ("num_actors", "max_actors", "cpus_per_actor", "gpus_per_actor", "address")
               if k in given}
    overrides = {k: p[k] for k in ("rounds", "checkpoint_every") if k in given}
    return dataclasses.replace(config, output=str(run_dir), runtime=dataclasses.replace(config.runtime, **runtime),
                               **overrides).validate(resuming=True)


@app.command("partition")
def partition_command(
    clients: Annotated[int, _opt("Number of clients.", FED)] = S.clients,
    seed: Annotated[int, _opt("Seed of the partition (and of the synthetic data).", FED)] = S.seed,
    dataset: DatasetOpt = D.dataset,
    data_dir: DataDirOpt = None,
    cache_dir: CacheDirOpt = None,
    partition: PartitionOpt = D.partition,
    alpha: AlphaOpt = D.alpha,
    shards_per_client: ShardsOpt = D.shards_per_client,
    min_samples: MinSamplesOpt = D.min_samples,
    partition_file: PartitionFileOpt = None,
    synthetic_alpha: SyntheticAlphaOpt = D.synthetic_alpha,
    synthetic_beta: SyntheticBetaOpt = D.synthetic_beta,
    output: Annotated[Path | None, _opt("Folder for partition.parquet (for --partition-file) and partition.png "
                                        "\\[default: runs/partition-<timestamp>-<dataset>].", OUT,
                                        show_default=False)] = None,
    rows: Annotated[int, _opt("Clients listed in the table.", OUT)] = 50,
) -> None:
    """Split a dataset among clients as `simulate` would: print client sizes and label counts, write
    the partition (Parquet) and a heatmap of clients x classes (PNG)."""
    if output is None:
        output = Path("runs") / f"partition-{time.strftime('%Y%m%d-%H%M%S')}-{dataset}"
    config = SimulationConfig(
        clients=clients, seed=seed, output=str(output),
        data=_data_config(dataset, data_dir, cache_dir, partition, alpha, shards_per_client, min_samples,
                          partition_file, synthetic_alpha, synthetic_beta),
    ).validate()

    from fedmr_ray.data import partition_counts, partition_scheme
    from fedmr_ray.data.summary import client_table, summary_lines, write_heatmap
    from fedmr_ray.results import PARTITION, RunDirectory

    split, counts = partition_counts(config)
    scheme = "file " + str(partition_file) if partition_file else partition_scheme(config.data)
    if scheme == "dirichlet":
        scheme += f" (alpha {alpha:g})"
    print(f"{dataset}, partition {scheme}, seed {seed}")
    print("\n".join(summary_lines(counts) + [""] + client_table(counts, rows)))
    output.mkdir(parents=True, exist_ok=True)
    RunDirectory(output).write_partition(split)
    write_heatmap(counts, output / "partition.png", f"{dataset}: {scheme}, {clients} clients")
    print(f"wrote {output / PARTITION} and {output / 'partition.png'}")


@app.command("models")
def models_command(
    dataset: Annotated[str | None, typer.Option(help="Only this dataset \\[default: every dataset].",
                                                show_default=False)] = None,
) -> None:
    """List the models with their parameter counts on each dataset ('-': it cannot take that input)."""
    from fedmr_ray.data.catalog import DATASETS, dataset_spec
    from fedmr_ray.models import CUSTOM, MODELS, parameter_counts

    specs = [dataset_spec(dataset)] if dataset else list(DATASETS.values())
    table = parameter_counts(specs)
    header = ["model", *(spec.name for spec in specs)]
    rows = [[name, *("-" if n is None else f"{n:,}" for n in table[name])] for name in MODELS]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
    print(f"custom: --model {CUSTOM}, a factory(num_classes, input_shape) -> torch.nn.Module returning logits")


@app.command("report")
def report_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories (each with metrics.parquet).",
                                                    show_default=False)],
    output: Annotated[Path, typer.Option(help="The figure: test accuracy and loss against round.")] = Path(
        "report.png"),
    table: Annotated[Path | None, typer.Option(help="Also write the summary table (markdown) here.",
                                               show_default=False)] = None,
    target: Annotated[float | None, typer.Option(help="Accuracy for the rounds-to-target column \\[default: "
                                                      "the lowest final accuracy of the runs].",
                                                 show_default=False)] = None,
    title: Annotated[str | None, typer.Option(help="The figure's title \\[default: the run names, a prefix they "
                                                   "share said once].",
                                              show_default=False)] = None,
) -> None:
    """Compare runs: print a summary table (final and best accuracy, the mean of the last evaluations,
    rounds to a target accuracy) and draw test accuracy and loss against round into a PNG."""
    from fedmr_ray.report import default_target, default_title, load_runs, plot_runs, summary_table

    if target is not None and not 0.0 < target <= 1.0:
        raise ConfigError(f"--target {target}: must be an accuracy in (0, 1]")
    runs = load_runs(run_dirs)
    lines = summary_table(runs, default_target(runs) if target is None else target)
    print("\n".join(lines))
    plot_runs(runs, output, title or default_title(runs))
    if table is not None:
        table.write_text("\n".join(lines) + "\n")
    print(f"wrote {output}" + (f" and {table}" if table is not None else ""))


app.add_typer(k8s_app, name="k8s")


def _usage_message(err: UsageError) -> str:
    """click's message, with the offending value where typer's type check names none."""
    message = " ".join(err.format_message().split())
    errors = getattr(err.__cause__, "errors", None)
    if callable(errors) and errors() and "input" in errors()[0]:
        message += f" (got {errors()[0]['input']!r})"
    return message


def main() -> None:
    """Entry point: a user error is one line on stderr and exit code 2, never a traceback."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as err:
        print(err.ctx.get_help())
        sys.exit(0)
    except (UsageError, ConfigError) as err:
        message = _usage_message(err) if isinstance(err, UsageError) else str(err)
        print(f"fedmr-ray: error: {message}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as stop:
        print(f"fedmr-ray: interrupted after round {stop.round}; checkpoint written. Resume with: "
              f"fedmr-ray simulate --resume {shlex.quote(str(stop.run_dir))}", file=sys.stderr)
        sys.exit(130)
    except (Abort, KeyboardInterrupt):
        print("fedmr-ray: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
