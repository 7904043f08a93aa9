"""The study's Optuna storage (``optuna.db``): read back with Optuna's own API, and opened
by optuna-dashboard (its command line, and its WSGI app) from the URL pvae prints."""

import json
import math
import socket
import subprocess
import sys
import time
import urllib.request
from io import BytesIO
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from tune.optuna_storage import STATES, dashboard_command, write_optuna_study

SPACE = {
    "train.beta": {"loguniform": [1e-3, 1.0]},
    "model.latent_dim": {"choice": [2, 4]},
    "model.base_channels": {"randint": [4, 9]},
    "model.regressor_hidden": {"choice": [[8], [16, 8]]},
}


def assert_optuna_study_matches(out: Path) -> optuna.Study:
    """``out/optuna.db`` holds exactly the trials of ``trials.parquet``, with their
    parameters, per-epoch metric, state and user attributes."""
    record = json.loads((out / "study.json").read_text())
    trials = pd.read_parquet(out / "trials.parquet")
    history = pd.read_parquet(out / "history.parquet")
    storage = record["optuna"]["storage"]
    assert record["optuna"]["dashboard"] == f"optuna-dashboard {storage}"
    assert optuna.get_all_study_names(storage) == [record["experiment"]["name"]]
    study = optuna.load_study(study_name=record["experiment"]["name"], storage=storage)
    ours = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert len(study.trials) == len(trials) == len(ours)  # none twice, none lost
    assert set(ours) == set(trials["trial_id"])
    assert study.user_attrs["status"] == record["status"]
    for _, row in trials.iterrows():
        trial = ours[row["trial_id"]]
        assert trial.state == STATES[row["status"]]
        epochs = history[history["trial_id"] == row["trial_id"]]
        expected = {
            int(e): v
            for e, v in zip(epochs["epoch"], epochs["val_objective"], strict=True)
            if math.isfinite(v)
        }
        assert trial.intermediate_values == pytest.approx(expected)
        if trial.state == TrialState.COMPLETE:
            assert trial.value == pytest.approx(row["final_val_objective"])
        for name in record["search_space"]:
            assert trial.params[name] == pytest.approx(row[name]), name
        assert trial.user_attrs["checkpoint"] == row["best_checkpoint"]
        assert trial.user_attrs["dataset_size"] == row["dataset_size"]
    return study


def _records(statuses):
    """Trial and history rows of a made-up study, one trial per status."""
    rows, epochs = [], []
    for i, status in enumerate(statuses):
        n = 3 if status == "completed" else 1 + i % 2
        trial_id = f"t{i:02d}"
        losses = [1.0 / (e + i) for e in range(1, n + 1)]
        if status == "diverged":
            losses[-1] = math.nan
        rows.append({"trial_id": trial_id, "status": status, "stop_reason": "x", "epochs": n,
                     "dataset_size": 16 * (i + 1), "hostname": "h", "trial_dir": f"d{i}",
                     "final_val_objective": losses[-1], "best_checkpoint": f"/c/{i}.pt",
                     "train.beta": 10.0 ** -(1 + i % 3),
                     "model.latent_dim": np.int64(2 + 2 * (i % 2)),
                     "model.base_channels": 4 + i,
                     "model.regressor_hidden": np.array([8])})  # fmt: skip
        epochs += [{"trial_id": trial_id, "epoch": e + 1, "val_objective": v}
                   for e, v in enumerate(losses)]  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(epochs)


def test_every_status_is_written_as_its_optuna_state_and_rewriting_never_duplicates(tmp_path):
    trials, history = _records(list(STATES))
    attrs = {"experiment": "made-up", "status": "interrupted"}
    for _ in range(2):  # a resumed study rewrites the file: still one trial per Ray trial
        written = write_optuna_study(tmp_path, trials, history, SPACE, attrs)
    study = optuna.load_study(study_name="made-up", storage=written["storage"])
    assert [t.state for t in study.trials] == list(STATES.values())
    assert [t.user_attrs["ray_trial_id"] for t in study.trials] == list(trials["trial_id"])
    complete = study.trials[0]
    assert complete.value == pytest.approx(1 / 3) and complete.intermediate_values == {
        1: 1.0,
        2: 0.5,
        3: pytest.approx(1 / 3),
    }
    diverged = study.trials[list(STATES).index("diverged")]
    assert diverged.value is None and all(map(math.isfinite, diverged.intermediate_values.values()))
    assert complete.params["model.regressor_hidden"] == "[8]"  # list choices as JSON text
    assert complete.params["model.latent_dim"] == 2 and complete.params["model.base_channels"] == 4
    assert study.user_attrs == attrs
    assert list(tmp_path.iterdir()) == [tmp_path / "optuna.db"]  # no temporary left


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_optuna_dashboard_opens_the_printed_storage(tmp_path):
    trials, history = _records(["completed", "stopped_early"])
    write_optuna_study(tmp_path, trials, history, SPACE, {"experiment": "made-up"})
    command = dashboard_command(tmp_path).split()
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / command[0]), *command[1:], "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as reply:
                    studies = json.loads(reply.read())["study_summaries"]
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert [s["study_name"] for s in studies] == ["made-up"]


def dashboard_trials(storage: str) -> list[dict]:
    """The trials optuna-dashboard's own app serves for the only study in ``storage``."""
    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage)

    def get(path):
        environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": BytesIO()}
        setup_testing_defaults(environ)
        status = []
        body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
        assert status[0].startswith("200"), (path, status, body[:200])
        return json.loads(body)

    (study,) = get("/api/studies")["study_summaries"]
    return get(f"/api/studies/{study['study_id']}")["trials"]
