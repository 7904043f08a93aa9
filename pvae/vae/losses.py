"""The pVAE loss, all terms per voxel so that weights mean the same at every resolution.

    total = recon + beta * kl + gamma * reg

recon
    binary cross-entropy of the voxel logits, averaged over voxels and batch
    (nats per voxel);
kl
    closed-form KL(N(mu, sigma^2) || N(0, I)) summed over latent dimensions, averaged
    over the batch and divided by the voxels per sample, so beta = 1 is the ELBO
    divided by the voxel count;
reg
    mean squared error of the standardized targets, averaged over the known entries
    only (unknown or undefined targets are masked, see :mod:`pvae.vae.targets`).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def reconstruction_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy per voxel; logits and target (B, 1, D, H, W)."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="mean")


def kl_per_sample(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over latent dims; (B, L) -> (B,)."""
    return 0.5 * (mu.float() ** 2 + logvar.float().exp() - 1.0 - logvar.float()).sum(dim=1)


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL of each latent dimension averaged over the batch; (B, L) -> (L,)."""
    return 0.5 * (mu.float() ** 2 + logvar.float().exp() - 1.0 - logvar.float()).mean(dim=0)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over entries where ``target`` is finite; (B, T) each.

    Returns 0 (with a gradient path) when no entry is known.
    """
    known = torch.isfinite(target)
    diff = torch.where(known, prediction.float() - torch.nan_to_num(target), 0.0)
    return (diff**2).sum() / known.sum().clamp_min(1)


@dataclass
class LossParts:
    """The loss and its components (scalars), each logged separately."""

    total: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    reg: torch.Tensor


def pvae_loss(out: dict, x: torch.Tensor, y: torch.Tensor, beta: float, gamma: float) -> LossParts:
    """The pVAE loss of one batch.

    Parameters
    ----------
    out : dict
        :meth:`pvae.vae.model.PVAE.forward` output.
    x : torch.Tensor, shape (B, 1, D, H, W)
        Input images, 1 = pore.
    y : torch.Tensor, shape (B, T)
        Standardized targets, NaN where unknown.
    beta, gamma : float
        KL and regression weights.
    """
    recon = reconstruction_bce(out["logits"], x)
    kl = kl_per_sample(out["mu"], out["logvar"]).mean() / x[0].numel()
    reg = masked_mse(out["prediction"], y)
    return LossParts(recon + beta * kl + gamma * reg, recon, kl, reg)
