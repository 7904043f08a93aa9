"""The cluster entry point against a real two-node Ray, losing a node mid-study.

Ray's own multi-node test cluster (:class:`ray.cluster_utils.Cluster`) starts a head
and a second node as separate raylets with their own worker processes on this machine,
as ``ray start --head`` and ``ray start --address`` would. ``tune/tune_vae.py`` joins it
with ``--address``, as ``ray submit`` runs it on a head node. Once a trial has finished,
the second node is killed (its raylet and workers, hard): the study must still finish,
with every trial accounted for and the finished trials' results unchanged.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900


def finished_trials(storage: Path) -> dict[str, int]:
    """Trial folder name -> epochs reported, for trials whose last result says done."""
    found = {}
    for result in storage.glob("*/*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if lines and lines[-1].get("done"):
            found[result.parent.name] = lines[-1]["training_iteration"]
    return found


@pytest.mark.slow
def test_study_survives_losing_a_node(tmp_path):
    from ray.cluster_utils import Cluster

    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp = tempfile.mkdtemp(prefix="ray-mn-")  # short: Unix socket paths
    common = {"include_dashboard": False, "object_store_memory": 80 * 2**20}
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "temp_dir": temp, **common})  # fmt: skip
    second = cluster.add_node(num_cpus=1, **common)
    out, storage = tmp_path / "study", tmp_path / "storage"
    command = [
        sys.executable, ROOT / "tune" / "tune_vae.py", "--address", cluster.address,
        "--experiment", ROOT / "experiments" / "smoke.yaml", "--dataset", ROOT / "data" / "default",
        "--out", out, "--storage", storage,
    ]  # fmt: skip
    study = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not finished_trials(storage) and study.poll() is None:
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(2)
        before = finished_trials(storage)
        assert before and study.poll() is None, "the study ended before the node could be killed"
        cluster.remove_node(second, allow_graceful=False)  # SIGKILL: a node lost, not stopped
        _, stderr = study.communicate(timeout=TIMEOUT_S)
    finally:
        if study.poll() is None:
            study.kill()
        cluster.shutdown()  # only this cluster's processes
    assert study.returncode == 0, stderr[-3000:]
    trials = pd.read_parquet(out / "trials.parquet")
    statuses = set(trials["status"])
    assert len(trials) == 8 and statuses <= {"completed", "stopped_early"}, statuses
    assert pd.read_parquet(out / "history.parquet")["node_id"].nunique() == 2  # both nodes ran
    after = finished_trials(storage)
    for name, epochs in before.items():  # finished before the loss: kept as they were
        assert after[name] == epochs
    assert json.loads((out / "study.json").read_text())["status"] == "complete"
