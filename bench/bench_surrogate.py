"""CNN surrogate benchmark: accuracy on held-out LBM labels, calibration, speed vs. LBM.

    python bench/bench_surrogate.py [--dataset data/default] [--extra D ...] [--model M]
        [--members 3] [--epochs 60] [--lbm-samples 8]

The published figures train on data/default plus two companion sets of the same recipe
(seeds 2026 and 2027, 384 LBM-labelled samples each)::

    pvae data build-default --seed 2026 --out data-extra/s2026
    pvae data build-default --seed 2027 --out data-extra/s2027
    python bench/bench_surrogate.py --extra data-extra/s2026 data-extra/s2027 \
        --epochs 150 --patience 40

(a) Accuracy: an ensemble is trained on the dataset's train split (plus the train
splits of ``--extra`` LBM-labelled datasets; or ``--model`` is evaluated), and its
prediction on the dataset's held-out test split (never seen in training or early
stopping) is compared with the LBM labels: R^2 of log10 K per axis, median relative
error of K_ii, and the calibration of the ensemble spread (binned absolute log10 error
vs. spread, Spearman correlation, a PNG). (b) Throughput: LBM (numba, default
settings, batches of 4 as in ``pvae data label``, one run) and the surrogate (one
batch, connectivity analysis included, steady state: warmed up on the same batch,
median of repeats) on the same test samples, CPU. Writes bench/results/surrogate.json,
.md and .png (calibration plot).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402

from pvae.core.atomic import atomic_write_bytes, atomic_write_json  # noqa: E402
from pvae.data.default_data import RECIPE  # noqa: E402
from pvae.data.store import open_dataset  # noqa: E402
from pvae.physics.lbm import LBMSettings, permeability_batch  # noqa: E402
from pvae.surrogate import (  # noqa: E402
    SurrogateConfig,
    TrainSettings,
    load_surrogate,
    train_ensemble,
)
from pvae.surrogate.evaluation import accuracy, accuracy_by_family  # noqa: E402


def thread_env() -> list[str]:
    """Thread-count variables of this run, as ``NAME=value`` (they shape the timings)."""
    names = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")
    return [f"{n}={os.environ[n]}" for n in names if n in os.environ]


def test_rows(ensemble, store) -> np.ndarray:
    """Rows of the held-out test split recorded in the model for this dataset."""
    for record in ensemble.info["datasets"]:
        if record["fingerprint"] == store.fingerprint:
            return np.array([store.index_of(i) for i in record["test"]])
    raise SystemExit(f"the model was not trained on {store.root} ({store.fingerprint})")


def dataset_record(record: dict) -> dict:
    """A training dataset of the model: path, fingerprint, recipe, labelled and train rows."""
    store = open_dataset(record["path"])
    meta = store.metadata
    return {
        "path": record["path"],
        "fingerprint": record["fingerprint"],
        "seed": meta.get("seed"),
        "families": {f["family"]: f["count"] for f in meta.get("families", [])},
        "labelled": int(store.labelled().sum()),
        "train": len(record["train"]),
    }


def calibration_plot(prediction, k_true, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    true, pred = (np.diagonal(k, axis1=1, axis2=2) for k in (k_true, prediction.k))
    both = (true > 0) & (pred > 0)
    error = np.abs(np.log10(pred[both]) - np.log10(true[both]))
    fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=120)
    ax.scatter(prediction.spread[both], error, s=8, alpha=0.6)
    top = max(prediction.spread[both].max(), error.max()) * 1.05
    ax.plot([0, top], [0, top], "k--", lw=0.8, label="|error| = spread")
    ax.set(
        xlabel="ensemble spread of log10 K_ii (decades)",
        ylabel="|log10 K_pred - log10 K_LBM|",
        title="surrogate calibration (test split)",
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def steady_seconds(ensemble, images: np.ndarray, repeats: int) -> float:
    """Median seconds of ``ensemble.predict(images)`` after a warm-up on the same batch.

    oneDNN builds its convolution primitives per input shape, so the first call at a
    shape is slow; the warm-up call excludes that one-off cost.
    """
    ensemble.predict(images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ensemble.predict(images)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bf16_accuracy(ensemble, store, rows, k_true) -> dict:
    """Test-split accuracy with the network under bfloat16 autocast."""
    ensemble.bfloat16 = True
    try:
        return accuracy(ensemble.predict_store(store, rows), k_true)
    finally:
        ensemble.bfloat16 = False


def throughput(ensemble, store, rows, lbm_samples: int, repeats: int = 5) -> dict:
    images = store.images(rows[:lbm_samples])
    settings = LBMSettings(**RECIPE["lbm"])
    warm = LBMSettings(**{**RECIPE["lbm"], "max_steps": settings.check_every})
    permeability_batch(images[:1], warm)  # numba compilation, excluded
    start = time.perf_counter()
    for i in range(0, len(images), 4):
        permeability_batch(images[i : i + 4], settings)
    lbm_s = time.perf_counter() - start
    surrogate_s = steady_seconds(ensemble, images, repeats)
    split_s = steady_seconds(ensemble, store.images(rows), repeats)
    ensemble.bfloat16 = True
    bf16_s = steady_seconds(ensemble, images, repeats)
    ensemble.bfloat16 = False
    return {
        "samples": len(images),
        "lbm_s": lbm_s,
        "lbm_samples_per_s": len(images) / lbm_s,
        "surrogate_s": surrogate_s,
        "surrogate_samples_per_s": len(images) / surrogate_s,
        "speedup": lbm_s / surrogate_s,
        "surrogate_bf16_s": bf16_s,
        "surrogate_bf16_samples_per_s": len(images) / bf16_s,
        "speedup_bf16": lbm_s / bf16_s,
        "surrogate_repeats": repeats,
        "surrogate_test_split": {"samples": len(rows), "samples_per_s": len(rows) / split_s},
        "torch_threads": torch.get_num_threads(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "load_average_1min": os.getloadavg()[0],
    }


def markdown(result: dict) -> str:
    acc, speed, train = result["accuracy"], result["throughput"], result["training"]
    sources = " + ".join(
        f"{d['train']} from `{d['path']}` (seed {d['seed']}, "
        + ", ".join(f"{n} {f}" for f, n in d["families"].items())
        + f", {d['labelled']} LBM-labelled)"
        for d in train["datasets"]
    )
    lines = [
        "# CNN permeability surrogate benchmark",
        "",
        f"`{result['command']}` on {result['machine']['cpu']} "
        f"(this run pinned to CPU {','.join(map(str, speed['cpu_affinity']))} of "
        f"{os.cpu_count()}, {speed['torch_threads']} torch thread(s); load average "
        f"{speed['load_average_1min']:.1f} during the run, other jobs included).",
        "",
        f"Dataset `{result['dataset']['path']}` ({result['dataset']['labelled']} LBM-labelled "
        f"of {result['dataset']['count']}, {result['dataset']['shape']}); ensemble of "
        f"{train['members']} members, **{train['train_samples']} training samples** "
        f"({sources}; with the 48-symmetry augmentation), {train['val_samples']} for early "
        f"stopping, **{acc['n']} held-out test samples** of the dataset. "
        f"Model {result['model']}.",
        "",
        "| test split | x | y | z | all |",
        "|---|---:|---:|---:|---:|",
        "| R^2 of log10 K_ii | "
        + " | ".join(f"{acc['r2_log10_k'][a]:.3f}" for a in "xyz")
        + " | |",
        "| median relative error of K_ii | "
        + " | ".join(f"{acc['median_rel_error'][a]:.1%}" for a in ("x", "y", "z", "all"))
        + " |",
        "",
        f"Targets: R^2 >= 0.98 per axis, median relative error <= 10%. Mean absolute log10 "
        f"error {acc['mae_log10']:.3f} decades; zero/non-zero K_ii agreement "
        f"{acc['percolation_agreement']:.1%}.",
        "",
        "| family (test split) | samples | median relative error of K_ii | median log10 error |",
        "|---|---:|---:|---:|",
        *[
            f"| {family} | {f['n']} | {f['median_rel_error']:.1%} | {f['median_log10_error']:.3f} |"
            for family, f in result["families"].items()
        ],
        "",
        f"Calibration (![plot](surrogate.png)): Spearman correlation of |log10 "
        f"error| with the ensemble spread {acc['calibration']['spearman']:.2f}.",
        "",
        "| spread bin (decades) | components | mean spread | RMS error | median error |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {b['spread_lo']:.3f}-{b['spread_hi']:.3f} | {b['count']} | "
            f"{b['mean_spread']:.3f} | {b['rms_error']:.3f} | {b['median_error']:.3f} |"
            for b in acc["calibration"]["bins"]
        ],
        "",
        "| throughput, same samples, CPU | samples | seconds | samples/s |",
        "|---|---:|---:|---:|",
        f"| LBM (numba, default settings, one run) | {speed['samples']} | "
        f"{speed['lbm_s']:.1f} | {speed['lbm_samples_per_s']:.3f} |",
        f"| surrogate ({train['members']} members fused + connectivity, steady state) | "
        f"{speed['samples']} | {speed['surrogate_s']:.3f} | "
        f"{speed['surrogate_samples_per_s']:.1f} |",
        f"| surrogate, bfloat16 network (`--bf16`), steady state | {speed['samples']} | "
        f"{speed['surrogate_bf16_s']:.3f} | {speed['surrogate_bf16_samples_per_s']:.1f} |",
        "",
        f"Speed-up {speed['speedup']:.0f}x in float32, {speed['speedup_bf16']:.0f}x in bfloat16 "
        f"(target 1000x); bfloat16 accuracy on the test split: R^2 "
        + " / ".join(f"{result['accuracy_bf16']['r2_log10_k'][a]:.3f}" for a in "xyz")
        + f", median relative error {result['accuracy_bf16']['median_rel_error']['all']:.1%}. "
        "The surrogate time is the steady "
        f"state: median of {speed['surrogate_repeats']} calls on the same batch after a "
        "warm-up call on that batch (oneDNN builds its convolution primitives per input "
        "shape; the first call at a shape is slower). Surrogate on the whole test split, "
        f"same protocol: {speed['surrogate_test_split']['samples_per_s']:.1f} samples/s. "
        f"{'No GPU was lent.' if result['machine']['gpu'] is None else ''}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("data/default"))
    parser.add_argument(
        "--extra", type=Path, nargs="*", default=[], help="LBM-labelled datasets to train on too"
    )
    parser.add_argument("--model", type=Path, help="evaluate this model instead of training")
    parser.add_argument("--save-model", type=Path, help="keep the trained model here")
    parser.add_argument("--channels", default="16,32,64", help="CNN channels per stage")
    parser.add_argument(
        "--straight-pores", action="store_true", help="the straight pores' permeability as input"
    )
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--patience", type=int, default=15)
    parser.add_argument("--lbm-samples", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    store = open_dataset(args.dataset)
    if args.model:
        ensemble = load_surrogate(args.model)
    else:
        settings = TrainSettings(members=args.members, epochs=args.epochs,
                                 patience=args.patience, device="cpu")  # fmt: skip
        datasets = [store, *map(open_dataset, args.extra)]
        config = SurrogateConfig(
            channels=tuple(int(c) for c in args.channels.split(",")),
            straight_pores=args.straight_pores,
        )
        ensemble = train_ensemble(datasets, config, settings, progress=True)
        if args.save_model:
            ensemble.save(args.save_model)
    rows = test_rows(ensemble, store)
    k_true = store.labels()[rows, 1:].reshape(-1, 3, 3)
    prediction = ensemble.predict_store(store, rows)
    args.out.mkdir(parents=True, exist_ok=True)
    calibration_plot(prediction, k_true, args.out / "surrogate.png")
    records = ensemble.info["datasets"]
    summary = store.summary()
    result = {
        "command": " ".join([*thread_env(), "python", *sys.argv]),
        "machine": machine(),
        "dataset": {
            "path": str(args.dataset),
            "fingerprint": store.fingerprint,
            "count": summary["count"],
            "labelled": summary["labelled"],
            "shape": summary["shape"],
        },  # fmt: skip
        "model": ensemble.fingerprint,
        "training": {
            **ensemble.info["training"],
            "train_samples": ensemble.info["train_samples"],
            "val_samples": sum(len(r["val"]) for r in records),
            "datasets": [dataset_record(r) for r in records],
            "best_epochs": [h["best_epoch"] for h in ensemble.info["history"]],
            "seconds": sum(e["time_s"] for h in ensemble.info["history"] for e in h["epochs"]),
        },  # fmt: skip
        "accuracy": accuracy(prediction, k_true),
        "families": accuracy_by_family(prediction, k_true, store.manifest["family"].iloc[rows]),
        "accuracy_bf16": bf16_accuracy(ensemble, store, rows, k_true),
        "throughput": throughput(ensemble, store, rows, args.lbm_samples),
    }
    result["training"]["members"] = ensemble.n_members
    atomic_write_json(args.out / "surrogate.json", result)
    text = markdown(result)
    atomic_write_bytes(args.out / "surrogate.md", text.encode())
    print(text)


if __name__ == "__main__":
    main()
