"""Candidate structures of inverse design: latents decoded, binarized, scored by the critic.

:mod:`pvae.design.inverse` screens many candidates per target (recombinations, their
directional blurs, prior draws) before it optimises the best and verifies them by LBM.
This module holds what a screened candidate is (:class:`Candidates`) and the steps that
make one: decoding latents to logits (blurred or not), binarizing at a pore fraction, and
scoring by the critic in the design tolerance.
"""

from dataclasses import dataclass

import numpy as np
import torch

from pvae.data.imaging.binarize import binarize_at
from pvae.design.blur import BLURS, blur_key
from pvae.design.latent import decode_logits, predict_images
from pvae.design.targets import K_TARGETS, PROPERTIES, k_targets, tolerance_errors
from pvae.vae.inference import smooth_each, smooth_logits

POROSITY_STEP = 0.01  # variants binarized this much off the target porosity (tolerance 0.02)


@dataclass
class Candidates:
    """Decoded, binarized structures of one target with what is known about them.

    Attributes
    ----------
    images : np.ndarray of bool, shape (M, D, H, W)
    log10_k : np.ndarray, shape (M, 3)
        The critic's log10 K diagonal.
    offset : np.ndarray, shape (M, 3)
        Expected critic miss (its parents' residual, :mod:`pvae.design.inverse`); the
        estimate is ``log10_k + offset``.
    overlap : np.ndarray, shape (M,), or None
        IoU with the structure's own parents (:func:`pvae.design.recombination.parent_overlap`).
    kinds : list of str
    predicted : np.ndarray, shape (M, T)
        The regressor at z (raw units).
    """

    images: np.ndarray
    log10_k: np.ndarray
    offset: np.ndarray
    overlap: np.ndarray | None
    kinds: list[str]
    predicted: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def take(self, picked) -> "Candidates":
        picked = np.asarray(picked, dtype=int)
        return Candidates(
            self.images[picked], self.log10_k[picked], self.offset[picked],
            None if self.overlap is None else self.overlap[picked],
            [self.kinds[i] for i in picked], self.predicted[picked])  # fmt: skip

    def extend(self, other: "Candidates | None") -> "Candidates":
        if other is None:
            return self
        return Candidates(
            np.concatenate([self.images, other.images]),
            np.concatenate([self.log10_k, other.log10_k]),
            np.concatenate([self.offset, other.offset]),
            None if self.overlap is None else np.concatenate([self.overlap, other.overlap]),
            self.kinds + other.kinds,
            np.concatenate([self.predicted, other.predicted]))  # fmt: skip


def seeds_to_blur(screened: "Candidates", target, count: int) -> np.ndarray:
    """Positions of the ``count`` screened candidates best to blur (:data:`BLURS`), by
    :func:`~pvae.design.blur.blur_key` of their estimates; none without a K target."""
    if not count or not k_targets(target):
        return np.zeros(0, dtype=int)
    key = blur_key(screened.log10_k + screened.offset, target)
    return np.argsort(key, kind="stable")[:count]


def blurred_decodes(loaded, z, porosity) -> np.ndarray:
    """Each latent of z (S, L) decoded once and blurred by every one of :data:`BLURS`,
    binarized at ``porosity``: images (len(BLURS) * S, D, H, W), blur-major."""
    logits, _ = decoded_logits(loaded, z, 0.0)
    logits = torch.from_numpy(logits)
    fractions = pore_fractions(loaded, z, porosity).cpu()
    return np.concatenate([binarized(smooth_logits(logits, sigma).numpy(), fractions)
                           for sigma in BLURS])  # fmt: skip


def porosity_levels(porosity: float | None) -> list:
    """Pore fractions screened candidates are binarized at: the target's, then
    :data:`POROSITY_STEP` below and above it (within (0, 1)); ``[None]`` without one."""
    if porosity is None:
        return [None]
    steps = (0.0, -POROSITY_STEP, POROSITY_STEP)
    return [porosity + step for step in steps if 0 < porosity + step < 1]


def decode_binarized(loaded, z, porosities, smoothing: float = 0.0) -> tuple[list, np.ndarray]:
    """Decode z (S, L) once, in batches of 32, and binarize at each of ``porosities``
    (None: each decode's expected pore fraction) after a ``smoothing`` blur of the
    logits: a list of images (S, D, H, W) bool, one per porosity, and the regressor's
    predictions at z (S, T)."""
    images, predicted = [[] for _ in porosities], []
    for chunk in torch.split(z, 32):
        logits, values = decoded_logits(loaded, chunk, smoothing)
        predicted.append(values)
        for out, porosity in zip(images, porosities, strict=True):
            out.append(binarized(logits, pore_fractions(loaded, chunk, porosity)))
    return [np.concatenate(out) for out in images], np.concatenate(predicted)


@torch.no_grad()
def pore_fractions(loaded, z, porosity) -> torch.Tensor:
    """Pore fraction (S,) each decode of z (S, L) is binarized at: the target's, or
    without one the decoder's expected pore fraction."""
    if porosity is not None:
        return torch.full((len(z),), float(porosity), device=z.device)
    return (
        torch.sigmoid(loaded.model.decode(z.to(next(loaded.model.parameters()).device)))
        .flatten(1)
        .mean(1)
        .to(z.device)
    )


def binarized_decodes(loaded, z, porosity, smoothing=0.0) -> tuple[np.ndarray, np.ndarray]:
    """Decode z, blur the logits by ``smoothing`` voxels (a float, or per structure and
    array axis (S, 3): :func:`smooth_each`) and binarize each at its pore fraction
    ``porosity`` (S,): images (S, D, H, W) bool and the regressor's predictions at z
    (S, T)."""
    logits, predicted = decoded_logits(loaded, z, smoothing)
    return binarized(logits, porosity), predicted


def decoded_logits(loaded, z, smoothing) -> tuple[np.ndarray, np.ndarray]:
    """Decoder logits of z (S, L), blurred by ``smoothing`` voxels (float, or (S, 3) per
    structure and array axis), (S, D, H, W), and the regressor's predictions at z (S, T)."""
    logits, predicted = decode_logits(loaded, z.cpu().numpy())
    logits = torch.from_numpy(logits)
    if np.ndim(smoothing) == 2:
        return smooth_each(logits, smoothing).numpy(), predicted
    return smooth_logits(logits, smoothing).numpy(), predicted


def binarized(logits: np.ndarray, porosity) -> np.ndarray:
    """Logits (S, D, H, W), each binarized at its pore fraction ``porosity`` (S,)."""
    return np.stack([binarize_at(x, float(p)) for x, p in zip(logits, porosity, strict=True)])


def critic_log10_k(loaded, critic, images) -> np.ndarray:
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


def screen_score(log10_k: np.ndarray, target: dict) -> np.ndarray:
    """Screened error (S,) in tolerance units over the target's K components."""
    ks = k_targets(target)
    if not ks:
        return np.zeros(len(log10_k))
    return tolerance_errors(None, log10_k, {k: target[k] for k in ks}).max(axis=1)
