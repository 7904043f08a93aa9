"""Inverse-design benchmark: verified success on test-split targets vs. a nearest-sample baseline.

    pvae train --experiment bench/design.yaml --out runs/design
    python bench/bench_inverse.py --model runs/design [--dataset data/default] [--targets 20]

Targets are the property vectors (porosity and the K diagonal, lattice units) of
--targets test-split samples with percolating K, spread evenly over the split (so over
the families). A design succeeds when its
verified porosity is within 0.02 and its verified log10 K_ii within 0.1 of every
target component (pvae.fidelity.TOLERANCE). The baseline returns the training sample
whose labels are nearest to the target (standardized distance), scored the same way
with its own LBM labels. The pVAE's time per target includes the latent optimisation,
texture screening and every LBM verification (``lbm_solves``). Writes
bench/results/inverse.json and .md, with a breakdown by structure family.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402

import pvae  # noqa: E402
from pvae.inverse import (  # noqa: E402
    InverseSettings,
    dataset_targets,
    design,
    score_designs,
    target_vector,
)
from pvae.physics.lbm import LBMSettings  # noqa: E402
from pvae.store import open_dataset  # noqa: E402
from pvae.targets import target_values  # noqa: E402


def nearest_baseline(loaded, store, train: list[int], target: dict) -> pd.DataFrame:
    """The training sample nearest to the target, as a one-row design table."""
    values = target_values(store, loaded.targets)[train]
    goal = target_vector(target, loaded.targets)
    distance = np.nansum(((values - goal) / np.array(loaded.normalizer.std)) ** 2, axis=1)
    row = store.manifest.iloc[train[int(np.argmin(distance))]]
    table = pd.DataFrame(
        [
            {
                "sample_id": row["sample_id"],
                "verified_porosity": row["porosity"],
                **{f"verified_{k}": row[k] for k in ("k_xx", "k_yy", "k_zz")},
                **{
                    f"verified_log10_{k}": np.log10(row[k]) if row[k] > 0 else np.nan
                    for k in ("k_xx", "k_yy", "k_zz")
                },
            }
        ]
    )
    return score_designs(table, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument(
        "--dataset", type=Path, default=Path(__file__).parents[1] / "data" / "default"
    )
    parser.add_argument("--targets", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--starts", type=int, help="latent starts (default 4 x candidates)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--tol", type=float, default=1e-4, help="LBM verification tolerance")
    parser.add_argument("--max-steps", type=int, default=20_000, help="LBM steps cap per direction")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    loaded = pvae.load_model(args.model)
    store = open_dataset(args.dataset)
    splits = loaded.state["splits"]
    targets = dataset_targets(store, splits["test"], args.targets)
    settings = InverseSettings(candidates=args.candidates, starts=args.starts, steps=args.steps)
    lbm = LBMSettings(tol=args.tol, max_steps=args.max_steps)
    rows = []
    for target_id, target in targets:
        start = time.perf_counter()
        table, _ = design(loaded, target, store, settings, lbm)
        seconds = time.perf_counter() - start
        base = nearest_baseline(loaded, store, splits["train"], target).iloc[0]
        best = table.iloc[0]
        rows.append(
            {
                "id": target_id,
                "family": store.manifest["family"].iloc[store.index_of(target_id)],
                **{f"target_{k}": v for k, v in target.items()},
                "success": bool(best["success"]),
                "score": float(best["score"]),
                "verified_porosity": best["verified_porosity"],
                "verified_k_xx": best["verified_k_xx"],
                "texture": float(best["texture"]),
                "lbm_solves": int(table["lbm_solves"].sum()),
                "baseline_success": bool(base["success"]),
                "baseline_score": float(base["score"]),
                "seconds": seconds,
            }
        )
        print(
            f"{target_id}: pvae {'ok' if best['success'] else 'miss'} (score {best['score']:.2f}), "
            f"nearest sample {'ok' if base['success'] else 'miss'} (score {base['score']:.2f}), "
            f"{seconds:.1f} s",
            flush=True,
        )
    frame = pd.DataFrame(rows)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "model": str(args.model),
        "dataset_fingerprint": store.fingerprint,
        "targets": len(frame),
        "candidates": args.candidates,
        "success_rate": float(frame["success"].mean()),
        "baseline_success_rate": float(frame["baseline_success"].mean()),
        "median_score": float(frame["score"].median()),
        "baseline_median_score": float(frame["baseline_score"].median()),
        "seconds_per_target": float(frame["seconds"].mean()),
        "lbm_solves_per_target": float(frame["lbm_solves"].mean()),
        "by_family": {
            family: {
                "targets": len(part),
                "success_rate": float(part["success"].mean()),
                "baseline_success_rate": float(part["baseline_success"].mean()),
            }
            for family, part in frame.groupby("family")
        },
        "rows": frame.to_dict(orient="records"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "inverse.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    families = "".join(
        f"| {family} | {v['targets']} | {v['success_rate']:.0%} | "
        f"{v['baseline_success_rate']:.0%} |\n"
        for family, v in result["by_family"].items()
    )
    (args.out / "inverse.md").write_text(
        f"# Inverse-design benchmark\n\n`{result['command']}` on {result['machine']['cpu']} "
        f"({result['machine']['cores']} cores, load average "
        f"{result['machine']['load_average_1min']:.1f} at the start).\n\n"
        "| method | success (porosity ±0.02, log10 K ±0.1) | median score | time per target |\n"
        "|---|---:|---:|---:|\n"
        f"| pvae inverse design, LBM-verified ({args.candidates} candidates, "
        f"{settings.start_count} starts; {result['lbm_solves_per_target']:.1f} LBM solves "
        f"per target) | {result['success_rate']:.0%} of {len(frame)} | "
        f"{result['median_score']:.2f} | {result['seconds_per_target']:.1f} s |\n"
        f"| nearest training sample | {result['baseline_success_rate']:.0%} of {len(frame)} | "
        f"{result['baseline_median_score']:.2f} | - |\n\n"
        "| family | targets | pvae | nearest sample |\n|---|---:|---:|---:|\n" + families
    )
    print(
        f"success {result['success_rate']:.0%} vs nearest-sample baseline "
        f"{result['baseline_success_rate']:.0%}; {result['seconds_per_target']:.1f} s per target"
    )


if __name__ == "__main__":
    main()
