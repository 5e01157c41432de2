"""cluster.yaml and cluster-onprem.yaml, checked offline against Ray's own launcher schema and code,
and against what the README promises: no port open to the world, token auth on every node, GPU
workers that scale from zero, an MLflow server with proxied artifacts, shared storage."""
from __future__ import annotations

import copy
import re
import subprocess

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.aws.config import _configure_security_group
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.conftest import REPO

CONFIGS = ["cluster.yaml", "cluster-onprem.yaml"]


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def launcher_checked(config: dict) -> dict:
    """What `ray up` does first: fill in the provider's defaults, then validate against ray-schema.json."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def start_commands(config: dict) -> list[str]:
    return [command for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]
            if "ray start" in command]


@pytest.mark.parametrize("name", CONFIGS)
def test_config_passes_rays_launcher_schema(name):
    prepared = launcher_checked(load(name))
    assert prepared["cluster_name"].startswith("kdtune")


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("misspell", [
    lambda c: c.__setitem__("idle_timeout_minute", 5),          # a top-level key
    lambda c: c["auth"].__setitem__("ssh_usr", "ubuntu"),         # a key of a section
    lambda c: c.__setitem__("setup_command", c.pop("setup_commands")),
])
def test_a_misspelled_key_fails(name, misspell):
    config = load(name)
    misspell(config)
    with pytest.raises(jsonschema.ValidationError, match="Additional properties are not allowed"):
        launcher_checked(config)


def test_node_types_use_whole_resources_and_scale_gpu_workers_from_zero():
    config = load("cluster.yaml")
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        launcher_checked(broken)
    misspelt = copy.deepcopy(config)
    misspelt["available_node_types"]["gpu"]["min_worker"] = 0
    with pytest.raises(jsonschema.ValidationError):
        launcher_checked(misspelt)

    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}  # trials never land on the head
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    assert all(t["min_workers"] == 0 and t["max_workers"] >= 1 for t in workers.values())
    # One-GPU nodes for packed trials, eight-GPU nodes for --gpus-per-trial 8 (12 CPUs for each worker's decoders).
    assert workers["gpu"]["resources"] == {"CPU": 4, "GPU": 1}
    assert workers["gpu8"]["resources"] == {"CPU": 96, "GPU": 8}
    assert config["max_workers"] >= sum(t["max_workers"] for t in workers.values())
    assert config["idle_timeout_minutes"] > 0
    assert re.search(r"#\s*InstanceMarketOptions:[^\n]*\n\s*#\s*MarketType: spot", (REPO / "cluster.yaml").read_text())


def test_no_port_is_open_to_the_world():
    config = launcher_checked(load("cluster.yaml"))
    # Every node type names its security group, so Ray's AWS bootstrap keeps them and never creates its
    # default group (whose SSH rule admits 0.0.0.0/0). This is Ray's own code, run offline: had it wanted to
    # create a group it would have called AWS, and failed here without credentials.
    groups = {name: t["node_config"]["SecurityGroupIds"] for name, t in config["available_node_types"].items()}
    configured = _configure_security_group(copy.deepcopy(config))
    assert {name: t["node_config"]["SecurityGroupIds"] for name, t in configured["available_node_types"].items()} \
        == groups
    for name in CONFIGS:
        assert "0.0.0.0" not in yaml.safe_dump(load(name)), name  # in any value (the comments may say it)
        head = " ".join(load(name)["head_start_ray_commands"])
        assert "--dashboard-host=127.0.0.1" in head
        assert re.search(r"mlflow server --host 127\.0\.0\.1 .*--serve-artifacts", head), head


@pytest.mark.parametrize("name", CONFIGS)
def test_token_auth_reaches_every_node(name):
    config = load(name)
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    starts = start_commands(config)
    assert len(starts) == 2 and all("export RAY_AUTH_MODE=token;" in command for command in starts)


@pytest.mark.parametrize("name", CONFIGS)
def test_setup_installs_the_project_and_points_searches_at_shared_storage(name):
    config = load(name)
    setup = config["setup_commands"]
    assert config["file_mounts"]["~/kdtune"] == "."
    assert any('pip install -q -e "$HOME/kdtune[cluster]"' in command for command in setup)
    mount = next(command for command in setup if "mount -t nfs4" in command)
    assert "/mnt/kdtune" in mount
    environment = next(command for command in setup if "kdtune-env" in command)
    assert "export KDTUNE_STORAGE_PATH=/mnt/kdtune/results" in environment
    assert "export MLFLOW_TRACKING_URI=http://127.0.0.1:5000" in environment
    assert "sqlite:////mnt/kdtune/mlflow/mlflow.db" in " ".join(config["head_start_ray_commands"])
    for command in setup + config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        parsed = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        assert parsed.returncode == 0, (command, parsed.stderr)
