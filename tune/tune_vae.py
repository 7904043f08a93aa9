"""Cluster entry point of a study: what ``ray submit`` runs on the head node.

::

    ray up tune/cluster.yaml
    ray submit tune/cluster.yaml tune/tune_vae.py -- \\
        --experiment experiments/dataset_size.yaml --dataset /home/ray/data/foam64 \\
        --storage s3://YOUR-BUCKET/pvae-studies --min-gpus 4

It joins the running cluster (``RAY_ADDRESS`` or ``--address``; a local Ray is
started when there is none) and takes the options of ``pvae tune``.
"""

import argparse
import sys

from pvae.cli.study import add_arguments, run
from pvae.core.errors import PvaeError


def main(argv: list[str] | None = None) -> int:
    """Run a study from ``pvae tune`` options; exit 2 with one line on bad input."""
    parser = argparse.ArgumentParser(prog="tune_vae.py", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except PvaeError as exc:
        if args.debug:
            raise
        print(f"tune_vae.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
