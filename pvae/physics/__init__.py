"""Physics of voxel microstructures: porosity, connectivity, permeability.

* :func:`porosity` — exact pore fraction;
* :mod:`pvae.physics.lbm` — Lattice Boltzmann permeability tensor (D3Q19, TRT);
* :mod:`pvae.physics.connectivity` — periodic percolation and flow-carrying pores;
* :mod:`pvae.physics.kozeny_carman` — the cheap Kozeny–Carman estimate.
"""

from pvae.physics.porosity import porosity

__all__ = ["porosity"]
