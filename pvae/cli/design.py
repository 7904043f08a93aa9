"""``pvae latent``, ``pvae interpolate`` and ``pvae inverse``: using a trained model."""

from pathlib import Path

from pvae.cli.options import (
    add_fields,
    add_lbm,
    add_progress,
    lbm_settings,
    nest_permeability,
    print_json,
)

SEARCH = (  # inverse-design options: (InverseSettings field, type, help)
    ("candidates", int, "finalists verified by LBM and reported per target"),
    ("starts", int, "latent starts optimised per target"),
    ("parents", int, "pool samples (any axis order) nearest to the target, recombined"),
    ("mixtures", int, "two-parent recombinations screened by the critic per target"),
    ("prior_samples", int, "draws of the model's conditional prior (prior.pt) screened too"),
    ("variations", int, "per round, prior variations of the best screened candidates"),
    ("variation_rounds", int, "rounds of prior variations (0 = none)"),
    ("variation_time", float, "noise level of a variation, (0, 1]: small keeps the layout"),
    ("blur_seeds", int, "screened recombinations also blurred along chosen axes (0 = none)"),
    ("steps", int, "optimisation steps"),
    ("critic_weight", float, "weight of the critic's error on the decoded structure"),
    ("regressor_weight", float, "weight of the regressor's error at z"),
    ("prior_weight", float, "weight of |z|^2 / L"),
    ("consistency_weight", float, "encode-decode consistency term (research code)"),
    ("lbm_budget", int, "LBM verifications per target, at most"),
    (
        "critic_steps",
        int,
        "critic fine-tuning steps per round of verified designs (active learning, 0 = off)",
    ),
    ("min_novelty", float, "reject finalists closer than this to a pool sample"),
    ("seed", int, "seed of the starts"),
)


def _add_formats(parser, default: str) -> None:
    parser.add_argument(
        "--formats",
        default=default,
        metavar="LIST",
        help=f"files of each structure, comma-separated from npy, tif, bmp (slice folder), "
        f"vti (ParaView); npy is always written (default: {default})",
    )


def _add_model(parser, dataset_help: str) -> None:
    parser.add_argument(
        "--model", type=Path, required=True, help="checkpoint file, training run or bundle"
    )
    parser.add_argument("--dataset", type=Path, help=dataset_help)


def _add_targets(parser) -> None:
    parser.add_argument(
        "--target",
        action="extend",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="porosity=0.7 k_xx=2.0 (lattice units, superficial); repeatable",
    )
    parser.add_argument(
        "--targets", type=Path, help="CSV of many targets (research or plain layout)"
    )


def _targets(args, required: bool) -> list:
    """(id, target) pairs from --target or --targets."""
    from pvae.core.errors import PvaeError
    from pvae.design.targets import parse_target, targets_from_csv

    if args.target and args.targets:
        raise PvaeError("give --target NAME=VALUE (repeatable) or --targets FILE.csv, not both")
    if args.targets:
        return targets_from_csv(args.targets)
    if args.target:
        return [("target", parse_target(args.target))]
    if required:
        raise PvaeError("give --target NAME=VALUE (repeatable) or --targets FILE.csv")
    return []


def register(commands) -> None:
    """Add ``pvae latent``, ``pvae interpolate`` and ``pvae inverse``."""
    latent = commands.add_parser(
        "latent", help="latent means per sample, PCA and traversal figures"
    )
    _add_model(latent, "dataset to encode (default: the model's training data)")
    latent.add_argument("--out", type=Path, default=Path("latents.parquet"))
    latent.add_argument("--overwrite", action="store_true", help="replace an existing --out")
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
    interp.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    _add_formats(interp, "npy,tif,vti")
    add_lbm(interp)
    interp.set_defaults(run=run_interpolate)

    space = commands.add_parser(
        "design-space",
        help="a catalogue's samples in (porosity, log10 K, anisotropy), the region they "
        "cover, and whether targets lie in it",
    )
    space.add_argument("--model", type=Path, help="the design pool of this model (its "
                       "training split of --dataset or of its own data)")  # fmt: skip
    space.add_argument("--dataset", type=Path, help="every labelled sample of this dataset "
                       "(without --model)")  # fmt: skip
    _add_targets(space)
    space.add_argument("--out", type=Path, default=Path("design_space.png"), help="figure (PNG)")
    space.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    space.add_argument("--json", action="store_true", help="print the summary as JSON")
    space.set_defaults(run=run_design_space)

    inverse = commands.add_parser("inverse", help="structures with target properties, LBM-verified")
    _add_model(
        inverse,
        "dataset to start from and compare with (default: the model's training split; "
        "the model's own dataset always contributes only its training split)",
    )
    _add_targets(inverse)
    inverse.add_argument(
        "--critic",
        type=Path,
        help="surrogate bundle scoring decoded structures (default: critic.pt beside the "
        "model, else the training dataset's surrogate.pt)",
    )
    from pvae.design.inverse import InverseSettings

    tuning = inverse.add_argument_group("search (defaults: pvae.design.inverse.InverseSettings)")
    add_fields(tuning, InverseSettings, [(n, {"type": k, "help": t}) for n, k, t in SEARCH])
    inverse.add_argument(
        "--allow-extrapolation",
        action="store_true",
        help="attempt targets outside the training data",
    )
    inverse.add_argument("--out", type=Path, default=Path("designs"))
    inverse.add_argument(
        "--overwrite", action="store_true", help="replace a non-empty --out folder"
    )
    inverse.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_formats(inverse, "npy,tif,bmp,vti")
    add_lbm(inverse)
    add_progress(inverse)
    inverse.set_defaults(run=run_inverse)


def _load(args):
    from pvae.core.device import resolve_device
    from pvae.data.datasets import resolve_dataset
    from pvae.data.store import open_dataset
    from pvae.vae.loading import load_model

    device = str(resolve_device(args.device)) if hasattr(args, "device") else "cpu"
    loaded = load_model(args.model, device)
    store = open_dataset(resolve_dataset(args.dataset or loaded.dataset_path))
    loaded.check_shape(store)
    return loaded, store, device


def run_latent(args) -> None:
    from pvae.design.latent import write_latents

    loaded, store, _ = _load(args)
    table = write_latents(loaded, store, args.out, overwrite=args.overwrite)
    print(f"wrote {len(table)} latent vectors to {args.out} (+ _pca.png, _traversal.png)")


def run_interpolate(args) -> None:
    from pvae.data.imaging import structure_formats
    from pvae.design.interpolation import interpolate

    formats = structure_formats(args.formats)  # a clear error before the model loads
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
        args.overwrite,
        formats,
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
    print(f"volumes ({', '.join(formats)}), path.parquet and interpolation.png in {args.out}")


def _verdict(row) -> str:
    """One line per designed target: verified values, novelty and the lookup baseline."""
    wanted = {k.removeprefix("target_"): v for k, v in row.items() if k.startswith("target_")}
    got = ", ".join(
        f"{k} {row[f'verified_{k}']:.4g} (target {v:g}, predicted {row[f'predicted_{k}']:.4g})"
        for k, v in wanted.items()
    )
    verdict = "verified within tolerance" if row["success"] else "best candidate misses"
    line = f"{row['id']}: {verdict}: LBM/exact {got}; novelty {row['novelty']:.2f}"
    if isinstance(row.get("baseline_sample"), str):
        lookup = "within tolerance" if row["baseline_success"] else "misses"
        line += f"; nearest sample {row['baseline_sample']} {lookup}"
    return line


def run_design_space(args) -> int:
    from pvae.core.atomic import atomic_file, check_out
    from pvae.core.errors import PvaeError
    from pvae.data.datasets import resolve_dataset
    from pvae.data.store import open_dataset
    from pvae.design.design_space import DesignSpace, design_space_figure, outside_note
    from pvae.design.pool import design_pool

    if args.model is None and args.dataset is None:
        raise PvaeError("give --model (its design pool) or --dataset (all its labelled samples)")
    targets = _targets(args, required=False)
    if args.out.suffix.lower() != ".png":
        raise PvaeError(f"--out {args.out}: the figure is a PNG (name it *.png)")
    check_out(args.out, args.overwrite)
    if args.model is not None:
        loaded, store, _ = _load(args)
        pool = design_pool(loaded, store)
        space = DesignSpace.of_rows(store, pool.rows, pool.description)
    else:
        store = open_dataset(resolve_dataset(args.dataset))
        rows = store.manifest.index[store.manifest["porosity"].notna()]
        space = DesignSpace.of_rows(store, rows, f"{store.root} ({len(rows)} labelled samples)")
    located = [(tid, t, space.locate(t)) for tid, t in targets]
    with atomic_file(args.out) as tmp:
        design_space_figure(space, targets, tmp)
    summary = space.summary()
    if args.json:
        print_json({"design_space": summary, "figure": str(args.out),
                    "targets": [{"id": tid, "target": t} | where
                                for tid, t, where in located]})  # fmt: skip
        return 0
    print(f"design space of {space.description}: {summary['samples']} samples x "
          f"{summary['permutations']} axis orders; porosity {summary['porosity'][0]:.3f}-"
          f"{summary['porosity'][1]:.3f}, log10 K mean {summary['log10_k_mean'][0]:.2f} to "
          f"{summary['log10_k_mean'][1]:.2f}, anisotropy up to {summary['anisotropy'][1]:.2f} "
          f"decades; samples lie within {summary['radius']:.1f} tolerance units of each "
          "other")  # fmt: skip
    for tid, _, where in located:
        if where["inside"]:
            print(f"{tid}: inside ({where['distance']:.1f} tolerance units from "
                  f"{where['nearest_sample']})")  # fmt: skip
        else:
            print(f"{tid}: {outside_note(where, 'the catalogue')}")
    print(f"figure: {args.out}")
    return 0


def run_inverse(args) -> int:
    import warnings

    from pvae.core.warnings import PvaeWarning
    from pvae.data.imaging import structure_formats
    from pvae.design.inverse import InverseSettings
    from pvae.design.inverse_report import run_inverse as run
    from pvae.design.pool import design_pool
    from pvae.vae.critic import critic_candidates, find_critic
    from pvae.vae.prior import find_prior

    formats = structure_formats(args.formats)
    targets = _targets(args, required=True)
    given = {n: getattr(args, n) for n, _, _ in SEARCH if getattr(args, n) is not None}
    if "candidates" in given and "starts" not in given:
        given["starts"] = max(given["candidates"], InverseSettings.starts)
    if "candidates" in given and "lbm_budget" not in given:
        given["lbm_budget"] = max(given["candidates"], InverseSettings.lbm_budget)
    settings = InverseSettings(**given)
    loaded, store, device = _load(args)
    pool = design_pool(loaded, store)
    critic, critic_file = find_critic(args.model, loaded, args.critic, device)
    if critic is None:
        looked = " or ".join(str(p) for p in critic_candidates(args.model, loaded))
        warnings.warn(
            f"no critic at {looked}: designing with the regressor alone (pass --critic FILE)",
            PvaeWarning,
            stacklevel=1,
        )
    prior = find_prior(args.model, loaded.model.config.latent_dim)
    summary = run(loaded, targets, args.out, pool, settings, lbm_settings(args), device,
                  args.allow_extrapolation, args.progress, critic, critic_file,
                  args.overwrite, formats, prior)  # fmt: skip
    designed = summary[summary["status"] == "designed"]
    if args.json:
        print_json([nest_permeability(row) for row in summary.to_dict(orient="records")])
        return 0 if len(designed) else 1
    for row in summary.to_dict(orient="records"):
        if row["status"] == "designed":
            print(_verdict(row))
            if row.get("note"):
                print(f"  note: {row['note']}")
        elif row["status"] == "outside_training_data":
            print(f"{row['id']}: not attempted, {row['note']}")
        else:
            print(f"{row['id']}: no design, {row['note']}")
    if len(summary) > 1:
        attempted = summary[summary["status"] != "outside_training_data"]
        print(
            f"success rate {attempted['success'].mean():.0%} of {len(attempted)} targets "
            f"(nearest pool sample: {attempted['baseline_success'].mean():.0%})"
        )
    print(f"designs in {args.out}")
    return 0 if len(designed) else 1
