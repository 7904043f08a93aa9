"""Latent diffusion: new encodings drawn from what a pVAE's encodings look like.

A pVAE trained for fidelity (small KL weight) encodes its data far from N(0, I), so
decoding prior draws gives noise. A diffusion model of the encodings themselves
generates instead. Two representations of the encodings, each with its denoiser:

- :class:`GridBasis` + :class:`GridDenoiser` (spatial latents, the default): the
  encodings stay on their latent grid, standardized per channel, and a small
  circularly padded convolutional network denoises them (MicroGen3D). A convolution
  learns from every position of every training grid, which a few hundred samples
  need, and its draws are periodic like the data.
- :class:`LatentBasis` + :class:`CoefficientDenoiser` (flat latents): the leading
  principal components of the encodings, each coefficient scaled to unit variance,
  denoised by a residual MLP. On a spatial latent its draws are not realistic (design
  model: realism 0.08 over all components, against 0.45 on the grid): the components
  that a few hundred samples support do not carry the fine structure.

Both predict the velocity v = sqrt(a) eps - sqrt(1 - a) x0 of noisy encodings (DDPM,
cosine schedule; v rather than eps, which would divide by sqrt(a) ~ 0 at the
noisiest step) and are sampled with deterministic DDIM steps. The encodings of every
training image are taken under cube symmetries, and grid encodings are rolled by a
random periodic shift in each training step.

Conditioning on any subset of the pVAE's standardized targets (porosity, log10 K_ii):
each target comes with a mask bit; in training every target is hidden with
probability :data:`HIDE_TARGET` and all of them with :data:`HIDE_ALL`, so one network
is the unconditional model and the conditional one for any subset, combined by
classifier-free guidance.
"""

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pvae.core.errors import PvaeError
from pvae.core.layers import Conv3x3
from pvae.core.torch_files import load_torch, save_torch

HIDE_TARGET = 0.3
HIDE_ALL = 0.2
#: Decay of the weights' moving average, ramped up as (1 + step) / (10 + step) so that a
#: short run does not keep the initial weights.
EMA_DECAY = 0.999


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """Signal fraction of the cosine schedule at times ``t`` in [0, 1] (1 at t = 0)."""
    s = 0.008
    value = torch.cos((torch.as_tensor(t) + s) / (1 + s) * math.pi / 2) ** 2
    return (value / math.cos(s / (1 + s) * math.pi / 2) ** 2).clamp(1e-5, 0.99999)


class LatentBasis:
    """Principal components of encodings, coefficients scaled to unit variance.

    Parameters
    ----------
    mean : np.ndarray, shape (L,)
    components : np.ndarray, shape (K, L)
        Orthonormal principal directions.
    scales : np.ndarray, shape (K,)
        Standard deviation of the encodings along each direction.
    """

    def __init__(self, mean, components, scales):
        self.mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32)
        self.components = torch.as_tensor(np.asarray(components), dtype=torch.float32)
        self.scales = torch.as_tensor(np.asarray(scales), dtype=torch.float32)

    @classmethod
    def fit(cls, mu: torch.Tensor, size: int, seed: int = 0) -> "LatentBasis":
        """The ``size`` leading components of encodings ``mu`` (N, L), N >= 2."""
        mu = torch.as_tensor(mu, dtype=torch.float32)
        size = min(size, len(mu) - 1, mu.shape[1])
        mean = mu.mean(dim=0)
        torch.manual_seed(seed)
        _, singular, v = torch.pca_lowrank(mu - mean, q=size, center=False, niter=4)
        return cls(mean, v.T.contiguous(), singular / math.sqrt(len(mu) - 1))

    @property
    def size(self) -> int:
        return len(self.scales)

    def coefficients(self, mu: torch.Tensor) -> torch.Tensor:
        """(N, L) encodings -> (N, K) unit-variance coefficients."""
        return ((mu - self.mean) @ self.components.T) / self.scales

    def latents(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(N, K) coefficients -> (N, L) encodings."""
        return self.mean + (coefficients * self.scales) @ self.components

    def to_dict(self) -> dict:
        return {"mean": self.mean, "components": self.components, "scales": self.scales}

    @classmethod
    def from_dict(cls, record: dict) -> "LatentBasis":
        return cls(record["mean"], record["components"], record["scales"])


class GridBasis:
    """Spatial encodings on their latent grid, each channel standardized.

    Parameters
    ----------
    mean, std : np.ndarray, shape (C,)
        Per-channel mean and standard deviation of the encodings.
    shape : tuple of int
        The latent grid (C, D, H, W).
    """

    def __init__(self, mean, std, shape):
        self.mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32)
        self.std = torch.as_tensor(np.asarray(std), dtype=torch.float32)
        self.shape = tuple(int(n) for n in shape)

    @classmethod
    def fit(cls, mu: torch.Tensor, shape) -> "GridBasis":
        """Fit to encodings ``mu`` (N, C D H W) of a latent grid ``shape`` (C, D, H, W)."""
        grid = torch.as_tensor(mu, dtype=torch.float32).reshape(-1, *shape).transpose(0, 1)
        grid = grid.reshape(shape[0], -1)
        return cls(grid.mean(dim=1), grid.std(dim=1).clamp_min(1e-6), shape)

    @property
    def size(self) -> int:
        """Numbers per encoding, C D H W."""
        return math.prod(self.shape)

    def _channel(self, values: torch.Tensor) -> torch.Tensor:
        return values[:, None, None, None]

    def coefficients(self, mu: torch.Tensor) -> torch.Tensor:
        """(N, C D H W) encodings -> (N, C, D, H, W) standardized grids."""
        grid = mu.reshape(-1, *self.shape)
        return (grid - self._channel(self.mean)) / self._channel(self.std)

    def latents(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(N, C, D, H, W) standardized grids -> (N, C D H W) encodings."""
        grid = coefficients * self._channel(self.std) + self._channel(self.mean)
        return grid.reshape(len(grid), -1)

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, record: dict) -> "GridBasis":
        return cls(record["mean"], record["std"], record["shape"])


def basis_from_dict(record: dict):
    """The :class:`GridBasis` or :class:`LatentBasis` of a record."""
    return (GridBasis if "shape" in record else LatentBasis).from_dict(record)


@dataclass(frozen=True)
class DenoiserConfig:
    """Shape of a denoiser.

    Attributes
    ----------
    size : int
        Coefficients K (MLP), or latent channels C (grid).
    hidden : int
        Width of the residual MLP, or channels of the grid network.
    blocks : int
        Residual blocks.
    targets : int
        Conditioning targets T (0 = unconditional only).
    grid : tuple of int
        The latent grid (D, H, W) of a :class:`GridDenoiser`; empty for the MLP.
    """

    size: int
    hidden: int = 512
    blocks: int = 4
    targets: int = 0
    grid: tuple = ()


class _Block(nn.Module):
    """h + W2 silu(LN(h) (1 + scale) + shift) with scale, shift from the embedding."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.film = nn.Linear(hidden, 2 * hidden)
        self.inner, self.outer = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(e).chunk(2, dim=1)
        x = F.silu(self.inner(self.norm(h) * (1 + scale) + shift))
        return h + self.outer(x)


class _Embedding(nn.Module):
    """Noise time t (B,) and masked targets (B, T) -> (B, hidden) conditioning vector."""

    def __init__(self, hidden: int, targets: int):
        super().__init__()
        self.time = nn.Sequential(nn.Linear(64, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.condition = nn.Linear(2 * targets, hidden) if targets else None

    def forward(self, t, targets=None, mask=None) -> torch.Tensor:
        freqs = torch.exp(-math.log(1000.0) * torch.arange(32, device=t.device) / 32)
        angles = 1000.0 * t[:, None] * freqs[None]  # (B, 32)
        e = self.time(torch.cat([angles.sin(), angles.cos()], dim=1))
        if self.condition is not None:  # no targets = all hidden, as trained
            if targets is None:
                targets = mask = t.new_zeros(len(t), self.condition.in_features // 2)
            e = e + self.condition(torch.cat([targets * mask, mask], dim=1))
        return e


class CoefficientDenoiser(nn.Module):
    """v(x_t, t, targets, mask): the velocity of noisy coefficients.

    Shapes: x (B, K), t (B,) in [0, 1], targets and mask (B, T).
    """

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        self.config = config
        hidden = config.hidden
        self.embed = _Embedding(hidden, config.targets)
        self.inlet = nn.Linear(config.size, hidden)
        self.blocks = nn.ModuleList(_Block(hidden) for _ in range(config.blocks))
        self.outlet = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, config.size))
        nn.init.zeros_(self.outlet[-1].weight)
        nn.init.zeros_(self.outlet[-1].bias)

    @property
    def sample_shape(self) -> tuple:
        return (self.config.size,)

    def forward(self, x, t, targets=None, mask=None) -> torch.Tensor:
        e = self.embed(t, targets, mask)
        h = self.inlet(x)
        for block in self.blocks:
            h = block(h, e)
        return self.outlet(h)


class _GridBlock(nn.Module):
    """h + conv(silu(conv(silu(h)) (1 + scale) + shift)), periodic convolutions; scale
    and shift from the embedding and from h's mean over the grid.

    The mean is the block's view of the whole sample (porosity, say), which a few
    local convolutions would otherwise have to estimate. No normalization over the
    grid: it would take that mean away (issue 27's lesson).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.conv2 = Conv3x3(channels, channels), Conv3x3(channels, channels)
        self.context = nn.Linear(channels, channels)
        self.film = nn.Linear(channels, 2 * channels)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        e = e + self.context(h.mean(dim=(2, 3, 4)))
        scale, shift = self.film(e)[:, :, None, None, None].chunk(2, dim=1)
        return h + self.conv2(F.silu(self.conv1(F.silu(h)) * (1 + scale) + shift))


class GridDenoiser(nn.Module):
    """v(x_t, t, targets, mask) on the latent grid; circularly padded convolutions.

    Shapes: x (B, C, D, H, W), t (B,) in [0, 1], targets and mask (B, T). A grid of
    even sides is folded 2x2x2 into channels first (8 C channels on a grid half as
    wide), which makes each convolution 8 times cheaper and doubles its reach.
    """

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        self.config = config
        self.fold = 2 if all(n % 2 == 0 for n in config.grid) else 1
        channels, hidden = config.size * self.fold**3, config.hidden
        self.embed = _Embedding(hidden, config.targets)
        self.inlet = Conv3x3(channels, hidden)
        self.blocks = nn.ModuleList(_GridBlock(hidden) for _ in range(config.blocks))
        self.outlet = nn.Sequential(nn.SiLU(), Conv3x3(hidden, channels))
        nn.init.zeros_(self.outlet[-1].weight)
        nn.init.zeros_(self.outlet[-1].bias)

    @property
    def sample_shape(self) -> tuple:
        return (self.config.size, *self.config.grid)

    def _fold(self, x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        f = self.fold
        if f == 1:
            return x
        b, (d, h, w) = len(x), self.config.grid
        if inverse:  # (B, C f^3, d/f, h/f, w/f) -> (B, C, d, h, w)
            x = x.reshape(b, -1, f, f, f, d // f, h // f, w // f)
            return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, -1, d, h, w)
        x = x.reshape(b, -1, d // f, f, h // f, f, w // f, f)
        return x.permute(0, 1, 3, 5, 7, 2, 4, 6).reshape(b, -1, d // f, h // f, w // f)

    def forward(self, x, t, targets=None, mask=None) -> torch.Tensor:
        e = self.embed(t, targets, mask)
        h = self.inlet(self._fold(x))
        for block in self.blocks:
            h = block(h, e)
        return self._fold(self.outlet(h), inverse=True)


def build_denoiser(config: DenoiserConfig) -> nn.Module:
    """A :class:`GridDenoiser` when ``config.grid`` is set, else a :class:`CoefficientDenoiser`."""
    return GridDenoiser(config) if config.grid else CoefficientDenoiser(config)


def train_denoiser(x: torch.Tensor, targets: torch.Tensor | None, config: DenoiserConfig,
                   steps: int = 4000, batch_size: int = 256, lr: float = 1e-3, seed: int = 0,
                   progress=None, checkpoint: Path | None = None,
                   checkpoint_every: int = 200) -> nn.Module:  # fmt: skip
    """Fit a denoiser (:func:`build_denoiser`) to standardized encodings; its EMA
    weights, in eval mode.

    With ``checkpoint``, the whole training state (weights, EMA, optimizer, schedule,
    random stream) is written there every ``checkpoint_every`` steps, and a run that
    finds the file continues from it: an interrupted run resumed gives the same
    weights as one that was never interrupted.

    Parameters
    ----------
    x : torch.Tensor, shape (N, K) or (N, C, D, H, W)
        Coefficients (MLP) or standardized grids (grid denoiser; each batch is rolled
        by one random periodic shift).
    targets : torch.Tensor, shape (N, T), or None
        Standardized targets; NaN entries are hidden from the network.
    config : DenoiserConfig
    steps, batch_size, lr, seed : training settings (AdamW, cosine-decayed rate).
    progress : callable(step, loss), optional
        Called every step (also once per step already done when resuming, with NaN).
    checkpoint : Path, optional
        The resumable training state; the caller removes it when the prior is saved.
    checkpoint_every : int
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net, ema = build_denoiser(config), build_denoiser(config)
    ema.load_state_dict(net.state_dict())
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=lr / 20)
    parts = {"net": net, "ema": ema, "optimizer": optimizer, "schedule": schedule}
    start = _resume(checkpoint, parts, generator, config, steps) if checkpoint else 0
    for step in range(start):
        if progress is not None:
            progress(step, math.nan)
    for step in range(start, steps):
        rows = torch.randint(len(x), (batch_size,), generator=generator)
        x0 = x[rows]
        if config.grid:
            shift = torch.randint(max(config.grid), (3,), generator=generator)
            x0 = torch.roll(x0, [int(n) for n in shift], dims=(2, 3, 4))
        t = torch.rand(batch_size, generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        a = alpha_bar(t).reshape(-1, *[1] * (x0.dim() - 1))
        y = mask = None
        if targets is not None:
            y = targets[rows]
            keep = torch.rand(y.shape, generator=generator) >= HIDE_TARGET
            keep &= torch.rand(batch_size, 1, generator=generator) >= HIDE_ALL
            mask = (keep & y.isfinite()).float()
            y = torch.nan_to_num(y)
        velocity = a.sqrt() * noise - (1 - a).sqrt() * x0
        loss = F.mse_loss(net(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, y, mask), velocity)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), net.parameters(), strict=True):
                p_ema.lerp_(p, 1 - min(EMA_DECAY, (1 + step) / (10 + step)))
        if progress is not None:
            progress(step, float(loss.detach()))
        if checkpoint and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            record = {name: part.state_dict() for name, part in parts.items()}
            record.update(step=step + 1, steps=steps, config=asdict(config),
                          generator=generator.get_state())  # fmt: skip
            save_torch(record, checkpoint)
    return ema.eval()


def _resume(checkpoint: Path, parts: dict, generator: torch.Generator,
            config: DenoiserConfig, steps: int) -> int:  # fmt: skip
    """Load a :func:`train_denoiser` checkpoint into ``parts``; the steps it had done
    (0 when there is none)."""
    if not Path(checkpoint).is_file():
        return 0
    record = load_torch(checkpoint, "denoiser checkpoint")
    recorded = {**record["config"], "grid": tuple(record["config"]["grid"])}
    if recorded != asdict(config) or record["steps"] != steps:
        raise PvaeError(f"{checkpoint}: a checkpoint of another training run "
                        f"({record['steps']} steps of {recorded}); "
                        "remove it to start again")  # fmt: skip
    for name, part in parts.items():
        part.load_state_dict(record[name])
    generator.set_state(record["generator"])
    return int(record["step"])


@torch.no_grad()
def ddim_sample(net: nn.Module, count: int, generator: torch.Generator,
                steps: int = 50, targets: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, guidance: float = 1.0,
                eta: float = 0.0, start: torch.Tensor | None = None,
                start_time: float = 1.0):  # fmt: skip
    """DDIM sampling: (count, *net.sample_shape) standardized encodings.

    Parameters
    ----------
    targets, mask : torch.Tensor, shape (count, T), optional
        Standardized targets and which of them to condition on.
    guidance : float
        Classifier-free guidance weight w: v = v_u + w (v_c - v_u); 1 = the conditional
        model alone.
    eta : float
        Fresh noise per step: 0 = deterministic DDIM, 1 = the ancestral (DDPM) sampler,
        which corrects part of the denoiser's errors at every step.
    start : torch.Tensor, shape (count, *net.sample_shape), optional
        Clean encodings to start from: they are noised to ``start_time`` and denoised
        from there (SDEdit, Meng et al. 2022), so the draws are variations of them.
        Default: pure noise at time 1.
    start_time : float
        Time in (0, 1] the sampler starts at; ``steps`` steps lead from it to 0.
    """
    x = torch.randn((count, *net.sample_shape), generator=generator)
    if start is not None:
        a = alpha_bar(torch.tensor(float(start_time)))
        x = a.sqrt() * start + (1 - a).sqrt() * x
    times = torch.linspace(float(start_time), 0.0, steps + 1)
    conditioned = mask is not None and bool(mask.any())
    for now, after in zip(times[:-1], times[1:], strict=True):
        t = torch.full((count,), float(now))
        v = net(x, t, targets, mask) if conditioned else net(x, t)
        if conditioned and guidance != 1.0:
            free = net(x, t)
            v = free + guidance * (v - free)
        a, a_next = alpha_bar(now), alpha_bar(after) if after > 0 else torch.tensor(1.0)
        x0 = a.sqrt() * x - (1 - a).sqrt() * v
        eps = (1 - a).sqrt() * x + a.sqrt() * v
        sigma = eta * ((1 - a_next) / (1 - a) * (1 - a / a_next)).clamp_min(0).sqrt()
        x = a_next.sqrt() * x0 + (1 - a_next - sigma**2).clamp_min(0).sqrt() * eps
        if eta > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator)
    return x


class DiffusionPrior:
    """Latent diffusion of standardized encodings, optionally conditioned.

    Parameters
    ----------
    basis : GridBasis or LatentBasis
    net : GridDenoiser or CoefficientDenoiser
    target_names : tuple of str
        The pVAE's targets, in the denoiser's order.
    target_mean, target_std : sequence of float, length T
        Standardization of the targets (raw units: porosity, log10 K lattice units).
    sampling_steps : int
        Sampler steps per draw.
    guidance : float
        Classifier-free guidance weight of conditional draws.
    eta : float
        Fresh noise per sampler step (:func:`ddim_sample`).
    smoothing : float
        Gaussian blur of the decoded logits, voxels
        (:func:`pvae.vae.inference.smooth_logits`).

    The defaults are the sampler of ``bench/results/generation_attempts.md``: on the
    design model with a 10000-step prior, 256 draws of the ancestral sampler (eta 1, 100
    steps) with a 0.7-voxel blur of the logits are realistic in 92% and cover 86% of the
    test split (``bench/results/generation-10k/generation.md``, seed 1; a 5000-step prior
    87% / 79%); deterministic DDIM (eta 0, 25 steps) gives about 60% / 55% on the
    5000-step prior.
    """

    name = "diffusion"

    def __init__(self, basis, net: nn.Module, target_names,
                 target_mean, target_std, sampling_steps: int = 100,
                 guidance: float = 2.0, eta: float = 1.0,
                 smoothing: float = 0.7):  # fmt: skip
        self.basis, self.net = basis, net.eval()
        self.target_names = tuple(target_names)
        self.target_mean = torch.as_tensor(np.asarray(target_mean), dtype=torch.float32)
        self.target_std = torch.as_tensor(np.asarray(target_std), dtype=torch.float32)
        self.sampling_steps = int(sampling_steps)
        self.guidance = float(guidance)
        self.eta, self.smoothing = float(eta), float(smoothing)

    def sample(self, count: int, generator: torch.Generator, condition: dict | None = None):
        """(count, latent_dim) latents; ``condition``: target name -> raw value (any subset).

        Unknown target names raise ``KeyError`` with the name.
        """
        targets, mask = self._condition(count, condition)
        x = ddim_sample(self.net, count, generator, self.sampling_steps, targets, mask,
                        self.guidance, self.eta)  # fmt: skip
        return self.basis.latents(x)

    def vary(self, z: torch.Tensor, time: float, generator: torch.Generator,
             condition: dict | None = None) -> torch.Tensor:  # fmt: skip
        """Variations (N, latent_dim) of latents z (N, latent_dim): each is noised to
        ``time`` in (0, 1] and denoised again (SDEdit) in ``time`` x ``sampling_steps``
        steps. A small time keeps most of z; 1 forgets it (a plain draw). The result
        lies where the prior puts encodings, near z, so it decodes to a realistic
        structure like z's; with ``condition`` the denoising leans toward the target.
        """
        if not 0 < time <= 1:
            raise ValueError(f"time {time}: need 0 < time <= 1")
        targets, mask = self._condition(len(z), condition)
        steps = max(1, round(time * self.sampling_steps))
        start = self.basis.coefficients(torch.as_tensor(z, dtype=torch.float32).cpu())
        x = ddim_sample(self.net, len(z), generator, steps, targets, mask, self.guidance,
                        self.eta, start, time)  # fmt: skip
        return self.basis.latents(x)

    def _condition(self, count: int, condition: dict | None):
        """Standardized targets and mask (count, T) of a raw ``condition``, or (None, None);
        unknown target names raise ``KeyError``."""
        if not condition:
            return None, None
        for name in condition:
            if name not in self.target_names:
                raise KeyError(name)
        raw = torch.tensor([float(condition.get(n, math.nan)) for n in self.target_names])
        standardized = (raw - self.target_mean) / self.target_std
        mask = standardized.isfinite().float().expand(count, -1).contiguous()
        return torch.nan_to_num(standardized).expand(count, -1).contiguous(), mask

    def to_dict(self) -> dict:
        return {
            "kind": self.name,
            "basis": self.basis.to_dict(),
            "config": asdict(self.net.config),
            "state": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "target_names": list(self.target_names),
            "target_mean": self.target_mean.tolist(),
            "target_std": self.target_std.tolist(),
            "sampling_steps": self.sampling_steps,
            "guidance": self.guidance,
            "eta": self.eta,
            "smoothing": self.smoothing,
        }

    @classmethod
    def from_dict(cls, record: dict) -> "DiffusionPrior":
        config = record["config"]
        net = build_denoiser(DenoiserConfig(**{**config, "grid": tuple(config.get("grid", ()))}))
        # priors written before the grid denoiser kept the embedding at the top level
        state = {f"embed.{k}" if k.split(".")[0] in ("time", "condition") else k: v
                 for k, v in record["state"].items()}  # fmt: skip
        net.load_state_dict(state)
        # priors written before the ancestral sampler and the blur drew deterministically
        return cls(basis_from_dict(record["basis"]), net, record["target_names"],
                   record["target_mean"], record["target_std"], record["sampling_steps"],
                   record["guidance"], record.get("eta", 0.0),
                   record.get("smoothing", 0.0))  # fmt: skip
