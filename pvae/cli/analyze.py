"""``pvae analyze`` and ``pvae export``: from study results to a production model."""

import dataclasses
from pathlib import Path

from pvae.cli.options import add_lbm, add_mlflow, add_progress, lbm_settings

DEFAULT_FINALISTS = 3


def register(commands) -> None:
    """Add ``pvae analyze`` and ``pvae export``."""
    analyze = commands.add_parser("analyze", help="figures, leaderboard, report and model choice")
    analyze.add_argument("results", type=Path, nargs="+", help="study results folder(s)")
    analyze.add_argument("--out", type=Path, help="report folder (default: RESULTS/analysis)")
    analyze.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    analyze.add_argument(
        "--finalists", type=int, default=None,
        help="best eligible trials whose validation designs LBM verifies before the choice "
        "(default: 3 when the study measured validation design success, else 0)",
    )  # fmt: skip
    analyze.add_argument(
        "--finalist-targets", type=int, default=None,
        help="validation targets each finalist designs (default: the study's "
        "train.design_targets)",
    )  # fmt: skip
    add_lbm(analyze)
    _add_rule(analyze)
    analyze.set_defaults(run=run_analyze)

    export = commands.add_parser("export", help="export a trial's best checkpoint as a bundle")
    export.add_argument("results", type=Path, help="study results folder")
    export.add_argument("--out", type=Path, required=True, help="bundle folder, e.g. models/NAME")
    export.add_argument("--trial", help="trial ID (default: the production-model rule's choice)")
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    export.add_argument(
        "--prior-steps", type=int, default=0,
        help="also fit a latent diffusion prior (prior.pt) in this many denoiser steps, so the "
        "bundle generates (pvae sample, pvae inverse); 0 = none",
    )  # fmt: skip
    add_progress(export)
    add_mlflow(export, "the bundle (trial, configuration, metrics, files)")
    _add_rule(export)
    export.set_defaults(run=run_export)


def _add_rule(parser) -> None:
    group = parser.add_argument_group("production-model rule")
    group.add_argument("--rule", type=Path, help="YAML file with a selection rule")
    group.add_argument("--metric", help="primary column (default best_val_objective, min)")
    group.add_argument(
        "--constraint",
        action="append",
        default=[],
        help='e.g. "best_val_r2_log10_k_xx >= 0.9" (repeatable)',
    )
    group.add_argument(
        "--tie-break",
        action="append",
        default=None,
        help="column breaking ties, smaller first (default latent dim, data size)",
    )
    group.add_argument(
        "--allow-incomplete", action="store_true", help="accept an interrupted study"
    )


def _rule(args):
    from analysis.selection import SelectionRule, parse_constraint

    rule = SelectionRule.from_file(args.rule) if args.rule else SelectionRule()
    changes = {}
    if args.metric:
        changes["metric"] = args.metric
    if args.constraint:
        changes["constraints"] = rule.constraints + tuple(
            parse_constraint(c) for c in args.constraint
        )
    if args.tie_break:
        changes["tie_breaks"] = tuple(args.tie_break)
    return dataclasses.replace(rule, **changes)


def run_analyze(args) -> None:
    from analysis import analyze, load_studies
    from pvae.core.device import resolve_device

    study = load_studies(args.results, args.allow_incomplete)
    out = args.out or args.results[0] / "analysis"
    count = args.finalists
    if count is None:
        count = DEFAULT_FINALISTS if study.train_settings.get("design_every") else 0
    device = str(resolve_device(args.device))
    result = analyze(study, out, _rule(args), args.overwrite, count, lbm_settings(args), print,
                     device, args.finalist_targets)  # fmt: skip
    print(result["choice"]["reason"])
    print(f"report: {result['report']} ({len(result['figures'])} figures)")


def run_export(args) -> None:
    from analysis import export_trial, load_study
    from pvae.core.errors import PvaeError
    from pvae.core.progress import progress_bar
    from pvae.core.tracking import tracking_uri, ui_command

    if args.prior_steps < 0:
        raise PvaeError(f"--prior-steps {args.prior_steps}: need >= 0")
    uri = tracking_uri(args.mlflow, args.results)  # is MLflow there? asked before any work
    study = load_study(args.results, args.allow_incomplete)
    shown = args.progress if args.prior_steps else False
    with progress_bar(args.prior_steps, "denoiser", shown, unit="step") as bar:
        out = export_trial(study, args.out, args.trial, _rule(args), args.overwrite,
                           args.prior_steps, lambda step, loss: bar.update(1))  # fmt: skip
    files = "bundle.json, weights.safetensors, model.torchscript.pt, README.md"
    print(f"exported to {out}: {files}" + (", prior.pt" if args.prior_steps else ""))
    if uri:
        from analysis.tracking import log_export

        run = log_export(out, uri)
        print(f"logged as MLflow run {run}: {ui_command(uri)}")
