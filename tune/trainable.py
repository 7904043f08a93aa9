"""The Ray Tune trainable: a thin wrapper around :class:`pvae.vae.train.Trainer`.

One trial = one :class:`Trainer` on the experiment with the trial's parameters
applied. Every epoch is reported with a checkpoint directory holding the trainer's
checkpoint file; a restarted trial (worker failure, resumed study) continues from
``tune.get_checkpoint()`` exactly where it stopped (from its first epoch when that
checkpoint was lost, :mod:`tune.lost_checkpoints`). A diverged epoch is reported
with ``status = "diverged"`` and a NaN study metric, and the trial ends normally, so
the study goes on.
"""

import math
import tempfile
from pathlib import Path

import ray
import torch
from ray import tune

from pvae.core.memory import retain_freed_memory
from pvae.design.probe import design_probe
from pvae.vae.config import experiment_from_dict
from pvae.vae.train import STUDY_METRIC, Trainer, read_checkpoint

CHECKPOINT_FILE = "trainer.pt"


def train_trial(config: dict, experiment: dict, dataset: str, device: str, threads: int) -> None:
    """Train one trial, reporting every epoch to Ray Tune.

    Parameters
    ----------
    config : dict
        The trial's parameters, ``{"model.latent_dim": 8, "train.beta": 0.1, ...}``.
    experiment : dict
        The base experiment (:meth:`ExperimentConfig.to_dict`).
    dataset : str
        Dataset directory, a path every node sees (read by index, never copied).
    device : str
        ``cuda`` when the trial holds a GPU share, else ``cpu``.
    threads : int
        Torch CPU threads (the trial's CPUs).
    """
    torch.set_num_threads(threads)
    retain_freed_memory()
    resolved = experiment_from_dict(experiment).with_overrides(config)
    trainer = Trainer(resolved, dataset, device, design_probe(resolved))
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            if (Path(folder) / CHECKPOINT_FILE).exists():  # else lost: from the first epoch
                trainer.load_state(read_checkpoint(Path(folder) / CHECKPOINT_FILE))
    node_id = ray.get_runtime_context().get_node_id()  # Ray adds hostname and node_ip itself
    for metrics in trainer.run():
        metrics["node_id"] = node_id
        if metrics["status"] != "ok":  # diverged: the last epoch of this trial
            tune.report({**metrics, STUDY_METRIC: math.nan})
            continue
        with tempfile.TemporaryDirectory() as folder:
            trainer.save(Path(folder) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
