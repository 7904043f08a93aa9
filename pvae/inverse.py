"""Inverse design: latent vectors whose decoded structures have target properties.

For a target such as ``porosity=0.7, k_xx=2.0`` (permeability in lattice units,
superficial convention) the latent vector z is optimised so that the regressor's
prediction at z hits the given targets (any subset of porosity and the K diagonal),
with a prior term ``prior_weight * |z|^2 / L`` that keeps z where the decoder has seen
data, from several starts: the latents of the dataset samples nearest to the target
and samples of the prior N(0, I). Optionally an encode-decode consistency term (as in
the research code) asks that the decoded structure encodes back to z.

Each candidate is then decoded and binarized at the target porosity (exact to one
voxel) with a texture (:mod:`pvae.texture`): the decoder's mean structure is too
coarse, so its permeability is too high, and a periodic random field of amplitude
sigma added to the logits restores fine features. Sigma is chosen per candidate by
*screening*: the model re-encodes the textured structures for a grid of sigmas and
predicts their properties (the research code's encode-decode consistency, applied
to the actual binary structure). Then physics decides: the structure is verified
(exact porosity, LBM permeability), and in ``refine`` further rounds sigma is moved
to where the screening curve, shifted by the verified-minus-screened offset, meets
the target, and verified again; each candidate keeps its best verified structure.
Candidates are ranked by the *verified* error, measured in units of the success
tolerances (porosity within 0.02, log10 K within 0.1, i.e. about 25%): a score <= 1
is a success. Targets outside the range of the training data are reported as such
and not attempted.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pvae.errors import PvaeError
from pvae.fidelity import TOLERANCE
from pvae.inference import infer
from pvae.latent import decode_logits, predict_images
from pvae.loading import LoadedModel
from pvae.physics.lbm import LBMSettings
from pvae.store.reader import VoxelStore
from pvae.targets import target_values
from pvae.texture import gaussian_field, textured
from pvae.verification import verify_structures

PROPERTIES = {
    "porosity": "porosity",
    "k_xx": "log10_k_xx",
    "k_yy": "log10_k_yy",
    "k_zz": "log10_k_zz",
}
COVERAGE_MARGIN = 0.05


@dataclass(frozen=True)
class InverseSettings:
    """Settings of the latent optimisation.

    Attributes
    ----------
    candidates : int
        Candidate designs per target: verified by LBM and reported.
    starts : int or None
        Latent starts optimised and screened per target, of which the ``candidates``
        with the lowest screened error are verified; None = 4 x ``candidates``.
    nearest_fraction : float
        Share of starts taken from the nearest dataset samples (the rest: prior draws).
    steps : int
        Adam steps on z.
    lr : float
    prior_weight : float
        Weight of |z|^2 / L.
    consistency_weight : float
        Weight of |encode(decode(z)) - z|^2 / L (0 = off).
    textures : tuple of float
        Grid of texture amplitudes sigma (logit units) screened per candidate; (0,) =
        plain decode.
    texture_length : float
        Correlation length of the texture field, voxels.
    refine : int
        Rounds of LBM-guided sigma correction after the first verification.
    seed : int
    """

    candidates: int = 8
    starts: int | None = None
    nearest_fraction: float = 0.5
    steps: int = 200
    lr: float = 0.05
    prior_weight: float = 0.02
    consistency_weight: float = 0.0
    textures: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
    texture_length: float = 1.0
    refine: int = 2
    seed: int = 0

    def __post_init__(self):
        if self.candidates < 1 or self.steps < 0 or self.refine < 0:
            raise PvaeError("inverse design: candidates >= 1, steps >= 0, refine >= 0 required")
        if self.starts is not None and self.starts < self.candidates:
            raise PvaeError("inverse design: starts must be >= candidates")

    @property
    def start_count(self) -> int:
        """Latent starts per target."""
        return self.starts if self.starts is not None else 4 * self.candidates
        if not self.textures or min(self.textures) < 0 or self.texture_length < 0:
            raise PvaeError("inverse design: texture amplitudes and length must be >= 0")


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


def dataset_targets(store: VoxelStore, rows, count: int) -> list[tuple[str, dict[str, float]]]:
    """Property vectors of ``count`` dataset samples with percolating K, as targets.

    The samples are spread evenly over ``rows`` (so over the families of a split
    ordered by family): porosity and the K diagonal (lattice units, superficial).

    Returns
    -------
    list of (sample_id, target)
    """
    table = store.manifest.iloc[list(rows)]
    table = table[(table[["k_xx", "k_yy", "k_zz"]] > 0).all(axis=1)]
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


def _starts(loaded, store, goal, given, settings, device) -> tuple[torch.Tensor, list[str]]:
    """Initial latents (S, L): nearest dataset samples (standardized target distance), then
    prior draws; with the kind of each start."""
    generator = torch.Generator().manual_seed(settings.seed)
    latent = loaded.model.config.latent_dim
    n_near = round(settings.start_count * settings.nearest_fraction) if store is not None else 0
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
    n_prior = settings.start_count - len(kinds)
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


def _k_given(target: dict[str, float]) -> list[str]:
    """The permeability components a target sets, e.g. ``["k_xx", "k_zz"]``."""
    return [prop for prop in ("k_xx", "k_yy", "k_zz") if prop in target]


def screen_textures(
    loaded: LoadedModel,
    logits: np.ndarray,
    porosity: np.ndarray,
    target: dict[str, float],
    settings: InverseSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texture fields and the screened permeability curve of each candidate.

    Parameters
    ----------
    logits : np.ndarray, shape (S, D, H, W)
    porosity : np.ndarray, shape (S,)
        Pore fraction each candidate is binarized at.
    target : dict

    Returns
    -------
    fields : np.ndarray of float32, shape (S, D, H, W)
        One :func:`~pvae.texture.gaussian_field` per candidate (seeded).
    curve : np.ndarray, shape (S, G)
        Mean re-encoded log10 K over the target's K components at each grid sigma
        (zeros when the target sets no K).
    error : np.ndarray, shape (S, G)
        Screened error in tolerance units (max over the target's K components).
    """
    rng = np.random.default_rng(settings.seed)
    fields = np.stack([gaussian_field(x.shape, settings.texture_length, rng) for x in logits])
    grid = settings.textures
    ks = _k_given(target)
    if not ks:
        zero = np.zeros((len(logits), len(grid)))
        return fields, zero, zero
    columns = [loaded.targets.index(PROPERTIES[k]) for k in ks]
    screened = np.stack(  # one candidate's G structures at a time: memory O(G), not O(S G)
        [
            predict_images(loaded, textured(x, f, grid, n))[:, columns]
            for x, f, n in zip(logits, fields, porosity, strict=True)
        ]
    )  # (S, G, K)
    goal = np.log10([target[k] for k in ks])
    error = (np.abs(screened - goal) / TOLERANCE["log10"]).max(axis=2)
    return fields, screened.mean(axis=2), error


def corrected_texture(
    grid: np.ndarray, curve: np.ndarray, offset: float, goal: float, current: float
) -> float:
    """Sigma where the screening curve shifted by the verified offset meets the goal.

    Parameters
    ----------
    grid, curve : np.ndarray, shape (G,)
        Sigmas (increasing) and screened mean log10 K there.
    offset : float
        Verified minus screened mean log10 K at the current sigma; NaN when the
        verified structure does not percolate (then sigma steps down, to coarser).
    goal : float
        Target mean log10 K.
    current : float

    Returns
    -------
    float
        Sigma on a fine linear interpolation of the grid.
    """
    if not np.isfinite(offset):
        return float(grid[grid < current].max(initial=0.0))
    fine = np.linspace(grid[0], grid[-1], 8 * len(grid))
    return float(fine[np.argmin(np.abs(np.interp(fine, grid, curve) + offset - goal))])


def _verify(images, target, lbm, device) -> pd.DataFrame:
    """Verified porosity and K of images, scored against the target."""
    table = verify_structures(images, lbm, device)
    return score_designs(table, target)


def _keep_better(best, images, rows, trial, sigma, target, lbm, device) -> None:
    """Verify ``trial`` structures of candidates ``rows``; where one scores better than
    the candidate's kept structure, replace the row of ``best`` and the image in place."""
    result = _verify(trial, target, lbm, device)
    best.loc[rows, "lbm_solves"] += 1
    for j, i in enumerate(rows):
        if result.at[j, "score"] < best.at[i, "score"]:
            best.loc[i, result.columns] = result.iloc[j].to_numpy()
            best.at[i, "texture"] = sigma[i]
            images[i] = trial[j]


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
        One row per candidate, best first: ``rank``, ``candidate``, ``start``,
        ``predicted_<prop>`` (regressor at z), ``verified_<prop>``, ``target_<prop>``,
        ``error_<prop>``, ``score``, ``success``, ``lbm_converged``, ``texture``
        (sigma of the kept structure), ``lbm_solves``.
    images : np.ndarray of bool, shape (S, D, H, W)
        Candidate structures in the same order, True = pore.
    """
    settings = settings or InverseSettings()
    goal = target_vector(target, loaded.targets)
    given = np.flatnonzero(np.isfinite(goal))
    z0, kinds = _starts(loaded, store, goal, given, settings, device)
    z, _ = optimise_latents(loaded, goal, z0, settings)
    logits, predicted = decode_logits(loaded, z.cpu().numpy())
    if "porosity" in target:
        porosity = np.full(len(z), target["porosity"])
    else:  # the decoder's expected pore fraction
        porosity = torch.sigmoid(torch.from_numpy(logits)).flatten(1).mean(1).double().numpy()
    fields, curve, error = screen_textures(loaded, logits, porosity, target, settings)
    keep = np.sort(np.argsort(error.min(axis=1), kind="stable")[: settings.candidates])
    logits, predicted, porosity = logits[keep], predicted[keep], porosity[keep]
    fields, curve, error = fields[keep], curve[keep], error[keep]
    kinds = [kinds[i] for i in keep]
    grid = np.asarray(settings.textures, dtype=float)
    sigma = grid[np.argmin(error, axis=1)]  # first (smallest) sigma on ties
    ks = _k_given(target)
    goal_k = float(np.mean(np.log10([target[k] for k in ks]))) if ks else np.nan

    def structures(rows):
        return np.stack([textured(logits[i], fields[i], [sigma[i]], porosity[i])[0] for i in rows])

    images = structures(np.arange(len(keep)))
    best = _verify(images, target, lbm, device)
    best["texture"], best["lbm_solves"] = sigma, 1
    for _ in range(settings.refine if ks else 0):
        rows = np.flatnonzero(~best["success"].to_numpy())
        for i in rows:
            verified = np.mean([best.at[i, f"verified_log10_{k}"] for k in ks])
            offset = verified - np.interp(best.at[i, "texture"], grid, curve[i])
            sigma[i] = corrected_texture(grid, curve[i], offset, goal_k, best.at[i, "texture"])
        rows = rows[sigma[rows] != best["texture"].to_numpy()[rows]]
        if not len(rows):
            break
        _keep_better(best, images, rows, structures(rows), sigma, target, lbm, device)
    table = pd.DataFrame({"start": kinds})
    for prop, name in PROPERTIES.items():
        if name in loaded.targets:
            value = predicted[:, loaded.targets.index(name)]
            table[f"predicted_{prop}"] = 10**value if name.startswith("log10_") else value
    table = pd.concat([table, best], axis=1)
    order = np.lexsort((table.index.to_numpy(), table["score"].to_numpy()))
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table.insert(1, "candidate", order)
    return table, images[order]
