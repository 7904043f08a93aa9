"""``pvae train`` and ``pvae evaluate``."""

from pathlib import Path

from pvae.cli.options import add_progress, print_json
from pvae.data.datasets import resolve_dataset
from pvae.vae.config import load_experiment


def register(commands) -> None:
    """Add ``pvae train`` and ``pvae evaluate``."""
    train = commands.add_parser("train", help="train one pVAE from an experiment file")
    train.add_argument("--experiment", type=Path, required=True, help="experiments/X.yaml")
    train.add_argument("--dataset", type=Path, help="dataset directory (default: the file's)")
    train.add_argument("--out", type=Path, help="run directory (default: runs/<name>)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument("--device", help="override train.device (auto, cpu, cuda)")
    add_progress(train)
    train.set_defaults(run=run_train)

    evaluate = commands.add_parser("evaluate", help="metrics and figures of a trained model")
    evaluate.add_argument(
        "--model", type=Path, required=True, help="checkpoint file, run directory or bundle"
    )
    evaluate.add_argument("--dataset", type=Path, help="dataset (default: the model's)")
    evaluate.add_argument("--split", default="test", help="train, val, test or all")
    evaluate.add_argument("--out", type=Path, help="write metrics.json, samples.parquet, figures")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument(
        "--fidelity-samples", type=int, default=32, metavar="N",
        help="samples whose decoded structures are measured (0 = none; default 32)",
    )  # fmt: skip
    evaluate.add_argument(
        "--fidelity-method", choices=("lbm", "surrogate"), default="lbm",
        help="measure decoded structures by LBM (default) or a CNN surrogate (--surrogate)",
    )  # fmt: skip
    evaluate.add_argument(
        "--surrogate", type=Path, help="surrogate model file (default: the dataset's own)"
    )
    evaluate.add_argument(
        "--generation-samples", type=int, default=64, metavar="N",
        help="structures drawn from the model's prior (prior.pt beside it, else N(0, I)) "
        "and scored for realism and coverage (0 = none; default 64)",
    )  # fmt: skip
    evaluate.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    evaluate.set_defaults(run=run_evaluate)


def run_train(args) -> None:
    from pvae.design.probe import design_probe
    from pvae.vae.runs import train_run

    config = load_experiment(args.experiment)
    dataset = resolve_dataset(args.dataset or config.dataset)
    out = args.out or Path("runs") / config.name
    summary = train_run(config, dataset, out, args.resume, args.device, args.progress,
                        design_probe(config))  # fmt: skip
    best = summary["best"] or {}
    print(
        f"{summary['status']}: {summary['epochs']} epochs, best epoch {summary['best_epoch']} "
        f"(val_objective {best.get('val_objective', float('nan')):.4f}, "
        f"val R^2 mean {best.get('val_r2_mean', float('nan')):.3f}"
        + (
            f", fidelity {best['val_fidelity_success']:.0%} within tolerance"
            if best.get("val_fidelity_success") is not None
            else ""
        )
        + (
            f", design {best['val_design_success']:.0%} of validation targets by the critic"
            if best.get("val_design_success") is not None
            else ""
        )
        + f"); run in {out}"
    )


def run_evaluate(args) -> None:
    from pvae.vae.evaluate import evaluate, summary_line
    from pvae.vae.fidelity import critic_surrogate
    from pvae.vae.loading import load_model

    dataset = resolve_dataset(args.dataset or load_model(args.model).dataset_path)
    surrogate = None
    if args.fidelity_method == "surrogate" and args.fidelity_samples > 0:
        surrogate = critic_surrogate(args.surrogate, dataset, args.device)
    metrics = evaluate(
        args.model, dataset, args.split, args.out, args.device,
        fidelity_samples=args.fidelity_samples, fidelity_method=args.fidelity_method,
        surrogate=surrogate, overwrite=args.overwrite,
        generation_samples=args.generation_samples,
    )  # fmt: skip
    if args.json:
        print_json(metrics)
    else:
        print(summary_line(metrics))
        if args.out:
            print(f"wrote metrics.json, samples.parquet and figures to {args.out}")
