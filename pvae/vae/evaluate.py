"""Evaluation of a trained pVAE on a dataset split (``pvae evaluate``).

Reported (``metrics.json``): reconstruction BCE (nats/voxel), voxel accuracy, Dice and
IoU of the pore phase, porosity error of the binarized reconstruction, two-point
correlation error of reconstructions, R^2 and MAE per target, KL per latent
dimension, the number of active units (latent dimensions whose mean varies
across samples: Var(mu_j) > 0.01), Dice and two-point-correlation error per structure
family, and the *fidelity* of decoded structures (:mod:`pvae.vae.fidelity`: do the
structures the decoder returns carry the permeability of what they encode, measured by
LBM or a surrogate), and *generation* (:mod:`pvae.vae.generation`: are structures drawn
from the model's prior like the data: realism, coverage, porosity range). Per-sample
values go to ``samples.parquet``; figures: parity plots, input vs. reconstruction
slices, KL per dimension, prior samples beside data samples.
"""

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pvae.core.atomic import atomic_directory, atomic_write_json, check_out
from pvae.core.errors import PvaeError
from pvae.core.metrics import mae, r2_score, two_point_correlation
from pvae.core.warnings import PvaeWarning
from pvae.data.store.reader import open_dataset
from pvae.vae.fidelity import (
    Critic,
    fidelity_summary,
    labelled_k,
    measure_fidelity,
    spread_positions,
)
from pvae.vae.figures import bar_plot, parity_plot, samples_plot, slices_plot
from pvae.vae.generation import measure_generation, measure_recombinations
from pvae.vae.inference import infer
from pvae.vae.loading import load_model
from pvae.vae.losses import kl_per_dimension
from pvae.vae.prior import find_prior
from pvae.vae.render import render_pore_spaces

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
    device: str = "auto", batch_size: int = 16, fidelity_samples: int = 32,
    fidelity_method: str = "lbm", surrogate=None, overwrite: bool = False,
    generation_samples: int = 64,
) -> dict:  # fmt: skip
    """Evaluate a model on a split; optionally write JSON, Parquet and figures to ``out``.

    Parameters
    ----------
    model_path : str or Path
        Checkpoint, run directory or bundle.
    dataset : str, Path or VoxelStore
    split : {"train", "val", "test", "all"}
    out : str or Path, optional
    device : str
    batch_size : int
    fidelity_samples : int
        Samples of the split (evenly spread) whose decoded structures are measured;
        0 = no fidelity (for unlabelled data).
    fidelity_method : {"lbm", "surrogate"}
    surrogate : SurrogateEnsemble, optional
        The critic for ``fidelity_method="surrogate"``; checked against the dataset.
    overwrite : bool
        Replace an existing non-empty ``out``.
    generation_samples : int
        Structures drawn from the model's prior (:func:`pvae.vae.prior.find_prior`), and
        as many recombinations of training encodings decoded, each scored against the
        training split (realism) and this split (coverage); 0 = none. Needs the dataset
        the model was trained on.

    Returns
    -------
    dict
        ``n_samples``, ``recon_bce``, ``voxel_accuracy``, ``dice``, ``iou``,
        ``porosity_mae`` (binarized reconstruction vs. input), ``s2_error`` (mean
        absolute two-point correlation error, lags up to a quarter side), ``r2`` and
        ``mae`` (dicts per target), ``kl_per_dim`` (list), ``active_units``,
        ``split``, ``dataset_fingerprint``, ``per_family`` (``n_samples``, ``dice``,
        ``s2_error`` and, where measured, ``fidelity_within_tolerance`` per family),
        ``fidelity`` (:func:`pvae.vae.fidelity.fidelity_summary`; null when not
        measured), ``generation`` (:func:`pvae.vae.generation.measure_generation`:
        draws of the model's prior) and ``recombinations``
        (:func:`pvae.vae.generation.measure_recombinations`: decoded recombinations of the
        training encodings, how a model without a fitted prior generates); null when not
        measured.
    """
    if out is not None:
        check_out(out, overwrite)
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
    positions = spread_positions(len(indices), fidelity_samples)
    fidelity_rows = np.asarray(indices, dtype=int)[positions]
    k_source = labelled_k(store, fidelity_rows)  # refuses unlabelled rows before any work
    if surrogate is not None:
        surrogate.check_dataset(store, "surrogate")
    critic = Critic(fidelity_method, surrogate, device=str(next(model.parameters()).device))
    p = infer(model, normalizer, store, indices, batch_size, keep_reconstructions=True)
    images = store.images(indices)
    lag = max(1, min(store.shape) // 4)
    s2_true = two_point_correlation(torch.from_numpy(images), lag)
    s2_recon = two_point_correlation(torch.from_numpy(p["reconstruction"]), lag)
    p["s2_error"] = (s2_recon - s2_true).abs().flatten(1).mean(1).double().numpy()
    fidelity = None
    if len(fidelity_rows):
        fidelity = measure_fidelity(model, store.images(fidelity_rows), k_source, critic)
        fidelity.index = positions
    generation, generated, recombined = None, None, None
    trained_on = state["dataset_fingerprint"] == store.fingerprint
    if generation_samples > 0 and trained_on:
        prior = find_prior(model_path, model.config.latent_dim)
        train_images = store.images(state["splits"]["train"])
        generation, generated = measure_generation(
            model, prior, train_images, images, generation_samples
        )
        recombined = measure_recombinations(model, train_images, images, generation_samples)
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
        "s2_error": float(p["s2_error"].mean()),
        "r2": {n: _finite(v) for n, v in zip(names, r2, strict=True)},
        "mae": {n: _finite(v) for n, v in zip(names, errors, strict=True)},
        "kl_per_dim": kl_dims.tolist(),
        "active_units": int((p["mu"].var(axis=0) > ACTIVE_UNIT_VARIANCE).sum()),
        "latent_dim": int(p["mu"].shape[1]),
        "dataset": str(store.root),
        "dataset_fingerprint": store.fingerprint,
        "model": str(model_path),
        "per_family": _per_family(store, indices, p, fidelity),
        "fidelity": None if fidelity is None else fidelity_summary(fidelity, fidelity_method),
        "generation": generation,
        "recombinations": recombined,
    }
    if out is not None:
        _write(Path(out), metrics, p, fidelity, store, indices, images, names, overwrite,
               generated)  # fmt: skip
    return metrics


def _per_family(store, indices, p, fidelity) -> dict:
    """Dice, S2 error and fidelity share within tolerance for each structure family."""
    manifest = store.manifest
    families = (
        manifest["family"].iloc[indices].fillna("unknown").to_numpy()
        if "family" in manifest
        else np.full(len(indices), "unknown")
    )
    within = np.full(len(indices), np.nan)
    if fidelity is not None:
        within[fidelity.index] = fidelity["fidelity_within"].to_numpy(float)
    result = {}
    for family in sorted(set(families)):
        rows = families == family
        measured = within[rows][~np.isnan(within[rows])]
        result[str(family)] = {
            "n_samples": int(rows.sum()),
            "dice": float(p["dice"][rows].mean()),
            "s2_error": float(p["s2_error"][rows].mean()),
            "fidelity_n_samples": int(measured.size),
            "fidelity_within_tolerance": float(measured.mean()) if measured.size else None,
        }
    return result


def _finite(value) -> float | None:
    return float(value) if math.isfinite(value) else None


def _write(out: Path, metrics, p, fidelity, store, indices, images, names, overwrite,
           generated) -> None:  # fmt: skip
    with atomic_directory(out, overwrite=overwrite) as tmp:
        atomic_write_json(tmp / "metrics.json", metrics)
        table = pd.DataFrame({"sample_id": store.manifest["sample_id"].iloc[indices].to_numpy()})
        keys = ("recon_bce", "accuracy", "dice", "iou", "porosity_true", "porosity_recon")
        for key in (*keys, "s2_error"):
            table[key] = p[key]
        if fidelity is not None:  # NaN / missing for samples outside the measured subset
            table = table.join(fidelity)
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
        if generated is not None:
            shown = [*generated[:8], *images[:8]]
            g = metrics["generation"]
            title = (f"left: {len(generated[:8])} samples of the prior ({g['prior']}; realism "
                     f"{g['realism']:.0%}, coverage {g['coverage']:.0%}); right: data")  # fmt: skip
            samples_plot(shown, render_pore_spaces(shown), len(generated[:8]), title,
                         tmp / "prior_samples.png")  # fmt: skip


def summary_line(metrics: dict) -> str:
    """One-paragraph human summary of :func:`evaluate` output."""
    r2 = ", ".join(
        f"{k} {v:.3f}" if v is not None else f"{k} n/a" for k, v in metrics["r2"].items()
    )
    fidelity = metrics.get("fidelity")
    if fidelity:
        median = fidelity["median_log10_k_error"]
        r2 += (
            f"\nfidelity ({fidelity['method']}, {fidelity['n_samples']} samples): "
            f"{fidelity['within_tolerance']:.0%} within tolerance, median |log10 K error| "
            + (f"{median:.3f} decades" if median is not None else "n/a")
        )
    for key in ("generation", "recombinations"):
        generation = metrics.get(key)
        if generation:
            r2 += (
                f"\ngeneration ({generation['prior']}, {generation['n_samples']} samples): "
                f"realism {generation['realism']:.0%}, coverage {generation['coverage']:.0%}, "
                f"porosity {generation['porosity_min']:.2f}-{generation['porosity_max']:.2f}"
            )
    return (
        f"{metrics['n_samples']} samples ({metrics['split']}): BCE {metrics['recon_bce']:.4f}, "
        f"accuracy {metrics['voxel_accuracy']:.4f}, Dice {metrics['dice']:.4f}, "
        f"porosity MAE {metrics['porosity_mae']:.4f}, S2 error {metrics['s2_error']:.4f}, "
        f"active units {metrics['active_units']}/{metrics['latent_dim']}\nR^2: {r2}"
    )
