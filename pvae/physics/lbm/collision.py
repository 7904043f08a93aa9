"""Two-relaxation-time (TRT) collision, with BGK as the special case of equal rates.

TRT (Ginzburg, Adv. Water Resour. 28, 2005) relaxes the even part
``(f_q + f_-q) / 2`` of each population pair with ``omega_plus = 1 / tau`` (which sets the
kinematic viscosity ``nu = (tau - 1/2) / 3``) and the odd part ``(f_q - f_-q) / 2`` with
``omega_minus``, chosen through the "magic" parameter

    Lambda = (1 / omega_plus - 1/2) (1 / omega_minus - 1/2).

With a fixed Lambda the steady solution, bounce-back walls included, does not depend on tau;
Lambda = 3/16 puts the halfway bounce-back wall exactly midway between nodes for Poiseuille
flow, so permeabilities do not depend on the viscosity. BGK (``omega_minus = omega_plus``)
is kept to reproduce data labelled with it; its wall location, hence K, moves with tau.

Populations are stored as deviations ``f_q - w_q`` from the rest state at rho_0 = 1, which
keeps float32 accurate at the small velocities of Stokes flow. The equilibrium is the
incompressible one of He & Luo (J. Stat. Phys. 88, 1997) in the same deviation form,

    f_q^eq - w_q = w_q [ drho + 3 c.u + 4.5 (c.u)^2 - 1.5 u.u ],

and the body force enters by Guo forcing (:mod:`pvae.physics.lbm.forcing`).
:func:`collide` is written once on lists of values so that the dense torch path calls it on
tensors and the CPU kernel generator traces it into straight-line code.
"""

from collections.abc import Sequence
from typing import Any

from pvae.core.errors import PvaeError
from pvae.physics.lbm.forcing import guo_source, guo_velocity
from pvae.physics.lbm.lattice import CS2, PAIRS, VELOCITIES, WEIGHTS, dot

COLLISIONS = ("trt", "bgk")


def kinematic_viscosity(tau: float) -> float:
    """Lattice kinematic viscosity ``nu = c_s^2 (tau - 1/2)`` (lattice units)."""
    return CS2 * (tau - 0.5)


def relaxation_rates(collision: str, tau: float, magic: float) -> tuple[float, float]:
    """Even and odd relaxation rates of the collision operator.

    Parameters
    ----------
    collision : {"trt", "bgk"}
        Operator; ``"bgk"`` ignores ``magic``.
    tau : float
        Relaxation time of the even moments, > 1/2.
    magic : float
        TRT magic parameter Lambda, > 0.

    Returns
    -------
    (omega_plus, omega_minus) : tuple of float
    """
    if collision not in COLLISIONS:
        raise PvaeError(f"unknown collision {collision!r}; choose one of {COLLISIONS}")
    if tau <= 0.5:
        raise PvaeError(f"tau must be > 0.5 for a positive viscosity, got {tau}")
    omega_plus = 1.0 / tau
    if collision == "bgk":
        return omega_plus, omega_plus
    if magic <= 0:
        raise PvaeError(f"the TRT magic parameter must be > 0, got {magic}")
    return omega_plus, 1.0 / (0.5 + magic / (tau - 0.5))


def collide(
    fin: Sequence[Any], force: Sequence[Any], omega_plus: Any, omega_minus: Any
) -> list[Any]:
    """TRT collision with Guo forcing of populations stored as deviations ``f_q - w_q``.

    Parameters
    ----------
    fin : sequence of Q values
        Incoming (post-streaming) population deviations; tensors of one shape
        (e.g. ``(L, Z, Y, X)``), numbers or traced symbols.
    force : sequence of 3 values
        Body-force density (x, y, z), broadcastable against ``fin[q]``.
    omega_plus, omega_minus : float or value
        Even and odd relaxation rates (:func:`relaxation_rates`).

    Returns
    -------
    list of Q values
        Post-collision population deviations.
    """
    drho = fin[0]
    for q in range(1, len(fin)):
        drho = drho + fin[q]
    u = guo_velocity(fin, force)
    usq = 1.5 * (u[0] * u[0] + u[1] * u[1] + u[2] * u[2])
    uf = 3.0 * (u[0] * force[0] + u[1] * force[1] + u[2] * force[2])
    keep_even = 1.0 - 0.5 * omega_plus
    keep_odd = 1.0 - 0.5 * omega_minus

    out: list[Any] = [None] * len(fin)
    w0 = float(WEIGHTS[0])
    out[0] = fin[0] - omega_plus * (fin[0] - w0 * (drho - usq)) - keep_even * (w0 * uf)
    for q, p in PAIRS:
        w = float(WEIGHTS[q])
        cu = dot(VELOCITIES[q], u)
        cf = dot(VELOCITIES[q], force)
        source_even, source_odd = guo_source(w, cu, cf, uf)
        even = keep_even * source_even - omega_plus * (
            0.5 * (fin[q] + fin[p]) - w * (drho + 4.5 * cu * cu - usq)
        )
        odd = keep_odd * source_odd - omega_minus * (0.5 * (fin[q] - fin[p]) - (3.0 * w) * cu)
        out[q] = fin[q] + even + odd
        out[p] = fin[p] + even - odd
    return out
