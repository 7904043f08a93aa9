"""Latent space tools: extraction, PCA, traversal, and interpolation paths (Slerp).

Slerp between latent vectors z0 and z1 (Shoemake 1985, as used for VAE latents by
White 2016): z(t) = sin((1-t) w)/sin(w) z0 + sin(t w)/sin(w) z1 with w the angle
between them. It follows the great circle for unit vectors and avoids the
low-norm middle of a linear path through a Gaussian latent space; for nearly
parallel vectors (sin w ~ 0) it falls back to linear interpolation.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pvae.core.atomic import atomic_write_parquet, check_out
from pvae.data.store.reader import VoxelStore
from pvae.vae.figures import pca_plot, traversal_plot
from pvae.vae.inference import binarize_logits, infer
from pvae.vae.loading import LoadedModel

PARALLEL_EPS = 1e-6


def slerp(z0: np.ndarray, z1: np.ndarray, t) -> np.ndarray:
    """Spherical linear interpolation between two vectors.

    Parameters
    ----------
    z0, z1 : np.ndarray, shape (L,)
        End points (any norm).
    t : float or np.ndarray, shape (S,)
        Path parameter(s) in [0, 1]: t = 0 gives z0, t = 1 gives z1.

    Returns
    -------
    np.ndarray, shape (L,) or (S, L)
    """
    z0, z1 = np.asarray(z0, dtype=float), np.asarray(z1, dtype=float)
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))[:, None]
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    cos = np.clip(z0 @ z1 / max(n0 * n1, np.finfo(float).tiny), -1.0, 1.0)
    omega = np.arccos(cos)
    if np.sin(omega) < PARALLEL_EPS:
        path = (1 - t_arr) * z0 + t_arr * z1
    else:
        path = (np.sin((1 - t_arr) * omega) * z0 + np.sin(t_arr * omega) * z1) / np.sin(omega)
    return path[0] if np.ndim(t) == 0 else path


def lerp(z0: np.ndarray, z1: np.ndarray, t) -> np.ndarray:
    """Linear interpolation with the same call signature as :func:`slerp`."""
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))[:, None]
    path = (1 - t_arr) * np.asarray(z0, dtype=float) + t_arr * np.asarray(z1, dtype=float)
    return path[0] if np.ndim(t) == 0 else path


def latent_table(loaded: LoadedModel, store: VoxelStore, indices=None) -> pd.DataFrame:
    """Latent mean and log-variance of samples with their properties.

    Returns
    -------
    pd.DataFrame
        One row per sample: ``sample_id``, ``family``, ``mu_0`` ... ``mu_{L-1}``,
        ``logvar_0`` ..., true targets (``porosity``, ``log10_k_xx``, ...) and the
        regressor's predictions (``pred_<target>``).
    """
    indices = list(range(len(store))) if indices is None else list(indices)
    p = infer(loaded.model, loaded.normalizer, store, indices)
    frame = pd.DataFrame(
        {
            "sample_id": store.manifest["sample_id"].iloc[indices].to_numpy(),
            "family": store.manifest["family"].iloc[indices].to_numpy(),
        }
    )
    latent = p["mu"].shape[1]
    columns = {f"mu_{j}": p["mu"][:, j] for j in range(latent)}
    columns |= {f"logvar_{j}": p["logvar"][:, j] for j in range(latent)}
    for j, name in enumerate(loaded.targets):
        columns[name] = p["target"][:, j]
        columns[f"pred_{name}"] = p["prediction"][:, j]
    return pd.concat([frame, pd.DataFrame(columns)], axis=1)


def mu_matrix(table: pd.DataFrame) -> np.ndarray:
    """The latent means of a :func:`latent_table`, shape (N, L)."""
    return table[[c for c in table.columns if c.startswith("mu_")]].to_numpy()


def pca(points: np.ndarray, components: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal components of points (N, L).

    Returns
    -------
    scores : np.ndarray, shape (N, components)
    directions : np.ndarray, shape (components, L)
        Unit principal directions.
    explained : np.ndarray, shape (components,)
        Fraction of variance explained by each.
    """
    centred = points - points.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(components, len(singular))
    variance = singular**2
    return centred @ vt[:k].T, vt[:k], variance[:k] / max(variance.sum(), np.finfo(float).tiny)


@torch.no_grad()
def decode_logits(loaded: LoadedModel, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decoder logits and regressor predictions of latent vectors.

    Parameters
    ----------
    loaded : LoadedModel
    z : np.ndarray, shape (S, L)

    Returns
    -------
    logits : np.ndarray of float32, shape (S, D, H, W)
        Pore-phase logits.
    predicted : np.ndarray, shape (S, T)
        Regressor predictions at z in raw units (porosity, log10 K, ...).
    """
    device = next(loaded.model.parameters()).device
    zt = torch.as_tensor(z, dtype=torch.float32, device=device)
    logits = loaded.model.decode(zt)[:, 0].float()
    predicted = loaded.normalizer.decode(loaded.model.predict(zt))
    return logits.cpu().numpy(), predicted.cpu().numpy().astype(float)


def decode(loaded: LoadedModel, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`decode_logits`, with the logits binarized (porosity-preserving,
    :func:`binarize_logits`): images (S, D, H, W) bool, True = pore, and predictions (S, T).
    """
    logits, predicted = decode_logits(loaded, z)
    return binarize_logits(torch.from_numpy(logits)).numpy(), predicted


@torch.no_grad()
def predict_images(loaded: LoadedModel, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The model's property prediction for structures: encode (z = mu), then regress.

    Parameters
    ----------
    loaded : LoadedModel
    images : np.ndarray of bool, shape (N, D, H, W)
        True = pore.
    batch_size : int

    Returns
    -------
    np.ndarray, shape (N, T)
        Raw units (porosity, log10 K, ...).
    """
    device = next(loaded.model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(images[start : start + batch_size, None], device=device).float()
        mu, _ = loaded.model.encode(x)
        out.append(loaded.normalizer.decode(loaded.model.predict(mu)).cpu().numpy())
    return np.concatenate(out).astype(float) if out else np.zeros((0, len(loaded.targets)))


def write_latents(
    loaded: LoadedModel,
    store: VoxelStore,
    out: str | Path,
    components: int = 3,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Latent table as Parquet plus PCA and traversal figures beside it.

    Parameters
    ----------
    out : str or Path
        ``latents.parquet`` path; figures ``<stem>_pca.png`` and ``<stem>_traversal.png``
        are written next to it.
    components : int
        Principal components kept (at least 2).
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    pd.DataFrame
        The :func:`latent_table`, with ``pc1``, ``pc2`` columns added.
    """
    out = check_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = latent_table(loaded, store)
    mu = mu_matrix(table)
    scores, directions, explained = pca(mu, max(2, components))
    table["pc1"], table["pc2"] = scores[:, 0], scores[:, 1]
    atomic_write_parquet(
        table,
        out,
        {
            "model": str(loaded.source),
            "dataset": str(store.root),
            "dataset_fingerprint": store.fingerprint,
        },
    )
    colours = {name: table[name].to_numpy() for name in loaded.targets if name in table}
    pca_plot(scores[:, :2], explained[:2], colours, out.with_name(f"{out.stem}_pca.png"))
    offsets = np.linspace(-2.0, 2.0, 7)
    spread = scores.std(axis=0)
    centre = mu.mean(axis=0)
    z = np.stack(
        [centre + o * spread[p] * directions[p] for p in range(len(directions)) for o in offsets]
    )
    images, _ = decode(loaded, z)
    traversal_plot(
        images.reshape(len(directions), len(offsets), *images.shape[1:]),
        offsets,
        out.with_name(f"{out.stem}_traversal.png"),
    )
    return table
