"""Percolation of the pore space of a periodic voxel image.

Images are boolean arrays, ``True`` = pore, indexed (z, y, x); directions are reported in
(x, y, z) order, so direction 0 (x) is array axis 2.

Pore voxels are connected through shared faces (6-connectivity): two voxels that touch
only along an edge or at a corner leave no opening for fluid. Clusters are labelled with
:func:`scipy.ndimage.label` and then glued across the periodic faces with a union-find
that tracks, for every cluster, its offset in periods relative to the root of its set.
Closing a loop whose offsets do not add up to zero reveals a *winding*: the set touches its
own periodic image shifted by that many periods.

A body force along direction j does work on a periodic cluster, so drives a steady flow
through it, only if some winding of the cluster has a non-zero j component. Otherwise
``F x_j`` is a single-valued potential on the cluster, balanced by pressure, and the flow is
zero. (This also counts a channel that winds diagonally, e.g. by one period along x and
along y at once, as carrying flow along x; such a cluster does not meet its image shifted
by one period along x alone.)
"""

import numpy as np
from scipy import ndimage

_FACES = ndimage.generate_binary_structure(3, 1)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.bool_ or image.ndim != 3:
        raise ValueError(
            f"expected a boolean (Z, Y, X) image, got dtype {image.dtype} and shape {image.shape}"
        )
    return image


def periodic_clusters(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label pore clusters with periodic boundaries and find the directions they span.

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore; axes (z, y, x); periodic along all three axes.

    Returns
    -------
    labels : np.ndarray of int32, shape (Z, Y, X)
        0 on solid, ``1..M`` on the M periodic pore clusters.
    spans : np.ndarray of bool, shape (M + 1, 3)
        ``spans[m, j]``: cluster m has a winding with a non-zero component along direction
        j (x, y, z order), i.e. carries flow under a body force along j. Row 0 (solid) is
        False.
    """
    image = _check_image(image)
    labels, n_labels = ndimage.label(image, structure=_FACES)
    parent = np.arange(n_labels + 1)
    offset = np.zeros((n_labels + 1, 3), dtype=np.int64)  # periods from a label to its parent
    spans = np.zeros((n_labels + 1, 3), dtype=bool)

    def find(node: int) -> tuple[int, np.ndarray]:
        """Root of ``node`` and its offset from that root (with path compression)."""
        path = []
        while parent[node] != node:
            path.append(node)
            node = parent[node]
        total = np.zeros(3, dtype=np.int64)
        for member in reversed(path):
            total = total + offset[member]
            parent[member], offset[member] = node, total
        return node, (offset[path[0]] if path else total)

    for axis in range(3):
        step = np.zeros(3, dtype=np.int64)
        step[2 - axis] = 1  # array axis -> (x, y, z) direction
        last, first = labels.take(-1, axis=axis), labels.take(0, axis=axis)
        touching = (last > 0) & (first > 0)
        # voxel at index 0 of the next period is the face neighbour of the one at index -1
        for a, b in np.unique(np.stack([last[touching], first[touching]], axis=1), axis=0):
            root_a, off_a = find(int(a))
            root_b, off_b = find(int(b))
            if root_a == root_b:
                spans[root_a] |= (off_a + step - off_b) != 0
            else:
                parent[root_b], offset[root_b] = root_a, off_a + step - off_b
                spans[root_a] |= spans[root_b]

    roots = np.array([find(node)[0] for node in range(n_labels + 1)], dtype=np.int64)
    unique_roots, relabel = np.unique(roots, return_inverse=True)  # root 0 (solid) stays 0
    return relabel.astype(np.int32)[labels], spans[unique_roots]


def flow_paths(image: np.ndarray) -> np.ndarray:
    """Pore voxels that can carry flow under a body force along each direction.

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore; axes (z, y, x); periodic along all three axes.

    Returns
    -------
    np.ndarray of bool, shape (3, Z, Y, X)
        ``[j]`` is the pore space kept for a force along direction j (x, y, z order); pore
        clusters that carry no flow along j (dead clusters, isolated pores) are removed.
    """
    labels, spans = periodic_clusters(image)
    return np.moveaxis(spans[labels], -1, 0) & (labels > 0)


def percolates(image: np.ndarray) -> np.ndarray:
    """Whether the periodic pore space percolates along x, y, z.

    Parameters
    ----------
    image : np.ndarray of bool, shape (Z, Y, X)
        ``True`` = pore; axes (z, y, x).

    Returns
    -------
    np.ndarray of bool, shape (3,)
        Direction order (x, y, z).
    """
    _, spans = periodic_clusters(image)
    return spans.any(axis=0)
