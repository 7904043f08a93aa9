"""Convolution building blocks for periodic voxel volumes (pVAE and surrogate).

The samples are periodic (the LBM that labels them wraps around every face), so a
network that reads or writes voxels pads circularly: a zero-padded decoder paints a
solid frame along the border, which blocks periodic flow. Shapes are (B, C, D, H, W).
"""

import torch
import torch.nn.functional as F
from torch import nn


def periodic_pad(x: torch.Tensor) -> torch.Tensor:
    """Wrap one voxel around each side of (B, C, D, H, W) -> (B, C, D+2, H+2, W+2).

    With gradients: concatenation of slices, on CPU about twice as fast to train
    through as ``F.pad(mode="circular")`` (whose backward fills and adds many
    buffers). Without: ``F.pad``, one allocation instead of three.
    """
    if not torch.is_grad_enabled():
        return F.pad(x, (1, 1, 1, 1, 1, 1), mode="circular")
    for dim in (2, 3, 4):
        n = x.shape[dim]
        x = torch.cat([x.narrow(dim, n - 1, 1), x, x.narrow(dim, 0, 1)], dim)
    return x


def group_norm(channels: int, groups: int = 1) -> nn.GroupNorm:
    """GroupNorm with ``groups`` groups (at most one per channel) over the whole volume.

    Statistics over the whole volume are shift-invariant. Each group loses its mean and
    scale; in a circularly padded (shift-equivariant) network a channel's mean over the
    volume is where global statistics such as porosity live, so only the contrasts
    between the channels of one group keep them. One group (the default) keeps every
    contrast; one channel per group erases porosity from the first stage on (issue 27).
    """
    return nn.GroupNorm(min(groups, channels), channels)


class Conv3x3(nn.Conv3d):
    """3x3x3 convolution, stride 1 or 2, padded by one voxel (circularly or with zeros).

    Parameters
    ----------
    c_in, c_out : int
    stride : int
    padding : {"circular", "zeros"}
    bias : bool
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, padding: str = "circular",
                 bias: bool = True):  # fmt: skip
        super().__init__(c_in, c_out, 3, stride=stride, padding=0, bias=bias)
        self.periodic = padding == "circular"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.periodic:
            return F.conv3d(periodic_pad(x), self.weight, self.bias, self.stride)
        return F.conv3d(x, self.weight, self.bias, self.stride, padding=1)


class UpConv(nn.ConvTranspose3d):
    """Learned x2 upsampling: 4x4x4 transposed convolution of stride 2, (n) -> (2n).

    With circular padding the input is wrapped by one voxel and the transposed
    convolution's output cropped back to 2n per side, which equals the transposed
    convolution of the infinite periodic signal: a shift of the input by one voxel
    shifts the output by exactly two.
    """

    def __init__(self, c_in: int, c_out: int, padding: str = "circular", bias: bool = True):
        super().__init__(c_in, c_out, 4, stride=2, padding=0, bias=bias)
        self.periodic = padding == "circular"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, d, h, w) -> (B, C', 2d, 2h, 2w)
        if not self.periodic:
            return F.conv_transpose3d(x, self.weight, self.bias, stride=2, padding=1)
        d, h, w = x.shape[2:]
        full = F.conv_transpose3d(periodic_pad(x), self.weight, self.bias, stride=2)
        return full[..., 3 : 3 + 2 * d, 3 : 3 + 2 * h, 3 : 3 + 2 * w]


class ResBlock(nn.Module):
    """Pre-activation residual block: x + conv(act(norm(conv(act(norm(x)))))).

    The second convolution starts at zero, so a new block is the identity.
    ``norm_groups`` as in :func:`group_norm`.
    """

    def __init__(self, channels: int, padding: str = "circular", norm_groups: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            group_norm(channels, norm_groups), nn.SiLU(),
            Conv3x3(channels, channels, padding=padding),
            group_norm(channels, norm_groups), nn.SiLU(),
            Conv3x3(channels, channels, padding=padding),
        )  # fmt: skip
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
