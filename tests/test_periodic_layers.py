"""Periodic convolution layers: the padding's folded gradient, the transposed
convolution of the infinite periodic signal, and the CPU formulations (space to depth,
sub-pixel, parity weight gradient), against direct constructions."""

import pytest
import torch
import torch.nn.functional as F

from pvae.core.layers import Conv3x3, UpConv, periodic_pad


def wrap_by_index(x: torch.Tensor) -> torch.Tensor:
    """One voxel of periodic halo by index arithmetic, differentiated by autograd alone."""
    for dim in (2, 3, 4):
        n = x.shape[dim]
        x = x.index_select(dim, torch.arange(-1, n + 1) % n)
    return x


def test_periodic_pad_values_and_gradient_match_index_wrapping():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, 3, 6, 7, 8, dtype=torch.float64)
    assert torch.equal(periodic_pad(x), wrap_by_index(x))
    (ours,) = torch.autograd.grad(periodic_pad(x), x, grad)
    (direct,) = torch.autograd.grad(wrap_by_index(x), x, grad)
    assert torch.allclose(ours, direct, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(periodic_pad, (x,))


def test_periodic_pad_gradient_conserves_the_sum():
    """Every halo voxel copies one interior voxel, so its gradient lands there."""
    x = torch.zeros(1, 1, 3, 3, 3, requires_grad=True)
    (grad,) = torch.autograd.grad(periodic_pad(x).sum(), x)
    assert grad.sum().item() == pytest.approx(5**3)
    assert grad[0, 0, 1, 1, 1].item() == 1.0  # the centre voxel is copied nowhere
    assert grad[0, 0, 0, 0, 0].item() == 8.0  # a corner appears in 8 places


@pytest.mark.parametrize("shape", [(4, 4, 4), (3, 5, 6)])
def test_upconv_is_the_transposed_convolution_of_the_periodic_signal(shape):
    torch.manual_seed(1)
    layer = UpConv(3, 2).double()
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    tiled = x.repeat(1, 1, 3, 3, 3)  # three periods a side stand in for the infinite signal
    full = F.conv_transpose3d(tiled, layer.weight, layer.bias, stride=2)
    d, h, w = shape
    # the middle period, aligned as ConvTranspose3d's padding=1 aligns it (one voxel in)
    centre = full[..., 2 * d + 1 : 4 * d + 1, 2 * h + 1 : 4 * h + 1, 2 * w + 1 : 4 * w + 1]
    assert torch.allclose(layer(x), centre, atol=1e-12)
    shifted = layer(x.roll(1, dims=3))  # one voxel in -> two voxels out
    assert torch.allclose(shifted, layer(x).roll(2, dims=3), atol=1e-12)


def _values_and_grads(fn, inputs, grad):
    out = fn()
    return (out, *torch.autograd.grad(out, inputs, grad))


@pytest.mark.parametrize("c_out", [1, 3])  # 1: the sub-pixel path; 3: the parity weight gradient
@pytest.mark.parametrize("shape", [(4, 4, 4), (3, 5, 6), (2, 2, 2)])
def test_upconv_cpu_paths_equal_the_transposed_convolution(c_out, shape):
    """Values and all three gradients of UpConv's CPU formulations against oneDNN's
    transposed convolution of the padded input (float64)."""
    torch.manual_seed(2)
    layer = UpConv(3, c_out).double()
    x = torch.randn(2, 3, *shape, dtype=torch.float64, requires_grad=True)
    inputs = (x, layer.weight, layer.bias)
    grad = torch.randn(2, c_out, *(2 * n for n in shape), dtype=torch.float64)
    ours = _values_and_grads(lambda: layer(x), inputs, grad)
    direct = _values_and_grads(
        lambda: F.conv_transpose3d(periodic_pad(x), layer.weight, layer.bias, stride=2, padding=3),
        inputs, grad,
    )  # fmt: skip
    for a, b in zip(ours, direct, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12 * b.abs().max().item())
    assert torch.autograd.gradcheck(layer, (x,), fast_mode=True)


@pytest.mark.parametrize("shape", [(4, 4, 4), (6, 4, 8), (5, 4, 4)])  # the last: odd, plain path
def test_first_strided_conv_on_blocks_equals_the_strided_convolution(shape):
    torch.manual_seed(3)
    conv = Conv3x3(1, 4, stride=2).double()
    x = torch.randn(2, 1, *shape, dtype=torch.float64, requires_grad=True)
    inputs = (x, conv.weight, conv.bias)
    grad = torch.randn(2, 4, *((n + 1) // 2 for n in shape), dtype=torch.float64)
    ours = _values_and_grads(lambda: conv(x), inputs, grad)
    direct = _values_and_grads(
        lambda: F.conv3d(periodic_pad(x), conv.weight, conv.bias, 2), inputs, grad
    )
    for a, b in zip(ours, direct, strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12 * b.abs().max().item())


def test_periodic_pad_gradient_is_contiguous():
    x = torch.randn(2, 3, 4, 5, 6, requires_grad=True)
    (grad,) = torch.autograd.grad(periodic_pad(x), x, torch.randn(2, 3, 6, 7, 8))
    assert grad.is_contiguous()


def test_upconv_under_cpu_autocast_matches_onednn_in_bfloat16():
    """The parity weight gradient in bfloat16 agrees with oneDNN's to bfloat16 precision."""
    torch.manual_seed(5)
    layer = UpConv(8, 4)
    x = torch.randn(2, 8, 6, 6, 6, requires_grad=True)
    with torch.autocast("cpu", torch.bfloat16):
        out = layer(x)
        direct = F.conv_transpose3d(periodic_pad(x), layer.weight, layer.bias, stride=2, padding=3)
    assert out.dtype == direct.dtype == torch.bfloat16
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, (x, layer.weight, layer.bias), grad)
    theirs = torch.autograd.grad(direct, (x, layer.weight, layer.bias), grad)
    assert torch.allclose(out.float(), direct.float(), rtol=0, atol=1e-6)
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype == torch.float32
        assert torch.allclose(a, b, rtol=0, atol=2e-2 * b.abs().max().item())
