"""Convolution building blocks for periodic voxel volumes (pVAE and surrogate).

The samples are periodic (the LBM that labels them wraps around every face), so a
network that reads or writes voxels pads circularly: a zero-padded decoder paints a
solid frame along the border, which blocks periodic flow. Shapes are (B, C, D, H, W).
"""

import torch
import torch.nn.functional as F
from torch import nn


class _PeriodicPad(torch.autograd.Function):
    """Circular padding by one voxel whose backward folds the halo back in place.

    ``F.pad(mode="circular")`` and slice concatenation both build their gradient from
    many zero-filled full-size buffers; folding the six faces of the incoming gradient
    onto a copy of its interior costs one copy and face-sized additions (on CPU, about
    5x faster to train through at 8 x 16 x 50^3).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (1, 1, 1, 1, 1, 1), mode="circular")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        """(B, C, D+2, H+2, W+2) -> (B, C, D, H, W): each halo voxel adds to the one it copies."""
        d = grad.shape[2] - 2
        folded = grad.narrow(2, 1, d).clone()  # (B, C, D, H+2, W+2)
        folded[:, :, 0] += grad[:, :, d + 1]
        folded[:, :, -1] += grad[:, :, 0]
        for dim in (3, 4):  # halo rows (edges and corners included) onto the rows they copy
            n = folded.shape[dim] - 2
            folded.narrow(dim, 1, 1).add_(folded.narrow(dim, n + 1, 1))
            folded.narrow(dim, n, 1).add_(folded.narrow(dim, 0, 1))
        return folded[:, :, :, 1:-1, 1:-1]


def periodic_pad(x: torch.Tensor) -> torch.Tensor:
    """Wrap one voxel around each side of (B, C, D, H, W) -> (B, C, D+2, H+2, W+2).

    Plain ``F.pad`` when no gradient flows or while TorchScript traces (which cannot
    record a Python autograd function); :class:`_PeriodicPad` otherwise.
    """
    if not torch.is_grad_enabled() or not x.requires_grad or torch.jit.is_tracing():
        return F.pad(x, (1, 1, 1, 1, 1, 1), mode="circular")
    return _PeriodicPad.apply(x)


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
    convolution's output cropped back to 2n per side (its ``padding=3``, which drops
    three voxels at each end without a slice to differentiate), which equals the
    transposed convolution of the infinite periodic signal: a shift of the input by one
    voxel shifts the output by exactly two.
    """

    def __init__(self, c_in: int, c_out: int, padding: str = "circular", bias: bool = True):
        super().__init__(c_in, c_out, 4, stride=2, padding=0, bias=bias)
        self.periodic = padding == "circular"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, d, h, w) -> (B, C', 2d, 2h, 2w)
        if not self.periodic:
            return F.conv_transpose3d(x, self.weight, self.bias, stride=2, padding=1)
        return F.conv_transpose3d(periodic_pad(x), self.weight, self.bias, stride=2, padding=3)


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
