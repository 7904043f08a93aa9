"""lbmpy's permeability column of one image, for ``bench_lbm.py --lbmpy PYTHON``.

Runs in its own environment (``make bench/.venv-lbmpy/.installed``: lbmpy, pystencils and
numpy only; pvae is not importable there), so it reads everything from its arguments:

    PYTHON bench/lbmpy_tensor.py IMAGE.npy --steps SX SY SZ [--tau 1.0] [--force 1e-5]

IMAGE.npy is a boolean (Z, Y, X) array, True = pore, the layout of pvae. For each forcing
direction j with ``steps[j] > 0`` it runs lbmpy's generated C kernel (D3Q19, TRT with the
magic parameter 3/16, Guo forcing, ``NoSlip`` halfway bounce-back on solid voxels, periodic
on all sides, OpenMP over the cores) for exactly that many steps, the number pvae's solver
took to converge, and prints one JSON line: per direction the superficial permeability
column (lattice units, (x, y, z) order), the seconds of the time steps, and the seconds of
setting up and compiling the kernels.

The velocity comes from the stored populations: lbmpy stores them after collision, whose
momentum is ``u + F/2`` with Guo forcing. Its own velocity field adds F/2 once more, which
moves K by ``nu * porosity`` lattice units. On a 32^3 sphere pack this reading agrees with
pvae's K to 1e-5 relative, at tau 0.8 and 1.5 alike (``bench/results/lbm_attempts.md``).
"""

import argparse
import json
import time

import numpy as np
import pystencils as ps
from lbmpy import ForceModel, LBMConfig, LBStencil, Method, Stencil
from lbmpy.boundaries import NoSlip
from lbmpy.lbstep import LatticeBoltzmannStep
from lbmpy.relaxationrates import relaxation_rate_from_magic_number

MAGIC = 3 / 16


def column(pore: np.ndarray, direction: int, steps: int, tau: float, force: float) -> dict:
    """K[:, direction] of a (Z, Y, X) pore image after ``steps`` lbmpy steps."""
    solid = ~pore.transpose(2, 1, 0)  # lbmpy indexes (x, y, z)
    size = solid.shape
    vector = [0.0, 0.0, 0.0]
    vector[direction] = force
    omega = 1.0 / tau
    config = LBMConfig(stencil=LBStencil(Stencil.D3Q19), method=Method.TRT,
                       relaxation_rates=[omega, relaxation_rate_from_magic_number(omega, MAGIC)],
                       force_model=ForceModel.GUO, force=tuple(vector), compressible=False)
    codegen = ps.CreateKernelConfig()
    codegen.cpu.openmp.enable = True
    began = time.perf_counter()
    step = LatticeBoltzmannStep(domain_size=size, periodicity=(True, True, True),
                                lbm_config=config, config=codegen)

    def is_solid(x, y, z):  # cell-centre coordinates, ghost layers included
        cells = (np.floor(c).astype(int) % n for c, n in zip((x, y, z), size, strict=True))
        return solid[tuple(cells)]

    step.boundary_handling.set_boundary(NoSlip(), mask_callback=is_solid)
    step.run(1)
    setup = time.perf_counter() - began
    began = time.perf_counter()
    step.run(steps - 1)
    run = time.perf_counter() - began
    pdf = step.data_handling.gather_array(step._pdf_arr_name, ghost_layers=False)
    momentum = np.tensordot(pdf, np.asarray(step.method.stencil, float), axes=([3], [0]))
    fluid = ~solid
    flux = momentum[fluid].sum(axis=0) - 0.5 * fluid.sum() * np.asarray(vector)
    nu = (tau - 0.5) / 3
    return {"k": (nu * flux / (force * solid.size)).tolist(), "run_s": run, "setup_s": setup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--steps", type=int, nargs=3, required=True)
    parser.add_argument("--tau", type=float, default=1.0)
    parser.add_argument("--force", type=float, default=1e-5)
    args = parser.parse_args()
    pore = np.load(args.image).astype(bool)
    columns = {str(j): column(pore, j, n, args.tau, args.force)
               for j, n in enumerate(args.steps) if n > 0}
    print(json.dumps(columns))


if __name__ == "__main__":
    main()
