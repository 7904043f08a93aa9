"""Textured binarization: exact porosity, periodic fields, and its effect on permeability."""

import numpy as np
import pytest

from pvae.inverse import corrected_texture
from pvae.physics.lbm import LBMSettings, permeability
from pvae.texture import binarize_at, gaussian_field, textured


def test_binarize_at_hits_the_pore_count_exactly(rng):
    values = rng.normal(size=(9, 10, 11))
    values[0, 0, :4] = 0.0  # ties
    for porosity in (0.0, 0.013, 0.5, 0.731, 1.0):
        image = binarize_at(values, porosity)
        assert image.dtype == bool and image.shape == values.shape
        assert image.sum() == round(porosity * values.size)
    image = binarize_at(values, 0.3)
    assert values[image].min() >= values[~image].max()  # the largest values are pore


def test_gaussian_field_is_standardized_periodic_and_seeded():
    a = gaussian_field((16, 16, 16), 2.0, np.random.default_rng(3))
    b = gaussian_field((16, 16, 16), 2.0, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert a.mean() == pytest.approx(0.0, abs=1e-5) and a.std() == pytest.approx(1.0, rel=1e-4)
    # smooth and periodic: the wrap-around neighbour is as correlated as an inner one
    inner = np.corrcoef(a[1:].ravel(), a[:-1].ravel())[0, 1]
    wrap = np.corrcoef(a[0].ravel(), a[-1].ravel())[0, 1]
    assert inner > 0.7 and abs(wrap - inner) < 0.15
    white = gaussian_field((16, 16, 16), 0.0, np.random.default_rng(3))
    assert abs(np.corrcoef(white[1:].ravel(), white[:-1].ravel())[0, 1]) < 0.1


def test_textured_keeps_porosity_and_zero_amplitude_is_plain(rng):
    logits = gaussian_field((12, 12, 12), 3.0, rng) * 4
    field = gaussian_field((12, 12, 12), 1.0, rng)
    images = textured(logits, field, [0.0, 1.0, 4.0], 0.6)
    assert images.shape == (3, 12, 12, 12)
    assert (images.sum(axis=(1, 2, 3)) == round(0.6 * 12**3)).all()
    assert np.array_equal(images[0], binarize_at(logits, 0.6))
    assert not np.array_equal(images[0], images[2])


def test_texture_lowers_permeability_at_equal_porosity():
    """Finer features at the same porosity mean a larger wetted surface: lower K (LBM)."""
    rng = np.random.default_rng(0)
    coarse = gaussian_field((20, 20, 20), 3.0, rng) * 3  # a smooth, blurry 'decode'
    field = gaussian_field((20, 20, 20), 1.0, rng)
    images = textured(coarse, field, [0.0, 2.0, 6.0], 0.7)
    settings = LBMSettings(tol=1e-5, max_steps=20_000)
    k = [np.trace(permeability(image, settings).k) / 3 for image in images]
    assert k[0] > 1.5 * k[1] > 1.5 * k[2] > 0


def test_corrected_texture_moves_sigma_toward_the_goal():
    grid = np.array([0.0, 1.0, 2.0, 4.0])
    curve = np.array([0.0, -0.5, -1.0, -1.5])  # screened mean log10 K falls with sigma
    # verified 0.2 decades above the screen at sigma 1: aim where curve = goal - 0.2
    sigma = corrected_texture(grid, curve, 0.2, -0.5, 1.0)
    assert np.interp(sigma, grid, curve) + 0.2 == pytest.approx(-0.5, abs=0.05)
    # a non-percolating verified structure steps to a coarser (smaller) sigma
    assert corrected_texture(grid, curve, np.nan, -0.5, 2.0) == 1.0
    assert corrected_texture(grid, curve, np.nan, -0.5, 0.0) == 0.0
