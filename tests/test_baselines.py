"""No-model inverse-design baselines (:mod:`pvae.design.baselines`)."""

import numpy as np
import pytest

from pvae.data.store import open_dataset
from pvae.design.baselines import (
    catalogue_baseline,
    set_porosity,
    signed_distance,
    slab_splice,
    splice_estimate,
)
from pvae.design.pool import design_pool, lookup
from pvae.physics.lbm import LBMSettings

FAST_LBM = LBMSettings(max_steps=4000)


def test_signed_distance_of_a_periodic_slit():
    image = np.zeros((8, 8, 8), dtype=bool)
    image[:, :, [7, 0, 1]] = True  # a slit 3 voxels wide across the periodic x boundary
    d = signed_distance(image)
    np.testing.assert_allclose(d[0, 0, [7, 0, 1]], [1, 2, 1])  # centre deepest
    np.testing.assert_allclose(d[0, 0, [2, 3, 4]], [-1, -2, -3])  # x = 4: 3 from both walls
    assert np.all(d[:, :, 5] == d[0, 0, 5])  # a plane: depends on x only


def test_set_porosity_is_exact_and_grows_pores_evenly(rng):
    image = np.zeros((16, 16, 16), dtype=bool)
    z, y, x = np.indices(image.shape)
    image[(z - 8) ** 2 + (y - 8) ** 2 + (x - 8) ** 2 <= 16] = True  # a ball, radius 4
    assert np.array_equal(set_porosity(image, image.mean()), image)  # its own porosity: itself
    small, large = set_porosity(image, 0.02), set_porosity(image, 0.2)
    assert small.sum() == round(0.02 * 4096) and large.sum() == round(0.2 * 4096)
    assert np.all(large[image]) and not np.any(small[~image])  # nested: grown / shrunk
    # grown evenly: still a ball about the same centre
    radius = (3 * large.sum() / (4 * np.pi)) ** (1 / 3)
    r = np.sqrt((z - 8) ** 2 + (y - 8) ** 2 + (x - 8) ** 2)
    assert r[large].max() <= radius + 1.0


def test_splice_and_its_layered_estimate():
    a, b = np.ones((8, 8, 8), dtype=bool), np.zeros((8, 8, 8), dtype=bool)
    spliced = slab_splice(a, b, axis=0, fraction=0.25)
    assert spliced[:2].all() and not spliced[2:].any()
    k_a, k_b = np.array([1.0, 1.0, 1.0]), np.array([4.0, 4.0, 4.0])
    est = splice_estimate(k_a, k_b, axis=0, fraction=0.5)  # slab normal to z
    # across the layers (x, y) in parallel: 2.5; through them (z) in series: 1.6
    np.testing.assert_allclose(est, [2.5, 2.5, 1.6])
    np.testing.assert_allclose(splice_estimate(k_a, k_a, 2, 0.25), k_a)


def test_baselines_on_the_pool(trained_run):
    from pvae.vae.loading import load_model

    run, data = trained_run
    pool = design_pool(load_model(run), open_dataset(data))
    labels = pool.store.manifest.iloc[pool.rows]
    target = {"porosity": float(labels["porosity"].median()) + 0.013,
              "k_xx": float(labels["k_xx"].median())}  # fmt: skip
    nearest = catalogue_baseline(pool, target, "nearest", budget=3)
    rotated = lookup(pool, target, permute=True)
    assert nearest["score"] == pytest.approx(rotated["baseline_score"])
    assert nearest["lbm_solves"] == 0
    # porosity alone is met exactly by the signed-distance threshold: one solve suffices
    only = catalogue_baseline(pool, {"porosity": target["porosity"]}, "nearest_porosity", 3,
                              FAST_LBM)  # fmt: skip
    assert only["success"] and only["lbm_solves"] == 1
    for kind in ("nearest_porosity", "splice"):
        result = catalogue_baseline(pool, target, kind, budget=2, lbm=FAST_LBM, parents=3)
        assert 1 <= result["lbm_solves"] <= 2
        assert result["success"] == (result["score"] <= 1.0)
        assert np.isfinite(result["score"]) and result["candidate"]
