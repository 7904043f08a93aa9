"""pvae and the test suite keep to their own Ray beside another one on the machine.

A cluster started with ``ray start --head`` records itself in
``/tmp/ray/ray_current_cluster``, and a bare ``ray.init()`` joins it: with
``num_cpus`` given that raises ValueError, and without, work lands on somebody else's
cluster (here one with no CPUs, where tasks would wait forever). pvae starts its own
local Ray instead, and stopping it ends only its own processes.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pvae.data.microstructures import synthesize

CURRENT = Path("/tmp/ray/ray_current_cluster")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def other_ray():
    """Somebody else's Ray: ``ray start --head`` with no CPUs, as the latest cluster.

    Yields its port; ended by process group at the end (never ``ray stop``), and the
    ``ray_current_cluster`` record put back as it was (a user's cluster stays the latest).
    """
    before = CURRENT.read_text() if CURRENT.exists() else None
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", f"--port={port}",
               "--num-cpus=0", "--include-dashboard=false", "--disable-usage-stats",
               "--block"]  # fmt: skip
    other = subprocess.Popen(command, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not (CURRENT.exists() and CURRENT.read_text().strip().endswith(f":{port}")):
            assert other.poll() is None and time.monotonic() < deadline, "ray start failed"
            time.sleep(0.5)
        yield other, port
    finally:
        os.killpg(other.pid, signal.SIGTERM)
        try:
            other.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(other.pid, signal.SIGKILL)  # what SIGTERM left of its group
        other.wait()
        if before is not None:
            CURRENT.write_text(before)
        elif CURRENT.exists() and CURRENT.read_text().strip().endswith(f":{port}"):
            CURRENT.unlink()


@pytest.mark.slow  # about 40 s on 2 cores: make test-slow
def test_pvae_starts_its_own_ray_and_leaves_another_running(other_ray, tmp_path):
    """``pvae data label`` (a local Ray of its own, stopped at the end) beside it."""
    other, port = other_ray
    root = synthesize("spheres", 2, 16, seed=4, out=tmp_path / "ds", workers=1, progress=False)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"
    command = [sys.executable, "-m", "pvae", "data", "label", str(root), "--tol", "1e-4",
               "--check-every", "50"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("labelled 2 samples by LBM")
    assert other.poll() is None  # still running: pvae's shutdown ended only its own Ray
    probe = (f"import ray; ray.init(address='127.0.0.1:{port}', log_to_driver=False); "
             "print(ray.cluster_resources().get('CPU', 0)); ray.shutdown()")  # fmt: skip
    alive = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert alive.returncode == 0 and alive.stdout.strip().endswith("0"), alive.stderr


def test_the_test_ray_is_private(other_ray, ray_cluster):
    """The suite's shared Ray (conftest) started beside the other one, not inside it."""
    _, port = other_ray
    context = ray_cluster.get_runtime_context()
    assert not context.gcs_address.endswith(f":{port}")
    assert ray_cluster.cluster_resources().get("CPU") == 2


@pytest.mark.slow  # 3 min on 2 cores beside a training run: make test-slow
def test_labelling_runs_started_together_all_succeed(tmp_path):
    """Three ``pvae data label`` runs launched at the same moment, each starting its own
    Ray: Ray picks a new cluster's ports before binding them, so unserialized starts can
    collide (ray-project/ray#53906); pvae serializes them with a lock."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"
    roots = [synthesize("spheres", 2, 16, seed=4 + i, out=tmp_path / f"ds{i}", workers=1,
                        progress=False) for i in range(3)]  # fmt: skip
    runs = [subprocess.Popen([sys.executable, "-m", "pvae", "data", "label", str(root), "--tol",
                              "1e-4", "--check-every", "50"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for root in roots]  # fmt: skip
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        assert out.startswith("labelled 2 samples by LBM"), out
