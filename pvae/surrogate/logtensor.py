"""The surrogate's learning target: the matrix logarithm of the permeability tensor.

The network predicts the six components of ``S = logm(K) / ln 10`` (a symmetric 3x3
matrix "in decades"; for a diagonal K its diagonal is log10 K_ii), not K itself:

* ``K = expm(S ln 10)`` is symmetric positive definite for *any* predicted S, so the
  output is a valid permeability tensor by construction;
* ``logm(R K R^T) = R logm(K) R^T`` for every cube symmetry R, so rotating K with the
  image (:meth:`pvae.data.symmetry.CubeSymmetry.apply_tensor`) rotates the target the same
  way: the 48-symmetry augmentation stays exact in target space (log-Euclidean);
* an isotropic standardisation ``(S - m I) / s`` commutes with these rotations too.

Non-percolating directions: LBM returns ``K[:, j] = K[j, :] = 0`` exactly when the pore
space carries no flow along j (:mod:`pvae.physics.connectivity`). That K is singular,
so the log is taken on the percolating sub-block (the other rows and columns of S are
0 and masked out of the loss). At prediction the same connectivity analysis decides
which directions percolate and K is zero there exactly.

Component order everywhere: ``COMPONENTS = (xx, yy, zz, xy, xz, yz)``, (x, y, z) axes.
"""

from dataclasses import dataclass

import numpy as np
import torch

COMPONENTS = ("xx", "yy", "zz", "xy", "xz", "yz")
_ROWS = (0, 1, 2, 0, 0, 1)
_COLS = (0, 1, 2, 1, 2, 2)
LN10 = float(np.log(10.0))


def percolating_axes(k: torch.Tensor) -> torch.Tensor:
    """Directions with flow, (B, 3, 3) -> bool (B, 3): ``K_ii > 0`` (False where NaN)."""
    return torch.diagonal(k, dim1=-2, dim2=-1) > 0


def _pair_mask(percolating: torch.Tensor) -> torch.Tensor:
    """(B, 3) -> (B, 3, 3): both row and column directions percolate."""
    return percolating[:, :, None] & percolating[:, None, :]


def to_matrix(s6: torch.Tensor) -> torch.Tensor:
    """Six components (..., 6) -> symmetric matrices (..., 3, 3)."""
    rows = [[0, 3, 4], [3, 1, 5], [4, 5, 2]]
    return s6[..., rows]


def log_tensor(k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Learning targets of permeability tensors.

    Parameters
    ----------
    k : torch.Tensor, shape (B, 3, 3)
        Permeability, lattice units, (x, y, z) components; NaN where unknown. It is
        symmetrised first (LBM tensors are symmetric up to solver tolerance).

    Returns
    -------
    s6 : torch.Tensor of float32, shape (B, 6)
        Components of ``logm(K) / ln 10`` on the percolating sub-block; 0 elsewhere.
    mask : torch.Tensor of bool, shape (B, 6)
        Known components: both directions percolate and the sub-block is positive
        definite (a sample whose sub-block is not is masked entirely).
    """
    k = 0.5 * (k + k.transpose(-1, -2)).double()
    pairs = _pair_mask(percolating_axes(k))
    eye = torch.eye(3, dtype=k.dtype, device=k.device).expand_as(k)
    block = torch.where(pairs, k, eye)  # non-percolating rows/columns -> identity
    w, v = torch.linalg.eigh(block)
    valid = (w > 0).all(-1)
    s = v @ torch.diag_embed(torch.log10(w.clamp_min(1e-300))) @ v.transpose(-1, -2)
    mask = pairs[:, _ROWS, _COLS] & valid[:, None]
    s6 = torch.where(mask, s[:, _ROWS, _COLS], 0.0)
    return s6.float(), mask


def exp_tensor(s6: torch.Tensor, percolating: torch.Tensor) -> torch.Tensor:
    """Permeability tensors from predicted log components.

    Parameters
    ----------
    s6 : torch.Tensor, shape (..., B, 6)
        Components of ``logm(K) / ln 10`` (any leading ensemble axes).
    percolating : torch.Tensor of bool, shape (B, 3)
        Directions with flow; K is 0 in the other rows and columns.

    Returns
    -------
    torch.Tensor of float64, shape (..., B, 3, 3)
        Symmetric K, positive definite on the percolating sub-block, lattice units.
    """
    pairs = _pair_mask(percolating)
    s = torch.where(pairs, to_matrix(s6.double()), 0.0)
    w, v = torch.linalg.eigh(s)
    k = v @ torch.diag_embed(torch.exp(w * LN10)) @ v.transpose(-1, -2)
    return torch.where(pairs, 0.5 * (k + k.transpose(-1, -2)), 0.0)


@dataclass(frozen=True)
class LogNormalizer:
    """Isotropic standardisation ``(S - mean I) / std`` (commutes with cube symmetries).

    Attributes
    ----------
    mean : float
        Mean of the known diagonal components of S (decades) in the training split.
    std : float
        Their standard deviation (1 when undefined).
    """

    mean: float
    std: float

    @classmethod
    def fit(cls, s6: torch.Tensor, mask: torch.Tensor) -> "LogNormalizer":
        """Fit on targets (N, 6) and their mask from :func:`log_tensor`."""
        diagonal = s6[:, :3][mask[:, :3]].double()
        mean = float(diagonal.mean()) if diagonal.numel() else 0.0
        std = float(diagonal.std()) if diagonal.numel() > 1 else 0.0
        return cls(mean, std if std > 1e-12 else 1.0)

    def _shift(self, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.mean] * 3 + [0.0] * 3, dtype=like.dtype, device=like.device)

    def encode(self, s6: torch.Tensor) -> torch.Tensor:
        """Components (..., 6) in decades -> standardized."""
        return (s6 - self._shift(s6)) / self.std

    def decode(self, z6: torch.Tensor) -> torch.Tensor:
        """Standardized (..., 6) -> components in decades."""
        return z6 * self.std + self._shift(z6)

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, data: dict) -> "LogNormalizer":
        return cls(float(data["mean"]), float(data["std"]))
