"""The KubeRay deployment: every manifest in k8s/ and every `fedmr-ray k8s render` output passes the
KubeRay v1.7 CRD schemas with unknown fields refused, and has the properties the design asks for."""

from __future__ import annotations

import contextlib
import json
import dataclasses
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
import yaml
from jsonschema import Draft7Validator

from fedmr_ray.cli.k8s import Head, PodShape, WorkerGroup, check_simulate_flags, cluster_spec, simulate_entrypoint
from fedmr_ray.cli.main import app, main
from fedmr_ray.setup import check

K8S = Path(__file__).parents[1] / "k8s"
CRDS = Path(__file__).parents[2] / "shared" / "kuberay-crds"
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
IMAGE = "registry.example.com/fedmr-ray:0.1.0-gpu"

# the command whose output k8s/rayjob.yaml is
RAYJOB_ARGS = ["--image", IMAGE, "--name", "fedmr-1000", "--gpu-workers", "2", "--max-gpu-workers", "4",
               "--gpus-per-actor", "0.25", "--", "--clients", "1000", "--rounds", "200"]
RENDERED = {
    "fractional-gpus": ["--image", "img:1", "--gpu-workers", "2", "--gpus-per-actor", "0.25", "--",
                        "--clients", "1000"],
    "cpu-autoscaling": ["--image", "ghcr.io/o/fedmr-ray@sha256:" + "a" * 64, "--cpu-workers", "1",
                        "--max-cpu-workers", "8", "--", "--algorithm", "fedavg", "--rounds", "5", "--quiet"],
    "both-groups": ["--image", "img", "--name", "fedmr-both", "--results-pvc", "my.results",
                    "--gpu-workers", "1", "--max-gpu-workers", "3", "--cpu-workers", "2",
                    "--gpus-per-worker", "2",
                    "--gpus-per-actor", "1", "--memory-per-worker", "30Gi", "--cpus-per-worker", "8", "--",
                    "--granularity", "block:0.25", "--first-stage-bound", "10", "--cpus-per-actor=2"],
    "cpus-on-gpu-pods": ["--image", "img", "--gpu-workers", "1", "--", "--clients=50", "--seed", "3"],
}


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def render_yaml(args: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        app(["k8s", "render", *args], standalone_mode=False)
    return out.getvalue()


@cache
def rendered(case: str) -> dict:
    return yaml.safe_load(render_yaml(RENDERED[case]))


def static(name: str) -> list[dict]:
    return documents(K8S / name)


MANIFEST_FILES = sorted(path.name for path in K8S.glob("*.yaml"))
RAY_MANIFESTS = {f"k8s/{name}": doc for name in MANIFEST_FILES for doc in static(name)
                 if doc["apiVersion"] == "ray.io/v1"}
RAY_MANIFESTS.update({f"render:{case}": rendered(case) for case in RENDERED})


def cluster_of(manifest: dict) -> dict:
    return manifest["spec"]["rayClusterSpec"] if manifest["kind"] == "RayJob" else manifest["spec"]


def pod_specs(manifest: dict) -> list[dict]:
    if manifest["kind"] == "Pod":
        return [manifest["spec"]]
    if manifest["kind"] not in CRD_FILES:
        return []
    cluster = cluster_of(manifest)
    return [group["template"]["spec"] for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]]


# --- the schemas ---------------------------------------------------------------------------------

def strict(schema):
    """A copy of an OpenAPI schema that refuses unknown fields (as kubeconform -strict does): every
    object schema with `properties` and no rule of its own for other keys gets
    additionalProperties: false."""
    if isinstance(schema, list):
        return [strict(sub) for sub in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "anyOf", "allOf", "oneOf"):
            out[key] = strict(value)
        else:
            out[key] = value
    if "properties" in out and "additionalProperties" not in out and \
            "x-kubernetes-preserve-unknown-fields" not in out:
        out["additionalProperties"] = False
    return out


@cache
def crd_schema(kind: str) -> dict:
    path = CRDS / CRD_FILES[kind]
    if not path.exists():
        pytest.skip(f"no KubeRay CRD schemas at {CRDS}")
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return v1["schema"]["openAPIV3Schema"]


@cache
def validator(kind: str, strict_fields: bool = True) -> Draft7Validator:
    """RayCluster and RayJob: their CRDs. Pod and PersistentVolumeClaim (core kinds, no schema here):
    the pod template and the ephemeral volume claim template that the RayCluster CRD embeds."""
    if kind in CRD_FILES:
        schema = crd_schema(kind)
    else:
        pod_template = crd_schema("RayCluster")["properties"]["spec"]["properties"]["headGroupSpec"][
            "properties"]["template"]
        volume = pod_template["properties"]["spec"]["properties"]["volumes"]["items"]["properties"]
        schema = {"Pod": pod_template,
                  "PersistentVolumeClaim": volume["ephemeral"]["properties"]["volumeClaimTemplate"]}[kind]
    return Draft7Validator(strict(schema) if strict_fields else schema)


def schema_errors(doc: dict, strict_fields: bool = True) -> list[str]:
    api = {"RayCluster": "ray.io/v1", "RayJob": "ray.io/v1", "Pod": "v1", "PersistentVolumeClaim": "v1"}
    if api.get(doc.get("kind")) != doc.get("apiVersion"):
        return [f"no schema for {doc.get('apiVersion')}/{doc.get('kind')}"]
    # a core kind is checked against the embedded template, which has no apiVersion or kind
    checked = doc if doc["kind"] in CRD_FILES else {"metadata": doc["metadata"], "spec": doc["spec"]}
    errors = validator(doc["kind"], strict_fields).iter_errors(checked)
    return sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


# --- every manifest passes ----------------------------------------------------------------------

def test_k8s_holds_the_cluster_and_the_job():
    assert {"raycluster.yaml", "rayjob.yaml"} <= set(MANIFEST_FILES)
    assert [doc["kind"] for doc in static("raycluster.yaml")] == ["RayCluster"]
    assert [doc["kind"] for doc in static("rayjob.yaml")] == ["RayJob"]


@pytest.mark.parametrize("name", MANIFEST_FILES)
def test_manifest_in_k8s_passes_its_schema(name):
    for doc in static(name):
        assert schema_errors(doc) == [], f"{name}: {doc['kind']}"


@pytest.mark.parametrize("case", sorted(RENDERED))
def test_rendered_manifest_passes_the_rayjob_schema(case):
    assert rendered(case)["kind"] == "RayJob"
    assert schema_errors(rendered(case)) == []


def _misspell(doc: dict, path: list, old: str, new: str) -> dict:
    """A deep copy of doc with the key `old` at path renamed to `new`."""
    doc = yaml.safe_load(yaml.safe_dump(doc))
    node = doc
    for step in path:
        node = node[step]
    node[new] = node.pop(old)
    return doc


HEAD_CONTAINER = ["spec", "rayClusterSpec", "headGroupSpec", "template", "spec", "containers", 0]
MISSPELT = [
    (["spec"], "shutdownAfterJobFinishes", "shutdownAfterJobFinished"),
    (["spec", "rayClusterSpec", "autoscalerOptions"], "idleTimeoutSeconds", "idleTimeoutSecond"),
    (["spec", "rayClusterSpec", "workerGroupSpecs", 0], "replicas", "replica"),
    (HEAD_CONTAINER, "resources", "resource"),
    (HEAD_CONTAINER, "volumeMounts", "volumemounts"),
]


@pytest.mark.parametrize(("path", "old", "new"), MISSPELT, ids=[m[2] for m in MISSPELT])
def test_misspelt_field_is_refused(path, old, new):
    (job,) = static("rayjob.yaml")
    bad = _misspell(job, path, old, new)
    errors = schema_errors(bad)
    assert len(errors) == 1 and repr(new) in errors[0], errors
    # the schema as published drops the misspelt key silently, as the API server would
    assert schema_errors(bad, strict_fields=False) == []


def test_misspelt_field_in_a_core_manifest_is_refused():
    (reader,) = static("results-reader.yaml")
    errors = schema_errors(_misspell(reader, ["spec"], "volumes", "volume"))
    assert len(errors) == 1 and "'volume'" in errors[0], errors


@pytest.mark.parametrize(("path", "value", "expected"), [
    (["spec", "rayClusterSpec", "workerGroupSpecs", 0, "maxReplicas"], "4", "is not of type 'integer'"),
    ([*HEAD_CONTAINER, "resources", "limits", "memory"], "8GB", "does not match"),
    (["spec", "rayClusterSpec", "autoscalerOptions", "version"], "v3", "is not one of"),
])
def test_wrong_value_is_refused(path, value, expected):
    (job,) = static("rayjob.yaml")
    job = yaml.safe_load(yaml.safe_dump(job))
    node = job
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    errors = schema_errors(job)
    assert len(errors) == 1 and expected in errors[0], errors


# --- what the design asks of the cluster ---------------------------------------------------------

ALL_PODS = {**RAY_MANIFESTS, **{f"k8s/{name}": doc for name in MANIFEST_FILES for doc in static(name)
                                if doc["kind"] == "Pod"}}


@pytest.mark.parametrize("where", sorted(ALL_PODS))
def test_requests_equal_limits(where):
    manifest = ALL_PODS[where]
    resources = [c["resources"] for spec in pod_specs(manifest) for c in spec["containers"]]
    if manifest["kind"] in CRD_FILES:
        resources.append(cluster_of(manifest)["autoscalerOptions"]["resources"])
    assert resources
    for res in resources:
        assert {"cpu", "memory"} <= set(res["limits"]), res
        assert res["requests"] == res["limits"], res


@pytest.mark.parametrize("where", sorted(RAY_MANIFESTS))
def test_head_trains_nothing(where):
    head = cluster_of(RAY_MANIFESTS[where])["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert "nvidia.com/gpu" not in head["template"]["spec"]["containers"][0]["resources"]["limits"]


@pytest.mark.parametrize("where", sorted(RAY_MANIFESTS))
def test_autoscaling_v2_between_bounds(where):
    manifest = RAY_MANIFESTS[where]
    cluster = cluster_of(manifest)
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["version"] == "v2"
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    groups = cluster["workerGroupSpecs"]
    assert groups and all(g["minReplicas"] <= g["replicas"] <= g["maxReplicas"] for g in groups)
    assert any(g["maxReplicas"] > g["minReplicas"] for g in groups) or where.startswith("render:")
    # KubeRay refuses any other restart policy with autoscaler v2
    assert {spec["restartPolicy"] for spec in pod_specs(manifest)} == {"Never"}


def test_raycluster_has_a_cpu_and_a_gpu_group():
    (cluster,) = static("raycluster.yaml")
    limits = {g["groupName"]: g["template"]["spec"]["containers"][0]["resources"]["limits"]
              for g in cluster["spec"]["workerGroupSpecs"]}
    assert set(limits) == {"cpu", "gpu"}
    assert "nvidia.com/gpu" not in limits["cpu"] and int(limits["gpu"]["nvidia.com/gpu"]) >= 1


def _simulate_flag(entrypoint: str, flag: str, default: str | None = None) -> str:
    """The value of `flag` (given as `--flag V` or `--flag=V`) on the entrypoint's command line."""
    words = shlex.split(entrypoint)
    for i, word in enumerate(words):
        if word == flag:
            return words[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    assert default is not None, f"{flag} not in {entrypoint}"
    return default


@pytest.mark.parametrize("where", sorted(w for w, m in RAY_MANIFESTS.items() if m["kind"] == "RayJob"))
def test_job_shuts_its_cluster_down_and_writes_to_the_results_volume(where):
    job = RAY_MANIFESTS[where]["spec"]
    assert job["shutdownAfterJobFinishes"] is True and job["ttlSecondsAfterFinished"] > 0
    # retried (a pod preempted, a node lost), the job runs the same command, which goes on from
    # the run's own checkpoint
    assert job["backoffLimit"] >= 1
    words = shlex.split(job["entrypoint"])
    assert "--resume-if-exists" in words and int(_simulate_flag(job["entrypoint"], "--checkpoint-every")) >= 1
    head = job["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    (mount,) = head["containers"][0]["volumeMounts"]
    (volume,) = [v for v in head["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"]["claimName"]
    output = _simulate_flag(job["entrypoint"], "--output")
    assert output == f"{mount['mountPath']}/{RAY_MANIFESTS[where]['metadata']['name']}"


@pytest.mark.parametrize("where", sorted(w for w, m in RAY_MANIFESTS.items() if m["kind"] == "RayJob"))
def test_executors_fit_in_a_worker(where):
    job = RAY_MANIFESTS[where]["spec"]
    gpus_per_actor = float(_simulate_flag(job["entrypoint"], "--gpus-per-actor"))
    cpus_per_actor = float(_simulate_flag(job["entrypoint"], "--cpus-per-actor", "1"))
    groups = job["rayClusterSpec"]["workerGroupSpecs"]
    limits = [g["template"]["spec"]["containers"][0]["resources"]["limits"]
              for g in groups if g["minReplicas"]]
    # pods present from the start that hold at least one executor
    holding = [lim for lim in limits if float(lim["cpu"]) >= cpus_per_actor
               and float(lim.get("nvidia.com/gpu", 0)) >= gpus_per_actor]
    assert holding, (cpus_per_actor, gpus_per_actor, limits)


def test_static_rayjob_is_the_render_of_its_command():
    (job,) = static("rayjob.yaml")
    assert job == yaml.safe_load(render_yaml(RAYJOB_ARGS))
    assert 0 < float(_simulate_flag(job["spec"]["entrypoint"], "--gpus-per-actor")) < 1
    assert _simulate_flag(job["spec"]["entrypoint"], "--clients") == "1000"


def test_static_raycluster_is_the_renderers_cluster():
    (cluster,) = static("raycluster.yaml")
    groups = [WorkerGroup("gpu", 1, 4, PodShape("4", "16Gi", 1)),
              WorkerGroup("cpu", 1, 8, PodShape("4", "16Gi"))]
    assert cluster["spec"] == cluster_spec(Head(IMAGE), groups, "fedmr-results")


def test_results_volume_is_the_one_the_clusters_mount():
    (pvc,) = static("results-pvc.yaml")
    (reader,) = static("results-reader.yaml")
    claims = {volume["persistentVolumeClaim"]["claimName"]
              for name in ("raycluster.yaml", "rayjob.yaml") for spec in pod_specs(static(name)[0])
              for volume in spec.get("volumes", [])}
    assert claims == {pvc["metadata"]["name"]}
    assert reader["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def test_image_has_the_ray_and_python_of_the_package():
    args = dict(re.findall(r"^ARG (\w+)=(\S*)$", (K8S / "Dockerfile").read_text(), re.MULTILINE))
    assert args["RAY_VERSION"] == version("ray") and args["TORCH_VERSION"] == version("torch")
    assert args["PYTHON_TAG"] == f"py{sys.version_info.major}{sys.version_info.minor}"
    assert "FROM rayproject/ray:${RAY_VERSION}-${PYTHON_TAG}${VARIANT}" in (K8S / "Dockerfile").read_text()
    for where, manifest in RAY_MANIFESTS.items():
        assert cluster_of(manifest)["rayVersion"] == version("ray"), where


# --- the entrypoint and the flags ----------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(RENDERED))
def test_rendered_entrypoint_gives_back_the_simulate_flags(case):
    args = RENDERED[case]
    render_flags, simulate_flags = args[:args.index("--")], args[args.index("--") + 1:]
    options = dict(zip(render_flags[::2], render_flags[1::2]))
    job = rendered(case)
    gpus_per_actor = repr(float(options.get("--gpus-per-actor", 0)))
    checkpoints = [] if "--checkpoint-every" in simulate_flags else ["--checkpoint-every", "10"]
    assert shlex.split(job["spec"]["entrypoint"]) == [
        "fedmr-ray", "simulate", *simulate_flags, "--gpus-per-actor", gpus_per_actor,
        "--output", f"/mnt/results/{options.get('--name', 'fedmr')}", "--resume-if-exists", *checkpoints]
    assert job["metadata"]["name"] == options.get("--name", "fedmr")


def test_entrypoint_quotes_what_the_shell_would_read():
    hostile = ["--x", "two words", "$(touch /tmp/pwned)", "it's", "a;b", "`c`", "", "--y=\"q\""]
    line = simulate_entrypoint(hostile)
    assert shlex.split(line) == ["fedmr-ray", "simulate", *hostile]
    assert "$(touch" not in line.replace("'$(touch /tmp/pwned)'", "")


def test_render_builds_the_config_simulate_builds(monkeypatch, capsys, tmp_path):
    """Every flag off its default: the config render validates is the one `simulate` would run."""
    flags = ["--clients", "123", "--fraction", "0.5", "--rounds", "7", "--eval-every", "3", "--seed", "9",
             "--algorithm", "fedmr", "--first-stage-bound", "2", "--granularity", "layer", "--diverse-init",
             "--local-epochs", "2", "--batch-size", "16", "--lr", "0.05", "--momentum", "0.9",
             "--weight-decay", "0.001", "--client-batch", "4", "--model", "mlp", "--synthetic-alpha", "0.5",
             "--synthetic-beta", "0.25", "--num-actors", "3", "--cpus-per-actor", "2"]
    seen = []
    monkeypatch.setattr("fedmr_ray.cli.progress.run_with_progress", lambda config, **_: seen.append(config))
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "simulate", *flags, "--gpus-per-actor", "0.5",
                                      "--output", str(tmp_path / "run")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0, capsys.readouterr().err
    group = typer.main.get_command(app)
    from_render = check_simulate_flags(group.context_class(group), flags, 0.5)
    assert dataclasses.replace(from_render, output=seen[0].output) == check(seen[0])


# --- bad input: one line on stderr, exit code 2, nothing printed ----------------------------------

BAD = [
    (["--gpu-workers", "-1"], "'--gpu-workers'"),
    (["--cpu-workers", "x"], "'--cpu-workers'"),
    (["--gpu-workers", "1", "--gpus-per-actor", "1.5"], "--gpus-per-actor 1.5: must be a fraction in [0, 1]"),
    (["--gpu-workers", "1", "--gpus-per-actor", "-0.25"], "--gpus-per-actor -0.25: must be >= 0"),
    (["--gpus-per-actor", "0.25"], "--gpus-per-actor 0.25: needs GPU workers"),
    (["--gpu-workers", "1", "--gpus-per-actor", "2"], "--gpus-per-actor 2: more than a GPU worker has"),
    ([], "--cpu-workers 0 --gpu-workers 0: the head trains nothing"),
    (["--gpu-workers", "2", "--max-gpu-workers", "1"], "--max-gpu-workers 1: must be >= --gpu-workers 2"),
    (["--cpu-workers", "1", "--memory-per-worker", "16GB"], "--memory-per-worker '16GB'"),
    (["--cpu-workers", "1", "--name", "Fedmr_1"], "--name 'Fedmr_1'"),
    (["--cpu-workers", "1", "--name", "f" * 48], "at most 47"),
    (["--cpu-workers", "1", "--", "--no-such-flag"], "No such option: --no-such-flag"),
    (["--cpu-workers", "1", "--", "--clients", "0"], "--clients 0: must be an integer >= 1"),
    (["--cpu-workers", "1", "--", "--clients", "many"], "'--clients'"),
    (["--cpu-workers", "1", "--", "--algorithm", "fedsgd"], "--algorithm 'fedsgd': accepted values are"),
    (["--cpu-workers", "1", "--", "--output", "/tmp/x"], "--output after --: not accepted"),
    (["--cpu-workers", "1", "--", "--gpus-per-actor", "1"], "--gpus-per-actor after --: not accepted"),
    (["--cpu-workers", "1", "--", "--address", "ray://h:10001"], "--address after --: not accepted"),
    (["--cpu-workers", "1", "--", "--cpus-per-actor", "8"], "--cpus-per-actor 8: more than a worker has"),
    (["--cpu-workers", "1", "--", "stray"], "stray"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) or "no-workers" for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(monkeypatch, capsys, args, message):
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "k8s", "render", "--image", "img", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    assert exit_info.value.code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedmr-ray: error: ") and message in lines[0], captured.err
    assert captured.out == ""


@pytest.mark.parametrize("image", ["", "my image"])
def test_empty_image_is_refused(monkeypatch, capsys, image):
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "k8s", "render", "--image", image, "--cpu-workers", "1"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == ""
    assert captured.err == f"fedmr-ray: error: --image {image!r}: must name a container image, " \
                           "e.g. registry.example.com/fedmr-ray:0.1.0-gpu\n"


def test_installed_command_renders_and_refuses_without_traceback():
    exe = shutil.which("fedmr-ray", path=os.path.dirname(sys.executable)) or shutil.which("fedmr-ray")
    if exe is None:
        pytest.skip("the fedmr-ray command is not installed")
    good = subprocess.run([exe, "k8s", "render", *RAYJOB_ARGS], capture_output=True, text=True, timeout=120)
    assert good.returncode == 0 and good.stderr == ""
    assert yaml.safe_load(good.stdout) == static("rayjob.yaml")[0]
    bad = subprocess.run([exe, "k8s", "render", "--image", "img", "--gpu-workers", "1",
                          "--gpus-per-actor", "3"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "fedmr-ray: error: --gpus-per-actor 3: more than a GPU worker has (--gpus-per-worker 1)"]


def render_cli(monkeypatch, capsys, args: list[str], gpus: tuple[str, ...] = ("--gpus-per-actor", "0.5")):
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "k8s", "render", "--image", "reg.example/fedmr:1",
                                      "--gpu-workers", "1", *gpus, *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_a_dataset_volume_is_mounted_read_only_on_the_head(tmp_path, monkeypatch, capsys):
    """The data need not be on this machine: the folder is on the volume, in the pods."""
    code, out, err = render_cli(monkeypatch, capsys, ["--data-volume", "datasets:/data", "--", "--dataset", "cifar10",
                                                      "--data-dir", "/data/cifar10", "--model", "cnn"])
    assert code == 0, err
    job = yaml.safe_load(out)
    assert schema_errors(job) == []
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True}} in head["volumes"]
    assert {"name": "data", "mountPath": "/data", "readOnly": True} in head["containers"][0]["volumeMounts"]
    assert _simulate_flag(job["spec"]["entrypoint"], "--data-dir") == "/data/cifar10"


def test_data_and_results_behind_uris_need_no_volume(monkeypatch, capsys):
    code, out, err = render_cli(monkeypatch, capsys, ["--name", "c10", "--results-uri", "s3://results/runs/",
                                                      "--env-secret", "s3-credentials", "--", "--dataset", "cifar10",
                                                      "--data-dir", "s3://datasets/cifar10", "--model", "cnn"])
    assert code == 0, err
    job = yaml.safe_load(out)
    assert schema_errors(job) == []
    assert _simulate_flag(job["spec"]["entrypoint"], "--output") == "s3://results/runs/c10"
    assert _simulate_flag(job["spec"]["entrypoint"], "--data-dir") == "s3://datasets/cifar10"
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert "volumes" not in head and head["containers"][0]["volumeMounts"] == []
    assert head["containers"][0]["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]


DATA_BAD = [
    (["--", "--dataset", "cifar10", "--data-dir", "/data/cifar10"],
     "--data-dir /data/cifar10: no volume holds it in the pods; give --data-dir a URI"),
    (["--data-volume", "datasets:/mnt/data", "--", "--dataset", "cifar10", "--data-dir", "/data/cifar10"],
     "--data-dir /data/cifar10: no volume holds it in the pods"),
    (["--", "--dataset", "fmnist"], "--dataset fmnist (its data in "),
    (["--data-volume", "datasets", "--", "--dataset", "cifar10"], "--data-volume 'datasets': must be PVC:MOUNT"),
    (["--data-volume", "datasets:data", "--", "--dataset", "cifar10"], "--data-volume 'datasets:data': must be PVC:MOUNT"),
    (["--data-volume", "Data_Sets:/data"], "--data-volume 'Data_Sets:/data': must be PVC:MOUNT"),
    (["--data-volume", "d:/mnt"], "--data-volume 'd:/mnt': /mnt overlaps /mnt/results"),
    (["--results-uri", "ftp://host/runs"], "--results-uri ftp://host/runs: accepted: a URI of s3://"),
    (["--results-uri", "/mnt/other"], "--results-uri /mnt/other: accepted: a URI of s3://"),
    (["--env-secret", "S3 keys"], "--env-secret 'S3 keys': must be a Kubernetes object name"),
]


@pytest.mark.parametrize(("args", "message"), DATA_BAD, ids=[" ".join(a) for a, _ in DATA_BAD])
def test_data_a_pod_cannot_read_and_bad_storage_options_are_one_line(monkeypatch, capsys, args, message):
    code, out, err = render_cli(monkeypatch, capsys, args)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("fedmr-ray: error: "), err
    assert message in err, err


def test_a_sweep_is_not_rendered_into_a_uri(tmp_path, monkeypatch, capsys):
    (tmp_path / "s.toml").write_text("[grid]\nseed = [0, 1]\n")
    code, out, err = render_cli(monkeypatch, capsys, ["--results-uri", "s3://r/x", "--sweep", str(tmp_path / "s.toml")],
                                gpus=())
    assert code == 2 and out == "" and "--results-uri s3://r/x: a sweep writes to a folder" in err


# --- a sweep -------------------------------------------------------------------------------------

SWEEP = """\
[base]
dataset = "cifar10"
data_dir = "/data/cifar10"
model = "cnn"
clients = 100
rounds = 1000

[grid]
algorithm = ["fedmr", "fedavg"]
alpha = [0.1, 0.5]
seed = [0, 1, 2]

[resources]
executors = 2
gpus_per_executor = 0.5
"""


def test_a_sweep_renders_as_a_config_map_and_a_rayjob_that_runs_it(tmp_path):
    (tmp_path / "paper.toml").write_text(SWEEP)
    text = render_yaml(["--image", IMAGE, "--name", "paper", "--gpu-workers", "1", "--max-gpu-workers", "6",
                        "--data-volume", "datasets:/data", "--sweep", str(tmp_path / "paper.toml")])
    config_map, job = yaml.safe_load_all(text)
    assert config_map["kind"] == "ConfigMap" and config_map["data"] == {"sweep.toml": SWEEP}
    assert schema_errors(job) == []
    assert shlex.split(job["spec"]["entrypoint"]) == ["fedmr-ray", "sweep", "/etc/fedmr-ray/sweep.toml",
                                                     "--output", "/mnt/results/paper", "--resume-if-exists"]
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]
    volumes = {v["name"]: v for v in head["template"]["spec"]["volumes"]}
    assert volumes["sweep"] == {"name": "sweep", "configMap": {"name": "paper-sweep"}}
    mounts = {m["name"]: m for m in head["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["sweep"] == {"name": "sweep", "mountPath": "/etc/fedmr-ray", "readOnly": True}
    assert mounts["data"] == {"name": "data", "mountPath": "/data", "readOnly": True}
    assert json.loads(json.loads(head["rayStartParams"]["resources"])) == {"fedmr_driver": 1000}


@pytest.mark.parametrize(("extra", "sweep", "message"), [
    (["--", "--clients", "5"], SWEEP, "--sweep {file}: the sweep file holds every setting"),
    (["--gpus-per-actor", "0.5"], SWEEP, "--sweep {file}: the sweep file holds every setting"),
    ([], SWEEP.replace("gpus_per_executor = 0.5", "gpus_per_executor = 2"),
     "--gpus-per-actor 2: more than a GPU worker has"),
    ([], SWEEP.replace('alpha = [0.1, 0.5]', 'alpha = [0.1, -1]'), "{file}: [grid] alpha = -1.0: must be > 0"),
])
def test_a_bad_sweep_render_is_one_line(tmp_path, monkeypatch, capsys, extra, sweep, message):
    file = tmp_path / "s.toml"
    file.write_text(sweep)
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "k8s", "render", "--image", "img", "--gpu-workers", "1",
                                      "--data-volume", "datasets:/data", "--sweep", str(file), *extra])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == ""
    assert captured.err.startswith("fedmr-ray: error: " + message.format(file=file)), captured.err
    assert captured.err.count("\n") == 1


def test_the_head_and_the_images_are_render_options(capsys):
    job = yaml.safe_load(render_yaml(["--image", "reg/fedmr:1", "--gpu-image", "reg/fedmr:1-gpu", "--gpu-workers", "1",
                                      "--cpu-workers", "1", "--head-cpus", "4", "--head-memory", "32Gi",
                                      "--object-store-memory", "12Gi", "--", "--clients", "100"]))
    assert schema_errors(job) == []
    cluster = job["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert head["template"]["spec"]["containers"][0]["image"] == "reg/fedmr:1"
    assert head["template"]["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "4", "memory": "32Gi"}
    assert head["rayStartParams"]["object-store-memory"] == str(12 * 2**30)
    images = {g["groupName"]: g["template"]["spec"]["containers"][0]["image"] for g in cluster["workerGroupSpecs"]}
    assert images == {"gpu": "reg/fedmr:1-gpu", "cpu": "reg/fedmr:1"}
    assert capsys.readouterr().err == ""  # 10 mlp models fit


def test_a_round_larger_than_the_heads_object_store_is_warned_of(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "k8s", "render", "--image", "img", "--gpu-workers", "1",
                                      "--gpus-per-actor", "0.5", "--", "--dataset", "cifar10", "--data-dir", "s3://data/c10",
                                      "--model", "vgg16", "--clients", "1000", "--fraction", "0.1"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    assert exit_info.value.code == 0 and captured.out.startswith("apiVersion: ray.io/v1")
    assert captured.err.startswith("fedmr-ray: warning: a round's new models (100 x 128.4 MiB = 12.54 GiB) exceed "
                                   "the head's object store (2.40 GiB)")


@pytest.mark.parametrize(("args", "message"), [
    (["--head-memory", "lots"], "--head-memory 'lots': must be a Kubernetes quantity"),
    (["--object-store-memory", "9Gi"], "--object-store-memory 9Gi: must be less than --head-memory 8Gi"),
    (["--gpu-image", "a b"], "--gpu-image 'a b': must name a container image"),
])
def test_bad_head_options_are_one_line(monkeypatch, capsys, args, message):
    monkeypatch.setattr(sys, "argv", ["fedmr-ray", "k8s", "render", "--image", "img", "--cpu-workers", "1", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == "" and captured.err.startswith("fedmr-ray: error: " + message)
