"""``pvae tune``: run a Ray Tune study of an experiment file (see :mod:`tune.study`).

The same options drive ``python tune/tune_vae.py``, the entry point ``ray submit``
runs on a cluster's head node. Ray is imported only when the command runs.
"""

import sys
from pathlib import Path

from pvae.cli.options import add_mlflow, add_progress


def register(commands) -> None:
    """Add ``pvae tune``."""
    parser = commands.add_parser(
        "tune", help="hyperparameter study of an experiment file (Ray Tune, ASHA, Optuna)"
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def add_arguments(parser) -> None:
    """The study options shared by ``pvae tune`` and ``tune/tune_vae.py``."""
    parser.add_argument("--experiment", type=Path, required=True, help="experiments/NAME.yaml")
    parser.add_argument("--dataset", type=Path, help="labelled dataset (overrides the file's)")
    parser.add_argument("--out", type=Path, help="results folder (default runs/NAME)")
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted study in --out"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="shrink the study: few trials, 2 epochs, tiny model"
    )
    parser.add_argument(
        "--storage",
        help="Ray storage of trial checkpoints: a shared (NFS) path or s3://bucket/prefix; "
        "needed on multi-node clusters (default OUT/ray)",
    )
    parser.add_argument(
        "--address", help="Ray cluster to join (default RAY_ADDRESS, else start a local Ray)"
    )
    parser.add_argument(
        "--min-gpus",
        type=int,
        default=0,
        help="wait (up to 15 min) for an autoscaling cluster to have this many GPUs",
    )
    add_mlflow(parser, "every trial (parameters, metrics per epoch)")
    add_progress(parser)


def run(args) -> int:
    """Run the study; 0 when complete, 130 when interrupted (continue with --resume)."""
    from tune.study import prepare_study, run_study

    study = prepare_study(
        args.experiment, args.dataset, args.out, args.smoke, args.storage, args.mlflow
    )
    record = run_study(study, args.resume, args.address, args.progress, args.min_gpus)
    print(describe(record, study.out))
    if record["status"] != "complete":
        print(
            "study interrupted; continue it with the same command and --resume",
            file=sys.stderr,
        )
        return 130
    return 0


def describe(record: dict, out: Path) -> str:
    """The end-of-study report: trial counts, best trial, where the files are."""
    summary = record["summary"]
    lines = [
        f"study {record['experiment']['name']} {record['status']}: {summary['trials']} trials "
        f"({summary['completed']} completed, {summary['stopped_early']} stopped early by ASHA, "
        f"{summary['diverged']} diverged, {summary['error']} failed, "
        f"{summary['unfinished']} unfinished); {summary['trial_epochs']} trial-epochs"
    ]
    best = summary["best_trial"]
    if best:
        lines.append(
            f"best: trial {best['trial_id']} val_objective {best['val_objective']:.5g} "
            f"at epoch {best['best_epoch']} ({best['best_checkpoint']})"
        )
    lines += [f"{name}: {out / name}" for name in (*record["files"].values(), "study.json")]
    lines.append(f"open it in optuna-dashboard: {record['optuna']['dashboard']}")
    if record.get("mlflow"):
        lines.append(f"its trials in MLflow: {record['mlflow']['ui']}")
    return "\n".join(lines)
