"""``make demo``: the main job end to end on the embedded default dataset.

    python -m pvae.demo [--out demo-out] [--experiment experiments/demo.yaml]

1. the embedded LBM-labelled dataset (``data/default``; ``pvae data build-default``),
2. a Ray Tune study (ASHA + Optuna) on a local Ray,
3. its analysis report and the production-model choice,
4. the production model exported as a bundle and evaluated on the test split, with the
   fidelity of its decoded structures measured by LBM,
5. latent extraction (PCA and traversal figures),
6. one Slerp interpolation between test samples, each step verified by LBM,
7. inverse design of a few test-split property vectors, each design verified by LBM,
8. a summary table.

Every stage writes under ``--out``; a second run reuses what exists (delete a stage's
folder to redo it). Each stage shows progress and prints where its output is.
"""

import argparse
import json
import time
from pathlib import Path

from pvae.default_data import DEFAULT_DATASET
from pvae.errors import PvaeError
from pvae.store import open_dataset

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "demo.yaml"
INVERSE_TARGETS = 3
CANDIDATES = 4
# verification budget of the demo: LBM to a 1e-4 flux change per 100 steps, at most 20k
# steps per direction (a structure that needs more is reported as not converged)
VERIFY = ["--tol", "1e-4", "--max-steps", "20000"]
FIDELITY_SAMPLES = 16  # test samples whose decoded structures LBM measures


def stage(title: str):
    print(f"\n== {title}", flush=True)


def run_study_stage(experiment: Path, dataset: Path, out: Path, smoke: bool) -> dict:
    from tune.study import prepare_study, run_study

    study_file = out / "study.json"
    if study_file.is_file():
        record = json.loads(study_file.read_text())
        if record.get("status") == "complete":
            print(f"reusing the finished study in {out}")
            return record
    study = prepare_study(experiment, dataset, out, smoke)
    resume = (out / "ray").exists()
    record = run_study(study, resume=resume)
    if record["status"] != "complete":
        raise PvaeError(f"{out}: the study was interrupted; run `make demo` again to resume it")
    return record


def interpolation_ends(store, test: list[int]) -> list[str]:
    """Two test samples to interpolate between: a sphere packing and a foam if present."""
    rows = store.manifest.iloc[test]
    picks = [rows[rows["family"] == f]["sample_id"] for f in ("spheres", "foam")]
    if all(len(p) for p in picks):
        return [p.iloc[0] for p in picks]
    return list(rows["sample_id"].iloc[:2])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pvae.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--experiment", type=Path, default=EXPERIMENT)
    parser.add_argument("--smoke", action="store_true", help="tiny study (for tests)")
    parser.add_argument(
        "--targets", type=int, default=INVERSE_TARGETS, help="inverse-design targets"
    )
    args = parser.parse_args(argv)
    from pvae.cli import main as cli

    start = time.perf_counter()
    out = args.out.resolve()
    print(f"== pvae demo -> {out}/")

    stage("1/8 dataset")
    store = open_dataset(args.dataset)
    summary = store.summary()
    if summary["labelled"] < len(store):
        raise PvaeError(f"{args.dataset}: not fully labelled; run `pvae data build-default`")
    print(
        f"{args.dataset}: {summary['count']} samples {summary['shape']}, {summary['families']}, "
        f"fingerprint {summary['fingerprint']}"
    )

    stage("2/8 Ray Tune study (ASHA + Optuna, local Ray)")
    record = run_study_stage(args.experiment, args.dataset, out / "study", args.smoke)
    best = record["summary"]["best_trial"]
    print(f"results: {out / 'study' / 'trials.parquet'}, {out / 'study' / 'history.parquet'}")

    stage("3/8 analysis and production-model choice")
    if not (out / "analysis" / "report.md").is_file():
        cli(["analyze", str(out / "study"), "--out", str(out / "analysis")])
    print(f"report: {out / 'analysis' / 'report.md'}")

    stage("4/8 export and test-split evaluation")
    bundle = out / "models" / "production"
    if not (bundle / "bundle.json").is_file():
        cli(["export", str(out / "study"), "--out", str(bundle)])
    if not (out / "evaluation" / "metrics.json").is_file():
        cli(
            [
                "evaluate",
                "--model",
                str(bundle),
                "--dataset",
                str(args.dataset),
                "--split",
                "test",
                "--out",
                str(out / "evaluation"),
                "--fidelity-samples",
                str(FIDELITY_SAMPLES),
                "--overwrite",
            ]
        )
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    print(f"bundle: {bundle}; evaluation: {out / 'evaluation'}")
    fidelity = metrics["fidelity"]
    print(
        f"test Dice {metrics['dice']:.3f}; decoded structures within tolerance of their "
        f"source (LBM, {fidelity['n_samples']} samples): {fidelity['within_tolerance']:.0%}"
    )

    stage("5/8 latent space")
    if not (out / "latent" / "latents.parquet").is_file():
        cli(
            [
                "latent",
                "--model",
                str(bundle),
                "--dataset",
                str(args.dataset),
                "--out",
                str(out / "latent" / "latents.parquet"),
            ]
        )
    print(f"latents and figures: {out / 'latent'}")

    import pvae

    loaded = pvae.load_model(bundle)
    splits = loaded.state["splits"]

    stage("6/8 Slerp interpolation, verified by LBM")
    if not (out / "interpolation" / "path.parquet").is_file():
        ends = interpolation_ends(store, splits["test"])
        cli(
            [
                "interpolate",
                "--model",
                str(bundle),
                "--dataset",
                str(args.dataset),
                "--from",
                ends[0],
                "--to",
                ends[1],
                "--steps",
                "5",
                "--out",
                str(out / "interpolation"),
                *VERIFY,
            ]
        )
    print(f"interpolation: {out / 'interpolation'}")

    stage("7/8 inverse design of test-split properties, verified by LBM")
    if not (out / "inverse" / "summary.json").is_file():
        from pvae.critic import find_critic
        from pvae.design_pool import design_pool
        from pvae.design_targets import dataset_targets
        from pvae.inverse import InverseSettings
        from pvae.inverse_report import run_inverse
        from pvae.physics.lbm import LBMSettings

        targets = dataset_targets(store, splits["test"], args.targets)
        lbm = LBMSettings(tol=float(VERIFY[1]), max_steps=int(VERIFY[3]))
        critic, critic_file = find_critic(bundle, loaded)
        settings = InverseSettings(candidates=CANDIDATES, starts=4 * CANDIDATES)
        pool = design_pool(loaded, store)  # the training split: test targets stay unseen
        run_inverse(loaded, targets, out / "inverse", pool, settings, lbm, critic=critic,
                    critic_file=critic_file, overwrite=True)  # fmt: skip
    inverse = json.loads((out / "inverse" / "summary.json").read_text())
    import pandas as pd

    designs = pd.read_parquet(out / "inverse" / "summary.parquet")
    for row in designs.itertuples():
        if row.status == "designed":
            wanted = "/".join(f"{getattr(row, f'target_k_{a}{a}'):.3g}" for a in "xyz")
            got = "/".join(f"{getattr(row, f'verified_k_{a}{a}'):.3g}" for a in "xyz")
            lookup = "success" if row.baseline_success else "miss"
            print(
                f"target {row.id}: porosity {row.target_porosity:.3f} -> verified "
                f"{row.verified_porosity:.3f}; K_xx/yy/zz {wanted} -> LBM {got} "
                f"(score {row.score:.2f}: {'success' if row.success else 'miss'}; "
                f"novelty {row.novelty:.2f}; nearest training sample {row.baseline_sample}: "
                f"{lookup}, score {row.baseline_score:.2f})"
            )
        else:
            print(f"target {row.id}: {row.status} ({row.note})")
    print(f"designs: {out / 'inverse'}")

    stage("8/8 summary")
    rate = inverse["success_rate"]
    rows = [
        (
            "best trial",
            f"{best['trial_id']} (val_objective {best['val_objective']:.4f})" if best else "none",
        ),
        *(
            (f"test R^2 {k}", f"{v:.3f}" if v is not None else "n/a")
            for k, v in metrics["r2"].items()
        ),
        ("test reconstruction porosity MAE", f"{metrics['porosity_mae']:.4f}"),
        ("test reconstruction Dice", f"{metrics['dice']:.3f}"),
        (
            "fidelity of decoded structures (LBM)",
            f"{fidelity['within_tolerance']:.0%} of {fidelity['n_samples']} within tolerance, "
            f"median |log10 K error| "
            + (
                f"{fidelity['median_log10_k_error']:.3f} decades"
                if fidelity["median_log10_k_error"] is not None
                else "n/a"
            ),
        ),
        (
            "inverse design success",
            f"{rate:.0%} of {inverse['targets']} (nearest training sample "
            f"{inverse['baseline_success_rate']:.0%}), median novelty "
            f"{inverse['median_novelty'] or 0:.2f}"
            if rate is not None
            else "n/a",
        ),
        ("time", f"{time.perf_counter() - start:.0f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
