"""Command-line options shared by several sub-commands."""

import argparse
import sys

from pvae.atomic import json_text
from pvae.imaging.binarize import Binarization


def add_binarization(parser) -> None:
    """``--pore-value``, ``--threshold``, ``--invert`` (see :mod:`pvae.imaging.binarize`)."""
    group = parser.add_argument_group(
        "binarisation (default: two-valued images, the brighter value is pore)"
    )
    group.add_argument("--pore-value", type=float, help="grey value that means pore")
    group.add_argument(
        "--threshold", type=float, help="grey images: voxels with value >= T are pore"
    )
    group.add_argument("--invert", action="store_true", help="swap pore and solid")


def binarization(args) -> Binarization:
    """The :class:`Binarization` given by :func:`add_binarization` options."""
    return Binarization(pore_value=args.pore_value, threshold=args.threshold, invert=args.invert)


def add_progress(parser) -> None:
    """``--progress / --no-progress`` (default: a bar only on a terminal)."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: only on a terminal)",
    )


def print_json(obj) -> None:
    """Print indented strict JSON to stdout (NaN and infinities as null)."""
    sys.stdout.write(json_text(obj) + "\n")


def add_lbm(parser) -> None:
    """Lattice Boltzmann solver options (see :class:`pvae.physics.lbm.LBMSettings`)."""
    group = parser.add_argument_group("Lattice Boltzmann permeability")
    group.add_argument(
        "--collision",
        choices=("trt", "bgk"),
        default="trt",
        help="TRT (K independent of tau; default) or BGK (to reproduce BGK data)",
    )
    group.add_argument("--tau", type=float, default=1.0, help="relaxation time (> 0.5)")
    group.add_argument(
        "--tol",
        type=float,
        default=1e-5,
        help="converged when the mean flux changes less than this between checks",
    )
    group.add_argument("--check-every", type=int, default=100, help="steps between checks")
    group.add_argument("--max-steps", type=int, default=50_000, help="step cap per direction")
    group.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    group.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda, cuda:1")


def lbm_settings(args, convention: str = "superficial"):
    """:class:`LBMSettings` from :func:`add_lbm` options."""
    from pvae.physics.lbm import LBMSettings

    return LBMSettings(
        collision=args.collision,
        tau=args.tau,
        tol=args.tol,
        check_every=args.check_every,
        max_steps=args.max_steps,
        dtype=args.dtype,
        convention=convention,
    )
