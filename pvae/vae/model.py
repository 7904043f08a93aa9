"""The property-variational autoencoder: 3D conv VAE + regressor on the latent mean.

Shapes (B = batch, D/H/W = image sides z/y/x, L = ``latent_dim``)::

    x      (B, 1, D, H, W)   1 = pore, 0 = solid
    encoder: `depth` stride-2 conv stages (each + `res_blocks` residual blocks)
             -> (B, C, d, h, w)
      flat layout:    flatten -> Linear -> (mu, logvar), each (B, L); d/h/w <= 2
      spatial layout: 1x1 conv -> (mu, logvar), each (B, L / (d h w), d, h, w),
                      flattened to (B, L); d/h/w <= 8 by default (MicroGen3D's 8^3 x C)
    decoder: (flat: Linear | spatial: 3x3 conv) -> (B, C', d, h, w) -> transposed-conv
             stages, each cropped to the encoder's shape at that stage
             -> logits (B, 1, D, H, W), exactly x's shape
    regressor: flat: MLP(mu) | spatial: conv + global mean pool + MLP
             -> standardized targets (B, T)

Every public method takes and returns the latent as a flat (B, L) vector in both
layouts, so latent tables, Slerp and inverse design do not need to know the layout.
With circular padding (the default) every convolution wraps around the faces, like the
periodic samples: a spatial latent shifted by one cell decodes to the structure shifted
by the encoder's stride, and no border frame appears.

Every side from 16 to 256 (and non-cubic shapes) round-trips exactly: stage k has
side ceil(n / 2^k), and the decoder crops each upsampled map to the recorded shape.
"""

import math

import torch
from torch import nn

from pvae.core.errors import PvaeError
from pvae.core.layers import Conv3x3, ResBlock, UpConv, group_norm
from pvae.vae.config import ModelConfig

FLAT_MAX_SIDE = 2  # the flat layout encodes down to <= 2 voxels a side
SPATIAL_MAX_SIDE = 8  # the spatial latent grid: <= 8 cells a side by default


def default_depth(input_shape: tuple[int, int, int], max_side: int = FLAT_MAX_SIDE) -> int:
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


def model_depth(config: ModelConfig, input_shape: tuple[int, int, int]) -> int:
    """Encoder stages of ``config`` for images of ``input_shape``."""
    max_side = SPATIAL_MAX_SIDE if config.latent_layout == "spatial" else FLAT_MAX_SIDE
    return config.depth or default_depth(input_shape, max_side)


def latent_grid(config: ModelConfig, input_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """(d, h, w) cells of the spatial latent for images of ``input_shape``."""
    return stage_shapes(input_shape, model_depth(config, input_shape))[-1]


def latent_channels(config: ModelConfig, input_shape: tuple[int, int, int]) -> int:
    """Channels C of a spatial latent: ``latent_dim / (d h w)``, which must be whole."""
    grid = latent_grid(config, input_shape)
    cells = math.prod(grid)
    if config.latent_dim % cells:
        raise PvaeError(
            f"model.latent_dim {config.latent_dim}: the spatial latent of {tuple(input_shape)} "
            f"images is a {grid} grid, so latent_dim must be a multiple of {cells}"
        )
    return config.latent_dim // cells


def _widths(base: int, cap: int, depth: int) -> list[int]:
    return [min(base * 2**k, max(cap, base)) for k in range(depth)]


def _stage(first: nn.Module, c_out: int, config: ModelConfig) -> nn.Sequential:
    """``first`` (a resampling conv), norm, activation, then residual blocks."""
    groups = config.norm_groups
    return nn.Sequential(
        first, group_norm(c_out, groups), nn.SiLU(),
        *(ResBlock(c_out, config.padding, groups) for _ in range(config.res_blocks)),
    )  # fmt: skip


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
        self.spatial = config.latent_layout == "spatial"
        depth = model_depth(config, self.input_shape)
        self.shapes = stage_shapes(self.input_shape, depth)
        pad = config.padding
        enc = _widths(config.base_channels, config.max_channels, depth)
        dec = _widths(config.decoder_channels or config.base_channels, config.max_channels, depth)
        self.channels, self.decoder_widths = enc, dec
        grid = self.shapes[-1]

        stages, c_in = [], 1
        for c_out in enc:
            conv = Conv3x3(c_in, c_out, stride=2, padding=pad, bias=False)
            stages.append(_stage(conv, c_out, config))
            c_in = c_out
        self.encoder = nn.Sequential(*stages)
        if self.spatial:
            self.latent_shape = (latent_channels(config, self.input_shape), *grid)
            self.to_latent = nn.Conv3d(enc[-1], 2 * self.latent_shape[0], 1)
            self.from_latent = Conv3x3(self.latent_shape[0], dec[-1], padding=pad)
        else:
            self.latent_shape = (config.latent_dim,)
            flat = enc[-1] * math.prod(grid)
            self.to_latent = nn.Linear(flat, 2 * config.latent_dim)
            self.from_latent = nn.Linear(config.latent_dim, dec[-1] * math.prod(grid))
        self.bottom = nn.Sequential(
            *(ResBlock(dec[-1], pad, config.norm_groups) for _ in range(config.res_blocks))
        )
        self.up = nn.ModuleList(
            _stage(UpConv(c_from, c_to, pad, bias=False), c_to, config)
            for c_from, c_to in zip(dec[::-1][:-1], dec[::-1][1:], strict=True)
        )
        self.to_logits = UpConv(dec[0], 1, pad)

        layers, width = [], config.latent_dim
        if self.spatial:
            hidden = config.regressor_hidden[0] if config.regressor_hidden else 64
            layers = [Conv3x3(self.latent_shape[0], hidden, padding=pad), nn.SiLU(),
                      nn.AdaptiveAvgPool3d(1), nn.Flatten()]  # fmt: skip
            width = hidden
        for size in config.regressor_hidden[1 if self.spatial else 0 :]:
            layers += [nn.Linear(width, size), nn.SiLU(), nn.Dropout(config.dropout)]
            width = size
        self.regressor = nn.Sequential(*layers, nn.Linear(width, len(config.targets)))

    def _grid(self, z: torch.Tensor) -> torch.Tensor:
        """Flat (B, L) latent -> (B, C, d, h, w) for the spatial layout; unchanged if flat."""
        return z.reshape(-1, *self.latent_shape) if self.spatial else z

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, D, H, W) -> mu, logvar, each (B, latent_dim)."""
        h = self.encoder(2.0 * x - 1.0)  # (B, C, d, h, w)
        if not self.spatial:
            h = h.flatten(1)
        mu, logvar = self.to_latent(h).chunk(2, dim=1)
        return mu.flatten(1), logvar.flatten(1).clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> voxel logits (B, 1, D, H, W) of the pore phase.

        Binarize with :func:`pvae.vae.inference.binarize_logits` (porosity-preserving) or
        :func:`pvae.data.imaging.binarize.binarize_at` (at a given porosity).
        """
        h = self.from_latent(self._grid(z)).view(-1, self.decoder_widths[-1], *self.shapes[-1])
        h = self.bottom(h)
        for stage, shape in zip(self.up, self.shapes[::-1][1:], strict=True):
            h = _crop(stage[0](h), shape)
            h = stage[1:](h)
        return _crop(self.to_logits(h), self.input_shape)

    def predict(self, mu: torch.Tensor) -> torch.Tensor:
        """Standardized property predictions (B, T) from latent means (B, latent_dim)."""
        return self.regressor(self._grid(mu))

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
            "decoder": [self.from_latent, self.bottom, self.up, self.to_logits],
            "regressor": [self.regressor],
        }
        counts = {
            name: sum(p.numel() for m in modules for p in m.parameters())
            for name, modules in parts.items()
        }
        dense = [m for m in (self.to_latent, self.from_latent) if isinstance(m, nn.Linear)]
        counts["flatten_layers"] = sum(m.weight.numel() for m in dense)
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts


def _crop(h: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    return h[..., : shape[0], : shape[1], : shape[2]]
