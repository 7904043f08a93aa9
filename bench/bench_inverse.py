"""Inverse-design benchmark: verified success on targets no model has seen, vs. what a
user can do without the model on the same LBM budget.

    make design-model                     # runs/design: the pVAE and its critic
    pvae data build-default --seed 7 --per-family 16 --out bench/data/companion-s7
    python bench/bench_inverse.py --model runs/design --companion bench/data/companion-s7

(``make bench-inverse`` runs the last two.) Three target sets, none sharing a sample
with the model's training data:

(a) tuning (``--name inverse``, companion seed 7, the default): the set the method is
    developed on;
(b) held-out (``--name inverse-heldout``, companion seed 8): fixed here, run once when the
    method is final (``make bench-inverse-heldout``);
(c) foreign (``--name inverse-foreign``): property vectors of structures of a kind absent
    from the training data (the ``grf`` family), run with ``--allow-extrapolation``
    (``make bench-inverse-foreign``).

From a companion dataset two kinds of target are drawn (``--sets``):
``samples``, the property vectors (porosity and the K diagonal, lattice units) of
``--per-family`` samples of each family with percolating K; ``midpoints``, midpoints in
(porosity, log10 K) space between two samples of one family
(:func:`pvae.design.targets.midpoint_targets`).

A design succeeds when its verified porosity is within 0.02 and every verified log10
K_ii within 0.1 of the target (:data:`pvae.vae.fidelity.TOLERANCE`). ``pvae`` is
:func:`pvae.design.inverse.design` with the model's critic, starting from and compared
with the model's *training split* only. The baselines (:mod:`pvae.design.baselines`) use
the same pool and no model: the nearest sample as it is and in any axis order (labels
only), the nearest (sample, axis order) parents with the porosity set by a signed-distance
threshold, voxel slab splices of those parents with the porosity set, each verified
by LBM in the order of its no-model estimate until it succeeds or spends ``pvae``'s LBM
budget (``InverseSettings.lbm_budget``), and directional blurs of the nearest parents
with the porosity set, the blur searched by LBM on the same budget
(:func:`pvae.design.baselines.blur_search`). Novelty is reported raw and relative to the
novelty of two independent samples of the target's family at its porosity (the
companion's two samples of that family nearest in porosity). Time per target covers the
whole design (optimisation, screening, novelty and every LBM verification). Writes
``bench/results/<name>.json`` and ``.md``.
"""

import argparse
import json
import resource
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine, run_line  # noqa: E402

import pvae  # noqa: E402
from pvae.core.memory import retain_freed_memory  # noqa: E402
from pvae.data.store import open_dataset  # noqa: E402
from pvae.design.active import CriticLearner  # noqa: E402
from pvae.design.baselines import catalogue_baseline  # noqa: E402
from pvae.design.design_space import DesignSpace  # noqa: E402
from pvae.design.inverse import InverseSettings, design  # noqa: E402
from pvae.design.novelty import NoveltyIndex  # noqa: E402
from pvae.design.pool import design_pool, lookup  # noqa: E402
from pvae.design.targets import coverage_problems, dataset_targets, midpoint_targets  # noqa: E402
from pvae.physics.lbm import LBMSettings  # noqa: E402
from pvae.vae.critic import find_critic  # noqa: E402
from pvae.vae.prior import find_prior  # noqa: E402

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


SEARCHED = ("nearest_porosity", "splice", "blur")  # baselines that spend LBM solves
METHODS = (  # (column prefix, label in the tables)
    ("", "pvae inverse, LBM-verified"),
    ("baseline_", "nearest training sample"),
    ("rotated_baseline_", "nearest sample, any axis order"),
    ("nearest_porosity_", "nearest (any axis order), porosity set by signed distance"),
    ("splice_", "slab splice of the nearest, porosity set"),
    ("blur_", "directional blur of the nearest, porosity set, searched by LBM"),
)


def reference_novelty(companion, family: str, porosity: float) -> float:
    """Novelty of one companion sample of a family against another, the two nearest to a
    porosity: what two independent structures of the kind already score."""
    table = companion.manifest
    rows = np.flatnonzero((table["family"] == family).to_numpy())
    if len(rows) < 2:
        return float("nan")
    a, b = rows[np.argsort(np.abs(table["porosity"].to_numpy()[rows] - porosity))[:2]]
    return float(NoveltyIndex(companion.images([a])).novelty(companion.images([b]))[0])


def searched(frame_or_summary) -> list[str]:
    """The searched baselines that were run (``--baselines``)."""
    return [k for k in SEARCHED if f"{k}_success" in frame_or_summary
            or f"{k}_success_rate" in frame_or_summary]  # fmt: skip


def summarize(frame: pd.DataFrame) -> dict:
    """Success rates (overall and per family), cost and novelty of one target set."""

    def rates(part):
        return {"targets": len(part)} | {
            f"{prefix}success_rate": float(part[f"{prefix}success"].mean())
            for prefix, _ in METHODS
            if f"{prefix}success" in part
        }

    kinds = searched(frame)
    return {
        **rates(frame),
        "median_score": float(frame["score"].median()),
        "baseline_median_score": float(frame["baseline_score"].median()),
        **{f"{kind}_median_score": float(frame[f"{kind}_score"].median()) for kind in kinds},
        **{f"{kind}_lbm_solves_per_target": float(frame[f"{kind}_lbm_solves"].mean())
           for kind in kinds},  # fmt: skip
        "median_novelty": float(frame["novelty"].median()),
        "median_relative_novelty": float(frame["relative_novelty"].median()),
        "median_critic_error": float(frame["critic_error"].median()),
        "seconds_per_target": float(frame["seconds"].mean()),
        "max_seconds": float(frame["seconds"].max()),
        "lbm_solves_per_target": float(frame["lbm_solves"].mean()),
        "max_lbm_solves": int(frame["lbm_solves"].max()),
        "outside_training_range": int(frame["outside_training_range"].sum()),
        "outside_design_space": int((~frame["inside_design_space"]).sum()),
        "by_family": {f: rates(part) for f, part in frame.groupby("family")},
    }


def markdown(result: dict) -> str:
    lines = [
        f"# Inverse-design benchmark: {result['name']}",
        "",
        run_line(result),
        "",
        f"Model `{result['model']}`, critic `{result['critic']}`, prior `{result['prior']}` "
        "(conditional draws only from a conditional prior), pool: "
        f"{result['pool']}. "
        + (f"Peak resident memory {result['peak_rss_gib']:.1f} GiB. "
           if "peak_rss_gib" in result else "")
        + f"Targets from `{result['companion']}` (no sample shared with the training data)"
        + ("; targets outside the training ranges attempted (`--allow-extrapolation`)."
           if result["allow_extrapolation"] else "."),  # fmt: skip
        "",
        "| target set | method | success | median score | median novelty (relative) | "
        "s per target (max) | LBM solves per target (max) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in result["sets"].items():
        head = f"| {name} ({s['targets']}) |"
        lines.append(
            f"{head} {METHODS[0][1]} | {s['success_rate']:.0%} | {s['median_score']:.2f} | "
            f"{s['median_novelty']:.2f} ({s['median_relative_novelty']:.2f}) | "
            f"{s['seconds_per_target']:.1f} ({s['max_seconds']:.0f}) | "
            f"{s['lbm_solves_per_target']:.1f} ({s['max_lbm_solves']}) |"
        )
        lines.append(f"{head} {METHODS[1][1]} | {s['baseline_success_rate']:.0%} | "
                     f"{s['baseline_median_score']:.2f} | 0 | - | 0 |")  # fmt: skip
        lines.append(f"{head} {METHODS[2][1]} | {s['rotated_baseline_success_rate']:.0%} | "
                     "- | 0 | - | 0 |")  # fmt: skip
        for kind, (_, label) in zip(SEARCHED, METHODS[3:], strict=True):
            if kind not in searched(s):
                continue
            lines.append(f"{head} {label} | {s[f'{kind}_success_rate']:.0%} | "
                         f"{s[f'{kind}_median_score']:.2f} | - | - | "
                         f"{s[f'{kind}_lbm_solves_per_target']:.1f} |")  # fmt: skip
    lines += ["", "| target set | family | targets | " + " | ".join(m[1] for m in METHODS) + " |",
              "|---|---|---:|" + "---:|" * len(METHODS)]  # fmt: skip
    for name, s in result["sets"].items():
        for family, f in s["by_family"].items():
            lines.append(f"| {name} | {family} | {f['targets']} | " + " | ".join(
                f"{f[f'{prefix}success_rate']:.0%}" if f"{prefix}success_rate" in f else "-"
                for prefix, _ in METHODS) + " |")  # fmt: skip
    lines += ["", "Success: verified porosity within 0.02 and every log10 K_ii within 0.1 "
              "decade of the target; score = largest error in tolerance units. Searched "
              "baselines spend at most pvae's LBM budget per target "
              f"({result['settings']['lbm_budget']}). Relative novelty: the design's novelty "
              "over that of two independent samples of the target's family at its porosity. "
              "Targets outside the pool's design space: "
              + ", ".join(f"{n} {s['outside_design_space']}" for n, s in result["sets"].items())
              + ". Median |expected - LBM| log10 K of the best designs (critic corrected by the "
              "parents' residual): "
              + ", ".join(f"{n} {s['median_critic_error']:.3f} decade"
                          for n, s in result["sets"].items()) + "."]  # fmt: skip
    active = result.get("active_learning")
    if active and active["rounds"]:
        errors = np.array([r["error_before"] for r in active["rounds"]], dtype=float)
        half = len(errors) // 2
        lines += ["", f"Active learning: the critic was fine-tuned ({active['steps']} steps per "
                  f"member and round) on {active['designs']} verified designs in "
                  f"{len(errors)} rounds. Its median |critic - LBM| log10 K_ii on each round's "
                  "designs before learning them: first half of the rounds "
                  f"{np.nanmedian(errors[:half]) if half else np.nan:.3f} decade, second half "
                  f"{np.nanmedian(errors[half:]):.3f}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "design")
    parser.add_argument("--companion", type=Path, default=ROOT / "bench/data/companion-s7")
    parser.add_argument("--name", default="inverse", help="results file name (module docstring)")
    parser.add_argument("--per-family", type=int, default=8, help="samples targets per family")
    parser.add_argument("--midpoints", type=int, default=18, help="midpoints targets")
    parser.add_argument("--seed", type=int, default=0, help="pairs of the midpoints")
    parser.add_argument("--allow-extrapolation", action="store_true",
                        help="attempt targets outside the training ranges")  # fmt: skip
    parser.add_argument("--sets", nargs="+", default=["samples", "midpoints"])
    parser.add_argument("--tol", type=float, default=LBMSettings.tol,
                        help="LBM verification tolerance (LBMSettings.tol)")
    parser.add_argument("--max-steps", type=int, default=20_000, help="LBM steps cap per direction")
    parser.add_argument("--lbm-budget", type=int, default=InverseSettings.lbm_budget,
                        help="LBM verifications per target, for pvae and each baseline")
    parser.add_argument("--critic-steps", type=int, default=InverseSettings.critic_steps,
                        help="active learning: critic fine-tuning steps per round (0 = off)")
    parser.add_argument("--prior-samples", type=int, default=InverseSettings.prior_samples,
                        help="conditional prior draws screened per target")  # fmt: skip
    parser.add_argument("--variation-rounds", type=int, default=InverseSettings.variation_rounds,
                        help="rounds of prior variations of the best candidates (0 = none)")
    parser.add_argument("--blur-seeds", type=int, default=InverseSettings.blur_seeds,
                        help="screened recombinations also blurred along axes (0 = none)")
    parser.add_argument("--baselines", nargs="*", default=list(SEARCHED), choices=SEARCHED,
                        help="searched no-model baselines to run (none: pvae alone)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    loaded = pvae.load_model(args.model)
    companion = open_dataset(args.companion)
    pool = design_pool(loaded, open_dataset(loaded.dataset_path))
    critic, critic_file = find_critic(args.model, loaded)
    prior = find_prior(args.model, loaded.model.config.latent_dim)
    index = NoveltyIndex(pool.images())
    retain_freed_memory()  # as the pvae command runs
    settings = InverseSettings(lbm_budget=args.lbm_budget, critic_steps=args.critic_steps,
                               prior_samples=args.prior_samples,
                               variation_rounds=args.variation_rounds,
                               blur_seeds=args.blur_seeds)  # fmt: skip
    learner = CriticLearner(critic, pool, settings.critic_steps) if settings.critic_steps else None
    lbm = LBMSettings(tol=args.tol, max_steps=args.max_steps)
    sets = target_sets(companion, args.per_family, args.midpoints, args.seed)
    space = DesignSpace.of_rows(pool.store, pool.rows, pool.description)
    result = {
        "name": args.name,
        "allow_extrapolation": args.allow_extrapolation,
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "model": str(args.model),
        "critic": str(critic_file),
        "prior": prior.name,
        "pool": pool.description,
        "companion": str(args.companion),
        "companion_fingerprint": companion.fingerprint,
        "settings": asdict(settings),
        "sets": {},
        "rows": {},
    }
    for name in args.sets:
        rows, left_out = [], 0
        for target_id, family, target in sets[name]:
            outside = bool(coverage_problems(target, loaded.target_ranges))
            if outside and not args.allow_extrapolation:
                left_out += 1
                continue
            start = time.perf_counter()
            table, _ = design(loaded, target, pool, settings, lbm, critic=critic,
                              novelty_index=index, prior=prior, learner=learner,
                              label=target_id)  # fmt: skip
            seconds = time.perf_counter() - start
            best = table.iloc[0] if len(table) else pd.Series({"success": False, "score": np.inf})
            novelty = float(best.get("novelty", np.nan))
            reference = reference_novelty(companion, family, target["porosity"])
            row = {
                "id": target_id, "family": family, **{f"target_{k}": v for k, v in target.items()},
                "success": bool(best["success"]), "score": float(best["score"]),
                "novelty": novelty, "reference_novelty": reference,
                "relative_novelty": novelty / reference if reference > 0 else np.nan,
                "start": best.get("start"),
                **{c: float(best[c]) for c in table.columns if c.startswith("verified_")},
                "lbm_solves": int(table["lbm_solves"].sum()) if len(table) else 0,
                "seconds": seconds,
                "outside_training_range": outside,
                "inside_design_space": space.locate(target)["inside"],
                "critic_error": critic_error(best),
                **lookup(pool, target),
                **{f"rotated_{k}": v for k, v in lookup(pool, target, permute=True).items()},
            }  # fmt: skip
            for kind in args.baselines:
                found = catalogue_baseline(pool, target, kind, settings.lbm_budget, lbm)
                row |= {f"{kind}_{k}": v for k, v in found.items()}
            rows.append(row)
            print(
                f"{name} {target_id} ({family}): pvae {'ok' if row['success'] else 'miss'} "
                f"(score {row['score']:.2f}, novelty {row['novelty']:.2f}, "
                f"{row['lbm_solves']} LBM, {seconds:.0f} s); nearest sample "
                f"{'ok' if row['baseline_success'] else 'miss'} ({row['baseline_score']:.2f}); "
                + "; ".join(f"{kind} {'ok' if row[f'{kind}_success'] else 'miss'} "
                            f"({row[f'{kind}_score']:.2f}, {row[f'{kind}_lbm_solves']} LBM)"
                            for kind in args.baselines)
                + f"; critic error {row['critic_error']:.2f} decade; start {row['start']}",
                flush=True,
            )  # fmt: skip
        frame = pd.DataFrame(rows)
        result["sets"][name] = summarize(frame) | {"left_out_outside_training_range": left_out}
        result["rows"][name] = frame.to_dict(orient="records")
    result["active_learning"] = learner.summary() if learner is not None else None
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(result))
    for name, s in result["sets"].items():
        print(
            f"{name}: success {s['success_rate']:.0%} vs nearest sample "
            f"{s['baseline_success_rate']:.0%}, any axis order "
            f"{s['rotated_baseline_success_rate']:.0%}"
            + "".join(f", {kind} {s[f'{kind}_success_rate']:.0%}" for kind in searched(s))
            + f"; median novelty {s['median_novelty']:.2f}; "
            f"{s['seconds_per_target']:.1f} s and {s['lbm_solves_per_target']:.1f} LBM solves "
            "per target"
        )


if __name__ == "__main__":
    main()
