"""``pvae prior fit`` and ``pvae sample``: a model that generates new structures."""

import math
from pathlib import Path

from pvae.cli.design import _add_formats, _add_model, _load
from pvae.cli.options import add_progress


def register(commands) -> None:
    """Add ``pvae prior`` (``fit``) and ``pvae sample``."""
    prior = commands.add_parser("prior", help="a learned prior over a model's latent space")
    actions = prior.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = actions.add_parser(
        "fit", help="fit a prior to the model's training encodings (prior.pt beside it)"
    )
    _add_model(fit, "the dataset the model was trained on (default: the recorded one)")
    fit.add_argument(
        "--kind", default="diffusion", choices=("diffusion", "diffusion-pca", "gaussian"),
        help="diffusion: latent diffusion, conditional on any target subset (a convolutional "
        "denoiser on a spatial latent's grid, an MLP over principal components of a flat one); "
        "diffusion-pca: the MLP over principal components; gaussian: one Gaussian in "
        "principal components (default: diffusion)",
    )  # fmt: skip
    fit.add_argument("--components", type=int, default=256,
                     help="principal components of the encodings kept (default: 256)")  # fmt: skip
    fit.add_argument(
        "--steps", type=int, help="denoiser steps (default: 2000 on a grid, 4000 for an MLP)"
    )
    fit.add_argument(
        "--symmetries", type=int, default=12,
        help="cube symmetries of each training image encoded (1-48; default 12)",
    )  # fmt: skip
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--out", type=Path, help="prior file (default: prior.pt beside the model)")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing prior file")
    add_progress(fit)
    fit.set_defaults(run=run_fit)

    sample = commands.add_parser(
        "sample", help="new structures from the model's prior, optionally with target properties"
    )
    _add_model(sample, "the model's training data (default: the recorded one)")
    sample.add_argument("--count", type=int, default=8, help="structures to draw")
    sample.add_argument("--target", action="extend", nargs="+", default=[], metavar="NAME=VALUE",
                        help="draw structures with these properties: porosity, k_xx, k_yy, "
                        "k_zz (lattice units), any subset")  # fmt: skip
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", type=Path, required=True, help="output folder")
    sample.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    _add_formats(sample, "npy,tif,vti")
    sample.set_defaults(run=run_sample)


def run_fit(args) -> None:
    from pvae.core.errors import PvaeError
    from pvae.core.progress import progress_bar
    from pvae.vae.prior import PRIOR, default_steps, fit_prior, save_prior

    loaded, store, _ = _load(args)
    folder = args.model if args.model.is_dir() else args.model.parent
    out = args.out or folder / PRIOR
    if out.exists() and not args.overwrite:
        raise PvaeError(f"{out}: exists (use --overwrite to replace it)")
    if store.fingerprint != loaded.dataset_fingerprint:
        raise PvaeError(f"{store.root}: not the dataset the model was trained on; "
                        "a prior is fitted to the model's training split")  # fmt: skip
    steps = 0 if args.kind == "gaussian" else args.steps or default_steps(args.kind, loaded)
    partial = out.with_name(out.name + ".partial")
    if partial.is_file():
        print(f"resuming the denoiser's training from {partial}")
    with progress_bar(steps, "denoiser", args.progress, unit="step") as bar:
        prior = fit_prior(args.kind, loaded, store, loaded.state["splits"]["train"],
                          args.components, steps or None, symmetries=args.symmetries,
                          seed=args.seed, progress=lambda step, loss: bar.update(1),
                          checkpoint=partial)  # fmt: skip
    save_prior(prior, out)
    partial.unlink(missing_ok=True)
    print(f"wrote a {args.kind} prior ({prior.basis.size} numbers a draw) to {out}")


def run_sample(args) -> None:
    from pvae.core.errors import PvaeError
    from pvae.data.imaging import structure_formats
    from pvae.design.targets import PROPERTIES, parse_target
    from pvae.vae.generation import write_samples
    from pvae.vae.prior import find_prior

    if args.count < 1:
        raise PvaeError(f"--count {args.count}: at least 1")
    formats = structure_formats(args.formats)
    target = parse_target(args.target) if args.target else {}
    condition = {
        PROPERTIES[name]: math.log10(value) if name.startswith("k_") else value
        for name, value in target.items()
    }
    loaded, _, _ = _load(args)
    prior = find_prior(args.model, loaded.model.config.latent_dim)
    table = write_samples(loaded, prior, args.count, args.out, formats, condition, args.seed,
                          args.overwrite)  # fmt: skip
    wanted = f" for {', '.join(args.target)}" if target else ""
    print(f"drew {len(table)} structures from the {prior.name} prior{wanted}:")
    print(table.drop(columns=["file"]).to_string(index=False, float_format="%.3f"))
    print(f"structures ({', '.join(formats)}) and samples.parquet in {args.out}")
