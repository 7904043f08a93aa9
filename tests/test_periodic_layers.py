"""Periodic convolution layers: the padding's folded gradient and the transposed
convolution of the infinite periodic signal, against direct constructions."""

import pytest
import torch
import torch.nn.functional as F

from pvae.core.layers import UpConv, periodic_pad


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
