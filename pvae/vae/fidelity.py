"""Property fidelity of decoded structures: does decode(encode(x)) carry x's properties?

A pVAE's regressor predicts properties from the latent mean, but a design is the
*structure* the decoder returns for that latent. Fidelity measures that structure:

1. encode a labelled sample, decode its latent mean (z = mu);
2. binarize the logits at the sample's own porosity, to the voxel
   (:func:`pvae.data.imaging.binarize.binarize_at`), so porosity is exact;
3. measure the decoded structure's permeability diagonal, by LBM or by a CNN
   surrogate ensemble (:mod:`pvae.surrogate`), and compare it with the sample's:
   ``|log10 K_ii(decoded) - log10 K_ii(source)|`` in decades. By LBM, K(source) is the
   sample's LBM label. By surrogate, it is the surrogate's value on the source: the
   comparison is paired, so the surrogate's own error (about 0.05 decades median on the
   default dataset, more on channels) largely cancels between two near-identical
   structures and does not swamp the 0.1-decade tolerance.

A sample is *within tolerance* when its decoded porosity is within 0.02 and every
log10 K_ii within 0.1 decades of the source: the inverse-design tolerance
(:data:`TOLERANCE`). Two zero permeabilities (no percolating path) agree exactly; a
zero against a non-zero one is an infinite error.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pvae.core.device import resolve_device
from pvae.core.errors import PvaeError
from pvae.data.imaging.binarize import binarize_at
from pvae.data.store.layout import SURROGATE
from pvae.data.store.manifest import K_DIAGONAL
from pvae.data.store.reader import open_dataset
from pvae.physics.lbm import LBMSettings
from pvae.surrogate import SurrogateEnsemble, load_surrogate
from pvae.vae.verification import verify_structures

TOLERANCE = {"porosity": 0.02, "log10": 0.1}
METHODS = ("lbm", "surrogate")


@torch.no_grad()
def decode_at_porosity(model, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Encode, decode the latent mean and binarize each sample at its own porosity.

    Parameters
    ----------
    model : pvae.vae.model.PVAE
        Its device is used; put in eval mode.
    images : np.ndarray of bool, shape (N, D, H, W)
        True = pore, axes (z, y, x).
    batch_size : int

    Returns
    -------
    np.ndarray of bool, shape (N, D, H, W)
        Decoded structures with exactly the pore count of each source image.
    """
    model.eval()
    device = next(model.parameters()).device
    out = np.zeros_like(images, dtype=bool)
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        x = torch.from_numpy(chunk).to(device, torch.float32)[:, None]  # (B, 1, D, H, W)
        mu, _ = model.encode(x)
        logits = model.decode(mu)[:, 0].float().cpu().numpy()  # (B, D, H, W)
        for i, (row, source) in enumerate(zip(logits, chunk, strict=True)):
            out[start + i] = binarize_at(row, float(source.mean()))
    return out


def log10_k_errors(k_measured: np.ndarray, k_source: np.ndarray) -> np.ndarray:
    """|log10 K_measured - log10 K_source| per entry, decades.

    Both zero -> 0 (both blocked); one zero -> inf; NaN propagates (unknown).

    Parameters
    ----------
    k_measured, k_source : np.ndarray, shape (N, 3)
        Permeability diagonals (K_xx, K_yy, K_zz), lattice units.
    """
    a, b = np.asarray(k_measured, float), np.asarray(k_source, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.abs(np.log10(a) - np.log10(b))
    error = np.where((a == 0) & (b == 0), 0.0, error)
    return np.where(((a == 0) ^ (b == 0)) & np.isfinite(a) & np.isfinite(b), np.inf, error)


@dataclass
class Critic:
    """How decoded structures are measured: LBM, or a surrogate ensemble.

    Attributes
    ----------
    method : {"lbm", "surrogate"}
    surrogate : pvae.surrogate.SurrogateEnsemble or None
        Required for ``surrogate``.
    lbm : LBMSettings or None
        Solver settings for ``lbm`` (default settings when None).
    device : str
        Device of the LBM solver.
    """

    method: str = "lbm"
    surrogate: object = None
    lbm: LBMSettings | None = None
    device: str = "cpu"

    def __post_init__(self):
        if self.method not in METHODS:
            raise PvaeError(f"fidelity method {self.method!r}: choose from {', '.join(METHODS)}")
        if self.method == "surrogate" and self.surrogate is None:
            raise PvaeError("fidelity by surrogate needs a surrogate model (--surrogate FILE)")

    def reference(self, sources: np.ndarray, k_source: np.ndarray) -> np.ndarray:
        """K diagonal (N, 3) the structures are compared with: the sources' LBM labels
        for ``lbm``; for ``surrogate`` the surrogate's own value on each source (a paired
        comparison, so the surrogate's error on a structure cancels to first order)."""
        return self.permeability(sources) if self.method == "surrogate" else k_source

    def permeability(self, images: np.ndarray) -> np.ndarray:
        """K diagonal (N, 3) of bool images (N, D, H, W), lattice units, superficial."""
        if self.method == "surrogate":
            prediction = self.surrogate.predict(images)
            return np.diagonal(prediction.k, axis1=1, axis2=2).copy()
        table = verify_structures(images, self.lbm, self.device)
        return table[[f"verified_{k}" for k in K_DIAGONAL]].to_numpy()


def critic_surrogate(path: str | Path | None, dataset, device: str = "cpu") -> SurrogateEnsemble:
    """The surrogate that measures decoded structures of ``dataset``, checked against it.

    Parameters
    ----------
    path : str or Path, optional
        A surrogate bundle; None = the dataset's own ``surrogate.pt``.
    dataset : str, Path or VoxelStore
    device : str
    """
    store = open_dataset(dataset) if isinstance(dataset, str | Path) else dataset
    if path is None:
        path = Path(store.root) / SURROGATE
        if not path.is_file():
            raise PvaeError(
                f"{store.root}: no {SURROGATE} in the dataset; pass --surrogate FILE "
                "(train one: pvae surrogate train --dataset DATASET --out FILE)"
            )
    surrogate = load_surrogate(path, str(resolve_device(device)))
    surrogate.check_dataset(store, path)
    return surrogate


def labelled_k(store, rows) -> np.ndarray:
    """K diagonal (N, 3) of dataset rows; :class:`PvaeError` if any row is unlabelled."""
    k = store.manifest[list(K_DIAGONAL)].to_numpy(float)[np.asarray(rows, dtype=int)]
    missing = int((~np.isfinite(k)).any(axis=1).sum())
    if missing:
        raise PvaeError(
            f"{store.root}: fidelity needs permeability labels, but {missing} of the "
            f"{len(k)} samples chosen are unlabelled (label them: pvae data label)"
        )
    return k


def spread_positions(total: int, count: int | None) -> np.ndarray:
    """Up to ``count`` positions evenly spread over ``range(total)`` (all when None or
    ``count >= total``; none when ``count`` is 0)."""
    if count is None or count >= total:
        return np.arange(total)
    return np.linspace(0, total - 1, count).round().astype(int) if count > 0 else np.arange(0)


def compare_structures(structures: np.ndarray, sources: np.ndarray, k_source: np.ndarray,
                       critic: Critic) -> pd.DataFrame:  # fmt: skip
    """Per-sample fidelity of ``structures`` against the ``sources`` they stand for.

    Parameters
    ----------
    structures, sources : np.ndarray of bool, shape (N, D, H, W)
        True = pore, axes (z, y, x).
    k_source : np.ndarray, shape (N, 3)
        The sources' K diagonal labels (lattice units).
    critic : Critic
        Measures the structures' permeability.

    Returns
    -------
    pd.DataFrame
        One row per sample: ``fidelity_porosity_error``; ``fidelity_k_xx/yy/zz``
        (measured on the structure, lattice units); ``fidelity_log10_k_error_xx/yy/zz``
        and their maximum ``fidelity_log10_k_error`` (decades); ``fidelity_within``
        (porosity within 0.02 and every log10 K_ii within 0.1).
    """
    k = critic.permeability(structures)
    errors = log10_k_errors(k, critic.reference(sources, k_source))  # (N, 3)
    porosity_error = np.abs(
        structures.reshape(len(structures), -1).mean(1) - sources.reshape(len(sources), -1).mean(1)
    )
    table = pd.DataFrame({"fidelity_porosity_error": porosity_error})
    for j, axis in enumerate(("xx", "yy", "zz")):
        table[f"fidelity_k_{axis}"] = k[:, j]
        table[f"fidelity_log10_k_error_{axis}"] = errors[:, j]
    table["fidelity_log10_k_error"] = errors.max(axis=1) if len(errors) else []
    table["fidelity_within"] = (porosity_error <= TOLERANCE["porosity"]) & (
        errors <= TOLERANCE["log10"]
    ).all(axis=1)
    return table


def measure_fidelity(model, images: np.ndarray, k_source: np.ndarray, critic: Critic,
                     batch_size: int = 16) -> pd.DataFrame:  # fmt: skip
    """Fidelity of the structures ``model`` decodes from ``images`` (N, D, H, W) bool:
    :func:`decode_at_porosity`, then :func:`compare_structures` against the images."""
    return compare_structures(
        decode_at_porosity(model, images, batch_size), images, k_source, critic
    )


def fidelity_summary(table: pd.DataFrame, method: str) -> dict:
    """The ``fidelity`` block of ``pvae evaluate --json``.

    ``median_log10_k_error`` is the median over all samples and axes of
    |log10 K_ii(decoded) - log10 K_ii(source)| (decades; null when undefined);
    ``within_tolerance`` the share of samples within the inverse-design tolerance.
    """
    errors = table[[f"fidelity_log10_k_error_{a}" for a in ("xx", "yy", "zz")]].to_numpy()
    errors = errors[~np.isnan(errors)]
    median = float(np.median(errors)) if errors.size else None
    return {
        "method": method,
        "n_samples": len(table),
        "median_log10_k_error": median if median is not None and np.isfinite(median) else None,
        "within_tolerance": float(table["fidelity_within"].mean()) if len(table) else None,
    }
