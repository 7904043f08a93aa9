"""Training benchmark: speed of this pVAE vs. the research code's network, and accuracy.

    python bench/bench_train.py [--sizes 32 100] [--epochs 60] [--dataset-size N]

Speed, per cube side in ``--sizes``: training steps (forward, backward, AdamW) on one
batch of ``--batch-size`` images (8: on 2 cores both networks train faster per sample at 100^3
with 8 than with 16) (the dataset's own at its side, synthesized foam at other sides),
for this model (default ModelConfig) and the network with the research code's published
VAE3D (bench/reference_pvae.py: 4 stride-2 convolutions, a 250-d flat
latent), both in one run, on the same batch and threads, under each execution variant
(float32, channels-last memory, bfloat16 autocast on a CPU with native bfloat16,
torch.compile, freed memory retained as the ``pvae`` command runs; the research code runs
with glibc's default allocator, the float32 column). A profile of one step of ours at the
largest side (bf16 and retained memory when measured) says what bounds it.
Accuracy: this model trained with --epochs on the first --dataset-size training samples
of the dataset, evaluated on the test split, once in float32 and once with
``train.amp_cpu`` (bfloat16 steps) when the CPU has native bfloat16.
Writes bench/results/train.json and bench/results/train.md.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import result_header, run_line, synchronize  # noqa: E402
from reference_pvae import ReferencePVAE, flatten_share  # noqa: E402

from pvae.core.memory import retain_freed_memory  # noqa: E402
from pvae.data.microstructures.synthesize import synthesize_sample  # noqa: E402
from pvae.data.store import open_dataset  # noqa: E402
from pvae.vae.config import ModelConfig, experiment_from_dict  # noqa: E402
from pvae.vae.evaluate import evaluate  # noqa: E402
from pvae.vae.inference import autocast, cpu_bfloat16_native  # noqa: E402
from pvae.vae.losses import pvae_loss  # noqa: E402
from pvae.vae.model import PVAE  # noqa: E402
from pvae.vae.runs import train_run  # noqa: E402
from pvae.vae.train import adamw  # noqa: E402

VARIANTS = {  # execution variant -> steps_per_second options
    "float32": {},
    "channels-last": {"channels_last": True},
    "bf16 autocast": {"bf16": True},
    "bf16 autocast + channels-last": {"bf16": True, "channels_last": True},
    "torch.compile": {"compile": True},
    # last: restoring glibc's limits afterwards does not restore its adaptive mmap threshold
    "retained memory": {"retain": True},
    "bf16 autocast + retained memory": {"bf16": True, "retain": True},
}


def training_step(model, targets, bf16: bool = False, forward=None):
    """A function ``step(x)`` that runs one training step of ``model`` (fused AdamW, as
    :class:`pvae.vae.train.Trainer` steps; both networks alike) on the batch
    ``x`` (B, 1, D, H, W): the pVAE loss against ``targets`` (B, T), the forward under
    bfloat16 autocast when ``bf16`` (CUDA, or a CPU with native bfloat16, as ``train.amp``
    and ``train.amp_cpu`` do), through ``forward`` (e.g. a compiled model) if given."""
    forward = model if forward is None else forward
    optimizer = adamw(model, lr=1e-3)
    model.train()

    def step(x):
        with autocast(x.device, bf16, cpu=bf16):
            out = forward(x)
            loss = pvae_loss(out, x, targets[: len(x)], beta=1.0, gamma=1.0).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def steps_per_second(
    model,
    batches,
    targets,
    bf16: bool = False,
    channels_last: bool = False,
    compile: bool = False,
    retain: bool = False,
) -> float:
    """Samples per second of training steps over ``batches`` (after two warm-up steps).

    ``bf16``: as in :func:`training_step`; ``channels_last``: model and images in the
    channels-last 3D memory format; ``compile``: the forward through ``torch.compile``;
    ``retain``: freed memory kept for reuse (:func:`pvae.core.memory.retain_freed_memory`,
    as the ``pvae`` command and study trials run), glibc's limits again afterwards.
    """
    if retain:
        retain_freed_memory()
    try:
        return _steps_per_second(model, batches, targets, bf16, channels_last, compile)
    finally:
        if retain:
            retain_freed_memory(False)


def _steps_per_second(model, batches, targets, bf16, channels_last, compile) -> float:
    device = batches[0].device
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        batches = [x.to(memory_format=torch.channels_last_3d) for x in batches]
    if compile:
        torch._dynamo.reset()  # a fresh, static-shape graph per model and size
    step = training_step(
        model, targets, bf16, torch.compile(model, dynamic=False) if compile else None
    )
    for x in batches[:2]:
        step(x)
    synchronize(device)
    start = time.perf_counter()
    for x in batches[2:]:
        step(x)
    synchronize(device)
    return sum(len(x) for x in batches[2:]) / (time.perf_counter() - start)


def speed_batch(store, side: int, batch_size: int) -> torch.Tensor:
    """One batch (B, 1, S, S, S) of pore images: the dataset's first ones at its own side,
    else foam samples synthesized at side S (seed 0)."""
    if tuple(store.shape) == (side,) * 3:
        images = store.images(range(batch_size))
    else:
        images = np.stack(
            [synthesize_sample("foam", (side,) * 3, 0, i)[0] for i in range(batch_size)]
        )
    return torch.from_numpy(images).float()[:, None]


def speed(store, side: int, batch_size: int, steps: int, variants) -> dict:
    """Samples/s of ours and of the reference at cube side ``side``, per variant."""
    batch = speed_batch(store, side, batch_size)
    batches = [batch] * (steps + 2)
    targets = torch.zeros(batch_size, 4)
    rows = []
    for variant in variants:
        if "bf16" in variant and not cpu_bfloat16_native():
            continue
        row = {"variant": variant}
        try:
            for name, make in (("ours", lambda: PVAE(ModelConfig(), (side,) * 3)),
                               ("reference", lambda: ReferencePVAE(side))):  # fmt: skip
                torch.manual_seed(0)
                row[f"{name}_samples_per_s"] = steps_per_second(make(), batches, targets,
                                                                **VARIANTS[variant])  # fmt: skip
        except Exception as error:  # noqa: BLE001 - torch.compile's failures are reported
            print(f"speed {side}^3, {variant}: failed ({type(error).__name__})", flush=True)
            rows.append({"variant": variant, "failed": f"{type(error).__name__}"})
            continue
        rows.append(row)
        print(
            f"speed {side}^3, {variant}: ours {row['ours_samples_per_s']:.2f} samples/s, "
            f"reference {row['reference_samples_per_s']:.2f}",
            flush=True,
        )
    ours = PVAE(ModelConfig(), (side,) * 3)
    return {
        "side": side,
        "batch_size": batch_size,
        "steps": steps,
        "images": "dataset" if tuple(store.shape) == (side,) * 3 else "foam (synthesized)",
        "ours_parameters": ours.parameter_counts()["total"],
        "reference_parameters": ReferencePVAE(side).parameter_count(),
        "rows": rows,
    }


def profile_step(x: torch.Tensor, bf16: bool, top: int = 8) -> dict:
    """Where one training step of ours on the batch ``x`` (B, 1, S, S, S) spends its CPU
    time: the share of convolutions (forward and backward) and the largest operators."""
    from torch.profiler import ProfilerActivity, profile

    step = training_step(PVAE(ModelConfig(), x.shape[2:]), torch.zeros(len(x), 4), bf16)
    step(x)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(x)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    conv = ("convolution", "conv3d", "conv_transpose")
    conv_time = sum(e.self_cpu_time_total for e in events if any(c in e.key for c in conv))
    largest = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    return {
        "side": int(x.shape[-1]),
        "bf16": bf16,
        "step_s": total / 1e6,
        "convolution_share": conv_time / total,
        "largest": [{"op": e.key, "share": e.self_cpu_time_total / total} for e in largest],
    }


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


def speed_lines(s: dict) -> list[str]:
    """Markdown table of one side's speed rows."""
    fp32 = next(r for r in s["rows"] if r["variant"] == "float32")["reference_samples_per_s"]
    lines = [
        f"\n### {s['side']}^3, batch {s['batch_size']} ({s['images']}; "
        f"{s['ours_parameters']:,} parameters ours, {s['reference_parameters']:,} reference)\n",
        "| variant | ours samples/s | reference samples/s | ours / reference, same variant "
        "| ours / reference in float32 |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in s["rows"]:
        if "failed" in r:
            lines.append(f"| {r['variant']} | failed ({r['failed']}) | | | |")
            continue
        ours, ref = r["ours_samples_per_s"], r["reference_samples_per_s"]
        lines.append(
            f"| {r['variant']} | {ours:.2f} | {ref:.2f} | {ours / ref:.2f}x | {ours / fp32:.2f}x |"
        )
    return lines


def profile_lines(p: dict) -> list[str]:
    """Markdown of one profiled step."""
    ops = ", ".join(f"`{o['op']}` {o['share']:.0%}" for o in p["largest"])
    return [
        f"\nOne step of ours at {p['side']}^3 ({'bf16 autocast' if p['bf16'] else 'float32'}"
        f"{', retained memory' if p.get('retained_memory') else ''}, profiled, "
        f"{p['step_s']:.2f} s of CPU time): convolutions (forward and backward) "
        f"{p['convolution_share']:.0%}, the rest elementwise and copies. Largest: {ops}."
    ]


def accuracy_lines(runs: dict) -> list[str]:
    """Markdown table of the accuracy runs, one column per precision."""
    names = list(runs)
    first = runs[names[0]]
    lines = [
        "\n## Accuracy\n",
        "| test metric | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for k, v in first["test"]["r2"].items():
        if v is not None:
            values = " | ".join(f"{runs[n]['test']['r2'][k]:.4f}" for n in names)
            lines.append(f"| R^2 {k} | {values} |")
    for label, key in (("reconstruction porosity MAE", "porosity_mae"), ("Dice (pore)", "dice")):
        values = " | ".join(f"{runs[n]['test'][key]:.4f}" for n in names)
        lines.append(f"| {label} | {values} |")
    seconds = " | ".join(f"{runs[n]['train_seconds']:.0f}" for n in names)
    lines.append(f"| training time, s | {seconds} |")
    lines.append(
        f"\nTrained {first['config']['train']['epochs']} epochs on {first['dataset_size']} "
        "samples of the dataset."
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", type=Path, default=Path(__file__).parents[1] / "data" / "default"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 100])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--speed-steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="images per speed step")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--dataset-size", type=int)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=1.0)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument(
        "--keep", type=Path, help="keep the float32 trained run here (for bench_inverse.py)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    store = open_dataset(args.dataset)
    result = result_header(args.dataset, store)
    lines = [f"# Training benchmark\n\n{run_line(result)} Dataset {store.fingerprint}."]
    if not args.skip_speed:
        variants = [v for v in VARIANTS if v == "float32" or v in args.variants]  # the baseline
        result["speed"] = [
            speed(store, side, args.batch_size, args.speed_steps, variants) for side in args.sizes
        ]
        bf16 = cpu_bfloat16_native() and any("bf16" in v for v in variants)
        retained = any("retained" in v for v in variants) and retain_freed_memory()
        batch = speed_batch(store, max(args.sizes), args.batch_size)
        result["profile"] = {**profile_step(batch, bf16), "retained_memory": retained}
        lines += ["\n## Speed (training steps, forward + backward + AdamW)"]
        for s in result["speed"]:
            lines += speed_lines(s)
        lines += profile_lines(result["profile"])
        lines.append(
            f"\nFlatten layers hold {flatten_share(200):.0%} of the reference's parameters at "
            "200^3."
        )
    if not args.skip_accuracy:
        model = {"latent_dim": args.latent_dim, "base_channels": args.base_channels}
        train = {"lr": args.lr, "beta": args.beta, "gamma": args.gamma}
        precisions = {"float32": False, **({"bf16 steps": True} if cpu_bfloat16_native() else {})}
        result["accuracy"] = {
            name: accuracy(args.dataset, args.epochs, args.dataset_size, model,
                           {**train, "amp_cpu": amp_cpu}, args.keep if not amp_cpu else None)
            for name, amp_cpu in precisions.items()
        }  # fmt: skip
        for name, acc in result["accuracy"].items():
            print(f"accuracy ({name}): R^2 {acc['test']['r2']}, "
                  f"porosity MAE {acc['test']['porosity_mae']:.4f}")  # fmt: skip
        lines += accuracy_lines(result["accuracy"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "train.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
