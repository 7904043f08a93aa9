"""Data-layer benchmark: synthesis speed per family and random-access read speed.

    python bench/bench_data.py [--count 1000] [--size 64] [--reads 300]

Generation: samples/s at size^3 for each family with all available cores (the
dataset written to disk, as ``pvae data synth`` does). Reading: the same samples
read in the same random order from the dataset store (memory-mapped, bit-packed)
and from BMP slice folders (the research code's layout) and multi-page TIFFs, in one
run. Writes bench/results/data.json and bench/results/data.md.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402

from pvae.data.imaging import read_image, write_bmp_stack, write_image  # noqa: E402
from pvae.data.microstructures import FAMILIES, synthesize  # noqa: E402
from pvae.data.microstructures.synthesize import default_workers  # noqa: E402
from pvae.data.store import open_dataset  # noqa: E402


def generation(work: Path, count: int, size: int) -> dict:
    rates = {}
    for family in sorted(FAMILIES):
        start = time.perf_counter()
        synthesize(family, count, size, seed=0, out=work / family, progress=False)
        seconds = time.perf_counter() - start
        rates[family] = {"samples": count, "seconds": seconds, "samples_per_s": count / seconds}
        print(
            f"generate {family:9s} {count} x {size}^3: {seconds:6.1f} s "
            f"{count / seconds:7.1f} samples/s"
        )
    return rates


def reading(work: Path, dataset: Path, reads: int) -> dict:
    store = open_dataset(dataset)
    n = min(len(store), reads)
    (work / "tif").mkdir()
    for i in range(n):
        write_bmp_stack(store.image(i), work / "bmp" / f"{i}")
        write_image(store.image(i), work / "tif" / f"{i}.tif")
    order = np.random.default_rng(0).permutation(n)
    readers = {
        "store (memory-mapped, bit-packed)": lambda i: store.image(int(i)),
        "BMP slice folders": lambda i: read_image(work / "bmp" / f"{i}"),
        "multi-page TIFF": lambda i: read_image(work / "tif" / f"{i}.tif"),
    }
    rates = {}
    for name, read in readers.items():
        start = time.perf_counter()
        checksum = sum(int(read(i).sum()) for i in order)
        seconds = time.perf_counter() - start
        rates[name] = {
            "samples": n,
            "seconds": seconds,
            "samples_per_s": n / seconds,
            "checksum": checksum,
        }
        print(f"read {name:34s} {n / seconds:9.1f} samples/s")
    assert len({r["checksum"] for r in rates.values()}) == 1, "readers disagree"
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        gen = generation(work, args.count, args.size)
        read = reading(work, work / "spheres", args.reads)
    finally:
        shutil.rmtree(work)
    store_rate = read["store (memory-mapped, bit-packed)"]["samples_per_s"]
    bmp_rate = read["BMP slice folders"]["samples_per_s"]
    result = {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "workers": default_workers(),
        "size": args.size,
        "generation": gen,
        "reading": read,
        "store_vs_bmp_speedup": store_rate / bmp_rate,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Data benchmark\n\n`{result['command']}` on {result['machine']['cpu']} "
        f"({result['machine']['cores']} cores).\n",
        f"| generation at {args.size}^3 | samples | seconds | samples/s |",
        "|---|---:|---:|---:|",
        *(
            f"| {k} | {v['samples']} | {v['seconds']:.1f} | {v['samples_per_s']:.1f} |"
            for k, v in gen.items()
        ),
        "",
        f"| random-access read at {args.size}^3 | samples/s |",
        "|---|---:|",
        *(f"| {k} | {v['samples_per_s']:.1f} |" for k, v in read.items()),
        "",
        f"Store vs. BMP folders: {result['store_vs_bmp_speedup']:.0f}x faster "
        "(same samples, same order, one run).",
    ]
    (args.out / "data.md").write_text("\n".join(lines) + "\n")
    print(f"store vs BMP: {result['store_vs_bmp_speedup']:.0f}x; wrote {args.out / 'data.json'}")


if __name__ == "__main__":
    main()
