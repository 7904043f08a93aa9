"""Inverse-design benchmark: verified success on targets no model has seen, vs. lookup.

    make design-model                     # runs/design: the pVAE and its critic
    pvae data build-default --seed 7 --per-family 16 --out bench/data/companion-s7
    python bench/bench_inverse.py --model runs/design --companion bench/data/companion-s7

(``make bench-inverse`` runs the last two.) Two target sets, both from the companion
set, which shares the default dataset's recipe but not one sample with it:

(a) ``samples``: the property vectors (porosity and the K diagonal, lattice units) of
    ``--per-family`` companion samples of each family with percolating K;
(b) ``midpoints``: midpoints in (porosity, log10 K) space between two companion
    samples of one family (:func:`pvae.design.targets.midpoint_targets`).

A design succeeds when its verified porosity is within 0.02 and every verified log10
K_ii within 0.1 of the target (:data:`pvae.vae.fidelity.TOLERANCE`). ``pvae`` is
:func:`pvae.design.inverse.design` with the model's critic, starting from and compared with
the model's *training split* only; the baseline returns the training-split sample
whose labels are nearest to the target (standardized distance), scored with its own
LBM labels. Time per target covers the whole design (optimisation, screening, novelty
and every LBM verification). Writes ``bench/results/inverse.json`` and ``.md``.
"""

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine, run_line  # noqa: E402

import pvae  # noqa: E402
from pvae.data.store import open_dataset  # noqa: E402
from pvae.design.inverse import InverseSettings, design  # noqa: E402
from pvae.design.novelty import NoveltyIndex  # noqa: E402
from pvae.design.pool import design_pool, lookup  # noqa: E402
from pvae.design.targets import coverage_problems, dataset_targets, midpoint_targets  # noqa: E402
from pvae.physics.lbm import LBMSettings  # noqa: E402
from pvae.vae.critic import find_critic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def target_sets(companion, per_family: int, midpoints: int, seed: int) -> dict:
    """The two target sets as {name: [(id, family, target), ...]}."""
    families = companion.manifest["family"]
    samples = []
    for family in sorted(set(families)):
        rows = np.flatnonzero(families.to_numpy() == family)
        samples += [(i, family, t) for i, t in dataset_targets(companion, rows, per_family)]
    mids = [(i, families.iloc[companion.index_of(i.split("+")[0])], t)
            for i, t in midpoint_targets(companion, midpoints, seed)]  # fmt: skip
    return {"samples": samples, "midpoints": mids}


def critic_error(best: pd.Series) -> float:
    """Largest |expected - LBM| log10 K_ii of a verified design (the critic corrected by its
    parents' residual; decades; NaN if unknown)."""
    errors = [
        abs(np.log10(best[f"expected_{k}"]) - best[f"verified_log10_{k}"])
        for k in ("k_xx", "k_yy", "k_zz")
        if f"expected_{k}" in best and f"verified_log10_{k}" in best
    ]
    return float(np.nanmax(errors)) if errors else float("nan")


def summarize(frame: pd.DataFrame) -> dict:
    """Success rates (overall and per family), cost and novelty of one target set."""

    def rates(part):
        return {
            "targets": len(part),
            "success_rate": float(part["success"].mean()),
            "baseline_success_rate": float(part["baseline_success"].mean()),
            "rotated_baseline_success_rate": float(part["rotated_baseline_success"].mean()),
        }

    return {
        **rates(frame),
        "median_score": float(frame["score"].median()),
        "baseline_median_score": float(frame["baseline_score"].median()),
        "median_novelty": float(frame["novelty"].median()),
        "median_critic_error": float(frame["critic_error"].median()),
        "seconds_per_target": float(frame["seconds"].mean()),
        "max_seconds": float(frame["seconds"].max()),
        "lbm_solves_per_target": float(frame["lbm_solves"].mean()),
        "max_lbm_solves": int(frame["lbm_solves"].max()),
        "outside_training_range": int(frame["outside_training_range"].sum()),
        "by_family": {f: rates(part) for f, part in frame.groupby("family")},
    }


def markdown(result: dict) -> str:
    lines = [
        "# Inverse-design benchmark",
        "",
        run_line(result),
        "",
        f"Model `{result['model']}`, critic `{result['critic']}`, pool: {result['pool']}. "
        f"Targets from `{result['companion']}` (no sample shared with the training data).",
        "",
        "| target set | method | success | median score | median novelty | s per target "
        "(max) | LBM solves per target (max) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in result["sets"].items():
        lines.append(
            f"| {name} ({s['targets']}) | pvae inverse, LBM-verified | {s['success_rate']:.0%} | "
            f"{s['median_score']:.2f} | {s['median_novelty']:.2f} | "
            f"{s['seconds_per_target']:.1f} ({s['max_seconds']:.0f}) | "
            f"{s['lbm_solves_per_target']:.1f} ({s['max_lbm_solves']}) |"
        )
        lines.append(
            f"| {name} ({s['targets']}) | nearest training sample | "
            f"{s['baseline_success_rate']:.0%} | {s['baseline_median_score']:.2f} | 0 | - | - |"
        )
        lines.append(
            f"| {name} ({s['targets']}) | nearest training sample, axes permuted too | "
            f"{s['rotated_baseline_success_rate']:.0%} | - | 0 | - | - |"
        )
    lines += ["", "| target set | family | targets | pvae | nearest sample | permuted too |",
              "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, s in result["sets"].items():
        for family, f in s["by_family"].items():
            lines.append(
                f"| {name} | {family} | {f['targets']} | {f['success_rate']:.0%} | "
                f"{f['baseline_success_rate']:.0%} | {f['rotated_baseline_success_rate']:.0%} |"
            )
    lines += ["", "Success: verified porosity within 0.02 and every log10 K_ii within 0.1 "
              "decade of the target; score = largest error in tolerance units. Nearest: the "
              "training sample whose labels score best against the target. Median |expected - "
              "LBM| log10 K of the best designs (critic corrected by the parents' residual): "
              + ", ".join(f"{n} {s['median_critic_error']:.3f} decade"
                          for n, s in result["sets"].items()) + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "design")
    parser.add_argument("--companion", type=Path, default=ROOT / "bench/data/companion-s7")
    parser.add_argument("--per-family", type=int, default=8, help="set (a) targets per family")
    parser.add_argument("--midpoints", type=int, default=18, help="set (b) targets")
    parser.add_argument("--seed", type=int, default=0, help="pairs of set (b)")
    parser.add_argument("--sets", nargs="+", default=["samples", "midpoints"])
    parser.add_argument("--tol", type=float, default=1e-4, help="LBM verification tolerance")
    parser.add_argument("--max-steps", type=int, default=20_000, help="LBM steps cap per direction")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    loaded = pvae.load_model(args.model)
    companion = open_dataset(args.companion)
    pool = design_pool(loaded, open_dataset(loaded.dataset_path))
    critic, critic_file = find_critic(args.model, loaded)
    index = NoveltyIndex(pool.images())
    settings = InverseSettings()
    lbm = LBMSettings(tol=args.tol, max_steps=args.max_steps)
    sets = target_sets(companion, args.per_family, args.midpoints, args.seed)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "model": str(args.model),
        "critic": str(critic_file),
        "pool": pool.description,
        "companion": str(args.companion),
        "companion_fingerprint": companion.fingerprint,
        "settings": asdict(settings),
        "sets": {},
        "rows": {},
    }
    for name in args.sets:
        rows = []
        for target_id, family, target in sets[name]:
            start = time.perf_counter()
            table, _ = design(loaded, target, pool, settings, lbm, critic=critic,
                              novelty_index=index)  # fmt: skip
            seconds = time.perf_counter() - start
            best = table.iloc[0] if len(table) else pd.Series({"success": False, "score": np.inf})
            rows.append({
                "id": target_id, "family": family, **{f"target_{k}": v for k, v in target.items()},
                "success": bool(best["success"]), "score": float(best["score"]),
                "novelty": float(best.get("novelty", np.nan)), "start": best.get("start"),
                **{c: float(best[c]) for c in table.columns if c.startswith("verified_")},
                "lbm_solves": int(table["lbm_solves"].sum()) if len(table) else 0,
                "seconds": seconds,
                "outside_training_range": bool(coverage_problems(target, loaded.target_ranges)),
                "critic_error": critic_error(best),
                **lookup(pool, target),
                **{f"rotated_{k}": v for k, v in lookup(pool, target, permute=True).items()},
            })  # fmt: skip
            row = rows[-1]
            print(
                f"{name} {target_id} ({family}): pvae {'ok' if row['success'] else 'miss'} "
                f"(score {row['score']:.2f}, novelty {row['novelty']:.2f}, "
                f"{row['lbm_solves']} LBM, {seconds:.0f} s); nearest sample "
                f"{'ok' if row['baseline_success'] else 'miss'} ({row['baseline_score']:.2f}); "
                f"critic error {row['critic_error']:.2f} decade; start {row['start']}",
                flush=True,
            )
        frame = pd.DataFrame(rows)
        result["sets"][name] = summarize(frame)
        result["rows"][name] = frame.to_dict(orient="records")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "inverse.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    (args.out / "inverse.md").write_text(markdown(result))
    for name, s in result["sets"].items():
        print(
            f"{name}: success {s['success_rate']:.0%} vs nearest sample "
            f"{s['baseline_success_rate']:.0%}; median novelty {s['median_novelty']:.2f}; "
            f"{s['seconds_per_target']:.1f} s and {s['lbm_solves_per_target']:.1f} LBM solves "
            "per target"
        )


if __name__ == "__main__":
    main()
