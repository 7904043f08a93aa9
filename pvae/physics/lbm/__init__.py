"""Lattice Boltzmann permeability of periodic voxel images (D3Q19, TRT, Guo forcing).

Images are boolean, ``True`` = pore, indexed (z, y, x); the permeability tensor is in
(x, y, z) order (``K[0, 0]`` = K_xx = flow along array axis 2). :func:`flow_fields` gives
the steady velocity field of each forcing direction, from the same solve.
"""

from pvae.physics.lbm.flow_field import FlowField, flow_fields, permeability_with_flow
from pvae.physics.lbm.solver import (
    LBMSettings,
    PermeabilityResult,
    permeability,
    permeability_batch,
)

__all__ = [
    "FlowField",
    "LBMSettings",
    "PermeabilityResult",
    "flow_fields",
    "permeability",
    "permeability_batch",
    "permeability_with_flow",
]
