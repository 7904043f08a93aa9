"""The cluster launcher files pass Ray's own validation (what `ray up` runs first)."""

import copy
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

TUNE = Path(__file__).parents[1] / "tune"


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-onprem.yaml"])
def test_cluster_config_is_valid(name):
    config = yaml.safe_load((TUNE / name).read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    setup = " ".join(config["setup_commands"])
    assert "pip install" in setup and "-c " in setup and "constraints.txt -e" in setup


def test_aws_cluster_has_gpu_workers_docker_and_cloud_storage():
    text = (TUNE / "cluster.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["provider"]["type"] == "aws" and "gpu" in config["docker"]["image"]
    workers = [t for name, t in config["available_node_types"].items() if name != "head"]
    assert any(t["node_config"]["InstanceType"].startswith(("g", "p")) for t in workers)
    assert "--storage s3://" in text and "/home/ray/pvae" in config["file_mounts"]


def test_onprem_cluster_lists_nodes_and_shared_storage():
    text = (TUNE / "cluster-onprem.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["provider"]["type"] == "local" and config["provider"]["worker_ips"]
    assert "--storage /shared/" in text
