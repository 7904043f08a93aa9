"""Thresholded periodic Gaussian random fields (level-cut Gaussian fields).

White noise is smoothed in Fourier space by a Gaussian filter with one correlation
length per axis, which makes the field exactly periodic, and cut at the level that
gives the target porosity. Porosity, feature size and anisotropy are drawn
independently: the porosity sets only the level, the mean correlation length only
the scale, and the anisotropy only how that scale is shared over the axes.
"""

import math
from dataclasses import dataclass

import numpy as np

from pvae.core.errors import PvaeError, check_range
from pvae.data.microstructures.periodic import threshold_for_fraction


@dataclass(frozen=True)
class GRFOptions:
    """Options of the ``grf`` family.

    Attributes
    ----------
    porosity : tuple of float
        Target porosity range; each sample draws its target uniformly from it.
    correlation_fraction : tuple of float
        Range of the mean correlation length (geometric mean over the three axes) as
        a fraction of the smallest image side. The mean chord of either phase at
        porosity 0.5 is about pi times the correlation length.
    anisotropy : tuple of float
        Range of the ratio between the longest and the shortest axis correlation
        length, drawn log-uniformly; ``(1, 1)`` is isotropic.
    """

    porosity: tuple[float, float] = (0.3, 0.8)
    correlation_fraction: tuple[float, float] = (0.04, 0.1)
    anisotropy: tuple[float, float] = (1.0, 4.0)

    def __post_init__(self):
        check_range("grf", "porosity", self.porosity, 0.0, 0.999)
        check_range("grf", "correlation_fraction", self.correlation_fraction, 0.0, 0.5)
        check_range("grf", "anisotropy", self.anisotropy, 0.0, 100.0)
        if self.anisotropy[0] < 1.0:
            raise PvaeError(
                f"grf: anisotropy is longest/shortest, needs lo >= 1, got {self.anisotropy[0]}"
            )


def _smoothed_noise(
    shape: tuple[int, int, int], lengths: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Periodic Gaussian random field with correlation exp(-sum_i r_i^2 / (2 l_i^2)).

    Parameters
    ----------
    shape : tuple of int
        (Z, Y, X) grid shape; the box is periodic.
    lengths : np.ndarray, shape (3,)
        Correlation length l_i along (z, y, x) in voxels.
    rng : np.random.Generator
        Source of the float64 white noise.

    Returns
    -------
    np.ndarray of float64, shape (Z, Y, X)
        The field (zero mean in expectation; its scale does not matter for a level cut).
    """
    noise = rng.standard_normal(shape)
    freqs = [np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1]), np.fft.rfftfreq(shape[2])]
    z, y, x = (length * f for length, f in zip(lengths, freqs, strict=True))
    # amplitude filter = sqrt of the Gaussian spectral density, frequencies in cycles/voxel
    gain = np.exp(-(math.pi**2) * (z[:, None, None] ** 2 + y[None, :, None] ** 2 + x**2))
    return np.fft.irfftn(np.fft.rfftn(noise) * gain, s=shape, axes=(0, 1, 2))


def generate(shape: tuple[int, int, int], rng: np.random.Generator, options: GRFOptions):
    """One level-cut Gaussian random field sample.

    One axis, drawn uniformly, is the long one: its correlation length is the mean
    length times ``anisotropy**(2/3)`` and the other two are the mean length times
    ``anisotropy**(-1/3)``. The geometric mean of the three lengths is therefore the
    drawn mean length whatever the anisotropy, so anisotropy does not move the
    feature size. The pores are the voxels where the field is at or below the level
    whose order statistic gives the target porosity (exact to one voxel; a float
    field has no ties).

    Parameters
    ----------
    shape : tuple of int
        (Z, Y, X) image shape in voxels.
    rng : np.random.Generator
        Source of randomness (one per sample).
    options : GRFOptions

    Returns
    -------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore.
    params : dict
        ``target_porosity``, ``length_z``, ``length_y``, ``length_x`` (correlation
        lengths, voxels) and ``anisotropy`` (longest / shortest length).
    """
    target = float(rng.uniform(*options.porosity))
    mean_length = float(rng.uniform(*options.correlation_fraction)) * min(shape)
    ratio = math.exp(rng.uniform(*np.log(options.anisotropy)))
    lengths = np.full(3, mean_length * ratio ** (-1 / 3))
    lengths[rng.integers(3)] = mean_length * ratio ** (2 / 3)
    field = _smoothed_noise(shape, lengths, rng)
    image = field <= threshold_for_fraction(field, target)
    params = {
        "target_porosity": target,
        "length_z": float(lengths[0]),
        "length_y": float(lengths[1]),
        "length_x": float(lengths[2]),
        "anisotropy": ratio,
    }
    return image, params
