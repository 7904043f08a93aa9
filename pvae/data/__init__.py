"""Datasets: the store (manifest + bit-packed voxels), image reading and writing, the
seeded microstructure generators, splits, cube symmetries and the embedded default
dataset. Uses :mod:`pvae.core` and :mod:`pvae.physics` (porosity and LBM labels)."""
