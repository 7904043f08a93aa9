"""Every trial's epochs in TensorBoard and MLflow, under the names of ``history.parquet``.

Both loggers write the numeric columns of ``history.parquet`` (``val_objective``,
``val_loss``, ``train_loss``, ``val_r2_log10_k_xx``, ``epoch``, ``training_iteration``,
``time_total_s``, ...; flags and text such as ``status`` or ``node_id`` are left out),
step = epoch, from the results Ray passes to its callbacks on the driver.

- :class:`EpochTBXLogger`, always: TensorBoard event files in each trial folder,
  ``<storage>/<name>/<trial dir>/events.out.tfevents.*``, with the trial's parameters
  in the HParams tab. It takes the place of Ray's default TensorBoard logger, which
  names scalars ``ray/tune/<metric>`` at step = training iteration. ::

      tensorboard --logdir runs/NAME/ray/NAME

- :class:`tune.mlflow_logger.EpochMLflowLogger`, with ``pvae tune --mlflow [URI]``
  (imported only then, as Ray's MLflow integration imports MLflow): one MLflow run per
  trial in the experiment named after the study, run name = trial name, tag
  ``ray_trial_id``, parameters = the trial's searched parameters.

Ray pickles its callbacks with the Tuner, so a resumed study (``Tuner.restore``) logs
with the same ones: a resumed trial writes a new event file beside its earlier one
and continues its MLflow run (found by its ``ray_trial_id`` tag), never a second run.
An epoch reported but not checkpointed before an interruption is trained and reported
again after it; TensorBoard then shows the later value only (see
:class:`EpochTBXLogger`), MLflow keeps both at that step (the later one, by
timestamp, is the one in ``history.parquet``).
"""

import numbers

from ray.tune.logger import TBXLoggerCallback
from ray.tune.utils import flatten_dict
from tensorboardX.proto.event_pb2 import Event, SessionLog

from pvae.core.tracking import ui_command
from tune.results import history_column
from tune.searcher import TIME_ATTR


def epoch_metrics(result: dict) -> dict[str, float]:
    """The numeric ``history.parquet`` columns of one reported result, as floats.

    Booleans (``is_best``) and text (``status``, ``hostname``) are left out; NaN and
    infinite values are kept, as in ``history.parquet``.
    """
    return {
        name: float(value)
        for name, value in flatten_dict(result, delimiter="/").items()
        if history_column(name) and isinstance(value, numbers.Real) and not isinstance(value, bool)
    }


class EpochTBXLogger(TBXLoggerCallback):
    """Ray's TensorBoard logger with the names of ``history.parquet`` and step = epoch.

    A trial that restarts from a checkpoint (resume, retry) may report again an epoch
    an earlier session had reported but not checkpointed. Each session of a trial
    therefore begins, and a step that does not advance is preceded, with a session
    START at its epoch, on which TensorBoard drops what was written from that epoch
    on: the curves keep the last value of each epoch, as ``history.parquet`` does.
    """

    def __init__(self):
        super().__init__()
        self._last_epoch = {}

    def log_trial_start(self, trial) -> None:
        """Open a new event file for the trial (a new session of it)."""
        self._last_epoch.pop(trial, None)
        super().log_trial_start(trial)

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        """Write one epoch's metrics as scalars of the trial's event file."""
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        writer, epoch = self._trial_writer[trial], int(result[TIME_ATTR])
        if epoch <= self._last_epoch.get(trial, epoch):  # a new session, or a step back
            start = SessionLog(status=SessionLog.START)
            writer.file_writer.add_event(Event(step=epoch, session_log=start))
        metrics = epoch_metrics(result)
        for name, value in metrics.items():
            writer.add_scalar(name, value, global_step=epoch)
        writer.flush()
        self._last_epoch[trial] = epoch
        self._trial_result[trial] = metrics  # the HParams summary at the trial's end


def tracking_callbacks(mlflow_uri: str | None, experiment: str) -> list:
    """The study's loggers: TensorBoard always, MLflow when a tracking URI is given."""
    callbacks = [EpochTBXLogger()]
    if mlflow_uri:
        from tune.mlflow_logger import EpochMLflowLogger

        callbacks.append(EpochMLflowLogger(mlflow_uri, experiment))
    return callbacks


def tracking_record(mlflow_uri: str | None, experiment: str) -> dict | None:
    """``study.json``'s ``mlflow``: tracking URI, experiment, how to look; None without."""
    if not mlflow_uri:
        return None
    return {"tracking_uri": mlflow_uri, "experiment": experiment, "ui": ui_command(mlflow_uri)}
