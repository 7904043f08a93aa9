"""Physics of voxel microstructures: porosity and permeability."""

from pvae.physics.porosity import porosity

__all__ = ["porosity"]
