#!/usr/bin/env bash
# A rehearsal of what KubeRay does with a rendered RayJob, on this machine, with Ray's own processes
# and a local S3 server instead of pods and a bucket (no Kubernetes needed):
#
#   1. an S3 server on localhost (moto's server mode), the dataset uploaded to s3://datasets/fmnist;
#   2. a Ray cluster as the RayJob's RayCluster is: a head with no CPUs (num-cpus 0, the custom
#      resource for drivers, the dashboard that serves the Jobs API) and worker nodes joining it;
#   3. `fedmr-ray k8s render` of a job that reads the data from and writes the run to S3;
#   4. its entrypoint submitted with `ray job submit`, as KubeRay's submitter does;
#   5. `ray job logs --follow` showing a line per round; `ray job stop` mid-run (SIGTERM, as a pod
#      being evicted gets) after a checkpoint;
#   6. the same entrypoint submitted again, as a retried RayJob is: it goes on from the checkpoint;
#   7. the final metrics, read back from S3, compared with the same run done without interruption.
#
# Usage: k8s/rehearse.sh [WORKDIR]          (exit 0 when the metrics are equal, else not 0)
# Environment: DATA (a folder of Fashion-MNIST IDX files; default /usr/share/datasets/fashion-mnist),
# ROUNDS (default 60), CLIENTS (default 20), WORKERS (worker nodes, default 2), CPUS (per worker, 1).
# Needs: fedmr-ray with its test extra (moto[server], ray[default]) in the Python on PATH.
set -Eeuo pipefail

WORK=${1:-$(mktemp -d -t fedmr-rehearsal-XXXXXX)}
mkdir -p "$WORK"
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
ROUNDS=${ROUNDS:-60}
CLIENTS=${CLIENTS:-20}
WORKERS=${WORKERS:-2}
CPUS=${CPUS:-1}
CHECKPOINT_EVERY=5
PYTHON=${PYTHON:-python}
export PATH="$(dirname "$(command -v "$PYTHON")"):$PATH"
export RAY_AUTH_MODE=disabled  # a local cluster without token authentication
# What a pod's terminationGracePeriodSeconds is: time between SIGTERM and SIGKILL (Ray's default 3 s)
export RAY_JOB_STOP_WAIT_TIME_S=30

say() { printf 'rehearse: [%3d s] %s\n' "$SECONDS" "$*"; }
trap 'say "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR  # set -e exits quietly otherwise
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
S3_PORT=$(free_port); GCS_PORT=$(free_port); DASHBOARD_PORT=$(free_port)
DASHBOARD=http://127.0.0.1:$DASHBOARD_PORT
RAY_TMP=$(mktemp -d /tmp/ray-XXXXXX)  # short: Ray's socket paths must fit in 107 bytes

cleanup() {  # this cluster's processes only: they share the session that started them (another Ray stays)
  if [[ -n ${RAY_SID:-} ]]; then
    for job in rehearsal-1 rehearsal-2; do ray job stop --address "$DASHBOARD" "$job" > /dev/null 2>&1 || true; done
    pkill -TERM -s "$RAY_SID" 2> /dev/null || true
    sleep 2
    pkill -KILL -s "$RAY_SID" 2> /dev/null || true
  fi
  [[ -n ${MOTO_PID:-} ]] && kill "$MOTO_PID" 2> /dev/null || true
  [[ -n ${LOGS_PID:-} ]] && kill "$LOGS_PID" 2> /dev/null || true
  rm -rf "$RAY_TMP"
}
trap cleanup EXIT

# --- 1. S3 -----------------------------------------------------------------------------------------
moto_server -H 127.0.0.1 -p "$S3_PORT" > "$WORK/s3.log" 2>&1 &
MOTO_PID=$!
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
"$PYTHON" - "$DATA" <<'EOF'
import os, sys, time
import pyarrow.fs as pafs
fs = pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"], allow_bucket_creation=True)
for _ in range(100):  # the server is starting
    try:
        fs.create_dir("datasets"); fs.create_dir("results"); break
    except OSError:
        time.sleep(0.1)
pafs.copy_files(sys.argv[1], "datasets/fmnist", destination_filesystem=fs)
print("rehearse: uploaded", sys.argv[1], "to s3://datasets/fmnist:",
      ", ".join(info.base_name for info in fs.get_file_info(pafs.FileSelector("datasets/fmnist"))))
pafs.finalize_s3()  # now, not at exit (see below)
EOF

# --- 2. the Ray cluster ---------------------------------------------------------------------------
start_cluster() {  # in a session of its own (setsid), whose processes cleanup stops
  echo $$ > "$WORK/ray.sid"
  # each node's dashboard agent on a free port: its default (52365) may be another Ray's on this
  # machine (the test suite's own), and a head without its agent takes no job ("No available agent")
  ray start --head --num-cpus 0 --resources '{"fedmr_driver": 1000}' --port "$GCS_PORT" \
    --include-dashboard true --dashboard-port "$DASHBOARD_PORT" --temp-dir "$RAY_TMP" \
    --dashboard-agent-listen-port "$(free_port)" \
    --disable-usage-stats > "$WORK/head.log" 2>&1 || { tail -5 "$WORK/head.log"; return 1; }
  for _ in $(seq "$WORKERS"); do
    ray start --address "127.0.0.1:$GCS_PORT" --num-cpus "$CPUS" --dashboard-agent-listen-port "$(free_port)" \
      --disable-usage-stats > "$WORK/worker.log" 2>&1 \
      || { tail -5 "$WORK/worker.log"; return 1; }
  done
}
export -f start_cluster free_port
export WORK GCS_PORT DASHBOARD_PORT RAY_TMP WORKERS CPUS PYTHON
setsid -w bash -c start_cluster || { RAY_SID=$(cat "$WORK/ray.sid"); exit 1; }
RAY_SID=$(cat "$WORK/ray.sid")
say "a head with no CPUs and $WORKERS worker node(s) of $CPUS CPU(s) at 127.0.0.1:$GCS_PORT, Jobs API at $DASHBOARD"

# --- 3. render -------------------------------------------------------------------------------------
SETTINGS=(--dataset fmnist --data-dir s3://datasets/fmnist --model mlp --clients "$CLIENTS" --fraction 0.5
          --rounds "$ROUNDS" --eval-every 1 --local-epochs 1 --alpha 1.0 --seed 7 --checkpoint-every "$CHECKPOINT_EVERY")
fedmr-ray k8s render --image fedmr-ray:rehearsal --name rehearsal --cpu-workers "$WORKERS" --cpus-per-worker "$CPUS" \
  --results-uri s3://results/runs --env-secret s3-credentials -- "${SETTINGS[@]}" > "$WORK/rayjob.yaml"
ENTRYPOINT=$("$PYTHON" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["spec"]["entrypoint"])' "$WORK/rayjob.yaml")
say "entrypoint: $ENTRYPOINT"

# --- 4, 5. submit, follow, stop ---------------------------------------------------------------------
submit() {  # as KubeRay's submitter: the entrypoint after --, read by a shell
  # The Jobs API answers some time after `ray start` returns, and takes jobs later still: until the
  # head's job agent is up it refuses them ("500: No available agent to submit job, please try again
  # later"; under load, tens of seconds). Such a refusal creates no job: retried, as KubeRay's
  # submitter retries, for up to 3 minutes; any other failure ends the rehearsal with its log.
  local deadline=$(( SECONDS + 180 ))
  while (( SECONDS < deadline )); do
    if eval "timeout 60 ray job submit --address $DASHBOARD --submission-id $1 --no-wait -- $ENTRYPOINT" \
        > "$WORK/submit-$1.log" 2>&1; then
      return 0
    fi
    grep -q "No available agent\|Connection refused\|try again later" "$WORK/submit-$1.log" || break
    sleep 2
  done
  say "ray job submit $1 failed:"; tail -20 "$WORK/submit-$1.log"; return 1
}
status() {  # what `ray job status` says: succeeded, was stopped, failed, or "... RUNNING" (PENDING, ...)
  ray job status --address "$DASHBOARD" "$1" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' \
    | grep -o "succeeded\|was stopped\|failed\|Status for job '[^']*': [A-Z]*" | tail -1 || true
}
wait_status() {  # job, wanted status (as status says it), seconds
  for _ in $(seq "$3"); do
    case "$(status "$1")" in
      *"$2"*) return 0 ;;
      *failed*) say "job $1 failed"; ray job logs --address "$DASHBOARD" "$1" | tail -20; return 1 ;;
    esac
    sleep 1
  done
  say "job $1 not $2 after $3 s"; return 1
}

submit rehearsal-1
ray job logs --address "$DASHBOARD" --follow rehearsal-1 > "$WORK/logs-1.txt" 2>&1 &
LOGS_PID=$!
STOP_AFTER=$(( CHECKPOINT_EVERY + 2 ))
for i in $(seq 1500); do  # the log every 0.2 s (the job's status, a slower call, every 2 s)
  grep -q "round $STOP_AFTER/$ROUNDS" "$WORK/logs-1.txt" && break
  if (( i % 10 == 0 )); then case "$(status rehearsal-1)" in *failed* | *succeeded*) break ;; esac; fi
  sleep 0.2
done
grep -q "round $STOP_AFTER/$ROUNDS" "$WORK/logs-1.txt" || { say "no line for round $STOP_AFTER in the job's logs"; cat "$WORK/logs-1.txt"; exit 1; }
say "ray job logs: $(grep -c "fedmr-ray: round " "$WORK/logs-1.txt") round lines so far, e.g. $(grep -m1 "fedmr-ray: round " "$WORK/logs-1.txt")"
ray job stop --address "$DASHBOARD" rehearsal-1 > "$WORK/stop.log" 2>&1 || true
wait_status rehearsal-1 "was stopped" 60
sleep 1; kill "$LOGS_PID" 2> /dev/null || true; LOGS_PID=
ray job logs --address "$DASHBOARD" rehearsal-1 > "$WORK/logs-1.txt" 2>&1
grep "terminated after round\|Traceback" "$WORK/logs-1.txt" | sed 's/^/rehearse: job 1: /' || true
STOPPED_AT=$("$PYTHON" - <<'EOF'
import os, sys
import pyarrow.fs as pafs
from fedmr_ray.results import read_metrics
names = [i.base_name for i in pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"]).get_file_info(
    pafs.FileSelector("results/runs/rehearsal"))]
assert "checkpoint.npz" in names, f"no checkpoint in s3://results/runs/rehearsal: {names}"
print(read_metrics("s3://results/runs/rehearsal")[-1]["round"])
pafs.finalize_s3()  # now, not at exit: pyarrow's exit hook aborted about one process in ten (exit 134)
EOF
)
say "stopped (SIGTERM): s3://results/runs/rehearsal holds a checkpoint and metrics up to round $STOPPED_AT of $ROUNDS"
(( STOPPED_AT < ROUNDS )) || { say "the job finished before it was stopped: raise ROUNDS"; exit 1; }

# --- 6. the retried job --------------------------------------------------------------------------
submit rehearsal-2
wait_status rehearsal-2 succeeded 600
ray job logs --address "$DASHBOARD" rehearsal-2 > "$WORK/logs-2.txt" 2>&1
FIRST=$(grep -m1 -o "fedmr-ray: round [0-9]*" "$WORK/logs-2.txt" | grep -o "[0-9]*$")
say "resubmitted: the job's first round is $FIRST (went on from its checkpoint), and it succeeded"

# --- 7. the same run without interruption ---------------------------------------------------------
fedmr-ray simulate --serial --quiet "${SETTINGS[@]}" --data-dir "$DATA" --output "$WORK/uninterrupted" > /dev/null
"$PYTHON" - "$WORK/uninterrupted" <<'EOF'
import sys
from fedmr_ray.results import read_config, read_metrics
runtime = ("elapsed_s", "executors", "server_s", "round_s")
strip = lambda rows: [{k: v for k, v in row.items() if k not in runtime} for row in rows]
retried, alone = read_metrics("s3://results/runs/rehearsal"), read_metrics(sys.argv[1])
resumed = __import__("json").loads(__import__("fedmr_ray.results", fromlist=["read_file"]).read_file(
    "s3://results/runs/rehearsal", "config.json"))["provenance"].get("resumed", [])
print(f"rehearse: the retried job resumed from round(s) {[r['from_round'] for r in resumed]}; "
      f"{len(retried)} rounds of metrics on S3; final test accuracy {retried[-1]['test_accuracy']:.4f}")
if strip(retried) != strip(alone):
    sys.exit("rehearse: FAILED: the stopped and retried job's metrics differ from the uninterrupted run's")
print("rehearse: same metrics as the uninterrupted run (every round, to the bit)")
EOF
say "done; files in $WORK"
