"""Physical checks of the lattice Boltzmann permeability solver (pvae.physics.lbm).

Images are boolean, True = pore, indexed (z, y, x); K is in (x, y, z) order.
"""

import json

import numpy as np
import pytest

from pvae.core.errors import PvaeError
from pvae.data.microstructures import family_options, synthesize_sample
from pvae.physics.lbm import LBMSettings, permeability, permeability_batch

EXACT = LBMSettings(dtype="float64", tol=1e-9, max_steps=100_000)


def overlapping_spheres(size: int, porosity: float, radius: float, seed: int) -> np.ndarray:
    """Periodic random pore space (True = pore): the ``spheres`` family at one porosity."""
    options = family_options(
        "spheres", {"porosity": (porosity, porosity), "radius_fraction": (radius / size,) * 2}
    )
    return synthesize_sample("spheres", (size,) * 3, seed, 0, options)[0]


def plane_channel(width: int, period: int, length: int = 2) -> np.ndarray:
    """Pore slab ``width`` voxels wide across y, solid elsewhere; flow along x and z."""
    image = np.zeros((length, period, length), dtype=bool)
    image[:, 1 : 1 + width, :] = True
    return image


def poiseuille_k(width: int, period: int) -> float:
    """Exact lattice K of a plane channel (superficial convention).

    The exact profile u(y) = F / (2 nu) * y * (w - y), walls at y = 0 and y = w, is
    reproduced at the nodes y = 1/2, 3/2, ..., w - 1/2 by halfway bounce-back with TRT
    Lambda = 3/16. The mean over the w fluid nodes is F / nu * (w^2 / 12 + 1 / 24) (the
    midpoint rule's 1/24 against the continuous w^2 / 12), and the superficial velocity
    carries the factor w / period.
    """
    return (width**2 / 12 + 1 / 24) * width / period


@pytest.fixture(scope="module")
def random_sample() -> np.ndarray:
    return overlapping_spheres(24, 0.6, 4.0, seed=1)


@pytest.mark.parametrize("width", [4, 8, 16])
def test_poiseuille_matches_exact_discrete_solution(width):
    period = width + 2
    result = permeability(plane_channel(width, period), EXACT)
    exact = poiseuille_k(width, period)
    assert result.k[0, 0] == pytest.approx(exact, rel=5e-3)
    assert result.k[2, 2] == pytest.approx(exact, rel=5e-3)
    assert result.percolating.tolist() == [True, False, True]
    assert np.all(result.k[:, 1] == 0)  # no flow path along y: not even simulated
    off_diagonal = result.k[[0, 1, 1, 2], [2, 0, 2, 0]]
    assert np.abs(off_diagonal).max() < 1e-9 * exact


@pytest.mark.parametrize("tau", [0.6, 1.0, 1.5])
def test_trt_permeability_does_not_depend_on_tau(tau):
    image = plane_channel(8, 10)
    reference = permeability(image, EXACT).k[0, 0]
    settings = LBMSettings(tau=tau, dtype="float64", tol=1e-9, max_steps=100_000)
    assert permeability(image, settings).k[0, 0] == pytest.approx(reference, rel=5e-3)


def test_bgk_wall_moves_with_tau():
    """BGK puts the bounce-back wall midway only at (tau - 1/2)^2 = 3/16."""
    image = plane_channel(4, 6)
    exact = poiseuille_k(4, 6)
    magic_tau = LBMSettings(collision="bgk", tau=0.5 + np.sqrt(3 / 16), dtype="float64", tol=1e-9)
    assert permeability(image, magic_tau).k[0, 0] == pytest.approx(exact, rel=1e-4)
    slow = LBMSettings(collision="bgk", tau=1.5, dtype="float64", tol=1e-9)
    assert permeability(image, slow).k[0, 0] > 1.05 * exact


# Zick & Homsy (1982), J. Fluid Mech. 115, 13-26, Table 2, simple cubic arrays: solid
# fraction c -> drag coefficient K(c) = F / (6 pi mu r U), with U the superficial velocity
# and F = (pressure gradient) a^3 the force per sphere in a cell of edge a. Darcy's law
# then gives the permeability k = mu U / (pressure gradient) = a^3 / (6 pi r K(c)).
ZICK_HOMSY = {0.064: 2.810, 0.125: 4.292, 0.216: 7.442, 0.343: 15.4, 0.45: 28.1}


def zick_homsy_error(solid_fraction: float, cell: int = 32) -> np.ndarray:
    """Relative error of the diagonal of K for a sphere of the nominal radius."""
    radius = cell * (3 * solid_fraction / (4 * np.pi)) ** (1 / 3)
    centre = cell / 2
    z, y, x = np.indices((cell,) * 3) + 0.5
    image = (x - centre) ** 2 + (y - centre) ** 2 + (z - centre) ** 2 >= radius**2
    result = permeability(image, LBMSettings(tol=1e-6))
    expected = cell**3 / (6 * np.pi * radius * ZICK_HOMSY[solid_fraction])
    return np.diag(result.k) / expected - 1


def test_zick_homsy_one_point():
    assert np.all(np.abs(zick_homsy_error(0.343)) < 0.06)


@pytest.mark.slow
@pytest.mark.parametrize("solid_fraction", sorted(ZICK_HOMSY))
def test_zick_homsy_simple_cubic(solid_fraction):
    error = zick_homsy_error(solid_fraction)
    print(f"Zick-Homsy c={solid_fraction}: relative error {error}")
    assert np.all(np.abs(error) < 0.06)


def test_random_structure_symmetric_positive_definite_and_axis_covariant(random_sample):
    perm = (2, 0, 1)  # new array axes (z, y, x) = old (x, z, y)
    permuted = np.transpose(random_sample, perm)
    k, k_perm = (r.k for r in permeability_batch(np.stack([random_sample, permuted])))
    scale = np.trace(k) / 3
    assert np.abs(k - k.T).max() <= 0.02 * scale
    assert np.all(np.linalg.eigvalsh((k + k.T) / 2) > 0)
    # tensor direction of array axis a is 2 - a; new direction i is old direction order[i]
    order = [2 - perm[2 - i] for i in range(3)]
    assert np.abs(k_perm - k[np.ix_(order, order)]).max() <= 0.01 * scale


def test_batch_equals_one_by_one(random_sample):
    other = overlapping_spheres(24, 0.7, 3.0, seed=2)
    batch = permeability_batch(np.stack([random_sample, other]))
    for image, batched in zip([random_sample, other], batch, strict=True):
        single = permeability(image)
        np.testing.assert_allclose(batched.k, single.k, rtol=1e-6, atol=0)
        np.testing.assert_array_equal(batched.steps, single.steps)


def test_float32_agrees_with_float64(random_sample):
    k32 = permeability(random_sample, LBMSettings(dtype="float32", tol=1e-6)).k
    k64 = permeability(random_sample, LBMSettings(dtype="float64", tol=1e-6)).k
    assert np.abs(k32 - k64).max() <= 0.01 * np.trace(k64) / 3


def test_torch_path_agrees_with_numba_kernel():
    image = overlapping_spheres(12, 0.65, 2.5, seed=3)
    settings = {"dtype": "float64", "tol": 1e-7}
    k_numba = permeability(image, LBMSettings(backend="numba", **settings)).k
    k_torch = permeability(image, LBMSettings(backend="torch", **settings)).k
    np.testing.assert_allclose(k_torch, k_numba, rtol=1e-6, atol=1e-9 * np.trace(k_numba))


def test_blocked_direction_is_exactly_zero(random_sample):
    image = random_sample.copy()
    image[5] = False  # a solid plate across z (array axis 0)
    result = permeability(image)
    assert result.percolating.tolist() == [True, True, False]
    assert np.all(result.k[:, 2] == 0)
    assert np.abs(result.k[2, :2]).max() <= 1e-3 * result.k[0, 0]
    assert result.steps[2] == 0 and result.converged[2]


def test_isolated_pores_are_removed():
    channel = plane_channel(4, 12, length=6)
    with_cavity = channel.copy()
    with_cavity[2:4, 8:10, 2:4] = True  # enclosed pore, 2 solid layers from the channel
    clean, cavity = permeability_batch(np.stack([channel, with_cavity]), EXACT)
    np.testing.assert_array_equal(cavity.k, clean.k)
    assert cavity.porosity > clean.porosity


def test_invalid_samples_raise():
    with pytest.raises(PvaeError, match="fully solid"):
        permeability(np.zeros((4, 4, 4), dtype=bool))
    with pytest.raises(PvaeError, match="no solid"):
        permeability(np.ones((4, 4, 4), dtype=bool))
    with pytest.raises(PvaeError, match="boolean"):
        permeability(np.ones((4, 4, 4), dtype=np.uint8))
    with pytest.raises(PvaeError, match="tau"):
        LBMSettings(tau=0.5)


def test_convergence_reporting_and_step_cap():
    image = plane_channel(8, 10)
    done = permeability(image, LBMSettings(check_every=50))
    assert done.converged.tolist() == [True, True, True]
    assert done.steps[0] > 0 and done.steps[0] % 50 == 0
    capped = permeability(image, LBMSettings(check_every=50, max_steps=120))
    assert capped.converged.tolist() == [False, True, False]
    assert capped.steps.tolist() == [120, 0, 120]


def test_conventions_units_and_json(random_sample):
    superficial = permeability(random_sample, voxel_size=2e-6)
    pore = permeability(random_sample, LBMSettings(convention="pore"))
    np.testing.assert_allclose(pore.k * superficial.porosity, superficial.k, rtol=1e-12)
    np.testing.assert_allclose(superficial.k_m2, superficial.k * 4e-12, rtol=1e-12)
    assert pore.k_m2 is None
    decoded = json.loads(json.dumps(superficial.to_dict()))
    assert decoded["convention"] == "superficial"
    np.testing.assert_allclose(decoded["k"], superficial.k)
