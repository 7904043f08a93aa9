"""MLflow, optional and imported only when asked for: where runs go, and quiet logging.

``pvae tune --mlflow [URI]`` logs every trial as an MLflow run and ``pvae export
--mlflow [URI]`` logs the exported bundle; both need the optional extra
(``pip install -c constraints.txt -e ".[mlflow]"``). Without a URI they use a SQLite
store in the results folder, ``sqlite:////abs/path/RESULTS/mlflow.db``, whose
artifacts go to ``RESULTS/mlartifacts``; ``mlflow ui --backend-store-uri URI`` shows it.
"""

import logging
import os
from pathlib import Path

from pvae.core.errors import PvaeError

MLFLOW_FILE = "mlflow.db"
ARTIFACTS_FOLDER = "mlartifacts"
INSTALL = 'pip install -c constraints.txt -e ".[mlflow]"'
TRIAL_TAG = "ray_trial_id"  # the Ray trial a run belongs to (how a resumed trial finds its run)
_SQLITE = "sqlite:///"


def import_mlflow():
    """The ``mlflow`` module, quiet: no run URLs on stdout, only warnings in its log, no
    telemetry.

    Raises
    ------
    PvaeError
        When MLflow is not installed (one line naming the fix).
    """
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # no usage reports from a study's driver unless the user opts in (set it to false)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        import mlflow
    except ImportError:
        raise PvaeError(f"--mlflow needs MLflow, which is not installed: {INSTALL}") from None
    if "MLFLOW_LOGGING_LEVEL" not in os.environ:  # else the user chose a level
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    return mlflow


def tracking_uri(option: bool | str | None, folder: str | Path) -> str | None:
    """The MLflow tracking URI of a ``--mlflow [URI]`` option, checking MLflow is there.

    Parameters
    ----------
    option : bool, str or None
        None or False: no MLflow; True (``--mlflow`` alone): the SQLite store
        ``folder/mlflow.db``; a string: that tracking URI (``http://host:5000``,
        ``sqlite:///...``, ``databricks``).
    folder : str or Path
        The results folder.

    Returns
    -------
    str or None

    Raises
    ------
    PvaeError
        When a URI is asked for and MLflow is not installed.
    """
    if not option:
        return None
    import_mlflow()
    if option is True:
        return f"{_SQLITE}{(Path(folder) / MLFLOW_FILE).resolve()}"
    return option


def ui_command(uri: str) -> str:
    """How to look at the runs of a tracking URI: the server itself, or ``mlflow ui``."""
    if uri.startswith(("http://", "https://")):
        return uri
    return f"mlflow ui --backend-store-uri {uri}"


def experiment_id(client, name: str) -> str:
    """The id of MLflow experiment ``name``, created when missing.

    A new experiment in a SQLite store keeps its artifacts in ``mlartifacts/`` beside
    the database file (MLflow's default would be ``./mlruns`` of whatever folder the
    command ran in); a tracking server chooses its own place.

    Parameters
    ----------
    client : mlflow.tracking.MlflowClient
    name : str
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    uri = client.tracking_uri
    location = None
    if uri.startswith(_SQLITE):
        location = (Path(uri[len(_SQLITE) :]).resolve().parent / ARTIFACTS_FOLDER).as_uri()
    return client.create_experiment(name, artifact_location=location)
