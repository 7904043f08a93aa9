"""The surrogate network: a small periodic 3D CNN from voxels to log-permeability.

Shapes (B = batch, D/H/W = image sides z/y/x)::

    x         (B, 1, D, H, W)   1 = pore, 0 = solid
    stem      stride-2 conv -> (B, C0, D/2, H/2, W/2)
    stages    per further channel count: stride-2 conv + conv -> (B, Ck, ...)
    pool      global mean -> (B, C_last)
    scalars   porosity n, log10 n and log10 of the pore-solid face density along
              x, y, z (faces crossed per voxel, periodic) -> (B, 5)
    head      MLP(pooled, scalars) + Linear(scalars) -> (B, 6) standardized
              components of logm(K) / ln 10 (:mod:`pvae.surrogate.logtensor`, order
              xx, yy, zz, xy, xz, yz)

The scalars are exact, cheap image statistics that carry most of a Kozeny-Carman
estimate (log K ~ 3 log n - 2 log S_v) and its anisotropy (few faces crossed along
a channel); the linear skip lets the head start from such a baseline, and the CNN
learns the correction (topology, throats) from few samples.

All convolutions pad circularly: samples are periodic (as in the LBM that labels
them), so the network sees no artificial walls, and global pooling makes it nearly
invariant to periodic shifts. The network takes any image shape, but K is in
lattice units and depends on the voxel scale, so
:class:`~pvae.surrogate.ensemble.SurrogateEnsemble` predicts only at its training shape.
"""

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SurrogateConfig:
    """Architecture of one ensemble member (saved in the bundle).

    Attributes
    ----------
    channels : tuple of int
        Feature channels of the stem and of each further stride-2 stage.
    hidden : int
        Width of the head's hidden layer.
    """

    channels: tuple[int, ...] = (16, 32, 64)
    hidden: int = 64

    def to_dict(self) -> dict:
        return {"channels": list(self.channels), "hidden": self.hidden}

    @classmethod
    def from_dict(cls, data: dict) -> "SurrogateConfig":
        return cls(channels=tuple(int(c) for c in data["channels"]), hidden=int(data["hidden"]))


def periodic_pad(x: torch.Tensor) -> torch.Tensor:
    """Wrap one voxel around each side of (B, C, D, H, W) -> (B, C, D+2, H+2, W+2).

    Concatenation of slices: on CPU about twice as fast to train through as
    ``padding_mode="circular"`` (whose backward fills and adds many buffers).
    """
    for dim in (2, 3, 4):
        n = x.shape[dim]
        x = torch.cat([x.narrow(dim, n - 1, 1), x, x.narrow(dim, 0, 1)], dim)
    return x


class PeriodicConv3d(nn.Conv3d):
    """3x3x3 convolution of a periodic volume (circular padding of one voxel)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__(c_in, c_out, 3, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(periodic_pad(x))


def _conv(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [
        PeriodicConv3d(c_in, c_out, stride),
        nn.GroupNorm(min(4, c_out), c_out),
        nn.GELU(),
    ]


class PermeabilityCNN(nn.Module):
    """One member of the surrogate ensemble.

    Parameters
    ----------
    config : SurrogateConfig
    """

    def __init__(self, config: SurrogateConfig):
        super().__init__()
        self.config = config
        channels = config.channels
        layers = _conv(1, channels[0], 2)
        for c_in, c_out in zip(channels, channels[1:], strict=False):
            layers += _conv(c_in, c_out, 2) + _conv(c_out, c_out, 1)
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.head = nn.Sequential(
            nn.Linear(channels[-1] + SCALARS, config.hidden),
            nn.GELU(),
            nn.Linear(config.hidden, 6),
        )
        self.skip = nn.Linear(SCALARS, 6)

    def forward(self, x: torch.Tensor, porosity: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) images and (B,) porosities -> (B, 6) standardized log components."""
        scalars = image_scalars(x, porosity)  # (B, 5)
        pooled = self.features(x)  # (B, C_last)
        return self.head(torch.cat([pooled, scalars], dim=1)) + self.skip(scalars)


SCALARS = 5


def image_scalars(x: torch.Tensor, porosity: torch.Tensor) -> torch.Tensor:
    """Porosity, its log10 and log10 face densities along x, y, z of (B, 1, D, H, W) -> (B, 5).

    The face density along axis i is the fraction of voxels whose neighbour along i
    (periodically) is of the other phase; it is floored at half a face per image.
    """
    porosity = porosity.to(x.dtype)
    floor = 0.5 / x[0].numel()
    faces = [
        (x != x.roll(1, dims=dim)).to(x.dtype).mean(dim=(1, 2, 3, 4)).clamp_min(floor)
        for dim in (4, 3, 2)  # array axes of x, y, z
    ]
    logs = torch.stack([porosity.clamp_min(floor), *faces], dim=1).log10()
    return torch.cat([porosity[:, None], logs], dim=1)
