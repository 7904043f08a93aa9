"""Command-line options shared by several sub-commands."""

import argparse
import dataclasses
import re
import sys

from pvae.core.atomic import json_text
from pvae.data.imaging.binarize import Binarization


def add_binarization(parser) -> None:
    """``--pore-value``, ``--threshold``, ``--invert`` (see :mod:`pvae.data.imaging.binarize`)."""
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


def add_mlflow(parser, what: str) -> None:
    """``--mlflow [URI]``: also log ``what`` to MLflow (see :mod:`pvae.core.tracking`)."""
    parser.add_argument(
        "--mlflow",
        nargs="?",
        const=True,
        metavar="URI",
        help=f"log {what} to MLflow at this tracking URI (alone: the results folder's "
        "SQLite store mlflow.db); needs the mlflow extra",
    )


_COMPONENT = re.compile(r"^(?:(?P<prefix>.+)_)?k_(?P<i>[xyz])(?P<j>[xyz])$")


def nest_permeability(record: dict) -> dict:
    """A record's flat ``PREFIX_k_ij`` fields as ``PREFIX_permeability`` tensors.

    The one JSON shape of a permeability tensor across commands: a 3x3 nested list,
    rows and columns in (x, y, z) order (``[i][j]`` = flow along i for a force along
    j), lattice units, superficial convention; ``null`` for a component the record
    does not have (e.g. the off-diagonal of a diagonal target). Fields of log10 K stay
    as they are.
    """
    out, tensors = {}, {}
    for key, value in record.items():
        match = _COMPONENT.match(key)
        if match is None or (match["prefix"] or "").endswith("log10"):
            out[key] = value
            continue
        name = f"{match['prefix']}_permeability" if match["prefix"] else "permeability"
        tensor = tensors.setdefault(name, [[None] * 3 for _ in range(3)])
        tensor["xyz".index(match["i"])]["xyz".index(match["j"])] = value
    return out | tensors


def print_json(obj) -> None:
    """Print indented strict JSON to stdout (NaN and infinities as null)."""
    sys.stdout.write(json_text(obj) + "\n")


def add_fields(group, cls, options) -> None:
    """Options whose defaults live in a settings dataclass, not on the command line.

    Parameters
    ----------
    group : argparse parser or argument group
    cls : dataclass type
        Where the defaults are (shown in the help, read from the class).
    options : iterable of (field name, dict of ``add_argument`` keywords)
        ``--field-name`` options; their argparse default is None, so
        :func:`from_fields` leaves what the user did not give to the dataclass.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for name, keywords in options:
        keywords = dict(keywords)  # the caller's table stays as it is
        help_text = f"{keywords.pop('help')} (default {defaults[name]})"
        group.add_argument(f"--{name.replace('_', '-')}", default=None, help=help_text, **keywords)


def from_fields(cls, args, names, **fixed):
    """``cls`` from the options of :func:`add_fields` that were given, plus ``fixed``."""
    given = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    return cls(**given, **fixed)


LBM_OPTIONS = (
    ("collision", {"choices": ("trt", "bgk"),
                   "help": "TRT (K independent of tau) or BGK (to reproduce BGK data)"}),
    ("tau", {"type": float, "help": "relaxation time (> 0.5)"}),
    ("tol", {"type": float,
             "help": "converged when the estimated remaining relative error of the mean flux "
                     "(and its last change) is below this (default 1e-3)"}),
    ("convergence", {"choices": ("extrapolated", "change"),
                     "help": "what --tol bounds: the extrapolated remaining error (default) or "
                             "the last change (earlier versions' rule)"}),
    ("check_every", {"type": int, "help": "steps between checks"}),
    ("max_steps", {"type": int, "help": "step cap per direction"}),
    ("dtype", {"choices": ("float32", "float64"), "help": "floating-point precision"}),
)  # fmt: skip


def add_lbm(parser) -> None:
    """Lattice Boltzmann solver options (defaults: :class:`pvae.physics.lbm.LBMSettings`)."""
    from pvae.physics.lbm import LBMSettings

    group = parser.add_argument_group("Lattice Boltzmann permeability")
    add_fields(group, LBMSettings, LBM_OPTIONS)
    group.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda, cuda:1")


def lbm_settings(args, convention: str = "superficial"):
    """:class:`LBMSettings` from :func:`add_lbm` options."""
    from pvae.physics.lbm import LBMSettings

    names = [name for name, _ in LBM_OPTIONS]
    return from_fields(LBMSettings, args, names, convention=convention)
