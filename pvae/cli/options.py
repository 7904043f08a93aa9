"""Command-line options shared by several sub-commands."""

import argparse
import json
import sys

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
    """Print indented JSON to stdout."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
