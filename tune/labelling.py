"""``pvae data label``: LBM labelling of a dataset as Ray tasks.

Each task labels one batch of samples in one simulation, reading the images from the
dataset directory by index (a shared path: nothing is copied through the object
store). Tasks ask for a fraction of a GPU when the cluster has GPUs, for CPUs
otherwise. Finished batches go to the dataset's journal as they arrive, so a killed
run resumes where it stopped (:mod:`pvae.data.store.labelling`).
"""

from pathlib import Path

import numba
import numpy as np
import ray

from pvae.core.errors import PvaeError
from pvae.core.progress import progress_bar
from pvae.data.store.labelling import (
    LabelJournal,
    batches,
    label_batch,
    merge_journal,
    pending_indices,
    settings_key,
)
from pvae.data.store.reader import open_dataset
from pvae.physics.lbm import LBMSettings
from tune.cluster_connect import ray_session


@ray.remote
def _label_task(root: str, indices: np.ndarray, settings: LBMSettings, device: str, threads: int):
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    return label_batch(root, indices, settings, device)


def task_resources(resources: dict, workers: int, device: str) -> tuple[dict, str]:
    """Ray resources of one labelling task and the device it computes on.

    Parameters
    ----------
    resources : dict
        ``ray.cluster_resources()``.
    workers : int
        Tasks to run at once.
    device : str
        ``auto``, ``cpu`` or ``cuda``.

    Returns
    -------
    options : dict
        ``num_cpus`` / ``num_gpus`` for ``.options()``: with GPUs, ``workers`` tasks
        share them (fractional GPUs); without, the CPUs are split between tasks.
    device : str
        ``cuda`` or ``cpu``.
    """
    gpus = resources.get("GPU", 0)
    cpus = resources.get("CPU", 1)
    if device == "auto":
        device = "cuda" if gpus > 0 else "cpu"
    if device == "cuda":
        if gpus == 0:
            raise PvaeError("--device cuda: the Ray cluster has no GPU")
        return {"num_cpus": 1, "num_gpus": min(1.0, gpus / workers)}, "cuda"
    return {"num_cpus": max(1, int(cpus // workers))}, "cpu"


def label_dataset(
    root: str | Path,
    settings: LBMSettings | None = None,
    workers: int | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    relabel: bool = False,
    progress: bool | None = None,
) -> dict:
    """Fill the permeability columns of a dataset by LBM, resumably.

    Parameters
    ----------
    root : str or Path
        Dataset directory.
    settings : LBMSettings, optional
        Solver settings (default :class:`LBMSettings`).
    workers : int, optional
        Tasks at once; default one per CPU (CPU) or 4 per GPU (fractional GPUs).
    device : str
        ``auto`` (GPU when the cluster has one), ``cpu`` or ``cuda``.
    batch_size : int, optional
        Samples per task and simulation; default 64 on GPU, 4 on CPU.
    relabel : bool
        Recompute samples that already have labels.
    progress : bool, optional
        Progress bar; default only on a terminal.

    Returns
    -------
    dict
        ``labelled`` (written now), ``resumed`` (of those, found in the journal of
        an interrupted run), ``already_labelled`` (left as they were),
        ``not_converged``, ``fingerprint``.
    """
    root = str(Path(root).resolve())
    settings = settings or LBMSettings()
    journal = LabelJournal(root, settings_key(settings))
    pending = pending_indices(root, relabel)
    done = set(journal.rows()["index"].astype(int))
    todo = np.array([i for i in pending if i not in done], dtype=np.int64)
    if len(todo):
        run_label_tasks(root, todo, journal, settings, workers, device, batch_size, progress)
    summary = merge_journal(root, journal)
    summary["resumed"] = len(pending) - len(todo)
    summary["already_labelled"] = len(open_dataset(root)) - len(pending)
    return summary


def run_label_tasks(
    root, todo, journal, settings, workers=None, device="auto", batch_size=None, progress=None
) -> None:
    """Label rows ``todo`` as Ray tasks, adding each finished batch to ``journal``.

    Parameters as in :func:`label_dataset`; ``journal`` is a
    :class:`~pvae.data.store.labelling.LabelJournal` (nothing is merged here).
    """
    with ray_session() as resources:
        gpus = resources.get("GPU", 0)
        workers = workers or (4 * int(gpus) if gpus and device != "cpu" else int(resources["CPU"]))
        options, device = task_resources(resources, workers, device)
        size = batch_size or (64 if device == "cuda" else 4)
        threads = int(options["num_cpus"])
        queue = batches(todo, size)
        running = {}
        with progress_bar(len(todo), "LBM labels", progress) as bar:
            while queue or running:
                while queue and len(running) < workers:
                    part = queue.pop(0)
                    task = _label_task.options(**options)
                    running[task.remote(root, part, settings, device, threads)] = len(part)
                finished, _ = ray.wait(list(running), num_returns=1)
                for ref in finished:
                    journal.add(ray.get(ref))
                    bar.update(running.pop(ref))
