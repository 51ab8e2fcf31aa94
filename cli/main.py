"""The `fedmr-ray` command: parses and validates flags, calls fedmr_ray, shows progress."""

from __future__ import annotations

import inspect
import shlex
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import typer

from typer import Abort

try:  # recent typer vendors click
    from typer._click.core import ParameterSource
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.core import ParameterSource
    from click.exceptions import NoArgsIsHelpError, UsageError

from fedmr_ray.api import Interrupted
from fedmr_ray.cli.k8s import k8s_app
from fedmr_ray.cli.options import parameter, with_parameters
from fedmr_ray.cli.progress import LOG_FORMATS
from fedmr_ray.cli.sweep import SweepStopped, parse_seeds, run_seeds, sweep_command
from fedmr_ray.configfile import Setting, Sources, all_settings
from fedmr_ray.config import ConfigError, SimulationConfig
from fedmr_ray import storage
from fedmr_ray.results import read_config
from fedmr_ray.signals import Terminated, stop_on_sigterm

# -h as well as --help, on every command (subcommands take their parent's)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Federated Model Recombination (FedMR) simulated on Ray.")


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"fedmr-ray {version('fedmr-ray')}")
        raise typer.Exit()


@app.callback()
def _commands(
    _version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                           callback=_print_version)] = False,
) -> None:
    """Federated Model Recombination (FedMR) simulated on Ray."""


SIMULATE_FLAGS = all_settings()
# what may change when a run resumes: how long it runs, how often it checkpoints, where it runs
RESUMABLE = ("rounds", "checkpoint_every", "runtime")


def _given(ctx: typer.Context) -> set[str]:
    """The parameters given on the command line (or through the environment)."""
    return {name for name in ctx.params
            if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}


def _only(name: str, annotation: Any, default: Any, help_text: str, panel: str,
          accepted: str = "") -> inspect.Parameter:
    """A parameter of the command itself, not a setting."""
    return parameter(Setting(name, (), "--" + name.replace("_", "-"), annotation, default, help_text, panel,
                          show_default=default is not None, accepted=accepted))


def simulate(ctx: typer.Context, **params: Any) -> None:
    """Simulate federated learning with FedMR or one of its baselines (--algorithm) and write the run
    directory. Every setting is a flag here and a key of a --config file (flags win over the file)."""
    from fedmr_ray.cli.progress import run_with_progress

    given = _given(ctx)
    config_file, resume = params.pop("config"), params.pop("resume")
    serial, quiet, seeds = params.pop("serial"), params.pop("quiet"), params.pop("seeds")
    resume_if_exists, log_format = params.pop("resume_if_exists"), params.pop("log_format")
    tensorboard = params.pop("tensorboard")
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"--log-format {log_format!r}: accepted values are: {', '.join(LOG_FORMATS)}")
    if seeds is not None and (serial or resume is not None):
        raise ConfigError(f"--seeds and {'--serial' if serial else '--resume'}: --seeds runs a sweep on Ray "
                          "(fedmr-ray sweep --resume DIR goes on with one)")
    if seeds is not None and tensorboard is not None:
        raise ConfigError(f"--tensorboard {tensorboard}: not with --seeds (each seed's run directory holds its "
                          "metrics.parquet)")
    if resume is not None:
        if config_file is not None:
            raise ConfigError("--config and --resume: give one of them (--resume takes the run's own config.json)")
        run_with_progress(_resumed_config(params, given, resume), serial=serial, quiet=quiet, resume=resume,
                          log_format=log_format, tensorboard=tensorboard)
        return
    sources = Sources(SIMULATE_FLAGS, params, given, config_file)
    try:
        if not sources.has("output"):
            algorithm = sources.raw.get("algorithm", {}).get("name", "fedmr")
            sources.put(("output",), str(Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{algorithm}"))
        if seeds is not None:
            run_seeds(sources.config(), parse_seeds(seeds))
            return
        run_with_progress(sources.config(), serial=serial, quiet=quiet, resume_if_exists=resume_if_exists,
                          log_format=log_format, tensorboard=tensorboard)
    except ConfigError as err:
        raise sources.named(err) from None


# each command's line in `fedmr-ray --help` (its docstring is its own --help)
SIMULATE_LINE = "Run a simulation (FedMR or a baseline) into a run directory."
PARTITION_LINE = "Split a dataset among clients as simulate would, and show it."

app.command("simulate", short_help=SIMULATE_LINE)(with_parameters(simulate, [
    _only("config", Path | None, None, "Read the settings from this file (TOML, JSON or YAML): each setting a key, "
          "SimulationConfig's own at the top, the others in [data], [train], [algorithm], [runtime]; a run's "
          "config.json is one. Flags given as well win over it.", "Run"),
    *[parameter(flag) for flag in SIMULATE_FLAGS],
    _only("serial", bool, False, "Run without Ray, in this process, clients one after another (the reference "
          "backend).", "Ray"),
    _only("quiet", bool, False, "No progress (the bar on a terminal, lines elsewhere).", "Output"),
    _only("log_format", str, "text", "Progress where stderr is not a terminal (logs): text lines, or json lines "
          "(one object per event); either gives a line per evaluated round and at least one every 30 s.", "Output",
          accepted=", ".join(LOG_FORMATS)),
    _only("resume", str | None, None, "Continue the run in this directory (or URI) from its checkpoint, with its own "
          "config.json; --rounds, --checkpoint-every and the Ray flags may change.", "Output"),
    _only("resume_if_exists", bool, False, "Where --output already holds this configuration's run (a retried "
          "job's own), go on from its checkpoint (a finished one is left as it is); elsewhere start it. "
          "k8s render sets it.", "Output"),
    _only("tensorboard", str | None, None, "Also write each round's metrics as TensorBoard scalars into this "
          "folder, under the run directory's name (needs pip install 'fedmr-ray[tracking]').", "Output"),
    _only("seeds", str | None, None, "Run once per seed (e.g. 0,1,2) as a sweep into --output, one run directory "
          "per seed, and print the mean and 95% confidence interval over them (see fedmr-ray sweep).", "Run"),
]))


def _resumed_config(params: dict[str, Any], given: set[str], run_dir: str) -> SimulationConfig:
    """The run's own config.json, with the flags given that may change on resume."""
    fixed = [flag.option for flag in SIMULATE_FLAGS if flag.name in given and flag.key[0] not in RESUMABLE]
    if fixed:
        raise ConfigError(f"{fixed[0]}: cannot change when resuming {run_dir} (its config.json holds it); "
                          f"with --resume only --rounds, --checkpoint-every and the Ray flags may be given")
    try:
        config = read_config(run_dir)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(f"--resume {run_dir}: no readable config.json of a fedmr-ray run in it "
                          f"({type(err).__name__})") from None
    base = {**config.to_dict(), "output": str(run_dir)}
    return Sources(SIMULATE_FLAGS, params, given, base=base).config()


PARTITION_FLAGS = [flag for flag in SIMULATE_FLAGS  # those that decide the split
                   if flag.key in {("clients",), ("seed",)}
                   or (flag.key[0] == "data" and flag.name not in ("augment", "normalise", "femnist_test"))]


def partition_command(ctx: typer.Context, **params: Any) -> None:
    """Split a dataset among clients as `simulate` would: print client sizes and label counts, write
    the partition (Parquet) and a heatmap of clients x classes (PNG)."""
    from fedmr_ray.data import partition_counts, partition_scheme
    from fedmr_ray.data.summary import client_table, summary_lines, write_heatmap
    from fedmr_ray.results import PARTITION, RunDirectory
    from fedmr_ray.setup import check

    output, rows = params.pop("output"), params.pop("rows")
    sources = Sources(PARTITION_FLAGS, params, _given(ctx))
    if output is None:
        output = Path("runs") / f"partition-{time.strftime('%Y%m%d-%H%M%S')}-{params['dataset']}"
    sources.put(("output",), str(output))
    config = check(sources.config(), whole_synthetic=True)
    data = config.data
    split, counts = partition_counts(config)
    scheme = "file " + str(data.partition_file) if data.partition_file else partition_scheme(data)
    if scheme == "dirichlet":
        scheme += f" (alpha {data.alpha:g})"
    print(f"{data.dataset}, partition {scheme}, seed {config.seed}")
    print("\n".join(summary_lines(counts) + [""] + client_table(counts, rows)))
    output.mkdir(parents=True, exist_ok=True)
    RunDirectory(output).write_partition(split)
    write_heatmap(counts, output / "partition.png", f"{data.dataset}: {scheme}, {config.clients} clients")
    print(f"wrote {output / PARTITION} and {output / 'partition.png'}")


app.command("partition", short_help=PARTITION_LINE)(with_parameters(partition_command, [
    *[parameter(flag) for flag in PARTITION_FLAGS],
    _only("output", Path | None, None, "Folder for partition.parquet (for --partition-file) and partition.png "
          "[default: runs/partition-<timestamp>-<dataset>].", "Output"),
    _only("rows", int, 50, "Clients listed in the table.", "Output"),
]))


@app.command("models", short_help="List the models and their sizes on each dataset.")
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


@app.command("report", short_help="Compare runs, or a sweep's trials: a table and curves.")
def report_command(
    run_dirs: Annotated[list[str], typer.Argument(help="Run directories (each with metrics.parquet; local or "
                                                       "URIs such as s3://bucket/run), or one sweep's directory.",
                                                  show_default=False)],
    output: Annotated[Path | None, typer.Option(help="The figure: test accuracy and loss against round, in the "
                                                     "format its suffix names (.png, .pdf or .svg) \\[default: "
                                                     "report.png; a sweep's: its curves.png].",
                                                show_default=False)] = None,
    table: Annotated[Path | None, typer.Option(help="Also write the summary table (markdown) here \\[a sweep's: "
                                                    "its summary.md].", show_default=False)] = None,
    target: Annotated[float | None, typer.Option(help="Accuracy for the rounds-to-target column \\[default: "
                                                      "the lowest final accuracy of the runs].",
                                                 show_default=False)] = None,
    title: Annotated[str | None, typer.Option(help="The figure's title \\[default: the run names, a prefix they "
                                                   "share said once].",
                                              show_default=False)] = None,
    facet: Annotated[str | None, typer.Option(help="A sweep: one panel of the figure per value of this key "
                                                   "(one the sweep varies, e.g. alpha).", show_default=False)] = None,
) -> None:
    """Compare runs: print a summary table (final and best accuracy, the mean of the last evaluations,
    rounds to a target accuracy) and draw test accuracy and loss against round (PNG, PDF or SVG). For a
    sweep's directory: the statistics over seeds (mean, std, 95% confidence interval) of each group of
    trials, written there as summary.md, summary.parquet, trials.parquet and curves.png."""
    from fedmr_ray.report import (check_output_file, default_target, default_title, load_runs, plot_runs,
                                  summary_table)
    from fedmr_ray.sweep import PLAN

    if target is not None and not 0.0 < target <= 1.0:
        raise ConfigError(f"--target {target}: must be an accuracy in (0, 1]")
    sweep = len(run_dirs) == 1 and (Path(run_dirs[0]) / PLAN).is_file()
    if not sweep:
        output = output or Path("report.png")
    if output is not None:  # every file checked before any is written
        check_output_file(output, "--output", figure=True)
    if table is not None:
        check_output_file(table, "--table")
    if sweep:
        from fedmr_ray.sweep_report import report_sweep

        print("\n".join(report_sweep(Path(run_dirs[0]), facet=facet, target=target, figure=output, table=table)))
        return
    if facet is not None:
        raise ConfigError("--facet: for a sweep's directory (one, holding sweep.json)")
    runs = load_runs(run_dirs)
    lines = summary_table(runs, default_target(runs) if target is None else target)
    print("\n".join(lines))
    plot_runs(runs, output, title or default_title(runs))
    if table is not None:
        table.parent.mkdir(parents=True, exist_ok=True)
        table.write_text("\n".join(lines) + "\n")
    print(f"wrote {output}" + (f" and {table}" if table is not None else ""))


app.command("sweep", short_help="Run an experiment table (a sweep file) on Ray Tune.")(sweep_command)
app.add_typer(k8s_app, name="k8s")


def _usage_message(err: UsageError) -> str:
    """click's message, with the offending value where typer's type check names none."""
    message = " ".join(err.format_message().split())
    errors = getattr(err.__cause__, "errors", None)
    if callable(errors) and errors() and "input" in errors()[0]:
        message += f" (got {errors()[0]['input']!r})"
    return message


def main() -> None:
    """Entry point: a user error is one line on stderr and exit code 2, never a traceback. SIGTERM
    stops a run as Ctrl-C does (exit 143)."""
    stop_on_sigterm()
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as err:  # typer's rich help printed itself when the error was made
        if err.format_message().strip():
            print(err.format_message())
        sys.exit(0)
    except (UsageError, ConfigError) as err:
        message = _usage_message(err) if isinstance(err, UsageError) else str(err)
        print(f"fedmr-ray: error: {message}", file=sys.stderr)
        sys.exit(2)
    except SweepStopped as stop:
        print(f"fedmr-ray: sweep {stop}", file=sys.stderr)
        sys.exit(stop.code)
    except Interrupted as stop:
        print(f"fedmr-ray: {'terminated' if stop.terminated else 'interrupted'} after round {stop.round}; "
              f"checkpoint written. Resume with: fedmr-ray simulate --resume {shlex.quote(str(stop.run_dir))}",
              file=sys.stderr)
        sys.exit(143 if stop.terminated else 130)
    except (Abort, KeyboardInterrupt) as stop:
        terminated = isinstance(stop, Terminated)
        print(f"fedmr-ray: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        sys.exit(143 if terminated else 130)
    sys.exit(code if isinstance(code, int) else 0)


def run() -> None:
    """The `fedmr-ray` command: main(), then the S3 client shut down where it was used (storage.finish)."""
    try:
        main()
    finally:
        storage.finish()


if __name__ == "__main__":
    run()
