"""``pvae latent``, ``pvae interpolate`` and ``pvae inverse``: using a trained model."""

import argparse
from pathlib import Path

from pvae.cli.options import add_lbm, add_progress, lbm_settings, print_json


def _add_model(parser, dataset_help: str) -> None:
    parser.add_argument(
        "--model", type=Path, required=True, help="checkpoint file, training run or bundle"
    )
    parser.add_argument("--dataset", type=Path, help=dataset_help)


def _floats(text: str) -> tuple[float, ...]:
    """``"0,0.5,1"`` -> ``(0.0, 0.5, 1.0)`` (argparse type)."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from None


def register(commands) -> None:
    """Add ``pvae latent``, ``pvae interpolate`` and ``pvae inverse``."""
    latent = commands.add_parser(
        "latent", help="latent means per sample, PCA and traversal figures"
    )
    _add_model(latent, "dataset to encode (default: the model's training data)")
    latent.add_argument("--out", type=Path, default=Path("latents.parquet"))
    latent.set_defaults(run=run_latent)

    interp = commands.add_parser(
        "interpolate", help="decode a latent path, verify each step by LBM"
    )
    _add_model(interp, "dataset holding both samples (default: the model's)")
    interp.add_argument("--from", dest="start", required=True, help="sample ID at t = 0")
    interp.add_argument("--to", dest="end", required=True, help="sample ID at t = 1")
    interp.add_argument("--steps", type=int, default=7)
    interp.add_argument("--method", choices=("slerp", "linear"), default="slerp")
    interp.add_argument("--out", type=Path, default=Path("interpolation"))
    add_lbm(interp)
    interp.set_defaults(run=run_interpolate)

    inverse = commands.add_parser("inverse", help="structures with target properties, LBM-verified")
    _add_model(inverse, "dataset whose nearest samples seed the search (default: the model's)")
    inverse.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="porosity=0.7, k_xx=2.0 (lattice units, superficial); repeatable",
    )
    inverse.add_argument(
        "--targets", type=Path, help="CSV of many targets (research or plain layout)"
    )
    inverse.add_argument(
        "--candidates", type=int, default=8, help="designs verified by LBM and reported per target"
    )
    inverse.add_argument(
        "--starts",
        type=int,
        help="latent starts optimised and screened per target (default 4 x --candidates)",
    )
    inverse.add_argument("--steps", type=int, default=200, help="optimisation steps")
    inverse.add_argument("--prior-weight", type=float, default=0.02)
    inverse.add_argument(
        "--consistency-weight",
        type=float,
        default=0.0,
        help="encode-decode consistency term (research code); 0 = off",
    )
    inverse.add_argument(
        "--textures",
        type=_floats,
        metavar="S1,S2,...",
        help="texture amplitudes screened per candidate, logit units; 0 = plain decode "
        "(default 0,0.25,0.5,0.75,1,1.5,2,3,4)",
    )
    inverse.add_argument(
        "--texture-length",
        type=float,
        help="texture correlation length, voxels (default 1)",
    )
    inverse.add_argument(
        "--refine",
        type=int,
        help="rounds of LBM-guided texture correction (default 2)",
    )
    inverse.add_argument("--seed", type=int, default=0)
    inverse.add_argument(
        "--allow-extrapolation",
        action="store_true",
        help="attempt targets outside the training data",
    )
    inverse.add_argument("--out", type=Path, default=Path("designs"))
    inverse.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_lbm(inverse)
    add_progress(inverse)
    inverse.set_defaults(run=run_inverse)


def _load(args):
    from pvae.datasets import resolve_dataset
    from pvae.device import resolve_device
    from pvae.loading import load_model
    from pvae.store import open_dataset

    device = str(resolve_device(args.device)) if hasattr(args, "device") else "cpu"
    loaded = load_model(args.model, device)
    store = open_dataset(resolve_dataset(args.dataset or loaded.dataset_path))
    loaded.check_shape(store)
    return loaded, store, device


def run_latent(args) -> None:
    from pvae.latent import write_latents

    loaded, store, _ = _load(args)
    table = write_latents(loaded, store, args.out)
    print(f"wrote {len(table)} latent vectors to {args.out} (+ _pca.png, _traversal.png)")


def run_interpolate(args) -> None:
    from pvae.interpolation import interpolate

    loaded, store, device = _load(args)
    table = interpolate(
        loaded,
        store,
        args.start,
        args.end,
        args.steps,
        args.method,
        args.out,
        lbm_settings(args),
        device,
    )
    print(f"{args.method} {args.start} -> {args.end}, {args.steps} steps, verified by LBM:")
    columns = [
        "t",
        "predicted_porosity",
        "verified_porosity",
        "predicted_log10_k_xx",
        "verified_log10_k_xx",
    ]
    print(table[[c for c in columns if c in table]].to_string(index=False, float_format="%.3f"))
    print(f"volumes, path.parquet and interpolation.png in {args.out}")


def run_inverse(args) -> int:
    from pvae.errors import PvaeError
    from pvae.inverse import InverseSettings, parse_target, targets_from_csv
    from pvae.inverse_report import run_inverse as run

    if bool(args.target) == bool(args.targets):
        raise PvaeError("give --target NAME=VALUE (repeatable) or --targets FILE.csv")
    targets = (
        targets_from_csv(args.targets) if args.targets else [("target", parse_target(args.target))]
    )
    optional = {
        name: getattr(args, name)
        for name in ("textures", "texture_length", "refine")
        if getattr(args, name) is not None
    }
    settings = InverseSettings(
        candidates=args.candidates,
        starts=args.starts,
        steps=args.steps,
        prior_weight=args.prior_weight,
        consistency_weight=args.consistency_weight,
        seed=args.seed,
        **optional,
    )
    loaded, store, device = _load(args)
    summary = run(
        loaded,
        targets,
        args.out,
        store,
        settings,
        lbm_settings(args),
        device,
        args.allow_extrapolation,
        args.progress,
    )
    designed = summary[summary["status"] == "designed"]
    if args.json:
        print_json(summary.to_dict(orient="records"))
        return 0 if len(designed) else 1
    for row in summary.itertuples():
        if row.status != "designed":
            print(f"{row.id}: not attempted, {row.note}")
            continue
        verdict = (
            "verified within tolerance" if row.success else "best candidate misses the tolerance"
        )
        wanted = {
            k.removeprefix("target_"): getattr(row, k)
            for k in summary.columns
            if k.startswith("target_")
        }
        got = ", ".join(
            f"{k} {getattr(row, f'verified_{k}'):.4g} (target {v:g}, predicted "
            f"{getattr(row, f'predicted_{k}'):.4g})"
            for k, v in wanted.items()
        )
        print(f"{row.id}: {verdict}: LBM/exact {got}")
    if len(designed) > 1:
        print(f"success rate {designed['success'].mean():.0%} of {len(designed)} designed targets")
    print(f"designs in {args.out}")
    return 0 if len(designed) else 1
