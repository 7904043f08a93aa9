"""The property-variational autoencoder: 3D conv VAE + regressor on the latent mean.

Shapes (B = batch, D/H/W = image sides z/y/x)::

    x      (B, 1, D, H, W)   1 = pore, 0 = solid
    encoder: `depth` stride-2 conv stages -> (B, C, d, h, w), d/h/w <= 2
             flatten -> Linear -> (mu, logvar), each (B, latent_dim)
    decoder: Linear -> (B, C, d, h, w) -> transposed-conv stages, each cropped to the
             encoder's shape at that stage -> logits (B, 1, D, H, W), exactly x's shape
    regressor: MLP(mu) -> standardized targets (B, T)

Every side from 16 to 256 (and non-cubic shapes) round-trips exactly: stage k has
side ceil(n / 2^k), and the decoder crops each upsampled map to the recorded shape.
Because the encoder keeps going until the map is at most 2 voxels a side, the flatten
layer stays small (the research code spent 33M of its 35M parameters there).
"""

import math

import torch
from torch import nn

from pvae.config import ModelConfig


def default_depth(input_shape: tuple[int, int, int], max_side: int = 2) -> int:
    """Stride-2 stages needed to bring the largest side to <= ``max_side`` (1 to 7)."""
    depth, side = 0, max(input_shape)
    while side > max_side and depth < 7:
        side, depth = math.ceil(side / 2), depth + 1
    return max(depth, 1)


def stage_shapes(input_shape: tuple[int, int, int], depth: int) -> list[tuple[int, int, int]]:
    """Spatial shape after each encoder stage: [(D/2, H/2, W/2), ...] rounded up."""
    shapes, shape = [], tuple(input_shape)
    for _ in range(depth):
        shape = tuple(math.ceil(n / 2) for n in shape)
        shapes.append(shape)
    return shapes


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class PVAE(nn.Module):
    """Property-VAE for voxel images of one shape.

    Parameters
    ----------
    config : ModelConfig
    input_shape : tuple of int
        (D, H, W) = (Z, Y, X) of the images.
    """

    def __init__(self, config: ModelConfig, input_shape: tuple[int, int, int]):
        super().__init__()
        self.config = config
        self.input_shape = tuple(int(n) for n in input_shape)
        depth = config.depth or default_depth(self.input_shape)
        self.shapes = stage_shapes(self.input_shape, depth)
        channels = [min(config.base_channels * 2**k, config.max_channels) for k in range(depth)]
        self.channels = channels
        flat = channels[-1] * math.prod(self.shapes[-1])

        blocks, c_in = [], 1
        for c_out in channels:
            blocks += [
                nn.Conv3d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                _norm(c_out),
                nn.SiLU(),
            ]
            c_in = c_out
        self.encoder = nn.Sequential(*blocks, nn.Flatten())
        self.to_latent = nn.Linear(flat, 2 * config.latent_dim)

        self.from_latent = nn.Linear(config.latent_dim, flat)
        self.up = nn.ModuleList()
        self.up_norm = nn.ModuleList()
        for c_from, c_to in zip(channels[::-1][:-1], channels[::-1][1:], strict=True):
            self.up.append(nn.ConvTranspose3d(c_from, c_to, 4, stride=2, padding=1, bias=False))
            self.up_norm.append(nn.Sequential(_norm(c_to), nn.SiLU()))
        self.to_logits = nn.ConvTranspose3d(channels[0], 1, 4, stride=2, padding=1)

        layers, width = [], config.latent_dim
        for hidden in config.regressor_hidden:
            layers += [nn.Linear(width, hidden), nn.SiLU(), nn.Dropout(config.dropout)]
            width = hidden
        self.regressor = nn.Sequential(*layers, nn.Linear(width, len(config.targets)))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, D, H, W) -> mu, logvar, each (B, latent_dim)."""
        mu, logvar = self.to_latent(self.encoder(2.0 * x - 1.0)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> voxel logits (B, 1, D, H, W) of the pore phase.

        Binarize with :func:`pvae.inference.binarize_logits` (porosity-preserving).
        """
        h = self.from_latent(z).view(len(z), self.channels[-1], *self.shapes[-1])
        for up, norm, shape in zip(self.up, self.up_norm, self.shapes[::-1][1:], strict=True):
            h = norm(_crop(up(h), shape))
        return _crop(self.to_logits(h), self.input_shape)

    def predict(self, mu: torch.Tensor) -> torch.Tensor:
        """Standardized property predictions (B, T) from latent means (B, latent_dim)."""
        return self.regressor(mu)

    def forward(self, x: torch.Tensor, sample: bool | None = None) -> dict:
        """Encode, sample z (reparameterisation; the mean in eval mode), decode, regress.

        Returns
        -------
        dict
            ``logits`` (B, 1, D, H, W), ``mu`` / ``logvar`` / ``z`` (B, latent_dim),
            ``prediction`` (B, T) standardized targets from ``mu``.
        """
        mu, logvar = self.encode(x)
        sample = self.training if sample is None else sample
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return {
            "logits": self.decode(z),
            "mu": mu,
            "logvar": logvar,
            "z": z,
            "prediction": self.predict(mu),
        }

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per part and in total."""
        parts = {
            "encoder": [self.encoder, self.to_latent],
            "decoder": [self.from_latent, self.up, self.up_norm, self.to_logits],
            "regressor": [self.regressor],
        }
        counts = {
            name: sum(p.numel() for m in modules for p in m.parameters())
            for name, modules in parts.items()
        }
        counts["flatten_layers"] = self.to_latent.weight.numel() + self.from_latent.weight.numel()
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts


def _crop(h: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    return h[..., : shape[0], : shape[1], : shape[2]]
