"""Recombination of pool samples: permuted labels, nearest parents, mixtures, overlap."""

import numpy as np
import pytest
import torch

from pvae.data.store import open_dataset
from pvae.data.symmetry import axis_permutations, permuted_diagonal
from pvae.design.novelty import NoveltyIndex
from pvae.design.pool import design_pool, lookup, nearest_parents
from pvae.design.recombination import encode_parents, parent_overlap, recombine
from pvae.physics.lbm import LBMSettings, permeability
from pvae.vae.loading import load_model


def test_a_permuted_structure_carries_the_permuted_k_diagonal():
    """A duct along x, permuted, runs along the axis its K moves to (checked by LBM)."""
    image = np.zeros((12, 12, 12), dtype=bool)
    image[4:8, 3:9, :] = True  # along x (array axis 2), rectangular: K_xx only
    settings = LBMSettings(max_steps=6000)
    k = np.diagonal(permeability(image, settings).k)
    assert k[0] > 0 and k[1] == 0 and k[2] == 0
    symmetries = axis_permutations(image.shape)
    assert len(symmetries) == 6 and symmetries[0].perm == (0, 1, 2)
    for symmetry in symmetries[1:4]:
        moved = np.ascontiguousarray(symmetry.apply(image))
        measured = np.diagonal(permeability(moved, settings).k)
        assert measured == pytest.approx(permuted_diagonal(k, symmetry), rel=1e-3, abs=1e-12)
    assert len(axis_permutations((8, 12, 12))) == 2  # only y <-> x keeps the shape


def test_nearest_parents_find_a_permuted_sample_and_lookup_stays_unpermuted(trained_run):
    run, data = trained_run
    loaded, store = load_model(run), open_dataset(data)
    pool = design_pool(loaded, store)
    table = store.manifest.iloc[pool.rows]
    ok = table[(table[["k_xx", "k_yy", "k_zz"]] > 0).all(axis=1)]
    spread = (np.log10(ok[["k_xx", "k_yy", "k_zz"]]).max(axis=1)
              - np.log10(ok[["k_xx", "k_yy", "k_zz"]]).min(axis=1))  # fmt: skip
    sample = ok.loc[spread.idxmax()]  # the most anisotropic sample
    assert spread.max() > 0.15  # beyond the 0.1 decade tolerance: the permutation matters
    # its properties with x and z exchanged: the sample itself, permuted, is exact
    target = {"porosity": sample["porosity"], "k_xx": sample["k_zz"], "k_yy": sample["k_yy"],
              "k_zz": sample["k_xx"]}  # fmt: skip
    first = nearest_parents(pool, target, 3)[0]
    assert first.sample_id == sample["sample_id"] and first.score == pytest.approx(0, abs=1e-9)
    assert first.symmetry.perm == (2, 1, 0) and first.name.endswith("@xyz")
    plain = lookup(pool, target)
    assert "@" not in plain["baseline_sample"]
    assert lookup(pool, target, permute=True)["baseline_score"] == pytest.approx(0, abs=1e-9)
    assert plain["baseline_score"] >= first.score
    # the plain lookup is the best unpermuted sample in the success measure itself
    unpermuted = nearest_parents(pool, target, len(pool.rows), permute=False)
    assert plain["baseline_score"] == min(p.score for p in unpermuted)


def test_recombined_candidates_join_their_parents_and_bound_novelty(trained_spatial_run, rng):
    """Crossovers of a spatial latent take a slab from one parent and the rest from the
    other; the parents' overlap bounds novelty; the residual correction weights the
    parents by their shares."""
    run, data = trained_spatial_run
    loaded, store = load_model(run), open_dataset(data)
    pool = design_pool(loaded, store)
    parents = nearest_parents(pool, {"porosity": 0.5}, 3)
    basis = encode_parents(loaded, pool, parents, rng)
    assert basis.latents.shape == (12, loaded.model.config.latent_dim)
    assert basis.log10_k.shape == (12, 3) and list(basis.shift_axis) == [-1, 0, 1, 2] * 3
    # each parent: its structure (permuted), then shifted along z, y and x by 1/4 to 3/4
    for j, p in enumerate(parents):
        image = p.symmetry.apply(store.images([p.row])[0])
        assert (basis.images[4 * j] == image.ravel()).all()
        for axis in range(3):
            row = basis.images[4 * j + 1 + axis].reshape(image.shape)
            n = image.shape[axis]
            assert any((np.roll(image, d, axis=axis) == row).all()
                       for d in range(n // 4, 3 * n // 4 + 1))  # fmt: skip
    found = recombine(basis, loaded.model.latent_shape, 40, rng)
    a, b = found.pairs.T
    assert (a != b).all() and (basis.shift_axis[a] == -1).all()
    same = basis.parent[a] == basis.parent[b]
    assert 0 < same.sum() < 40  # displaced slabs of one parent, and two parents layered
    for i in np.flatnonzero(same):  # a slab displaced along its own normal
        assert found.kinds[i].startswith(f"cross({'zyx'[basis.shift_axis[b[i]]]},")
    z = found.latents().reshape(40, *loaded.model.latent_shape)
    for i in range(40):  # every latent cell comes from exactly one of the two parents
        z_a, z_b = (basis.latents[j].reshape(loaded.model.latent_shape) for j in found.pairs[i])
        from_a = torch.isclose(z[i], z_a).all(0)
        from_b = torch.isclose(z[i], z_b).all(0)
        assert (from_a | from_b).all() and from_a.float().mean() == pytest.approx(found.share[i])
    assert found.kinds[0].startswith("cross(") and ":" in found.kinds[0]
    residual = np.tile([[1.0, 0.0, -1.0]], (12, 1)) * np.arange(12)[:, None]
    expected = found.share[:, None] * residual[a] + (1 - found.share[:, None]) * residual[b]
    assert np.allclose(found.correction(residual), expected)
    # novelty against the pool never exceeds 1 - the overlap with the two parents
    index = NoveltyIndex(pool.images())
    images = np.empty((6, *store.shape), dtype=bool)
    for i in range(6):
        x_a, x_b = (basis.images[j].reshape(store.shape) for j in found.pairs[i])
        images[i] = np.where(rng.random(store.shape) < 0.5, x_a, x_b)
    overlap = parent_overlap(images, basis.images[found.pairs[:6]])
    assert (index.novelty(images) <= 1 - overlap + 1e-6).all()  # float32 FFT
    assert (overlap > 0.4).all()


def test_flat_latents_are_blended(trained_run, rng):
    run, data = trained_run
    loaded, store = load_model(run), open_dataset(data)
    pool = design_pool(loaded, store)
    basis = encode_parents(loaded, pool, nearest_parents(pool, {"porosity": 0.5}, 2), rng)
    found = recombine(basis, loaded.model.latent_shape, 5, rng)
    a, b = basis.latents[found.pairs[:, 0]], basis.latents[found.pairs[:, 1]]
    share = torch.as_tensor(found.share, dtype=torch.float32)[:, None]
    assert torch.allclose(found.latents(), share * a + (1 - share) * b, atol=1e-6)
    assert ((found.share >= 0.25) & (found.share <= 0.75)).all()
    assert all(k.startswith("mix(") for k in found.kinds)
