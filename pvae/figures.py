"""Figures of model quality (matplotlib, Agg backend, PNG)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LABELS = {
    "porosity": "porosity $n^F$",
    "log10_k_xx": r"$\log_{10} K_{xx}$",
    "log10_k_yy": r"$\log_{10} K_{yy}$",
    "log10_k_zz": r"$\log_{10} K_{zz}$",
}


def save(fig, path: Path) -> Path:
    """Save a figure as PNG (150 dpi) and close it."""
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def parity_plot(target: np.ndarray, prediction: np.ndarray, names, r2, path: Path) -> Path:
    """Predicted vs. true, one panel per target; (N, T) arrays, R^2 in each title."""
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, t, p, name, score in zip(axes[0], target.T, prediction.T, names, r2, strict=True):
        known = np.isfinite(t)
        ax.scatter(t[known], p[known], s=10, alpha=0.7)
        if known.any():
            lo, hi = np.nanmin([t[known], p[known]]), np.nanmax([t[known], p[known]])
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(
            xlabel=f"true {LABELS.get(name, name)}",
            ylabel="predicted",
            title=f"$R^2$ = {score:.3f}",
        )
    fig.tight_layout()
    return save(fig, path)


def slices_plot(images: np.ndarray, reconstructions: np.ndarray, titles, path: Path) -> Path:
    """Middle z-slice of inputs (top) and reconstructions (bottom); (N, D, H, W) bool."""
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    for j in range(n):
        mid = images.shape[1] // 2
        for row, volume, label in ((0, images, "input"), (1, reconstructions, "reconstruction")):
            axes[row, j].imshow(volume[j, mid], cmap="gray", vmin=0, vmax=1)
            axes[row, j].set_xticks([])
            axes[row, j].set_yticks([])
            if j == 0:
                axes[row, j].set_ylabel(label)
        axes[0, j].set_title(titles[j], fontsize=8)
    fig.suptitle("middle z-slice, white = pore")
    return save(fig, path)


def bar_plot(values: np.ndarray, xlabel: str, ylabel: str, path: Path) -> Path:
    """A simple bar chart (e.g. KL per latent dimension)."""
    fig, ax = plt.subplots(figsize=(max(4, 0.25 * len(values)), 3))
    ax.bar(np.arange(len(values)), values)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    return save(fig, path)
