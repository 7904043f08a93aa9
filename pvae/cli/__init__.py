"""The ``pvae`` command line: one sub-command per stage of the pipeline.

Bad input ends with one line ``pvae: error: <file>: <problem>`` on stderr and exit
status 2 (``--debug`` shows the traceback instead).
"""

import argparse
import sys
import warnings

from pvae import __version__
from pvae.cli import analyze, data, design, generate, props, study, surrogate, train
from pvae.core.errors import PvaeError
from pvae.core.memory import retain_freed_memory

COMMANDS = (data, props, train, study, analyze, design, generate, surrogate)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="pvae",
        description="Property-VAE studies of porous microstructures.",
    )
    parser.add_argument("--version", action="version", version=f"pvae {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(commands)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"pvae: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if not args.debug:
        warnings.showwarning = _one_line_warning
    retain_freed_memory()
    try:
        return args.run(args) or 0
    except PvaeError as exc:
        if args.debug:
            raise
        print(f"pvae: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `pvae data info D --json | head`
        sys.stdout = None
        return 0
    except KeyboardInterrupt:
        print("pvae: interrupted", file=sys.stderr)
        return 130
