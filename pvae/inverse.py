"""Inverse design: structures with target properties, optimised as structures.

For a target such as ``porosity=0.7, k_xx=2.0`` (permeability in lattice units,
superficial convention):

1. **Starts** come from the design pool (:mod:`pvae.design_pool`: the model's training
   split, never the samples it is judged on): the latent means of the ``neighbours``
   pool samples whose labels are nearest to the target span the search, z = w B, and
   the starts are those samples (one-hot w) and midpoints between pairs of them. In the
   full latent space the optimiser finds structures that fool the critic (LBM measured
   0.2 to 0.5 decade below what it predicted); in the span of real samples' latents its
   judgement holds.
2. **Optimisation.** Adam on w minimises, per start,
   ``critic_weight * e_critic + regressor_weight * e_regressor + prior_weight |z|^2 / L``:
   ``e_critic`` is the mean squared error, in tolerance units (0.1 decade), of the
   critic's log10 K_ii of decode(z) binarized at the target porosity
   (:func:`pvae.critic.straight_through`), so what is optimised is the structure
   itself; ``e_regressor`` is the same error of the regressor at z, including porosity.
   Without a critic the regressor term alone drives z (the model's own re-encoding
   then screens the structures).
3. **Finalists.** Every optimised z is decoded and binarized at the target porosity
   (exact to one voxel); the critic scores the binary structures (with their
   connectivity), and the best ``candidates`` whose novelty
   (:mod:`pvae.novelty`) is at least ``min_novelty`` go on.
4. **Physics decides.** LBM verifies the finalists. While no finalist succeeds and the
   LBM budget allows, each failed finalist is re-optimised toward the target shifted by
   its verified-minus-critic offset (the critic's local bias, measured) and verified
   again, keeping the better structure. Candidates are ranked by the *verified* error in
   tolerance units (porosity 0.02, log10 K 0.1): a score <= 1 is a success.

Targets outside the range of the training data are reported as such and not attempted.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pvae.critic import straight_through
from pvae.design_pool import DesignPool, nearest_rows
from pvae.design_targets import K_TARGETS, PROPERTIES, k_targets, score_designs, target_vector
from pvae.errors import PvaeError
from pvae.fidelity import TOLERANCE
from pvae.imaging.binarize import binarize_at
from pvae.inference import infer
from pvae.latent import decode_logits, predict_images
from pvae.loading import LoadedModel
from pvae.novelty import NoveltyIndex
from pvae.physics.lbm import LBMSettings
from pvae.surrogate import SurrogateEnsemble
from pvae.verification import verify_structures

NOT_PERCOLATING_OFFSET = -0.3  # decades: aim higher after a blocked verification


@dataclass(frozen=True)
class InverseSettings:
    """Settings of inverse design (:mod:`pvae.inverse`).

    Attributes
    ----------
    candidates : int
        Finalists verified by LBM and reported per target.
    starts : int
        Latent starts optimised per target (>= ``candidates``).
    neighbours : int
        Pool samples nearest to the target whose latents span the search (z = w B).
    nearest_fraction : float
        Share of starts that are those samples themselves; the rest are midpoints
        between pairs of them (prior draws of z without a pool).
    steps : int
        Adam steps on z.
    lr : float
        Adam step size (latent units).
    critic_weight, regressor_weight, prior_weight, consistency_weight : float
        Weights of the critic error and the regressor error (both squared, in
        tolerance units), of |z|^2 / L and of the research code's encode-decode
        consistency |encode(decode(z)) - z|^2 / L (0 = off).
    temperature : float
        Logit scale of the straight-through binarization's gradient.
    lbm_budget : int
        LBM verifications per target, at most (the first round verifies ``candidates``).
    refine_steps : int
        Adam steps of each re-optimisation after a failed verification.
    min_novelty : float
        Finalists must have novelty >= this (0 = report novelty, reject nothing).
    seed : int
    """

    candidates: int = 4
    starts: int = 16
    neighbours: int = 6
    nearest_fraction: float = 0.5
    steps: int = 30
    lr: float = 0.05
    critic_weight: float = 1.0
    regressor_weight: float = 0.1
    prior_weight: float = 0.02
    consistency_weight: float = 0.0
    temperature: float = 1.0
    lbm_budget: int = 12
    refine_steps: int = 20
    min_novelty: float = 0.0
    seed: int = 0

    def __post_init__(self):
        problems = []
        if self.candidates < 1:
            problems.append("candidates >= 1")
        if self.starts < self.candidates:
            problems.append("starts >= candidates")
        if self.neighbours < 1:
            problems.append("neighbours >= 1")
        if not 0 <= self.nearest_fraction <= 1:
            problems.append("nearest_fraction in [0, 1]")
        if self.steps < 0 or self.refine_steps < 0:
            problems.append("steps >= 0")
        if not self.lr > 0 or not self.temperature > 0:
            problems.append("lr and temperature > 0")
        weights = (self.critic_weight, self.regressor_weight, self.prior_weight,
                   self.consistency_weight)  # fmt: skip
        if min(weights) < 0:
            problems.append("weights >= 0")
        if self.lbm_budget < self.candidates:
            problems.append("lbm_budget >= candidates")
        if not 0 <= self.min_novelty < 1:
            problems.append("min_novelty in [0, 1)")
        if problems:
            raise PvaeError(f"inverse design settings: need {', '.join(problems)}")


def _starts(loaded, pool, goal, settings, device):
    """Initial search variables and the kind of each start.

    With a pool: the latent means of the ``neighbours`` pool samples nearest to the
    target form a basis B (k, L), and each start is a weight vector w (z = w B): the
    nearest samples themselves (one-hot), then midpoints of pairs of them
    (weights 1/2, 1/2), nearest pairs first. Without a pool: prior draws of z.

    Returns
    -------
    x0 : torch.Tensor, shape (S, k) or (S, L)
    basis : torch.Tensor, shape (k, L), or None
    kinds : list of str
        ``nearest:<id>``, ``midpoint:<id>+<id>`` or ``prior``.
    """
    if pool is None:
        generator = torch.Generator().manual_seed(settings.seed)
        z = torch.randn(settings.starts, loaded.model.config.latent_dim, generator=generator)
        return z.to(device), None, ["prior"] * settings.starts
    rows = nearest_rows(loaded, pool, goal, settings.neighbours)
    mu = infer(loaded.model, loaded.normalizer, pool.store, rows)["mu"]  # (k, L)
    basis = torch.as_tensor(mu, dtype=torch.float32, device=device)
    ids = pool.store.manifest["sample_id"].iloc[rows].tolist()
    k = len(ids)
    n_near = min(k, max(1, round(settings.starts * settings.nearest_fraction)))
    weights = [np.eye(k)[i] for i in range(n_near)]
    kinds = [f"nearest:{ids[i]}" for i in range(n_near)]
    pairs = [(i, j) for j in range(k) for i in range(j)] or [(0, 0)]  # nearest pairs first
    for a, b in (pairs[n % len(pairs)] for n in range(settings.starts - n_near)):
        weights.append(0.5 * (np.eye(k)[a] + np.eye(k)[b]))
        kinds.append(f"midpoint:{ids[a]}+{ids[b]}")
    return torch.as_tensor(np.stack(weights), dtype=torch.float32, device=device), basis, kinds


def latents(x: torch.Tensor, basis: torch.Tensor | None) -> torch.Tensor:
    """Latent vectors (S, L) of search variables: ``x B`` for weights over a basis, else x."""
    return x if basis is None else x @ basis


def optimise_latents(
    loaded: LoadedModel,
    x0: torch.Tensor,
    goal: np.ndarray,
    porosity: torch.Tensor,
    settings: InverseSettings,
    critic: SurrogateEnsemble | None = None,
    critic_goal: torch.Tensor | None = None,
    steps: int | None = None,
    basis: torch.Tensor | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Adam toward the target, scored on the regressor and on the decoded structure.

    Parameters
    ----------
    x0 : torch.Tensor, shape (S, L) or (S, k)
        Latent vectors, or weights over ``basis`` (z = x B): the search then stays in
        the span of real samples' latents, where the critic's judgement holds.
    goal : np.ndarray, shape (T,)
        Target in the model's raw units (log10 K), NaN = not set.
    porosity : torch.Tensor, shape (S,)
        Pore fraction each structure is binarized at for the critic.
    critic : SurrogateEnsemble, optional
    critic_goal : torch.Tensor, shape (S, 3), optional
        log10 K_xx, K_yy, K_zz the critic should see (NaN = not set); the target, or
        the target shifted by a measured critic offset.
    steps : int, optional
        Default ``settings.steps``.
    basis : torch.Tensor, shape (k, L), optional

    Returns
    -------
    x : torch.Tensor, shape of ``x0``
    history : np.ndarray, shape (steps + 1,)
        Mean loss over starts at each step.
    """
    model = loaded.model
    device = x0.device
    steps = settings.steps if steps is None else steps
    given = torch.as_tensor(np.isfinite(goal), device=device)
    goal_t = torch.as_tensor(np.nan_to_num(goal), dtype=torch.float32, device=device)
    scale = torch.tensor(
        [TOLERANCE["log10"] if n.startswith("log10_") else TOLERANCE["porosity"]
         for n in loaded.targets], device=device)  # fmt: skip
    use_critic = (
        critic is not None
        and critic_goal is not None
        and settings.critic_weight > 0
        and bool(torch.isfinite(critic_goal).any())
    )
    if use_critic:
        critic_given = torch.isfinite(critic_goal)
        critic_count = critic_given.sum(1).clamp_min(1)  # (S,) K components set
        critic_target = torch.nan_to_num(critic_goal).to(device)
    x = x0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=settings.lr)
    latent = model.config.latent_dim
    history = []
    model.requires_grad_(False)
    try:
        for step in range(steps + 1):
            z = latents(x, basis)
            predicted = loaded.normalizer.decode(model.predict(z))  # (S, T) raw units
            error = (((predicted - goal_t) / scale) ** 2)[:, given].mean(dim=1)
            loss = settings.regressor_weight * error
            loss = loss + settings.prior_weight * (z**2).sum(dim=1) / latent
            if use_critic or settings.consistency_weight > 0:
                logits = model.decode(z)  # (S, 1, D, H, W)
            if use_critic:
                pore = straight_through(logits, porosity, settings.temperature)
                k = critic.log10_k_diagonal(pore.to(critic.device)).to(device)  # (S, 3)
                miss = torch.where(critic_given, (k - critic_target) / TOLERANCE["log10"], 0.0)
                loss = loss + settings.critic_weight * (miss**2).sum(1) / critic_count
            if settings.consistency_weight > 0:
                back, _ = model.encode(torch.sigmoid(logits))
                loss = loss + settings.consistency_weight * ((back - z) ** 2).sum(dim=1) / latent
            history.append(float(loss.detach().mean()))
            if step == steps:
                break
            optimizer.zero_grad()
            loss.sum().backward()
            optimizer.step()
    finally:
        model.requires_grad_(True)
    return x.detach(), np.array(history)


def _structures(loaded, z, porosity) -> tuple[np.ndarray, np.ndarray]:
    """Decode z and binarize each at its pore fraction: images (S, D, H, W) bool and the
    regressor's predictions at z (S, T)."""
    logits, predicted = decode_logits(loaded, z.cpu().numpy())
    images = np.stack([binarize_at(x, float(p)) for x, p in zip(logits, porosity, strict=True)])
    return images, predicted


def _critic_log10_k(loaded, critic, images) -> np.ndarray:
    """log10 K diagonal (S, 3) of binary structures by the critic (-inf where a direction
    does not percolate), or by the model's own re-encoding without a critic."""
    if critic is None:
        predicted = predict_images(loaded, images)
        return np.stack([
            predicted[:, loaded.targets.index(PROPERTIES[k])] if PROPERTIES[k] in loaded.targets
            else np.full(len(images), np.nan) for k in K_TARGETS], axis=1)  # fmt: skip
    k = np.diagonal(critic.predict(images).k, axis1=1, axis2=2)
    with np.errstate(divide="ignore"):
        return np.log10(k)


def _screen_score(log10_k: np.ndarray, target: dict) -> np.ndarray:
    """Screened error (S,) in tolerance units over the target's K components."""
    ks = k_targets(target)
    if not ks:
        return np.zeros(len(log10_k))
    columns = [K_TARGETS.index(k) for k in ks]
    goal = np.log10([target[k] for k in ks])
    miss = np.abs(log10_k[:, columns] - goal) / TOLERANCE["log10"]
    return np.nan_to_num(miss, nan=np.inf).max(axis=1)


class _Finalists:
    """The verified candidates of one target and everything kept about them."""

    def __init__(self, x, images, log10_k, novelty, match, kinds, predicted, table):
        self.x, self.images, self.log10_k = x, images, log10_k
        self.novelty, self.match, self.kinds, self.predicted = novelty, match, kinds, predicted
        self.table = table

    def replace(self, i, x, image, log10_k, novelty, match, predicted, row) -> None:
        self.x[i], self.images[i], self.log10_k[i] = x, image, log10_k
        self.novelty[i], self.match[i], self.predicted[i] = novelty, match, predicted
        for column, value in row.items():
            self.table.at[i, column] = value


def _novelty(index: NoveltyIndex | None, image: np.ndarray) -> tuple[float, int]:
    """(novelty, position of the most similar pool sample) of a structure; (NaN, -1)
    without an index."""
    if index is None:
        return math.nan, -1
    iou, match = index.best_match(image)
    return 1.0 - iou, match


def _pick(order, images, index, min_novelty, count) -> tuple[list[int], list[float], list[int]]:
    """The first ``count`` structures in ``order`` whose novelty is >= ``min_novelty``."""
    picked, novelty, match = [], [], []
    for i in order:
        value, j = _novelty(index, images[i])
        if value < min_novelty:
            continue
        picked.append(int(i))
        novelty.append(value)
        match.append(j)
        if len(picked) == count:
            break
    return picked, novelty, match


def design(
    loaded: LoadedModel,
    target: dict[str, float],
    pool: DesignPool | None = None,
    settings: InverseSettings | None = None,
    lbm: LBMSettings | None = None,
    device: str = "cpu",
    critic: SurrogateEnsemble | None = None,
    novelty_index: NoveltyIndex | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Design, verify and rank candidate structures for one target.

    Parameters
    ----------
    loaded : LoadedModel
    target : dict
        Property -> value (porosity; k_xx/k_yy/k_zz in lattice units, superficial).
    pool : DesignPool, optional
        Samples the starts come from (:func:`pvae.design_pool.design_pool`); without
        it every start is a prior draw.
    settings : InverseSettings, optional
    lbm : LBMSettings, optional
        Verification solver settings.
    device : str
    critic : SurrogateEnsemble, optional
        Scores the decoded structures during optimisation and screening.
    novelty_index : NoveltyIndex, optional
        The pool's structures, for ``novelty`` (NaN without it).

    Returns
    -------
    table : pd.DataFrame
        One row per finalist, best first: ``rank``, ``start``, ``predicted_<prop>``
        (regressor at z), ``critic_<k>`` (critic on the structure, lattice units),
        ``verified_<prop>``, ``target_<prop>``, ``error_<prop>``, ``score``,
        ``success``, ``lbm_converged``, ``lbm_solves``, ``novelty`` and
        ``nearest_sample`` (the pool sample it overlaps most). Empty when no
        optimised structure reaches ``min_novelty``.
    images : np.ndarray of bool, shape (C, D, H, W)
        The finalists' structures in the same order, True = pore.
    """
    settings = settings or InverseSettings()
    goal = target_vector(target, loaded.targets)
    x0, basis, kinds = _starts(loaded, pool, goal, settings, device)
    if "porosity" in target:
        porosity = torch.full((len(x0),), target["porosity"], device=device)
    else:  # the decoder's expected pore fraction at each start
        with torch.no_grad():
            porosity = torch.sigmoid(loaded.model.decode(latents(x0, basis))).flatten(1).mean(1)
    ks = k_targets(target)
    critic_goal = torch.full((len(x0), 3), math.nan, device=device)
    for k in ks:
        critic_goal[:, K_TARGETS.index(k)] = math.log10(target[k])
    x, _ = optimise_latents(loaded, x0, goal, porosity, settings, critic, critic_goal,
                            basis=basis)  # fmt: skip
    images, predicted = _structures(loaded, latents(x, basis), porosity)
    log10_k = _critic_log10_k(loaded, critic, images)
    screened = _screen_score(log10_k, target)
    order = np.argsort(screened, kind="stable")
    picked, novelty, match = _pick(order, images, novelty_index, settings.min_novelty,
                                   settings.candidates)  # fmt: skip
    if not picked:
        return pd.DataFrame(), images[:0]
    table = score_designs(verify_structures(images[picked], lbm, device), target)
    table["lbm_solves"] = 1
    state = _Finalists(x[picked].clone(), images[picked], log10_k[picked], novelty, match,
                       [kinds[i] for i in picked], predicted[picked], table)  # fmt: skip
    _refine(loaded, state, target, porosity[picked], settings, lbm, device, critic,
            novelty_index, basis)  # fmt: skip
    return _report(loaded, state, pool)


def _offset(verified: np.ndarray, critic_k: np.ndarray) -> np.ndarray:
    """What the critic misses, verified minus critic log10 K (decades, (R, 3)); a blocked
    verified direction counts as :data:`NOT_PERCOLATING_OFFSET`, an unknown one as 0."""
    both = np.isfinite(verified) & np.isfinite(critic_k)
    fallback = np.where(np.isfinite(verified), 0.0, NOT_PERCOLATING_OFFSET)
    return np.where(both, verified - np.where(both, critic_k, 0.0), fallback)


def _refine(loaded, state, target, porosity, settings, lbm, device, critic, index, basis) -> None:
    """Re-optimise failed finalists toward the target shifted by their latest measured
    verified-minus-critic offset, verify, keep the better structure; until one succeeds
    or the LBM budget is spent."""
    ks = k_targets(target)
    columns = [K_TARGETS.index(k) for k in ks]
    names = [f"verified_log10_{k}" for k in K_TARGETS]
    shift = _offset(state.table[names].to_numpy(float), state.log10_k)  # (C, 3)
    goal_k = np.log10([target[k] for k in ks])
    solves = len(state.table)
    while ks and not state.table["success"].any() and solves < settings.lbm_budget:
        rows = np.flatnonzero(~state.table["success"].to_numpy())[: settings.lbm_budget - solves]
        goal = np.full((len(rows), 3), np.nan)
        goal[:, columns] = goal_k - shift[rows][:, columns]
        x, _ = optimise_latents(
            loaded, state.x[rows], target_vector(target, loaded.targets), porosity[rows],
            settings, critic, torch.as_tensor(goal, dtype=torch.float32, device=device),
            settings.refine_steps, basis)  # fmt: skip
        images, predicted = _structures(loaded, latents(x, basis), porosity[rows])
        log10_k = _critic_log10_k(loaded, critic, images)
        result = score_designs(verify_structures(images, lbm, device), target)
        shift[rows] = _offset(result[names].to_numpy(float), log10_k)
        solves += len(rows)
        state.table.loc[rows, "lbm_solves"] += 1
        for j, i in enumerate(rows):
            if not result.at[j, "score"] < state.table.at[i, "score"]:
                continue
            novelty, match = _novelty(index, images[j])
            if not novelty < settings.min_novelty:  # NaN (no index) passes
                state.replace(i, x[j], images[j], log10_k[j], novelty, match, predicted[j],
                              result.iloc[j])  # fmt: skip


def _report(loaded, state, pool) -> tuple[pd.DataFrame, np.ndarray]:
    """The finalists' table, best verified score first, and their images."""
    table = pd.DataFrame({"start": state.kinds})
    for prop, name in PROPERTIES.items():
        if name in loaded.targets:
            value = state.predicted[:, loaded.targets.index(name)]
            table[f"predicted_{prop}"] = 10**value if name.startswith("log10_") else value
    for j, k in enumerate(K_TARGETS):
        table[f"critic_{k}"] = 10 ** state.log10_k[:, j]
    table = pd.concat([table, state.table], axis=1)
    table["novelty"] = state.novelty
    ids = pool.sample_ids() if pool is not None else []
    table["nearest_sample"] = [ids[j] if j >= 0 else None for j in state.match]
    order = np.lexsort((table.index.to_numpy(), table["score"].to_numpy()))
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table, state.images[order]
