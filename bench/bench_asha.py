"""ASHA vs FIFO: compute spent and best validation metric, same trials, one run.

    RAY_AUTH_MODE=disabled python bench/bench_asha.py [--dataset DIR] [--count 192]
        [--trials 27] [--max-t 27] [--reduction-factor 3] [--search random] [--seed 0]

Both studies run the same search space, number of trials and seed. With the default
``--search random`` both evaluate the *same* configurations, so the comparison
isolates the scheduler; ``--search optuna`` compares the full default setup (TPE sees
pruned trials under ASHA, so its later proposals differ). Compute is counted in
trial-epochs (wall time on a shared machine is reported but noisy). The best metric is
the lowest validation objective of a trial trained to the full budget. Without
``--dataset`` a labelled spheres dataset (16^3) is synthesized and labelled once into
``--cache``. Writes bench/results/asha.json and bench/results/asha.md.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402

from pvae.data.store import open_dataset  # noqa: E402
from pvae.physics.lbm import LBMSettings  # noqa: E402
from tune.cluster_connect import ray_session  # noqa: E402
from tune.study import prepare_study, run_study  # noqa: E402

SPACE = {
    "model.latent_dim": {"choice": [2, 4, 8, 16]},
    "train.lr": {"loguniform": [1.0e-4, 1.0e-2]},
    "train.beta": {"loguniform": [1.0e-3, 1.0]},
    "train.gamma": {"uniform": [0.5, 2.0]},
    "train.batch_size": {"choice": [8, 16]},
}
TARGET_COMPUTE, TARGET_GAP = 3.0, 0.02


def dataset(args) -> Path:
    """The benchmark dataset: ``--dataset``, or one synthesized and labelled once."""
    if args.dataset:
        return args.dataset
    from pvae.data.microstructures import synthesize
    from tune.labelling import label_dataset

    root = args.cache / f"spheres{args.count}-16"
    if not root.exists():
        synthesize("spheres", args.count, 16, seed=11, out=root, progress=False)
    label_dataset(root, LBMSettings(), progress=False)
    return root


def study(args, data: Path, work: Path, scheduler: str) -> dict:
    """Run one study; its compute, wall time and best full-budget trial."""
    experiment = {
        "name": scheduler,
        "model": {"latent_dim": 4, "base_channels": 4, "max_channels": 16},
        "train": {"epochs": args.max_t, "batch_size": 16},
        "tune": {
            "samples": args.trials,
            "search": args.search,
            "seed": args.seed,
            "startup_trials": max(1, args.trials // 3),
            "scheduler": scheduler,
            "grace_period": 1,
            "reduction_factor": args.reduction_factor,
            "resources": {"cpu": 1},
            "keep_checkpoints": 1,
            "space": SPACE,
        },
    }
    path = work / f"{scheduler}.yaml"
    path.write_text(yaml.safe_dump(experiment))
    start = time.perf_counter()
    record = run_study(prepare_study(path, data, work / scheduler), progress=False)
    summary = record["summary"]
    print(
        f"{scheduler}: {summary['trial_epochs']} trial-epochs, best "
        f"{summary['best_trial']['val_objective']:.5f}",
        flush=True,
    )
    return {
        "status": record["status"],
        "trial_epochs": summary["trial_epochs"],
        "wall_s": time.perf_counter() - start,
        "completed": summary["completed"],
        "stopped_early": summary["stopped_early"],
        "diverged": summary["diverged"],
        "best_val_objective": summary["best_trial"]["val_objective"],
        "best_trial_dir": Path(summary["best_trial"]["best_checkpoint"]).parent.parent.name,
    }


def markdown(result: dict) -> str:
    s, a, f = result["settings"], result["asha"], result["fifo"]
    rows = "\n".join(
        f"| {name} | {r['trial_epochs']} | {r['completed']} | {r['stopped_early']} | "
        f"{r['best_val_objective']:.5f} | {r['wall_s']:.0f} |"
        for name, r in (("FIFO", f), ("ASHA", a))
    )
    verdict = "met" if result["targets_met"] else "not met"
    return f"""# ASHA vs FIFO

`{result["command"]}` on {result["machine"]["cpu"]} ({result["machine"]["cores"]} cores,
shared machine: wall times are noisy, trial-epochs are exact).

{s["trials"]} trials, {s["search"]} search (seed {s["seed"]}), budget {s["max_t"]} epochs,
ASHA grace period 1 and reduction factor {s["reduction_factor"]}; dataset
{result["dataset"]["count"]} samples at {"x".join(map(str, result["dataset"]["shape"]))}.

| scheduler | trial-epochs | trials to full budget | stopped early | best val_objective | wall s |
|---|---:|---:|---:|---:|---:|
{rows}

ASHA used **{result["compute_ratio"]:.1f}x less compute** with a best validation objective
**{100 * result["best_gap"]:+.2f}%** from FIFO's (target: >= {TARGET_COMPUTE:.0f}x with
the best within {100 * TARGET_GAP:.0f}%: {verdict}).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, help="labelled dataset (default: synthesized)")
    parser.add_argument("--count", type=int, default=192, help="samples of the made dataset")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "pvae-bench")
    parser.add_argument("--trials", type=int, default=27)
    parser.add_argument("--max-t", type=int, default=27, help="epochs of a full trial")
    parser.add_argument("--reduction-factor", type=float, default=3)
    parser.add_argument("--search", choices=("random", "optuna"), default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    with ray_session(num_cpus=os.cpu_count()), tempfile.TemporaryDirectory() as work:
        data = dataset(args)
        runs = {name: study(args, data, Path(work), name) for name in ("fifo", "asha")}
    fifo, asha = runs["fifo"], runs["asha"]
    ratio = fifo["trial_epochs"] / asha["trial_epochs"]
    gap = (asha["best_val_objective"] - fifo["best_val_objective"]) / fifo["best_val_objective"]
    store = open_dataset(data)
    result = {
        "command": " ".join(["python bench/bench_asha.py", *sys.argv[1:]]),
        "machine": machine(),
        "dataset": {
            "count": len(store),
            "shape": list(store.shape),
            "fingerprint": store.fingerprint,
        },
        "settings": {
            "trials": args.trials,
            "max_t": args.max_t,
            "grace_period": 1,
            "reduction_factor": args.reduction_factor,
            "search": args.search,
            "seed": args.seed,
            "space": SPACE,
        },
        **runs,
        "compute_ratio": ratio,
        "best_gap": gap,
        "targets_met": ratio >= TARGET_COMPUTE and gap <= TARGET_GAP,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "asha.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    (args.out / "asha.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
