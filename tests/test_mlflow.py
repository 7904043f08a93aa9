"""MLflow tracking: a study's trials as MLflow runs (continued, not doubled, by --resume),
and an exported bundle as a run with its files as artifacts."""

import signal
import sys

import numpy as np
import pytest
from test_tune_study import interrupt_driver, results

from pvae.core.errors import PvaeError
from pvae.core.tracking import INSTALL
from tune.study import prepare_study, run_study


def test_mlflow_option_without_mlflow_is_one_line(run_cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    code, out, err = run_cli("export", tmp_path, "--out", tmp_path / "bundle", "--mlflow")
    assert code == 2 and out == "" and err.strip().count("\n") == 0
    assert INSTALL in err


@pytest.mark.slow
def test_trials_and_the_export_are_mlflow_runs(tmp_path, labelled64, ray_cluster, run_cli):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    path, out, driver = interrupt_driver(
        tmp_path, labelled64, ray_cluster, signal.SIGINT, "--mlflow"
    )
    stdout, stderr = driver.communicate()
    assert driver.returncode == 130, stderr
    uri = f"sqlite:///{out.resolve()}/mlflow.db"
    assert f"mlflow ui --backend-store-uri {uri}" in stdout and "View run" not in stdout
    with pytest.raises(PvaeError, match="started with --mlflow"):
        run_study(prepare_study(path, labelled64, out), resume=True)
    record = run_study(prepare_study(path, labelled64, out, mlflow=True), resume=True)
    trials, history, saved = results(out)
    assert record["status"] == "complete" and len(trials) == 6
    assert saved["mlflow"]["tracking_uri"] == uri and saved["mlflow"]["experiment"] == "study"

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("study")
    assert experiment.artifact_location == (out / "mlartifacts").resolve().as_uri()
    runs = client.search_runs([experiment.experiment_id])
    by_trial = {run.data.tags["ray_trial_id"]: run for run in runs}
    assert len(runs) == len(by_trial) == 6 and set(by_trial) == set(trials["trial_id"])
    for trial_id, beta in zip(trials["trial_id"], trials["train.beta"], strict=True):
        run = by_trial[trial_id]
        assert run.info.status == "FINISHED" and run.info.run_name.endswith(trial_id)
        assert set(saved["search_space"]) <= set(run.data.params)
        assert float(run.data.params["train.beta"]) == pytest.approx(beta)
        rows = history[history["trial_id"] == trial_id]
        logged = client.get_metric_history(run.info.run_id, "val_objective")
        # an epoch reported again after the resume: the later value is history.parquet's
        last = {m.step: m.value for m in sorted(logged, key=lambda m: (m.step, m.timestamp))}
        assert list(last) == rows["epoch"].tolist()
        np.testing.assert_allclose(list(last.values()), rows["val_objective"])
        # the validation design and realism metrics (interrupt_driver's study measures
        # them) too
        for metric in ("val_design_success", "val_realism"):
            logged = client.get_metric_history(run.info.run_id, metric)
            last = {m.step: m.value for m in sorted(logged, key=lambda m: (m.step, m.timestamp))}
            np.testing.assert_allclose(list(last.values()), rows[metric])

    code, printed, err = run_cli("export", out, "--out", tmp_path / "model", "--mlflow")
    assert code == 0, err
    assert f"mlflow ui --backend-store-uri {uri}" in printed and "View run" not in printed
    (export,) = client.search_runs(
        [experiment.experiment_id], filter_string="attributes.run_name LIKE 'export-%'"
    )
    assert export.data.params["trial_id"] == export.data.tags["ray_trial_id"]
    assert {"best_val_objective", "best_val_design_success", "best_val_realism"} <= set(
        export.data.metrics
    )
    artifacts = {item.path for item in client.list_artifacts(export.info.run_id)}
    assert {"bundle.json", "README.md", "weights.safetensors"} <= artifacts
