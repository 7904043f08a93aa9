"""Latent diffusion: new encodings drawn from what a pVAE's encodings look like.

A pVAE trained for fidelity (small KL weight) encodes its data far from N(0, I), so
decoding prior draws gives noise. A diffusion model of the encodings themselves
generates instead. On CPU a convolutional denoiser over the spatial latent grid
(MicroGen3D) costs seconds a step, so this one works in a compact basis:

- :class:`LatentBasis`: the leading principal components of the encodings (of every
  training image under the cube symmetries), each coefficient scaled to unit
  variance. A draw of the coefficients maps back to a full latent.
- :class:`CoefficientDenoiser`: a residual MLP predicting the velocity
  v = sqrt(a) eps - sqrt(1 - a) x0 of noisy coefficients (DDPM, cosine schedule;
  v rather than eps, which would divide by sqrt(a) ~ 0 at the noisiest step),
  sampled with deterministic DDIM steps.
- Conditioning on any subset of the pVAE's standardized targets (porosity, log10
  K_ii): each target comes with a mask bit; in training every target is hidden with
  probability :data:`HIDE_TARGET` and all of them with :data:`HIDE_ALL`, so one network
  is the unconditional model and the conditional one for any subset, combined by
  classifier-free guidance.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HIDE_TARGET = 0.3
HIDE_ALL = 0.2
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


@dataclass(frozen=True)
class DenoiserConfig:
    """Shape of the coefficient denoiser.

    Attributes
    ----------
    size : int
        Coefficients K.
    hidden : int
        Width of the residual MLP.
    blocks : int
        Residual blocks.
    targets : int
        Conditioning targets T (0 = unconditional only).
    """

    size: int
    hidden: int = 512
    blocks: int = 4
    targets: int = 0


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


class CoefficientDenoiser(nn.Module):
    """v(x_t, t, targets, mask): the velocity of noisy coefficients.

    Shapes: x (B, K), t (B,) in [0, 1], targets and mask (B, T).
    """

    def __init__(self, config: DenoiserConfig):
        super().__init__()
        self.config = config
        hidden = config.hidden
        self.time = nn.Sequential(nn.Linear(64, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.condition = nn.Linear(2 * config.targets, hidden) if config.targets else None
        self.inlet = nn.Linear(config.size, hidden)
        self.blocks = nn.ModuleList(_Block(hidden) for _ in range(config.blocks))
        self.outlet = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, config.size))
        nn.init.zeros_(self.outlet[-1].weight)
        nn.init.zeros_(self.outlet[-1].bias)

    def forward(self, x, t, targets=None, mask=None) -> torch.Tensor:
        freqs = torch.exp(-math.log(1000.0) * torch.arange(32, device=t.device) / 32)
        angles = 1000.0 * t[:, None] * freqs[None]  # (B, 32)
        e = self.time(torch.cat([angles.sin(), angles.cos()], dim=1))
        if self.condition is not None and targets is not None:
            e = e + self.condition(torch.cat([targets * mask, mask], dim=1))
        h = self.inlet(x)
        for block in self.blocks:
            h = block(h, e)
        return self.outlet(h)


def train_denoiser(x: torch.Tensor, targets: torch.Tensor | None, config: DenoiserConfig,
                   steps: int = 4000, batch_size: int = 256, lr: float = 1e-3, seed: int = 0,
                   progress=None) -> CoefficientDenoiser:  # fmt: skip
    """Fit a denoiser to unit-variance coefficients; its EMA weights, in eval mode.

    Parameters
    ----------
    x : torch.Tensor, shape (N, K)
    targets : torch.Tensor, shape (N, T), or None
        Standardized targets; NaN entries are hidden from the network.
    config : DenoiserConfig
    steps, batch_size, lr, seed : training settings (AdamW, cosine-decayed rate).
    progress : callable(step, loss), optional
        Called every step.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net, ema = CoefficientDenoiser(config), CoefficientDenoiser(config)
    ema.load_state_dict(net.state_dict())
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=lr / 20)
    for step in range(steps):
        rows = torch.randint(len(x), (batch_size,), generator=generator)
        x0 = x[rows]
        t = torch.rand(batch_size, generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        a = alpha_bar(t)[:, None]
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
                p_ema.lerp_(p, 1 - EMA_DECAY)
        if progress is not None:
            progress(step, float(loss.detach()))
    return ema.eval()


@torch.no_grad()
def ddim_sample(net: CoefficientDenoiser, count: int, generator: torch.Generator,
                steps: int = 50, targets: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, guidance: float = 1.0):  # fmt: skip
    """Deterministic DDIM sampling, (count, K) coefficients.

    Parameters
    ----------
    targets, mask : torch.Tensor, shape (count, T), optional
        Standardized targets and which of them to condition on.
    guidance : float
        Classifier-free guidance weight w: v = v_u + w (v_c - v_u); 1 = the conditional
        model alone.
    """
    x = torch.randn((count, net.config.size), generator=generator)
    times = torch.linspace(1.0, 0.0, steps + 1)
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
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    return x


class DiffusionPrior:
    """Latent diffusion in a principal-component basis, optionally conditioned.

    Parameters
    ----------
    basis : LatentBasis
    net : CoefficientDenoiser
    target_names : tuple of str
        The pVAE's targets, in the denoiser's order.
    target_mean, target_std : sequence of float, length T
        Standardization of the targets (raw units: porosity, log10 K lattice units).
    sampling_steps : int
        DDIM steps per draw.
    guidance : float
        Classifier-free guidance weight of conditional draws.
    """

    name = "diffusion"

    def __init__(self, basis: LatentBasis, net: CoefficientDenoiser, target_names,
                 target_mean, target_std, sampling_steps: int = 50,
                 guidance: float = 2.0):  # fmt: skip
        self.basis, self.net = basis, net.eval()
        self.target_names = tuple(target_names)
        self.target_mean = torch.as_tensor(np.asarray(target_mean), dtype=torch.float32)
        self.target_std = torch.as_tensor(np.asarray(target_std), dtype=torch.float32)
        self.sampling_steps = int(sampling_steps)
        self.guidance = float(guidance)

    def sample(self, count: int, generator: torch.Generator, condition: dict | None = None):
        """(count, latent_dim) latents; ``condition``: target name -> raw value (any subset).

        Unknown target names raise ``KeyError`` with the name.
        """
        targets = mask = None
        if condition:
            for name in condition:
                if name not in self.target_names:
                    raise KeyError(name)
            raw = torch.tensor([condition.get(n, math.nan) for n in self.target_names])
            standardized = (raw - self.target_mean) / self.target_std
            mask = standardized.isfinite().float().expand(count, -1).contiguous()
            targets = torch.nan_to_num(standardized).expand(count, -1).contiguous()
        x = ddim_sample(self.net, count, generator, self.sampling_steps, targets, mask,
                        self.guidance)  # fmt: skip
        return self.basis.latents(x)

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
        }

    @classmethod
    def from_dict(cls, record: dict) -> "DiffusionPrior":
        net = CoefficientDenoiser(DenoiserConfig(**record["config"]))
        net.load_state_dict(record["state"])
        return cls(LatentBasis.from_dict(record["basis"]), net, record["target_names"],
                   record["target_mean"], record["target_std"], record["sampling_steps"],
                   record["guidance"])  # fmt: skip
