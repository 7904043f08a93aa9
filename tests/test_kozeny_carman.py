"""Kozeny-Carman baseline (pvae.physics.kozeny_carman); images True = pore, axes (z, y, x)."""

import numpy as np
import pytest

from pvae.core.errors import PvaeError
from pvae.physics.kozeny_carman import kozeny_carman, surface_area


def solid_sphere(radius: float, size: int) -> np.ndarray:
    centre = (size - 1) / 2
    z, y, x = np.indices((size,) * 3)
    return (x - centre) ** 2 + (y - centre) ** 2 + (z - centre) ** 2 >= radius**2


@pytest.mark.parametrize("radius", [8.0, 12.0])
def test_sphere_area_is_smooth_not_voxel_faces(radius):
    image = solid_sphere(radius, int(2 * radius) + 10)
    exact = 4 * np.pi * radius**2
    assert surface_area(image) == pytest.approx(exact, rel=0.03)
    faces = sum(np.count_nonzero(np.diff(image, axis=a)) for a in range(3))
    assert faces > 1.4 * exact  # what a voxel-face count would give


@pytest.mark.parametrize("width", [8, 16])
def test_plane_channels(width):
    period = 2 * width
    image = np.zeros((4, period, 4), dtype=bool)
    image[:, :width, :] = True
    exact = width**3 / (12 * period)  # Poiseuille, superficial velocity
    # slits have Kozeny constant 3 exactly; Carman's c = 5 underestimates by 3/5
    assert kozeny_carman(image, kozeny_constant=3.0) == pytest.approx(exact, rel=0.05)
    assert kozeny_carman(image) == pytest.approx(0.6 * exact, rel=0.05)
    assert kozeny_carman(image, voxel_size=1e-6) == pytest.approx(kozeny_carman(image) * 1e-12)


def test_no_interface_raises():
    with pytest.raises(PvaeError):
        kozeny_carman(np.ones((4, 4, 4), dtype=bool))
