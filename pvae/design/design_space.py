"""The design space of a catalogue: where its samples lie in property space, and which
targets lie inside it.

Property space is measured in the units of the design tolerance
(:data:`pvae.vae.fidelity.TOLERANCE`): porosity in steps of 0.02 and every log10 K in
steps of 0.1 decade, and distances are the largest coordinate difference (Chebyshev),
so a distance <= 1 between a target and a structure is exactly "that structure meets
the target". A catalogue sample counts under each of the axis permutations of its
image (a rotated sample permutes its K diagonal), since rotating it is free.

The *region* a catalogue covers: the points within the radius R of some sample, with
R the :data:`QUANTILE` quantile of the samples' leave-one-out nearest-neighbour
distances (a sample's own permutations left out with it), computed over the
coordinates a question uses. A target farther than R from every sample lies where the
catalogue has a gap larger than its usual spacing: outside. Samples whose K does not
percolate in every direction have no log10 K and take no part.

Coordinates beside the target properties (:data:`COORDINATES`): ``log10_k_mean``, the
mean of the three log10 K_ii (log10 of their geometric mean), and ``anisotropy``,
log10 (K_max / K_min) of the diagonal.
"""

from dataclasses import dataclass, field

import numpy as np

from pvae.core.errors import PvaeError
from pvae.data.store.reader import VoxelStore
from pvae.data.symmetry import axis_permutations, permuted_diagonal
from pvae.design.pool import permuted_name
from pvae.design.targets import K_TARGETS, PROPERTIES
from pvae.vae.fidelity import TOLERANCE

QUANTILE = 0.95
COORDINATES = ("porosity", *K_TARGETS, "log10_k_mean", "anisotropy")


def coordinates(labels: np.ndarray, names) -> np.ndarray:
    """Property coordinates in tolerance units.

    Parameters
    ----------
    labels : np.ndarray, shape (N, 4)
        Porosity and K_xx, K_yy, K_zz (lattice units, > 0).
    names : sequence of str
        From :data:`COORDINATES`.

    Returns
    -------
    np.ndarray, shape (N, len(names))
        Porosity / 0.02; log10 K (and the mean and anisotropy in decades) / 0.1.
    """
    labels = np.atleast_2d(np.asarray(labels, float))
    log10_k = np.log10(labels[:, 1:4])
    columns = {
        "porosity": labels[:, 0] / TOLERANCE["porosity"],
        **{k: log10_k[:, j] / TOLERANCE["log10"] for j, k in enumerate(K_TARGETS)},
        "log10_k_mean": log10_k.mean(axis=1) / TOLERANCE["log10"],
        "anisotropy": np.ptp(log10_k, axis=1) / TOLERANCE["log10"],
    }
    unknown = [n for n in names if n not in columns]
    if unknown:
        raise PvaeError(f"design space: unknown coordinate(s) {', '.join(unknown)}")
    return np.column_stack([columns[n] for n in names])


def _nearest(points: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chebyshev distance of each point to its nearest reference point, and its index."""
    distance = np.empty(len(points))
    index = np.empty(len(points), dtype=int)
    for start in range(0, len(points), 512):
        d = np.abs(points[start : start + 512, None, :] - reference[None]).max(axis=2)
        index[start : start + 512] = d.argmin(axis=1)
        distance[start : start + 512] = d.min(axis=1)
    return distance, index


@dataclass(frozen=True)
class DesignSpace:
    """The property vectors a catalogue reaches.

    Attributes
    ----------
    labels : np.ndarray, shape (P * G, 4)
        Porosity and K diagonal (lattice units) of every percolating sample under each
        of the G axis permutations (a sample's G rows consecutive).
    names : list of str
        ``<sample_id>`` or ``<sample_id>@<axes>`` per row (as design reports name a
        permuted parent).
    families : np.ndarray of str, shape (P * G,)
    permutations : int
        G.
    description : str
    """

    labels: np.ndarray
    names: list
    families: np.ndarray
    permutations: int
    description: str
    _radii: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of_rows(cls, store: VoxelStore, rows, description: str,
                required: bool = True) -> "DesignSpace | None":  # fmt: skip
        """The design space of some rows of a dataset (unlabelled and blocked ones skipped).

        With fewer than 2 usable samples: an error, or None when not ``required``.
        """
        table = store.manifest.iloc[np.asarray(rows, dtype=int)]
        table = table[table["porosity"].notna() & (table[list(K_TARGETS)] > 0).all(axis=1)]
        if len(table) < 2:
            if not required:
                return None
            raise PvaeError(f"{store.root}: fewer than 2 samples with K > 0 in every direction: "
                            "no design space")  # fmt: skip
        labels = table[["porosity", *K_TARGETS]].to_numpy(float)
        symmetries = axis_permutations(store.shape)
        permuted = np.stack([np.column_stack([labels[:, 0], permuted_diagonal(labels[:, 1:], s)])
                             for s in symmetries], axis=1)  # (P, G, 4)  # fmt: skip
        names = [permuted_name(sid, s) for sid in table["sample_id"] for s in symmetries]
        family = table["family"] if "family" in table else np.full(len(table), "")
        return cls(
            labels=permuted.reshape(-1, 4),
            names=names,
            families=np.repeat(np.asarray(family, dtype=str), len(symmetries)),
            permutations=len(symmetries),
            description=description,
        )

    def radius(self, names) -> float:
        """R over some coordinates: the :data:`QUANTILE` quantile of the samples'
        leave-one-out nearest-neighbour distances (tolerance units)."""
        key = tuple(names)
        if key not in self._radii:
            self._radii[key] = self._radius(key)
        return self._radii[key]

    def _radius(self, names) -> float:
        points = coordinates(self.labels, names)
        g = self.permutations
        own = points[::g]  # each sample as it is, against every other sample's permutations
        distance = np.empty(len(own))
        for i in range(len(own)):
            others = np.delete(points, np.s_[i * g : (i + 1) * g], axis=0)
            distance[i] = np.abs(others - own[i]).max(axis=1).min()
        return float(np.quantile(distance, QUANTILE))

    def locate(self, target: dict[str, float]) -> dict:
        """Where a target lies: its distance to the catalogue and the nearest sample.

        Parameters
        ----------
        target : dict
            Property -> value (:mod:`pvae.design.targets`), any subset.

        Returns
        -------
        dict
            ``distance`` (to the nearest sample, tolerance units over the target's
            properties), ``radius`` (R over them), ``inside`` (distance <= R),
            ``nearest_sample`` (its name, permutation included) and ``nearest``
            (its property vector: porosity, k_xx, k_yy, k_zz in lattice units).
        """
        props = [p for p in target if p in PROPERTIES]
        if not props:
            raise PvaeError("design space: the target names no property")
        point = np.array(
            [target[p] / TOLERANCE["porosity"] if p == "porosity"
             else np.log10(target[p]) / TOLERANCE["log10"] for p in props]
        )  # fmt: skip
        distance, index = _nearest(point[None], coordinates(self.labels, props))
        radius = self.radius(props)
        nearest = self.labels[index[0]]
        return {
            "distance": float(distance[0]),
            "radius": radius,
            "inside": bool(distance[0] <= radius),
            "nearest_sample": self.names[index[0]],
            "nearest": {"porosity": float(nearest[0])}
            | {k: float(v) for k, v in zip(K_TARGETS, nearest[1:], strict=True)},
        }

    def summary(self) -> dict:
        """Counts, ranges (porosity; log10 K mean and anisotropy in decades) and R over
        the whole target (porosity and the K diagonal), for reports."""
        ranges = {}
        for name in ("porosity", "log10_k_mean", "anisotropy"):
            values = self.samples([name])[:, 0] * _unit(name)
            ranges[name] = [float(values.min()), float(values.max())]
        return {
            "description": self.description,
            "samples": len(self.labels) // self.permutations,
            "permutations": self.permutations,
            **ranges,
            "radius": self.radius(("porosity", *K_TARGETS)),
            "quantile": QUANTILE,
        }

    def samples(self, names) -> np.ndarray:
        """Coordinates of each sample as it is (first permutation), (P, len(names))."""
        return coordinates(self.labels[:: self.permutations], names)

    def region_mask(self, names, grid: np.ndarray) -> np.ndarray:
        """Which points of a grid lie in the region over two (or more) coordinates.

        Parameters
        ----------
        names : sequence of str
            Coordinates of :data:`COORDINATES`.
        grid : np.ndarray, shape (M, len(names))
            Points in tolerance units.

        Returns
        -------
        np.ndarray of bool, shape (M,)
        """
        distance, _ = _nearest(grid, coordinates(self.labels, names))
        return distance <= self.radius(names)


def outside_note(located: dict, description: str) -> str:
    """One line for a target outside a design space, naming the nearest reachable vector."""
    nearest = located["nearest"]
    vector = ", ".join(f"{k} {v:.4g}" for k, v in nearest.items())
    return (f"outside the design space of {description}: {located['distance']:.1f} tolerance "
            f"units from the nearest sample, where samples lie within "
            f"{located['radius']:.1f} of each other; nearest reachable: {vector} "
            f"({located['nearest_sample']})")  # fmt: skip


PANELS = (("porosity", "log10_k_mean"), ("porosity", "anisotropy"))
AXIS_LABELS = {
    "porosity": "porosity $n^F$",
    "log10_k_mean": r"$\log_{10} \bar K$ (geometric mean of $K_{ii}$, lattice units)",
    "anisotropy": r"anisotropy $\log_{10} (K_{max} / K_{min})$",
}


def _unit(name: str) -> float:
    return TOLERANCE["porosity"] if name == "porosity" else TOLERANCE["log10"]


def design_space_figure(space: DesignSpace, targets: list, path, resolution: int = 120):
    """:func:`pvae.vae.figures.design_space_plot` of a design space, with targets.

    Parameters
    ----------
    space : DesignSpace
    targets : list of (id, target)
        Those that give porosity and the whole K diagonal are drawn, marked by whether
        they lie inside (:meth:`DesignSpace.locate`).
    path : path-like
        PNG to write.
    resolution : int
        Grid points per axis of the region.
    """
    from pvae.vae.figures import design_space_plot

    panels = []
    for names in PANELS:
        points = space.samples(names) * [_unit(n) for n in names]  # (P, 2), axis units
        lo, hi = points.min(axis=0), points.max(axis=0)
        pad = 0.1 * np.maximum(hi - lo, [_unit(n) for n in names])
        gx, gy = (np.linspace(lo[j] - pad[j], hi[j] + pad[j], resolution) for j in (0, 1))
        mesh = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)  # (B * A, 2)
        inside = space.region_mask(names, mesh / [_unit(n) for n in names])
        panels.append({"x": AXIS_LABELS[names[0]], "y": AXIS_LABELS[names[1]],
                       "points": points, "grid_x": gx, "grid_y": gy,
                       "inside": inside.reshape(resolution, resolution)})  # fmt: skip
    drawn = []
    for _, target in targets:
        if not {"porosity", *K_TARGETS} <= set(target):
            continue
        labels = np.array([[target["porosity"], *(target[k] for k in K_TARGETS)]])
        drawn.append({
            "points": [coordinates(labels, names)[0] * [_unit(n) for n in names]
                       for names in PANELS],
            "inside": space.locate(target)["inside"],
        })  # fmt: skip
    families = space.families[:: space.permutations]
    return design_space_plot(panels, families, drawn, f"design space of {space.description}",
                             path)  # fmt: skip
