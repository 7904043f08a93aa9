"""LBM labelling of datasets as Ray tasks: results, journal, resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from pvae.data.microstructures import synthesize
from pvae.data.store import open_dataset
from pvae.data.store.labelling import JOURNAL, LabelJournal, settings_key
from pvae.data.store.manifest import K_COLUMNS
from pvae.physics.lbm import LBMSettings, permeability
from tune.labelling import label_dataset, task_resources

FAST = LBMSettings(tol=1e-4, check_every=50)


@pytest.fixture
def small_dataset(tmp_path):
    return synthesize("spheres", 6, 16, seed=5, out=tmp_path / "ds", workers=1, progress=False)


def test_task_resources_never_ask_for_missing_gpus():
    options, device = task_resources({"CPU": 8}, 4, "auto")
    assert device == "cpu" and options == {"num_cpus": 2}
    options, device = task_resources({"CPU": 16, "GPU": 1}, 4, "auto")
    assert device == "cuda" and options["num_gpus"] == pytest.approx(0.25)
    options, device = task_resources({"CPU": 16, "GPU": 2}, 4, "cpu")
    assert device == "cpu" and "num_gpus" not in options


def test_labels_equal_direct_solves(ray_cluster, small_dataset):
    before = open_dataset(small_dataset).fingerprint
    summary = label_dataset(small_dataset, FAST, workers=2, batch_size=4, progress=False)
    store = open_dataset(small_dataset)
    assert summary["labelled"] == 6 and summary["resumed"] == 0
    assert store.labelled().all() and set(store.manifest["label_source"]) == {"lbm"}
    assert store.fingerprint == summary["fingerprint"] != before
    assert not (small_dataset / JOURNAL).exists()
    for i in (0, 5):
        direct = permeability(store.image(i), FAST).k
        assert np.allclose(store.permeability(i), direct, rtol=1e-6, atol=1e-12)
    info = json.loads(store.manifest["label_info"].iloc[0])
    assert info["method"] == "lbm" and len(info["converged"]) == 3
    again = label_dataset(small_dataset, FAST, progress=False)  # nothing left to do
    assert again["labelled"] == 0 and again["already_labelled"] == 6


def test_resume_keeps_journaled_batches(ray_cluster, small_dataset):
    journal = LabelJournal(small_dataset, settings_key(FAST))
    store = open_dataset(small_dataset)
    sentinel = pd.DataFrame(
        [
            {"index": i, "sample_id": store.manifest["sample_id"].iloc[i]}
            | dict(zip(K_COLUMNS, (np.eye(3) * (i + 7)).ravel(), strict=True))
            | {"label_info": json.dumps({"converged": [True] * 3})}
            for i in (1, 3)
        ]
    )
    journal.add(sentinel)
    other = LabelJournal(small_dataset, settings_key(LBMSettings(tau=0.8)))
    other.add(sentinel.assign(index=[0, 2]))  # other settings: must not count
    summary = label_dataset(small_dataset, FAST, workers=1, batch_size=2, progress=False)
    store = open_dataset(small_dataset)
    assert summary["resumed"] == 2 and summary["labelled"] == 6
    assert np.allclose(store.permeability(1), np.eye(3) * 8)  # kept, not recomputed
    assert np.allclose(store.permeability(3), np.eye(3) * 10)
    assert store.permeability(0)[0, 0] < 1  # solved, the other run's entry ignored


@pytest.mark.slow  # about 30-40 s on 2 cores: make test-slow
def test_kill_then_resume_loses_nothing(ray_cluster, tmp_path):
    root = synthesize("foam", 8, 24, seed=1, out=tmp_path / "ds", workers=1, progress=False)
    command = [sys.executable, "-m", "pvae", "data", "label", str(root), "--workers", "1",
               "--batch-size", "1", "--tol", "1e-4", "--check-every", "50"]  # fmt: skip
    # the CLI joins the running cluster (RAY_ADDRESS), as on a real cluster's head node
    address = ray_cluster.get_runtime_context().gcs_address
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": address}
    proc = subprocess.Popen(command, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and len(list((root / JOURNAL).glob("part-*"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    parts = len(list((root / JOURNAL).glob("part-*")))
    assert 2 <= parts < 8, "the kill should land mid-run"
    assert not open_dataset(root).labelled().any()  # the manifest is untouched until the end
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"({parts} resumed" in done.stdout or f"({parts + 1} resumed" in done.stdout
    assert open_dataset(root).labelled().all()


@pytest.mark.slow  # about 25 s on 2 cores: make test-slow
def test_a_ray_that_pvae_starts_is_quiet(tmp_path):
    """No Ray notices on a terminal: token authentication stays on (Ray's default for a
    new local cluster), without its announcement."""
    root = synthesize("spheres", 2, 16, seed=2, out=tmp_path / "ds", workers=1, progress=False)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    command = [sys.executable, "-m", "pvae", "data", "label", str(root), "--tol", "1e-4",
               "--check-every", "50"]  # fmt: skip
    done = subprocess.run(command, env=env | {"HOME": str(tmp_path)}, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout.startswith("labelled 2 samples by LBM")


@pytest.mark.slow  # about 13 s on 2 cores: make test-slow
def test_unconverged_solves_warn_on_stderr_only(ray_cluster, small_dataset, run_cli):
    code, stdout, stderr = run_cli("data", "label", small_dataset, "--max-steps", "20",
                                   "--workers", "2")  # fmt: skip
    assert code == 0, stderr
    assert stdout.startswith("labelled 6 samples by LBM") and "warning" not in stdout
    assert "pvae: warning: 6 samples did not converge; raise --max-steps" in stderr
