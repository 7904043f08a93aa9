"""Targets of inverse design: parsing, checking, picking from datasets, scoring.

A target maps property names to values: ``porosity`` (pore fraction) and any of
``k_xx``, ``k_yy``, ``k_zz`` (permeability diagonal, lattice units, superficial
convention). A design succeeds when its *verified* porosity is within 0.02 and every
verified log10 K_ii within 0.1 decade of the target (:data:`pvae.vae.fidelity.TOLERANCE`).
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd

from pvae.core.errors import PvaeError
from pvae.data.store.reader import VoxelStore
from pvae.vae.fidelity import TOLERANCE

PROPERTIES = {
    "porosity": "porosity",
    "k_xx": "log10_k_xx",
    "k_yy": "log10_k_yy",
    "k_zz": "log10_k_zz",
}
K_TARGETS = ("k_xx", "k_yy", "k_zz")
COVERAGE_MARGIN = 0.05


def parse_target(items: list[str]) -> dict[str, float]:
    """``["porosity=0.7", "k_xx=2.0"]`` -> ``{"porosity": 0.7, "k_xx": 2.0}``, validated."""
    target = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise PvaeError(f"--target {item}: expected NAME=VALUE, e.g. porosity=0.7")
        if name not in PROPERTIES:
            raise PvaeError(
                f"--target {item}: unknown property {name!r}; choose from {', '.join(PROPERTIES)}"
            )
        if name in target:
            raise PvaeError(f"--target {item}: {name} is given twice")
        try:
            target[name] = float(value)
        except ValueError:
            raise PvaeError(f"--target {item}: {value!r} is not a number") from None
    return check_target(target, "--target")


def check_target(target: dict[str, float], where: str) -> dict[str, float]:
    """Physically possible values: 0 < porosity < 1, K > 0 (finite)."""
    if not target:
        raise PvaeError(f"{where}: no target property given")
    for name, value in target.items():
        if not math.isfinite(value):
            raise PvaeError(f"{where}: {name} = {value} is not finite")
        if name == "porosity" and not 0 < value < 1:
            raise PvaeError(f"{where}: porosity = {value} is impossible (must lie in (0, 1))")
        if name.startswith("k_") and value <= 0:
            raise PvaeError(f"{where}: {name} = {value} is impossible (permeability must be > 0)")
    return target


def targets_from_csv(path: str | Path) -> list[tuple[str, dict[str, float]]]:
    """Many targets from a CSV: the research property table or a plain layout.

    Research layout (``case``, ``n_F``, ``Permeability_x/y/z``; pore-averaged K, converted
    to superficial as everywhere in pvae: K = n_F * K_table); plain layout: any of
    ``porosity``, ``k_xx``, ``k_yy``, ``k_zz`` with an optional ``id`` column.

    Returns
    -------
    list of (id, target)
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype={"case": str, "id": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise PvaeError(f"{path}: not a readable CSV ({exc.__class__.__name__})") from None
    rows = []
    if {"case", "n_F", "Permeability_x"} <= set(table.columns):
        for _, row in table.iterrows():
            n = float(row["n_F"])
            target = {"porosity": n} | {
                f"k_{a}{a}": n * float(row[f"Permeability_{a}"]) for a in "xyz"
            }
            rows.append((str(row["case"]), target))
    else:
        names = [c for c in table.columns if c in PROPERTIES]
        if not names:
            raise PvaeError(
                f"{path}: no target columns (porosity, k_xx, k_yy, k_zz or the research layout)"
            )
        for i, row in table.iterrows():
            rows.append(
                (str(row["id"]) if "id" in table else str(i), {c: float(row[c]) for c in names})
            )
    return [(rid, check_target(t, f"{path}: row {rid}")) for rid, t in rows]


def target_vector(target: dict[str, float], names: tuple[str, ...]) -> np.ndarray:
    """Target in the model's raw target units (log10 K), NaN where not given; shape (T,)."""
    vector = np.full(len(names), np.nan)
    for prop, value in target.items():
        name = PROPERTIES[prop]
        if name not in names:
            raise PvaeError(f"the model does not predict {prop} (its targets: {', '.join(names)})")
        vector[names.index(name)] = math.log10(value) if name.startswith("log10_") else value
    return vector


def dataset_targets(store: VoxelStore, rows, count: int) -> list[tuple[str, dict[str, float]]]:
    """Property vectors of ``count`` dataset samples with percolating K, as targets.

    The samples are spread evenly over ``rows`` (so over the families of a split
    ordered by family): porosity and the K diagonal (lattice units, superficial).

    Returns
    -------
    list of (sample_id, target)
    """
    table = store.manifest.iloc[list(rows)]
    table = table[(table[list(K_TARGETS)] > 0).all(axis=1)]
    picked = np.unique(np.linspace(0, len(table) - 1, count).round().astype(int))
    return [
        (r.sample_id, {"porosity": r.porosity, "k_xx": r.k_xx, "k_yy": r.k_yy, "k_zz": r.k_zz})
        for r in table.iloc[picked if len(table) else []].itertuples()
    ]


def coverage_problems(target: dict[str, float], ranges: dict[str, list[float]]) -> list[str]:
    """Target properties outside the training data's range (with a 5% margin).

    Properties the model has no training range for are not judged.
    """
    problems = []
    for prop, value in target.items():
        name = PROPERTIES[prop]
        lo, hi = ranges.get(name, [math.nan, math.nan])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            continue  # no known training values: coverage cannot be judged
        x = math.log10(value) if name.startswith("log10_") else value
        margin = COVERAGE_MARGIN * (hi - lo)
        if not lo - margin <= x <= hi + margin:
            shown = (10**lo, 10**hi) if name.startswith("log10_") else (lo, hi)
            span = f"{shown[0]:.3g} to {shown[1]:.3g}"
            problems.append(f"{prop} = {value:g} is outside the training data ({span})")
    return problems


def midpoint_targets(
    store: VoxelStore, count: int, seed: int = 0
) -> list[tuple[str, dict[str, float]]]:
    """Targets between two samples of one family: midpoints in (porosity, log10 K) space.

    Distinct pairs are drawn (seeded) from samples whose K percolates in every
    direction, the families taken in turn, so a target lies where the family's data
    has no sample.

    Returns
    -------
    list of (``"<id_a>+<id_b>"``, target)
    """
    table = store.manifest
    table = table[(table[list(K_TARGETS)] > 0).all(axis=1)]
    families = sorted(set(table["family"]))
    rng = np.random.default_rng(seed)
    targets, used = [], set()
    for i in range(count):
        part = table[table["family"] == families[i % len(families)]]
        if len(part) < 2:
            continue
        for _ in range(100):  # a pair not drawn before (in either order)
            pair = frozenset(rng.choice(len(part), 2, replace=False).tolist())
            if pair not in used:
                break
        else:
            continue
        used.add(pair)
        a, b = part.iloc[sorted(pair)].itertuples()
        target = {"porosity": (a.porosity + b.porosity) / 2} | {
            k: math.sqrt(getattr(a, k) * getattr(b, k)) for k in K_TARGETS
        }
        targets.append((f"{a.sample_id}+{b.sample_id}", target))
    return targets


def k_targets(target: dict[str, float]) -> list[str]:
    """The permeability components a target sets, e.g. ``["k_xx", "k_zz"]``."""
    return [prop for prop in K_TARGETS if prop in target]


def tolerance_errors(porosity, log10_k, target: dict[str, float]) -> np.ndarray:
    """Errors against a target in tolerance units: the one success measure of design.

    Parameters
    ----------
    porosity : array-like, shape (N,), or None
        Porosities (None when the target sets no porosity).
    log10_k : array-like, shape (N, 3)
        log10 of K_xx, K_yy, K_zz (lattice units); NaN or -inf where K is not positive.
    target : dict
        Property -> value (:data:`PROPERTIES`).

    Returns
    -------
    np.ndarray, shape (N, len(target))
        |porosity error| / 0.02 and |log10 K error| / 0.1 decade, in the target's order;
        inf where a value is missing. A structure whose largest error is <= 1 succeeds.
    """
    errors = []
    for prop, value in target.items():
        if prop == "porosity":
            errors.append(np.abs(np.asarray(porosity, float) - value) / TOLERANCE["porosity"])
        else:
            column = np.asarray(log10_k, float)[:, K_TARGETS.index(prop)]
            errors.append(np.abs(column - math.log10(value)) / TOLERANCE["log10"])
    width = len(np.asarray(log10_k)) if log10_k is not None else len(np.asarray(porosity))
    stacked = np.stack(errors, axis=1) if errors else np.zeros((width, 0))
    return np.nan_to_num(stacked, nan=np.inf, posinf=np.inf)


def score_designs(table: pd.DataFrame, target: dict[str, float]) -> pd.DataFrame:
    """Add ``target_*``, ``error_*`` (absolute: porosity, decades), ``score`` (largest
    error in tolerance units, :func:`tolerance_errors`) and ``success``."""
    log10_k = table[[f"verified_log10_{k}" for k in K_TARGETS]].to_numpy(float)
    units = tolerance_errors(table["verified_porosity"], log10_k, target)  # (N, len(target))
    for j, (prop, value) in enumerate(target.items()):
        table[f"target_{prop}"] = value
        tol = TOLERANCE["porosity"] if prop == "porosity" else TOLERANCE["log10"]
        table[f"error_{prop}"] = np.where(np.isfinite(units[:, j]), units[:, j] * tol, np.nan)
    table["score"] = units.max(axis=1) if units.shape[1] else 0.0
    table["success"] = table["score"] <= 1.0
    return table
