"""Lattice Boltzmann throughput (MLUPS) against the memory-bandwidth roofline.

Run: ``python bench/bench_lbm.py [--device cpu|cuda] [--out bench/results]``

MLUPS = million lattice-node updates per second, counting ALL nodes (solid included) of
every lattice; one permeability tensor is 3 lattices (one per forcing direction). The
sparse kernels update only the fluid nodes of the flow paths, so the table also gives
fluid-node MLUPS (MLUPS x the fluid fraction), the rate to hold against the roofline. The
roofline is ``bandwidth / 152 B``: a D3Q19 fp32 update reads and writes 19 populations at
least; the bandwidth is measured in the same run by a large float32 copy on the device
(main memory: a lattice whose state fits in the last-level cache can run above it, so the
128^3 case, 3 x ~100 MB of state, is the one bound by main memory).
Then the time to a converged tensor: ``permeability`` of the same images (one per family
at each of ``--tensor-sizes``) with the default settings and with the earlier default
(``EARLIER``: stop when the flux changes less than 1e-5 per 100 steps), their steps and
the largest difference of K relative to the largest K_ii; with ``--lbmpy PYTHON`` (the
interpreter of an environment with lbmpy: ``make bench/.venv-lbmpy/.installed``), lbmpy's
generated C kernel on the same images for the same steps per direction
(``bench/lbmpy_tensor.py``), its seconds and its K against ours; with ``--recorded N``, the
same for the first N samples of ``data/default`` against their recorded labels (the
earlier rule's; channels first, the slowest family to converge).
Writes ``lbm.json`` and ``lbm.md`` to ``--out`` (atomically) and prints the tables.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine, synchronize, write_results  # noqa: E402

from pvae.data.microstructures import family_options, synthesize_sample
from pvae.physics.connectivity import flow_paths
from pvae.physics.lbm import LBMSettings, permeability, permeability_batch
from pvae.physics.lbm.collision import relaxation_rates
from pvae.physics.lbm.dense_torch import DenseTorchLattices
from pvae.physics.lbm.sparse_cpu import SparseCpuLattices

BYTES_PER_UPDATE = 152  # 19 populations x 4 B x (read + write)
EARLIER = LBMSettings(tol=1e-5, check_every=100, convergence="change")  # the default until 0.x


def overlapping_spheres(size: int, porosity: float, radius: float, seed: int) -> np.ndarray:
    """Periodic random pore space (True = pore): the ``spheres`` family at one porosity."""
    options = family_options(
        "spheres", {"porosity": (porosity, porosity), "radius_fraction": (radius / size,) * 2}
    )
    return synthesize_sample("spheres", (size,) * 3, seed, 0, options)[0]


def copy_bandwidth(device: torch.device, megabytes: int = 512, repeats: int = 10) -> float:
    """Best bytes/s of a float32 ``dst.copy_(src)`` (read + write counted)."""
    src = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        dst.copy_(src)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * 4 / best


def lattices_of(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fluid masks (L, Z, Y, X) and forces (L, 3) of every percolating (sample, direction)."""
    paths = np.stack([flow_paths(image) for image in images])  # (B, 3, Z, Y, X)
    sample, direction = np.nonzero(paths.any(axis=(2, 3, 4)))
    force = np.zeros((len(sample), 3))
    force[np.arange(len(sample)), direction] = 1e-5
    return paths[sample, direction], force


def step_rate(state, n_nodes: int, device: torch.device, seconds: float, repeats: int) -> float:
    """Best MLUPS of ``state.advance`` over ``repeats`` timings of about ``seconds`` each.

    The best, not the mean, is kept: on a shared machine other jobs only ever slow it down.
    """
    active = np.ones(len(state.population_sums()), dtype=bool)
    state.advance(2, active)  # compile / warm up
    synchronize(device)
    start = time.perf_counter()
    state.advance(2, active)
    synchronize(device)
    per_step = max(time.perf_counter() - start, 1e-9) / 2
    steps = max(2, round(seconds / per_step / 2) * 2)
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        state.advance(steps, active)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return steps * n_nodes / best / 1e6


def kernels(device: torch.device):
    """(name, factory(fluid, force)) of the kernels to time on this device."""
    omega_plus, omega_minus = relaxation_rates("trt", 1.0, 3 / 16)
    rates = (omega_plus, omega_minus)
    dense = [
        ("torch eager (dense)", lambda fl, fo: DenseTorchLattices(
            fl, fo, *rates, torch.float32, device, compile=False)),
        ("torch.compile (dense)", lambda fl, fo: DenseTorchLattices(
            fl, fo, *rates, torch.float32, device, compile=True)),
    ]  # fmt: skip
    if device.type == "cpu":
        labels = {"c": "C sparse in-place (default)", "numba": "numba sparse in-place (no C)"}
        sparse = [(label, lambda fl, fo, kernel=kernel: SparseCpuLattices(
            fl, fo, *rates, np.dtype(np.float32), kernel=kernel))
            for kernel, label in labels.items()]  # fmt: skip
        return [*sparse, *dense]
    return dense[::-1]


def time_to_tensor(
    sizes: list[int], families: list[str], device: torch.device, lbmpy: str | None = None
) -> list[dict]:
    """Seconds, steps and K of one tensor per (size, family) image, default vs ``EARLIER``.

    Parameters
    ----------
    sizes, families
        Image edges and microstructure families (one image of each pair).
    device : torch.device
    lbmpy : str, optional
        Python interpreter of an environment with lbmpy: also time lbmpy
        (:func:`lbmpy_tensor`).

    Returns
    -------
    list of dict
        One row per image: size, family, porosity, seconds and steps (summed over the
        three directions) of each setting, ``max_dk`` = max |K - K_earlier| / max K_ii,
        and with ``lbmpy`` its ``lbmpy_s``, ``lbmpy_setup_s`` and ``lbmpy_max_dk``.
    """
    rows = []
    for size in sizes:
        for seed, family in enumerate(families):
            image = synthesize_sample(family, (size,) * 3, seed, 0)[0]
            row = {"size": size, "family": family, "porosity": float(image.mean())}
            results = {}
            for name, settings in (("default", LBMSettings()), ("earlier", EARLIER)):
                start = time.perf_counter()
                results[name] = permeability(image, settings, device=device)
                row[f"{name}_s"] = time.perf_counter() - start
                row[f"{name}_steps"] = int(results[name].steps.sum())
            k, reference = results["default"].k, results["earlier"].k
            row["max_dk"] = float(np.abs(k - reference).max() / np.abs(np.diag(reference)).max())
            if lbmpy:
                row.update(lbmpy_tensor(lbmpy, image, results["default"]))
            rows.append(row)
            print(f"{size}^3 {family:9s} default {row['default_s']:7.1f} s "
                  f"({row['default_steps']} steps), earlier {row['earlier_s']:7.1f} s "
                  f"({row['earlier_steps']} steps), max dK {row['max_dk']:.1e}",
                  flush=True)  # fmt: skip
    return rows


def lbmpy_tensor(python: str, image: np.ndarray, ours) -> dict:
    """lbmpy on ``image`` for the steps ``ours`` (a PermeabilityResult) took per direction.

    Runs ``bench/lbmpy_tensor.py`` under ``python`` (lbmpy's own environment, OpenMP on
    the same cores). Returns ``lbmpy_s`` (its time steps, summed over directions),
    ``lbmpy_setup_s`` (generating and compiling its kernels) and ``lbmpy_max_dk`` (max
    |K_lbmpy - K| / max K_ii over the solved columns).
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.npy"
        np.save(path, image)
        command = [python, str(Path(__file__).parent / "lbmpy_tensor.py"), str(path),
                   "--steps", *map(str, ours.steps)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    columns = json.loads(done.stdout.strip().splitlines()[-1])
    k = ours.k.copy()
    for j, column in columns.items():
        k[:, int(j)] = column["k"]
    return {
        "lbmpy_s": sum(c["run_s"] for c in columns.values()),
        "lbmpy_setup_s": sum(c["setup_s"] for c in columns.values()),
        "lbmpy_max_dk": float(np.abs(k - ours.k).max() / np.abs(np.diag(ours.k)).max()),
    }


def recorded_agreement(count: int, device: torch.device) -> dict:
    """K of the first ``count`` samples of ``data/default`` with the default settings
    against the recorded labels: per family, the largest and median |K - K_recorded| /
    max K_ii and the steps of each (summed over directions, the recorded ones from
    ``label_info``)."""
    from pvae.data.default_data import DEFAULT_DATASET
    from pvae.data.store import open_dataset

    store = open_dataset(DEFAULT_DATASET)
    rows = []
    for start in range(0, count, 16):
        index = range(start, min(start + 16, count))
        results = permeability_batch(np.stack([store.image(i) for i in index]), device=device)
        for i, result in zip(index, results, strict=True):
            recorded = store.permeability(i)
            info = json.loads(store.manifest["label_info"].iloc[i])
            rows.append({"family": store.manifest["family"].iloc[i],
                         "dk": np.abs(result.k - recorded).max() / np.abs(np.diag(recorded)).max(),
                         "steps": int(result.steps.sum()),
                         "recorded_steps": sum(info["steps"])})  # fmt: skip
    frame = pd.DataFrame(rows)
    summary = frame.groupby("family").agg(samples=("dk", "size"), max_dk=("dk", "max"),
                                          median_dk=("dk", "median"), steps=("steps", "mean"),
                                          recorded_steps=("recorded_steps", "mean"))  # fmt: skip
    return summary.reset_index().to_dict(orient="records")


def tensor_table(rows: list[dict]) -> list[str]:
    """Markdown lines: per size, median seconds per tensor of both settings and K agreement."""
    lines = ["| size | images | median s/tensor, default | median s/tensor, earlier | ratio "
             "| mean steps, default / earlier | max dK / max K_ii |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    with_lbmpy = all("lbmpy_s" in r for r in rows)
    if with_lbmpy:
        lines[0] += " median s/tensor, lbmpy (setup) | lbmpy / default | lbmpy max dK / max K_ii |"
        lines[1] += "---|---|---|"
    for size in sorted({r["size"] for r in rows}):
        part = [r for r in rows if r["size"] == size]
        new, old = (np.median([r[f"{n}_s"] for r in part]) for n in ("default", "earlier"))
        steps = [np.mean([r[f"{n}_steps"] for r in part]) for n in ("default", "earlier")]
        lines.append(f"| {size}^3 | {len(part)} ({', '.join(r['family'] for r in part)}) "
                     f"| {new:.1f} | {old:.1f} | {old / new:.1f}x "
                     f"| {steps[0]:.0f} / {steps[1]:.0f} "
                     f"| {max(r['max_dk'] for r in part):.1e} |")  # fmt: skip
        if with_lbmpy:
            theirs = np.median([r["lbmpy_s"] for r in part])
            setup = np.median([r["lbmpy_setup_s"] for r in part])
            lines[-1] += (f" {theirs:.1f} ({setup:.0f}) | {theirs / new:.2f}x "
                          f"| {max(r['lbmpy_max_dk'] for r in part):.1e} |")  # fmt: skip
    return lines


def lbm_machine(device: torch.device) -> dict:
    """:func:`machine.machine` plus the solver's device and torch threads."""
    return {**machine(), "torch_threads": torch.get_num_threads(), "device": str(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:n]")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--seconds", type=float, default=2.0, help="approximate time per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings per case (best kept)")
    parser.add_argument("--batch", type=int, default=16, help="samples of 32^3 in the batch case")
    parser.add_argument("--tensor-sizes", type=int, nargs="*", default=[32, 64],
                        help="edges of the time-to-tensor images (make bench-lbm: 32 64 128)")
    parser.add_argument("--tensor-families", nargs="+",
                        default=["spheres", "foam", "channels", "grf"])  # fmt: skip
    parser.add_argument("--recorded", type=int, default=0,
                        help="also relabel this many data/default samples (384: all)")  # fmt: skip
    parser.add_argument("--lbmpy", metavar="PYTHON",
                        help="interpreter of an environment with lbmpy: time it on the "
                        "time-to-tensor images (make bench/.venv-lbmpy/.installed)")  # fmt: skip
    args = parser.parse_args()
    device = torch.device(args.device)

    info = lbm_machine(device)
    bandwidth = copy_bandwidth(device)
    roofline = bandwidth / BYTES_PER_UPDATE / 1e6
    cases = {
        "128^3, 1 sample x 3 directions": overlapping_spheres(128, 0.6, 10.0, seed=0)[None],
        "64^3, 1 sample x 3 directions": overlapping_spheres(64, 0.6, 5.0, seed=0)[None],
        f"32^3, {args.batch} samples x 3 directions": np.stack(
            [overlapping_spheres(32, 0.6, 3.0, seed=s) for s in range(args.batch)]
        ),
    }
    rows = []
    for case, images in cases.items():
        fluid, force = lattices_of(images)
        n_nodes, fluid_fraction = fluid.size, float(fluid.mean())
        for name, factory in kernels(device):
            if "dense" in name and images[0].size > 64**3:
                continue  # the dense paths at 128^3 take minutes to tell what 64^3 tells
            start = time.perf_counter()
            state = factory(fluid, force)
            mlups = step_rate(state, n_nodes, device, args.seconds, args.repeats)
            rows.append({
                "case": case, "kernel": name, "mlups": mlups,
                "fluid_mlups": mlups * fluid_fraction,
                "roofline_mlups": roofline, "fraction_of_roofline": mlups / roofline,
                "setup_and_timing_s": time.perf_counter() - start,
                "porosity": float(images.mean()),
            })  # fmt: skip
            print(f"{case:32s} {name:24s} {mlups:8.1f} MLUPS", flush=True)
        start = time.perf_counter()
        results = permeability_batch(images, LBMSettings(), device=device)
        elapsed = time.perf_counter() - start
        steps = int(sum(r.steps.sum() for r in results))
        rows.append({
            "case": case, "kernel": "permeability_batch end to end (default settings)",
            "mlups": steps * images[0].size / elapsed / 1e6, "roofline_mlups": roofline,
            "fluid_mlups": steps * images[0].size / elapsed / 1e6 * fluid_fraction,
            "fraction_of_roofline": steps * images[0].size / elapsed / 1e6 / roofline,
            "setup_and_timing_s": elapsed, "porosity": float(images.mean()),
            "steps_per_direction": steps / (3 * len(images)),
        })  # fmt: skip

    tensors = time_to_tensor(args.tensor_sizes, args.tensor_families, device, args.lbmpy)
    recorded = recorded_agreement(args.recorded, device) if args.recorded else []
    report = {
        "command": " ".join(["python", *sys.argv]),
        "machine": info,
        "bandwidth_GBps": bandwidth / 1e9,
        "bytes_per_update": BYTES_PER_UPDATE,
        "rows": rows,
        "time_to_tensor": tensors,
        "recorded_labels": recorded,
    }
    header = (
        f"LBM D3Q19 TRT float32 on {report['machine']['device']} "
        f"({report['machine']['gpu'] or report['machine']['cpu']}, "
        f"{report['machine']['cores']} cores, torch {report['machine']['torch']}, "
        f"load average {report['machine']['load_average_1min']:.1f} at the start); "
        f"copy bandwidth {bandwidth / 1e9:.1f} GB/s -> roofline {roofline:.0f} MLUPS "
        f"at {BYTES_PER_UPDATE} B/update.\n\n"
    )
    table = ["| case | kernel | MLUPS | roofline MLUPS | % of roofline | fluid-node MLUPS "
             "| % of roofline, fluid nodes |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    table += [
        f"| {r['case']} | {r['kernel']} | {r['mlups']:.1f} | {r['roofline_mlups']:.0f} "
        f"| {100 * r['fraction_of_roofline']:.0f} % | {r['fluid_mlups']:.1f} "
        f"| {100 * r['fluid_mlups'] / r['roofline_mlups']:.0f} % |"
        for r in rows
    ]
    markdown = header + "\n".join(table) + "\n"
    if tensors:
        markdown += ("\nTime to a converged tensor (one `permeability` call per image, 3 "
                     "directions), default settings against the earlier default "
                     f"({EARLIER.convergence} < {EARLIER.tol:g} per {EARLIER.check_every} steps):"
                     "\n\n" + "\n".join(tensor_table(tensors)) + "\n")
    if recorded:
        markdown += ("\n`data/default`'s recorded labels (earlier rule) against the default "
                     "settings:\n\n| family | samples | max dK / max K_ii | median "
                     "| mean steps, default / recorded |\n|---|---|---|---|---|\n")
        markdown += "".join(f"| {r['family']} | {r['samples']} | {r['max_dk']:.1e} "
                            f"| {r['median_dk']:.1e} "
                            f"| {r['steps']:.0f} / {r['recorded_steps']:.0f} |\n"
                            for r in recorded)  # fmt: skip
    write_results(args.out, "lbm", report, markdown)


if __name__ == "__main__":
    main()
