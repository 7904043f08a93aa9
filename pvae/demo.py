"""``make demo``: the main job end to end, as far as the pipeline exists.

    python -m pvae.demo [--out demo-out] [--count 48] [--size 32]

Stages now: synthesize one small dataset per family, label porosity, print each
dataset's summary and one sample's properties. A second run reuses the datasets
that already exist (delete ``--out`` to start over).
"""

import argparse
import time
from pathlib import Path

from pvae.cli.data import format_summary
from pvae.cli.props import sample_properties
from pvae.errors import PvaeError
from pvae.microstructures import FAMILIES, synthesize
from pvae.store import open_dataset


def dataset_for(family: str, out: Path, count: int, size: int, seed: int) -> tuple[Path, bool]:
    """The demo dataset of a family: reused if present and complete, made otherwise."""
    root = out / "data" / family
    try:
        if len(open_dataset(root)) == count:
            return root, True
    except PvaeError:
        pass
    synthesize(family, count, size, seed, root, overwrite=root.exists())
    return root, False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pvae.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--count", type=int, default=48, help="samples per family")
    parser.add_argument("--size", type=int, default=32, help="cube side in voxels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"== pvae demo -> {args.out}/")
    for family in sorted(FAMILIES):
        root, reused = dataset_for(family, args.out, args.count, args.size, args.seed)
        print(f"\n-- {family}: {root} ({'reused' if reused else 'synthesized'})")
        print(format_summary(open_dataset(root).summary()))
    store = open_dataset(args.out / "data" / "foam")
    props = sample_properties(store.image(0))
    print(f"\n-- sample {store.manifest['sample_id'].iloc[0]}: porosity {props['porosity']:.4f}")
    print(f"\ndemo finished in {time.perf_counter() - start:.1f} s; outputs under {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
