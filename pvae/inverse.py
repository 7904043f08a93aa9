"""Inverse design: latent vectors whose decoded structures have target properties.

For a target such as ``porosity=0.7, k_xx=2.0`` (permeability in lattice units,
superficial convention) the latent vector z is optimised so that the regressor's
prediction at z hits the given targets (any subset of porosity and the K diagonal),
with a prior term ``prior_weight * |z|^2 / L`` that keeps z where the decoder has seen
data, from several starts: the latents of the dataset samples nearest to the target
and samples of the prior N(0, I). Optionally an encode-decode consistency term (as in
the research code) asks that the decoded structure encodes back to z.

Every candidate is then decoded, binarized, and verified by physics (exact porosity,
LBM permeability); candidates are ranked by the *verified* error, measured in units
of the success tolerances (porosity within 0.02, log10 K within 0.1, i.e. about 25%):
a score <= 1 is a success. Targets outside the range of the training data are
reported as such and not attempted.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pvae.errors import PvaeError
from pvae.inference import infer
from pvae.latent import decode
from pvae.loading import LoadedModel
from pvae.physics.lbm import LBMSettings
from pvae.store.reader import VoxelStore
from pvae.targets import target_values
from pvae.verification import verify_structures

PROPERTIES = {
    "porosity": "porosity",
    "k_xx": "log10_k_xx",
    "k_yy": "log10_k_yy",
    "k_zz": "log10_k_zz",
}
TOLERANCE = {"porosity": 0.02, "log10": 0.1}
COVERAGE_MARGIN = 0.05


@dataclass(frozen=True)
class InverseSettings:
    """Settings of the latent optimisation.

    Attributes
    ----------
    candidates : int
        Starts (and so candidate designs) per target.
    nearest_fraction : float
        Share of starts taken from the nearest dataset samples (the rest: prior draws).
    steps : int
        Adam steps on z.
    lr : float
    prior_weight : float
        Weight of |z|^2 / L.
    consistency_weight : float
        Weight of |encode(decode(z)) - z|^2 / L (0 = off).
    seed : int
    """

    candidates: int = 8
    nearest_fraction: float = 0.5
    steps: int = 200
    lr: float = 0.05
    prior_weight: float = 0.02
    consistency_weight: float = 0.0
    seed: int = 0


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


def _starts(loaded, store, goal, given, settings, device) -> tuple[torch.Tensor, list[str]]:
    """Initial latents (S, L): nearest dataset samples (standardized target distance), then
    prior draws; with the kind of each start."""
    generator = torch.Generator().manual_seed(settings.seed)
    latent = loaded.model.config.latent_dim
    n_near = round(settings.candidates * settings.nearest_fraction) if store is not None else 0
    starts, kinds = [], []
    if n_near:
        values = target_values(store, loaded.targets)
        std = np.array(loaded.normalizer.std)
        distance = np.nansum(((values - goal) / std)[:, given] ** 2, axis=1)
        distance[~np.isfinite(values[:, given]).all(axis=1)] = np.inf
        nearest = np.argsort(distance)[:n_near]
        mu = infer(loaded.model, loaded.normalizer, store, nearest)["mu"]
        starts.append(torch.as_tensor(mu, dtype=torch.float32))
        kinds += [f"nearest:{store.manifest['sample_id'].iloc[i]}" for i in nearest]
    n_prior = settings.candidates - len(kinds)
    starts.append(torch.randn(n_prior, latent, generator=generator))
    kinds += ["prior"] * n_prior
    return torch.cat(starts).to(device), kinds


def optimise_latents(
    loaded: LoadedModel, goal: np.ndarray, z0: torch.Tensor, settings: InverseSettings
):
    """Adam on z so that the regressor hits ``goal`` (raw units, NaN = free).

    Returns
    -------
    z : torch.Tensor, shape (S, L)
    history : np.ndarray, shape (steps + 1,)
        Mean standardized squared regression error over candidates at each step.
    """
    model = loaded.model
    given = torch.as_tensor(np.isfinite(goal), device=z0.device)
    goal_std = loaded.normalizer.encode(
        torch.as_tensor(np.nan_to_num(goal), dtype=torch.float32, device=z0.device)[None]
    )
    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=settings.lr)
    latent = z.shape[1]
    history = []
    for param in model.parameters():
        param.requires_grad_(False)
    try:
        for step in range(settings.steps + 1):
            error = ((model.predict(z) - goal_std) ** 2)[:, given].mean(dim=1)
            history.append(float(error.detach().mean()))
            if step == settings.steps:
                break
            loss = error + settings.prior_weight * (z**2).sum(dim=1) / latent
            if settings.consistency_weight > 0:
                back, _ = model.encode(torch.sigmoid(model.decode(z)))
                loss = loss + settings.consistency_weight * ((back - z) ** 2).sum(dim=1) / latent
            optimizer.zero_grad()
            loss.sum().backward()
            optimizer.step()
    finally:
        for param in model.parameters():
            param.requires_grad_(True)
    return z.detach(), np.array(history)


def score_designs(table: pd.DataFrame, target: dict[str, float]) -> pd.DataFrame:
    """Add ``target_*``, ``error_*``, ``score`` (max error / tolerance) and ``success``."""
    scores = []
    for prop, value in target.items():
        table[f"target_{prop}"] = value
        if prop == "porosity":
            error = (table["verified_porosity"] - value).abs()
            tol = TOLERANCE["porosity"]
        else:
            error = (table[f"verified_log10_{prop}"] - math.log10(value)).abs()
            tol = TOLERANCE["log10"]
        table[f"error_{prop}"] = error
        scores.append((error / tol).fillna(np.inf))
    table["score"] = np.max(scores, axis=0)
    table["success"] = table["score"] <= 1.0
    return table


def design(
    loaded: LoadedModel,
    target: dict[str, float],
    store: VoxelStore | None = None,
    settings: InverseSettings | None = None,
    lbm: LBMSettings | None = None,
    device: str = "cpu",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Design, verify and rank candidate structures for one target.

    Parameters
    ----------
    loaded : LoadedModel
    target : dict
        Property -> value (porosity; k_xx/k_yy/k_zz in lattice units, superficial).
    store : VoxelStore, optional
        Dataset whose nearest samples seed half of the starts (the model's training
        data is the natural choice); without it every start is a prior draw.
    settings : InverseSettings, optional
    lbm : LBMSettings, optional
        Verification solver settings.

    Returns
    -------
    table : pd.DataFrame
        One row per candidate, best first: ``rank``, ``start``, ``predicted_<prop>``,
        ``verified_<prop>``, ``target_<prop>``, ``error_<prop>``, ``score``,
        ``success``, ``lbm_converged``, ``latent_error`` (final regression error).
    images : np.ndarray of bool, shape (S, D, H, W)
        Candidate structures in the same order, True = pore.
    """
    settings = settings or InverseSettings()
    goal = target_vector(target, loaded.targets)
    given = np.flatnonzero(np.isfinite(goal))
    z0, kinds = _starts(loaded, store, goal, given, settings, device)
    z, _ = optimise_latents(loaded, goal, z0, settings)
    images, predicted = decode(loaded, z.cpu().numpy())
    table = pd.DataFrame({"start": kinds})
    for prop, name in PROPERTIES.items():
        if name in loaded.targets:
            value = predicted[:, loaded.targets.index(name)]
            table[f"predicted_{prop}"] = 10**value if name.startswith("log10_") else value
    verified = verify_structures(images, lbm, device)
    table["verified_porosity"] = verified["verified_porosity"]
    for prop in ("k_xx", "k_yy", "k_zz"):
        table[f"verified_{prop}"] = verified[f"verified_{prop}"]
        table[f"verified_log10_{prop}"] = verified[f"verified_log10_{prop}"]
    table["lbm_converged"] = verified["lbm_converged"]
    table = score_designs(table, target)
    order = np.lexsort((table.index.to_numpy(), table["score"].to_numpy()))
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table.insert(1, "candidate", order)
    return table, images[order]
