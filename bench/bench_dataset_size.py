"""The dataset-size study's answer on the test split: learning curves per latent size.

    python bench/bench_dataset_size.py --study runs/dataset-size-design --dataset data/default

Reads a finished dataset-size study (``pvae tune --experiment
experiments/dataset_size_design.yaml``: the design architecture; the earlier flat-latent
study ``experiments/dataset_size_cpu.yaml`` reads the same way), evaluates every completed
trial's best checkpoint on the dataset's test split (samples no trial trained or selected
on): R^2 of each property, reconstruction BCE and Dice, the fidelity success share
(decoded structures measured by the dataset's surrogate, ``--fidelity-samples`` of
them), design success on fixed test targets scored by that surrogate, and realism and
coverage of decoded recombinations of the trial's training encodings
(:func:`design_and_generation`). It fits error(N) = a N^-b + c to each metric per latent
size, with bootstrap intervals over the seeds (:mod:`analysis.learning_curve`), and writes
``<out>/<name>.md``, ``.json`` and ``.png``."""

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402

from analysis import load_study  # noqa: E402
from analysis.learning_curve import FAR, LATENT, SIZE, learning_curves, sentence  # noqa: E402
from analysis.plots import learning_curve_fits  # noqa: E402
from pvae.core.atomic import atomic_write_bytes, atomic_write_json  # noqa: E402
from pvae.core.warnings import PvaeWarning  # noqa: E402
from pvae.data.splits import training_subset  # noqa: E402
from pvae.data.store import open_dataset  # noqa: E402
from pvae.data.store.layout import SURROGATE  # noqa: E402
from pvae.design.inverse import estimated_score  # noqa: E402
from pvae.design.pool import DesignPool  # noqa: E402
from pvae.design.probe import PROBE_SETTINGS  # noqa: E402
from pvae.design.targets import dataset_targets  # noqa: E402
from pvae.surrogate import load_surrogate  # noqa: E402
from pvae.vae.evaluate import evaluate  # noqa: E402
from pvae.vae.generation import measure_recombinations  # noqa: E402
from pvae.vae.loading import load_model  # noqa: E402

SEED = "train.seed"
TARGETS = {"r2": 0.97, "dice": 0.95, "fidelity_success": 0.9, "design_success": 0.9,
           "realism": 0.9, "coverage": 0.8}  # fmt: skip
DESIGN_TARGETS = 8  # fixed test-split targets each trial designs
DRAWS = 64  # recombinations decoded per trial for realism and coverage


def design_and_generation(checkpoint: str, size: int, store, critic) -> dict:
    """Surrogate-scored design success on fixed test targets, and realism and coverage of
    decoded recombinations, for one trial's model trained on ``size`` training samples.

    The design pool and the recombined encodings are the trial's training subset; the
    realism reference is the whole training split, the same for every size (a subset's
    own spread would widen the closeness threshold of a small one); the targets
    (:data:`DESIGN_TARGETS`, spread over the test split) and the coverage reference are
    the test split. Design: the study probe's search
    (:data:`pvae.design.probe.PROBE_SETTINGS`), scored by the critic.
    """
    loaded = load_model(checkpoint)
    splits = loaded.state["splits"]
    rows = np.sort(np.asarray(training_subset(splits["train"], size), dtype=int))
    pool = DesignPool(store, rows, f"training subset ({len(rows)})")
    targets = dataset_targets(store, splits["test"], DESIGN_TARGETS)
    scores = np.array([estimated_score(loaded, t, pool, PROBE_SETTINGS, critic)
                       for _, t in targets])  # fmt: skip
    generated = measure_recombinations(loaded.model, store.images(rows),
                                       store.images(splits["test"]), DRAWS,
                                       reference_images=store.images(splits["train"]))  # fmt: skip
    return {"test_design_success": float(np.mean(scores <= 1.0)),
            "test_design_score": float(np.median(scores)),
            "test_realism": generated["realism"],
            "test_coverage": generated["coverage"]}  # fmt: skip


def test_metrics(trials: pd.DataFrame, dataset: Path, fidelity_samples: int) -> pd.DataFrame:
    """``test_*`` metric columns of every completed trial's best checkpoint."""
    critic = load_surrogate(dataset / SURROGATE)
    store = open_dataset(dataset)
    rows = []
    for _, trial in trials[trials["status"] == "completed"].iterrows():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PvaeWarning)
            m = evaluate(trial["best_checkpoint"], dataset, "test",
                         fidelity_samples=fidelity_samples, fidelity_method="surrogate",
                         surrogate=critic, generation_samples=0)  # fmt: skip
            row = {"trial_id": trial["trial_id"], "test_recon": m["recon_bce"],
                   "test_dice": m["dice"],
                   "test_fidelity_success": m["fidelity"]["within_tolerance"]}  # fmt: skip
            row.update({f"test_r2_{name}": value for name, value in m["r2"].items()})
            row.update(design_and_generation(trial["best_checkpoint"], int(trial[SIZE]), store,
                                             critic))  # fmt: skip
        rows.append(row)
        print(f"{trial['trial_id']}: N {trial[SIZE]}, latent {trial[LATENT]}, "
              f"dice {m['dice']:.3f}, fidelity {row['test_fidelity_success']:.2f}, "
              f"design {row['test_design_success']:.2f}, realism {row['test_realism']:.2f}",
              flush=True)  # fmt: skip
    return trials.merge(pd.DataFrame(rows), on="trial_id")


def cell_table(trials: pd.DataFrame) -> list[str]:
    """Markdown: mean (min-max over seeds) of every test metric per (latent, N) cell."""
    columns = [c for c in trials.columns if c.startswith("test_")]
    names = [c.removeprefix("test_").replace("r2_log10_k_", "R^2 K_").replace("r2_", "R^2 ")
             for c in columns]  # fmt: skip
    lines = ["| latent | N | seeds | " + " | ".join(names) + " |",
             "|---|---:|---:|" + "---:|" * len(columns)]  # fmt: skip
    for (latent, size), cell in trials.groupby([LATENT, SIZE]):
        values = [f"{cell[c].mean():.3f} ({cell[c].min():.3f}-{cell[c].max():.3f})"
                  for c in columns]  # fmt: skip
        lines.append(f"| {latent} | {size} | {len(cell)} | " + " | ".join(values) + " |")
    return lines


def _needed(fit: dict) -> str:
    """``1,400 (900-2,300)``, ``never`` or with ``extrapolated``, for one fit's target."""
    n, (lo, hi) = fit["n_for_target"], fit["n_interval"]
    if not math.isfinite(n):
        return "never (fitted floor above the target)"
    if n > FAR * max(fit["sizes"]):
        return f"beyond {FAR}x the largest size (nearly flat curve)"
    upper = f"{hi:,.0f}" if math.isfinite(hi) else "never"
    return f"{n:,.0f} ({lo:,.0f}-{upper})" + (" extrapolated" if fit["extrapolated"] else "")


def fit_table(fits: list[dict]) -> list[str]:
    """Markdown: the fitted curves and the dataset size each target needs."""
    lines = ["| metric | latent | a | b | c (floor) | target | N needed (95% interval) |",
             "|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for f in fits:
        need = _needed(f) if "target" in f else "-"
        lines.append(f"| {f['metric']} | {f['latent_dim']} | {f['a']:.3g} | {f['b']:.3g} "
                     f"| {f['c']:.3g} | {f.get('target', '-')} | {need} |")  # fmt: skip
    return lines


def budget_lines(trials: pd.DataFrame) -> list[str]:
    """Markdown: what the study's budget was, so that a reader sees where it limits."""
    done = trials[trials["status"] == "completed"]
    epochs = int(done["train.epochs"].max())
    per_epoch = done.get("train.epoch_samples")
    seen = per_epoch.fillna(done[SIZE]) if per_epoch is not None else done[SIZE]
    steps = epochs * seen / done["train.batch_size"]
    seeds = done.groupby([LATENT, SIZE])[SEED].nunique()
    return [
        f"- Training: {epochs} epochs per trial, {int(steps.min()):,}-{int(steps.max()):,} "
        f"optimizer steps (every size the same when `train.epoch_samples` is set).",
        f"- Seeds: {seeds.min()}-{seeds.max()} per (latent, N) cell; the intervals resample "
        "only those.",
        f"- Sizes: {done[SIZE].min()}-{done[SIZE].max()}; an N beyond the largest is an "
        "extrapolation of the fitted curve, flagged as such.",
    ]


def settle_lines(path: Path) -> list[str]:
    """Markdown: the header of the experiment file that would settle the answer."""
    if not path.is_file():
        return []
    header = [line.removeprefix("#").removeprefix(" ") for line in
              path.read_text().splitlines() if line.startswith("#")]  # fmt: skip
    return ["## The run that would settle it\n", f"`{path}`:\n", "```", *header, "```", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=Path("runs/dataset-size-design"))
    parser.add_argument("--dataset", type=Path, default=Path("data/default"))
    parser.add_argument("--fidelity-samples", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--name", default="dataset_size", help="stem of the result files")
    parser.add_argument("--settle", type=Path,
                        default=Path("experiments/dataset_size_design_gpu.yaml"),
                        help="experiment file of the run that would settle the answer; its "
                        "header (commands) is quoted in the report")  # fmt: skip
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="refit the test metrics already in --out (no evaluation)",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    study = load_study(args.study)
    evaluated = {}  # with --reuse: where and how the reused test metrics were measured
    if args.reuse:
        earlier = json.loads((args.out / f"{args.name}.json").read_text())
        evaluated = {key: earlier[key] for key in ("command", "machine", "evaluation_s")}
        done = pd.DataFrame(earlier["trials"])
        keep = ["trial_id", *[c for c in done.columns if c.startswith("test_")]]
        trials = study.trials.merge(done[keep], on="trial_id")
    else:
        trials = test_metrics(study.trials, args.dataset, args.fidelity_samples)
    fits = learning_curves(trials, TARGETS, prefix="test_")
    args.out.mkdir(parents=True, exist_ok=True)
    figure = learning_curve_fits(trials, fits, args.out / args.name, prefix="test_")
    record = study.record
    wall = sum(float(t) for t in study.trials["wall_time_s"].fillna(0))
    report = {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "study": str(args.study),
        "experiment": record["experiment"],
        "dataset": str(args.dataset),
        "dataset_fingerprint": record.get("dataset", {}).get("fingerprint"),
        "trials": trials[
            ["trial_id", SIZE, LATENT, SEED] + [c for c in trials.columns if c.startswith("test_")]
        ].to_dict(orient="records"),  # fmt: skip
        "fits": fits,
        "targets": TARGETS,
        "trial_training_s": round(wall, 1),
        "evaluation_s": round(time.perf_counter() - start, 1),
        **evaluated,
    }
    answers = [f"- {sentence(f)}" for f in fits if "target" in f]
    lines = [
        "# Dataset-size study (CPU budget)\n",
        f"Study `{args.study}` (`{Path(record['experiment']['file']).name}`: "
        f"{len(trials)} completed trials, FIFO, equal epochs) on `{args.dataset}`; test metrics "
        f"of each trial's best checkpoint from `{report['command']}` "
        f"({report['machine']['cores']} cores). Sum of trial training time {wall / 60:.0f} min.\n",
        "## The answer\n",
        *answers,
        "",
        "## The budget behind it\n",
        *budget_lines(trials),
        "",
        *settle_lines(args.settle),
        "## Fitted curves, error(N) = a N^-b + c (error = 1 - metric; BCE as is)\n",
        *fit_table(fits),
        "",
        f"![learning curves]({Path(figure).name if figure else ''})\n",
        "## Test metrics per cell: mean (min-max over seeds)\n",
        *cell_table(trials),
    ]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    atomic_write_json(args.out / f"{args.name}.json", report)
    atomic_write_bytes(args.out / f"{args.name}.md", markdown.encode())


if __name__ == "__main__":
    main()
