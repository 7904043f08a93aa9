"""Priors over a pVAE's latent space: what generation draws z from.

Every prior has a ``name``, ``sample(count, generator) -> (count, latent_dim)``,
``smoothing`` (the Gaussian blur, in voxels, of its draws' decoder logits before they
are binarized: :func:`pvae.vae.inference.smooth_logits`) and ``to_dict()``;
:func:`prior_from_dict` rebuilds one from its record. A model's prior is ``prior.pt``
beside it (its run folder or bundle, :func:`find_prior`); a model without one samples
N(0, I).

- :class:`StandardNormalPrior`: z ~ N(0, I), the VAE's own prior. With the small KL
  weights that reconstruction needs, the encodings do not fill it, and its decodes
  are noise.
- :class:`GaussianPrior`: the aggregate posterior of the training encodings as one
  Gaussian (their mean and the covariance of their principal components).
- :class:`~pvae.vae.diffusion.DiffusionPrior`: a latent diffusion model of the
  encodings, unconditional or conditioned on target properties: on the latent grid
  for spatial latents (``diffusion``), or over principal components
  (``diffusion-pca``, what flat latents get).

:func:`fit_prior` fits one to a model's training split (``pvae prior fit``).
"""

from pathlib import Path

import numpy as np
import torch

from pvae.core.errors import PvaeError
from pvae.core.torch_files import load_torch, save_torch
from pvae.data.symmetry import cube_symmetries
from pvae.vae.diffusion import (
    DenoiserConfig,
    DiffusionPrior,
    GridBasis,
    LatentBasis,
    train_denoiser,
)
from pvae.vae.targets import tensor_targets

KINDS = ("diffusion", "diffusion-pca", "gaussian")
#: Denoiser training steps, batch size and width by representation (grid / PCA MLP):
#: about 15 and 6 minutes on 2 CPU cores for the design model.
DENOISER = {"grid": {"steps": 2000, "batch_size": 32, "hidden": 64, "blocks": 3},
            "pca": {"steps": 4000, "batch_size": 256, "hidden": 512, "blocks": 4}}  # fmt: skip


class StandardNormalPrior:
    """z ~ N(0, I) of ``latent_dim`` dimensions."""

    name = "standard_normal"
    smoothing = 0.0

    def __init__(self, latent_dim: int):
        self.latent_dim = int(latent_dim)

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """(count, latent_dim) draws."""
        return torch.randn(count, self.latent_dim, generator=generator)

    def to_dict(self) -> dict:
        return {"kind": self.name, "latent_dim": self.latent_dim}


class GaussianPrior:
    """The training encodings as one Gaussian: their mean plus independent normal
    coefficients along their principal components (:class:`LatentBasis`)."""

    name = "gaussian"
    smoothing = 0.0

    def __init__(self, basis: LatentBasis):
        self.basis = basis

    @classmethod
    def fit(cls, mu: np.ndarray, size: int = 512) -> "GaussianPrior":
        """Fit to encodings ``mu`` (N, L), N >= 2, keeping ``size`` components."""
        if len(mu) < 2:
            raise PvaeError(f"gaussian prior: {len(mu)} encodings, need at least 2")
        return cls(LatentBasis.fit(torch.as_tensor(mu, dtype=torch.float32), size))

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """(count, latent_dim) draws."""
        return self.basis.latents(torch.randn(count, self.basis.size, generator=generator))

    def to_dict(self) -> dict:
        return {"kind": self.name, "basis": self.basis.to_dict()}


def prior_from_dict(record: dict | None, latent_dim: int):
    """The prior of a bundle's record; None (no learned prior) = N(0, I)."""
    if record is None:
        return StandardNormalPrior(latent_dim)
    kind = record.get("kind")
    if kind == StandardNormalPrior.name:
        return StandardNormalPrior(record["latent_dim"])
    if kind == GaussianPrior.name:
        return GaussianPrior(LatentBasis.from_dict(record["basis"]))
    if kind == DiffusionPrior.name:
        return DiffusionPrior.from_dict(record)
    raise PvaeError(f"unknown latent prior {kind!r} in the model record")


PRIOR = "prior.pt"


def save_prior(prior, path: str | Path) -> Path:
    """Write a prior's record (plain values, ``torch.load(weights_only=True)`` safe)."""
    return save_torch(prior.to_dict(), path)


def find_prior(model_path: str | Path, latent_dim: int):
    """The prior of a model: ``prior.pt`` beside it (run folder or bundle), else N(0, I).

    Parameters
    ----------
    model_path : str or Path
        What the model was loaded from (checkpoint, run folder or bundle).
    latent_dim : int
    """
    model_path = Path(model_path)
    path = (model_path if model_path.is_dir() else model_path.parent) / PRIOR
    if not path.is_file():
        return StandardNormalPrior(latent_dim)
    return load_prior(path, latent_dim)


def load_prior(path: str | Path, latent_dim: int):
    """The prior written to ``path`` by :func:`save_prior`."""
    return prior_from_dict(load_torch(path, "latent prior"), latent_dim)


@torch.no_grad()
def symmetric_encodings(loaded, images: np.ndarray, k: np.ndarray, porosity: np.ndarray,
                        symmetries: int = 48, batch_size: int = 32):  # fmt: skip
    """Latent means and standardized targets of images under cube symmetries.

    Parameters
    ----------
    loaded : LoadedModel
    images : np.ndarray of bool, shape (N, D, H, W)
    k : np.ndarray, shape (N, 3, 3)
        Permeability tensors, (x, y, z) components (NaN where unknown).
    porosity : np.ndarray, shape (N,)
    symmetries : int
        S: the identity and S - 1 others of the image shape's symmetries (48 for a
        cube), the same seeded choice for every image.

    Returns
    -------
    mu : torch.Tensor, shape (N S, latent_dim)
    targets : torch.Tensor, shape (N S, T)
        The model's standardized targets of each transformed image.
    """
    model, normalizer = loaded.model, loaded.normalizer
    device = next(model.parameters()).device
    x = torch.from_numpy(np.asarray(images)).float()[:, None]  # (N, 1, D, H, W)
    k = torch.as_tensor(np.asarray(k), dtype=torch.float32)
    porosity = torch.as_tensor(np.asarray(porosity), dtype=torch.float32)
    mus, targets = [], []
    group = cube_symmetries(tuple(images.shape[1:]))
    order = [0, *(1 + np.random.default_rng(0).permutation(len(group) - 1))]
    for symmetry in [group[i] for i in order[:symmetries]]:
        turned = symmetry.apply(x)
        for i in range(0, len(x), batch_size):
            mus.append(model.encode(turned[i : i + batch_size].contiguous().to(device))[0].cpu())
        raw = tensor_targets(symmetry.apply_tensor(k), porosity, normalizer.names)
        targets.append(normalizer.encode(raw))
    return torch.cat(mus), torch.cat(targets)


def denoises_on_grid(kind: str, loaded) -> bool:
    """Whether a prior of ``kind`` for this model denoises on its latent grid."""
    return kind == "diffusion" and loaded.model.spatial


def _denoiser_settings(kind: str, loaded) -> dict:
    """The :data:`DENOISER` entry a prior of ``kind`` for this model trains with."""
    return DENOISER["grid" if denoises_on_grid(kind, loaded) else "pca"]


def default_steps(kind: str, loaded) -> int:
    """Denoiser training steps :func:`fit_prior` takes by default (0 for ``gaussian``)."""
    return 0 if kind == "gaussian" else _denoiser_settings(kind, loaded)["steps"]


def fit_prior(kind: str, loaded, store, rows, components: int = 256, steps: int | None = None,
              symmetries: int = 12, seed: int = 0, progress=None,
              checkpoint: Path | None = None):  # fmt: skip
    """Fit a prior of ``kind`` to a model's encodings of dataset rows (its training split).

    Parameters
    ----------
    kind : {"diffusion", "diffusion-pca", "gaussian"}
        ``diffusion`` denoises on the latent grid of a spatial model and over principal
        components of a flat one; ``diffusion-pca`` always over principal components.
    loaded : LoadedModel
    store : VoxelStore
        The dataset the model was trained on.
    rows : sequence of int
    components : int
        Principal components of the encodings kept (:class:`LatentBasis`; not used on
        the grid).
    steps : int, optional
        Denoiser training steps (default: :data:`DENOISER`).
    symmetries : int
        Cube symmetries of each training image encoded (:func:`symmetric_encodings`).
    seed : int
    progress : callable(step, loss), optional
    checkpoint : Path, optional
        Resumable training state (:func:`~pvae.vae.diffusion.train_denoiser`).
    """
    if kind not in KINDS:
        raise PvaeError(f"--kind {kind}: choose from {', '.join(KINDS)}")
    images = store.images(rows)
    labels = store.labels()[np.asarray(rows)]
    k = labels[:, 1:].reshape(-1, 3, 3)
    mu, targets = symmetric_encodings(loaded, images, k, labels[:, 0], symmetries)
    on_grid = denoises_on_grid(kind, loaded)
    basis = (GridBasis.fit(mu, loaded.model.latent_shape) if on_grid
             else LatentBasis.fit(mu, components, seed))  # fmt: skip
    if kind == "gaussian":
        return GaussianPrior(basis)
    settings = _denoiser_settings(kind, loaded)
    shape = loaded.model.latent_shape
    config = DenoiserConfig(
        shape[0] if on_grid else basis.size, settings["hidden"], settings["blocks"],
        targets.shape[1], tuple(shape[1:]) if on_grid else (),
    )  # fmt: skip
    net = train_denoiser(basis.coefficients(mu), targets, config, steps or settings["steps"],
                         settings["batch_size"], seed=seed, progress=progress,
                         checkpoint=checkpoint)  # fmt: skip
    normalizer = loaded.normalizer
    return DiffusionPrior(basis, net, normalizer.names, normalizer.mean, normalizer.std)
