"""Overlapping spherical pores at uniform random centres (3D isotropic, periodic)."""

import math
from dataclasses import dataclass

import numpy as np

from pvae.core.errors import check_range
from pvae.data.microstructures.periodic import phase_within, segment_distance


@dataclass(frozen=True)
class SpheresOptions:
    """Options of the ``spheres`` family.

    Attributes
    ----------
    porosity : tuple of float
        Target porosity range; each sample draws its target uniformly from it. The
        pore phase of overlapping spheres percolates above about 0.29.
    radius_fraction : tuple of float
        Nominal sphere radius range as a fraction of the smallest image side.
    """

    porosity: tuple[float, float] = (0.35, 0.75)
    radius_fraction: tuple[float, float] = (0.05, 0.1)

    def __post_init__(self):
        check_range("spheres", "porosity", self.porosity, 0.0, 0.999)
        check_range("spheres", "radius_fraction", self.radius_fraction, 0.0, 0.5)


def generate(shape: tuple[int, int, int], rng: np.random.Generator, options: SpheresOptions):
    """One sample of overlapping spherical pores.

    The number of centres follows the Boolean-model relation n = 1 - exp(-lambda V)
    for the drawn target porosity and nominal radius; the final radius is then set
    so that the porosity equals the target (to one voxel). Pores are the voxels
    whose centres lie within that radius of a centre, periodically.

    Parameters
    ----------
    shape : tuple of int
        (Z, Y, X) image shape in voxels.
    rng : np.random.Generator
        Source of randomness (one per sample).
    options : SpheresOptions

    Returns
    -------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore.
    params : dict
        ``target_porosity``, ``n_spheres``, ``nominal_radius`` and ``radius`` (voxels).
    """
    target = float(rng.uniform(*options.porosity))
    radius0 = max(1.0, float(rng.uniform(*options.radius_fraction)) * min(shape))
    volume = math.prod(shape)
    count = max(1, round(-math.log1p(-target) * volume / (4.0 / 3.0 * math.pi * radius0**3)))
    centres = rng.random((count, 3)) * np.asarray(shape, dtype=float)
    image, radius = phase_within(
        lambda cutoff: segment_distance(centres, centres, shape, cutoff),
        target,
        cutoff=1.5 * radius0 + 1.0,
        largest=math.dist((0, 0, 0), shape),
    )
    params = {
        "target_porosity": target,
        "n_spheres": count,
        "nominal_radius": radius0,
        "radius": radius,
    }
    return image, params
