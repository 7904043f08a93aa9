"""``make demo``: the main job end to end on the embedded default dataset.

    python -m pvae.cli.demo [--out demo-out] [--experiment experiments/demo.yaml]

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
folder to redo it). Each stage shows progress and prints where its output is. A stage
that fails stops the demo with one line naming it (``--debug``: the traceback); the
next run resumes there.
"""

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pvae.core.errors import PvaeError
from pvae.data.default_data import DEFAULT_DATASET
from pvae.data.store import open_dataset

EXPERIMENT = Path(__file__).resolve().parents[2] / "experiments" / "demo.yaml"
INVERSE_TARGETS = 3
CANDIDATES = 4
# verification budget of the demo: LBM to an estimated 0.1% remaining flux error, at most
# 20k steps per direction (a structure that needs more is reported as not converged)
VERIFY = ["--tol", "1e-3", "--max-steps", "20000"]
FIDELITY_SAMPLES = 16  # test samples whose decoded structures LBM measures


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


@dataclass
class Demo:
    """What the stages share: the options, and what earlier stages produced."""

    out: Path
    dataset: Path
    experiment: Path
    smoke: bool
    targets: int
    start: float
    store: object = None
    record: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    loaded: object = None

    @property
    def bundle(self) -> Path:
        return self.out / "models" / "production"


def pvae_command(*argv) -> None:
    """Run one ``pvae`` command of a stage; :class:`PvaeError` when it fails (the
    command has printed why)."""
    from pvae.cli import main as cli

    code = cli([str(a) for a in argv])
    if code:
        raise PvaeError(f"pvae {argv[0]} exited with status {code}")


def dataset_stage(demo: Demo) -> None:
    demo.store = open_dataset(demo.dataset)
    summary = demo.store.summary()
    if summary["labelled"] < len(demo.store):
        raise PvaeError(f"{demo.dataset}: not fully labelled; run `pvae data build-default`")
    print(
        f"{demo.dataset}: {summary['count']} samples {summary['shape']}, {summary['families']}, "
        f"fingerprint {summary['fingerprint']}"
    )


def study_stage(demo: Demo) -> None:
    demo.record = run_study_stage(demo.experiment, demo.dataset, demo.out / "study", demo.smoke)
    study = demo.out / "study"
    print(f"results: {study / 'trials.parquet'}, {study / 'history.parquet'}")
    if "optuna" in demo.record:  # a study reused from before pvae wrote optuna.db has none
        print(f"open it in optuna-dashboard: {demo.record['optuna']['dashboard']}")


def analysis_stage(demo: Demo) -> None:
    if not (demo.out / "analysis" / "report.md").is_file():
        pvae_command("analyze", demo.out / "study", "--out", demo.out / "analysis", "--overwrite")
    print(f"report: {demo.out / 'analysis' / 'report.md'}")


def export_stage(demo: Demo) -> None:
    evaluation = demo.out / "evaluation"
    if not (demo.bundle / "bundle.json").is_file():
        pvae_command("export", demo.out / "study", "--out", demo.bundle, "--overwrite")
    if not (evaluation / "metrics.json").is_file():
        pvae_command("evaluate", "--model", demo.bundle, "--dataset", demo.dataset,
                     "--split", "test", "--out", evaluation,
                     "--fidelity-samples", FIDELITY_SAMPLES, "--overwrite")  # fmt: skip
    demo.metrics = json.loads((evaluation / "metrics.json").read_text())
    print(f"bundle: {demo.bundle}; evaluation: {evaluation}")
    fidelity = demo.metrics["fidelity"]
    print(
        f"test Dice {demo.metrics['dice']:.3f}; decoded structures within tolerance of their "
        f"source (LBM, {fidelity['n_samples']} samples): {fidelity['within_tolerance']:.0%}"
    )
    import pvae

    demo.loaded = pvae.load_model(demo.bundle)


def latent_stage(demo: Demo) -> None:
    table = demo.out / "latent" / "latents.parquet"
    if not table.is_file():
        pvae_command("latent", "--model", demo.bundle, "--dataset", demo.dataset, "--out", table,
                     "--overwrite")  # fmt: skip
    print(f"latents and figures: {demo.out / 'latent'}")


def interpolation_stage(demo: Demo) -> None:
    folder = demo.out / "interpolation"
    if not (folder / "path.parquet").is_file():
        ends = interpolation_ends(demo.store, demo.loaded.state["splits"]["test"])
        pvae_command("interpolate", "--model", demo.bundle, "--dataset", demo.dataset,
                     "--from", ends[0], "--to", ends[1], "--steps", 5, "--out", folder,
                     "--overwrite", *VERIFY)  # fmt: skip
    print(f"interpolation: {folder}")


def inverse_stage(demo: Demo) -> None:
    folder = demo.out / "inverse"
    if not (folder / "summary.json").is_file():
        from pvae.design.inverse import InverseSettings
        from pvae.design.inverse_report import run_inverse
        from pvae.design.pool import design_pool
        from pvae.design.targets import dataset_targets
        from pvae.physics.lbm import LBMSettings
        from pvae.vae.critic import find_critic

        targets = dataset_targets(demo.store, demo.loaded.state["splits"]["test"], demo.targets)
        lbm = LBMSettings(tol=float(VERIFY[1]), max_steps=int(VERIFY[3]))
        critic, critic_file = find_critic(demo.bundle, demo.loaded)
        settings = InverseSettings(candidates=CANDIDATES, starts=4 * CANDIDATES)
        pool = design_pool(demo.loaded, demo.store)  # the training split: test targets unseen
        run_inverse(demo.loaded, targets, folder, pool, settings, lbm, critic=critic,
                    critic_file=critic_file, overwrite=True)  # fmt: skip
    import pandas as pd

    designs = pd.read_parquet(folder / "summary.parquet")
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
    print(f"designs: {folder}")


def summary_stage(demo: Demo) -> None:
    best = demo.record["summary"]["best_trial"]
    metrics, fidelity = demo.metrics, demo.metrics["fidelity"]
    recombined = metrics.get("recombinations")  # absent from an evaluation of before
    inverse = json.loads((demo.out / "inverse" / "summary.json").read_text())
    rate = inverse["success_rate"]
    rows = [
        ("exported model",
         f"trial {demo.loaded.state['provenance']['trial_id']} (pvae analyze's choice)"),
        (
            "best trial on the study metric",
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
            "realism of generated structures",
            f"{recombined['realism']:.0%} of {recombined['n_samples']} decoded recombinations of "
            f"training encodings (coverage of the test split {recombined['coverage']:.0%})"
            if recombined
            else "n/a",
        ),
        (
            "inverse design success",
            f"{rate:.0%} of {inverse['targets']} (nearest training sample "
            f"{inverse['baseline_success_rate']:.0%}), median novelty "
            f"{inverse['median_novelty'] or 0:.2f}"
            if rate is not None
            else "n/a",
        ),
        ("time", f"{time.perf_counter() - demo.start:.0f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


STAGES = (
    ("dataset", dataset_stage),
    ("Ray Tune study (ASHA + Optuna, local Ray)", study_stage),
    ("analysis and production-model choice", analysis_stage),
    ("export and test-split evaluation", export_stage),
    ("latent space", latent_stage),
    ("Slerp interpolation, verified by LBM", interpolation_stage),
    ("inverse design of test-split properties, verified by LBM", inverse_stage),
    ("summary", summary_stage),
)


def main(argv: list[str] | None = None) -> int:
    """Run every stage; 0 when all ran, 1 with one line naming the stage that failed."""
    parser = argparse.ArgumentParser(
        prog="python -m pvae.cli.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--experiment", type=Path, default=EXPERIMENT)
    parser.add_argument("--smoke", action="store_true", help="tiny study (for tests)")
    parser.add_argument(
        "--targets", type=int, default=INVERSE_TARGETS, help="inverse-design targets"
    )
    parser.add_argument("--debug", action="store_true", help="a traceback when a stage fails")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    demo = Demo(out, args.dataset, args.experiment, args.smoke, args.targets, time.perf_counter())
    print(f"== pvae demo -> {out}/")
    for number, (title, run) in enumerate(STAGES, 1):
        print(f"\n== {number}/{len(STAGES)} {title}", flush=True)
        try:
            run(demo)
        except Exception as exc:  # one line naming the stage; --debug for the traceback
            if args.debug:
                raise
            print(f"pvae demo: stage {number}/{len(STAGES)} ({title}) failed: {exc}; "
                  "fix it and run the demo again: finished stages are reused",
                  file=sys.stderr)  # fmt: skip
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
