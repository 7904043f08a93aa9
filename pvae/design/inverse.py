"""Inverse design: structures with target properties, optimised as structures.

For a target such as ``porosity=0.7, k_xx=2.0`` (permeability in lattice units,
superficial convention):

1. **Starts** come from the design pool (:mod:`pvae.design.pool`: the model's training
   split, never the samples it is judged on). The ``parents`` (sample, axis permutation)
   pairs whose labels come nearest to the target are encoded, and ``mixtures``
   candidates recombine them (:mod:`pvae.design.recombination`: a parent with a slab displaced
   along its normal, or two parents layered). Each is decoded, binarized at the target
   porosity and screened by the critic, corrected by its parents' residual (their LBM
   label minus the critic's score of them). The ``blur_seeds`` recombinations that a
   blur could bring nearest to the target (:func:`pvae.design.blur.blur_key`) are
   also decoded with their logits blurred along one, two or three axes (:data:`BLURS`),
   which elongates the structure along them and raises K there: the anisotropy that
   recombinations of nearly isotropic catalogue samples lack (the parents then include
   :data:`BLUR_PARENTS` that fall short of the target, best to blur:
   :func:`pvae.design.pool.blur_parents`). The best ``starts`` that can still be new
   (their overlap with their own parents leaves room for ``min_novelty``) are
   optimised. In the full latent space the optimiser finds structures that fool the
   critic (LBM measured 0.2 to 0.5 decade below what it predicted); in the span of
   real samples' latents its judgement holds.
2. **Optimisation.** Adam on w, the start's weights over its two parents in each
   region of the crossover (z = w B), minimises, per start,
   ``critic_weight * e_critic + regressor_weight * e_regressor + prior_weight |z|^2 / L``:
   ``e_critic`` is the mean squared error, in tolerance units (0.1 decade), of the
   critic's log10 K_ii of decode(z) binarized at the target porosity
   (:func:`pvae.vae.critic.straight_through`), so what is optimised is the structure
   itself; ``e_regressor`` is the same error of the regressor at z, including porosity.
   Without a critic the regressor term alone drives z (the model's own re-encoding
   then screens the structures).
3. **Finalists.** Every optimised z is decoded and binarized at the target porosity
   (exact to one voxel); the critic scores the binary structures (with their
   connectivity), corrected by the start's parent residual, and the best ``candidates``
   (:func:`_ranking`) whose novelty
   (:mod:`pvae.design.novelty`) is at least ``min_novelty`` go on.
4. **Physics decides.** LBM verifies the finalists. While no finalist succeeds and the
   LBM budget allows, the critic's remaining bias on this target's structures
   (verified minus expected log10 K, averaged over every verification so far) is added
   to the estimates of all candidates not yet verified (the other optimised starts and
   every screened recombination), and the best of them are verified for the failed
   finalists, each keeping its better structure. Candidates are ranked by the
   *verified* error in tolerance units (porosity 0.02, log10 K 0.1): a score <= 1 is a
   success.

A model with a conditional prior (``prior.pt`` beside it: latent diffusion,
:mod:`pvae.vae.diffusion`) adds ``prior_samples`` draws conditioned on the target to the
screened candidates of step 4, beside the recombinations: structures that no two
catalogue samples make, which reach where the recombinations cannot. Then, for
``variation_rounds`` rounds, the best screened candidates so far (recombinations or
draws) are varied by the prior (:meth:`pvae.vae.diffusion.DiffusionPrior.vary`: noised
to ``variation_time`` and denoised toward the target), screened, and join them: a
search by the critic that moves off the span of the catalogue and stays where the
prior puts real structures.

Targets outside the range of the training data are reported as such and not attempted.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from pvae.core.errors import PvaeError
from pvae.design.active import CriticLearner
from pvae.design.blur import BLURS, blur_name
from pvae.design.novelty import NoveltyIndex
from pvae.design.pool import DesignPool, blur_parents, nearest_parents
from pvae.design.recombination import encode_parents, parent_overlap, recombine
from pvae.design.screening import (
    Candidates,
    binarized_decodes,
    blurred_decodes,
    critic_log10_k,
    decode_binarized,
    pore_fractions,
    porosity_levels,
    screen_score,
    seeds_to_blur,
)
from pvae.design.targets import (
    K_TARGETS,
    PROPERTIES,
    k_targets,
    score_designs,
    target_vector,
)
from pvae.physics.lbm import LBMSettings
from pvae.surrogate import SurrogateEnsemble
from pvae.vae.critic import straight_through
from pvae.vae.fidelity import TOLERANCE
from pvae.vae.inference import smooth_each
from pvae.vae.loading import LoadedModel
from pvae.vae.verification import verify_structures

NOT_PERCOLATING_OFFSET = -0.3  # decades: aim higher after a blocked verification
BLUR_PARENTS = 4  # parents added for blurring (pvae.design.pool.blur_parents)
VARIATIONS_PER_SEED = 4  # prior variations of each screened candidate picked to vary


@dataclass(frozen=True)
class InverseSettings:
    """Settings of inverse design (:mod:`pvae.design.inverse`).

    Attributes
    ----------
    candidates : int
        Finalists verified by LBM and reported per target.
    starts : int
        Latent starts optimised per target (>= ``candidates``): the best of the
        screened mixtures (prior draws of z without a pool).
    parents : int
        (Pool sample, axis permutation) pairs nearest to the target by their labels
        whose latents span the search (:mod:`pvae.design.recombination`).
    mixtures : int
        Two-parent mixtures screened by the critic per target.
    prior_samples : int
        Draws of the model's conditional prior, conditioned on the target, screened
        beside the mixtures (0 = none; used when a conditional prior is given). 32: 64
        draws cost 71 s a target on 2 cores, over the 90 s budget of a design
        (``bench/results/generation_attempts.md``, attempts 19 and 22).
    variations, variation_rounds : int
        Per round, variations of the best screened candidates by the conditional
        prior (:data:`VARIATIONS_PER_SEED` of each), screened beside them; rounds
        (0 = none, the default: on the out-of-catalogue benchmark, 32 draws and 2 rounds
        of 32 verified as many targets as 64 draws alone, 6 of 12;
        ``bench/results/generation_attempts.md``, attempt 18).
    variation_time : float
        How far each variation is noised before the prior denoises it, in (0, 1]:
        small keeps the structure's layout, 1 is a fresh draw.
    blur_seeds : int
        Screened recombinations whose decoded logits are also blurred along one to three
        axes (:data:`BLURS`), each blur a candidate screened beside them and a possible
        start (0 = none, and no :data:`BLUR_PARENTS`): the seeds are those the critic
        puts nearest below the target, since a blur raises K along the blurred axes.
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
        LBM verifications per target, at most (the first round verifies ``candidates``;
        later rounds verify re-ranked candidates while none succeeds).
    critic_steps : int
        With a :class:`~pvae.design.active.CriticLearner`, its fine-tuning steps per
        member after each round of verifications (active learning; 0 = off).
    min_novelty : float
        Finalists must have novelty >= this (0 = report novelty, reject nothing).
    screen_slack : float
        Critic-screened errors up to this (tolerance units) count as equal when
        ranking candidates; among them the most novel go first.
    seed : int
    """

    candidates: int = 4
    starts: int = 16
    parents: int = 8
    mixtures: int = 256
    prior_samples: int = 32
    variations: int = 32
    variation_rounds: int = 0
    variation_time: float = 0.3
    blur_seeds: int = 24
    steps: int = 30
    lr: float = 0.05
    critic_weight: float = 1.0
    regressor_weight: float = 0.1
    prior_weight: float = 0.02
    consistency_weight: float = 0.0
    temperature: float = 1.0
    lbm_budget: int = 12
    critic_steps: int = 20
    min_novelty: float = 0.0
    screen_slack: float = 0.5
    seed: int = 0

    def __post_init__(self):
        problems = []
        if self.candidates < 1:
            problems.append("candidates >= 1")
        if self.starts < self.candidates:
            problems.append("starts >= candidates")
        if self.parents < 1:
            problems.append("parents >= 1")
        if self.mixtures < self.starts:
            problems.append("mixtures >= starts")
        if min(self.prior_samples, self.variations, self.variation_rounds, self.blur_seeds) < 0:
            problems.append("prior_samples, variations, variation_rounds and blur_seeds >= 0")
        if not 0 < self.variation_time <= 1:
            problems.append("variation_time in (0, 1]")
        if self.steps < 0 or self.critic_steps < 0:
            problems.append("steps and critic_steps >= 0")
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
        if not 0 <= self.screen_slack <= 1:
            problems.append("screen_slack in [0, 1]")
        if problems:
            raise PvaeError(f"inverse design settings: need {', '.join(problems)}")


@dataclass
class _Starts:
    """Search variables of one target: ``x`` (S, k) weights over each start's own
    ``basis`` (S, k, L), or z (S, L) without one; ``kinds`` (S,); ``parents``
    (S, 2, V) bool, the two basis structures each start recombines (None without);
    ``offset`` (S, 3), the critic's expected miss on each start's log10 K diagonal
    (its parents' LBM labels minus its own scores of them, share-weighted; 0 without
    parents); ``blur`` (S, 3), each start's blur of its decoded logits along the array
    axes (voxels, :data:`BLURS`; zeros = none)."""

    x: torch.Tensor
    basis: torch.Tensor | None
    kinds: list[str]
    parents: np.ndarray | None
    offset: np.ndarray
    blur: np.ndarray
    screened: "Candidates | None" = None


def _starts(loaded, pool, target, porosity, settings, device, critic, prior=None) -> _Starts:
    """Initial search variables of a target.

    With a pool: parents nearest to the target are encoded into a basis and
    ``mixtures`` two-parent candidates recombined from it (:mod:`pvae.design.recombination`)
    are decoded, binarized at ``porosity`` and screened by the critic, each corrected
    by its parents' residual: where LBM labelled a parent, the critic's miss on it is
    known, and a structure made of two parents inherits their misses in proportion
    (this restores, for example, the anisotropy of channel structures that a small
    critic blurs). The first ``starts`` in :func:`_ranking` order are returned, and every
    screened candidate, also binarized :data:`~pvae.design.screening.POROSITY_STEP`
    below and above the target porosity (within its tolerance; K moves with it), is kept
    for later rounds. Without a pool: prior draws of z.

    Parameters
    ----------
    porosity : float or None
        Pore fraction to binarize at; None = each decode's expected pore fraction.
    prior : optional
        A conditional prior (:class:`pvae.vae.diffusion.DiffusionPrior`): its draws for
        the target join the screened candidates (:func:`_prior_candidates`).
    """
    rng = np.random.default_rng(settings.seed)
    if pool is None:
        z = rng.standard_normal((settings.starts, loaded.model.config.latent_dim))
        z = torch.as_tensor(z, dtype=torch.float32, device=device)
        zeros = np.zeros((len(z), 3))
        return _Starts(z, None, ["prior"] * len(z), None, zeros, zeros)
    parents = nearest_parents(pool, target, settings.parents)
    if settings.blur_seeds:  # and the parents best to blur, which may fall short of the target
        parents += [p for p in blur_parents(pool, target, BLUR_PARENTS) if p not in parents]
    basis = encode_parents(loaded, pool, parents, rng)
    found = recombine(basis, loaded.model.latent_shape, settings.mixtures, rng)
    z = found.latents()
    levels = porosity_levels(porosity)
    decoded, predicted = decode_binarized(loaded, z, levels)
    images = decoded[0]
    own = critic_log10_k(loaded, critic, basis.images.reshape(-1, *images.shape[1:]))
    residual = np.nan_to_num(basis.log10_k - own, nan=0.0, posinf=0.0, neginf=0.0)  # (B, 3)
    offset, parent_images = found.correction(residual), basis.images[found.pairs]

    def candidates(images, kinds):
        return Candidates(images, critic_log10_k(loaded, critic, images), offset,
                           parent_overlap(images, parent_images), kinds, predicted)  # fmt: skip

    screened = candidates(images, found.kinds)
    seeds, blur = seeds_to_blur(screened, target, settings.blur_seeds), np.zeros((len(z), 3))
    if len(seeds):  # blurred seeds: candidates and possible starts, like their seeds
        blurred = blurred_decodes(loaded, z[seeds], porosity)
        sigma = np.repeat(np.array(BLURS), len(seeds), axis=0)
        seeds, blur = np.tile(seeds, len(BLURS)), np.concatenate([blur, sigma])
        kinds = [f"{blur_name(b)}:{found.kinds[i]}" for b, i in zip(sigma, seeds, strict=True)]
        screened = screened.extend(Candidates(
            blurred, critic_log10_k(loaded, critic, blurred), offset[seeds],
            parent_overlap(blurred, parent_images[seeds]), kinds, predicted[seeds]))  # fmt: skip
    row = np.concatenate([np.arange(len(z)), seeds])  # the recombination behind each
    sources = _Sources(z.cpu(), parent_images, row)
    picked = _ranking(screened, target, settings)[: settings.starts]
    best = found.take(row[picked])
    for at, images in zip(levels[1:], decoded[1:], strict=True):  # a little more, less open
        screened = screened.extend(candidates(images, [f"{k}@n={at:.3f}" for k in found.kinds]))
        sources.row = np.concatenate([sources.row, np.arange(len(z))])
    screened = _prior_candidates(loaded, prior, target, porosity, settings, critic, screened,
                                 sources)  # fmt: skip
    return _Starts(best.weights.to(device), best.rows.to(device),
                   [screened.kinds[i] for i in picked], basis.images[best.pairs],
                   screened.offset[picked], blur[picked], screened)  # fmt: skip


@dataclass
class _Sources:
    """The latents behind screened candidates, for varying them: ``z`` (R, L), the
    ``parents`` (R, 2, V) bool whose overlap bounds each one's novelty (all False for
    a prior draw), and ``row`` (M,), each candidate's row of ``z`` (a structure
    binarized at several porosities is one row)."""

    z: torch.Tensor
    parents: np.ndarray
    row: np.ndarray

    def add(self, z: torch.Tensor, parents: np.ndarray, rows: np.ndarray) -> None:
        """Append latents z (n, L) with their ``parents`` (n, 2, V), and candidates' rows
        into them (positions in z)."""
        self.row = np.concatenate([self.row, len(self.z) + rows])
        self.z = torch.cat([self.z, z.cpu()])
        self.parents = np.concatenate([self.parents, parents])


def _prior_candidates(loaded, prior, target, porosity, settings, critic,
                      screened: "Candidates", sources: _Sources) -> "Candidates":  # fmt: skip
    """``screened`` with a conditional prior's candidates for the target added;
    ``screened`` itself without a conditional prior.

    ``prior_samples`` draws conditioned on the target are decoded, binarized at
    ``porosity`` (and :data:`~pvae.design.screening.POROSITY_STEP` off it) and scored
    by the critic. They have no parents: no residual correction, no parent overlap
    (novelty is measured against the pool when they are picked). Then each of
    ``variation_rounds`` rounds varies the best screened candidates so far
    (:func:`_varied`). ``sources`` grows with them.
    """
    if prior is None or not hasattr(prior, "target_names"):
        return screened
    wanted = target_vector(target, loaded.targets)
    condition = {name: float(v) for name, v in zip(loaded.targets, wanted, strict=True)
                 if np.isfinite(v) and name in prior.target_names}  # fmt: skip
    generator = torch.Generator().manual_seed(settings.seed)
    rounds = settings.variation_rounds if settings.variations else 0
    if settings.prior_samples:
        z = prior.sample(settings.prior_samples, generator, condition)
        levels = porosity_levels(porosity)
        decoded, predicted = decode_binarized(loaded, z, levels, prior.smoothing)
        for level, (at, images) in enumerate(zip(levels, decoded, strict=True)):
            suffix = "" if level == 0 else f"@n={at:.3f}"
            screened = screened.extend(Candidates(
                images, critic_log10_k(loaded, critic, images), np.zeros((len(z), 3)),
                np.zeros(len(z)), [f"prior{suffix}"] * len(z), predicted))  # fmt: skip
        if rounds:  # the draws can be varied too
            parents = np.zeros((len(z), *sources.parents.shape[1:]), dtype=bool)
            sources.add(z, parents, np.tile(np.arange(len(z)), len(levels)))
    for _ in range(rounds):
        screened = _varied(loaded, prior, target, porosity, settings, critic, screened,
                           sources, condition, generator)  # fmt: skip
    return screened


def _varied(loaded, prior, target, porosity, settings, critic, screened, sources,
            condition, generator) -> "Candidates":  # fmt: skip
    """``screened`` with one round of prior variations added: the best screened
    candidates (distinct latents, by estimated error alone) are varied
    :data:`VARIATIONS_PER_SEED` times each, ``variations`` in all
    (:meth:`~pvae.vae.diffusion.DiffusionPrior.vary`), binarized at ``porosity`` and
    scored by the critic. A variation keeps its seed's residual correction (it is a
    nearby structure) and its seed's parents for the novelty bound."""
    order = sources.row[_ranking(screened, target, settings, slack=0.0)]
    seeds = order[np.sort(np.unique(order, return_index=True)[1])]
    seeds = seeds[: -(-settings.variations // VARIATIONS_PER_SEED)]
    seeds = np.repeat(seeds, VARIATIONS_PER_SEED)[: settings.variations]
    first = np.array([np.flatnonzero(sources.row == r)[0] for r in seeds])  # a candidate of each
    z = prior.vary(sources.z[seeds], settings.variation_time, generator, condition)
    (images,), predicted = decode_binarized(loaded, z, [porosity], prior.smoothing)
    parents = sources.parents[seeds]
    kinds = [f"vary({settings.variation_time:g}):{screened.kinds[i].split('@')[0]}"
             for i in first]  # fmt: skip
    overlap = None if screened.overlap is None else parent_overlap(images, parents)
    sources.add(z, parents, np.arange(len(z)))
    varied = Candidates(images, critic_log10_k(loaded, critic, images),
                         screened.offset[first], overlap, kinds, predicted)  # fmt: skip
    return screened.extend(varied)


def _ranking(candidates: "Candidates", target, settings, bias=None, slack=None) -> np.ndarray:
    """Order of candidates: by the estimated error (critic + offset + ``bias`` (3,),
    in tolerance units), where all within ``slack`` (default
    ``settings.screen_slack``) count as equal and the least overlapping with their
    parents (the most novel) go first; candidates whose overlap rules out
    ``min_novelty`` go last."""
    estimate = candidates.log10_k + candidates.offset + (0.0 if bias is None else bias)
    screened = screen_score(estimate, target)
    if candidates.overlap is None:
        return np.argsort(screened, kind="stable")
    key = np.maximum(screened, settings.screen_slack if slack is None else slack)
    key[1.0 - candidates.overlap < settings.min_novelty] = np.inf
    return np.lexsort((candidates.overlap, key))


def latents(x: torch.Tensor, basis: torch.Tensor | None) -> torch.Tensor:
    """Latent vectors (S, L) of search variables: weights x (S, k) over each start's own
    basis (S, k, L), or x itself without a basis."""
    return x if basis is None else torch.einsum("sk,skl->sl", x, basis)


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
    blur: np.ndarray | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Adam toward the target, scored on the regressor and on the decoded structure.

    Parameters
    ----------
    x0 : torch.Tensor, shape (S, L) or (S, k)
        Latent vectors, or weights over each start's ``basis`` rows: the search then
        stays in the span of real samples' latents, where the critic's judgement holds.
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
    basis : torch.Tensor, shape (S, k, L), optional
    blur : np.ndarray, shape (S, 3), optional
        Each structure's blur of its decoded logits along the array axes before the
        critic sees it (voxels; :func:`pvae.vae.inference.smooth_each`).

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
                seen = logits if blur is None else smooth_each(logits, blur)
                pore = straight_through(seen, porosity, settings.temperature)
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


class _Finalists:
    """The verified candidates of one target: ``found`` (:class:`Candidates`),
    ``novelty`` and ``match`` (lists) and the verification ``table``; slot i keeps the
    best structure verified for it."""

    def __init__(self, found, novelty, match, table):
        self.found, self.novelty, self.match, self.table = found, novelty, match, table

    def replace(self, i, other, j, novelty, match, row) -> None:
        """Put candidate j of ``other`` into slot i with its novelty and verified row."""
        f = self.found
        f.images[i], f.log10_k[i], f.offset[i] = other.images[j], other.log10_k[j], other.offset[j]
        f.kinds[i], f.predicted[i] = other.kinds[j], other.predicted[j]
        self.novelty[i], self.match[i] = novelty, match
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
    """The first ``count`` structures in ``order`` whose novelty is >= ``min_novelty``.

    Novelty is measured here only when it filters (``min_novelty > 0``; about 2 s per
    structure at 32^3 against 268 references): otherwise it is NaN with match -1, and
    :func:`_report` measures it for the finalists alone."""
    picked, novelty, match = [], [], []
    for i in order:
        value, j = _novelty(index, images[i]) if min_novelty > 0 else (math.nan, -1)
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
    prior=None,
    learner: CriticLearner | None = None,
    label: str = "",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Design, verify and rank candidate structures for one target.

    Parameters
    ----------
    loaded : LoadedModel
    target : dict
        Property -> value (porosity; k_xx/k_yy/k_zz in lattice units, superficial).
    pool : DesignPool, optional
        Samples the starts come from (:func:`pvae.design.pool.design_pool`); without
        it every start is a prior draw.
    settings : InverseSettings, optional
    lbm : LBMSettings, optional
        Verification solver settings.
    device : str
    critic : SurrogateEnsemble, optional
        Scores the decoded structures during optimisation and screening.
    novelty_index : NoveltyIndex, optional
        The pool's structures, for ``novelty`` (NaN without it).
    prior : optional
        The model's prior (:func:`pvae.vae.prior.find_prior`); a conditional one adds
        its draws for the target to the candidates (module docstring).
    learner : CriticLearner, optional
        Replaces ``critic`` with its tuned critic, and learns from every round of
        verifications (:mod:`pvae.design.active`); the same learner carries what it
        learned to the next target.
    label : str
        The target's name in the learner's history.

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
    if learner is not None:
        critic = learner.critic
    optimised, starts = _optimised(loaded, target, pool, settings, device, critic, prior)
    images = optimised.images
    order = _ranking(optimised, target, settings)
    picked, novelty, match = _pick(order, images, novelty_index, settings.min_novelty,
                                   settings.candidates)  # fmt: skip
    if not picked:
        return pd.DataFrame(), images[:0]
    table = score_designs(verify_structures(images[picked], lbm, device), target)
    table["lbm_solves"] = 1
    state = _Finalists(optimised.take(picked), novelty, match, table)
    rest = np.setdiff1d(np.arange(len(optimised)), picked)
    rest = optimised.take(rest).extend(starts.screened)
    learning = None if learner is None else (loaded, learner, label)
    _refine(state, rest, target, settings, lbm, device, novelty_index, learning)
    return _report(loaded, state, pool, novelty_index)


def _optimised(loaded, target, pool, settings, device, critic, prior) -> tuple:
    """Steps 1 to 3 of the module docstring for one target: the optimised starts as
    :class:`Candidates` (binarized at the target porosity, scored by the critic) and
    the :class:`_Starts` they came from (with every screened candidate)."""
    goal = target_vector(target, loaded.targets)
    starts = _starts(loaded, pool, target, target.get("porosity"), settings, device, critic,
                     prior)  # fmt: skip
    x0, basis = starts.x, starts.basis
    porosity = pore_fractions(loaded, latents(x0, basis), target.get("porosity"))
    critic_goal = torch.full((len(x0), 3), math.nan, device=device)
    for k in k_targets(target):
        j = K_TARGETS.index(k)
        critic_goal[:, j] = torch.as_tensor(
            math.log10(target[k]) - starts.offset[:, j], device=device
        )
    x, _ = optimise_latents(loaded, x0, goal, porosity, settings, critic, critic_goal,
                            basis=basis, blur=starts.blur)  # fmt: skip
    images, predicted = binarized_decodes(loaded, latents(x, basis), porosity, starts.blur)
    overlap = None if starts.parents is None else parent_overlap(images, starts.parents)
    optimised = Candidates(images, critic_log10_k(loaded, critic, images), starts.offset,
                            overlap, starts.kinds, predicted)  # fmt: skip
    return optimised, starts


def estimated_score(
    loaded: LoadedModel,
    target: dict[str, float],
    pool: DesignPool,
    settings: InverseSettings,
    critic: SurrogateEnsemble,
    device: str = "cpu",
) -> float:
    """The best estimated score a design of ``target`` reaches, without LBM.

    Steps 1 to 3 of the module docstring; the estimate of a candidate (optimised
    start or screened recombination) is the critic's log10 K corrected by its
    parents' residual, and its porosity is exact by construction. What a study can
    afford per epoch: :mod:`pvae.design.probe`.

    Parameters
    ----------
    loaded : LoadedModel
    target : dict
        Property -> value (:mod:`pvae.design.targets`), with porosity.
    pool : DesignPool
    settings : InverseSettings
    critic : SurrogateEnsemble
    device : str

    Returns
    -------
    float
        Largest error of the best candidate, in tolerance units (<= 1: the critic
        expects a success).
    """
    optimised, starts = _optimised(loaded, target, pool, settings, device, critic, None)
    every = optimised.extend(starts.screened)
    return float(screen_score(every.log10_k + every.offset, target).min())


def _offset(verified: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """What the estimate misses, verified minus expected log10 K (decades, (R, 3)); a
    blocked verified direction counts as :data:`NOT_PERCOLATING_OFFSET`, an unknown one
    as 0."""
    both = np.isfinite(verified) & np.isfinite(expected)
    fallback = np.where(np.isfinite(verified), 0.0, NOT_PERCOLATING_OFFSET)
    return np.where(both, verified - np.where(both, expected, 0.0), fallback)


def _refine(state, rest, target, settings, lbm, device, index, learning=None) -> None:
    """Verify more candidates while no finalist succeeds and the LBM budget allows.

    Every verification measures the critic's remaining bias on this target's
    structures, verified minus estimated log10 K (:func:`_offset`); each round re-ranks
    the candidates not yet verified (``rest``: the other optimised starts and every
    screened recombination) with the mean bias so far added to their estimates, by
    estimated error alone (no slack for novelty: a target not met by the first round
    gets the surest candidates), and verifies the best of them for the failed slots,
    each slot keeping its better structure.

    With ``learning`` (the model, a :class:`~pvae.design.active.CriticLearner` and the
    target's label) the critic is fine-tuned on every round as it is verified, and
    the next round's estimates (and the bias measured so far) come from the tuned
    critic.
    """
    names = [f"verified_log10_{k}" for k in K_TARGETS]
    rounds, estimates = [], []  # (candidates, verification) per round; their log10 K now

    def verified(found, table):
        rounds.append((found, table))
        estimates.append(found.log10_k)
        if learning is not None:
            _, learner, label = learning
            k = table[[f"verified_{k}" for k in K_TARGETS]].to_numpy(float)
            learner.learn(found.images, k, label)

    verified(state.found, state.table)
    solves = len(state.table)
    while (k_targets(target) and len(rest) and not state.table["success"].any()
           and solves < settings.lbm_budget):  # fmt: skip
        if learning is not None:  # the tuned critic re-scores what is left and what was seen
            critic = learning[1].critic
            rest.log10_k = critic_log10_k(learning[0], critic, rest.images)
            estimates = [critic_log10_k(learning[0], critic, f.images) for f, _ in rounds]
        bias = np.concatenate(
            [
                _offset(table[names].to_numpy(float), estimate + found.offset)
                for (found, table), estimate in zip(rounds, estimates, strict=True)
            ]
        ).mean(axis=0)
        slots = np.flatnonzero(~state.table["success"].to_numpy())[: settings.lbm_budget - solves]
        order = _ranking(rest, target, settings, bias, slack=0.0)  # the surest first now
        picked, novelty, match = _pick(order, rest.images, index, settings.min_novelty, len(slots))
        if not picked:
            break
        new = rest.take(picked)
        result = score_designs(verify_structures(new.images, lbm, device), target)
        verified(new, result)
        solves += len(picked)
        rest = rest.take(np.setdiff1d(np.arange(len(rest)), picked))
        for j, i in enumerate(slots[: len(picked)]):
            state.table.at[i, "lbm_solves"] += 1
            if result.at[j, "score"] < state.table.at[i, "score"]:
                state.replace(i, new, j, novelty[j], match[j], result.iloc[j])


def _report(loaded, state, pool, index=None) -> tuple[pd.DataFrame, np.ndarray]:
    """The finalists' table, best verified score first, and their images; novelty
    not measured while picking is measured now (with ``index``)."""
    found = state.found
    for i, value in enumerate(state.novelty):
        if math.isnan(value):
            state.novelty[i], state.match[i] = _novelty(index, found.images[i])
    table = pd.DataFrame({"start": found.kinds})
    for prop, name in PROPERTIES.items():
        if name in loaded.targets:
            value = found.predicted[:, loaded.targets.index(name)]
            table[f"predicted_{prop}"] = 10**value if name.startswith("log10_") else value
    for j, k in enumerate(K_TARGETS):
        table[f"critic_{k}"] = 10 ** found.log10_k[:, j]
        table[f"expected_{k}"] = 10 ** (found.log10_k[:, j] + found.offset[:, j])
    table = pd.concat([table, state.table], axis=1)
    table["novelty"] = state.novelty
    ids = pool.sample_ids() if pool is not None else []
    table["nearest_sample"] = [ids[j] if j >= 0 else None for j in state.match]
    order = np.lexsort((table.index.to_numpy(), table["score"].to_numpy()))
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table, found.images[order]
