"""Keeping ``optuna.db`` current while a study runs, so optuna-dashboard shows it live.

:class:`LiveOptunaStudy` is a Tune callback on the driver: it remembers each trial's
per-epoch study metric and rewrites the results folder's Optuna storage
(:func:`tune.optuna_storage.write_optuna_study`) at most every ``every_s`` seconds and
whenever a trial ends. Trials still training are RUNNING there. When the study stops,
:func:`tune.results.write_results` writes the file once more from Ray's own records,
which are authoritative (that version adds the best checkpoints).
"""

import time
from pathlib import Path

import pandas as pd
from ray import tune

from pvae.vae.train import STUDY_METRIC
from tune.optuna_storage import write_optuna_study
from tune.results import trial_outcome
from tune.searcher import TIME_ATTR


class LiveOptunaStudy(tune.Callback):
    """Rewrite ``out/optuna.db`` during the study.

    Parameters
    ----------
    out : Path
        Results folder.
    space : dict
        The study's search space (experiment file forms).
    attrs : dict
        Study user attributes; ``attrs["experiment"]`` names the Optuna study.
    budget : int
        Epochs of a full trial.
    every_s : float
        Least time between two rewrites while no trial ends.
    """

    def __init__(self, out: Path, space: dict, attrs: dict, budget: int, every_s: float = 30.0):
        self.out, self.space, self.attrs, self.budget = Path(out), space, attrs, budget
        self.every_s = every_s
        self._epochs: dict[str, dict[int, float]] = {}
        self._ended: dict[str, bool] = {}  # trial id -> ended by an error
        self._written = -float("inf")

    def setup(self, **info):
        self._written = -float("inf")  # a resumed study's callback: a new clock

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if TIME_ATTR in result:
            metric = result.get(STUDY_METRIC)
            self._epochs.setdefault(trial.trial_id, {})[int(result[TIME_ATTR])] = metric
        if time.monotonic() - self._written >= self.every_s:
            self._write(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended[trial.trial_id] = False  # Ray sets the trial's status after this call
        self._write(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended[trial.trial_id] = True
        self._write(trials)

    def _write(self, trials) -> None:
        started = [t for t in trials if t.trial_id in self._epochs]
        if not started:
            return
        history = pd.DataFrame(
            [
                {"trial_id": t.trial_id, TIME_ATTR: epoch, STUDY_METRIC: value}
                for t in started
                for epoch, value in sorted(self._epochs[t.trial_id].items())
            ]
        )
        rows = pd.DataFrame([self._row(t) for t in started])
        write_optuna_study(self.out, rows, history, self.space, self.attrs)
        self._written = time.monotonic()

    def _row(self, trial) -> dict:
        result = trial.last_result or {}
        failed = self._ended.get(trial.trial_id, trial.status == "ERROR")
        error = RuntimeError("trial failed") if failed else None
        finished = trial.trial_id in self._ended or trial.status in ("TERMINATED", "ERROR")
        status, reason = trial_outcome(result, error, finished, self.budget)
        return {
            "trial_id": trial.trial_id,
            "trial_dir": Path(trial.path).name,
            "status": status,
            "stop_reason": reason,
            "epochs": result.get(TIME_ATTR, 0),
            "dataset_size": result.get("dataset_size"),
            "hostname": result.get("hostname"),
            f"final_{STUDY_METRIC}": result.get(STUDY_METRIC),
            "best_checkpoint": None,  # known once the study has stopped
            **{name: trial.config[name] for name in self.space},
        }
