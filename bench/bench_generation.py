"""Does the model generate? Realism and coverage of prior samples, per prior.

    python bench/bench_generation.py [--model runs/design] [--samples 256]
        [--priors standard_normal gaussian diffusion-pca diffusion] [--steps N] [--targets 12]
        [--samplers ETA:STEPS:BLUR ...] [--seed 0]

For a trained pVAE (default: the design model, ``make design-model``), each prior is
fitted to the model's training split (``pvae prior fit``; standard_normal needs none)
and ``--samples`` structures are drawn from it and scored against the data in the
descriptor space of :mod:`pvae.data.descriptors` (:mod:`pvae.vae.generation`):
realism (the share of draws as close to a training structure as training structures
are to each other), coverage (the share of test structures with a draw that close),
and the porosity range. Reference rows: the validation split scored as if generated
(what data itself reaches with its count of draws), and the test encodings decoded
after projection on the ``--components`` leading principal components of the training
encodings (the most any prior in that basis can reach), and with white noise added
(how close to an encoding a draw must come). For priors that take targets,
``--targets`` property vectors of the test split are asked for (8 draws each); the
draws are scored by the dataset's CNN surrogate (the design critic) in the design
tolerance (porosity within 0.02, every log10 K_ii within 0.1 decade). The model's
test-split Dice and LBM fidelity come from :func:`pvae.vae.evaluate.evaluate`. Writes
``bench/results/generation.json`` and ``generation.md``; each fitted prior is kept as
``prior-<kind>.pt`` in the model's folder.
"""

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402

from pvae.data.descriptors import descriptors  # noqa: E402
from pvae.data.store import open_dataset  # noqa: E402
from pvae.data.store.layout import SURROGATE  # noqa: E402
from pvae.design.targets import tolerance_errors  # noqa: E402
from pvae.surrogate import load_surrogate  # noqa: E402
from pvae.vae.diffusion import LatentBasis  # noqa: E402
from pvae.vae.evaluate import evaluate  # noqa: E402
from pvae.vae.generation import (  # noqa: E402
    decode_structures,
    generation_metrics,
    measure_generation,
)
from pvae.vae.loading import load_model  # noqa: E402
from pvae.vae.prior import (  # noqa: E402
    StandardNormalPrior,
    fit_prior,
    load_prior,
    save_prior,
    symmetric_encodings,
)

KINDS = ("standard_normal", "gaussian", "diffusion-pca", "diffusion")
PER_TARGET = 8
#: White noise added to test encodings in the reference rows, as a share of their spread.
NOISE = (0.1, 0.2, 0.4)


def conditional_success(loaded, prior, store, rows, critic) -> dict:
    """Draws conditioned on test-split property vectors, scored by the critic."""
    labels = store.labels()
    successes, porosity_errors = [], []
    for i, row in enumerate(rows):
        porosity, k = labels[row, 0], labels[row, 1:].reshape(3, 3)
        diagonal = np.diag(k)
        if not (diagonal > 0).all():
            continue
        condition = {
            "porosity": porosity,
            **{f"log10_k_{a}{a}": math.log10(v) for a, v in zip("xyz", diagonal, strict=True)},
        }
        target = {"porosity": porosity, **{
            f"k_{a}{a}": v for a, v in zip("xyz", diagonal, strict=True)}}  # fmt: skip
        z = prior.sample(PER_TARGET, torch.Generator().manual_seed(i), condition)
        images = decode_structures(loaded.model, z, smoothing=prior.smoothing)
        predicted = critic.predict(images)
        log10_k = np.log10(np.clip(np.diagonal(predicted.k, axis1=1, axis2=2), 1e-300, None))
        errors = tolerance_errors(predicted.porosity, log10_k, target)
        successes.append(float((errors.max(axis=1) <= 1).mean()))
        porosity_errors.append(float(np.median(np.abs(predicted.porosity - porosity))))
    return {
        "targets": len(successes),
        "draws_per_target": PER_TARGET,
        "success_share": float(np.mean(successes)) if successes else None,
        "targets_with_a_success": float(np.mean([s > 0 for s in successes])) if successes else None,
        "median_porosity_error": float(np.median(porosity_errors)) if porosity_errors else None,
    }


@torch.no_grad()
def reference_rows(loaded, store, splits, train, test, components, symmetries) -> dict:
    """Rows that bound the priors: data scored as if generated, and test encodings
    projected on principal components or with noise added."""
    descriptors_train, descriptors_test = descriptors(train), descriptors(test)
    rows = {"data: validation split": generation_metrics(
        descriptors(store.images(splits["val"])), descriptors_train, descriptors_test)}  # fmt: skip
    def encodings(split, count):
        rows = np.asarray(splits[split])
        labels = store.labels()[rows]
        k, porosity = labels[:, 1:].reshape(-1, 3, 3), labels[:, 0]
        return symmetric_encodings(loaded, store.images(rows), k, porosity, count)[0]

    basis = LatentBasis.fit(encodings("train", symmetries), components)
    encoded = encodings("test", 1)
    projected = decode_structures(loaded.model, basis.latents(basis.coefficients(encoded)))
    rows[f"test encodings in {basis.size} components"] = generation_metrics(
        descriptors(projected), descriptors_train, descriptors_test)  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    for share in NOISE:  # how close to an encoding a draw must come
        noisy = encoded + share * encoded.std() * torch.randn(encoded.shape, generator=generator)
        rows[f"test encodings + {share:.0%} noise"] = generation_metrics(
            descriptors(decode_structures(loaded.model, noisy)), descriptors_train,
            descriptors_test)  # fmt: skip
    return {name: {**row, "fit_s": None} for name, row in rows.items()}


def sampler_rows(model, prior, train, test, count, samplers, seed) -> dict:
    """The diffusion prior's draws under other sampler settings (``ETA:STEPS:BLUR``:
    fresh noise per step, sampler steps, blur of the logits in voxels), draws of ``seed``."""
    rows, descriptors_train, descriptors_test = {}, descriptors(train), descriptors(test)
    x = torch.from_numpy(test).float()[:, None]
    with torch.no_grad():
        encoded = torch.cat([model.encode(x[i : i + 16])[0] for i in range(0, len(x), 16)])
    for blur in sorted({float(spec.split(":")[2]) for spec in samplers} | {prior.smoothing}):
        decoded = decode_structures(model, encoded, smoothing=blur)  # what the blur costs data
        rows[f"test reconstructions, blur {blur:g}"] = {
            **generation_metrics(descriptors(decoded), descriptors_train, descriptors_test),
            "fit_s": None}  # fmt: skip
    for spec in samplers:
        eta, steps, blur = spec.split(":")
        variant = copy.copy(prior)
        variant.eta, variant.sampling_steps, variant.smoothing = float(eta), int(steps), float(blur)
        began = time.perf_counter()
        metrics, _ = measure_generation(model, variant, train, test, count, seed)
        name = f"diffusion, eta {float(eta):g}, {int(steps)} steps, blur {float(blur):g}"
        rows[name] = {**metrics, "fit_s": None, "reused": True,
                      "sample_and_score_s": time.perf_counter() - began}  # fmt: skip
        print(name, json.dumps(rows[name]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/design"))
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the prior draws: settings chosen on one seed are checked "
                             "on another")  # fmt: skip
    parser.add_argument("--priors", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--steps", type=int, help="denoiser steps (default: fit_prior's)")
    parser.add_argument("--components", type=int, default=256)
    parser.add_argument("--symmetries", type=int, default=12)
    parser.add_argument("--targets", type=int, default=12)
    parser.add_argument("--fidelity-samples", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--samplers", nargs="*", default=[], metavar="ETA:STEPS:BLUR",
                        help="also score the diffusion prior's draws with these sampler "
                        "settings, e.g. 0:25:0 (deterministic DDIM, no blur) 1:100:0.7; "
                        "and test reconstructions with each blur")  # fmt: skip
    parser.add_argument("--reuse", action="store_true",
                        help="load the model folder's prior-<kind>.pt where it exists (an "
                        "earlier run's, or `pvae prior fit --out`) instead of fitting")  # fmt: skip
    args = parser.parse_args()
    start = machine()
    loaded = load_model(args.model)
    store = open_dataset(loaded.dataset_path)
    splits = loaded.state["splits"]
    train, test = store.images(splits["train"]), store.images(splits["test"])
    quality = evaluate(args.model, store, "test", None, "cpu",
                       fidelity_samples=args.fidelity_samples, generation_samples=0)  # fmt: skip
    critic = load_surrogate(Path(loaded.dataset_path) / SURROGATE)
    target_rows = np.asarray(splits["test"])[
        np.linspace(0, len(splits["test"]) - 1, args.targets).round().astype(int)
    ]
    rows = reference_rows(loaded, store, splits, train, test, args.components, args.symmetries)
    for kind in args.priors:
        began = time.perf_counter()
        kept = Path(args.model) / f"prior-{kind}.pt"
        fitted = None
        if kind == "standard_normal":
            prior = StandardNormalPrior(loaded.model.config.latent_dim)
        elif args.reuse and kept.is_file():
            prior = load_prior(kept, loaded.model.config.latent_dim)
        else:
            prior = fit_prior(kind, loaded, store, splits["train"], args.components, args.steps,
                              symmetries=args.symmetries)  # fmt: skip
            save_prior(prior, kept)
            fitted = time.perf_counter() - began
        began = time.perf_counter()
        metrics, _ = measure_generation(loaded.model, prior, train, test, args.samples, args.seed)
        row = {**metrics, "fit_s": fitted, "sample_and_score_s": time.perf_counter() - began,
               "reused": kind != "standard_normal" and fitted is None}  # fmt: skip
        if hasattr(prior, "target_names"):
            row["conditional"] = conditional_success(loaded, prior, store, target_rows, critic)
        rows[kind] = row
        print(kind, json.dumps(row), flush=True)
        if kind == "diffusion":
            rows.update(sampler_rows(loaded.model, prior, train, test, args.samples,
                                     args.samplers, args.seed))  # fmt: skip
    end = machine()
    result = {
        "command": " ".join(["python", *sys.argv]),
        "machine": start,
        "load_average_1min_end": end["load_average_1min"],
        "model": str(args.model),
        "dataset": str(store.root),
        "dataset_fingerprint": store.fingerprint,
        "latent_dim": loaded.model.config.latent_dim,
        "voxels": math.prod(store.shape),
        "test_dice": quality["dice"],
        "test_fidelity": quality["fidelity"],
        "settings": {
            k: getattr(args, k)
            for k in ("samples", "seed", "steps", "components", "symmetries", "targets")
        },  # fmt: skip
        "priors": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generation.json").write_text(json.dumps(result, indent=2) + "\n")
    fidelity = quality["fidelity"] or {}
    lines = [
        "# Generation: does the model's prior give structures like the data?\n",
        f"`{result['command']}` on {start['cpu']} ({start['cores']} cores, load "
        f"{start['load_average_1min']:.1f} at start, {end['load_average_1min']:.1f} at end).\n",
        f"Model `{args.model}` (latent {result['latent_dim']} numbers for "
        f"{result['voxels']} voxels), dataset `{store.root}` ({store.fingerprint}); test split: "
        f"Dice {quality['dice']:.3f}, LBM fidelity "
        f"{fidelity.get('within_tolerance', math.nan):.0%} within tolerance "
        f"({fidelity.get('n_samples', 0)} samples).\n",
        "| prior | draws | realism | coverage | porosity of draws | fit s | conditional: "
        "draws within tolerance (critic) | targets with a success | median porosity error |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for kind, row in rows.items():
        cond = row.get("conditional") or {}
        share, hit = cond.get("success_share"), cond.get("targets_with_a_success")
        error, fit = cond.get("median_porosity_error"), row["fit_s"]
        lines.append(
            f"| {kind} | {row['n_samples']} | {row['realism']:.0%} | {row['coverage']:.0%} | "
            f"{row['porosity_min']:.2f}-{row['porosity_max']:.2f} "
            f"(data {row['data_porosity_min']:.2f}-{row['data_porosity_max']:.2f}) | "
            f"{('reused' if row.get('reused') else '-') if fit is None else f'{fit:.0f}'} | "
            f"{'-' if share is None else f'{share:.0%}'} | "
            f"{'-' if hit is None else f'{hit:.0%}'} | "
            f"{'-' if error is None else f'{error:.3f}'} |"
        )
    (args.out / "generation.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
