"""The study definition without a cluster: search space, smoke mode, resources, outcomes,
and the ASHA/Optuna trap (stopped trials must reach Optuna as pruned)."""

import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState
from ray import tune
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils import util as ray_tune_util

from pvae.cli import COMMANDS
from pvae.cli import study as study_cli
from pvae.core.errors import PvaeError
from pvae.vae.config import experiment_from_dict
from tune.results import trial_outcome
from tune.searcher import BudgetAwareOptunaSearch
from tune.study import _quiet_slow_step_warnings, cluster_capacity, trial_resources
from tune.study_spec import parse_study, search_space, smoke

EXPERIMENTS = sorted((Path(__file__).parents[1] / "experiments").glob("*.yaml"))
SPACE = {
    "train.dataset_size": {"choice": [32, 64]},
    "model.latent_dim": {"grid": [2, 4]},
    "train.beta": {"loguniform": [1.0e-3, 1.0]},
    "train.gamma": {"uniform": [0.5, 2.0]},
    "model.base_channels": {"randint": [4, 9]},
}


def study(**tune_section):
    config = experiment_from_dict({"train": {"epochs": 5}, "tune": tune_section})
    return parse_study(config, "x.yaml")


def test_space_becomes_ray_domains():
    config, spec = study(space=SPACE, search="random", samples=3)
    space = search_space(spec)
    assert isinstance(space["train.dataset_size"], tune.search.sample.Categorical)
    assert space["model.latent_dim"] == {"grid_search": [2, 4]}
    assert isinstance(space["train.beta"].get_sampler(), tune.search.sample.LogUniform)
    assert space["model.base_channels"].lower == 4 and space["model.base_channels"].upper == 9
    assert spec.total_trials == 6 and spec.budget == config.train.epochs == 5


def test_grid_search_enumerates_choices():
    _, spec = study(
        space={"train.beta": {"choice": [0.1, 1.0]}, "model.latent_dim": {"grid": [2, 4, 8]}},
        search="grid",
        samples=2,
    )
    assert spec.total_trials == 12
    assert search_space(spec)["train.beta"] == {"grid_search": [0.1, 1.0]}


def test_max_t_is_the_trial_budget():
    config, spec = study(space={"train.beta": {"choice": [1.0]}}, max_t=3, grace_period=2)
    assert spec.budget == config.train.epochs == 3


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"space": SPACE, "smaples": 3}, "unknown key 'smaples'"),
        ({}, "tune.space"),
        ({"space": {"model.width": {"choice": [1]}}}, "model.width: unknown parameter"),
        ({"space": {"train.epochs": {"choice": [3]}}}, "set tune.max_t"),
        ({"space": {"train.beta": {"normal": [0, 1]}}}, "give one form"),
        ({"space": {"train.beta": {"uniform": [1.0]}}}, "[low, high]"),
        ({"space": {"train.lr": {"loguniform": [0, 1]}}}, "low > 0"),
        ({"space": {"train.beta": {"choice": [1.0, -1.0]}}}, "value -1.0 rejected"),
        ({"space": {"train.beta": {"grid": [0.1, 1.0]}}}, "not optuna"),
        ({"space": {"train.beta": {"uniform": [0, 1]}}, "search": "grid"}, "grid search takes"),
        ({"space": SPACE, "search": "bohb"}, "search 'bohb'"),
        ({"space": SPACE, "search": "random", "grace_period": 9}, "grace_period"),
        ({"space": SPACE, "search": "random", "resources": {"gpu": 1.5}}, "resources"),
        ({"space": SPACE, "search": "random", "start_points": [{"train.beta": 0.1}]},
         "start points need tune.search optuna"),
        ({"space": {"train.beta": {"uniform": [0.1, 1]}}, "start_points": [{"train.gamma": 1}]},
         "train.gamma is not a searched parameter"),
        ({"space": {"train.beta": {"uniform": [0.1, 1]}}, "start_points": [{"train.beta": 2}]},
         "train.beta = 2 lies outside its uniform [0.1, 1]"),
        ({"space": {"train.dataset_size": {"choice": [32, 64]}},
          "start_points": [{"train.dataset_size": 48}]}, "outside its choice"),
    ],
)
def test_bad_study_sections_name_the_file_and_problem(section, message):
    with pytest.raises(PvaeError, match="^x.yaml: ") as info:
        study(**section)
    assert message in str(info.value)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_files_parse_and_shrink(path):
    from pvae.vae.config import load_experiment

    config, spec = parse_study(load_experiment(path), str(path))
    small, tiny = smoke(config, spec)
    assert small.train.epochs == tiny.budget == 2 and tiny.total_trials <= 4
    assert small.model.base_channels == 4 and "model.base_channels" not in tiny.space
    assert all(set(point) <= set(tiny.space) for point in tiny.start_points)
    assert all(form != "grid" for value in tiny.space.values() for form in value)
    search_space(tiny)  # valid Ray domains
    assert "pvae tune" in path.read_text().split("\nname:")[0]  # launch command in header


def test_gpu_requests_only_on_gpu_clusters():
    wanted = {"cpu": 4, "gpu": 0.25}
    assert trial_resources(wanted, [{"CPU": 2}]) == ({"cpu": 2}, "cpu")
    assert trial_resources(wanted, [{"CPU": 2}, {"CPU": 16, "GPU": 1}]) == (
        {"cpu": 4, "gpu": 0.25},
        "cuda",
    )
    assert trial_resources({"cpu": 1, "gpu": 2}, [{"CPU": 8, "GPU": 1}])[0]["gpu"] == 1
    assert cluster_capacity({"cpu": 1}, [{"CPU": 2}, {"CPU": 1}]) == 3
    assert cluster_capacity({"cpu": 1, "gpu": 0.25}, [{"CPU": 8, "GPU": 1}, {"CPU": 4}]) == 4


@pytest.mark.parametrize(
    ("metrics", "finished", "error", "status"),
    [
        ({"epoch": 4, "status": "ok", "val_objective": 1.0}, True, None, "completed"),
        ({"epoch": 2, "status": "ok", "val_objective": 1.0}, True, None, "stopped_early"),
        ({"epoch": 2, "status": "diverged", "val_objective": math.nan}, True, None, "diverged"),
        ({"epoch": 2, "status": "ok", "val_objective": 1.0}, False, None, "unfinished"),
        ({"epoch": 1, "status": "ok"}, True, RuntimeError("worker died\nmore"), "error"),
    ],
)
def test_trial_outcomes(metrics, finished, error, status):
    assert trial_outcome(metrics, error, finished, budget=4)[0] == status


def searcher(cls, **kwargs):
    space = {"train.beta": tune.loguniform(1e-3, 1.0)}
    search = cls(metric="val_objective", mode="min", seed=1, **kwargs)
    search.set_search_properties("val_objective", "min", space)
    return search


def run_trial(search, trial_id, values, status="ok"):
    search.suggest(trial_id)
    for epoch, value in enumerate(values[:-1], start=1):
        search.on_trial_result(
            trial_id, {"epoch": epoch, "val_objective": value, "training_iteration": epoch}
        )
    last = {
        "epoch": len(values),
        "val_objective": values[-1],
        "status": status,
        "done": True,
        "training_iteration": len(values),
    }
    search.on_trial_complete(trial_id, last)  # ASHA's stopping result skips on_trial_result


def states(search):
    return [(t.state, t.value, dict(t.intermediate_values)) for t in search._ot_study.trials]


def test_the_trap_plain_optuna_search_records_stopped_trials_as_complete():
    search = searcher(OptunaSearch)
    run_trial(search, "a", [2.0, 1.5])  # stopped by ASHA at epoch 2 of 4
    assert states(search)[0][0] == TrialState.COMPLETE


def test_stopped_and_diverged_trials_reach_optuna_as_pruned():
    search = searcher(BudgetAwareOptunaSearch, budget=4)
    run_trial(search, "full", [2.0, 1.5, 1.2, 1.0])
    run_trial(search, "stopped", [2.0, 1.7])
    run_trial(search, "diverged", [2.0, math.nan], status="diverged")
    search.suggest("failed")
    search.on_trial_complete("failed", None, error=True)
    full, stopped, diverged, failed = states(search)
    assert full[:2] == (TrialState.COMPLETE, 1.0)
    assert stopped == (TrialState.PRUNED, 1.7, {1: 2.0, 2: 1.7})
    assert diverged[0] == TrialState.PRUNED and math.isnan(diverged[2][2])
    assert failed[0] == TrialState.FAIL


def test_start_points_are_the_first_trials_optuna_runs():
    space = {"train.beta": {"loguniform": [1e-3, 1.0]}, "train.gamma": {"uniform": [0.5, 2.0]}}
    _, spec = study(space=space, start_points=[{"train.beta": 0.01, "train.gamma": 1.5}])
    from tune.searcher import make_search

    search = make_search(spec, "val_objective", 1)
    search.set_search_properties("val_objective", "min", search_space(spec))
    first, second = search.suggest("a"), search.suggest("b")
    assert first == {"train.beta": 0.01, "train.gamma": 1.5}
    assert second is None  # the limiter holds the next until the first completes
    search.on_trial_complete("a", {"val_objective": 1.0, "epoch": 5, "training_iteration": 5})
    assert search.suggest("b") != first  # then the search samples


def test_a_study_resumes_when_its_record_lacks_a_field_left_at_its_default():
    import copy

    from tune.study import same_experiment

    config, spec = study(space={"train.beta": {"loguniform": [1e-3, 1.0]}})
    current = {**config.to_dict(), "tune": spec.to_dict()}
    saved = copy.deepcopy(current)
    del saved["train"]["epoch_samples"], saved["tune"]["start_points"]  # fields added later
    assert same_experiment(saved, current)
    changed = copy.deepcopy(current)
    changed["train"]["epoch_samples"] = 64  # not the default: not the same study
    assert not same_experiment(saved, changed)
    changed = copy.deepcopy(current)
    changed["train"]["lr"] *= 2
    assert not same_experiment(current, changed)
    del changed["train"]["lr"]  # a field the current experiment lacks
    assert not same_experiment(current, changed)


def test_ray_slow_step_warnings_are_dropped_and_its_other_warnings_kept(caplog, monkeypatch):
    monkeypatch.setattr(ray_tune_util, "START_OF_TIME", ray_tune_util.START_OF_TIME - 120)
    logger = logging.getLogger("ray.tune.utils.util")
    monkeypatch.setattr(logger, "filters", list(logger.filters))  # undone after the test
    _quiet_slow_step_warnings()
    _quiet_slow_step_warnings()  # a second study in the same process adds no second filter
    assert len(logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger="ray.tune.utils.util"):
        with ray_tune_util.warn_if_slow("rewrite", threshold=1e-6):
            sum(range(10_000))
        logger.warning("Install psutil to monitor system performance.")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["Install psutil to monitor system performance."]


def test_the_cli_module_does_not_import_ray():
    code = (
        "import sys, pvae.cli.study; assert 'ray' not in sys.modules and 'tune' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pvae_tune_is_a_command(run_cli):
    assert study_cli in COMMANDS
    code, _, err = run_cli("tune", "--experiment", "missing.yaml", "--dataset", ".")
    assert code == 2 and err == "pvae: error: missing.yaml: no such experiment file\n"
