"""`fedmr-ray k8s render`: a KubeRay RayJob manifest for one simulation, printed as YAML.

The cluster a manifest describes is written once, here: a head that trains nothing (num-cpus 0),
worker groups that Ray's in-tree autoscaler (v2) scales between their bounds, resource requests
equal to limits, and on the head, where the driver reads the data and writes the run directory,
the results volume (or a URI instead), a read-only dataset volume where one is given, and the
environment of a Secret (credentials for URIs).
k8s/rayjob.yaml and k8s/raycluster.yaml are renders of these functions (tests/test_k8s.py checks).
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer
import yaml

from fedmr_ray.config import ConfigError, DataConfig, RuntimeConfig, SimulationConfig
from fedmr_ray.configfile import Sources, all_settings
from fedmr_ray.runtime.resources import DRIVER_RESOURCE, DRIVER_SLOTS
from fedmr_ray.data.catalog import dataset_spec
from fedmr_ray.models import ModelSpec, model_for
from fedmr_ray.models.info import model_info
from fedmr_ray.setup import check
from fedmr_ray.storage import ACCEPTED, SCHEMES, is_uri
from fedmr_ray.sweep import read_sweep

RESULTS_MOUNT = "/mnt/results"
SWEEP_MOUNT = "/etc/fedmr-ray"  # where a rendered sweep's ConfigMap puts the sweep file, on the head
RESULTS_VOLUME = "results"
DATA_VOLUME = "data"
# The rayproject/ray images run as user ray (uid 1000) in group users (gid 100): fsGroup makes the
# results volume writable by that group.
RAY_GROUP_ID = 100
# Long enough to look at the finished cluster (dashboard, head logs) before KubeRay deletes it.
TTL_AFTER_FINISHED_S = 600
IDLE_TIMEOUT_S = 60
RETRIES = 3  # a RayJob's retries (backoffLimit)
# rounds between a rendered job's checkpoints unless --checkpoint-every is given: a retry loses at
# most this many rounds (seconds each for the cnns on a GPU; see benchmarks/paper/README.md)
CHECKPOINT_EVERY = 10
MAX_RAYJOB_NAME = 47  # KubeRay appends 6 characters to name the RayJob's RayCluster (at most 53)

# simulate flags that a rendered job sets itself or that make no sense inside it, and why
_OWNED = {
    "output": f"the run goes to {RESULTS_MOUNT}/NAME (or --results-uri/NAME); choose NAME with --name",
    "gpus_per_actor": "give --gpus-per-actor before --",
    "address": "the job runs on the Ray cluster the RayJob creates",
    "connect_timeout": "the job runs on the Ray cluster the RayJob creates",
    "serial": "a RayJob runs on Ray",
}
# simulate flags that are no setting (--quiet only changes what the command prints: passed through)
_NOT_SETTINGS = {
    "config": "the file is not in the pod; give its settings as flags",
    "resume": "a rendered job starts a run",
}

_DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
_QUANTITY = re.compile(r"([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[kMGTPE])?")


@dataclass(frozen=True)
class PodShape:
    """What one Ray pod's container asks for, and is limited to (the same)."""

    cpus: str
    memory: str
    gpus: int = 0

    def resources(self) -> dict[str, dict[str, str]]:
        amounts = {"cpu": self.cpus, "memory": self.memory}
        if self.gpus:
            amounts["nvidia.com/gpu"] = str(self.gpus)
        return {"requests": dict(amounts), "limits": dict(amounts)}


AUTOSCALER = PodShape(cpus="500m", memory="512Mi")
# Ray's object store takes this share of a pod's memory unless told otherwise
RAY_OBJECT_STORE_SHARE = 0.3


@dataclass(frozen=True)
class Head:
    """The head pod: the driver, the coordinator and the copies of every round's new entries (the
    coordinator keeps them on the head, so that they outlive the workers that made them)."""

    image: str
    shape: PodShape = PodShape(cpus="2", memory="8Gi")
    object_store_bytes: int | None = None  # None: Ray's default share of the pod's memory

    def object_store(self) -> int:
        return self.object_store_bytes or int(RAY_OBJECT_STORE_SHARE * quantity_bytes(self.shape.memory))


@dataclass(frozen=True)
class WorkerGroup:
    """A worker group: `min_replicas` pods from the start, up to `max_replicas` on demand."""

    name: str
    min_replicas: int
    max_replicas: int
    shape: PodShape
    image: str = ""


_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (16Gi, 512Mi, 4G, 1000000) in bytes."""
    match = _QUANTITY.fullmatch(quantity)
    return int(float(match.group(1)) * _UNITS[match.group(3) or ""])


def _pod_template(container: dict[str, Any], *, gpu: bool = False, volumes: list | None = None) -> dict:
    spec: dict[str, Any] = {
        # autoscaler v2 replaces a failed pod rather than restarting it
        "restartPolicy": "Never",
        "securityContext": {"fsGroup": RAY_GROUP_ID},
        "containers": [container],
    }
    if gpu:  # GPU nodes are commonly tainted so that only pods asking for GPUs land there
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    if volumes:
        spec["volumes"] = volumes
    return {"spec": spec}


def cluster_spec(head_pod: Head, groups: list[WorkerGroup], results_pvc: str | None,
                 mounts: list[tuple[dict[str, Any], str]] = (), env_secret: str | None = None) -> dict[str, Any]:
    """A RayClusterSpec: the head runs the driver (a sweep's trial drivers too, through the
    DRIVER_RESOURCE it alone offers) and the autoscaler, the workers train. `results_pvc`: the
    results volume (None where the run goes to a URI); `mounts`: more (volume, path) on the head,
    read-only; `env_secret`: a Secret whose keys become the head's environment."""
    volumes = [*([{"name": RESULTS_VOLUME, "persistentVolumeClaim": {"claimName": results_pvc}}]
                 if results_pvc else []), *(volume for volume, _ in mounts)]
    head = {
        "name": "ray-head",
        "image": head_pod.image,
        "ports": [{"containerPort": 6379, "name": "gcs"}, {"containerPort": 8265, "name": "dashboard"},
                  {"containerPort": 10001, "name": "client"}],
        "resources": head_pod.shape.resources(),
        **({"envFrom": [{"secretRef": {"name": env_secret}}]} if env_secret else {}),
        "volumeMounts": [*([{"name": RESULTS_VOLUME, "mountPath": RESULTS_MOUNT}] if results_pvc else []),
                         *({"name": volume["name"], "mountPath": path, "readOnly": True} for volume, path in mounts)],
    }
    return {
        "rayVersion": version("ray"),
        "enableInTreeAutoscaling": True,
        "autoscalerOptions": {
            "version": "v2",
            "upscalingMode": "Default",
            "idleTimeoutSeconds": IDLE_TIMEOUT_S,
            "resources": AUTOSCALER.resources(),
        },
        "headGroupSpec": {
            # no logical CPUs: executors and tasks never land on the head; the drivers' resource
            "rayStartParams": {"num-cpus": "0", "resources": json.dumps(json.dumps({DRIVER_RESOURCE: DRIVER_SLOTS})),
                               **({"object-store-memory": str(head_pod.object_store_bytes)}
                                  if head_pod.object_store_bytes else {})},
            "template": _pod_template(head, volumes=volumes),
        },
        "workerGroupSpecs": [
            {
                "groupName": group.name,
                "replicas": group.min_replicas,
                "minReplicas": group.min_replicas,
                "maxReplicas": group.max_replicas,
                "rayStartParams": {},  # KubeRay derives num-cpus / num-gpus from the limits
                "template": _pod_template({"name": "ray-worker", "image": group.image or head_pod.image,
                                           "resources": group.shape.resources()},
                                          gpu=group.shape.gpus > 0),
            }
            for group in groups
        ],
    }


def _resource(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "ray.io/v1", "kind": kind,
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "fedmr-ray"}}, "spec": spec}


def raycluster(name: str, cluster: dict[str, Any]) -> dict[str, Any]:
    """A long-lived RayCluster, for `ray job submit` or `fedmr-ray simulate --address`."""
    return _resource("RayCluster", name, cluster)


def rayjob(name: str, entrypoint: str, cluster: dict[str, Any]) -> dict[str, Any]:
    """A RayJob: KubeRay creates the cluster, submits the entrypoint, and deletes the cluster after."""
    return _resource("RayJob", name, {
        "entrypoint": entrypoint,
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": TTL_AFTER_FINISHED_S,
        # a retried job (its pods preempted, its node lost) runs the same command again, which goes
        # on from the run's checkpoint (--resume-if-exists)
        "backoffLimit": RETRIES,
        "rayClusterSpec": cluster,
    })


def simulate_entrypoint(simulate_args: list[str]) -> str:
    """The shell command line of `fedmr-ray simulate`, each argument quoted as the shell needs."""
    return shlex.join(["fedmr-ray", "simulate", *simulate_args])


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # plain YAML, never &anchors
        return True


def _text(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    """Text of several lines as a literal block (a sweep file in a ConfigMap reads as the file)."""
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _text)


def to_yaml(manifest: dict[str, Any]) -> str:
    return yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=float("inf"))


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_simulate_flags(ctx: typer.Context, simulate_args: list[str],
                         gpus_per_actor: float) -> SimulationConfig:
    """Parse the flags with `fedmr-ray simulate`'s own command (unknown flags and bad types are its
    usage errors) and check them as it does, the data aside (only the cluster has it); the job's
    --gpus-per-actor is render's."""
    root = ctx.find_root()
    command = root.command.get_command(root, "simulate")
    parsed = command.make_context("fedmr-ray simulate", list(simulate_args))
    flags = all_settings()
    option = {param.name: max(param.opts, key=len) for param in command.params}
    given = {name for name in parsed.params if parsed.get_parameter_source(name).name == "COMMANDLINE"}
    settings = {flag.name for flag in flags}
    refused = [(name, _OWNED[name]) for name in sorted(given & set(_OWNED))]
    refused += [(name, _NOT_SETTINGS[name]) for name in sorted((given - settings) & set(_NOT_SETTINGS))]
    if refused:
        name, why = refused[0]
        raise ConfigError(f"{option[name]} after --: not accepted by `fedmr-ray k8s render`: {why}")
    params = {**parsed.params, "gpus_per_actor": gpus_per_actor}
    return check(Sources(flags, params, given | {"gpus_per_actor"}).config())


def check_workers(runtime: RuntimeConfig, gpu: WorkerGroup, cpu: WorkerGroup) -> None:
    """The executors this run asks for fit in a worker, and workers are there when it starts (the
    executor pool is sized from the nodes present then)."""
    for group in (gpu, cpu):
        _require(group.max_replicas >= group.min_replicas,
                 f"--max-{group.name}-workers {group.max_replicas}: must be >= --{group.name}-workers "
                 f"{group.min_replicas}")
    if runtime.gpus_per_actor > 0:
        _require(gpu.min_replicas >= 1, f"--gpus-per-actor {runtime.gpus_per_actor:g}: needs GPU workers "
                                        "present from the start (--gpu-workers >= 1)")
        _require(runtime.gpus_per_actor <= gpu.shape.gpus,
                 f"--gpus-per-actor {runtime.gpus_per_actor:g}: more than a GPU worker has "
                 f"(--gpus-per-worker {gpu.shape.gpus})")
    _require(gpu.min_replicas + cpu.min_replicas >= 1, "--cpu-workers 0 --gpu-workers 0: the head trains "
             "nothing (num-cpus 0); at least one worker must be present from the start")
    _require(runtime.cpus_per_actor <= float(cpu.shape.cpus),
             f"--cpus-per-actor {runtime.cpus_per_actor:g}: more than a worker has "
             f"(--cpus-per-worker {cpu.shape.cpus})")


def _check_image(image: str, flag: str) -> None:
    _require(bool(image) and not any(c.isspace() for c in image),
             f"{flag} {image!r}: must name a container image, e.g. registry.example.com/fedmr-ray:0.1.0-gpu")


def _check_names(image: str, name: str, results_pvc: str, memory: str) -> None:
    _check_image(image, "--image")
    _require(len(name) <= MAX_RAYJOB_NAME and _DNS_1035.fullmatch(name) is not None,
             f"--name {name!r}: must be at most {MAX_RAYJOB_NAME} lower-case letters, digits and '-', "
             "starting with a letter and ending with a letter or digit")
    _require(len(results_pvc) <= 253 and _DNS_1123.fullmatch(results_pvc) is not None,
             f"--results-pvc {results_pvc!r}: must be a Kubernetes object name (lower-case letters, "
             "digits, '-' and '.')")
    _require(_QUANTITY.fullmatch(memory) is not None,
             f"--memory-per-worker {memory!r}: must be a Kubernetes quantity such as 16Gi or 512Mi")


k8s_app = typer.Typer(no_args_is_help=True, help="Run simulations on Kubernetes with KubeRay.")


@k8s_app.callback()
def _k8s() -> None:
    """Run simulations on Kubernetes with KubeRay."""


WORKERS, SHAPE, JOB, HEAD_PANEL = "Workers", "Worker pods", "Job", "Head pod"


def _opt(help_text: str, panel: str, **kwargs) -> typer.Option:
    return typer.Option(help=help_text, rich_help_panel=panel, **kwargs)


def _max_opt(kind: str) -> typer.Option:
    return _opt(f"Most {kind} worker pods the autoscaler may run (default: --{kind.lower()}-workers).",
                WORKERS, min=0, show_default=False)


@k8s_app.command(no_args_is_help=True, short_help="Print a RayJob manifest that runs simulate or a sweep.")
def render(
    ctx: typer.Context,
    image: Annotated[str, _opt("Image of the head and the CPU workers (and of the GPU workers unless "
                               "--gpu-image), built from k8s/Dockerfile.", JOB, show_default=False)],
    gpu_image: Annotated[str | None, _opt("Image of the GPU workers: k8s/Dockerfile's -gpu variant "
                                          "\\[default: --image].", JOB, show_default=False)] = None,
    head_cpus: Annotated[str, _opt("CPUs of the head pod (a Kubernetes quantity): the driver, the "
                                   "coordinator, the autoscaler's work.", HEAD_PANEL)] = "2",
    head_memory: Annotated[str, _opt("Memory of the head pod: its object store holds a copy of every "
                                     "round's new entries (K x the model's bytes).", HEAD_PANEL)] = "8Gi",
    object_store_memory: Annotated[str | None, _opt("The head's object store (a quantity) \\[default: Ray's, "
                                                    "30% of --head-memory].", HEAD_PANEL,
                                                    show_default=False)] = None,
    gpu_workers: Annotated[int, _opt("GPU worker pods present from the start.", WORKERS, min=0)] = 0,
    max_gpu_workers: Annotated[int | None, _max_opt("GPU")] = None,
    cpu_workers: Annotated[int, _opt("CPU worker pods present from the start.", WORKERS, min=0)] = 0,
    max_cpu_workers: Annotated[int | None, _max_opt("CPU")] = None,
    gpus_per_actor: Annotated[float, _opt("GPUs per executor, fractional (simulate's --gpus-per-actor).",
                                          WORKERS)] = 0.0,
    cpus_per_worker: Annotated[int, _opt("CPUs of each worker pod.", SHAPE, min=1)] = 4,
    memory_per_worker: Annotated[str, _opt("Memory of each worker pod (a Kubernetes quantity).",
                                           SHAPE)] = "16Gi",
    gpus_per_worker: Annotated[int, _opt("GPUs of each GPU worker pod.", SHAPE, min=1)] = 1,
    name: Annotated[str, _opt(f"RayJob name; the run directory is {RESULTS_MOUNT}/NAME.", JOB)] = "fedmr",
    results_pvc: Annotated[str, _opt(f"PersistentVolumeClaim mounted at {RESULTS_MOUNT} on the head "
                                     "(ReadWriteMany: see k8s/README.md).", JOB)] = "fedmr-results",
    results_uri: Annotated[str | None, _opt("Write the run to URI/NAME (s3://bucket/runs, gs://...) instead of the "
                                            "results volume; credentials through --env-secret.", JOB,
                                            show_default=False)] = None,
    data_volume: Annotated[str | None, _opt("PVC:MOUNT: mount that PersistentVolumeClaim read-only at MOUNT on the "
                                            "head, where the driver reads the data; --data-dir must lie under "
                                            "MOUNT (else give --data-dir a URI).", JOB, show_default=False)] = None,
    env_secret: Annotated[str | None, _opt("A Secret whose keys become the head's environment: AWS_ACCESS_KEY_ID, "
                                           "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, ... for URIs.", JOB,
                                           show_default=False)] = None,
    sweep: Annotated[Path | None, _opt("Render a sweep instead: a ConfigMap holding this sweep file, and a RayJob "
                                       f"running `fedmr-ray sweep` on it into {RESULTS_MOUNT}/NAME; each trial's "
                                       "executors as its [resources] say.", JOB, show_default=False)] = None,
    simulate_args: Annotated[list[str] | None, typer.Argument(
        help="Flags of `fedmr-ray simulate`, after --.", show_default=False)] = None,
) -> None:
    """Print a RayJob manifest (YAML) that runs `fedmr-ray simulate` with the flags after --, or,
    with --sweep FILE, a ConfigMap and a RayJob that run the sweep."""
    simulate_args = simulate_args or []
    _check_names(image, name, results_pvc, memory_per_worker)
    head = _head(image, head_cpus, head_memory, object_store_memory)
    data = _data_volume(data_volume)
    _require(env_secret is None or _DNS_1123.fullmatch(env_secret) is not None,
             f"--env-secret {env_secret!r}: must be a Kubernetes object name (lower-case letters, digits, '-' and '.')")
    if results_uri is not None:
        _check_uri(results_uri, "--results-uri")
    if gpu_image is not None:
        _check_image(gpu_image, "--gpu-image")
    gpu = WorkerGroup("gpu", gpu_workers, gpu_workers if max_gpu_workers is None else max_gpu_workers,
                      PodShape(str(cpus_per_worker), memory_per_worker, gpus_per_worker), gpu_image or image)
    cpu = WorkerGroup("cpu", cpu_workers, cpu_workers if max_cpu_workers is None else max_cpu_workers,
                      PodShape(str(cpus_per_worker), memory_per_worker), image)
    groups = [group for group in (gpu, cpu) if group.max_replicas > 0]
    output = f"{(results_uri or RESULTS_MOUNT).rstrip('/')}/{name}"
    mounts = [(_data_claim(data[0]), data[1])] if data else []
    results = None if results_uri else results_pvc
    if sweep is not None:
        given = ctx.get_parameter_source("gpus_per_actor").name == "COMMANDLINE"
        _require(not simulate_args and not given, f"--sweep {sweep}: the sweep file holds every setting; give no "
                 "flags after -- and no --gpus-per-actor (a trial's executors are its [resources])")
        _require(results_uri is None, f"--results-uri {results_uri}: a sweep writes to a folder: the results volume "
                                      "(ReadWriteMany), not a URI")
        planned = read_sweep(sweep, Path(output))
        for trial in planned.trials:
            check_data_reaches_pods(trial.config.data, data, f"{sweep}: trial {trial.name}: ")
        resources = planned.resources
        check_workers(RuntimeConfig(cpus_per_actor=resources.cpus_per_executor,
                                    gpus_per_actor=resources.gpus_per_executor), gpu, cpu)
        for trial in planned.trials:  # trials run side by side: the largest one's volume, at least
            if warn_object_volume(trial.config, head):
                break
        file = f"sweep{sweep.suffix.lower()}"
        volume = {"name": "sweep", "configMap": {"name": f"{name}-sweep"}}
        config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": f"{name}-sweep", "labels": {"app.kubernetes.io/name": "fedmr-ray"}},
                      "data": {file: sweep.read_text()}}
        entrypoint = shlex.join(["fedmr-ray", "sweep", f"{SWEEP_MOUNT}/{file}", "--output", output,
                                 "--resume-if-exists"])
        cluster = cluster_spec(head, groups, results, mounts=[(volume, SWEEP_MOUNT), *mounts], env_secret=env_secret)
        typer.echo(to_yaml(config_map) + "---\n" + to_yaml(rayjob(name, entrypoint, cluster)), nl=False)
        return
    config = check_simulate_flags(ctx, simulate_args, gpus_per_actor)
    check_data_reaches_pods(config.data, data)
    check_workers(config.runtime, gpu, cpu)
    warn_object_volume(config, head)

    job_args = [*simulate_args, "--gpus-per-actor", repr(gpus_per_actor), "--output", output, "--resume-if-exists"]
    if not config.checkpoint_every:
        job_args += ["--checkpoint-every", str(CHECKPOINT_EVERY)]
    cluster = cluster_spec(head, groups, results, mounts=mounts, env_secret=env_secret)
    typer.echo(to_yaml(rayjob(name, simulate_entrypoint(job_args), cluster)), nl=False)


def _data_claim(claim: str) -> dict[str, Any]:
    return {"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}


def _data_volume(spec: str | None) -> tuple[str, str] | None:
    """--data-volume PVC:MOUNT as (claim, mount path)."""
    if spec is None:
        return None
    claim, colon, mount = spec.partition(":")
    _require(bool(colon) and _DNS_1123.fullmatch(claim) is not None and mount.startswith("/") and mount != "/",
             f"--data-volume {spec!r}: must be PVC:MOUNT, a PersistentVolumeClaim's name and an absolute path in the "
             "pod, e.g. datasets:/data")
    taken = [path for path in (RESULTS_MOUNT, SWEEP_MOUNT)
             if PurePosixPath(mount).is_relative_to(path) or PurePosixPath(path).is_relative_to(mount)]
    if taken:
        raise ConfigError(f"--data-volume {spec!r}: {mount} overlaps {taken[0]}, where the job mounts another volume")
    return claim, mount


def _check_uri(uri: str, flag: str) -> None:
    scheme = uri.partition("://")[0].lower()
    _require(is_uri(uri) and scheme in SCHEMES, f"{flag} {uri}: accepted: {ACCEPTED.removeprefix('a local path or ')}")


def check_data_reaches_pods(data: DataConfig, volume: tuple[str, str] | None, where: str = "") -> None:
    """The driver, on the head, finds the dataset: a URI, or a folder under the dataset volume
    (nothing is in the image)."""
    if data.dataset == "synthetic" or is_uri(data.data_dir):
        return
    folder = data.data_dir or str(dataset_spec(data.dataset).data_dir(None))
    if volume is not None and PurePosixPath(folder).is_relative_to(volume[1]):
        return
    named = f"--data-dir {folder}" if data.data_dir else f"--dataset {data.dataset} (its data in {folder})"
    raise ConfigError(f"{where}{named}: no volume holds it in the pods; give --data-dir a URI (s3://bucket/"
                      f"{data.dataset}), or --data-volume PVC:MOUNT and a --data-dir under MOUNT")


def _head(image: str, cpus: str, memory: str, object_store: str | None) -> Head:
    for flag, value in (("--head-cpus", cpus), ("--head-memory", memory), ("--object-store-memory", object_store)):
        _require(value is None or _QUANTITY.fullmatch(value) is not None,
                 f"{flag} {value!r}: must be a Kubernetes quantity such as 2, 500m (CPUs) or 8Gi (memory)")
    store = quantity_bytes(object_store) if object_store is not None else None
    _require(store is None or store < quantity_bytes(memory),
             f"--object-store-memory {object_store}: must be less than --head-memory {memory}")
    return Head(image, PodShape(cpus, memory), store)


def warn_object_volume(config: SimulationConfig, head: Head) -> bool:
    """Warn (one line on stderr) where a round's new entries, K models' worth, which the
    coordinator copies to the head, would not fit in the head's object store; whether it warned."""
    spec = dataset_spec(config.data.dataset)
    model = ModelSpec(model_for(config.model, spec.name), spec.num_classes, spec.input_shape)
    model_bytes = sum(model_info(model).nbytes)
    volume = config.cohort_size * model_bytes
    if volume <= head.object_store():
        return False
    print(f"fedmr-ray: warning: a round's new models ({config.cohort_size} x {model_bytes / 2**20:.1f} MiB = "
          f"{volume / 2**30:.2f} GiB) exceed the head's object store ({head.object_store() / 2**30:.2f} GiB): "
          "raise --head-memory or --object-store-memory, or Ray will spill objects to disk", file=sys.stderr)
    return True
