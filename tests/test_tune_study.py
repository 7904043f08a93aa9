"""Studies on a real local Ray: ASHA + Optuna, results files, divergence, retries,
interruption and resume, a 2-node cluster, and every experiment file in smoke mode."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_optuna_storage import assert_optuna_study_matches

from pvae.core.atomic import read_parquet_metadata
from pvae.core.errors import PvaeError
from pvae.core.warnings import PvaeWarning
from pvae.data.microstructures import synthesize
from pvae.vae.train import read_checkpoint
from tune.lost_checkpoints import saved_latest_checkpoints
from tune.study import prepare_study, run_study
from tune.tune_vae import main as tune_vae

ROOT = Path(__file__).parents[1]
# smoke mode of every experiment file; the larger studies' smoke runs in make test-slow
EXPERIMENTS = [
    path if path.stem in ("smoke", "demo") else pytest.param(path, marks=pytest.mark.slow)
    for path in sorted((ROOT / "experiments").glob("*.yaml"))
]
TINY = {"latent_dim": 4, "base_channels": 4, "max_channels": 8, "regressor_hidden": [8]}


def experiment(tmp_path, tune, epochs=3, name="study", train=None):
    """Write a tiny experiment file with this ``tune`` section (and more ``train`` settings)."""
    data = {
        "name": name,
        "model": TINY,
        "train": {"epochs": epochs, "batch_size": 8, **(train or {})},
        "tune": {"resources": {"cpu": 1, "gpu": 0.25}, "keep_checkpoints": 1, **tune},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def results(out: Path):
    trials = pd.read_parquet(out / "trials.parquet")
    history = pd.read_parquet(out / "history.parquet")
    return trials, history, json.loads((out / "study.json").read_text())


def assert_event_files_match(out: Path, trials: pd.DataFrame, history: pd.DataFrame) -> None:
    """Each trial's TensorBoard scalars are the numeric columns of ``history.parquet``,
    named alike, one value per epoch (step = epoch), equal to float32 precision."""
    for trial_id, trial_dir in zip(trials["trial_id"], trials["trial_dir"], strict=True):
        rows = history[history["trial_id"] == trial_id].dropna(axis=1, how="all")
        numeric = rows.select_dtypes("number")
        events = EventAccumulator(str(out / "ray" / out.name / trial_dir))
        events.Reload()
        assert set(events.Tags()["scalars"]) == set(numeric.columns)
        for name in numeric:
            scalars = events.Scalars(name)
            assert [s.step for s in scalars] == rows["epoch"].tolist()
            np.testing.assert_allclose([s.value for s in scalars], numeric[name], rtol=1e-6)


def test_asha_stops_trials_and_every_trial_is_written(tmp_path, labelled64):
    path = experiment(
        tmp_path,
        {
            "samples": 6,
            "max_concurrent": 1,
            "seed": 0,
            "startup_trials": 3,
            "grace_period": 1,
            "reduction_factor": 2,
            "space": {
                "train.dataset_size": {"choice": [16, 32]},
                "model.latent_dim": {"choice": [2, 4]},
                "train.lr": {"loguniform": [1.0e-3, 1.0e-2]},
            },
        },
    )
    study = prepare_study(path, labelled64, tmp_path / "out")
    record = run_study(study)
    trials, history, saved = results(study.out)
    assert record == saved and saved["status"] == "complete"
    assert len(trials) == 6 and trials["trial_id"].is_unique
    assert set(trials["status"]) == {"completed", "stopped_early"}
    stopped = trials[trials["status"] == "stopped_early"]
    assert (stopped["epochs"] < 3).all() and stopped["stop_reason"].str.startswith("asha").all()
    assert (trials.loc[trials["status"] == "completed", "epochs"] == 3).all()
    assert len(history) == trials["epochs"].sum() and set(history["trial_id"]) == set(
        trials["trial_id"]
    )
    assert {
        "model.latent_dim",
        "train.beta",
        "train.dataset_size",
        "best_val_objective",
        "final_val_r2_mean",
        "wall_time_s",
        "best_checkpoint",
    } <= set(trials.columns)
    # Optuna saw the ASHA-stopped trials as pruned, not as finished
    state = pickle.loads(
        next((study.out / "ray" / "out").glob("searcher-state-*.pkl")).read_bytes()
    )
    pruned = [t for t in state["_ot_study"].trials if t.state.name == "PRUNED"]
    assert len(pruned) == len(stopped)
    # provenance and the best model
    assert {"ray", "optuna", "torch"} <= set(saved["versions"]) and "git_commit" in saved["code"]
    assert saved["dataset"]["fingerprint"].startswith("sha256:")
    assert saved["hardware"]["trial_resources"] == {"cpu": 1}
    assert "samples: 6" in saved["experiment"]["file_text"]
    assert read_parquet_metadata(study.out / "trials.parquet")["status"] == "complete"
    resolved = yaml.safe_load((study.out / "experiment.yaml").read_text())
    assert resolved["dataset"] == str(labelled64.resolve()) and resolved["tune"]["max_t"] == 3
    best = saved["summary"]["best_trial"]
    assert read_checkpoint(best["best_checkpoint"])["epoch"] == best["best_epoch"]
    # TensorBoard event files in each trial folder, named and stepped as history.parquet
    assert_event_files_match(study.out, trials, history)
    # the same trials in the results folder's Optuna storage, pruned ones as PRUNED
    stored = assert_optuna_study_matches(study.out)
    assert sum(t.state.name == "PRUNED" for t in stored.trials) == len(stopped)


def test_a_diverging_trial_is_recorded_and_the_study_finishes(tmp_path, labelled64):
    path = experiment(
        tmp_path,
        {
            "search": "grid",
            "scheduler": "fifo",
            "samples": 1,
            "space": {"train.lr": {"grid": [1.0e-3, 1.0e8]}},
        },
        epochs=2,
    )
    study = prepare_study(path, labelled64, tmp_path / "out")
    record = run_study(study)
    trials, history, _ = results(study.out)
    assert record["status"] == "complete"
    diverged = trials.set_index("train.lr").loc[1.0e8]
    assert diverged["status"] == "diverged" and diverged["epochs"] == 1
    assert "non-finite loss at epoch 1" in diverged["stop_reason"]
    assert trials.set_index("train.lr").loc[1.0e-3, "status"] == "completed"
    assert record["summary"]["best_trial"]["trial_id"] != diverged["trial_id"]
    assert history.loc[history["trial_id"] == diverged["trial_id"], "status"].tolist() == [
        "diverged"
    ]


@pytest.mark.slow  # about 20 s on 2 cores: make test-slow
def test_a_failed_trial_is_retried_from_its_checkpoint(tmp_path, labelled64):
    marker = str(tmp_path / "failed-once")

    def flaky(config, **kwargs):
        """The trial function, whose worker dies after epoch 2 the first time."""
        import ray.tune

        from tune.trainable import CHECKPOINT_FILE, train_trial

        report = ray.tune.report
        checkpoint = ray.tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                epoch = read_checkpoint(Path(folder) / CHECKPOINT_FILE)["epoch"]
            Path(marker + ".resumed").write_text(str(epoch))

        def report_then_die(metrics, checkpoint=None):
            report(metrics, checkpoint=checkpoint)
            if metrics["epoch"] == 2 and not os.path.exists(marker):
                Path(marker).touch()
                os._exit(1)

        ray.tune.report = report_then_die
        train_trial(config, **kwargs)

    path = experiment(
        tmp_path,
        {
            "scheduler": "fifo",
            "samples": 1,
            "max_failures": 2,
            "space": {"train.beta": {"choice": [0.5]}},
        },
    )
    study = prepare_study(path, labelled64, tmp_path / "out")
    record = run_study(study, function=flaky)
    trials, history, _ = results(study.out)
    assert record["status"] == "complete" and os.path.exists(marker)
    assert int(Path(marker + ".resumed").read_text()) >= 1  # not restarted from scratch
    assert trials["status"].tolist() == ["completed"] and history["epoch"].tolist() == [1, 2, 3]
    assert_event_files_match(study.out, trials, history)  # the retried trial's one curve


def second_trial_started(out: Path) -> bool:
    return len(list(out.glob("ray/out/*/params.json"))) >= 2


def interrupt_driver(tmp_path, labelled64, ray_cluster, sig, *options, ready=second_trial_started):
    """Start a 6-trial study (with more ``options``) as a driver process joining the test
    cluster, and send it ``sig`` once ``ready(out)``, by default once its first trial has
    finished, that is once the second of its one-at-a-time trials has started; returns
    (experiment, out, driver)."""
    path = experiment(
        tmp_path,
        {
            "scheduler": "fifo",
            "samples": 6,
            "max_concurrent": 1,
            "space": {"train.beta": {"loguniform": [0.01, 1.0]}},
        },
        # validation design success at epochs 1 and 3 and realism of recombinations every
        # epoch: the extra metrics resume too
        train={"design_every": 2, "design_targets": 1, "design_weight": 0.5,
               "generation_every": 1, "generation_samples": 4,
               "generation_source": "recombinations", "generation_weight": 0.25},
    )
    out = tmp_path / "out"
    address = ray_cluster.get_runtime_context().gcs_address
    argv = ["--experiment", path, "--dataset", labelled64, "--out", out, "--address", address]
    argv += options
    driver = subprocess.Popen(
        [sys.executable, ROOT / "tune" / "tune_vae.py", *map(str, argv)],
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not ready(out):
        assert driver.poll() is None and time.monotonic() < deadline, driver.stderr.read()
        time.sleep(0.2)
    driver.send_signal(sig)
    driver.wait(timeout=120)
    return path, out, driver


def test_interrupted_study_resumes_without_redoing_finished_trials(
    tmp_path, labelled64, ray_cluster
):
    path, out, driver = interrupt_driver(tmp_path, labelled64, ray_cluster, signal.SIGINT)
    stdout, stderr = driver.communicate()
    assert driver.returncode == 130, stderr  # Ctrl-C
    assert "--resume" in stderr and "trials.parquet" in stdout
    before, history_before, saved = results(out)
    assert saved["status"] == "interrupted"
    assert read_parquet_metadata(out / "trials.parquet")["status"] == "interrupted"
    finished = set(before.loc[before["status"] == "completed", "trial_id"])
    assert finished and saved["summary"]["completed"] < 6
    # Whether a trial is still training when Ctrl-C lands is timing: under load the
    # second trial's three short epochs may all be done first. What holds either way:
    # exactly the unfinished trials wait as RUNNING in the Optuna storage (the mapping
    # itself is tested row by row in test_optuna_storage).
    unfinished = set(before.loc[before["status"] == "unfinished", "trial_id"])
    waiting = assert_optuna_study_matches(out).trials
    running = {t.user_attrs["ray_trial_id"] for t in waiting if t.state.name == "RUNNING"}
    assert running == unfinished and finished | unfinished == set(before["trial_id"])

    with pytest.raises(PvaeError, match="holds a study already"):
        run_study(prepare_study(path, labelled64, out))
    record = run_study(prepare_study(path, labelled64, out), resume=True)
    trials, history, _ = results(out)
    assert record["status"] == "complete" and len(trials) == 6
    assert (trials["status"] == "completed").all()
    kept = history[history["trial_id"].isin(finished)].reset_index(drop=True)
    earlier = history_before[history_before["trial_id"].isin(finished)].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept[earlier.columns], earlier)  # not trained again
    assert_event_files_match(out, trials, history)  # resumed trials continue their curves
    assert len(assert_optuna_study_matches(out).trials) == 6  # resumed: none twice, none lost
    # the design and realism metrics reach the history, the trial table and TensorBoard
    # (above) of every trial, resumed or not; design success is carried between
    # measurements, and realism counts in the study metric
    for metric in ("val_design_success", "val_realism", "val_coverage"):
        assert history[metric].between(0, 1).all() and trials[f"best_{metric}"].notna().all()
    expected = (history["val_recon"] + history["val_reg"]
                + 0.5 * (1 - history["val_design_success"])
                + 0.25 * (1 - history["val_realism"]))  # fmt: skip
    np.testing.assert_allclose(history["val_objective"], expected, rtol=1e-9)


@pytest.mark.slow
def test_killed_driver_study_resumes(tmp_path, labelled64, ray_cluster):
    path, out, driver = interrupt_driver(tmp_path, labelled64, ray_cluster, signal.SIGKILL)
    assert driver.returncode == -signal.SIGKILL
    assert json.loads((out / "study.json").read_text())["status"] == "running"
    assert not (out / "trials.parquet").exists()
    live = optuna.load_study(study_name="study", storage=f"sqlite:///{out / 'optuna.db'}")
    assert "COMPLETE" in {t.state.name for t in live.trials}  # written while it ran
    record = run_study(prepare_study(path, labelled64, out), resume=True)
    trials, history, _ = results(out)
    assert record["status"] == "complete" and (trials["status"] == "completed").all()
    assert len(trials) == 6 and len(history) == 18
    assert len(assert_optuna_study_matches(out).trials) == 6


def unfinished_trial_checkpoints(out: Path) -> dict:
    """The latest checkpoints Ray's saved state names for unfinished trials ({} while the
    state file is missing or half written)."""
    try:
        return saved_latest_checkpoints(str(out / "ray" / "out"))
    except (ValueError, OSError):  # read while Ray rewrites it
        return {}


@pytest.mark.slow
def test_a_trial_whose_saved_checkpoint_was_deleted_restarts_on_resume(
    tmp_path, labelled64, ray_cluster
):
    """Ray deletes a checkpoint displaced by a newer one before it saves the study's
    state; a driver killed between the two leaves a state naming a deleted checkpoint.
    Made certain here: killed once the state names an unfinished trial's checkpoint, which
    is then deleted. The resumed study restarts that trial and completes, consistently."""
    path, out, driver = interrupt_driver(
        tmp_path, labelled64, ray_cluster, signal.SIGKILL, ready=unfinished_trial_checkpoints
    )
    assert driver.returncode == -signal.SIGKILL
    named = unfinished_trial_checkpoints(out)
    assert named
    for filesystem, checkpoint in named.values():
        filesystem.delete_dir(checkpoint)
    with pytest.warns(PvaeWarning, match="restarts from its first epoch"):
        record = run_study(prepare_study(path, labelled64, out), resume=True)
    trials, history, _ = results(out)
    assert record["status"] == "complete" and (trials["status"] == "completed").all()
    assert len(trials) == 6 and len(history) == 18  # one row per trial and epoch
    assert set(named) <= set(trials["trial_id"])
    assert len(assert_optuna_study_matches(out).trials) == 6


TWO_NODES = """
import sys
import ray
from ray.cluster_utils import Cluster
from tune.tune_vae import main

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                  "object_store_memory": 80 * 2**20, "include_dashboard": False})
cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
cluster.wait_for_nodes()
try:
    code = main(sys.argv[1:] + ["--address", cluster.address])
finally:
    ray.shutdown()  # the study joined this cluster, so it left the connection open
    cluster.shutdown()
sys.exit(code)
"""


@pytest.mark.slow  # about 30-40 s on 2 cores: make test-slow
def test_trials_run_on_both_nodes_of_a_two_node_cluster(tmp_path, labelled64):
    path = experiment(
        tmp_path,
        {
            "scheduler": "fifo",
            "samples": 4,
            "max_concurrent": 2,
            "space": {"train.beta": {"loguniform": [0.01, 1.0]}},
        },
        epochs=2,
    )
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            TWO_NODES,
            "--experiment",
            str(path),
            "--dataset",
            str(labelled64),
            "--out",
            str(out),
        ],
        env={**env, "RAY_AUTH_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "2-node cluster with local storage" in done.stderr
    trials, history, saved = results(out)
    assert saved["hardware"]["nodes"] == 2 and len(trials) == 4
    assert trials["node_id"].nunique() == 2 and trials["hostname"].notna().all()
    assert history["node_id"].nunique() == 2


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_experiment_runs_in_smoke_mode(path, tmp_path, labelled64, capsys):
    argv = ["--experiment", path, "--dataset", labelled64, "--out", tmp_path / "out", "--smoke"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PvaeWarning)
        assert tune_vae([str(a) for a in argv]) == 0
    sizes = yaml.safe_load(path.read_text())["tune"]["space"].get("train.dataset_size")
    if sizes and max(next(iter(sizes.values()))) > 44:  # capped to the training split
        assert any("exceed the training split" in str(w.message) for w in caught)
    printed = capsys.readouterr().out
    assert "complete: " in printed and str(tmp_path / "out" / "trials.parquet") in printed
    trials, history, saved = results(tmp_path / "out")
    assert saved["smoke"] and len(trials) == 4 and (trials["epochs"] <= 2).all()
    assert set(trials["status"]) <= {"completed", "stopped_early"}
    assert (trials["model.base_channels"] == 4).all()


def test_bad_input_is_one_line(tmp_path, labelled64, capsys):
    bad = experiment(tmp_path, {"space": {"model.widht": {"choice": [4]}}}, name="bad")
    assert tune_vae(["--experiment", str(bad), "--dataset", str(labelled64)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    good = experiment(tmp_path, {"space": {"train.beta": {"choice": [1.0]}}})
    with pytest.raises(PvaeError, match="no study to resume"):
        run_study(prepare_study(good, labelled64, tmp_path / "none"), resume=True)
    unlabelled = synthesize(
        "spheres", 4, 16, seed=1, out=tmp_path / "raw", workers=1, progress=False
    )
    with pytest.raises(PvaeError, match="no permeability labels"):
        prepare_study(good, unlabelled)
