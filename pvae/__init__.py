"""pvae-tune: property-variational autoencoders for porous microstructures.

Conventions used throughout the package (see ``data/README.md``):

* voxel images are boolean arrays, ``True`` = pore (fluid), ``False`` = solid,
  indexed ``(z, y, x)``: axis 0 is the slice index of an image stack, axis 2 is x;
* tensor components are named in ``(x, y, z)`` order, so ``K_xx`` is flow along the
  last array axis;
* porosity is pore voxels / all voxels; permeability is stored in lattice units
  (voxel edge = 1) with the superficial-velocity Darcy convention.
"""

__version__ = "0.1.0"


def load_model(path, device: str = "cpu"):
    """A trained model from a bundle, checkpoint file or run directory.

    See :func:`pvae.vae.loading.load_model`; returns a :class:`pvae.vae.loading.LoadedModel`.
    """
    from pvae.vae.loading import load_model as _load

    return _load(path, device)
