"""Reading study results (``trials.parquet``, ``history.parquet``, ``study.json``) without Ray."""

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from pvae.core.errors import PvaeError

METRIC = "val_objective"
FINALISTS = "finalists.parquet"  # analysis.finalists writes it


@dataclass
class Study:
    """One (or several combined) study results folders.

    Attributes
    ----------
    root : Path
        The results folder (the first one for combined studies).
    record : dict
        ``study.json``: experiment, search space, scheduler settings, versions,
        dataset fingerprint, hardware, status, summary.
    trials : pd.DataFrame
        One row per trial (schema in :mod:`tune.results`), plus ``study``.
    history : pd.DataFrame
        One row per trial and epoch, plus ``study``.
    finalists : pd.DataFrame or None
        The LBM checks of the best trials' designs (``finalists.parquet``,
        :mod:`analysis.finalists`), if made.
    """

    root: Path
    record: dict
    trials: pd.DataFrame
    history: pd.DataFrame
    finalists: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return self.record["experiment"]["name"]

    @property
    def dashboards(self) -> list[str]:
        """The optuna-dashboard command of each results folder (none for older studies)."""
        if "dashboards" in self.record:
            return self.record["dashboards"]
        return [self.record["optuna"]["dashboard"]] if "optuna" in self.record else []

    @property
    def space(self) -> dict:
        """Searched parameters and their forms: ``{"model.latent_dim": {"choice": [..]}}``."""
        return self.record.get("search_space", {})

    @property
    def train_settings(self) -> dict:
        """The experiment's ``train`` section as the study resolved it (``experiment.yaml``
        in the results folder; else the file as written)."""
        resolved = self.root / self.record.get("experiment", {}).get("resolved_file", "")
        text = resolved.read_text() if resolved.is_file() else ""
        text = text or self.record.get("experiment", {}).get("file_text", "")
        return (yaml.safe_load(text) or {}).get("train") or {}

    @property
    def params(self) -> list[str]:
        """Searched parameter columns present in ``trials``."""
        return [p for p in self.space if p in self.trials]


def load_study(path: str | Path, allow_incomplete: bool = False) -> Study:
    """Load a results folder written by ``pvae tune``.

    Parameters
    ----------
    path : str or Path
    allow_incomplete : bool
        Accept an interrupted study (its unfinished trials stay marked).

    Raises
    ------
    PvaeError
        Not a results folder, a foreign folder, or an unfinished study.
    """
    path = Path(path)
    study_file = path / "study.json"
    if not study_file.is_file():
        raise PvaeError(f"{path}: not a study results folder (no study.json)")
    try:
        record = json.loads(study_file.read_text())
    except json.JSONDecodeError:
        raise PvaeError(f"{study_file}: not valid JSON") from None
    if not isinstance(record, dict) or "summary" not in record or "experiment" not in record:
        raise PvaeError(f"{study_file}: not written by pvae tune (foreign study folder)")
    if record.get("status") != "complete" and not allow_incomplete:
        raise PvaeError(
            f"{path}: study is {record.get('status')!r}, not complete; continue it with "
            "`pvae tune --resume` (or analyse it anyway with --allow-incomplete)"
        )
    files = record.get("files", {})
    try:
        trials = pd.read_parquet(path / files.get("trials", "trials.parquet"))
        history = pd.read_parquet(path / files.get("history", "history.parquet"))
    except (OSError, ValueError) as exc:
        raise PvaeError(f"{path}: study files unreadable ({exc.__class__.__name__})") from None
    name = record["experiment"]["name"]
    finalists = path / FINALISTS
    checked = pd.read_parquet(finalists) if finalists.is_file() else None
    return Study(path, record, trials.assign(study=name), history.assign(study=name), checked)


def load_studies(paths, allow_incomplete: bool = False) -> Study:
    """Several results folders combined into one :class:`Study` (trials tagged by ``study``).

    The record is the first study's, with ``search_space`` merged over all.
    """
    studies = [load_study(p, allow_incomplete) for p in paths]
    if not studies:
        raise PvaeError("no study results folder given")
    record = dict(studies[0].record)
    record["search_space"] = {k: v for s in studies for k, v in s.space.items()}
    record["dashboards"] = [command for s in studies for command in s.dashboards]
    trials = pd.concat([s.trials for s in studies], ignore_index=True)
    history = pd.concat([s.history for s in studies], ignore_index=True)
    return Study(studies[0].root, record, trials, history, studies[0].finalists)
