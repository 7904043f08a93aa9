"""Learning targets from dataset labels, and their standardisation.

Targets are porosity, log10 of the permeability diagonal (lattice units) and
optionally raw off-diagonal components. A value that is unknown (NaN) or whose log is
undefined (K_ii <= 0: no percolating path along i) is *masked*: it does not enter the
regression loss or the R^2 of that target.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from pvae.data.store.reader import VoxelStore


def target_values(store: VoxelStore, names: tuple[str, ...]) -> np.ndarray:
    """Raw target values of every sample, NaN where unknown or undefined.

    Parameters
    ----------
    store : VoxelStore
    names : tuple of str
        From :data:`pvae.vae.config.TARGETS_FULL`.

    Returns
    -------
    np.ndarray of float64, shape (N, T)
    """
    frame = store.manifest
    columns = []
    for name in names:
        if name.startswith("log10_"):
            k = frame[name.removeprefix("log10_")].to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                columns.append(np.where(k > 0, np.log10(k), np.nan))
        else:
            columns.append(frame[name].to_numpy(dtype=float))
    return np.stack(columns, axis=1)


def tensor_targets(k: torch.Tensor, porosity: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
    """Targets from (possibly rotated) tensors, as :func:`target_values` does for a row.

    Parameters
    ----------
    k : torch.Tensor, shape (B, 3, 3)
        Permeability, (x, y, z) components, NaN where unknown.
    porosity : torch.Tensor, shape (B,)
    names : tuple of str

    Returns
    -------
    torch.Tensor, shape (B, T), NaN where unknown or undefined.
    """
    index = {"x": 0, "y": 1, "z": 2}
    columns = []
    for name in names:
        if name == "porosity":
            columns.append(porosity)
            continue
        comp = name.removeprefix("log10_").removeprefix("k_")
        value = k[:, index[comp[0]], index[comp[1]]]
        if name.startswith("log10_"):
            value = torch.where(value > 0, torch.log10(value.clamp_min(1e-30)), torch.nan)
        columns.append(value)
    return torch.stack(columns, dim=1).to(torch.float32)


@dataclass(frozen=True)
class TargetNormalizer:
    """Per-target standardisation fitted on the training split.

    Attributes
    ----------
    names : tuple of str
    mean, std : tuple of float
        Statistics of the known training values (std 1 where undefined).
    """

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, values: np.ndarray, names: tuple[str, ...]) -> "TargetNormalizer":
        """Fit on raw values (N, T), ignoring NaN."""
        mean, std = [], []
        for column in values.T:
            known = column[np.isfinite(column)]
            mean.append(float(known.mean()) if known.size else 0.0)
            spread = float(known.std()) if known.size > 1 else 0.0
            std.append(spread if spread > 1e-12 else 1.0)
        return cls(tuple(names), tuple(mean), tuple(std))

    def _stats(self, like: torch.Tensor):
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device)
        return mean, std

    def encode(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw (B, T) -> standardized."""
        mean, std = self._stats(raw)
        return (raw - mean) / std

    def decode(self, standardized: torch.Tensor) -> torch.Tensor:
        """Standardized (B, T) -> raw units (porosity, log10 K, ...)."""
        mean, std = self._stats(standardized)
        return standardized * std + mean

    def to_dict(self) -> dict:
        return {"names": list(self.names), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict) -> "TargetNormalizer":
        return cls(tuple(data["names"]), tuple(data["mean"]), tuple(data["std"]))


def target_ranges(values: np.ndarray, names: tuple[str, ...]) -> dict[str, list[float]]:
    """[min, max] of the known values of each target, raw units; (N, T) -> dict.

    Stored with a model: inverse design reports targets outside these ranges as not
    covered by the training data instead of silently attempting them.
    """
    ranges = {}
    for name, column in zip(names, values.T, strict=True):
        known = column[np.isfinite(column)]
        ranges[name] = (
            [float(known.min()), float(known.max())] if known.size else [math.nan, math.nan]
        )
    return ranges
