"""Lattice Boltzmann permeability of periodic voxel images (D3Q19, TRT, Guo forcing).

Images are boolean, ``True`` = pore, indexed (z, y, x); the permeability tensor is in
(x, y, z) order (``K[0, 0]`` = K_xx = flow along array axis 2).
"""

from pvae.physics.lbm.solver import (
    LBMSettings,
    PermeabilityResult,
    permeability,
    permeability_batch,
)

__all__ = ["LBMSettings", "PermeabilityResult", "permeability", "permeability_batch"]
