"""``pvae analyze``: every figure of a study plus a self-contained Markdown report."""

import dataclasses
from pathlib import Path

import pandas as pd

from analysis import plots
from analysis.finalists import verify_finalists
from analysis.importance import param_importances
from analysis.learning_curve import learning_curves, sentence
from analysis.selection import SelectionRule, choose, leaderboard
from analysis.study import METRIC, Study
from pvae.core.atomic import atomic_directory, atomic_write_bytes, atomic_write_json, check_out
from pvae.core.errors import PvaeError
from pvae.physics.lbm import LBMSettings

LEADERBOARD_COLUMNS = (
    "trial_id",
    "status",
    "epochs",
    "dataset_size",
    f"best_{METRIC}",
    "best_val_r2_porosity",
    "best_val_r2_log10_k_xx",
    "best_val_r2_mean",
    "best_val_fidelity",
    "best_val_fidelity_success",
    "best_val_design_success",
    "best_val_design_score",
    "best_val_realism",
    "best_val_coverage",
)


def figures(
    study: Study, folder: Path, fits: list[dict] | None = None, chosen: str | None = None
) -> dict[str, Path]:
    """Write every study figure (PNG + PDF) into ``folder``; name -> PNG path. ``fits``:
    the study's learning curves (:mod:`analysis.learning_curve`), if any; ``chosen``: the
    production model's trial ID, marked on the Pareto fronts."""
    made = {
        "dataset_size_fits": plots.learning_curve_fits(
            study.trials, fits or [], folder / "dataset_size_fits"
        ),
        "learning_curves": plots.learning_curves(study, folder / "learning_curves"),
        "dataset_size": plots.metric_vs(study, "dataset_size", folder / "metric_vs_dataset_size"),
        "parallel_coordinates": plots.parallel_coordinates(study, folder / "parallel_coordinates"),
        **{
            name: plots.pareto_front(study, folder / name, pair, chosen)
            for name, pair in (
                ("pareto_front", "recon_vs_property"),
                ("pareto_r2_vs_fidelity", "r2_vs_fidelity"),
                ("pareto_r2_vs_design", "r2_vs_design"),
                ("pareto_r2_vs_realism", "r2_vs_realism"),
            )
        },
        "importance": plots.importance_plot(param_importances(study), folder / "importance"),
    }
    for column in ("model.latent_dim", "train.beta", "train.gamma"):
        made[column] = plots.metric_vs(study, column, folder / f"metric_vs_{column.split('.')[1]}")
    return {name: path for name, path in made.items() if path is not None}


def markdown_table(frame) -> str:
    """A DataFrame as a Markdown table (floats to 4 significant digits)."""
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    rows = []
    for row in frame.itertuples(index=False):
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row]
        rows.append("| " + " | ".join(cells) + " |")
    return header + "\n".join(rows) + "\n"


def analyze(
    study: Study,
    out: str | Path,
    rule: SelectionRule | None = None,
    overwrite: bool = False,
    finalists: int = 0,
    lbm: LBMSettings | None = None,
    progress=None,
    device: str = "cpu",
    finalist_targets: int | None = None,
) -> dict:
    """Figures, leaderboard, importance and the production-model choice, into ``out``.

    With ``finalists`` > 0 the best eligible trials first design validation targets
    (``finalist_targets`` each; default the study's ``train.design_targets``),
    verified by LBM (:func:`analysis.finalists.verify_finalists`, with ``lbm``,
    ``progress`` and ``device``), and the choice weighs that check
    (:func:`analysis.selection.choose`); an earlier check kept in the study folder is
    used otherwise.

    Writes ``report.md`` (figures embedded by relative path), ``leaderboard.csv``,
    ``choice.json`` and ``figures/*.png|pdf``, atomically; for a study over at least
    three dataset sizes also ``dataset_size.json``, the learning-curve fits of every
    metric per latent size (:mod:`analysis.learning_curve`), summarised in the report.

    Returns
    -------
    dict
        ``choice`` (trial id and reason; None when no trial is eligible, with
        ``choice_error``), ``figures`` (names), ``report`` (path).
    """
    rule = rule or SelectionRule()
    out = check_out(out, overwrite)
    if finalists > 0:
        study.finalists = verify_finalists(study, rule, finalists, lbm, progress, device,
                                           finalist_targets)  # fmt: skip
    with atomic_directory(out, overwrite=overwrite) as tmp:
        try:
            choice = choose(study.trials, rule, study.finalists)
            decision = {"trial_id": choice.trial_id, "reason": choice.reason}
        except PvaeError as exc:
            decision = {"trial_id": None, "reason": str(exc)}
        curves = learning_curves(study.trials) if "dataset_size" in study.trials else []
        made = figures(study, tmp / "figures", curves, decision["trial_id"])
        board = leaderboard(study.trials, rule)
        board.to_csv(tmp / "leaderboard.csv", index=False)
        importances = param_importances(study)
        summary = study.record.get("summary", {})
        lines = [
            f"# Study report: {study.name}\n",
            f"Results: `{study.root}` · status **{study.record.get('status')}** · dataset "
            f"`{study.record.get('dataset', {}).get('fingerprint')}` · "
            f"{summary.get('trials', len(study.trials))} trials, "
            f"{summary.get('trial_epochs')} trial-epochs.\n",
            "## Production model\n",
            decision["reason"] + "\n",
            "## Leaderboard\n",
            markdown_table(board[[c for c in LEADERBOARD_COLUMNS if c in board]].head(20)),
        ]
        if study.finalists is not None and len(study.finalists):
            lines += ["## LBM check of the finalists\n",
                      "The best eligible trials designed validation-split targets with their "
                      "best checkpoints; LBM verified every design (`finalists.parquet` in the "
                      "study folder).\n", markdown_table(study.finalists)]  # fmt: skip
        if study.dashboards:
            lines += ["## Look at the study\n",
                      "Every trial with its parameters, per-epoch values and state, in "
                      "optuna-dashboard:\n"]  # fmt: skip
            lines += [f"    {command}\n" for command in study.dashboards]
        if importances:
            frame = pd.DataFrame(
                {"parameter": list(importances), "importance": list(importances.values())}
            )
            lines += ["## Hyperparameter importance\n", markdown_table(frame)]
        if curves:
            atomic_write_json(tmp / "dataset_size.json", {"model": "error = a N^-b + c",
                                                         "fits": curves})  # fmt: skip
            lines += ["## Dataset size needed\n",
                      "Fits of error(N) = a N^-b + c per latent size (error = 1 - metric for "
                      "R^2, Dice and fidelity success), 95% bootstrap intervals over the "
                      "seeds (`dataset_size.json`).\n"]  # fmt: skip
            lines += [f"- {sentence(row)}" for row in curves if "target" in row]
            table = pd.DataFrame([
                {"metric": r["metric"], "latent": r["latent_dim"], "a": r["a"], "b": r["b"],
                 "c": r["c"], "b 95%": "{:.3g}-{:.3g}".format(*r["b_interval"])}
                for r in curves])  # fmt: skip
            lines += ["", markdown_table(table)]
        lines.append("## Figures\n")
        for name, path in made.items():
            lines.append(f"### {name.replace('_', ' ')}\n\n![{name}](figures/{path.name})\n")
        atomic_write_bytes(tmp / "report.md", "\n".join(lines).encode())
        atomic_write_json(tmp / "choice.json", {**decision, "rule": dataclasses.asdict(rule)})
    return {"choice": decision, "figures": sorted(made), "report": str(out / "report.md")}
