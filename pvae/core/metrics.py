"""Evaluation metrics: regression R^2, segmentation overlap, two-point correlation."""

import numpy as np
import torch


def r2_score(target: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column over finite targets; (N, T) -> (T,).

    NaN for a column with fewer than two known values or no variance.
    """
    scores = []
    for t, p in zip(np.asarray(target).T, np.asarray(prediction).T, strict=True):
        known = np.isfinite(t)
        t, p = t[known], p[known]
        total = ((t - t.mean()) ** 2).sum() if t.size > 1 else 0.0
        scores.append(1.0 - ((t - p) ** 2).sum() / total if total > 0 else np.nan)
    return np.array(scores)


def mae(target: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Mean absolute error per column over finite targets; (N, T) -> (T,)."""
    diff = np.abs(np.asarray(prediction) - np.asarray(target))
    return np.array(
        [col[np.isfinite(col)].mean() if np.isfinite(col).any() else np.nan for col in diff.T]
    )


def dice_iou(truth: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dice and IoU of the pore phase per sample; bool (B, ...) -> two (B,) tensors."""
    truth, pred = truth.flatten(1).bool(), pred.flatten(1).bool()
    inter = (truth & pred).sum(1).float()
    union = (truth | pred).sum(1).float()
    total = truth.sum(1).float() + pred.sum(1).float()
    dice = torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total))
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
    return dice, iou


def two_point_correlation(images: torch.Tensor, max_lag: int) -> torch.Tensor:
    """Periodic two-point probability S2 of the pore phase along each axis.

    Parameters
    ----------
    images : torch.Tensor of bool or float, shape (B, D, H, W)
    max_lag : int
        Largest lag r in voxels.

    Returns
    -------
    torch.Tensor, shape (B, 3, max_lag + 1)
        S2(r) = P(x is pore and x + r e_axis is pore) for axes (z, y, x); S2(0) = porosity.
    """
    f = images.float()
    out = []
    for axis in (1, 2, 3):
        out.append(
            torch.stack(
                [(f * f.roll(r, dims=axis)).mean(dim=(1, 2, 3)) for r in range(max_lag + 1)], 1
            )
        )
    return torch.stack(out, dim=1)
