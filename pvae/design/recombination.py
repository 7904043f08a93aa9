"""Starting points of inverse design: pool samples recombined in latent space.

A design should be a new structure (:mod:`pvae.design.novelty`), yet carry the target's
properties. Joining regions of two real samples' latents gives structures that are new
(each parent is only partly kept) and realistic (each region decodes to real structure),
and the critic tells cheaply which of many candidates carry the target:

1. **Parents.** Every pool sample, under each axis permutation that keeps the image
   shape (its K diagonal permuted with it: a rotated sample is as valid a structure as
   the sample), is scored against the target from its labels, in tolerance units
   (:func:`pvae.design.pool.label_errors`); the ``count`` best (sample, permutation) pairs are the
   parents.
2. **Basis.** Each parent is encoded as it is and periodically shifted along each
   axis (:func:`encode_parents`); the latent means (B, L) are the building blocks.
3. **Recombination.** Each candidate joins two basis rows: a slab of the spatial
   latent grid from one, the rest from the other (:func:`recombine`): a parent with a
   slab displaced along its normal, or two parents layered.

:func:`pvae.design.inverse.design` decodes the candidates, binarizes them at the target
porosity, screens them by the critic and by :func:`parent_overlap` (an upper bound on
IoU-based novelty's complement that costs nothing), and optimises the best.
"""

from dataclasses import dataclass

import numpy as np
import torch

from pvae.data.symmetry import permuted_diagonal
from pvae.design.pool import DesignPool, Parent
from pvae.design.targets import K_TARGETS
from pvae.vae.generation import RECOMBINATION_SHARE, encode_structures, slab_masks
from pvae.vae.loading import LoadedModel

SELF_SHARE = 0.5  # share of candidates that displace a slab of one parent


@dataclass
class Basis:
    """Encoded parents that span the search.

    Attributes
    ----------
    latents : torch.Tensor, shape (B, L)
        Latent means.
    images : np.ndarray of bool, shape (B, V)
        The encoded structures, flattened (True = pore).
    parent : np.ndarray of int, shape (B,)
        Index of each row's parent.
    names : list of str
        ``<parent>`` or ``<parent>/shift=dz,dy,dx`` (voxels), with ``<parent>`` as in
        :attr:`pvae.design.pool.Parent.name`.
    log10_k : np.ndarray, shape (B, 3)
        The rows' LBM-labelled log10 K diagonal (permuted with the parent; -inf where a
        direction does not percolate).
    shift_axis : np.ndarray of int, shape (B,)
        Array axis a row is shifted along (-1: not shifted).
    """

    latents: torch.Tensor
    images: np.ndarray
    parent: np.ndarray
    names: list[str]
    log10_k: np.ndarray
    shift_axis: np.ndarray


@torch.no_grad()
def encode_parents(
    loaded: LoadedModel, pool: DesignPool, parents: list[Parent], rng: np.random.Generator
) -> Basis:
    """Encode each parent as it is and shifted along each axis.

    Each parent gives four rows: the structure, then the structure periodically
    shifted along z, y and x in turn by a random quarter to three quarters of the side.
    """
    images, parent, names, axes = [], [], [], []
    k = pool.store.manifest[list(K_TARGETS)].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log10_k = np.log10([permuted_diagonal(k[p.row], p.symmetry) for p in parents])
    for j, p in enumerate(parents):
        image = np.ascontiguousarray(p.symmetry.apply(pool.store.images([p.row])[0]))
        for axis in (-1, 0, 1, 2):
            offset = [0, 0, 0]
            if axis >= 0:
                n = image.shape[axis]
                offset[axis] = int(rng.integers(n // 4, 3 * n // 4 + 1))
            images.append(np.roll(image, offset, axis=(0, 1, 2)))
            parent.append(j)
            axes.append(axis)
            names.append(p.name if axis < 0 else f"{p.name}/shift={','.join(map(str, offset))}")
    stack = np.stack(images)
    mu = encode_structures(loaded.model.eval(), stack)
    parent = np.array(parent)
    return Basis(mu.float(), stack.reshape(len(stack), -1), parent, names, log10_k[parent],
                 np.array(axes))  # fmt: skip


@dataclass
class Recombined:
    """Candidate structures, each two basis rows recombined, as search variables.

    Attributes
    ----------
    rows : torch.Tensor, shape (S, k, L)
        Each candidate's own basis: with a spatial latent the two parents masked to
        each side of a crossover, ``[M z_a, M z_b, (1 - M) z_a, (1 - M) z_b]`` (k = 4;
        the search may then blend the parents within each region); with a flat
        latent ``[z_a, z_b]`` (k = 2).
    weights : torch.Tensor, shape (S, k)
        The candidates: z = weights @ rows = ``M z_a + (1 - M) z_b``, or
        ``t z_a + (1 - t) z_b``.
    pairs : np.ndarray of int, shape (S, 2)
        Basis rows a and b.
    share : np.ndarray, shape (S,)
        Share of row a: the fraction of latent cells taken from it, or t.
    kinds : list of str
        ``cross(<axis>,<share of a>):<a>+<b>`` or ``mix(<t>):<a>+<b>``, with basis row
        names (:attr:`Basis.names`).
    """

    rows: torch.Tensor
    weights: torch.Tensor
    pairs: np.ndarray
    share: np.ndarray
    kinds: list[str]

    def latents(self) -> torch.Tensor:
        """z (S, L) of the candidates as drawn."""
        return torch.einsum("sk,skl->sl", self.weights, self.rows)

    def take(self, picked) -> "Recombined":
        """The candidates at positions ``picked``."""
        picked = np.asarray(picked, dtype=int)
        return Recombined(self.rows[picked], self.weights[picked], self.pairs[picked],
                          self.share[picked], [self.kinds[i] for i in picked])  # fmt: skip

    def correction(self, residual: np.ndarray) -> np.ndarray:
        """Share-weighted mean of the two rows' residuals, (S, 3), for rows' (B, 3)."""
        a, b = residual[self.pairs[:, 0]], residual[self.pairs[:, 1]]
        return self.share[:, None] * a + (1.0 - self.share[:, None]) * b


def recombine(
    basis: Basis, latent_shape: tuple[int, ...], count: int, rng: np.random.Generator
) -> Recombined:
    """Random two-parent candidates: slab crossovers of spatial latents, blends of flat ones.

    Row a is an unshifted parent, drawn by rank (probability falling as
    1 / (1 + rank)). Row b is, for a share ``SELF_SHARE`` of candidates, the same
    parent shifted along one axis, and the crossover runs along that axis: a slab of
    the parent is displaced along its own normal, so straight pores across the seams
    stay aligned and the candidate keeps its parent's statistics and nearly its
    permeability while being a new structure. Otherwise b is another parent (by rank)
    and the axis is random: the candidate's permeability is that of a layered
    composite of the two.

    A crossover takes a slab of the latent grid (a share s uniform in
    ``RECOMBINATION_SHARE`` of its cells along the axis, a random periodic start) from row a
    and the rest from row b: the decoder turns each region into the corresponding
    structure and joins them at the seams, so the candidate is made of real
    structure, which the critic judges well. A flat latent has no regions: the rows
    are blended, t z_a + (1 - t) z_b.

    Parameters
    ----------
    basis : Basis
    latent_shape : tuple of int
        The model's latent shape: (C, d, h, w) spatial, (L,) flat.
    count : int
    rng : np.random.Generator
    """
    unshifted = np.flatnonzero(basis.shift_axis < 0)
    preference = 1.0 / (1.0 + basis.parent[unshifted])
    preference /= preference.sum()
    pairs, axes = np.zeros((count, 2), dtype=int), np.zeros(count, dtype=int)
    for n in range(count):
        a = int(rng.choice(unshifted, p=preference))
        own = np.flatnonzero((basis.parent == basis.parent[a]) & (basis.shift_axis >= 0))
        others = unshifted[basis.parent[unshifted] != basis.parent[a]]
        if len(own) and (rng.random() < SELF_SHARE or not len(others)):
            b = int(rng.choice(own))  # a displaced slab of the same parent
            axes[n] = basis.shift_axis[b]
        else:
            p = preference[basis.parent[unshifted] != basis.parent[a]]
            b = int(rng.choice(others, p=p / p.sum())) if len(others) else a
            axes[n] = rng.integers(3)
        pairs[n] = a, b
    share = rng.uniform(*RECOMBINATION_SHARE, size=count)
    z_a, z_b = basis.latents[pairs[:, 0]].cpu(), basis.latents[pairs[:, 1]].cpu()
    names = [(basis.names[a], basis.names[b]) for a, b in pairs]
    if len(latent_shape) == 1:
        rows = torch.stack([z_a, z_b], dim=1)
        weights = torch.as_tensor(np.column_stack([share, 1 - share]), dtype=torch.float32)
        kinds = [f"mix({t:.2f}):{a}+{b}" for t, (a, b) in zip(share, names, strict=True)]
        return Recombined(rows, weights, pairs, share, kinds)
    m, share = slab_masks(latent_shape, share, axes, rng)
    kinds = [f"cross({'zyx'[axis]},{t:.2f}):{a}+{b}"
             for axis, t, (a, b) in zip(axes, share, names, strict=True)]  # fmt: skip
    rows = torch.stack([m * z_a, m * z_b, (1 - m) * z_a, (1 - m) * z_b], dim=1)
    weights = torch.tensor([[1.0, 0.0, 0.0, 1.0]]).repeat(count, 1)
    return Recombined(rows, weights, pairs, share, kinds)


def parent_overlap(images: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """Largest IoU of each structure with the two basis structures it recombines.

    ``1 - overlap`` bounds novelty from above (novelty takes the best IoU over every
    pool sample, symmetry and shift, and each basis row is a transformed pool sample),
    so a candidate below ``min_novelty`` by this bound is a near-copy without a novelty
    query.

    Parameters
    ----------
    images : np.ndarray of bool, shape (S, Z, Y, X)
    parents : np.ndarray of bool, shape (S, 2, V)
        ``Basis.images[pairs]``.

    Returns
    -------
    np.ndarray, shape (S,)
    """
    flat = images.reshape(len(images), 1, -1)
    inter = (parents & flat).sum(2)
    union = np.maximum((parents | flat).sum(2), 1)
    return (inter / union).max(1)
