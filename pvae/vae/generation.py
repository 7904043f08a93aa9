"""How well a model generates: realism and coverage of its samples among the data.

A generated structure is *realistic* when some training structure lies as close to it,
in the descriptor space of :mod:`pvae.data.descriptors` (porosity, specific surface
and two-point correlation per axis; standardised by the training set), as training
structures lie to each other: closer than the :data:`QUANTILE` quantile of the
training samples' own nearest-neighbour distances (each left out of the reference).

- ``realism``: the share of generated samples that are realistic;
- ``coverage``: the share of held-out data samples (the evaluated split) with a
  generated sample that close. Realism alone is met by a model that emits one good
  structure over and over; coverage catches that (mode collapse).

A model trained as a plain VAE with a small KL weight decodes z ~ N(0, I) to noise
(realism 0): its encodings do not fill that prior. A learned prior over the encodings
(:mod:`pvae.vae.prior`) is what makes it generate.
"""

import numpy as np
import pandas as pd
import torch

from pvae.core.atomic import atomic_directory, check_out
from pvae.core.errors import PvaeError
from pvae.data.descriptors import descriptors, knn_mean_distance
from pvae.data.imaging import write_structure
from pvae.vae.inference import binarize_logits, smooth_logits

QUANTILE = 0.95
RECOMBINATION_SHARE = (0.25, 0.75)  # share of a recombination's latent taken from one sample


def generation_metrics(generated: np.ndarray, train: np.ndarray, held_out: np.ndarray,
                       quantile: float = QUANTILE) -> dict:  # fmt: skip
    """Realism and coverage of generated structures, from descriptors.

    Parameters
    ----------
    generated : np.ndarray, shape (G, F)
        :func:`pvae.data.descriptors.descriptors` of the generated structures.
    train : np.ndarray, shape (R, F)
        Descriptors of the training structures (R >= 2): the reference.
    held_out : np.ndarray, shape (T, F)
        Descriptors of data structures not trained on (for coverage).
    quantile : float
        Quantile of the training set's leave-one-out nearest-neighbour distances that
        sets "as close as the data lie to each other".

    Returns
    -------
    dict
        ``n_samples`` (G), ``realism`` and ``coverage`` (shares, 0 to 1),
        ``threshold`` (standardised descriptor distance), ``quantile``,
        ``porosity_min`` / ``porosity_max`` of the generated structures and
        ``data_porosity_min`` / ``data_porosity_max`` of the training structures
        (porosity is descriptor 0).
    """
    mean, scale = train.mean(axis=0), np.maximum(train.std(axis=0), 1e-6)
    reference = (train - mean) / scale
    generated_std = (generated - mean) / scale
    threshold = float(np.quantile(knn_mean_distance(reference, reference, 1, True), quantile))
    realistic = knn_mean_distance(generated_std, reference, 1) <= threshold
    covered = knn_mean_distance((held_out - mean) / scale, generated_std, 1) <= threshold
    return {
        "n_samples": len(generated),
        "realism": float(realistic.mean()),
        "coverage": float(covered.mean()),
        "threshold": threshold,
        "quantile": quantile,
        "porosity_min": float(generated[:, 0].min()),
        "porosity_max": float(generated[:, 0].max()),
        "data_porosity_min": float(train[:, 0].min()),
        "data_porosity_max": float(train[:, 0].max()),
    }


def slab_masks(latent_shape: tuple[int, ...], share: np.ndarray, axes: np.ndarray,
               rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:  # fmt: skip
    """Slabs of a spatial latent grid: for each draw, the cells of a periodic slab
    normal to ``axes[n]`` holding a share ``share[n]`` of the grid along it (at least
    one cell), from a random start.

    Parameters
    ----------
    latent_shape : tuple of int
        (C, d, h, w).
    share : np.ndarray, shape (S,)
        Wanted share of cells in the slab, 0 to 1.
    axes : np.ndarray of int, shape (S,)
        Grid axis (0, 1, 2 = d, h, w) each slab is normal to.
    rng : np.random.Generator

    Returns
    -------
    masks : torch.Tensor, shape (S, C * d * h * w)
        1 inside the slab (every channel), 0 outside.
    share : np.ndarray, shape (S,)
        The share each slab holds.
    """
    grid, masks, held = latent_shape[1:], [], np.zeros(len(share))
    for n, (t, axis) in enumerate(zip(share, axes, strict=True)):
        size = grid[axis]
        inside = (np.arange(size) - rng.integers(size)) % size < max(1, round(t * size))
        mask = np.broadcast_to(inside.reshape([size if k == axis else 1 for k in range(3)]), grid)
        masks.append(np.broadcast_to(mask, latent_shape).reshape(-1))
        held[n] = inside.mean()
    return torch.as_tensor(np.stack(masks), dtype=torch.float32), held


def recombination_latents(latents: torch.Tensor, latent_shape: tuple[int, ...], count: int,
                          rng: np.random.Generator) -> torch.Tensor:  # fmt: skip
    """Two-sample recombinations of encodings: what inverse design searches without a prior.

    Each draw takes two different rows a, b of ``latents`` at random and joins them as
    :func:`pvae.design.recombination.recombine` does: a slab of the spatial grid (a share
    uniform in 0.25-0.75 along a random axis) from a, the rest from b; flat latents are
    blended, t z_a + (1 - t) z_b. Decoded, they show whether the decoder turns latents
    off the encodings into real structure (a model without a fitted prior generates
    only this way).

    Parameters
    ----------
    latents : torch.Tensor, shape (N, L)
        Latent means of N >= 2 structures.
    latent_shape : tuple of int
        The model's latent shape: (C, d, h, w) spatial, (L,) flat.
    count : int
    rng : np.random.Generator

    Returns
    -------
    torch.Tensor, shape (count, L)
    """
    if len(latents) < 2:
        raise PvaeError(f"recombination needs >= 2 encodings, got {len(latents)}")
    a = rng.integers(len(latents), size=count)
    b = (a + rng.integers(1, len(latents), size=count)) % len(latents)
    share = rng.uniform(*RECOMBINATION_SHARE, size=count)
    z_a, z_b = latents[a].cpu().float(), latents[b].cpu().float()
    if len(latent_shape) == 1:
        t = torch.as_tensor(share, dtype=torch.float32)[:, None]
        return t * z_a + (1 - t) * z_b
    masks, _ = slab_masks(latent_shape, share, rng.integers(3, size=count), rng)
    return masks * z_a + (1 - masks) * z_b


@torch.no_grad()
def encode_structures(model, images: np.ndarray, batch_size: int = 16) -> torch.Tensor:
    """Latent means of binary structures.

    Parameters
    ----------
    model : PVAE
    images : np.ndarray of bool, shape (N, D, H, W)
    batch_size : int

    Returns
    -------
    torch.Tensor, shape (N, latent_dim)
    """
    device = next(model.parameters()).device
    return torch.cat([
        model.encode(torch.as_tensor(images[i : i + batch_size, None], device=device).float())[0]
        for i in range(0, len(images), batch_size)])  # fmt: skip


@torch.no_grad()
def decode_structures(model, z: torch.Tensor, batch_size: int = 16,
                      smoothing: float = 0.0) -> np.ndarray:  # fmt: skip
    """Binarized decodes of latents (porosity-preserving, :func:`binarize_logits`).

    Parameters
    ----------
    model : PVAE
    z : torch.Tensor, shape (N, latent_dim)
    batch_size : int
    smoothing : float
        Gaussian blur of the logits before binarizing, voxels (:func:`smooth_logits`;
        a prior's ``smoothing``).

    Returns
    -------
    np.ndarray of bool, shape (N, D, H, W)
        ``True`` = pore.
    """
    device = next(model.parameters()).device
    parts = []
    for i in range(0, len(z), batch_size):
        logits = smooth_logits(model.decode(z[i : i + batch_size].to(device)), smoothing)
        parts.append(binarize_logits(logits)[:, 0].cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, *model.input_shape), dtype=bool)


def measure_generation(model, prior, train_images: np.ndarray, held_out_images: np.ndarray,
                       count: int = 64, seed: int = 0) -> tuple[dict, np.ndarray]:  # fmt: skip
    """Draw ``count`` structures from ``prior`` and score them against the data.

    Parameters
    ----------
    model : PVAE
    prior : a :mod:`pvae.vae.prior` prior
    train_images, held_out_images : np.ndarray of bool, shape (N, D, H, W)
    count : int
    seed : int
        Seed of the prior's draws.

    Returns
    -------
    metrics : dict
        :func:`generation_metrics` plus ``prior`` (the prior's name).
    samples : np.ndarray of bool, shape (count, D, H, W)
    """
    generator = torch.Generator().manual_seed(seed)
    samples = decode_structures(model, prior.sample(count, generator), smoothing=prior.smoothing)
    metrics = generation_metrics(
        descriptors(samples), descriptors(train_images), descriptors(held_out_images)
    )
    return {"prior": prior.name, **metrics}, samples


def measure_recombinations(model, train_images: np.ndarray, held_out_images: np.ndarray,
                           count: int = 64, seed: int = 0,
                           reference_images: np.ndarray | None = None) -> dict:  # fmt: skip
    """Realism and coverage of ``count`` decoded recombinations of the training encodings
    (:func:`recombination_latents`): how a model without a fitted prior generates.

    Parameters
    ----------
    model : PVAE
    train_images, held_out_images : np.ndarray of bool, shape (N, D, H, W)
        The structures recombined (and, by default, the reference of realism); those
        of coverage.
    count : int
    seed : int
    reference_images : np.ndarray of bool, shape (R, D, H, W), optional
        Another reference of realism: a fixed one when models trained on subsets of
        different sizes are compared (the closeness threshold is set by the reference's
        own spread, which a small subset widens).

    Returns
    -------
    dict
        :func:`generation_metrics` plus ``prior`` = ``"recombinations"``.
    """
    model = model.eval()
    z = recombination_latents(encode_structures(model, train_images), model.latent_shape, count,
                              np.random.default_rng(seed))  # fmt: skip
    reference = train_images if reference_images is None else reference_images
    drawn = descriptors(decode_structures(model, z))
    metrics = generation_metrics(drawn, descriptors(reference), descriptors(held_out_images))
    return {"prior": "recombinations", **metrics}


def write_samples(loaded, prior, count: int, out, formats=("npy",), condition: dict | None = None,
                  seed: int = 0, overwrite: bool = False) -> pd.DataFrame:  # fmt: skip
    """Draw structures from a model's prior and write them, one file set each.

    Parameters
    ----------
    loaded : LoadedModel
    prior : a :mod:`pvae.vae.prior` prior
    count : int
    out : str or Path
        Folder (atomic; refused when non-empty unless ``overwrite``): ``sample-NNN.npy``
        (+ the other ``formats``) and ``samples.parquet``.
    formats : sequence of str
        From :data:`pvae.data.imaging.STRUCTURE_FORMATS`.
    condition : dict, optional
        Model target name -> raw value (``porosity``, ``log10_k_xx``, ...): draw
        structures with those properties (a prior that supports conditioning).
    seed : int

    Returns
    -------
    pd.DataFrame
        Per sample: ``sample``, ``file``, ``porosity`` (of the written structure) and
        ``predicted_<target>`` (the regressor at the drawn latent, raw units).
    """
    check_out(out, overwrite)
    generator = torch.Generator().manual_seed(seed)
    if condition:
        if not hasattr(prior, "target_names"):
            raise PvaeError(
                f"the model's prior ({prior.name}) draws without conditions; fit one that "
                "takes targets: pvae prior fit --kind diffusion"
            )
        try:
            z = prior.sample(count, generator, condition)
        except KeyError as exc:
            raise PvaeError(f"the model's prior does not know the target {exc}") from None
    else:
        z = prior.sample(count, generator)
    images = decode_structures(loaded.model, z, smoothing=prior.smoothing)
    with torch.no_grad():
        device = next(loaded.model.parameters()).device
        predicted = loaded.normalizer.decode(loaded.model.predict(z.to(device)).cpu()).numpy()
    rows = []
    with atomic_directory(out, overwrite=overwrite) as tmp:
        for i, image in enumerate(images):
            name = f"sample-{i:03d}"
            write_structure(image, tmp, name, formats)
            row = {"sample": i, "file": f"{name}.npy", "porosity": float(image.mean())}
            row.update({f"predicted_{n}": float(v) for n, v in
                        zip(loaded.targets, predicted[i], strict=True)})  # fmt: skip
            rows.append(row)
        table = pd.DataFrame(rows)
        table.to_parquet(tmp / "samples.parquet", index=False)
    return table
