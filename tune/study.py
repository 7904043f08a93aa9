"""Running a study: experiment file -> Ray Tune Tuner -> Parquet results, resumable.

::

    study = prepare_study("experiments/smoke.yaml", dataset="data/spheres16", smoke=True)
    record = run_study(study)            # connects to Ray, fits, writes the results
    record = run_study(study, resume=True)   # after Ctrl-C or a killed driver

Layout of ``study.out``: ``experiment.yaml`` (the resolved experiment), ``study.json``,
``trials.parquet``, ``history.parquet`` and, unless ``--storage`` names shared or
cloud storage, ``ray/<name>/``: Ray's experiment folder (trial checkpoints, searcher
state, TensorBoard event files), from which ``--resume`` continues; with ``--mlflow``
and no URI, ``mlflow.db`` (see :mod:`tune.tracking`).
"""

import dataclasses
import json
import logging
import os
import socket
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import ray
import yaml
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from pvae.core.atomic import atomic_write_bytes, atomic_write_json
from pvae.core.errors import PvaeError
from pvae.core.progress import progress_bar
from pvae.core.provenance import code_version, versions
from pvae.core.tracking import tracking_uri
from pvae.core.warnings import PvaeWarning
from pvae.data.datasets import resolve_dataset
from pvae.data.splits import make_splits
from pvae.data.store import open_dataset
from pvae.vae.config import ExperimentConfig, load_experiment
from pvae.vae.train import STUDY_METRIC
from tune.cluster_connect import ray_session
from tune.live_optuna import LiveOptunaStudy
from tune.lost_checkpoints import revive_lost_checkpoints
from tune.results import STUDY_FILE, TRIALS_FILE, write_results
from tune.searcher import TIME_ATTR, make_search
from tune.study_spec import StudySpec, parse_study, search_space, smoke
from tune.tracking import tracking_callbacks, tracking_record
from tune.trainable import train_trial

CONFIG_FILE = "experiment.yaml"


@dataclasses.dataclass(frozen=True)
class Study:
    """A study ready to run: resolved experiment, study spec, dataset and output places.

    Attributes
    ----------
    config : ExperimentConfig
        Base experiment (``dataset`` resolved, ``train.epochs`` = the budget).
    spec : StudySpec
    experiment_file : Path
    out : Path
        Results folder.
    storage : str
        Ray storage path (local folder, NFS path or ``s3://...``).
    smoke : bool
    mlflow : str or None
        MLflow tracking URI every trial is logged to; None: no MLflow.
    """

    config: ExperimentConfig
    spec: StudySpec
    experiment_file: Path
    out: Path
    storage: str
    smoke: bool
    mlflow: str | None = None

    @property
    def name(self) -> str:
        """Ray experiment name (the results folder's name)."""
        return self.out.name

    @property
    def experiment_path(self) -> str:
        """Ray's experiment folder (what ``Tuner.restore`` reads)."""
        return f"{self.storage.rstrip('/')}/{self.name}"

    def resolved(self) -> dict:
        """The resolved experiment as written to ``experiment.yaml``."""
        return {**self.config.to_dict(), "tune": self.spec.to_dict()}


def prepare_study(
    experiment: str | Path,
    dataset: str | Path | None = None,
    out: str | Path | None = None,
    smoke_mode: bool = False,
    storage: str | None = None,
    mlflow: bool | str | None = None,
) -> Study:
    """Read and validate an experiment file and its dataset.

    Parameters
    ----------
    experiment : str or Path
        Experiment YAML file.
    dataset : str or Path, optional
        Dataset directory (overrides the file's ``dataset``; neither: the embedded
        default dataset).
    out : str or Path, optional
        Results folder; default ``runs/<name>`` (``runs/<name>-smoke`` in smoke mode).
    smoke_mode : bool
        Shrink the study (:func:`tune.study_spec.smoke`).
    storage : str, optional
        Ray storage for trial checkpoints: shared (NFS) path or ``s3://bucket/prefix``;
        required for multi-node studies. Default ``<out>/ray``.
    mlflow : bool or str, optional
        Log every trial to MLflow: True for ``sqlite:///<out>/mlflow.db``, or a
        tracking URI (see :func:`pvae.core.tracking.tracking_uri`).
    """
    path = Path(experiment)
    config, spec = parse_study(load_experiment(path), str(path))
    if smoke_mode:
        config, spec = smoke(config, spec)
    store = open_dataset(resolve_dataset(dataset or config.dataset))
    missing = int((~store.labelled()).sum())
    if missing:
        raise PvaeError(
            f"{store.root}: {missing} of {len(store)} samples have no permeability "
            f"labels; run `pvae data label {store.root}` first"
        )
    config = dataclasses.replace(config, dataset=str(Path(store.root).resolve()))
    _warn_capped_sizes(config, spec, len(store))
    out = Path(out or Path("runs") / (config.name + ("-smoke" if smoke_mode else ""))).resolve()
    uri = tracking_uri(mlflow, out)
    return Study(config, spec, path, out, storage or str(out / "ray"), smoke_mode, uri)


def _warn_capped_sizes(config: ExperimentConfig, spec: StudySpec, count: int) -> None:
    """Warn once (here, not in every trial) about dataset sizes beyond the training split."""
    train = len(make_splits(count, config.train.split, config.train.split_seed)["train"])
    form = spec.space.get("train.dataset_size", {"choice": [config.train.dataset_size]})
    ((kind, values),) = form.items()
    sizes = values if kind in ("choice", "grid") else [values[1] - (kind == "randint")]
    capped = sorted(s for s in sizes if s is not None and s > train)
    if capped:
        warnings.warn(
            f"dataset_size {capped} exceed the training split ({train} samples of "
            f"{config.dataset}); those trials train on {train}",
            PvaeWarning,
            stacklevel=3,
        )


def trial_resources(wanted: dict, nodes: list[dict]) -> tuple[dict, str]:
    """Resources of one trial on this cluster, and the device it trains on.

    Parameters
    ----------
    wanted : dict
        ``{"cpu": 1, "gpu": 0.25}`` from the experiment file.
    nodes : list of dict
        Resources of each alive node (``ray.nodes()[i]["Resources"]``).

    Returns
    -------
    resources : dict
        For ``tune.with_resources``: GPUs only when the cluster has some (a CPU-only
        cluster never sees a GPU request, which would stay PENDING forever); CPUs
        capped at the largest node.
    device : str
        ``cuda`` or ``cpu``.
    """
    largest_cpu = max((n.get("CPU", 0) for n in nodes), default=1)
    largest_gpu = max((n.get("GPU", 0) for n in nodes), default=0)
    cpu = max(1, min(int(wanted.get("cpu", 1)), int(largest_cpu)))
    gpu = wanted.get("gpu", 0)
    if gpu and largest_gpu:
        return {"cpu": cpu, "gpu": min(gpu, largest_gpu)}, "cuda"
    return {"cpu": cpu}, "cpu"


def cluster_capacity(resources: dict, nodes: list[dict]) -> int:
    """How many trials with ``resources`` fit on the cluster at once."""
    fits = 0
    for node in nodes:
        per_node = [node.get(k.upper(), 0) // v for k, v in resources.items() if v]
        fits += int(min(per_node)) if per_node else 0
    return max(1, fits)


class _TrialBar(tune.Callback):
    """A progress bar of finished trials (Ray's own tables are switched off)."""

    def __init__(self, total: int, progress: bool | None):
        self.total, self.progress, self._bar = total, progress, None

    def setup(self, **info):
        self._bar = progress_bar(self.total, "trials", self.progress, unit="trial")

    def on_step_end(self, iteration, trials, **info):
        finished = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        if finished > self._bar.n:
            self._bar.update(finished - self._bar.n)

    def on_experiment_end(self, trials, **info):
        self._bar.close()

    def __getstate__(self):  # the Tuner pickles its callbacks; a bar does not pickle
        return {**self.__dict__, "_bar": None}


def _trainable(study: Study, resources: dict, device: str, function):
    """The trial function with its fixed arguments and resources attached."""
    bound = tune.with_parameters(
        function,
        experiment=study.config.to_dict(),
        dataset=study.config.dataset,
        device=device,
        threads=int(resources["cpu"]),
    )
    return tune.with_resources(bound, resources)


def build_tuner(
    study: Study,
    resources: dict,
    device: str,
    max_concurrent: int,
    progress: bool | None = None,
    function=train_trial,
) -> tune.Tuner:
    """A new Tuner for ``study``.

    Parameters
    ----------
    study : Study
    resources, device
        From :func:`trial_resources`.
    max_concurrent : int
        Trials at once.
    progress : bool, optional
        Progress bar of finished trials (default: only on a terminal).
    function : callable
        The trial function (default :func:`tune.trainable.train_trial`).
    """
    spec = study.spec
    if spec.scheduler == "asha":
        scheduler = ASHAScheduler(
            time_attr=TIME_ATTR,
            max_t=spec.budget,
            grace_period=spec.grace_period,
            reduction_factor=spec.reduction_factor,
        )
    else:
        scheduler = FIFOScheduler()
    return tune.Tuner(
        _trainable(study, resources, device, function),
        param_space=search_space(spec),
        tune_config=tune.TuneConfig(
            metric=STUDY_METRIC,
            mode="min",
            search_alg=make_search(spec, STUDY_METRIC, max_concurrent),
            scheduler=scheduler,
            num_samples=spec.samples,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=study.name,
            storage_path=study.storage,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=spec.keep_checkpoints,
                checkpoint_score_attribute=STUDY_METRIC,
                checkpoint_score_order="min",
            ),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            callbacks=[
                _TrialBar(spec.total_trials, progress),
                *tracking_callbacks(study.mlflow, study.config.name),
                LiveOptunaStudy(
                    study.out,
                    spec.space,
                    {"experiment": study.config.name, "status": "running"},
                    spec.budget,
                ),
            ],
            verbose=0,
        ),
    )


def study_record(
    study: Study, cluster: dict, nodes: list[dict], resources: dict, device: str
) -> dict:
    """Provenance written to ``study.json``: what ran, on what, with which code."""
    store = open_dataset(study.config.dataset)
    return {
        "experiment": {
            "name": study.config.name,
            "file": str(study.experiment_file.resolve()),
            "file_text": study.experiment_file.read_text(),
            "resolved_file": CONFIG_FILE,
        },
        "smoke": study.smoke,
        "search_space": study.spec.space,
        "study": study.spec.to_dict(),
        "dataset": {"path": study.config.dataset, **store.summary()},
        "versions": versions(),
        "code": code_version(),
        "hardware": {
            "cluster": cluster,
            "nodes": len(nodes),
            "trial_resources": resources,
            "device": device,
            "driver_host": socket.gethostname(),
        },
        "ray_experiment": study.experiment_path,
        "mlflow": tracking_record(study.mlflow, study.config.name),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _check_out(study: Study, resume: bool) -> None:
    """A new study never overwrites one; ``--resume`` needs a restorable one, unchanged."""
    config_file = study.out / CONFIG_FILE
    if not resume:
        if (study.out / TRIALS_FILE).exists() or tune.Tuner.can_restore(study.experiment_path):
            raise PvaeError(
                f"{study.out}: holds a study already; continue it with --resume "
                f"or choose another --out"
            )
        return
    if not tune.Tuner.can_restore(study.experiment_path):
        raise PvaeError(f"{study.experiment_path}: no study to resume there")
    if config_file.exists() and not same_experiment(
        yaml.safe_load(config_file.read_text()), study.resolved()
    ):
        raise PvaeError(
            f"{study.experiment_file}: differs from the study being resumed "
            f"({config_file}); resume with the same experiment and options"
        )
    _check_tracking(study)


def same_experiment(saved: dict, current: dict) -> bool:
    """Whether a resolved experiment is the one a study was started with.

    A setting the study's record lacks (a field added to pvae since) counts as the same
    when the current value is that field's default: the default keeps the earlier
    behaviour, so the study can resume.
    """
    defaults = {**ExperimentConfig().to_dict(), "tune": StudySpec(space={}, budget=1).to_dict()}
    for section in saved.keys() | current.keys():
        old, new = saved.get(section), current.get(section)
        if not (isinstance(old, dict) and isinstance(new, dict) and section in defaults):
            if old != new:
                return False
            continue
        for key in old.keys() | new.keys():
            if key not in new or old.get(key, defaults[section].get(key)) != new[key]:
                return False
    return True


def _check_tracking(study: Study) -> None:
    """A resumed study logs where it started (Ray restores its loggers): same ``--mlflow``."""
    record_file = study.out / STUDY_FILE
    if not record_file.exists():
        return
    started = (json.loads(record_file.read_text()).get("mlflow") or {}).get("tracking_uri")
    if started != study.mlflow:
        option = f"--mlflow {started}" if started else "no --mlflow"
        raise PvaeError(f"{record_file}: the study was started with {option}; resume with that")


def _wait_for_gpus(min_gpus: int, timeout_s: float) -> None:
    """Wait for an autoscaling cluster to bring up ``min_gpus`` GPUs."""
    deadline = time.monotonic() + timeout_s
    while ray.cluster_resources().get("GPU", 0) < min_gpus:
        if time.monotonic() > deadline:
            raise PvaeError(
                f"--min-gpus {min_gpus}: the cluster has "
                f"{ray.cluster_resources().get('GPU', 0)} GPUs after {timeout_s:.0f} s"
            )
        time.sleep(5)


def run_study(
    study: Study,
    resume: bool = False,
    address: str | None = None,
    progress: bool | None = None,
    min_gpus: int = 0,
    function=train_trial,
) -> dict:
    """Run (or resume) a study and write its results.

    Parameters
    ----------
    study : Study
        From :func:`prepare_study`.
    resume : bool
        Continue an interrupted study: finished trials are kept, unfinished ones
        continue from their last checkpoint, errored ones are resumed from theirs.
    address : str, optional
        Ray cluster address (default ``RAY_ADDRESS``, else a local Ray is started).
    progress : bool, optional
        Progress bar (default: only on a terminal).
    min_gpus : int
        Wait (up to 15 min) until the cluster has this many GPUs before choosing
        trial resources (autoscaling clusters start their GPU workers late).
    function : callable
        The trial function.

    Returns
    -------
    dict
        The ``study.json`` content; ``status`` is ``complete`` or ``interrupted``.
    """
    _check_out(study, resume)
    # quiet Ray: our progress bar and summary replace its tables; keep-best-N
    # checkpointing forces frequent state snapshots, and Ray would warn on each one
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    _quiet_slow_step_warnings()
    with ray_session(address=address):
        _wait_for_gpus(min_gpus, 900)
        record, resources, device, limit = _plan(study)
        study.out.mkdir(parents=True, exist_ok=True)
        resolved = yaml.safe_dump(study.resolved(), sort_keys=False).encode()
        atomic_write_bytes(study.out / CONFIG_FILE, resolved)
        atomic_write_json(study.out / STUDY_FILE, {**record, "status": "running"})
        if resume:
            for trial_id in revive_lost_checkpoints(study.experiment_path):
                warnings.warn(
                    f"trial {trial_id}: its last checkpoint was deleted before the study's "
                    "state was saved (the driver stopped between the two); it restarts from "
                    "its first epoch",
                    PvaeWarning,
                    stacklevel=2,
                )
            tuner = tune.Tuner.restore(
                study.experiment_path,
                _trainable(study, resources, device, function),
                resume_unfinished=True,
                resume_errored=True,
            )
        else:
            tuner = build_tuner(study, resources, device, limit, progress, function)
        grid = tuner.fit()
        finished = grid.num_terminated + grid.num_errors
        complete = len(grid) == study.spec.total_trials == finished
        status = "complete" if complete else "interrupted"
        return write_results(
            study.out, grid, study.config.to_dict(), study.spec.budget, record, status
        )


class _DropSlowStepWarnings(logging.Filter):
    """Drop Ray Tune's "... may be a performance bottleneck" lines (``warn_if_slow``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "performance bottleneck" not in record.getMessage()


def _quiet_slow_step_warnings() -> None:
    """Silence Ray's warnings about driver steps over 0.5 s. The live Optuna storage
    (:class:`tune.live_optuna.LiveOptunaStudy`) is rewritten in about 0.6 s every 30 s,
    and Ray warned on every rewrite: 16 lines in a 51-minute study."""
    logger = logging.getLogger("ray.tune.utils.util")
    if not any(isinstance(f, _DropSlowStepWarnings) for f in logger.filters):
        logger.addFilter(_DropSlowStepWarnings())


def _plan(study: Study) -> tuple[dict, dict, str, int]:
    """On the connected cluster: provenance, trial resources, device, concurrency."""
    cluster = ray.cluster_resources()
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    if len(nodes) > 1 and "://" not in study.storage:
        warnings.warn(
            f"{len(nodes)}-node cluster with local storage {study.storage}: "
            "trials on other nodes need a shared path or --storage s3://...",
            PvaeWarning,
            stacklevel=3,
        )
    resources, device = trial_resources(study.spec.resources, nodes)
    limit = study.spec.max_concurrent or min(
        cluster_capacity(resources, nodes), study.spec.total_trials
    )
    return study_record(study, cluster, nodes, resources, device), resources, device, limit
