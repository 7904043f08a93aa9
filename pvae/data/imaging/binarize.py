"""Turning grey-value volumes into pore/solid images, with the rule stated explicitly.

Default rule (no option given): the volume must hold at most two distinct values;
the brighter one is pore (white = pore, as in the research code's BMP stacks). A
volume holding a single value is pore if that value is non-zero. ``--pore-value V``
names the value that means pore; ``--threshold T`` accepts grey volumes and calls
every voxel with value >= T pore. ``--invert`` swaps pore and solid after any rule.

:func:`binarize_at` thresholds a field (decoder logits) at a given pore fraction instead,
exact to the voxel: how generated structures are made to have a target porosity.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pvae.core.errors import PvaeError


@dataclass(frozen=True)
class Binarization:
    """How grey values become pore (True) and solid (False).

    Attributes
    ----------
    pore_value : float or None
        The grey value that means pore in a two-valued volume.
    threshold : float or None
        Voxels with grey value >= threshold are pore; allows non-binary volumes.
    invert : bool
        Swap pore and solid after applying the rule.
    """

    pore_value: float | None = None
    threshold: float | None = None
    invert: bool = False

    def __post_init__(self):
        if self.pore_value is not None and self.threshold is not None:
            raise PvaeError("give either --pore-value or --threshold, not both")

    def describe(self) -> str:
        """One-line statement of the rule, stored in dataset provenance."""
        if self.threshold is not None:
            rule = f"pore = grey >= {self.threshold:g}"
        elif self.pore_value is not None:
            rule = f"pore = grey == {self.pore_value:g}"
        else:
            rule = "pore = brighter of two values"
        return rule + (" (inverted)" if self.invert else "")


def binarize(grey: np.ndarray, rule: Binarization, source: str | Path) -> np.ndarray:
    """Apply a binarisation rule to a grey-value volume.

    Parameters
    ----------
    grey : np.ndarray, shape (Z, Y, X)
        Grey values (bool, integer or float), axis order (z, y, x).
    rule : Binarization
        The rule; see the module docstring for the default.
    source : str or Path
        File the volume came from, named in error messages.

    Returns
    -------
    np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore.
    """
    if grey.dtype.kind == "f" and np.isnan(grey).any():
        raise PvaeError(f"{source}: contains NaN grey values")
    if grey.dtype == np.bool_:
        pore = grey
    elif rule.threshold is not None:
        pore = grey >= rule.threshold
    else:
        values = np.unique(grey)
        if values.size > 2:
            raise PvaeError(
                f"{source}: {values.size} distinct grey values, not a binary image; "
                "binarise with --threshold T"
            )
        if rule.pore_value is not None:
            if rule.pore_value not in values:
                found = ", ".join(f"{v:g}" for v in values)
                raise PvaeError(
                    f"{source}: --pore-value {rule.pore_value:g} does not occur (values: {found})"
                )
            pore = grey == rule.pore_value
        elif values.size == 2:
            pore = grey == values[1]
        else:
            pore = np.full(grey.shape, bool(values[0] != 0))
    return ~pore if rule.invert else np.ascontiguousarray(pore)


def binarize_at(values: np.ndarray, porosity: float) -> np.ndarray:
    """The ``round(porosity * size)`` largest voxels of ``values`` as pore (True).

    Ties are broken by voxel order, so the pore count is exact.

    Parameters
    ----------
    values : np.ndarray, shape (D, H, W)
    porosity : float
        Pore fraction in [0, 1].

    Returns
    -------
    np.ndarray of bool, shape (D, H, W)
    """
    flat = values.ravel()
    pores = int(round(float(np.clip(porosity, 0.0, 1.0)) * flat.size))
    image = np.zeros(flat.size, dtype=bool)
    if pores:
        image[np.argpartition(-flat, pores - 1, kind="introselect")[:pores]] = True
    return image.reshape(values.shape)
