"""GPU figures in one call: LBM MLUPS, pVAE and surrogate throughput, a smoke study.

    bench/gpu.sh                     (= python bench/bench_gpu.py; exits 2 without CUDA)
    python bench/bench_gpu.py --device cpu --quick     (the code path, small, on a CPU)

Measures on one device, in one run:

- the copy bandwidth (float32 ``copy_``) and the LBM roofline bandwidth / 152 B;
- LBM MLUPS of the CUDA path (dense torch lattices, eager and ``torch.compile``) on
  periodic sphere packings at 128^3 and 256^3 (porosity 0.6), one sample x 3 directions;
- pVAE training samples/s (default ModelConfig; forward, backward, AdamW) at 32^3,
  64^3 and 128^3, in float32 and under bfloat16 autocast;
- surrogate prediction samples/s (``data/default/surrogate.pt``, 32^3; connectivity
  analysis included), float32 and bfloat16;
- a 4-trial smoke study (``experiments/smoke.yaml --smoke``, ``gpu: 0.25`` per trial,
  so four trials share the GPU) with its wall time and each trial's GPU memory peak.

Writes ``bench/results/gpu.json`` and ``gpu.md`` (``--out``) and prints the table.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_lbm import (  # noqa: E402  # noqa: E402
    BYTES_PER_UPDATE,
    copy_bandwidth,
    kernels,
    lattices_of,
    overlapping_spheres,
    step_rate,
)
from bench_train import steps_per_second  # noqa: E402
from machine import machine, synchronize  # noqa: E402

from pvae.core.atomic import atomic_write_bytes, atomic_write_json  # noqa: E402
from pvae.surrogate import load_surrogate  # noqa: E402
from pvae.vae.config import ModelConfig  # noqa: E402
from pvae.vae.model import PVAE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FULL = {"lbm": (128, 256), "train": (32, 64, 128), "batch": 16, "steps": 8, "seconds": 2.0}
QUICK = {"lbm": (32,), "train": (32,), "batch": 4, "steps": 2, "seconds": 0.2}


def lbm_rows(device, sizes, seconds) -> list[dict]:
    """MLUPS of each CUDA-path kernel at each size (all nodes counted)."""
    roofline = copy_bandwidth(device) / BYTES_PER_UPDATE / 1e6
    rows = []
    for size in sizes:
        fluid, force = lattices_of(overlapping_spheres(size, 0.6, size / 12, seed=0)[None])
        for name, factory in kernels(device):
            if "numba" in name:  # the CPU default; this benchmark measures the torch path
                continue
            mlups = step_rate(factory(fluid, force), fluid.size, device, seconds, repeats=3)
            rows.append({"size": size, "kernel": name, "mlups": round(mlups, 1),
                         "roofline_mlups": round(roofline, 1),
                         "fraction_of_roofline": round(mlups / roofline, 3)})  # fmt: skip
            print(f"LBM {size}^3 {name}: {mlups:.0f} MLUPS ({mlups / roofline:.0%} of roofline)")
    return rows


def training_rows(device, sizes, batch, steps) -> list[dict]:
    """pVAE training samples/s at each size, float32 and bfloat16 autocast."""
    rows = []
    for size in sizes:
        torch.manual_seed(0)
        images = (torch.rand(batch * (steps + 1), 1, size, size, size, device=device) < 0.5).float()
        batches = list(images.split(batch))
        for bf16 in (False, True):
            model = PVAE(ModelConfig(), (size,) * 3).to(device)
            targets = torch.zeros(batch, len(ModelConfig().targets), device=device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            rate = steps_per_second(model, batches, targets, bf16=bf16)
            peak = (
                torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
            )
            rows.append({"size": size, "batch": batch, "bf16": bf16,
                         "samples_per_s": round(rate, 1), "memory_peak_mib": peak})  # fmt: skip
            print(f"pVAE training {size}^3 {'bf16' if bf16 else 'fp32'}: {rate:.1f} samples/s")
    return rows


def surrogate_rows(device, batch) -> list[dict]:
    """Surrogate prediction samples/s on default-dataset images (steady state)."""
    from pvae.data.store import open_dataset

    store = open_dataset(ROOT / "data" / "default")
    images = store.images(np.arange(min(batch * 8, len(store))))
    rows = []
    for bf16 in (False, True):
        ensemble = load_surrogate(ROOT / "data" / "default" / "surrogate.pt", device, bf16)
        ensemble.predict(images)  # warm-up at this shape
        times = []
        for _ in range(3):
            synchronize(device)
            start = time.perf_counter()
            ensemble.predict(images)
            synchronize(device)
            times.append(time.perf_counter() - start)
        rate = len(images) / sorted(times)[1]
        rows.append({"bf16": bf16, "samples": len(images), "samples_per_s": round(rate, 1)})
        print(f"surrogate {'bf16' if bf16 else 'fp32'}: {rate:.0f} samples/s")
    return rows


def smoke_study(device) -> dict:
    """``pvae tune --smoke`` on the default data: wall time, trials, GPU memory peaks."""
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as folder:
        out = Path(folder) / "study"
        command = [sys.executable, "-m", "pvae", "tune", "--experiment",
                   str(ROOT / "experiments" / "smoke.yaml"), "--dataset",
                   str(ROOT / "data" / "default"), "--out", str(out), "--smoke"]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            return {"returncode": done.returncode, "stderr": done.stderr[-2000:]}
        trials = pd.read_parquet(out / "trials.parquet")
        history = pd.read_parquet(out / "history.parquet")
        column = "gpu_memory_peak_mib"
        peaks = history.groupby("trial_id")[column].max() if column in history else None
    result = {
        "wall_s": round(wall, 1),
        "trials": len(trials),
        "completed": int((trials["status"] == "completed").sum()),
        "gpu_memory_peak_mib": None if peaks is None else peaks.round(1).to_dict(),
    }
    print(f"smoke study: {result['trials']} trials in {wall:.0f} s")
    return result


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# GPU benchmark\n\n`{report['command']}` on {m['gpu'] or m['cpu']} "
             f"(torch {m['torch']}, load average {m['load_average_1min']:.1f}).\n",
             "| LBM | kernel | MLUPS | roofline MLUPS | share |",
             "|---|---|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {r['size']}^3 | {r['kernel']} | {r['mlups']} | {r['roofline_mlups']} "
              f"| {100 * r['fraction_of_roofline']:.0f}% |" for r in report["lbm"]]  # fmt: skip
    lines += [
        "",
        "| pVAE training | precision | samples/s | memory peak MiB |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {r['size']}^3, batch {r['batch']} | {'bf16' if r['bf16'] else 'fp32'} "
              f"| {r['samples_per_s']} | {r['memory_peak_mib'] or '-'} |"
              for r in report["training"]]  # fmt: skip
    lines += ["", "| surrogate (32^3) | samples/s |", "|---|---:|"]
    lines += [f"| {'bf16' if r['bf16'] else 'fp32'} | {r['samples_per_s']} |"
              for r in report["surrogate"]]  # fmt: skip
    study = report["smoke_study"]
    lines += ["", f"Smoke study (4 trials at gpu 0.25): {study}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda[:n]; cpu only with --quick")
    parser.add_argument("--quick", action="store_true", help="small sizes (check the script)")
    parser.add_argument("--no-study", action="store_true", help="skip the smoke study")
    parser.add_argument("--out", type=Path, help="default bench/results; --quick: none")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here (torch.cuda.is_available() is False); "
              "run it on a GPU machine", file=sys.stderr)  # fmt: skip
        return 2
    if device.type != "cuda" and not args.quick:
        print(f"bench_gpu: --device {args.device} measures nothing of a GPU; add --quick "
              "to check the script on it", file=sys.stderr)  # fmt: skip
        return 2
    sizes = QUICK if args.quick else FULL
    report = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {**machine(), "device": str(device)},
        "lbm": lbm_rows(device, sizes["lbm"], sizes["seconds"]),
        "training": training_rows(device, sizes["train"], sizes["batch"], sizes["steps"]),
        "surrogate": surrogate_rows(device, sizes["batch"]),
        "smoke_study": None if args.no_study else smoke_study(device),
    }
    print(markdown(report))
    out = args.out or (None if args.quick else ROOT / "bench" / "results")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "gpu.json", report)
        atomic_write_bytes(out / "gpu.md", markdown(report).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
