"""Sweeps: planning a sweep file into trials, refusing a bad one whole, the statistics over seeds;
end to end on Ray Tune: a trial gives the numbers of the same run alone, and an interrupted sweep
resumed (from where it was moved to) ends as an uninterrupted one."""

import json
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedmr_ray import AlgorithmConfig, SimulationConfig, simulate
from fedmr_ray.cli.main import main
from fedmr_ray.config import ConfigError
from fedmr_ray.results import METRICS, MODEL, read_metrics
from fedmr_ray.sweep import PLAN, Resources, Sweep, plan, read_plan
from fedmr_ray.sweep_report import Interval, report_sweep
from runs import own_lines, results

BASE = {"clients": 16, "fraction": 0.25, "rounds": 4, "eval_every": 2, "local_epochs": 1}


def test_the_grid_is_crossed_with_each_run_and_trials_are_named_by_their_values(tmp_path):
    raw = {"base": {**BASE, "data": {"synthetic_alpha": 0.5}},
           "grid": {"seed": [0, 1], "lr": [0.01, 0.05]},
           "runs": [{"algorithm": "fedmr", "first_stage_bound": 2}, {"algorithm": "fedavg"}],
           "resources": {"executors": 2, "cpus_per_executor": 0.5}}
    sweep = plan(raw, "s.toml", tmp_path)
    assert len(sweep.trials) == 8 and sweep.keys == ("algorithm", "first_stage_bound", "seed", "lr")
    first = sweep.trials[0]
    assert first.name == "algorithm=fedmr,first_stage_bound=2,seed=0,lr=0.01"
    assert first.config.algorithm == AlgorithmConfig("fedmr", first_stage_bound=2, granularity="tensor",
                                                     diverse_init=False)
    assert first.config.output == str(tmp_path / first.name) and first.config.checkpoint_every == 10
    assert (first.config.runtime.num_actors, first.config.runtime.cpus_per_actor) == (2, 0.5)
    assert first.config.data.synthetic_alpha == 0.5 and first.config.train.local_epochs == 1
    fedavg = [t for t in sweep.trials if t.values["algorithm"] == "fedavg"]
    assert len(fedavg) == 4 and all(t.config.algorithm == AlgorithmConfig("fedavg") for t in fedavg)
    assert Sweep.from_dict(json.loads(json.dumps(sweep.to_dict()))) == sweep


BAD = [
    ({"grid": {"alpah": [1]}}, "s.toml: [grid] alpah: unknown setting"),
    ({"grid": {"seed": []}}, "s.toml: [grid] seed = []: must be a non-empty list of values"),
    ({"grid": {"seed": 3}}, "s.toml: [grid] seed = 3: must be a non-empty list of values"),
    ({"grid": {"lr": [0.1, 0]}}, "s.toml: [grid] lr = 0.0: must be > 0 (trial lr=0)"),
    ({"grid": {"algorithm": ["fedmr", "fedsgd"]}}, "s.toml: [grid] algorithm = 'fedsgd': accepted values are"),
    ({"grid": {"algorithm": ["fedavg"]}, "runs": [{"mu": 0.1}]}, "s.toml: [[runs]] 1 mu: not a setting of algorithm fedavg"),
    ({"base": {"clients": "many"}}, "s.toml: [base] clients = 'many': must be an integer"),
    ({"base": {"dataset": "cifar11"}}, "s.toml: [base] dataset = 'cifar11': accepted values are"),
    ({"base": {"output": "x"}}, "s.toml: [base] output: not accepted in a sweep"),
    ({"base": {"runtime": {"num_actors": 2}}}, "s.toml: [base] runtime.num_actors: not accepted in a sweep: give "
                                               "executors in [resources]"),
    ({"runs": [{"lr": 0.1}, {"lr": 0.1}]}, "s.toml: two trials are both lr=0.1"),
    ({"resources": {"executors": 0}}, "s.toml: [resources] executors = 0: must be an integer >= 1"),
    ({"resources": {"gpu": 1}}, "s.toml: [resources] gpu: unknown setting"),
    ({"gird": {}}, "s.toml: gird: unknown table; a sweep file holds base, grid, runs, resources"),
]


@pytest.mark.parametrize(("raw", "message"), BAD, ids=[m.split(": ", 1)[1][:40] for _, m in BAD])
def test_a_bad_sweep_is_refused_whole_naming_the_file_the_key_and_the_value(tmp_path, raw, message):
    with pytest.raises(ConfigError) as caught:
        plan({"base": {**BASE, **raw.pop("base", {})}, **raw}, "s.toml", tmp_path)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_command_refuses_a_bad_sweep_file_before_anything_starts(tmp_path, monkeypatch, capsys):
    file = tmp_path / "s.toml"
    file.write_text('[base]\nclients = 10\n[grid]\nmomentum = [0.5, 1.5]\n')
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "sweep", str(file), "--output", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err == f"fedmr-ray: error: {file}: [grid] momentum = 1.5: must be in [0, 1) (trial momentum=1.5)\n"
    assert not (tmp_path / "out").exists()


def test_an_interval_is_students_t_over_the_seeds():
    interval = Interval.of([0.5, 0.6, 0.7])
    assert interval.n == 3 and interval.mean == pytest.approx(0.6) and interval.std == pytest.approx(0.1)
    assert interval.high - interval.mean == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-6)
    assert Interval.of([0.4]).text() == "0.4000" and math.isnan(Interval.of([0.4]).low)
    assert Interval.of([math.nan, 2.0, 4.0]).n == 2


def fake_sweep(directory: Path) -> Sweep:
    """A planned sweep whose trials' metrics are written by hand: alpha x algorithm x 3 seeds."""
    raw = {"base": {**BASE, "rounds": 4, "data": {"partition": "iid"}},
           "grid": {"alpha": [0.1, 0.5], "algorithm": ["fedmr", "fedavg"], "seed": [0, 1, 2]}}
    sweep = plan(raw, "s.toml", directory)
    sweep.write(directory)
    for trial in sweep.trials:
        level = {"fedmr": 0.5, "fedavg": 0.3}[trial.values["algorithm"]] + trial.values["alpha"] / 10
        accuracy = [level / 2, level + 0.01 * trial.values["seed"]]
        trial.run_dir.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist([{"round": r, "test_accuracy": a, "test_loss": 1.0}
                                             for r, a in zip((2, 4), accuracy)]), trial.run_dir / METRICS)
        (trial.run_dir / MODEL).write_bytes(b"")
    return sweep


def test_the_report_groups_trials_by_all_but_the_seed(tmp_path):
    fake_sweep(tmp_path)
    lines = report_sweep(tmp_path, facet="alpha")
    assert lines[0] == "| alpha | algorithm | seeds | final acc | best acc | mean of last 5 | rounds to 0.3100 |"
    summary = pq.read_table(tmp_path / "summary.parquet").to_pylist()
    assert [(s["alpha"], s["algorithm"], s["seeds"]) for s in summary] == [
        (0.1, "fedmr", 3), (0.1, "fedavg", 3), (0.5, "fedmr", 3), (0.5, "fedavg", 3)]
    expected = Interval.of([0.51, 0.52, 0.53])
    assert summary[0]["final_mean"] == pytest.approx(0.52) and summary[0]["final_high"] == pytest.approx(expected.high)
    assert summary[0]["last5_mean"] == pytest.approx(np.mean([(0.255 + 0.51 + 0.01 * s) / 2 for s in (0, 1, 2)]))
    assert summary[1]["rounds_to_target_mean"] == 4.0 and summary[1]["reached_target"] == 3
    trials = pq.read_table(tmp_path / "trials.parquet").to_pylist()
    assert len(trials) == 24 and {"trial", "alpha", "algorithm", "seed", "round", "test_accuracy"} <= set(trials[0])
    assert (tmp_path / "summary.md").read_text().startswith(lines[0])
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    with pytest.raises(ConfigError, match="--facet lr: not a key the sweep varies; accepted: alpha, algorithm, seed"):
        report_sweep(tmp_path, facet="lr")


# --- end to end on Ray Tune ----------------------------------------------------------------------

SWEEP_FILE = """\
[base]
clients = 16
fraction = 0.25
rounds = 12
eval_every = 3
local_epochs = 1
checkpoint_every = 3

[grid]
algorithm = ["fedmr", "fedavg"]
seed = [0, 1]
"""


def serial_rows(config: dict) -> list[dict]:
    """A configuration run alone, in this process (the serial backend gives Ray's numbers, as
    test_ray_runtime checks); its rows without their timings."""
    return results(simulate(SimulationConfig.from_dict({**config, "output": None}), serial=True))


def alone(trials) -> dict[str, list[dict]]:
    """Each trial's configuration run alone, two at a time (one per core), in fresh processes."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = pool.map(serial_rows, [trial.config.to_dict() for trial in trials])
        return dict(zip([trial.name for trial in trials], rows))


def command() -> str:
    exe = shutil.which("fedmr-ray", path=os.path.dirname(sys.executable)) or shutil.which("fedmr-ray")
    if exe is None:
        pytest.skip("the fedmr-ray command is not installed")
    return exe


@pytest.mark.skipif(os.name != "posix", reason="sends SIGTERM")
def test_a_sweep_interrupted_and_resumed_ends_as_its_trials_run_alone(tmp_path):
    """Stopped with SIGTERM (as Kubernetes stops a pod; the command turns it into Ctrl-C's stop),
    a sweep keeps its state and its trials their checkpoints; moved to another folder and resumed
    there, it ends as its trials run alone."""
    exe, env = command(), {**os.environ, "RAY_ADDRESS": ""}
    (tmp_path / "s.toml").write_text(SWEEP_FILE.replace("seed = [0, 1]", "seed = [0]"))  # two trials
    out = tmp_path / "sweep"
    proc = subprocess.Popen([exe, "sweep", str(tmp_path / "s.toml"), "--output", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    first = out / "algorithm=fedmr,seed=0"
    while not ((first / "checkpoint.npz").exists() and len(read_metrics_or_empty(first)) < 4):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # a trial mid-run, with a checkpoint
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 143, stderr
    assert "Resume with: fedmr-ray sweep --resume" in stderr and "Traceback" not in own_lines(stderr)
    assert not all(trial.finished() for trial in read_plan(out).trials)

    # resumed somewhere else (copied to another machine, another checkout): it goes on where it is now
    moved = out.rename(tmp_path / "moved")
    sweep = read_plan(moved)
    assert [t.run_dir for t in sweep.trials] == [moved / "algorithm=fedmr,seed=0", moved / "algorithm=fedavg,seed=0"]
    unfinished = [t.name for t in sweep.trials if not t.finished()]
    resumed = subprocess.run([exe, "sweep", "--resume", str(moved), "--max-concurrent", "1"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "2/2 trials finished" in resumed.stderr and "| algorithm | seeds | final acc" in resumed.stdout
    # the unfinished trials (only they) started again, in the plan's order
    started = [line.split()[3] for line in resumed.stderr.splitlines() if line.startswith("fedmr-ray sweep: started ")]
    assert started == unfinished, resumed.stderr
    assert not out.exists()
    expected = alone(sweep.trials)
    for trial in sweep.trials:
        assert results(read_metrics(trial.run_dir)) == expected[trial.name], trial.name
    assert (moved / "summary.md").is_file() and (moved / "curves.png").is_file()


def read_metrics_or_empty(run_dir: Path) -> list:
    try:
        return read_metrics(run_dir)
    except OSError:
        return []


def test_simulate_seeds_runs_a_sweep_of_those_seeds(tmp_path, monkeypatch, capsys):
    ctrl_c = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "simulate", "--clients", "12", "--rounds", "2", "--local-epochs", "1",
                                      "--algorithm", "fedavg", "--seeds", "3,4", "--output", str(tmp_path / "s")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    assert exit_info.value.code == 0, out.err
    sweep = read_plan(tmp_path / "s")
    assert [t.name for t in sweep.trials] == ["seed=3", "seed=4"] and sweep.resources == Resources()
    assert "| all | 2 |" in out.out and "95% confidence interval" in out.out
    assert [t.config.seed for t in sweep.trials] == [3, 4] and all(t.finished() for t in sweep.trials)
    assert (tmp_path / "s" / PLAN).is_file()
    # Ray Tune's SIGINT handler is not left behind: Ctrl-C is what it was in the calling process
    assert signal.getsignal(signal.SIGINT) is ctrl_c


def test_a_sweep_follows_the_cluster_more_trials_on_a_new_node_and_a_lost_one_resumed(tmp_path):
    """On a cluster of one 1-CPU node, one trial runs at a time; with a node added mid-sweep, two
    at once; the node removed while two trials run (one on each node), its trial goes on from its
    checkpoint, and every trial ends with the numbers of the same run alone."""
    import threading

    import ray
    from ray.cluster_utils import Cluster

    from fedmr_ray.runtime.tune import Progress, run_sweep
    from fedmr_ray.sweep import read_sweep

    node = {"num_cpus": 1, "object_store_memory": 150 * 1024**2}
    # trials of about 6 s of rounds each (seeds whose clients hold about as many samples: seed 2
    # holds one of 160,000): two overlap, both past a checkpoint, for seconds whenever the new node
    # comes up
    (tmp_path / "s.toml").write_text(SWEEP_FILE.replace("rounds = 12", "rounds = 50").replace(
        "clients = 16", "clients = 32").replace("eval_every = 3", "eval_every = 10").replace(
        "local_epochs = 1", "local_epochs = 3").replace('["fedmr", "fedavg"]', '["fedmr"]').replace(
        "seed = [0, 1]", "seed = [0, 5, 8]"))
    sweep = read_sweep(tmp_path / "s.toml", tmp_path / "sweep")
    sweep.write(tmp_path / "sweep")

    class Watched(Progress):
        most = 0

        def on_trial_start(self, iteration, trials, trial, **info):
            super().on_trial_start(iteration, trials, trial, **info)
            Watched.most = max(Watched.most, len(self.running))

    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        progress = Watched(len(sweep.trials), every=1e9)
        outcome = []
        runner = threading.Thread(target=lambda: outcome.append(run_sweep(sweep, tmp_path / "sweep", progress=progress)))
        runner.start()
        deadline = time.monotonic() + 240
        while not progress.rounds:  # the first trial is training
            assert runner.is_alive() and time.monotonic() < deadline
            time.sleep(0.1)
        assert Watched.most == 1
        worker = cluster.add_node(**node)
        by_name = {t.name: t for t in sweep.trials}

        def two_mid_run() -> bool:  # two trials at once (one on each node's CPU), both past a checkpoint
            running = [by_name[name] for name in list(progress.running)]
            return len(running) == 2 and all((t.run_dir / "checkpoint.npz").exists() and not t.finished()
                                              for t in running)

        while not two_mid_run():
            assert runner.is_alive() and time.monotonic() < deadline, progress.status()
            time.sleep(0.02)
        cluster.remove_node(worker, allow_graceful=False)
        runner.join(timeout=300)
        assert not runner.is_alive()
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert outcome and outcome[0].unfinished == [], progress.status()
    expected = alone(sweep.trials)
    for trial in sweep.trials:
        assert results(read_metrics(trial.run_dir)) == expected[trial.name], trial.name


@pytest.mark.parametrize("file", sorted((Path(__file__).parents[1] / "benchmarks" / "paper").glob("*.toml")),
                         ids=lambda path: path.name)
def test_the_papers_sweep_files_plan(file, tmp_path):
    sweep = plan(__import__("tomllib").loads(file.read_text()), str(file), tmp_path)
    assert len(sweep.trials) >= 24 and "seed" in sweep.keys
    assert {t.values["algorithm"] for t in sweep.trials} >= {"fedmr", "fedavg"}


def test_resume_if_exists_goes_on_only_with_the_same_sweep(tmp_path, monkeypatch, capsys):
    (tmp_path / "a.toml").write_text('[base]\nclients = 10\n[grid]\nseed = [0, 1]\n')
    (tmp_path / "b.toml").write_text('[base]\nclients = 10\n[grid]\nseed = [0, 2]\n')
    from fedmr_ray.sweep import read_sweep

    read_sweep(tmp_path / "a.toml", (tmp_path / "out").absolute()).write(tmp_path / "out")
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "sweep", str(tmp_path / "b.toml"), "--output", str(tmp_path / "out"),
                                      "--resume-if-exists"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "holds another sweep than" in err and err.count("\n") == 1
