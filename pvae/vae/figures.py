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


def interpolation_plot(images: np.ndarray, table, title: str, path: Path) -> Path:
    """Middle slices along a latent path above predicted vs. verified property curves.

    Parameters
    ----------
    images : np.ndarray of bool, shape (S, D, H, W)
    table : pd.DataFrame
        :func:`pvae.design.interpolation.interpolate` output (``t``, ``predicted_*``,
        ``verified_*``).
    """
    steps = len(images)
    fig = plt.figure(figsize=(max(8, 1.4 * steps), 6.5))
    grid = fig.add_gridspec(2, steps, height_ratios=[1, 1.6])
    for i, image in enumerate(images):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(image[image.shape[0] // 2], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"t={table['t'].iloc[i]:.2f}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(grid[1, : steps // 2 or 1])
    ax.plot(table["t"], table["predicted_porosity"], "o--", label="predicted")
    ax.plot(table["t"], table["verified_porosity"], "s-", label="verified (exact)")
    ax.set(xlabel="t", ylabel="porosity")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[1, steps // 2 or 1 :])
    for axis in "xyz":
        name = f"log10_k_{axis}{axis}"
        if f"predicted_{name}" in table:
            line = ax.plot(table["t"], table[f"predicted_{name}"], "o--", label=f"predicted {name}")
            ax.plot(
                table["t"],
                table[f"verified_{name}"],
                "s-",
                color=line[0].get_color(),
                label=f"LBM {name}",
            )
    ax.set(xlabel="t", ylabel="log10 K (lattice units)")
    ax.legend(fontsize=7)
    fig.suptitle(title)
    return save(fig, path)


def designs_plot(images: np.ndarray, table, target: dict, path: Path, show: int = 4) -> Path:
    """Middle slices of the best candidates with target, predicted and verified values."""
    n = min(show, len(images))
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n, 3.6), squeeze=False)
    for j in range(n):
        row = table.iloc[j]
        axes[0, j].imshow(images[j][images.shape[1] // 2], cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_xticks([])
        axes[0, j].set_yticks([])
        lines = [
            f"rank {row['rank']} ({'ok' if row['success'] else 'miss'}), "
            f"novelty {row['novelty']:.2f}"
        ]
        for prop in target:
            lines.append(
                f"{prop}: pred {row[f'predicted_{prop}']:.3g} / LBM {row[f'verified_{prop}']:.3g}"
            )
        axes[0, j].set_title("\n".join(lines), fontsize=7)
    wanted = ", ".join(f"{k}={v:g}" for k, v in target.items())
    fig.suptitle(f"target {wanted} (middle z-slice, white = pore)", fontsize=9)
    return save(fig, path)


def pca_plot(scores: np.ndarray, explained: np.ndarray, colours: dict, path: Path) -> Path:
    """Latent means projected on the first two principal components, one panel per colouring.

    Parameters
    ----------
    scores : np.ndarray, shape (N, 2)
    explained : np.ndarray, shape (2,)
        Explained variance fractions.
    colours : dict
        Panel title -> values (N,) (e.g. porosity, log10 K_xx).
    """
    fig, axes = plt.subplots(1, len(colours), figsize=(3.6 * len(colours), 3.2), squeeze=False)
    for ax, (name, values) in zip(axes[0], colours.items(), strict=True):
        points = ax.scatter(scores[:, 0], scores[:, 1], c=values, s=8, cmap="viridis")
        fig.colorbar(points, ax=ax, shrink=0.8)
        ax.set(
            title=LABELS.get(name, name),
            xlabel=f"PC1 ({explained[0]:.0%})",
            ylabel=f"PC2 ({explained[1]:.0%})",
        )
    fig.tight_layout()
    return save(fig, path)


def traversal_plot(images: np.ndarray, offsets: np.ndarray, path: Path) -> Path:
    """Decoded middle slices along principal directions; images (P, S, D, H, W) bool."""
    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.6 * rows), squeeze=False)
    for p in range(rows):
        for s in range(cols):
            axes[p, s].imshow(images[p, s][images.shape[2] // 2], cmap="gray", vmin=0, vmax=1)
            axes[p, s].set_xticks([])
            axes[p, s].set_yticks([])
            if p == 0:
                axes[p, s].set_title(f"{offsets[s]:+.1f} sd", fontsize=8)
        axes[p, 0].set_ylabel(f"PC{p + 1}")
    fig.suptitle(
        "latent traversal from the mean along principal directions (middle z-slice)", fontsize=9
    )
    return save(fig, path)
