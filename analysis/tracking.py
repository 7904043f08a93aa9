"""``pvae export --mlflow``: an exported bundle as an MLflow run with its files as artifacts."""

import json
import math
from pathlib import Path

from pvae.core.tracking import TRIAL_TAG, experiment_id, import_mlflow
from pvae.vae.bundle import BUNDLE_FILE


def log_export(bundle: str | Path, uri: str) -> str:
    """Log an exported bundle as a run of the study's MLflow experiment.

    The run (name ``export-<trial id>``, tag ``ray_trial_id``) holds the trial id and
    its whole configuration as parameters, its best validation metrics
    (``best_val_objective``, ...) and every file of the bundle (``bundle.json``,
    weights, TorchScript, ``README.md`` model card, figures) as artifacts.

    Parameters
    ----------
    bundle : str or Path
        Folder written by :func:`analysis.export.export_trial`.
    uri : str
        MLflow tracking URI (:func:`pvae.core.tracking.tracking_uri`).

    Returns
    -------
    str
        The run id.
    """
    import_mlflow()
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    record = json.loads((Path(bundle) / BUNDLE_FILE).read_text())
    provenance = record["provenance"]
    trial = provenance["trial_id"]
    client = MlflowClient(uri)
    run = client.create_run(
        experiment_id(client, provenance["study"]),
        run_name=f"export-{trial}",
        tags={TRIAL_TAG: trial, "bundle": str(Path(bundle).resolve())},
    )
    params = {"trial_id": trial, **provenance["config"]}
    metrics = {
        k: v
        for k, v in record["metrics"].items()
        if k.startswith("best_val_") and v is not None and math.isfinite(v)
    }
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, run.info.start_time, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)) for k, v in params.items()],
    )
    client.log_artifacts(run.info.run_id, str(bundle))
    client.set_terminated(run.info.run_id)
    return run.info.run_id
