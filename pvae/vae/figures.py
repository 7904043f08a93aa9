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
    fig.savefig(path, dpi=150, bbox_inches="tight", format="png")
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


AXES = "xyz"  # tensor order; array axes are (z, y, x)
VIEW_KEY = (
    "3D: the surface of the pore space, blue seen from the pore, tan seen from the solid; "
    "slices: white = pore"
)


def _blank(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def middle_slices(image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The three orthogonal middle slices of a (Z, Y, X) image, named by their normal."""
    depth, height, width = image.shape
    return [
        ("z", image[depth // 2]),  # rows y, columns x
        ("y", image[:, height // 2]),  # rows z, columns x
        ("x", image[:, :, width // 2]),  # rows z, columns y
    ]


def _structure_panels(fig, cell, view: np.ndarray, image: np.ndarray, title: str) -> None:
    """A 3D view above the three middle slices, in one grid cell of ``fig``."""
    grid = cell.subgridspec(2, 3, height_ratios=[3, 1], hspace=0.05, wspace=0.05)
    ax = fig.add_subplot(grid[0, :])
    ax.imshow(view)
    ax.set_axis_off()
    ax.set_title(title, fontsize=7)
    for j, (normal, plane) in enumerate(middle_slices(image)):
        ax = fig.add_subplot(grid[1, j])
        ax.imshow(plane, cmap="gray", vmin=0, vmax=1, origin="lower")
        _blank(ax)
        ax.set_xlabel(f"{normal} mid", fontsize=6, labelpad=1)


def flow_slice(ax, speed: np.ndarray, image: np.ndarray, axis: int, fig) -> None:
    """LBM velocity magnitude on the middle cross-section normal to the flow, solid grey.

    Parameters
    ----------
    speed : np.ndarray, shape (Z, Y, X)
        Velocity magnitude, lattice units.
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore.
    axis : int
        Forcing direction, 0, 1, 2 = x, y, z.
    """
    normal = AXES[axis]
    (plane,) = [s for name, s in middle_slices(speed) if name == normal]
    (pore,) = [s for name, s in middle_slices(image) if name == normal]
    shown = np.ma.masked_where(~pore, plane)
    cmap = plt.get_cmap("magma").with_extremes(bad="0.75")
    mapped = ax.imshow(shown, cmap=cmap, origin="lower", vmin=0)
    _blank(ax)
    ax.set_title(f"LBM |u|, flow along {normal} (mid {normal}-slice)", fontsize=7)
    fig.colorbar(mapped, ax=ax, shrink=0.8).ax.tick_params(labelsize=6)


def interpolation_plot(images: np.ndarray, views: list, table, title: str, path: Path) -> Path:
    """3D views and middle slices along a latent path, above predicted vs. verified curves.

    Parameters
    ----------
    images : np.ndarray of bool, shape (S, D, H, W)
    views : list of np.ndarray of uint8, shape (h, w, 3)
        3D views of the pore space (:func:`pvae.vae.render.render_pore_spaces`).
    table : pd.DataFrame
        :func:`pvae.design.interpolation.interpolate` output (``t``, ``predicted_*``,
        ``verified_*``).
    """
    steps = len(images)
    fig = plt.figure(figsize=(max(8, 1.9 * steps), 7.5))
    grid = fig.add_gridspec(2, steps, height_ratios=[1.3, 1.6], wspace=0.3)
    for i, (image, view) in enumerate(zip(images, views, strict=True)):
        _structure_panels(fig, grid[0, i], view, image, f"t={table['t'].iloc[i]:.2f}")
    ax = fig.add_subplot(grid[1, : steps // 2 or 1])
    ax.plot(table["t"], table["predicted_porosity"], "o--", label="predicted")
    ax.plot(table["t"], table["verified_porosity"], "s-", label="verified (exact)")
    ax.set(xlabel="t", ylabel="porosity")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[1, steps // 2 or 1 :])
    for axis in AXES:
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
    fig.suptitle(f"{title}\n{VIEW_KEY}", fontsize=9)
    return save(fig, path)


def designs_plot(images, views: list, flows: list, table, target: dict, path: Path) -> Path:
    """Each design as a 3D view, its three middle slices and its LBM flow on a slice.

    Parameters
    ----------
    images : sequence of np.ndarray of bool, shape (D, H, W)
        The designs to show, best first.
    views : list of np.ndarray of uint8, shape (h, w, 3)
        Their 3D views (:func:`pvae.vae.render.render_pore_spaces`).
    flows : list of (np.ndarray, int) or None
        Per design: velocity magnitude (D, H, W), lattice units, and the forcing axis
        (0, 1, 2 = x, y, z); None where the design carries no flow.
    table : pd.DataFrame
        The designs' rows (``rank``, ``success``, ``novelty``, ``predicted_*``,
        ``verified_*``), in the order of ``images``.
    target : dict
        Property -> target value.
    """
    n = len(images)
    fig = plt.figure(figsize=(3.3 * n, 7.4))
    grid = fig.add_gridspec(2, n, height_ratios=[1.45, 1.0], hspace=0.25)
    for j in range(n):
        row = table.iloc[j]
        lines = [
            f"rank {row['rank']} ({'ok' if row['success'] else 'miss'}), "
            f"novelty {row['novelty']:.2f}"
        ]
        for prop in target:
            lines.append(
                f"{prop}: pred {row[f'predicted_{prop}']:.3g} / LBM {row[f'verified_{prop}']:.3g}"
            )
        _structure_panels(fig, grid[0, j], views[j], images[j], "\n".join(lines))
        ax = fig.add_subplot(grid[1, j])
        if flows[j] is None:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "no percolating path:\nno flow", ha="center", va="center")
        else:
            flow_slice(ax, flows[j][0], images[j], flows[j][1], fig)
    wanted = ", ".join(f"{k}={v:.3g}" for k, v in target.items())
    fig.suptitle(
        f"target {wanted}\n{VIEW_KEY}; flow: grey = solid, black = pore without flow",
        fontsize=9,
        y=1.0 + 0.02 * len(target),
    )
    return save(fig, path)


def samples_plot(images, views: list, generated: int, title: str, path: Path) -> Path:
    """Generated structures beside data structures: a 3D view and middle slices each.

    Parameters
    ----------
    images : sequence of np.ndarray of bool, shape (D, H, W)
        The first ``generated`` are generated, the rest data samples.
    views : list of np.ndarray of uint8, shape (h, w, 3)
        Their 3D views (:func:`pvae.vae.render.render_pore_spaces`).
    generated : int
    title : str
    """
    data = len(images) - generated
    columns = max(generated, data, 1)
    columns = min(columns, 4)
    rows_per_part = [-(-generated // columns), -(-data // columns)]
    fig = plt.figure(figsize=(2.4 * columns * 2, 2.9 * max(rows_per_part)))
    halves = fig.add_gridspec(1, 2, wspace=0.08)
    for half, (start, count) in enumerate(((0, generated), (generated, data))):
        grid = halves[0, half].subgridspec(max(rows_per_part), columns, hspace=0.3)
        for j in range(count):
            name = "generated" if half == 0 else "data"
            _structure_panels(fig, grid[j // columns, j % columns], views[start + j],
                              images[start + j], f"{name} {j + 1}, n = "
                              f"{np.mean(images[start + j]):.2f}")  # fmt: skip
    fig.suptitle(f"{title}\n{VIEW_KEY}", fontsize=9)
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


def design_space_plot(panels: list, families: np.ndarray, targets: list, title: str,
                      path: Path) -> Path:  # fmt: skip
    """Samples of a catalogue in property space with the region they cover.

    Parameters
    ----------
    panels : list of dict
        One per panel: ``x``, ``y`` (axis labels), ``points`` (P, 2) sample
        coordinates, ``grid_x`` (A,), ``grid_y`` (B,) and ``inside`` (B, A) bool, the
        region on that grid; coordinates in the axes' own units.
    families : np.ndarray of str, shape (P,)
        Colours the samples.
    targets : list of dict
        ``points`` (one (2,) per panel) and ``inside`` (bool) each.
    title : str
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False)
    for i, (ax, panel) in enumerate(zip(axes[0], panels, strict=True)):
        ax.contourf(panel["grid_x"], panel["grid_y"], panel["inside"].astype(float),
                    levels=[0.5, 1.5], colors=["#d9e7f5"])  # fmt: skip
        ax.contour(panel["grid_x"], panel["grid_y"], panel["inside"].astype(float),
                   levels=[0.5], colors=["#4a78a8"], linewidths=1)  # fmt: skip
        for family in sorted(set(families)):
            mine = families == family
            ax.scatter(*panel["points"][mine].T, s=6, alpha=0.6, label=family or "samples")
        labelled = set()
        for target in targets:
            kind = "target inside" if target["inside"] else "target outside"
            ax.scatter(*target["points"][i], marker="*" if target["inside"] else "X", s=90,
                       c="black" if target["inside"] else "red", zorder=5,
                       label=None if kind in labelled else kind)  # fmt: skip
            labelled.add(kind)
        ax.set(xlabel=panel["x"], ylabel=panel["y"])
    axes[0, 0].legend(fontsize=7, markerscale=1.5)
    fig.suptitle(f"{title}\nshaded: the region the samples cover (any axis order)", fontsize=9)
    fig.tight_layout()
    return save(fig, path)
