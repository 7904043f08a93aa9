"""Evaluation of a trained pVAE on a dataset split (``pvae evaluate``).

Reported (``metrics.json``): reconstruction BCE (nats/voxel), voxel accuracy, Dice and
IoU of the pore phase, porosity error of the binarized reconstruction, two-point
correlation error of reconstructions, R^2 and MAE per target, KL per latent
dimension and the number of active units (latent dimensions whose mean varies
across samples: Var(mu_j) > 0.01). Per-sample values go to ``samples.parquet``;
figures: parity plots, input vs. reconstruction slices, KL per dimension.
"""

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pvae.atomic import atomic_directory, atomic_write_json
from pvae.errors import PvaeError
from pvae.figures import bar_plot, parity_plot, slices_plot
from pvae.inference import infer
from pvae.loading import load_model
from pvae.losses import kl_per_dimension
from pvae.metrics import mae, r2_score, two_point_correlation
from pvae.store.reader import open_dataset
from pvae.warnings import PvaeWarning

SPLITS = ("train", "val", "test", "all")
ACTIVE_UNIT_VARIANCE = 0.01


def split_indices(state: dict, store, split: str) -> list[int]:
    """Dataset rows of a split recorded in the checkpoint (``all``: every row)."""
    if split not in SPLITS:
        raise PvaeError(f"--split {split}: choose from {', '.join(SPLITS)}")
    if split == "all":
        return list(range(len(store)))
    if state["dataset_fingerprint"] != store.fingerprint:
        raise PvaeError(
            f"{store.root}: not the dataset the model was trained on "
            f"({state['dataset_fingerprint']}); its splits do not apply, use --split all"
        )
    return list(state["splits"][split])


def evaluate(
    model_path: str | Path, dataset, split: str = "test", out: str | Path | None = None,
    device: str = "auto", batch_size: int = 16,
) -> dict:  # fmt: skip
    """Evaluate a model on a split; optionally write JSON, Parquet and figures to ``out``.

    Returns
    -------
    dict
        ``n_samples``, ``recon_bce``, ``voxel_accuracy``, ``dice``, ``iou``,
        ``porosity_mae`` (binarized reconstruction vs. input), ``s2_error`` (mean
        absolute two-point correlation error, lags up to a quarter side), ``r2`` and
        ``mae`` (dicts per target), ``kl_per_dim`` (list), ``active_units``,
        ``split``, ``dataset_fingerprint``.
    """
    loaded = load_model(model_path, device)
    model, normalizer, state = loaded.model, loaded.normalizer, loaded.state
    store = open_dataset(dataset)
    loaded.check_shape(store)
    indices = split_indices(state, store, split)
    if state["dataset_fingerprint"] != store.fingerprint:
        warnings.warn(
            f"{store.root}: evaluating on a dataset the model was not trained on",
            PvaeWarning,
            stacklevel=2,
        )
    p = infer(model, normalizer, store, indices, batch_size, keep_reconstructions=True)
    images = store.images(indices)
    lag = max(1, min(store.shape) // 4)
    s2_true = two_point_correlation(torch.from_numpy(images), lag)
    s2_recon = two_point_correlation(torch.from_numpy(p["reconstruction"]), lag)
    kl_dims = kl_per_dimension(torch.from_numpy(p["mu"]), torch.from_numpy(p["logvar"])).numpy()
    names = list(normalizer.names)
    r2, errors = r2_score(p["target"], p["prediction"]), mae(p["target"], p["prediction"])
    metrics = {
        "n_samples": len(indices),
        "split": split,
        "recon_bce": float(p["recon_bce"].mean()),
        "voxel_accuracy": float(p["accuracy"].mean()),
        "dice": float(p["dice"].mean()),
        "iou": float(p["iou"].mean()),
        "porosity_mae": float(np.abs(p["porosity_recon"] - p["porosity_true"]).mean()),
        "s2_error": float((s2_recon - s2_true).abs().mean()),
        "r2": {n: _finite(v) for n, v in zip(names, r2, strict=True)},
        "mae": {n: _finite(v) for n, v in zip(names, errors, strict=True)},
        "kl_per_dim": kl_dims.tolist(),
        "active_units": int((p["mu"].var(axis=0) > ACTIVE_UNIT_VARIANCE).sum()),
        "latent_dim": int(p["mu"].shape[1]),
        "dataset": str(store.root),
        "dataset_fingerprint": store.fingerprint,
        "model": str(model_path),
    }
    if out is not None:
        _write(Path(out), metrics, p, store, indices, images, names)
    return metrics


def _finite(value) -> float | None:
    return float(value) if math.isfinite(value) else None


def _write(out: Path, metrics, p, store, indices, images, names) -> None:
    with atomic_directory(out, overwrite=True) as tmp:
        atomic_write_json(tmp / "metrics.json", metrics)
        table = pd.DataFrame({"sample_id": store.manifest["sample_id"].iloc[indices].to_numpy()})
        for key in ("recon_bce", "accuracy", "dice", "iou", "porosity_true", "porosity_recon"):
            table[key] = p[key]
        for j, name in enumerate(names):
            table[f"true_{name}"] = p["target"][:, j]
            table[f"pred_{name}"] = p["prediction"][:, j]
        table.to_parquet(tmp / "samples.parquet", index=False)
        r2 = [metrics["r2"][n] if metrics["r2"][n] is not None else math.nan for n in names]
        parity_plot(p["target"], p["prediction"], names, r2, tmp / "parity.png")
        show = list(range(min(6, len(indices))))
        slices_plot(
            images[show],
            p["reconstruction"][show],
            list(table["sample_id"].iloc[show]),
            tmp / "slices.png",
        )
        bar_plot(
            np.array(metrics["kl_per_dim"]), "latent dimension", "KL (nats)", tmp / "kl_per_dim.png"
        )


def summary_line(metrics: dict) -> str:
    """One-paragraph human summary of :func:`evaluate` output."""
    r2 = ", ".join(
        f"{k} {v:.3f}" if v is not None else f"{k} n/a" for k, v in metrics["r2"].items()
    )
    return (
        f"{metrics['n_samples']} samples ({metrics['split']}): BCE {metrics['recon_bce']:.4f}, "
        f"accuracy {metrics['voxel_accuracy']:.4f}, Dice {metrics['dice']:.4f}, "
        f"porosity MAE {metrics['porosity_mae']:.4f}, S2 error {metrics['s2_error']:.4f}, "
        f"active units {metrics['active_units']}/{metrics['latent_dim']}\nR^2: {r2}"
    )
