"""Generator fidelity benchmark: what each architecture option of the pVAE buys.

    python bench/bench_fidelity.py [--dataset data/default] [--epochs 40]
        [--variants NAME ...] [--recipe-run runs/design] [--fidelity-samples 32] [--merge]

Variants (model options over a common base; ``SPATIAL`` = an 8^3 grid of 4 channels):
``flat-zeros`` (the previous design model: flat latent of 128, zero padding), ``flat``
(circular padding), ``spatial``, ``spatial-res`` (+ a residual block per stage),
``spatial-res-wide-decoder`` (+ decoder width 32), ``spatial-zeros-res`` (zero padding),
``spatial16-res`` (a 16^3 grid of 2 channels, the design recipe's architecture),
``flat-norm8`` (``flat`` with GroupNorm(8), every model's norm before issue 27).

Every variant is trained on the same data (the training split of ``--dataset``), with
the same training settings and number of epochs, one after another in this process,
then evaluated on the test split with :func:`pvae.vae.evaluate.evaluate`: Dice,
reconstruction BCE, two-point-correlation error, R^2 per property and the *fidelity* of
decoded structures by LBM (encode, decode the mean, binarize at the sample's porosity,
LBM permeability vs. the sample's label; share within 0.02 porosity and 0.1 decade in
every K_ii). ``--recipe-run`` adds a run trained with ``bench/design.yaml`` (``make
design-model``), evaluated the same way. Writes ``bench/results/fidelity.json`` and
``fidelity.md``; ``--merge`` keeps the rows of the variants not run now from the existing
``fidelity.json``, each row naming the run (command, machine, load) that measured it.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine, result_header  # noqa: E402

from pvae.data.store import open_dataset  # noqa: E402
from pvae.vae.config import SAVED_BEFORE_NORM_GROUPS, experiment_from_dict  # noqa: E402
from pvae.vae.evaluate import evaluate  # noqa: E402
from pvae.vae.runs import train_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLAT = {"latent_dim": 128, "base_channels": 16, "max_channels": 128}
SPATIAL = {"latent_layout": "spatial", "latent_dim": 2048, "base_channels": 16, "max_channels": 64}
VARIANTS = {
    # name: model overrides; "flat-zeros" is the previous design model's architecture
    "flat-zeros": {**FLAT, "padding": "zeros"},
    "flat": FLAT,
    "spatial-zeros-res": {**SPATIAL, "res_blocks": 1, "padding": "zeros"},
    "spatial": SPATIAL,
    "spatial-res": {**SPATIAL, "res_blocks": 1},
    "spatial-res-wide-decoder": {**SPATIAL, "res_blocks": 1, "decoder_channels": 32},
    # the design recipe's architecture: a 16^3 grid of 2 channels (one stride-2 stage)
    "spatial16-res": {**SPATIAL, "latent_dim": 8192, "depth": 1, "res_blocks": 1},
    # the norm of every model before issue 27: 2 channels a group on the 16-channel stage
    "flat-norm8": {**FLAT, "norm_groups": SAVED_BEFORE_NORM_GROUPS},
}
TRAIN = {"batch_size": 16, "lr": 2.0e-3, "lr_schedule": "cosine", "beta": 1.0e-3, "gamma": 1.0}


def test_metrics(run: Path, dataset: Path, fidelity_samples: int) -> dict:
    """Test-split metrics of a run (LBM fidelity on ``fidelity_samples`` samples)."""
    start = time.perf_counter()
    metrics = evaluate(run, dataset, "test", fidelity_samples=fidelity_samples)
    keys = ("n_samples", "dice", "recon_bce", "s2_error", "porosity_mae", "r2", "fidelity",
            "per_family")  # fmt: skip
    return {**{k: metrics[k] for k in keys}, "evaluate_seconds": time.perf_counter() - start}


def train_variant(name: str, dataset: Path, epochs: int, folder: Path) -> dict:
    """Train one variant; its config, seconds and best epoch."""
    model = {**VARIANTS[name], "regressor_hidden": [128, 64]}
    config = experiment_from_dict(
        {"name": name, "model": model, "train": {**TRAIN, "epochs": epochs}}
    )
    start = time.perf_counter()
    summary = train_run(config, dataset, folder / name, progress=False)
    return {
        "config": config.to_dict(),
        "train_seconds": time.perf_counter() - start,
        "best_epoch": summary["best_epoch"],
    }


def recipe_record(run: Path) -> dict:
    """Config, training seconds (sum of epoch times) and best epoch of an existing run."""
    history = pd.read_parquet(run / "history.parquet")
    return {
        "config": yaml.safe_load((run / "config.yaml").read_text()),
        "train_seconds": float(history["time_s"].sum()),
        "best_epoch": int(history.loc[history["val_objective"].idxmin(), "epoch"]),
        "epochs": int(history["epoch"].max()),
    }


def table(results: dict) -> list[str]:
    """Markdown rows of the test metrics per variant."""
    lines = [
        "| variant | norm groups | run | train s | Dice | BCE | S2 error "
        "| R^2 porosity / log10 K xx, yy, zz "
        "| fidelity within tol. (LBM) | median log10 K error | within tol. per family |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for name, row in results.items():
        model = row["config"]["model"]
        groups = model.get("norm_groups", SAVED_BEFORE_NORM_GROUPS)
        test, fid = row["test"], row["test"]["fidelity"]
        r2 = " / ".join(f"{v:.3f}" for v in test["r2"].values())
        families = ", ".join(
            f"{fam} {v['fidelity_within_tolerance']:.0%}"
            for fam, v in test["per_family"].items()
            if v["fidelity_within_tolerance"] is not None
        )
        median = fid["median_log10_k_error"]
        lines.append(
            f"| {name} | {groups} | {row.get('run', 0) + 1} | {row['train_seconds']:.0f} | "
            f"{test['dice']:.3f} | "
            f"{test['recon_bce']:.3f} | {test['s2_error']:.4f} | {r2} | "
            f"{fid['within_tolerance']:.0%} | "
            f"{'inf' if median is None else f'{median:.3f}'} | {families} |"
        )
    return lines


def previous_result(path: Path) -> dict:
    """The existing ``fidelity.json`` with its runs listed (a file from before ``runs``
    existed is one run) and every row naming its run."""
    old = json.loads(path.read_text())
    if "runs" not in old:
        old["runs"] = [{"command": old["command"], "machine": old["machine"]}]
        if "recipe" in old:
            old["recipe"]["run_dir"] = old["recipe"].pop("run")
    return old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT / "data" / "default")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--recipe-run", type=Path, help="a run of bench/design.yaml to add")
    parser.add_argument("--fidelity-samples", type=int, default=32)
    parser.add_argument("--keep", type=Path, help="keep the trained variants here")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other variants' rows of the existing fidelity.json",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    store = open_dataset(args.dataset)
    header = result_header(args.dataset, store)
    result = {**header, "epochs": args.epochs, "train": TRAIN, "variants": {}, "runs": []}
    if args.merge and (args.out / "fidelity.json").is_file():
        old = previous_result(args.out / "fidelity.json")
        result["runs"] = old["runs"]
        result["variants"] = {k: {"run": 0, **v} for k, v in old["variants"].items()}
        if "recipe" in old:
            result["recipe"] = {"run": 0, **old["recipe"]}  # a row of the first run
    run = len(result["runs"])
    result["runs"].append({"command": header["command"], "machine": header["machine"]})
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        for name in args.variants:
            row = {"run": run, **train_variant(name, args.dataset, args.epochs, folder)}
            row["test"] = test_metrics(folder / name, args.dataset, args.fidelity_samples)
            result["variants"][name] = row
            print(table({name: row})[-1], flush=True)
    if args.recipe_run:
        row = {"run": run, **recipe_record(args.recipe_run)}
        row["test"] = test_metrics(args.recipe_run, args.dataset, args.fidelity_samples)
        result["recipe"] = {"run_dir": str(args.recipe_run), **row}
        print(table({"design recipe": row})[-1], flush=True)
    result["runs"][run]["machine"]["load_average_1min_end"] = machine()["load_average_1min"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fidelity.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Generator fidelity benchmark\n"]
    for k, measured in enumerate(result["runs"]):
        m = measured["machine"]
        end = m.get("load_average_1min_end")
        lines.append(
            f"Run {k + 1}: `{measured['command']}` on {m['cpu']} ({m['cores']} cores, load "
            f"{m['load_average_1min']:.1f} at start"
            + ("" if end is None else f", {end:.1f} at end")
            + ")."
        )
    lines.append(
        f"\nDataset {tuple(store.shape)} ({store.fingerprint}); fidelity: LBM on "
        f"{args.fidelity_samples} test samples spread over the test split. *norm groups*: "
        "GroupNorm groups per stage (8 = every model before issue 27).\n"
    )
    if result["variants"]:
        lines += [
            f"## Architecture options, same data and budget ({args.epochs} epochs, "
            f"{json.dumps(TRAIN)})\n",
            *table(result["variants"]),
            "",
        ]
    if "recipe" in result:
        recipe = result["recipe"]
        lines += [
            f"## The design recipe (`bench/design.yaml`, run "
            f"`{recipe['run_dir']}`, {recipe['epochs']} epochs)\n",
            *table({"design recipe": recipe}),
            "",
        ]
    (args.out / "fidelity.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
