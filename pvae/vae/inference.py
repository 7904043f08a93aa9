"""Deterministic passes of a trained pVAE over dataset samples (z = mu)."""

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F

from pvae.core.metrics import dice_iou
from pvae.data.store.reader import VoxelStore
from pvae.data.store.torch_dataset import VoxelDataset
from pvae.vae.losses import kl_per_sample
from pvae.vae.model import PVAE
from pvae.vae.targets import TargetNormalizer, tensor_targets


def binarize_logits(logits: torch.Tensor) -> torch.Tensor:
    """Porosity-preserving binarization of voxel logits.

    Each sample is thresholded at the quantile that keeps its expected pore fraction,
    mean(sigmoid(logits)), instead of at probability 0.5: a blurry but unbiased
    reconstruction of a foam (pore probability ~0.8 everywhere) would otherwise become
    all pore, and a low-porosity sample all solid.

    Parameters
    ----------
    logits : torch.Tensor, shape (B, ...)

    Returns
    -------
    torch.Tensor of bool, same shape; True = pore.
    """
    flat = logits.float().flatten(1)
    count = flat.shape[1]
    pores = torch.sigmoid(flat).mean(dim=1).mul(count).round().long()  # (B,)
    ranks = flat.argsort(dim=1, descending=True).argsort(dim=1)
    return (ranks < pores[:, None]).view(logits.shape)


def smooth_logits(logits: torch.Tensor, sigma) -> torch.Tensor:
    """Periodic Gaussian blur of voxel logits over the last three axes.

    Generated latents decode to structures that are rough at the scale of one voxel
    (isolated voxels, ragged walls: more surface and less short-range correlation than
    the data); blurring the logits before binarizing removes that roughness. A blur
    along one axis only elongates the features along it: inverse design uses that to
    raise the permeability along an axis (:data:`pvae.design.blur.BLURS`).

    Parameters
    ----------
    logits : torch.Tensor, shape (..., D, H, W)
    sigma : float or sequence of 3 floats
        Standard deviation of the kernel, voxels (0: unchanged), for every axis or
        per array axis (D, H, W).

    Returns
    -------
    torch.Tensor, same shape and dtype.
    """
    sigmas = [float(sigma)] * 3 if np.ndim(sigma) == 0 else [float(s) for s in sigma]
    if max(sigmas) <= 0:
        return logits
    shape = logits.shape
    x = logits.float().reshape(-1, 1, *shape[-3:])
    for axis, s in enumerate(sigmas):  # separable: one periodic 1D convolution per axis
        if s <= 0:
            continue
        radius = max(1, math.ceil(3 * s))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=logits.device)
        kernel = torch.exp(-0.5 * (offsets / s) ** 2)
        kernel = kernel / kernel.sum()
        view = [1, 1, 1, 1, 1]
        view[2 + axis] = len(kernel)
        pad = [0] * 6
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius
        x = F.conv3d(F.pad(x, pad, mode="circular"), kernel.view(view))
    return x.reshape(shape).to(logits.dtype)


def smooth_each(logits: torch.Tensor, sigmas: np.ndarray) -> torch.Tensor:
    """:func:`smooth_logits` of each sample by its own per-axis blur.

    Parameters
    ----------
    logits : torch.Tensor, shape (S, ..., D, H, W)
    sigmas : np.ndarray, shape (S, 3)
        Per sample, standard deviations along the array axes (D, H, W), voxels.

    Returns
    -------
    torch.Tensor, same shape and dtype (differentiable).
    """
    sigmas = np.asarray(sigmas, dtype=float).reshape(len(logits), 3)
    kinds, which = np.unique(sigmas, axis=0, return_inverse=True)
    if len(kinds) == 1:
        return smooth_logits(logits, kinds[0])
    out = torch.empty_like(logits)
    for j, sigma in enumerate(kinds):
        rows = torch.as_tensor(np.flatnonzero(which.reshape(-1) == j), device=logits.device)
        out = out.index_copy(0, rows, smooth_logits(logits[rows], sigma))
    return out


def cpu_bfloat16_native() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX tiles)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def autocast(device: torch.device, enabled: bool, cpu: bool = False):
    """bfloat16 autocast on CUDA when ``enabled``; on CPU when ``cpu`` and the CPU
    computes bfloat16 natively (:func:`cpu_bfloat16_native`); a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if cpu and device.type == "cpu" and cpu_bfloat16_native():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_tensors(batch: dict, normalizer: TargetNormalizer, device) -> tuple:
    """Images (B, 1, D, H, W) and standardized targets (B, T) of a loader batch, on ``device``."""
    x = batch["image"].to(device, non_blocking=True)
    raw = tensor_targets(batch["k"], batch["porosity"], normalizer.names)
    return x, normalizer.encode(raw).to(device)


@torch.no_grad()
def infer(
    model: PVAE,
    normalizer: TargetNormalizer,
    store: VoxelStore,
    indices,
    batch_size: int = 16,
    amp: bool = False,
    keep_reconstructions: bool = False,
) -> dict:
    """Encode (z = mu), decode and regress samples of a dataset.

    Parameters
    ----------
    model : PVAE
        Put in eval mode; its device is used.
    normalizer : TargetNormalizer
    store : VoxelStore
    indices : sequence of int
        Dataset rows, in output order.
    batch_size : int
    amp : bool
        bfloat16 autocast on CUDA.
    keep_reconstructions : bool
        Also return the binarized reconstructions.

    Returns
    -------
    dict of np.ndarray
        ``mu``, ``logvar`` (N, L); ``prediction``, ``target`` (N, T) in raw units
        (porosity, log10 K, ...; target NaN where unknown); ``reg_sq`` (N, T) squared
        standardized errors; ``kl`` (N,) nats per sample; ``recon_bce``, ``accuracy``,
        ``dice``, ``iou``, ``porosity_recon``, ``porosity_true`` (N,); with ``keep_reconstructions``
        also ``reconstruction`` (N, D, H, W) bool (True = pore). Reconstructions are
        binarized with :func:`binarize_logits`.
    """
    model.eval()
    device = next(model.parameters()).device
    loader = torch.utils.data.DataLoader(
        VoxelDataset(store, list(indices)), batch_size=batch_size, shuffle=False
    )
    out: dict[str, list] = {}

    def add(name, value):
        out.setdefault(name, []).append(value.detach().float().cpu())

    for batch in loader:
        x, y = batch_tensors(batch, normalizer, device)
        with autocast(device, amp):
            result = model(x, sample=False)
        logits = result["logits"].float()
        truth, recon = x > 0.5, binarize_logits(logits)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
        dice, iou = dice_iou(truth, recon)
        pred = result["prediction"].float()
        add("mu", result["mu"])
        add("logvar", result["logvar"])
        add("kl", kl_per_sample(result["mu"], result["logvar"]))
        add("prediction", normalizer.decode(pred))
        add("target", normalizer.decode(y))
        add("reg_sq", (pred - y) ** 2)
        add("recon_bce", bce.flatten(1).mean(1))
        add("accuracy", (truth == recon).flatten(1).float().mean(1))
        add("dice", dice)
        add("iou", iou)
        add("porosity_recon", recon.flatten(1).float().mean(1))
        add("porosity_true", x.flatten(1).mean(1))
        if keep_reconstructions:
            add("reconstruction", recon[:, 0])
    arrays = {k: torch.cat(v).numpy().astype(np.float64) for k, v in out.items()}
    if keep_reconstructions:
        arrays["reconstruction"] = arrays["reconstruction"].astype(bool)
    return arrays
