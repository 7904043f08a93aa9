"""The 48 symmetries of the cube, acting on voxel images and on rank-2 tensors.

A symmetry is an axis permutation followed by axis flips of the image array. With
image axes (z, y, x) and tensor components in (x, y, z) order, the same symmetry acts
on a tensor as ``K' = R K R^T`` with ``R`` the signed permutation matrix in (x, y, z)
components returned by :meth:`CubeSymmetry.matrix`. A structure and its permeability
rotated together stay consistent: this is what makes symmetry augmentation of
property-labelled data valid.
"""

from dataclasses import dataclass
from itertools import permutations, product

import numpy as np
import torch


@dataclass(frozen=True)
class CubeSymmetry:
    """One cube symmetry acting on arrays indexed (z, y, x).

    Attributes
    ----------
    perm : tuple of int
        New array axis k is old array axis ``perm[k]`` (as in ``np.transpose``).
    flips : tuple of bool
        After permuting, array axis k is reversed where ``flips[k]``.
    """

    perm: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    def apply(self, image):
        """Transform an image; the last three axes are (z, y, x).

        Parameters
        ----------
        image : np.ndarray or torch.Tensor, shape (..., Z, Y, X)

        Returns
        -------
        Same type, shape (..., Z', Y', X') with the sides permuted by ``perm``.
        """
        lead = image.ndim - 3
        order = (*range(lead), *(lead + p for p in self.perm))
        flip_axes = tuple(lead + k for k, f in enumerate(self.flips) if f)
        if isinstance(image, torch.Tensor):
            out = image.permute(order)
            return out.flip(flip_axes) if flip_axes else out
        out = np.transpose(image, order)
        return np.flip(out, flip_axes) if flip_axes else out

    def matrix(self) -> np.ndarray:
        """Signed permutation matrix R (3, 3) in (x, y, z) components: v' = R v."""
        array_matrix = np.zeros((3, 3))
        for k, (p, f) in enumerate(zip(self.perm, self.flips, strict=True)):
            array_matrix[k, p] = -1.0 if f else 1.0
        reverse = np.eye(3)[::-1]  # array axis order (z, y, x) <-> components (x, y, z)
        return reverse @ array_matrix @ reverse

    def apply_tensor(self, tensor):
        """Rotate rank-2 tensors K (..., 3, 3) in (x, y, z) components: K' = R K R^T."""
        r = self.matrix()
        if isinstance(tensor, torch.Tensor):
            r = torch.as_tensor(r, dtype=tensor.dtype, device=tensor.device)
        return r @ tensor @ r.T


def cube_symmetries(shape: tuple[int, int, int] | None = None) -> list[CubeSymmetry]:
    """All cube symmetries, or those that keep an image shape unchanged.

    Parameters
    ----------
    shape : tuple of int, optional
        (Z, Y, X). For a non-cubic shape only permutations of equal sides are kept
        (e.g. 16 of the 48 when exactly two sides are equal, 8 when none are).

    Returns
    -------
    list of CubeSymmetry
        The identity first.
    """
    group = [
        CubeSymmetry(perm, flips)
        for perm in permutations(range(3))
        for flips in product((False, True), repeat=3)
    ]
    if shape is not None:
        group = [s for s in group if tuple(shape[p] for p in s.perm) == tuple(shape)]
    return group


def axis_permutations(shape: tuple[int, int, int]) -> list[CubeSymmetry]:
    """The axis permutations (no flips) that keep an image shape; the identity first."""
    return [s for s in cube_symmetries(shape) if not any(s.flips)]


def permuted_diagonal(k_diagonal: np.ndarray, symmetry: CubeSymmetry) -> np.ndarray:
    """The K diagonal (..., 3), (xx, yy, zz), of a structure transformed by ``symmetry``.

    ``K' = R K R^T`` with R a signed permutation, so ``K'_ii = K_jj`` with j the source
    component of i.
    """
    return k_diagonal @ np.abs(symmetry.matrix()).T
