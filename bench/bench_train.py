"""Training benchmark: speed of this pVAE vs. the research code's network, and accuracy.

    python bench/bench_train.py [--dataset data/default] [--epochs 60] [--dataset-size N]

Speed: training steps (forward, backward, AdamW) on the same batches of the dataset,
batch 16, for this model (default ModelConfig) and for the reference network with the
research code's published shape (bench/reference_pvae.py), in one run, on CPU.
Accuracy: this model trained with --epochs on the first --dataset-size training
samples, evaluated on the test split (R^2 per target, reconstruction porosity MAE).
Writes bench/results/train.json and bench/results/train.md.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import result_header, synchronize  # noqa: E402
from reference_pvae import ReferencePVAE, flatten_share  # noqa: E402

from pvae.data.store import open_dataset  # noqa: E402
from pvae.vae.config import ModelConfig, experiment_from_dict  # noqa: E402
from pvae.vae.evaluate import evaluate  # noqa: E402
from pvae.vae.inference import autocast  # noqa: E402
from pvae.vae.losses import pvae_loss  # noqa: E402
from pvae.vae.model import PVAE  # noqa: E402
from pvae.vae.runs import train_run  # noqa: E402


def steps_per_second(model, batches, targets, bf16: bool = False) -> float:
    """Samples per second of training steps over ``batches`` (after one warm-up step);
    ``bf16``: forward under bfloat16 autocast on CUDA, as ``train.amp`` does."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    device = batches[0].device

    def step(x):
        with autocast(device, bf16):
            out = model(x)
            loss = pvae_loss(out, x, targets[: len(x)], beta=1.0, gamma=1.0).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(batches[0])
    synchronize(device)
    start = time.perf_counter()
    for x in batches[1:]:
        step(x)
    synchronize(device)
    return sum(len(x) for x in batches[1:]) / (time.perf_counter() - start)


def speed(store, batch_size: int, steps: int) -> dict:
    images = torch.from_numpy(store.images(range(batch_size * (steps + 1)))).float()[:, None]
    batches = list(images.split(batch_size))
    targets = torch.zeros(batch_size, 4)
    torch.manual_seed(0)
    ours = PVAE(ModelConfig(), store.shape)
    reference = ReferencePVAE(store.shape[0])
    result = {
        "batch_size": batch_size,
        "steps": steps,
        "ours_samples_per_s": steps_per_second(ours, batches, targets),
        "reference_samples_per_s": steps_per_second(reference, batches, targets),
        "ours_parameters": ours.parameter_counts()["total"],
        "reference_parameters": reference.parameter_count(),
        "reference_flatten_share_at_208": flatten_share(208),
        "ours_flatten_share_at_200": PVAE(ModelConfig(), (200,) * 3).parameter_counts()[
            "flatten_layers"
        ]
        / PVAE(ModelConfig(), (200,) * 3).parameter_counts()["total"],
    }
    result["speedup"] = result["ours_samples_per_s"] / result["reference_samples_per_s"]
    return result


def accuracy(dataset: Path, epochs: int, size: int | None, model: dict, train: dict, keep) -> dict:
    config = experiment_from_dict(
        {
            "name": "bench",
            "model": model,
            "train": {"epochs": epochs, "dataset_size": size, **train},
        }
    )
    with tempfile.TemporaryDirectory() as scratch:
        run = keep or Path(scratch) / "run"
        if (run / "summary.json").is_file():  # a kept run: evaluate it again, do not retrain
            summary = json.loads((run / "summary.json").read_text())
            seconds = float(pd.read_parquet(run / "history.parquet")["time_s"].sum())
        else:
            start = time.perf_counter()
            summary = train_run(config, dataset, run, progress=True)
            seconds = time.perf_counter() - start
        metrics = evaluate(run, dataset, "test")
    return {
        "config": config.to_dict(),
        "train_seconds": seconds,
        "dataset_size": summary["best"]["dataset_size"],
        "best_epoch": summary["best_epoch"],
        "test": {
            k: metrics[k]
            for k in ("n_samples", "r2", "mae", "porosity_mae", "dice", "recon_bce", "s2_error")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", type=Path, default=Path(__file__).parents[1] / "data" / "default"
    )
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--dataset-size", type=int)
    parser.add_argument("--speed-steps", type=int, default=6)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument(
        "--keep", type=Path, help="keep the trained run here (for bench_inverse.py)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    store = open_dataset(args.dataset)
    result = {
        **result_header(args.dataset, store),
    }
    if not args.skip_speed:
        result["speed"] = speed(store, 16, args.speed_steps)
        s = result["speed"]
        print(
            f"speed: ours {s['ours_samples_per_s']:.1f} samples/s, reference "
            f"{s['reference_samples_per_s']:.1f} samples/s ({s['speedup']:.2f}x)"
        )
    model = {"latent_dim": args.latent_dim, "base_channels": args.base_channels}
    train = {"lr": args.lr, "beta": args.beta, "gamma": args.gamma}
    result["accuracy"] = accuracy(
        args.dataset, args.epochs, args.dataset_size, model, train, args.keep
    )
    test = result["accuracy"]["test"]
    print(
        f"accuracy at dataset size {result['accuracy']['dataset_size']}: R^2 {test['r2']}, "
        f"porosity MAE {test['porosity_mae']:.4f}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Training benchmark\n\n`{result['command']}` on {result['machine']['cpu']} "
        f"({result['machine']['cores']} cores), dataset {store.shape} ({store.fingerprint}).\n"
    ]
    if "speed" in result:
        s = result["speed"]
        ours, ref = s["ours_samples_per_s"], s["reference_samples_per_s"]
        lines += [
            "| model | parameters | training samples/s (batch 16) |",
            "|---|---:|---:|",
            f"| this pVAE | {s['ours_parameters']:,} | {ours:.1f} |",
            f"| research-code shape | {s['reference_parameters']:,} | {ref:.1f} |",
            f"\nSpeed-up {s['speedup']:.2f}x. Flatten layers hold "
            f"{s['reference_flatten_share_at_208']:.0%} of the reference's parameters at 208^3 "
            f"and {s['ours_flatten_share_at_200']:.1%} of ours at 200^3.\n",
        ]
    acc = result["accuracy"]
    lines += ["| test metric | value |", "|---|---:|"]
    lines += [f"| R^2 {k} | {v:.4f} |" for k, v in test["r2"].items() if v is not None]
    lines += [
        f"| reconstruction porosity MAE | {test['porosity_mae']:.4f} |",
        f"| Dice (pore) | {test['dice']:.4f} |",
        f"\nTrained {acc['config']['train']['epochs']} epochs on {acc['dataset_size']} samples "
        f"in {acc['train_seconds']:.0f} s.",
    ]
    (args.out / "train.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
