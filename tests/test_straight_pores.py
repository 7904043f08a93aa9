"""The straight-pore Poiseuille permeability: analytic slit and duct flow, zeros, gradients."""

import numpy as np
import pytest
import torch

from pvae.physics.lbm import LBMSettings, permeability
from pvae.surrogate.straight_pores import straight_pore_permeability

L = 24


def slit(width: int) -> torch.Tensor:
    """A slit of ``width`` pore voxel rows (array axis 1 = y) running along x and z."""
    x = torch.zeros(1, 1, L, L, L)
    x[0, 0, :, :width, :] = 1.0
    return x


@pytest.mark.parametrize("width", [3, 6])
def test_slit_is_plane_poiseuille_flow(width):
    # walls at the solid voxels' centres: gap h = width + 1, K = h^3 / (12 L) superficial;
    # the discrete Poisson problem gives width (width + 1) (width + 2) / (12 L) exactly
    k = straight_pore_permeability(slit(width), sweeps=400)[0].numpy()
    exact = width * (width + 1) * (width + 2) / (12 * L)
    assert k[0] == pytest.approx(exact, rel=1e-4) and k[2] == pytest.approx(exact, rel=1e-4)
    assert k[1] == 0.0  # no straight path across the slit's walls
    assert k[0] == pytest.approx((width + 1) ** 3 / (12 * L), rel=0.15)


def test_square_channel_matches_lbm_within_the_wall_offset():
    x = torch.zeros(1, 1, L, L, L)
    x[0, 0, :, 5:11, 5:11] = 1.0  # a 6 x 6 channel along z (array axis 0)
    k = straight_pore_permeability(x, sweeps=400)[0].numpy()
    assert k[0] == k[1] == 0.0
    lbm = permeability(x[0, 0].numpy().astype(bool), LBMSettings())
    # the same duct, half a voxel wider on each side: (7/6)^4 = 1.85 times the LBM's
    assert 1.2 < k[2] / lbm.k[2, 2] < 2.0


def test_tortuous_pores_have_no_straight_permeability_and_gradients_flow():
    rng = np.random.default_rng(0)
    spheres = torch.from_numpy(rng.random((2, 1, 16, 16, 16)) < 0.3).float()
    assert straight_pore_permeability(spheres).max() < 1e-3  # isolated lines at most
    soft = torch.full((1, 1, 8, 8, 8), 0.5, requires_grad=True)
    straight_pore_permeability(soft).sum().backward()
    assert torch.isfinite(soft.grad).all() and soft.grad.abs().sum() > 0
