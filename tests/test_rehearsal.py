"""k8s/rehearse.sh: what KubeRay does with a rendered RayJob, done with Ray's own processes on this
machine (a head with no CPUs, worker nodes joining it, the Jobs API), with the data read from and
the run written to an S3 server on localhost: the job stopped mid-run (SIGTERM) and submitted
again ends with the metrics of an uninterrupted run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from datafiles import write_idx

SCRIPT = Path(__file__).parents[1] / "k8s" / "rehearse.sh"


def test_a_rendered_job_stopped_and_submitted_again_ends_as_an_uninterrupted_run(tmp_path):
    pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
    pytest.importorskip("ray.dashboard.optional_deps", reason="ray[default] (the Jobs API) is not installed")
    bin_dir = os.path.dirname(sys.executable)
    for tool in ("moto_server", "ray", "fedmr-ray"):
        if shutil.which(tool, path=bin_dir) is None and shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    data = tmp_path / "fmnist"
    write_idx(data, n_train=2000, n_test=200)
    work = tmp_path / "work"
    env = {**os.environ, "DATA": str(data), "ROUNDS": "60", "CLIENTS": "10", "WORKERS": "2", "CPUS": "1",
           "PYTHON": sys.executable, "RAY_ADDRESS": "", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run(["bash", str(SCRIPT), str(work)], env=env, capture_output=True, text=True, timeout=540)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    first, second = (work / "logs-1.txt").read_text(), (work / "logs-2.txt").read_text()
    # ray job logs: a line per round, then the stop: a checkpoint written on SIGTERM
    assert "fedmr-ray: round 1/60 test accuracy" in first and "fedmr-ray: round 7/60 test accuracy" in first
    assert "fedmr-ray: terminated after round" in first and "Resume with: fedmr-ray simulate --resume s3://" in first
    stopped = int(out.split("holds a checkpoint and metrics up to round ")[1].split()[0])
    assert 7 <= stopped < 60
    # the job submitted again went on from there, and its metrics are the uninterrupted run's
    assert f"fedmr-ray: round {stopped + 1}/60" in second and "fedmr-ray: round 1/60" not in second
    assert f"the retried job resumed from round(s) [{stopped}]" in out
    assert "same metrics as the uninterrupted run" in out
