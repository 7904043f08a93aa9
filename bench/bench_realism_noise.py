"""How noisy is the study's realism term? Fresh draws against the model's own change.

    python bench/bench_realism_noise.py --study runs/production-cpu [--trial ID]
        [--draws 16 256] [--seeds 12 2] [--name realism_noise]

For each kept checkpoint of one trial (default: the trial ``pvae export`` exports), the
in-study realism (``Trainer.generation``: decoded recombinations of training encodings,
``train.generation_samples`` draws) is measured with ``--seeds`` different draw seeds per
number of ``--draws``. The spread over seeds is what fresh draws each epoch added to the
study metric (times ``train.generation_weight``); the spread of the means over
checkpoints is what the model changed. The study itself draws with ``train.seed`` at
every epoch (common random numbers). Nothing is timed. Writes ``results/NAME.{json,md}``.
"""

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine, run_line, write_results  # noqa: E402

from analysis.selection import choose  # noqa: E402
from analysis.study import load_study  # noqa: E402
from pvae.vae.config import experiment_from_dict  # noqa: E402
from pvae.vae.train import Trainer, read_checkpoint  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def trial_checkpoints(folder: Path, trial: str | None) -> tuple[pd.Series, list[Path]]:
    """The trial's row (given, or the study's choice) and its kept ``trainer.pt`` files."""
    study = load_study(folder)
    if trial is None:
        trial = choose(study.trials, finalists=study.finalists).trial_id
    match = study.trials[study.trials["trial_id"].astype(str) == trial]
    if match.empty:
        sys.exit(f"error: {folder}: no trial {trial!r}")
    row = match.iloc[0]
    return row, sorted(Path(row["best_checkpoint"]).parents[1].glob("checkpoint_*/trainer.pt"))


def realism_over_seeds(path: Path, draws: int, seeds: int) -> dict:
    """Realism of one checkpoint at ``draws`` draws, for draw seeds 1..``seeds``."""
    state = read_checkpoint(path)
    config = experiment_from_dict(state["experiment"], str(path))
    train = dataclasses.replace(config.train, design_every=0, design_weight=0.0,
                                generation_samples=draws)  # fmt: skip
    trainer = Trainer(dataclasses.replace(config, train=train), state["dataset_path"])
    trainer.load_state(state)
    values = []
    for seed in range(1, seeds + 1):
        trainer.config = dataclasses.replace(
            trainer.config, train=dataclasses.replace(train, seed=seed))
        values.append(trainer.generation()["val_realism"])
    return {"epoch": int(state["epoch"]), "draws": draws, "realism": values,
            "mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1))}  # fmt: skip


def markdown(result: dict) -> str:
    """The result as a Markdown page."""
    rows = [
        f"| {r['epoch']} | {r['draws']} | {len(r['realism'])} | {r['mean']:.3f} | {r['sd']:.3f} "
        f"| {min(r['realism']):.3f}-{max(r['realism']):.3f} |"
        for r in result["rows"]
    ]
    return "\n".join([
        f"# In-study realism: draw noise against model change (trial {result['trial']})\n",
        run_line(result) + "\n",
        "| checkpoint epoch | draws | seeds | mean realism | sd over seeds | range |",
        "|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        f"Study metric weight of realism: {result['generation_weight']}; an sd of s in "
        f"realism is {result['generation_weight']} x s in `val_objective`.",
        "",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=Path("runs/production-cpu"))
    parser.add_argument("--trial")
    parser.add_argument("--draws", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--seeds", type=int, nargs="+", default=[12, 2],
                        help="draw seeds per entry of --draws")  # fmt: skip
    parser.add_argument("--name", default="realism_noise")
    args = parser.parse_args()
    if len(args.seeds) != len(args.draws) or min(args.seeds) < 2:
        sys.exit("error: --seeds: one count >= 2 per entry of --draws")
    torch.set_num_threads(1)
    row, checkpoints = trial_checkpoints(args.study, args.trial)
    trial = str(row["trial_id"])
    if not checkpoints:
        sys.exit(f"error: {args.study}: trial {trial} kept no checkpoint")
    rows = []
    for path in checkpoints:
        for draws, seeds in zip(args.draws, args.seeds, strict=True):
            rows.append(realism_over_seeds(path, draws, seeds))
            print(f"epoch {rows[-1]['epoch']}, {draws} draws: sd {rows[-1]['sd']:.3f}", flush=True)
    weight = float(row["train.generation_weight"])
    result = {"command": " ".join(["python", *sys.argv]), "machine": machine(),
              "study": str(args.study), "trial": trial, "generation_weight": weight,
              "rows": rows}  # fmt: skip
    write_results(RESULTS, args.name, result, markdown(result))


if __name__ == "__main__":
    main()
