"""A study as an Optuna study in its results folder: ``optuna.db`` (SQLite), for optuna-dashboard.

Written with the Parquet files, from the same trial records, every time they are
written (end of a study, an interrupted study, each ``--resume``): the file is rebuilt
whole under a temporary name and renamed into place, so it never holds a trial twice,
never misses one that ``trials.parquet`` has, and never disagrees with it. ::

    optuna-dashboard sqlite:////abs/path/runs/NAME/optuna.db

One Optuna trial per Ray trial, in Ray's order:

- ``params``: the searched parameters (``train.beta``, ...) with their distributions;
- ``intermediate_values``: the study metric (``val_objective``) of every epoch (step = epoch);
- ``state``: COMPLETE at the full budget (value: the last epoch's metric), PRUNED when ASHA
  stopped it or it diverged (as :class:`tune.searcher.BudgetAwareOptunaSearch` told the
  sampler), FAIL after an error, RUNNING while an interrupted study waits for ``--resume``;
- ``user_attrs``: ``ray_trial_id``, ``checkpoint`` (the best checkpoint file),
  ``dataset_size`` (as trained, after capping to the training split), ``trial_dir``,
  ``status``, ``stop_reason``, ``epochs``, ``hostname``.

Random and grid studies get the file too: the dashboard reads any study.
"""

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from pvae.core.atomic import atomic_file
from pvae.vae.train import STUDY_METRIC
from tune.searcher import TIME_ATTR

OPTUNA_FILE = "optuna.db"
STATES = {
    "completed": TrialState.COMPLETE,
    "stopped_early": TrialState.PRUNED,
    "diverged": TrialState.PRUNED,
    "error": TrialState.FAIL,
    "unfinished": TrialState.RUNNING,
}
USER_ATTRS = ("trial_dir", "status", "stop_reason", "epochs", "dataset_size", "hostname")


def storage_url(out: str | Path) -> str:
    """The SQLAlchemy URL of a results folder's Optuna storage (absolute path)."""
    return f"sqlite:///{(Path(out) / OPTUNA_FILE).resolve()}"


def dashboard_command(out: str | Path) -> str:
    """The shell command that opens a results folder's study in optuna-dashboard."""
    return f"optuna-dashboard {storage_url(out)}"


def distributions(space: dict) -> dict:
    """Optuna distributions of a study's ``space`` (the experiment file's forms).

    Parameters
    ----------
    space : dict
        ``{"train.beta": {"loguniform": [1e-3, 1.0]}, ...}`` (:class:`tune.study_spec.StudySpec`).

    Returns
    -------
    dict
        ``{name: BaseDistribution}``: choice and grid are categorical (lists and other
        non-scalar choices as JSON text), randint excludes its upper bound as in Ray.
    """
    result = {}
    for name, spec in space.items():
        ((form, args),) = spec.items()
        if form in ("choice", "grid"):
            result[name] = CategoricalDistribution([_scalar(a) for a in args])
        elif form == "randint":
            result[name] = IntDistribution(int(args[0]), int(args[1]) - 1)
        else:
            result[name] = FloatDistribution(*map(float, args), log=form == "loguniform")
    return result


def _scalar(value):
    """A parameter value as Optuna stores it: None, bool, int, float or str."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):  # read back from Parquet
        return value.item()
    return json.dumps(np.asarray(value).tolist())


def _param(value, distribution):
    if isinstance(distribution, CategoricalDistribution):
        return _scalar(value)
    if isinstance(distribution, IntDistribution):
        return int(value)
    return float(value)


def optuna_trial(row: pd.Series, epochs: pd.DataFrame, space: dict) -> optuna.trial.FrozenTrial:
    """One Ray trial as an Optuna trial.

    Parameters
    ----------
    row : pd.Series
        The trial's row of ``trials.parquet``.
    epochs : pd.DataFrame
        The trial's rows of ``history.parquet``.
    space : dict
        :func:`distributions` of the study.
    """
    intermediate = {
        int(epoch): float(value)
        for epoch, value in zip(epochs[TIME_ATTR], epochs.get(STUDY_METRIC, []), strict=False)
        if value is not None and math.isfinite(value)
    }
    state = STATES[row["status"]]
    value = row.get(f"final_{STUDY_METRIC}") if state == TrialState.COMPLETE else None
    attrs = {"ray_trial_id": row["trial_id"], "checkpoint": row.get("best_checkpoint")}
    attrs |= {key: row.get(key) for key in USER_ATTRS}
    return create_trial(
        state=state,
        value=None if value is None else float(value),
        params={name: _param(row[name], d) for name, d in space.items()},
        distributions=space,
        user_attrs={k: _plain(v) for k, v in attrs.items()},
        intermediate_values=intermediate,
    )


def _plain(value):
    """A user attribute as JSON-ready Python (numpy scalars and NaN made plain)."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_optuna_study(
    out: Path, trials: pd.DataFrame, history: pd.DataFrame, space: dict, attrs: dict
) -> dict:
    """(Re)write ``out/optuna.db`` from a study's trial records.

    Parameters
    ----------
    out : Path
        Results folder.
    trials, history : pd.DataFrame
        The rows of ``trials.parquet`` and ``history.parquet``.
    space : dict
        The study's search space (experiment file forms).
    attrs : dict
        Study user attributes; ``attrs["experiment"]`` names the Optuna study.

    Returns
    -------
    dict
        For ``study.json``: ``storage`` (URL), ``study_name``, ``file``, ``dashboard``
        (the command that opens it).
    """
    dists = distributions(space)
    frozen = [
        optuna_trial(row, history[history["trial_id"] == row["trial_id"]], dists)
        for _, row in trials.iterrows()
    ]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with atomic_file(out / OPTUNA_FILE) as temp:
            storage = optuna.storages.RDBStorage(f"sqlite:///{temp}")
            study = optuna.create_study(
                storage=storage, study_name=attrs["experiment"], direction="minimize"
            )
            for key, value in attrs.items():
                study.set_user_attr(key, value)
            study.add_trials(frozen)
            storage.engine.dispose()
    finally:
        optuna.logging.set_verbosity(verbosity)
    return {
        "storage": storage_url(out),
        "study_name": attrs["experiment"],
        "file": OPTUNA_FILE,
        "dashboard": dashboard_command(out),
    }
