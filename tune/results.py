"""Study results as files: ``trials.parquet``, ``history.parquet`` and ``study.json``.

``trials.parquet``: one row per trial: ``trial_id``, ``status`` (``completed`` at the
full budget, ``stopped_early`` by ASHA, ``diverged``, ``error``, or ``unfinished``
in an interrupted study), ``stop_reason``, ``epochs``, ``wall_time_s`` (training time,
summed over restarts), ``node_id``, ``hostname`` (of the last epoch), the trial's
whole resolved configuration flattened (``model.latent_dim``, ``train.beta``, ...;
``train.dataset_size`` as configured, ``dataset_size`` as used after capping),
``final_<metric>`` (last epoch), ``best_epoch`` and ``best_<metric>`` (the epoch with
the lowest study metric), ``best_checkpoint`` (the trainer checkpoint file, loadable
with :func:`pvae.vae.train.read_checkpoint`).

``history.parquet``: one row per trial and epoch with every reported metric,
``trial_id``, ``node_id``, ``hostname``, ``node_ip``, ``training_iteration`` and
``time_total_s``.

``optuna.db``: the same trials as an Optuna study (:mod:`tune.optuna_storage`), for
optuna-dashboard.

The Parquet files carry the study status in their Parquet metadata (key ``pvae``), and
``study.json`` says ``"status": "complete"`` only when every trial has finished: an
interrupted study is never written as if complete.
"""

import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from ray.tune import ExperimentAnalysis

from pvae.core.atomic import atomic_write_json, atomic_write_parquet
from pvae.vae.config import experiment_from_dict
from pvae.vae.train import STUDY_METRIC
from tune.optuna_storage import write_optuna_study
from tune.searcher import TIME_ATTR, reached_budget
from tune.trainable import CHECKPOINT_FILE

TRIALS_FILE = "trials.parquet"
HISTORY_FILE = "history.parquet"
STUDY_FILE = "study.json"
STATUSES = ("completed", "stopped_early", "diverged", "error", "unfinished")
_RAY_BOOKKEEPING = {
    "checkpoint_dir_name",
    "should_checkpoint",
    "done",
    "date",
    "timestamp",
    "pid",
    "time_this_iter_s",
    "time_since_restore",
    "iterations_since_restore",
}


def trial_outcome(metrics: dict, error, finished: bool, budget: int) -> tuple[str, str]:
    """Status and stop reason of a trial from its last result.

    Parameters
    ----------
    metrics : dict
        The trial's last reported result.
    error : Exception or None
        The trial's error after its retries were spent.
    finished : bool
        Whether Ray ended the trial (TERMINATED or ERROR), rather than an interruption.
    budget : int
        Epochs of a trial that is never stopped.
    """
    epoch = metrics.get(TIME_ATTR, 0)
    if error is not None:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return "error", f"{type(error).__name__}: {first_line}"[:300]
    if not finished:
        return "unfinished", "study interrupted"
    if metrics.get("status") == "diverged":
        return "diverged", f"non-finite loss at epoch {epoch}"
    if reached_budget(metrics, budget):
        return "completed", f"budget of {budget} epochs"
    return "stopped_early", f"asha: below the rung cutoff at epoch {epoch}"


def history_column(name: str) -> bool:
    """Whether a (flattened) key of a reported result is a column of ``history.parquet``."""
    return not name.startswith("config/") and name not in _RAY_BOOKKEEPING


def history_frame(results) -> pd.DataFrame:
    """Per-epoch metrics of every trial (one row per trial and epoch)."""
    frames = []
    for result in results:
        frame = result.metrics_dataframe
        if frame is None or frame.empty or TIME_ATTR not in frame:
            continue
        frames.append(frame[[c for c in frame.columns if history_column(c)]])
    if not frames:
        return pd.DataFrame(columns=["trial_id", TIME_ATTR])
    history = pd.concat(frames, ignore_index=True)
    history = history.drop_duplicates(["trial_id", TIME_ATTR], keep="last")
    return history[["trial_id", *history.columns.drop("trial_id")]].reset_index(drop=True)


def trials_frame(results, trials: dict, base: dict, budget: int, history) -> pd.DataFrame:
    """One row per trial (see the module docstring for the columns).

    Parameters
    ----------
    results : ResultGrid or list of ray.tune.Result
    trials : dict
        Ray's ``Trial`` of each result, by trial folder name (for status, id, config).
    base : dict
        The study's base experiment (:meth:`ExperimentConfig.to_dict`).
    budget : int
        Epochs of a trial never stopped early.
    history : pd.DataFrame
        :func:`history_frame` of the same results.
    """
    rows = []
    for result in results:
        metrics = result.metrics or {}
        trial = trials[Path(result.path).name]
        finished = trial.status in ("TERMINATED", "ERROR")
        status, reason = trial_outcome(metrics, result.error, finished, budget)
        resolved = experiment_from_dict(base).with_overrides(trial.config).to_dict()
        row = {
            "trial_id": trial.trial_id,
            "trial_dir": Path(result.path).name,
            "status": status,
            "stop_reason": reason,
            "epochs": metrics.get(TIME_ATTR, 0),
            "dataset_size": metrics.get("dataset_size"),
            "wall_time_s": metrics.get("time_total_s"),
            "node_id": metrics.get("node_id"),
            "hostname": metrics.get("hostname"),
            **_flat_config(resolved),
            **{f"final_{k}": v for k, v in metrics.items() if _is_metric(k)},
            **_best(history[history["trial_id"] == trial.trial_id]),
            "best_checkpoint": _best_checkpoint(result),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def _flat_config(resolved: dict) -> dict:
    return {
        f"{section}.{key}": list(value) if isinstance(value, tuple) else value
        for section in ("model", "train")
        for key, value in resolved[section].items()
    }


def _is_metric(key: str) -> bool:
    return key.startswith(("val_", "train_"))


def _best(history: pd.DataFrame) -> dict:
    if STUDY_METRIC not in history:
        return {"best_epoch": None}
    ok = history[history[STUDY_METRIC].notna()]
    if ok.empty:
        return {"best_epoch": None}
    best = ok.loc[ok[STUDY_METRIC].idxmin()]
    values = {f"best_{k}": best[k] for k in ok.columns if k.startswith("val_")}
    return {"best_epoch": int(best[TIME_ATTR]), **values}


def _best_checkpoint(result) -> str | None:
    """The trainer checkpoint file of the trial's best reported epoch (full URI off-node)."""
    scored = [
        (metrics[STUDY_METRIC], checkpoint)
        for checkpoint, metrics in result.best_checkpoints or []
        if math.isfinite(metrics.get(STUDY_METRIC, math.nan))
    ]
    if not scored:
        return None
    checkpoint = min(scored, key=lambda pair: pair[0])[1]
    scheme = checkpoint.filesystem.type_name
    path = f"{checkpoint.path}/{CHECKPOINT_FILE}"
    return path if scheme == "local" else f"{scheme}://{path}"


def summarize(trials: pd.DataFrame) -> dict:
    """Counts by status, compute spent, and the best trial among full-budget trials.

    The best trial is chosen among ``completed`` trials only: a trial ASHA stopped at
    epoch 2 is not comparable with one trained to the end.
    """
    counts = trials["status"].value_counts() if len(trials) else pd.Series(dtype=int)
    summary = {
        "trials": len(trials),
        **{status: int(counts.get(status, 0)) for status in STATUSES},
        "trial_epochs": int(trials["epochs"].sum()) if len(trials) else 0,
        "best_trial": None,
    }
    done = trials[(trials["status"] == "completed")] if len(trials) else trials
    column = f"best_{STUDY_METRIC}"
    if len(done) and column in done and done[column].notna().any():
        best = done.loc[done[column].idxmin()]
        summary["best_trial"] = {
            "trial_id": best["trial_id"],
            "best_epoch": int(best["best_epoch"]),
            STUDY_METRIC: float(best[column]),
            "best_checkpoint": best["best_checkpoint"],
        }
    return summary


def write_results(out: Path, results, base: dict, budget: int, record: dict, status: str) -> dict:
    """Write the Parquet files, then ``study.json`` (last, so it never claims too much).

    Parameters
    ----------
    out : Path
        Results folder.
    results : ResultGrid
    base : dict
        The study's base experiment.
    budget : int
        Epochs of a full trial.
    record : dict
        Provenance for ``study.json`` (see :func:`tune.study.study_record`).
    status : str
        ``complete`` or ``interrupted``.

    Returns
    -------
    dict
        The ``study.json`` content.
    """
    analysis = ExperimentAnalysis(results.experiment_path, storage_filesystem=results.filesystem)
    by_folder = {Path(trial.path).name: trial for trial in analysis.trials}
    history = history_frame(results)
    trials = trials_frame(results, by_folder, base, budget, history)
    meta = {
        "status": status,
        "experiment": record["experiment"]["name"],
        "dataset_fingerprint": record["dataset"]["fingerprint"],
    }
    atomic_write_parquet(trials, out / TRIALS_FILE, meta)
    atomic_write_parquet(history, out / HISTORY_FILE, meta)
    optuna = write_optuna_study(
        out, trials, history, record["search_space"], {**meta, "metric": STUDY_METRIC}
    )
    study = {
        **record,
        "status": status,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "summary": summarize(trials),
        "files": {"trials": TRIALS_FILE, "history": HISTORY_FILE, "optuna": optuna["file"]},
        "optuna": optuna,
    }
    atomic_write_json(out / STUDY_FILE, study)
    return study
