"""The D3Q19 velocity set: velocities, weights, opposite directions.

Velocity components are in (x, y, z) order, as tensor components are everywhere in pvae,
while voxel arrays are indexed (z, y, x). :data:`ARRAY_SHIFTS` is the one place that maps a
lattice velocity onto array axes.

The ordering is: the rest velocity first, then opposite pairs next to each other, so that
``OPPOSITE[q] == q + 1`` for odd ``q``. :data:`PAIRS` lists ``(q, opposite)`` for odd ``q``.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Number of discrete velocities.
Q = 19

#: (Q, 3) int: lattice velocities c_q in (x, y, z) order.
VELOCITIES = np.array(
    [
        [0, 0, 0],
        [1, 0, 0], [-1, 0, 0],
        [0, 1, 0], [0, -1, 0],
        [0, 0, 1], [0, 0, -1],
        [1, 1, 0], [-1, -1, 0],
        [1, -1, 0], [-1, 1, 0],
        [1, 0, 1], [-1, 0, -1],
        [1, 0, -1], [-1, 0, 1],
        [0, 1, 1], [0, -1, -1],
        [0, 1, -1], [0, -1, 1],
    ],
    dtype=np.int64,
)  # fmt: skip

#: (Q,) float: quadrature weights w_q (1/3 rest, 1/18 faces, 1/36 edges).
WEIGHTS = np.array([1 / 3] + [1 / 18] * 6 + [1 / 36] * 12)

#: (Q,) int: index of -c_q.
OPPOSITE = np.array([0] + [q + 1 if q % 2 else q - 1 for q in range(1, Q)], dtype=np.int64)

#: ``(q, OPPOSITE[q])`` for the 9 pairs of moving velocities.
PAIRS = tuple((q, q + 1) for q in range(1, Q, 2))

#: Squared lattice speed of sound c_s^2.
CS2 = 1 / 3

#: Per velocity, the ``(z, y, x)`` roll shift that moves a field along c_q
#: (``np.roll(a, ARRAY_SHIFTS[q], axis=(-3, -2, -1))[x] == a[x - c_q]``), as Python ints.
ARRAY_SHIFTS = tuple((int(c[2]), int(c[1]), int(c[0])) for c in VELOCITIES)


def dot(c: Sequence[int], v: Sequence[Any]) -> Any:
    """Dot product of a lattice velocity (entries -1, 0, 1) with a 3-vector.

    Zero entries are skipped and unit entries add or subtract, so the result has no
    multiplication; ``v`` may hold numbers, tensors or traced symbols.

    Parameters
    ----------
    c : sequence of 3 int
        Lattice velocity in (x, y, z) order.
    v : sequence of 3 values
        Vector components in (x, y, z) order.

    Returns
    -------
    Any
        ``sum(c_k * v_k)``, or ``0.0`` when ``c`` is the rest velocity.
    """
    out = None
    for ck, vk in zip(c, v, strict=True):
        if ck == 0:
            continue
        if out is None:
            out = vk if ck > 0 else -vk
        else:
            out = out + vk if ck > 0 else out - vk
    return 0.0 if out is None else out
