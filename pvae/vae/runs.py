"""Training runs on disk (``pvae train``) and finding a model from a path.

A run directory holds::

    config.yaml               resolved experiment configuration
    splits.json               train / val / test indices of the dataset
    history.parquet           one row per epoch (metrics), rewritten atomically
    checkpoints/last.pt       latest epoch (resume from here)
    checkpoints/best.pt       best epoch by val_objective
    summary.json              final status, best epoch and its metrics
"""

import warnings
from pathlib import Path

import pandas as pd
import yaml

from pvae.core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_parquet
from pvae.core.errors import PvaeError
from pvae.core.progress import progress_bar
from pvae.core.warnings import PvaeWarning
from pvae.vae.config import ExperimentConfig
from pvae.vae.train import STUDY_METRIC, Trainer, read_checkpoint

LAST, BEST = "checkpoints/last.pt", "checkpoints/best.pt"


def train_run(
    config: ExperimentConfig,
    dataset,
    out: str | Path,
    resume: bool = False,
    device: str | None = None,
    progress: bool | None = None,
    design_probe=None,
) -> dict:
    """Train into a run directory, checkpointing every epoch.

    Parameters
    ----------
    config : ExperimentConfig
    dataset : str or Path or VoxelStore
    out : str or Path
        Run directory. An existing run is refused unless ``resume``, which continues
        from ``checkpoints/last.pt`` (the configuration's epoch count may be raised).
    device : str, optional
        Overrides ``config.train.device``.
    progress : bool, optional
        Progress bar over epochs (default: only on a terminal).
    design_probe : callable, optional
        Passed to :class:`~pvae.vae.train.Trainer` (needed when ``train.design_every``).

    Returns
    -------
    dict
        ``summary.json`` content: ``status`` (complete / diverged), ``epochs``,
        ``best_epoch``, ``best`` metrics, ``run``.
    """
    out = Path(out)
    if (out / LAST).exists() and not resume:
        raise PvaeError(f"{out}: a training run exists; use --resume to continue it")
    trainer = Trainer(config, dataset, device, design_probe)
    if resume and (out / LAST).exists():
        trainer.load_state(read_checkpoint(out / LAST))
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(
        out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False).encode()
    )
    atomic_write_json(out / "splits.json", trainer.splits)
    status = "complete"
    with progress_bar(config.train.epochs, f"train {config.name}", progress, unit="epoch") as bar:
        bar.update(trainer.epoch)
        for metrics in trainer.run():
            atomic_write_parquet(pd.DataFrame(trainer.history), out / "history.parquet")
            if metrics["status"] != "ok":
                status = metrics["status"]
                warnings.warn(
                    f"{out}: training {status} at epoch {metrics['epoch']}",
                    PvaeWarning,
                    stacklevel=2,
                )
                break
            trainer.save(out / LAST)
            if metrics["is_best"]:
                trainer.save(out / BEST)
            bar.set_postfix({STUDY_METRIC: f"{metrics[STUDY_METRIC]:.4f}"})
            bar.update()
    best_epoch = trainer.best["epoch"] if trainer.best else None
    summary = {
        "status": status,
        "epochs": trainer.epoch,
        "best_epoch": best_epoch,
        "best": next((m for m in trainer.history if m["epoch"] == best_epoch), None),
        "run": str(out),
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file a model path means.

    Parameters
    ----------
    path : str or Path
        A checkpoint file, or a training run directory (its best checkpoint).

    Returns
    -------
    Path
    """
    path = Path(path)
    if path.is_dir():
        for candidate in (path / BEST, path / LAST):
            if candidate.is_file():
                return candidate
        raise PvaeError(f"{path}: neither a training run (no {BEST}) nor a model bundle")
    if not path.exists():
        raise PvaeError(f"{path}: no such model file or directory")
    return path
