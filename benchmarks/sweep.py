"""A sweep on Ray Tune against the same runs as `fedmr-ray simulate` commands one after another.

    python -m benchmarks.sweep [--rounds 20]

Eight trials (synthetic data, 100 clients, 4 algorithms x 2 seeds), measured in one run:
  sequential   the eight `fedmr-ray simulate` commands one after another (default resources: as
               many executors as the machine holds), wall time each;
  sweep        `fedmr-ray sweep` of the same eight (one executor each: as many trials at once as
               the machine's CPUs), its wall time; per trial the time from the command's start
               (every trial submitted) to its round 1, from its start in Tune to its round 1
               (its own start-up there), and the gap between the end of the trial before it in its
               slot and its start (Tune's scheduling, per trial);
  alone        each trial's configuration as one `fedmr-ray simulate --num-actors 1` (the trial's
               resources, nothing else running): its rounds' time against the trial's in the sweep.
Every number comes from the commands' own files (config.json's provenance: round 1's start;
metrics.parquet: the rounds' elapsed time) and from when the sweep printed each trial's start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ALGORITHMS = ("fedmr", "fedavg", "fedprox", "scaffold")
SEEDS = (0, 1)


def exe() -> str:
    return shutil.which("fedmr-ray", path=os.path.dirname(sys.executable)) or "fedmr-ray"


def common(rounds: int) -> list[str]:
    return ["--clients", "100", "--rounds", str(rounds), "--quiet"]


def round_one(run_dir: Path) -> float:
    return json.loads((run_dir / "config.json").read_text())["provenance"]["started_s"]


def rounds_time(run_dir: Path) -> float:
    import pyarrow.parquet as pq

    return pq.read_table(run_dir / "metrics.parquet").to_pylist()[-1]["elapsed_s"]


def run_commands(work: Path, rounds: int, extra: list[str], tag: str) -> dict[str, dict]:
    out = {}
    for algorithm in ALGORITHMS:
        for seed in SEEDS:
            name = f"algorithm={algorithm},seed={seed}"
            run_dir = work / tag / name
            launched = time.time()
            subprocess.run([exe(), "simulate", *common(rounds), "--algorithm", algorithm, "--seed", str(seed),
                            *extra, "--output", str(run_dir)], check=True, stdout=subprocess.DEVNULL,
                           env={**os.environ, "RAY_ADDRESS": ""})
            out[name] = {"wall": time.time() - launched, "to_round1": round_one(run_dir) - launched,
                         "rounds": rounds_time(run_dir)}
    return out


def run_sweep(work: Path, rounds: int) -> tuple[float, dict[str, dict]]:
    file = work / "sweep.toml"
    file.write_text(f"[base]\nclients = 100\nrounds = {rounds}\n\n[grid]\nalgorithm = {json.dumps(ALGORITHMS)}\n"
                    f"seed = {list(SEEDS)}\n")
    started: dict[str, float] = {}
    launched = time.time()
    proc = subprocess.Popen([exe(), "sweep", str(file), "--output", str(work / "sweep")], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env={**os.environ, "RAY_ADDRESS": ""})

    def watch() -> None:  # when the sweep says each trial started
        for line in proc.stderr:
            if line.startswith("fedmr-ray sweep: started "):
                started.setdefault(line.split()[3], time.time())

    watcher = threading.Thread(target=watch)
    watcher.start()
    proc.wait()
    wall = time.time() - launched
    watcher.join()
    assert proc.returncode == 0, "the sweep failed"
    trials = {}
    for name, at in started.items():
        run_dir = work / "sweep" / name
        first = round_one(run_dir)
        trials[name] = {"to_round1": first - launched, "startup": first - at, "start": at,
                        "end": first + rounds_time(run_dir), "rounds": rounds_time(run_dir)}
    for trial in trials.values():  # the gap since the end of the last trial that ended before it started
        ends = [t["end"] for t in trials.values() if t["end"] <= trial["start"]]
        trial["gap"] = trial["start"] - max(ends) if ends else None
    return wall, trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.time()
        sequential = run_commands(work, args.rounds, [], "sequential")
        sequential_wall = time.time() - started
        sweep_wall, trials = run_sweep(work, args.rounds)
        alone = run_commands(work, args.rounds, ["--num-actors", "1"], "alone")
    print(f"8 trials: synthetic, 100 clients, {args.rounds} rounds, {', '.join(ALGORITHMS)} x seeds "
          f"{', '.join(map(str, SEEDS))}; {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"sequential: 8 fedmr-ray simulate commands, {sequential_wall:.1f} s")
    print(f"sweep:      fedmr-ray sweep, {sweep_wall:.1f} s: {sweep_wall / sequential_wall:.2f}x the sequential time")
    print(f"\n{'trial':30} {'sweep: to round 1':>18} {'its start-up':>13} {'gap before':>11} "
          f"{'alone: to round 1':>18} {'rounds s':>9} {'alone 1 ex.':>11} {'ratio':>6}")
    ratios = []
    for name in sequential:
        t, a = trials[name], alone[name]
        ratios.append(t["rounds"] / a["rounds"])
        gap = f"{t['gap']:.2f}" if t["gap"] is not None else "-"
        print(f"{name:30} {t['to_round1']:18.1f} {t['startup']:13.1f} {gap:>11} {sequential[name]['to_round1']:18.1f} "
              f"{t['rounds']:9.2f} {a['rounds']:11.2f} {ratios[-1]:6.2f}")
    gaps = [t["gap"] for t in trials.values() if t["gap"] is not None]
    print(f"\nstart-up in the sweep (Tune start -> round 1): median {statistics.median(t['startup'] for t in trials.values()):.1f} s; "
          f"alone (command -> round 1): median {statistics.median(s['to_round1'] for s in sequential.values()):.1f} s")
    print(f"Tune's gap between a trial's end and the next one's start in its slot: median "
          f"{statistics.median(gaps):.2f} s over {len(gaps)} trials" if gaps else "no trial waited for a slot")
    print(f"rounds in the sweep / the same run alone with its resources (1 executor): median "
          f"{statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}")


if __name__ == "__main__":
    main()
