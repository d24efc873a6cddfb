"""The cluster recipes in clusters/ and the Dockerfile: they parse, carry the keys their
tools need, ask for GPUs, use the image the Dockerfile builds, and run sweeps that exist."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTERS = ROOT / "clusters"
DOCKERFILE = (ROOT / "Dockerfile").read_text()
VERSION = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)[1]


def _docs(name):
    return [d for d in yaml.safe_load_all((CLUSTERS / name).read_text()) if d is not None]


def _dockerfile_arg(name):
    m = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE, re.M)
    assert m, f"Dockerfile: ARG {name}= missing"
    return m.group(1)


def _base_image():
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.M)
    assert len(froms) == 1
    return froms[0]


def _image_name():
    """The Dockerfile's tag convention: <title>:<version> from its OCI labels."""
    title = re.search(r'org\.opencontainers\.image\.title="([^"]+)"', DOCKERFILE).group(1)
    version = re.search(r'org\.opencontainers\.image\.version="([^"]+)"', DOCKERFILE).group(1)
    return f"{title}:{version}"


# ---- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_uses_the_official_ray_gpu_image_of_our_ray():
    import ray

    assert _base_image() == f"rayproject/ray:{ray.__version__}-py311-gpu"


def test_dockerfile_installs_our_torch_and_the_package_like_the_readme():
    import torch

    assert _dockerfile_arg("TORCH_VERSION") == torch.__version__.split("+")[0]
    assert re.fullmatch(r"cu\d{3}", _dockerfile_arg("TORCH_CUDA"))
    assert 'pip install --no-cache-dir "torch==${TORCH_VERSION}"' in DOCKERFILE
    assert "download.pytorch.org/whl/${TORCH_CUDA}" in DOCKERFILE
    assert re.search(r"^RUN pip install --no-cache-dir -e \.$", DOCKERFILE, re.M)
    assert re.search(r"^WORKDIR /home/ray/equisweep$", DOCKERFILE, re.M)
    assert _image_name() == f"equisweep:{VERSION}"
    import equisweep

    assert equisweep.__version__ == VERSION
    for copied in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+?)\s+\S+$", DOCKERFILE, re.M):
        for src in copied.split():
            assert (ROOT / src).exists() or src == "README.md", src


def test_dockerfile_holds_no_secrets():
    lowered = DOCKERFILE.lower()
    for word in (
        "aws_secret",
        "aws_access_key",
        "password",
        "auth_token",
        "api_key",
        "ray_auth_token",
        "begin private key",
    ):
        assert word not in lowered, word


# ---- Ray cluster launcher ----------------------------------------------------------------------

LAUNCHERS = ["aws.yaml", "gcp.yaml"]


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_config_passes_rays_own_schema(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    (cfg,) = _docs(name)
    validate_config(prepare_config(cfg))
    assert cfg["provider"]["type"] == name.removesuffix(".yaml")
    assert cfg["cluster_name"] == "equisweep"


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_declares_gpu_workers_and_a_cpu_head(name):
    (cfg,) = _docs(name)
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    assert types[cfg["head_node_type"]]["resources"].get("GPU", 0) == 0
    gpu_types = [t for k, t in types.items() if t["resources"].get("GPU", 0) >= 1]
    assert gpu_types and all(t["max_workers"] > 0 for t in gpu_types)
    assert sum(t["max_workers"] for t in gpu_types) >= cfg["max_workers"]


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_runs_the_dockerfile_environment_with_token_auth(name):
    (cfg,) = _docs(name)
    assert cfg["docker"]["image"] == _base_image()
    torch_v, cuda = _dockerfile_arg("TORCH_VERSION"), _dockerfile_arg("TORCH_CUDA")
    setup = cfg["setup_commands"]
    assert any(f'"torch=={torch_v}"' in c and f"/whl/{cuda}" in c for c in setup)
    assert any(c.endswith("pip install --no-cache-dir -e /home/ray/equisweep") for c in setup)
    assert cfg["file_mounts"]["/home/ray/equisweep"] == "."
    assert cfg["file_mounts"]["/home/ray/.ray/auth_token"] == "~/.ray/auth_token"
    starts = cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if "ray start" in c)
    assert any("--dashboard-host=127.0.0.1" in c for c in cfg["head_start_ray_commands"])


# ---- KubeRay ------------------------------------------------------------------------------------


def _containers(cluster_spec):
    pods = [cluster_spec["headGroupSpec"]["template"]["spec"]]
    pods += [g["template"]["spec"] for g in cluster_spec["workerGroupSpecs"]]
    return pods, [c for p in pods for c in p["containers"]]


def _check_cluster_spec(spec, claims):
    import ray

    assert spec["rayVersion"] == ray.__version__
    assert spec["authOptions"]["mode"] == "token"
    pods, containers = _containers(spec)
    image = re.compile(rf"^(?:[\w.\-:]+/)*{re.escape(_image_name())}$")
    for c in containers:
        assert image.match(c["image"]), c["image"]
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["name"] == "ray-head"
    assert {p["containerPort"] for p in head["ports"]} >= {6379, 8265, 10001}
    gpus = [
        g
        for g in spec["workerGroupSpecs"]
        if int(
            g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0)
        )
        >= 1
    ]
    assert gpus and all(g["maxReplicas"] >= g["minReplicas"] >= 0 for g in gpus)
    for pod in pods:
        for vol in pod.get("volumes", []):
            if "persistentVolumeClaim" in vol:
                assert vol["persistentVolumeClaim"]["claimName"] in claims
    return head


def _claims(docs):
    return {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}


def test_kuberay_raycluster():
    docs = _docs("kuberay-raycluster.yaml")
    (rc,) = [d for d in docs if d["kind"] == "RayCluster"]
    assert rc["apiVersion"] == "ray.io/v1"
    _check_cluster_spec(rc["spec"], _claims(docs))


def test_kuberay_rayjob_runs_an_existing_sweep_from_the_image():
    from equisweep.spec import load_spec

    docs = _docs("kuberay-rayjob.yaml")
    (job,) = [d for d in docs if d["kind"] == "RayJob"]
    assert job["apiVersion"] == "ray.io/v1"
    head = _check_cluster_spec(job["spec"]["rayClusterSpec"], _claims(docs))
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["equisweep", "run"]
    workdir = re.search(r"^WORKDIR (\S+)$", DOCKERFILE, re.M).group(1)
    sweep = Path(argv[2])
    assert sweep.is_absolute() and sweep.is_relative_to(workdir)
    local = ROOT / sweep.relative_to(workdir)
    assert local.parent.name == "sweeps" and local.exists()
    assert load_spec(local).resources["gpu"] > 0
    # The store it writes lives on a volume the head mounts.
    store = argv[argv.index("--store") + 1]
    mounts = [m["mountPath"] for m in head["volumeMounts"]]
    assert any(Path(store).is_relative_to(m) for m in mounts)
    from equisweep.cli import build_parser

    build_parser().parse_args(argv[1:])  # the flags exist


# ---- local recipe -------------------------------------------------------------------------------


def test_local_recipe_keeps_token_auth_and_a_local_dashboard():
    script = CLUSTERS / "local.sh"
    text = script.read_text()
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "export RAY_AUTH_MODE=token" in text
    assert "ray get-auth-token --generate >/dev/null" in text
    assert "--dashboard-host 127.0.0.1" in text
    help_text = subprocess.run(
        ["ray", "start", "--help"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    for flag in re.findall(r"(--[a-z][a-z-]+)", text.split("args=(")[1].split("ray start")[0]):
        assert flag in help_text, flag
    proc = subprocess.run(["bash", str(script), "bogus"], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage" in proc.stderr
