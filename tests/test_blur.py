"""Directional blurs (:mod:`pvae.design.blur`): the design move and its no-model baseline."""

import numpy as np
import torch

from pvae.data.microstructures.synthesize import synthesize_sample
from pvae.design.baselines import blur_search, signed_distance
from pvae.design.blur import BLURS, blur_field, blur_key, blur_name
from pvae.physics.lbm import LBMSettings
from pvae.vae.inference import smooth_each, smooth_logits
from pvae.vae.verification import verify_structures

FAST_LBM = LBMSettings(max_steps=4000)


def test_a_blur_along_one_axis_acts_along_it_only(rng):
    field = torch.as_tensor(rng.standard_normal((2, 12, 12, 12)), dtype=torch.float32)
    along_x = smooth_logits(field, (0.0, 0.0, 2.0))
    # every x-line keeps its mean (a periodic blur conserves it), and nothing mixes across
    torch.testing.assert_close(along_x.mean(-1), field.mean(-1), atol=1e-5, rtol=0)
    assert not torch.allclose(along_x, field)

    # neighbours along x become alike, neighbours along y do not
    def neighbour_correlation(x, axis):
        return float(torch.corrcoef(torch.stack([x.flatten(), x.roll(1, axis).flatten()]))[0, 1])

    assert neighbour_correlation(along_x, -1) > 0.8
    assert abs(neighbour_correlation(along_x, -2)) < 0.2
    torch.testing.assert_close(smooth_logits(field, 0.7), smooth_logits(field, (0.7, 0.7, 0.7)))
    # per sample: each row of smooth_each is its own blur
    sigmas = np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 0.0]])
    each = smooth_each(field, sigmas)
    for row, sigma in enumerate(sigmas):
        torch.testing.assert_close(each[row], smooth_logits(field[row], sigma))


def test_blur_key_counts_an_excess_fully_and_a_shortfall_by_a_fifth():
    target = {"porosity": 0.4, "k_xx": 0.1, "k_yy": 0.1}
    log10_k = np.array([[-1.0, -1.0, 5.0],  # on target (k_zz is not set)
                        [-0.8, -1.0, 0.0],  # 2 tolerances too permeable along x
                        [-1.5, -1.0, 0.0]])  # 5 tolerances short along x  # fmt: skip
    np.testing.assert_allclose(blur_key(log10_k, target), [0.0, 2.0, 1.0])
    np.testing.assert_allclose(blur_key(log10_k, {"porosity": 0.4}), 0.0)
    assert blur_name((0.0, 2.0, 3.5)) == "blur(x=3.5,y=2)"
    assert len(set(BLURS)) == len(BLURS) == 28 and all(max(b) > 0 for b in BLURS)


def test_a_blur_along_x_raises_k_xx_and_leaves_porosity_exact():
    """Physics: a sphere pack's pores elongated along x conduct more along x (LBM)."""
    image, _ = synthesize_sample("spheres", (24, 24, 24), seed=3, index=0)
    porosity = float(image.mean())
    field = signed_distance(image)
    plain, along_x = blur_field(field, (0, 0, 0), porosity), blur_field(field, (0, 0, 3), porosity)
    assert np.array_equal(plain, image)  # no blur: the structure itself
    assert along_x.sum() == image.sum()  # exact porosity
    k = verify_structures(np.stack([plain, along_x]), FAST_LBM)
    log_k = k[[f"verified_log10_k_{c}" for c in ("xx", "yy", "zz")]].to_numpy()
    gain = log_k[1] - log_k[0]
    assert gain[0] > 0.25  # decades along x
    assert gain[0] > gain[1] + 0.15 and gain[0] > gain[2] + 0.15


def test_the_blur_baseline_searches_within_its_budget(trained_run):
    from pvae.data.store import open_dataset
    from pvae.design.pool import design_pool
    from pvae.vae.loading import load_model

    run, data = trained_run
    pool = design_pool(load_model(run), open_dataset(data))
    labels = pool.store.manifest.iloc[pool.rows]
    n, k = float(labels["porosity"].median()), float(labels["k_yy"].median())
    target = {"porosity": n, "k_xx": 4 * k, "k_yy": k, "k_zz": k}  # anisotropic
    result = blur_search(pool, target, budget=3, lbm=FAST_LBM)
    assert 1 <= result["lbm_solves"] <= 3
    assert result["success"] == (result["score"] <= 1.0) and np.isfinite(result["score"])


def test_inverse_design_screens_and_starts_from_blurred_recombinations(trained_run):
    from pvae.data.store import open_dataset
    from pvae.design.inverse import InverseSettings, _optimised, _starts
    from pvae.design.pool import design_pool
    from pvae.vae.loading import load_model

    run, data = trained_run
    loaded = load_model(run)
    pool = design_pool(loaded, open_dataset(data))
    settings = InverseSettings(candidates=2, starts=4, parents=2, mixtures=8, prior_samples=0,
                               blur_seeds=2, steps=2)  # fmt: skip
    target = {"porosity": 0.5, "k_xx": 0.3, "k_yy": 0.05}
    starts = _starts(loaded, pool, target, 0.5, settings, "cpu", None)
    screened = starts.screened
    assert len(screened) == 8 + 2 * len(BLURS) + 2 * 8  # mixtures, blurs, porosity variants
    blurred = screened.kinds[8 : 8 + 2 * len(BLURS)]
    assert all(k.startswith("blur(") for k in blurred) and blurred[0].startswith("blur(x=0.5)")
    porosity = screened.images[: 8 + 2 * len(BLURS)].mean(axis=(1, 2, 3))
    np.testing.assert_allclose(porosity, 0.5, atol=1 / 4096)
    seed = screened.kinds.index(blurred[0].split(":", 1)[1])  # its recombination
    assert not np.array_equal(screened.images[8], screened.images[seed])
    np.testing.assert_array_equal(screened.offset[8], screened.offset[seed])
    # a start keeps its blur through the optimisation and into its structure
    assert [k.startswith("blur(") for k in starts.kinds] == list(starts.blur.any(axis=1))
    optimised, _ = _optimised(loaded, target, pool, settings, "cpu", None, None)
    assert (
        len(optimised) == settings.starts
        and optimised.kinds == _starts(loaded, pool, target, 0.5, settings, "cpu", None).kinds
    )
    off = _starts(loaded, pool, target, 0.5, InverseSettings(
        candidates=2, starts=4, parents=2, mixtures=8, prior_samples=0, blur_seeds=0), "cpu",
        None).screened  # fmt: skip
    assert len(off) == 3 * 8 and not any(k.startswith("blur(") for k in off.kinds)


def test_parents_best_to_blur_fall_short_of_the_target(trained_run):
    from pvae.data.store import open_dataset
    from pvae.data.symmetry import permuted_diagonal
    from pvae.design.pool import blur_parents, design_pool, kozeny_carman_factor, nearest_parents
    from pvae.vae.loading import load_model

    run, data = trained_run
    pool = design_pool(load_model(run), open_dataset(data))
    labels = pool.store.manifest.iloc[pool.rows]
    n, k = float(labels["porosity"].median()), float(labels["k_yy"].median())
    target = {"porosity": n, "k_xx": 10 * k, "k_yy": k, "k_zz": k}  # far along x only
    parents = blur_parents(pool, target, 4)
    assert len(parents) == 4 and len({(p.row, p.symmetry.perm) for p in parents}) == 4

    def key(parent):  # blur_key of the label K at the target porosity (Kozeny-Carman)
        row = pool.store.manifest.iloc[parent.row]
        k = permuted_diagonal(row[["k_xx", "k_yy", "k_zz"]].to_numpy(float), parent.symmetry)
        return blur_key(np.log10(k * kozeny_carman_factor(row["porosity"], n))[None], target)[0]

    keys = [key(p) for p in parents]
    assert keys == sorted(keys) and keys[0] <= key(nearest_parents(pool, target, 1)[0])
    # the label score is kept, as for the nearest parents
    every = nearest_parents(pool, target, len(pool.rows) * 6)
    scores = {(p.row, p.symmetry.perm): p.score for p in every}
    assert all(p.score == scores[(p.row, p.symmetry.perm)] for p in parents)
