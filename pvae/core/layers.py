"""Convolution building blocks for periodic voxel volumes (pVAE and surrogate).

The samples are periodic (the LBM that labels them wraps around every face), so a
network that reads or writes voxels pads circularly: a zero-padded decoder paints a
solid frame along the border, which blocks periodic flow. Shapes are (B, C, D, H, W).

On CPU the convolutions run in the channels-last memory format (oneDNN's own: in the
default format every call reorders its input and gradient), padding and its gradient
keep the format of their input, and three layers compute the same function another
way, because oneDNN is slow at their shapes: the first stride-2 convolution of a
one-channel image runs on its 2x2x2 blocks (space to depth), the transposed convolution
to one channel runs as a sub-pixel convolution, and the other transposed convolutions
take their weight gradient as eight small convolutions, one per output parity
(``bench/results/train_attempts.md``, attempt 6). Parameters and values are those of the
plain layers.
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
        return _wrap(x, 1, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        """(B, C, D+2, H+2, W+2) -> (B, C, D, H, W): each halo voxel adds to the one it copies."""
        return _fold_halo(grad, (2, 3, 4))


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """``channels_last_3d`` if (B, C, D, H, W) ``x`` (or a view into such a tensor) keeps
    its channels innermost, else ``contiguous_format`` (also for one channel)."""
    return torch.channels_last_3d if x.stride(1) < x.stride(-1) else torch.contiguous_format


def _wrap(x: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """``x`` wrapped periodically by ``low`` voxels before and ``high`` after each
    spatial side, in the memory format of ``x`` (``F.pad`` writes the default one)."""
    sides = x.shape[2:]
    shape = (*x.shape[:2], *(n + low + high for n in sides))
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=_memory_format(x))
    out[:, :, low : low + sides[0], low : low + sides[1], low : low + sides[2]] = x
    for dim, n in zip((2, 3, 4), sides, strict=True):  # slabs across the halos filled so far
        out.narrow(dim, 0, low).copy_(out.narrow(dim, n, low))
        out.narrow(dim, low + n, high).copy_(out.narrow(dim, low, high))
    return out


def _fold_halo(grad: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Fold a one-voxel halo along ``dims`` back onto the voxels it copies.

    The interior is copied once into a dense tensor of the gradient's memory format (the
    elementwise backward that follows runs 7x slower on a strided view); the halo slabs,
    folded along the remaining dims first (edges and corners), add onto the faces they
    copy.
    """
    dim, rest = dims[0], dims[1:]
    n = grad.shape[dim] - 2
    inner = grad.narrow(dim, 1, n)
    out = _fold_halo(inner, rest) if rest else inner.contiguous(memory_format=_memory_format(grad))
    low, high = grad.narrow(dim, 0, 1), grad.narrow(dim, n + 1, 1)
    if rest:
        low, high = _fold_halo(low, rest), _fold_halo(high, rest)
    out.narrow(dim, 0, 1).add_(high)
    out.narrow(dim, n - 1, 1).add_(low)
    return out


def periodic_pad(x: torch.Tensor) -> torch.Tensor:
    """Wrap one voxel around each side of (B, C, D, H, W) -> (B, C, D+2, H+2, W+2).

    In the memory format of ``x``; through :class:`_PeriodicPad` when a gradient flows;
    plain ``F.pad`` while TorchScript traces (which cannot record a Python autograd
    function).
    """
    if torch.jit.is_tracing():
        return F.pad(x, (1, 1, 1, 1, 1, 1), mode="circular")
    if not torch.is_grad_enabled() or not x.requires_grad:
        return _wrap(x, 1, 1)
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


_PARITIES = [(p >> 2 & 1, p >> 1 & 1, p & 1) for p in range(8)]  # (pz, py, px) of 2x2x2 blocks


def _parity_taps(kernel: int, taps: dict[tuple[int, int], int]) -> torch.Tensor:
    """(8, 8 or 27) index into a flattened ``kernel``^3 weight (``kernel``^3 = no tap).

    Row: a parity (pz, py, px) of the 2x2x2 blocks; column: a tap (tz, ty, tx) of the
    rewritten convolution (2 or 3 per dim); ``taps[(parity, tap)]`` is the kernel index
    along one dim.
    """
    width = 1 + max(t for _, t in taps)
    index = torch.full((8, width**3), kernel**3, dtype=torch.long)
    for p, ps in enumerate(_PARITIES):
        for t in range(width**3):
            ts = (t // width**2, t // width % width, t % width)
            ks = [taps.get((pi, ti)) for pi, ti in zip(ps, ts, strict=True)]
            if None not in ks:
                index[p, t] = (ks[0] * kernel + ks[1]) * kernel + ks[2]
    return index


_CL = torch.channels_last_3d

# Stride-2 3^3 convolution on 2x2x2 blocks: output i reads voxels 2i-1, 2i, 2i+1, that is
# block i-1 at parity 1 (tap 0) and block i at parities 0 and 1 (tap 1): kernel index 0, 1, 2.
_STEM_TAPS = _parity_taps(3, {(1, 0): 0, (0, 1): 1, (1, 1): 2})
# Transposed 4^3 convolution of the padded input as a 3^3 convolution per output parity a:
# output 2i + a reads padded voxel i + t with kernel index a + 3 - 2t (when in 0..3).
_SUBPIXEL_TAPS = _parity_taps(
    4, {(a, t): a + 3 - 2 * t for a in range(2) for t in range(3) if 0 <= a + 3 - 2 * t < 4}
)


def _space_to_depth_conv(x: torch.Tensor, weight: torch.Tensor, bias) -> torch.Tensor:
    """The circular stride-2 3^3 convolution of a one-channel image with even sides.

    (B, 1, D, H, W) -> (B, C, D/2, H/2, W/2) channels-last, as a 2^3 convolution of its
    2x2x2 blocks (B, 8, D/2, H/2, W/2) wrapped by one block on the low side: eight input
    channels instead of one, which oneDNN runs several times faster.
    """
    b, _, d, h, w = x.shape
    (x,) = _autocast_cpu(x)  # the block copy in the convolution's dtype
    blocks = x.reshape(b, d // 2, 2, h // 2, 2, w // 2, 2).permute(0, 2, 4, 6, 1, 3, 5)
    blocks = _wrap(blocks.reshape(b, 8, d // 2, h // 2, w // 2), 1, 0)
    kernel = F.pad(weight.reshape(len(weight), 27), (0, 1))[:, _STEM_TAPS]  # (C, 8, 8)
    kernel = kernel.reshape(len(weight), 8, 2, 2, 2).contiguous(memory_format=_CL)
    return F.conv3d(blocks, kernel, bias)  # a channels-last kernel: channels-last output


def _subpixel_upconv(padded: torch.Tensor, weight: torch.Tensor, bias) -> torch.Tensor:
    """``conv_transpose3d(padded, weight, bias, stride=2, padding=3)`` as a sub-pixel
    convolution: one 3^3 convolution to 8 x C' channels (one group per output parity,
    zero taps included) and a 3D pixel shuffle. (B, C, n+2, ...) -> (B, C', 2n, ...)."""
    c_in, c_out = weight.shape[:2]
    kernel = F.pad(weight.reshape(c_in, c_out, 64), (0, 1))[:, :, _SUBPIXEL_TAPS]
    kernel = kernel.permute(2, 1, 0, 3).reshape(8 * c_out, c_in, 3, 3, 3)
    y = F.conv3d(padded, kernel, None if bias is None else bias.repeat(8))
    b, _, d, h, w = y.shape
    if _memory_format(y) == _CL:  # (b, d, h, w, [pz, py, px, c]) in memory: no strided view
        y = y.permute(0, 2, 3, 4, 1).reshape(b, d, h, w, 2, 2, 2, c_out)
        y = y.permute(0, 7, 1, 4, 2, 5, 3, 6)
    else:
        y = y.view(b, 2, 2, 2, c_out, d, h, w).permute(0, 4, 5, 1, 6, 2, 7, 3)
    return y.reshape(b, c_out, 2 * d, 2 * h, 2 * w)


class _ParityUpConv(torch.autograd.Function):
    """``conv_transpose3d(padded, weight, bias, stride=2, padding=3)`` whose weight
    gradient is eight 2^3 convolution weight gradients, one per output parity.

    Output voxel 2i + a (per dim) reads padded voxels i + o + s, s = 0, 1, o = (a + 1) // 2,
    with kernel index a + 3 - 2(o + s); so the parity-a slice of the output gradient
    against the padded input is an ordinary 2^3 convolution. oneDNN's transposed weight
    gradient is 1.5-2x slower than the eight (attempt 6); its input gradient is kept.
    """

    @staticmethod
    def forward(ctx, padded, weight, bias):
        ctx.save_for_backward(padded, weight)
        ctx.has_bias = bias is not None
        return F.conv_transpose3d(padded, weight, bias, stride=2, padding=3)

    @staticmethod
    def backward(ctx, grad):
        padded, weight = ctx.saved_tensors
        grad_input = grad_weight = grad_bias = None
        args = ([2] * 3, [3] * 3, [1] * 3, True, [0] * 3, 1)
        if ctx.needs_input_grad[0]:
            grad_input = torch.ops.aten.convolution_backward(
                grad, padded, weight, None, *args, [True, False, False]
            )[0]
        if ctx.needs_input_grad[1]:
            c_in, c_out = weight.shape[:2]
            n = [s // 2 for s in grad.shape[2:]]
            grad_weight = torch.empty_like(weight)
            small = weight.new_empty(c_out, c_in, 2, 2, 2)  # only its shape is read
            for a in _PARITIES:
                o = [(ai + 1) // 2 for ai in a]
                window = padded[:, :, o[0] : o[0] + n[0] + 1, o[1] : o[1] + n[1] + 1,
                                o[2] : o[2] + n[2] + 1]  # fmt: skip
                g = grad[:, :, a[0] :: 2, a[1] :: 2, a[2] :: 2]
                g = g.contiguous(memory_format=_memory_format(grad))
                dv = torch.ops.aten.convolution_backward(
                    g, window, small, None, [1] * 3, [0] * 3, [1] * 3, False, [0] * 3, 1,
                    [False, True, False],
                )[1]  # fmt: skip
                k = [ai + 1 - 2 * oi for ai, oi in zip(a, o, strict=True)]  # kernel index of s = 1
                flipped = dv.flip(2, 3, 4).transpose(0, 1)  # s = 1, 0 -> k, k + 2
                grad_weight[:, :, k[0] :: 2, k[1] :: 2, k[2] :: 2] = flipped
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2, 3, 4))
        return grad_input, grad_weight, grad_bias


def _autocast_cpu(*tensors):
    """``tensors`` in CPU autocast's dtype while it is on (None kept), as autocast would
    cast a convolution's inputs; unchanged otherwise."""
    if not torch.is_autocast_enabled("cpu"):
        return tensors
    dtype = torch.get_autocast_dtype("cpu")
    return tuple(None if t is None else t.to(dtype) for t in tensors)


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
        if not self.periodic:
            return F.conv3d(x, self.weight, self.bias, self.stride, padding=1)
        if x.device.type != "cpu":
            return F.conv3d(periodic_pad(x), self.weight, self.bias, self.stride)
        even = not any(n % 2 for n in x.shape[2:])
        if self.in_channels == 1 and self.stride == (2, 2, 2) and even:
            return _space_to_depth_conv(x, self.weight, self.bias)
        x = x.contiguous(memory_format=_CL)
        return F.conv3d(periodic_pad(x), self.weight, self.bias, self.stride)


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
        if x.device.type != "cpu":
            return F.conv_transpose3d(periodic_pad(x), self.weight, self.bias, stride=2, padding=3)
        padded = periodic_pad(x.contiguous(memory_format=_CL))
        if self.out_channels == 1:
            return _subpixel_upconv(padded, self.weight, self.bias)
        padded, weight, bias = _autocast_cpu(padded, self.weight, self.bias)
        with torch.autocast("cpu", enabled=False):
            return _ParityUpConv.apply(padded, weight, bias)


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
