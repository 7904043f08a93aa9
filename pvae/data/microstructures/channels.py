"""Straight square and cylindrical pores extruded through the volume.

The research code's synthetic set: pores of square or circular cross-section at
uniform random positions, each running straight through the whole sample along one
axis, optionally rejecting pores that would overlap existing ones. Positions wrap
periodically, so every pore is a channel of the periodic medium.
"""

from dataclasses import dataclass

import numpy as np

from pvae.core.errors import PvaeError, check_range

_AXIS_OF = {"z": 0, "y": 1, "x": 2}


@dataclass(frozen=True)
class ChannelsOptions:
    """Options of the ``channels`` family.

    Attributes
    ----------
    porosity : tuple of float
        Target porosity range; pores are added until the drawn target is reached.
    width_fraction : tuple of float
        Range of the pore width (square side or circle diameter) as a fraction of
        the smaller side of the cross-section.
    shapes : str
        ``"mixed"``, ``"square"`` or ``"cylinder"``.
    axes : str
        Axes pores may run along, any of ``"x"``, ``"y"``, ``"z"`` (``"z"`` alone:
        extruded through the slices like the research code; ``"xyz"``: 3D network).
    overlap : bool
        Allow pores to overlap; if False, a pore touching an existing one is redrawn.
    max_attempts : int
        Pore draws allowed per sample before giving up on the target.
    """

    porosity: tuple[float, float] = (0.2, 0.5)
    width_fraction: tuple[float, float] = (0.08, 0.2)
    shapes: str = "mixed"
    axes: str = "xyz"
    overlap: bool = True
    max_attempts: int = 2000

    def __post_init__(self):
        if self.shapes not in ("mixed", "square", "cylinder"):
            raise PvaeError(
                f"channels: shapes must be mixed, square or cylinder, not {self.shapes!r}"
            )
        if not self.axes or set(self.axes) - set("xyz"):
            raise PvaeError(f"channels: axes must be letters from 'xyz', not {self.axes!r}")
        check_range("channels", "porosity", self.porosity, 0.0, 0.999)
        check_range("channels", "width_fraction", self.width_fraction, 0.0, 1.0)
        if self.max_attempts < 1:
            raise PvaeError(f"channels: max_attempts {self.max_attempts}: need at least 1")


def _cross_section(extent: tuple[int, int], centre, width: float, square: bool) -> np.ndarray:
    """2D periodic mask of one pore's cross-section; shape ``extent``."""
    offsets = []
    for n, c in zip(extent, centre, strict=True):
        d = np.abs(np.arange(n) + 0.5 - c)
        offsets.append(np.minimum(d, n - d))
    da, db = offsets[0][:, None], offsets[1][None, :]
    half = 0.5 * width
    if square:
        return (da <= half) & (db <= half)
    return da**2 + db**2 <= half**2


def generate(shape: tuple[int, int, int], rng: np.random.Generator, options: ChannelsOptions):
    """One sample of straight extruded pores.

    Parameters
    ----------
    shape : tuple of int
        (Z, Y, X) image shape in voxels.
    rng : np.random.Generator
        Source of randomness (one per sample).
    options : ChannelsOptions

    Returns
    -------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore.
    params : dict
        ``target_porosity``, ``n_pores``, ``n_square``, ``n_cylinder``, ``n_rejected``
        and ``axes``.
    """
    target = float(rng.uniform(*options.porosity))
    image = np.zeros(shape, dtype=bool)
    goal = round(target * image.size)
    pores = {"square": 0, "cylinder": 0}
    rejected = 0
    axes = [_AXIS_OF[a] for a in options.axes]
    attempts = 0
    while image.sum() < goal:
        attempts += 1
        if attempts > options.max_attempts:
            raise PvaeError(
                f"channels: porosity {target:.3f} not reached in {options.max_attempts} pore "
                "draws; lower the porosity range or allow overlap"
            )
        axis = axes[rng.integers(len(axes))]
        extent = tuple(n for k, n in enumerate(shape) if k != axis)
        square = options.shapes == "square" or (options.shapes == "mixed" and rng.random() < 0.5)
        width = max(1.0, float(rng.uniform(*options.width_fraction)) * min(extent))
        centre = rng.random(2) * extent
        mask = np.expand_dims(_cross_section(extent, centre, width, square), axis)
        if not options.overlap and np.any(image & mask):
            rejected += 1
            continue
        image |= mask
        pores["square" if square else "cylinder"] += 1
    params = {
        "target_porosity": target,
        "n_pores": pores["square"] + pores["cylinder"],
        "n_square": pores["square"],
        "n_cylinder": pores["cylinder"],
        "n_rejected": rejected,
        "axes": options.axes,
    }
    return image, params
