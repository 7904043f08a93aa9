"""Guo forcing (Guo, Zheng & Shi, Phys. Rev. E 65, 046308, 2002) of a body force F.

The velocity seen by the equilibrium and reported as the flow is shifted by half the force,
``u = sum_q f_q c_q + F / 2`` (with rho_0 = 1), and each population gains the source

    S_q = w_q [ 3 (c_q - u) . F + 9 (c_q . u)(c_q . F) ],

split into its even part ``w_q [9 (c.u)(c.F) - 3 u.F]`` and odd part ``w_q 3 c.F``, which
the TRT collision scales by ``1 - omega_plus / 2`` and ``1 - omega_minus / 2`` respectively.
All functions take numbers, tensors or traced symbols, in (x, y, z) component order.
"""

from collections.abc import Sequence
from typing import Any

from pvae.physics.lbm.lattice import PAIRS, VELOCITIES


def guo_velocity(fin: Sequence[Any], force: Sequence[Any]) -> list[Any]:
    """Fluid velocity ``u = sum_q f_q c_q + F / 2`` (lattice units, rho_0 = 1).

    Parameters
    ----------
    fin : sequence of Q values
        Populations (any shape, broadcastable).
    force : sequence of 3 values
        Body-force density (x, y, z), lattice units.

    Returns
    -------
    list of 3 values
        Velocity (x, y, z).
    """
    u = []
    for axis in range(3):
        acc = 0.5 * force[axis]
        for q, p in PAIRS:
            sign = VELOCITIES[q][axis]
            if sign > 0:
                acc = acc + (fin[q] - fin[p])
            elif sign < 0:
                acc = acc + (fin[p] - fin[q])
        u.append(acc)
    return u


def guo_source(w: float, cu: Any, cf: Any, uf: Any) -> tuple[Any, Any]:
    """Even and odd parts of the Guo source term of one velocity.

    Parameters
    ----------
    w : float
        Weight w_q.
    cu, cf : value
        ``c_q . u`` and ``c_q . F``.
    uf : value
        ``3 u . F``.

    Returns
    -------
    (even, odd) : tuple of values
        ``w (9 cu cf - uf)`` and ``3 w cf``; the source of ``-c_q`` is ``even - odd``.
    """
    return w * (9.0 * cu * cf - uf), (3.0 * w) * cf
