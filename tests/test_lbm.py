"""Physical checks of the lattice Boltzmann permeability solver (pvae.physics.lbm).

Images are boolean, True = pore, indexed (z, y, x); K is in (x, y, z) order.
"""

import json
import tempfile

import numpy as np
import pytest
import torch

from pvae.core.errors import PvaeError
from pvae.core.warnings import PvaeWarning
from pvae.data.microstructures import family_options, synthesize_sample
from pvae.physics.lbm import (
    LBMSettings,
    c_kernel,
    flow_fields,
    permeability,
    permeability_batch,
    permeability_with_flow,
    sparse_cpu,
)
from pvae.physics.lbm.collision import relaxation_rates
from pvae.physics.lbm.dense_torch import DenseTorchLattices
from pvae.physics.lbm.sparse_cpu import SparseCpuLattices

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


@pytest.mark.slow  # about 10 s on 2 cores: make test-slow
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


@pytest.mark.parametrize("backend", ["c", "numba"])
def test_torch_path_agrees_with_sparse_kernels(backend):
    image = overlapping_spheres(12, 0.65, 2.5, seed=3)
    settings = {"dtype": "float64", "tol": 1e-7}
    k_sparse = permeability(image, LBMSettings(backend=backend, **settings)).k
    k_torch = permeability(image, LBMSettings(backend="torch", **settings)).k
    np.testing.assert_allclose(k_torch, k_sparse, rtol=1e-6, atol=1e-9 * np.trace(k_sparse))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", ["c", "numba"])
def test_in_place_kernels_keep_the_pull_schemes_state_at_every_step(kernel, dtype):
    """After 1, 2, ... steps (steps A and B alike), the post-collision populations read
    from the in-place (AA) layout equal those of the dense pull-streaming torch path."""
    fluid = np.stack([overlapping_spheres(10, 0.6, 2.5, seed=4), plane_channel(4, 10, 10)])
    fluid[1, :, 5:] = False  # a dead end: bounce-back on every side
    force = np.array([[1e-3, 2e-4, 0.0], [0.0, 0.0, 1e-3]])
    rates = relaxation_rates("trt", 0.9, 3 / 16)
    sparse = SparseCpuLattices(fluid, force, *rates, np.dtype(dtype), kernel=kernel)
    dense = DenseTorchLattices(fluid, force, *rates, torch.float64, torch.device("cpu"), False)
    active = np.ones(2, dtype=bool)
    for steps in (1, 1, 2, 3):
        sparse.advance(steps, active)
        dense.advance(steps, active)
        expected = dense.population_sums()
        scale = np.abs(expected).max()
        tolerance = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(sparse.population_sums(), expected, atol=tolerance * scale)
        fields, reference = sparse.velocities(np.arange(2)), dense.velocities(np.arange(2))
        u_scale = np.abs(reference).max()
        np.testing.assert_allclose(fields, reference, rtol=0, atol=tolerance * u_scale)


def test_lattices_out_of_phase_give_the_one_by_one_numbers(random_sample):
    """An odd check interval leaves converged and running lattices in different phases."""
    other = overlapping_spheres(24, 0.7, 3.0, seed=2)
    settings = LBMSettings(check_every=7)
    batch = permeability_batch(np.stack([random_sample, other]), settings)
    assert len({int(steps) % 2 for result in batch for steps in result.steps}) == 2
    for image, batched in zip([random_sample, other], batch, strict=True):
        single = permeability(image, settings)
        np.testing.assert_allclose(batched.k, single.k, rtol=1e-6, atol=0)


def test_c_kernel_is_cached_and_missing_compiler_falls_back_to_numba(tmp_path, monkeypatch):
    image = overlapping_spheres(12, 0.65, 2.5, seed=3)
    expected = permeability(image, LBMSettings(backend="numba")).k
    caches = (c_kernel.load, c_kernel.stepper, sparse_cpu._warn_fallback)
    monkeypatch.setenv("PVAE_CACHE_DIR", str(tmp_path))
    try:
        for clear in caches:
            clear.cache_clear()
        library, why = c_kernel.load()
        assert library is not None and why == ""
        (built,) = (tmp_path / "lbm").glob("aa-*.so")
        stamp = built.stat().st_mtime_ns
        c_kernel.load.cache_clear()
        assert c_kernel.load()[0] is not None
        assert built.stat().st_mtime_ns == stamp  # loaded, not rebuilt

        monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
        for clear in caches:
            clear.cache_clear()
        with pytest.raises(PvaeError, match="C LBM kernel did not build: false failed"):
            permeability(image, LBMSettings(backend="c"))
        with pytest.warns(PvaeWarning, match="numba kernel"):
            k = permeability(image).k
        np.testing.assert_array_equal(k, expected)
    finally:
        monkeypatch.undo()
        for clear in caches:
            clear.cache_clear()


def test_c_kernel_builds_without_a_writable_cache_and_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")  # a cache folder under a file cannot be created
    monkeypatch.setenv("PVAE_CACHE_DIR", str(tmp_path / "file" / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    c_kernel.load.cache_clear()
    try:
        library, why = c_kernel.load()
        assert library is not None and why == ""
        assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # the build is gone
    finally:
        c_kernel.load.cache_clear()


def test_blocked_direction_is_exactly_zero(random_sample):
    image = random_sample.copy()
    image[5] = False  # a solid plate across z (array axis 0)
    result = permeability(image, LBMSettings(tol=1e-4))
    assert result.percolating.tolist() == [True, True, False]
    assert np.all(result.k[:, 2] == 0)
    # no mean flow can cross the plate: only the transient's remainder is left
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


# --- velocity fields (pvae.physics.lbm.flow_field) -------------------------------------


def test_flow_field_of_a_plane_channel_is_the_exact_parabola():
    width, period = 8, 10
    image = plane_channel(width, period)  # pore rows y = 1..8 of 10, flow along x and z
    x_flow, y_flow, z_flow = flow_fields(image, EXACT)
    nu = (EXACT.tau - 0.5) / 3
    y = np.arange(width) + 0.5  # node distance from the wall at the voxel face
    exact = EXACT.force / (2 * nu) * y * (width - y)
    for flow, component in ((x_flow, 0), (z_flow, 2)):
        assert flow.percolating and flow.converged and flow.steps > 0
        profile = flow.velocity[component][:, 1 : 1 + width, :]  # (Z, w, X)
        np.testing.assert_allclose(profile, np.broadcast_to(exact[None, :, None], profile.shape),
                                   rtol=5e-3)  # fmt: skip
        others = [c for c in range(3) if c != component]
        assert np.abs(flow.velocity[others]).max() < 1e-9 * exact.max()
        np.testing.assert_allclose(flow.magnitude[:, 1 : 1 + width], profile, rtol=1e-6)
    assert y_flow.axis == 1 and not y_flow.percolating and y_flow.converged
    assert y_flow.steps == 0 and not y_flow.velocity.any() and not y_flow.k_column.any()
    for flow in (x_flow, y_flow, z_flow):
        assert flow.velocity.shape == (3, *image.shape) and flow.velocity.dtype == np.float32
        assert not flow.velocity[:, ~image].any()  # exactly zero on solid voxels


def test_flow_field_mean_is_the_permeability_column(random_sample):
    image = random_sample.copy()
    image[5] = False  # z is blocked: a zero field
    settings = LBMSettings(tol=1e-6)
    result = permeability(image, settings)
    fields = flow_fields(image, settings)
    nu = (settings.tau - 0.5) / 3
    for flow in fields:
        mean = flow.velocity.astype(np.float64).mean(axis=(1, 2, 3))  # over ALL voxels
        np.testing.assert_allclose(flow.k_column, result.k[:, flow.axis], rtol=1e-12)
        np.testing.assert_allclose(mean * nu / settings.force, result.k[:, flow.axis],
                                   rtol=1e-5, atol=1e-7 * result.k[0, 0])  # fmt: skip
        assert flow.steps == result.steps[flow.axis]
        assert flow.converged == result.converged[flow.axis]
        assert not flow.velocity[:, ~image].any()
    assert not fields[2].percolating and not fields[2].velocity.any()
    # along its force the flow goes forward on average, and is zero where it cannot flow
    assert fields[0].velocity[0].mean() > 0 and fields[1].velocity[1].mean() > 0


def test_flow_field_is_zero_in_pores_without_flow_and_with_permeability_from_one_solve():
    image = plane_channel(4, 12, length=6)
    image[2:4, 8:10, 2:4] = True  # enclosed pore: no flow there
    result, fields = permeability_with_flow(image, EXACT, voxel_size=1e-6)
    np.testing.assert_array_equal(result.k, permeability(image, EXACT).k)
    assert result.k_m2 is not None
    for flow in fields:
        assert not flow.velocity[:, 2:4, 8:10, 2:4].any()
    assert fields[0].velocity[0, :, 1:5].min() > 0


def test_flow_fields_of_c_and_torch_agree():
    image = overlapping_spheres(12, 0.65, 2.5, seed=3)
    settings = {"dtype": "float64", "tol": 1e-7}
    c_fields = flow_fields(image, LBMSettings(backend="c", **settings))
    torch_fields = flow_fields(image, LBMSettings(backend="torch", **settings))
    for a, b in zip(c_fields, torch_fields, strict=True):
        scale = np.abs(a.velocity).max()
        assert scale > 0
        np.testing.assert_allclose(b.velocity, a.velocity, rtol=0, atol=1e-6 * scale)
        np.testing.assert_allclose(b.k_column, a.k_column, rtol=1e-6, atol=1e-9 * scale)


def test_flow_fields_for_some_axes_and_at_the_step_cap():
    image = plane_channel(8, 10)
    (z_flow,) = flow_fields(image, LBMSettings(check_every=50, max_steps=120), axes=(2,))
    assert z_flow.axis == 2 and z_flow.name == "z" and not z_flow.converged
    assert z_flow.steps == 120 and z_flow.velocity[2].mean() > 0
    capped = permeability(image, LBMSettings(check_every=50, max_steps=120))
    np.testing.assert_allclose(z_flow.k_column, capped.k[:, 2], rtol=1e-12)
    with pytest.raises(PvaeError, match="axes"):
        flow_fields(image, axes=(3,))


def test_default_convergence_keeps_the_recorded_labels():
    from pvae.data.default_data import DEFAULT_DATASET, RECIPE
    from pvae.data.store import open_dataset

    store = open_dataset(DEFAULT_DATASET)
    for i in (0, len(store) // 2):  # a channel and a sphere pack
        image, recorded = store.image(i), store.permeability(i)
        scale = np.abs(np.diag(recorded)).max()
        legacy = permeability(image, LBMSettings(**RECIPE["lbm"]))  # the rule that labelled it
        assert np.abs(legacy.k - recorded).max() <= 1e-5 * scale
        default = permeability(image)  # the extrapolated rule: K within 0.5%, in fewer steps
        assert np.abs(default.k - recorded).max() <= 5e-3 * scale
        assert default.steps.sum() < legacy.steps.sum()
