"""Every trial of a study as an MLflow run (``pvae tune --mlflow``; see :mod:`tune.tracking`).

A module of its own: Ray's MLflow integration imports MLflow, which only a study
with ``--mlflow`` should pay for (and need installed).
"""

import time

from ray.air.integrations.mlflow import MLflowLoggerCallback

from pvae.core.tracking import TRIAL_TAG, experiment_id, import_mlflow
from tune.searcher import TIME_ATTR
from tune.tracking import epoch_metrics


class EpochMLflowLogger(MLflowLoggerCallback):
    """Ray's MLflow logger: one run per trial, flat names, step = epoch, resumable.

    Parameters
    ----------
    tracking_uri : str
        From :func:`pvae.core.tracking.tracking_uri`.
    experiment : str
        MLflow experiment (the study's experiment name); created when missing.
    """

    def __init__(self, tracking_uri: str, experiment: str):
        import_mlflow()
        super().__init__(tracking_uri, experiment_name=experiment)
        self._client = None

    def setup(self, *args, **kwargs) -> None:
        """Connect, creating the experiment (artifacts beside a SQLite store) if needed."""
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(self.tracking_uri)
        experiment_id(self._client, self.experiment_name)
        super().setup(*args, **kwargs)

    def log_trial_start(self, trial) -> None:
        """Open the trial's run (its earlier one after a resume) and log its parameters."""
        if trial not in self._trial_runs:
            self._trial_runs[trial] = self._run_id(trial)
        super().log_trial_start(trial)

    def _run_id(self, trial) -> str:
        """The run a trial logged to before this driver started, reopened; else a new one."""
        earlier = self._client.search_runs(
            [self.mlflow_util.experiment_id],
            filter_string=f"tags.{TRIAL_TAG} = '{trial.trial_id}'",
            max_results=1,
        )
        if earlier:
            run_id = earlier[0].info.run_id
            self._client.update_run(run_id, status="RUNNING")
            return run_id
        tags = {TRIAL_TAG: trial.trial_id, "trial_name": str(trial)}
        run = self._client.create_run(
            self.mlflow_util.experiment_id, run_name=str(trial), tags=tags
        )
        return run.info.run_id

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        """Log one epoch's metrics in one batch, step = epoch."""
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(result[TIME_ATTR])
        metrics = [Metric(k, v, now, step) for k, v in epoch_metrics(result).items()]
        self._client.log_batch(self._trial_runs[trial], metrics=metrics)
