"""The surrogate network: a small periodic 3D CNN from voxels to log-permeability.

Shapes (B = batch, D/H/W = image sides z/y/x)::

    x         (B, 1, D, H, W)   1 = pore, 0 = solid
    stem      stride-2 conv -> (B, C0, D/2, H/2, W/2)
    stages    per further channel count: stride-2 conv + conv -> (B, Ck, ...)
    pool      global mean -> (B, C_last)
    scalars   porosity n, log10 n and log10 of the pore-solid face density along
              x, y, z (faces crossed per voxel, periodic) -> (B, 5); with
              ``straight_pores`` also log10 of the Poiseuille permeability of the
              straight through-pores along x, y, z -> (B, 8)
    head      MLP(pooled, scalars) + Linear(scalars) -> (B, 6) standardized
              components of logm(K) / ln 10 (:mod:`pvae.surrogate.logtensor`, order
              xx, yy, zz, xy, xz, yz)

The scalars are exact, cheap image statistics that carry most of a Kozeny-Carman
estimate (log K ~ 3 log n - 2 log S_v) and its anisotropy (few faces crossed along
a channel). A straight pore that runs through the whole sample carries flow a local
convolution cannot see end to end; :mod:`pvae.surrogate.straight_pores` solves for
it exactly. The linear skip lets the head start from such a baseline, and the CNN
learns the correction (topology, throats) from few samples.

For prediction, :class:`FusedEnsembleCNN` stacks the M members of an ensemble into
one network of grouped convolutions (same outputs, one call per layer instead of M).

All convolutions pad circularly: samples are periodic (as in the LBM that labels
them), so the network sees no artificial walls, and global pooling makes it nearly
invariant to periodic shifts. The network takes any image shape, but K is in
lattice units and depends on the voxel scale, so
:class:`~pvae.surrogate.ensemble.SurrogateEnsemble` predicts only at its training shape.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pvae.core.errors import PvaeError
from pvae.core.layers import periodic_pad
from pvae.surrogate.straight_pores import straight_pore_permeability


@dataclass(frozen=True)
class SurrogateConfig:
    """Architecture of one ensemble member (saved in the bundle).

    Attributes
    ----------
    channels : tuple of int
        Feature channels of the stem and of each further stride-2 stage.
    hidden : int
        Width of the head's hidden layer.
    straight_pores : bool
        Add the straight pores' permeability along x, y, z to the scalars
        (:func:`image_scalars`).
    """

    channels: tuple[int, ...] = (16, 32, 64)
    hidden: int = 64
    straight_pores: bool = False

    def __post_init__(self):
        if not self.channels or min(self.channels) < 1 or self.hidden < 1:
            raise PvaeError(f"surrogate: channels {self.channels} and hidden {self.hidden} "
                            "need positive sizes, at least one stage")  # fmt: skip

    @property
    def scalars(self) -> int:
        """Number of image scalars the head reads."""
        return 8 if self.straight_pores else 5

    def to_dict(self) -> dict:
        return {
            "channels": list(self.channels),
            "hidden": self.hidden,
            "straight_pores": self.straight_pores,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "SurrogateConfig":
        """The config of a bundle (bundles older than ``straight_pores`` have none)."""
        return cls(
            channels=tuple(int(c) for c in data["channels"]),
            hidden=int(data["hidden"]),
            straight_pores=bool(data.get("straight_pores", False)),
        )


class PeriodicConv3d(nn.Conv3d):
    """3x3x3 convolution of a periodic volume (circular padding of one voxel).

    Grouped by its input: an input with ``groups`` times the kernel's input channels
    is convolved block by block (member-major channels of :class:`FusedEnsembleCNN`);
    one with exactly the kernel's input channels densely.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, groups: int = 1):
        super().__init__(c_in, c_out, 3, stride=stride, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = x.shape[1] // self.weight.shape[1]
        return F.conv3d(periodic_pad(x), self.weight, self.bias, self.stride, groups=groups)


def _features(channels: tuple[int, ...], members: int = 1) -> nn.Sequential:
    """Convolutions and global pooling: (B, 1, D, H, W) -> (B, members * C_last).

    With ``members`` > 1 every layer holds that many members side by side (member-major
    channels, grouped convolutions, one GroupNorm group set per member).
    """
    layers, c_prev = [], None
    for i, c in enumerate(channels):
        for stride in (2,) if i == 0 else (2, 1):
            c_in = 1 if c_prev is None else c_prev
            layers += [
                PeriodicConv3d(members * c_in, members * c, stride, groups=members),
                nn.GroupNorm(members * min(4, c), members * c),
                nn.GELU(),
            ]
            c_prev = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten())


class PermeabilityCNN(nn.Module):
    """One member of the surrogate ensemble (training; the bundle stores its state dict).

    Parameters
    ----------
    config : SurrogateConfig
    """

    def __init__(self, config: SurrogateConfig):
        super().__init__()
        self.config = config
        self.features = _features(config.channels)
        self.head = nn.Sequential(
            nn.Linear(config.channels[-1] + config.scalars, config.hidden),
            nn.GELU(),
            nn.Linear(config.hidden, 6),
        )
        self.skip = nn.Linear(config.scalars, 6)

    def forward(self, x: torch.Tensor, porosity: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) images and (B,) porosities -> (B, 6) standardized log components."""
        scalars = image_scalars(x, porosity, self.config.straight_pores)  # (B, S)
        pooled = self.features(x)  # (B, C_last)
        return self.head(torch.cat([pooled, scalars], dim=1)) + self.skip(scalars)


class FusedEnsembleCNN(nn.Module):
    """M members evaluated as one network, for prediction.

    Member m owns channel block m of every layer (member-major). A convolution with
    ``groups=M`` applies each member's kernels to its own block only, and GroupNorm
    with M times the member's groups normalises over the same channel sets, so the
    output equals M separate member passes (up to float rounding) with one padding,
    one convolution and one norm call per layer instead of M. The heads are batched
    matrix products over the member axis.

    Parameters
    ----------
    config : SurrogateConfig
    states : list of dict
        State dicts of the M :class:`PermeabilityCNN` members.
    """

    def __init__(self, config: SurrogateConfig, states: list[dict]):
        super().__init__()
        self.members, self.straight_pores = len(states), config.straight_pores
        self.features = _features(config.channels, self.members)
        stacked = {
            k: torch.cat([s[f"features.{k}"] for s in states]) for k in self.features.state_dict()
        }
        self.features.load_state_dict(stacked)
        for name in ("head.0", "head.2", "skip"):  # (M, out, in) and (M, out)
            for kind in ("weight", "bias"):
                stacked = torch.stack([s[f"{name}.{kind}"] for s in states])
                self.register_buffer(f"{name.replace('.', '')}_{kind}", stacked)

    def forward(self, x: torch.Tensor, porosity: torch.Tensor) -> torch.Tensor:
        """(B, 1, D, H, W) images and (B,) porosities -> (M, B, 6) standardized log components."""
        scalars = image_scalars(x, porosity, self.straight_pores)
        scalars = scalars.expand(self.members, -1, -1)  # (M, B, S)
        pooled = self.features(x).unflatten(1, (self.members, -1)).transpose(0, 1)  # (M, B, C)
        joined = torch.cat([pooled, scalars], dim=2)  # (M, B, C + S)
        hidden = F.gelu(_linear(joined, self.head0_weight, self.head0_bias))  # (M, B, hidden)
        out = _linear(hidden, self.head2_weight, self.head2_bias)  # (M, B, 6)
        return out + _linear(scalars, self.skip_weight, self.skip_bias)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-member linear map: (M, B, I), (M, O, I), (M, O) -> (M, B, O)."""
    return torch.baddbmm(bias[:, None], x, weight.transpose(1, 2))


def image_scalars(x: torch.Tensor, porosity: torch.Tensor, straight_pores=False) -> torch.Tensor:
    """Exact image statistics of (B, 1, D, H, W) images -> (B, 5), or (B, 8).

    Porosity, its log10 and log10 face densities along x, y, z; with ``straight_pores``
    also log10 of the straight pores' permeability along x, y, z
    (:func:`~pvae.surrogate.straight_pores.straight_pore_permeability`, lattice units).

    The face density along axis i is the fraction of voxels whose neighbour along i
    (periodically) is of the other phase. It is computed as the mean of
    ``|x - x shifted|``, which is that fraction for a binary image and differentiable
    for a soft one (inverse design's critic), as the straight-pore permeability is.
    Face densities are floored at half a face per image, so that their logs stay
    finite. The permeabilities are offset by that of four single-voxel pores: the
    few isolated straight lines of a sphere pack or a dense foam are noise there, not
    flow paths.
    """
    porosity = porosity.to(x.dtype)
    floor = 0.5 / x[0].numel()
    faces = [
        (x - x.roll(1, dims=dim)).abs().mean(dim=(1, 2, 3, 4)).clamp_min(floor)
        for dim in (4, 3, 2)  # array axes of x, y, z
    ]
    logs = torch.stack([porosity.clamp_min(floor), *faces], dim=1).log10()
    if straight_pores:
        k = straight_pore_permeability(x)  # (B, 3); a one-voxel line: 1 / (4 * section)
        sections = x.shape[3] * x.shape[4], x.shape[2] * x.shape[4], x.shape[2] * x.shape[3]
        logs = torch.cat([logs, (k + 1.0 / min(sections)).log10()], dim=1)
    return torch.cat([porosity[:, None], logs], dim=1)
