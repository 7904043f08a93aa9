"""``pvae data``: make, import and inspect dataset directories."""

import warnings
from pathlib import Path

from pvae.cli.options import (
    add_binarization,
    add_lbm,
    add_progress,
    binarization,
    lbm_settings,
    print_json,
)
from pvae.errors import PvaeError
from pvae.microstructures import FAMILIES, family_options, synthesize
from pvae.microstructures.synthesize import parse_param
from pvae.store import open_dataset
from pvae.store.importer import import_dataset
from pvae.store.property_table import CONVENTIONS
from pvae.warnings import PvaeWarning


def register(commands) -> None:
    """Add ``pvae data`` and its sub-commands."""
    parser = commands.add_parser("data", help="make, import and inspect datasets")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = sub.add_parser("synth", help="generate a synthetic dataset")
    synth.add_argument("--family", required=True, choices=sorted(FAMILIES))
    synth.add_argument("--count", type=int, required=True, help="number of samples")
    synth.add_argument("--size", default="64", help="S (cube) or ZxYxX, sides 16-256")
    synth.add_argument("--seed", type=int, default=0, help="same seed: bit-identical output")
    synth.add_argument("--out", type=Path, required=True, help="new dataset directory")
    synth.add_argument(
        "--porosity", type=float, nargs=2, metavar=("LO", "HI"), help="target porosity range"
    )
    synth.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="family option, e.g. axes=z, shapes=square, overlap=false, cell_size=10,16",
    )
    synth.add_argument("--workers", type=int, help="processes (default: all CPUs)")
    synth.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_progress(synth)
    synth.set_defaults(run=run_synth)

    imp = sub.add_parser("import", help="import BMP/TIFF/npy samples and a property CSV")
    imp.add_argument("--images", type=Path, required=True, help="directory of samples")
    imp.add_argument("--properties", type=Path, help="property CSV (matched by sample ID)")
    imp.add_argument("--out", type=Path, required=True, help="new dataset directory")
    imp.add_argument("--voxel-size", type=float, help="voxel edge length in metres")
    imp.add_argument(
        "--csv-convention",
        choices=CONVENTIONS,
        help="Darcy velocity of the CSV's permeabilities (default: research layout "
        "pore-averaged, plain layout superficial); stored as superficial",
    )
    imp.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_binarization(imp)
    add_progress(imp)
    imp.set_defaults(run=run_import)

    label = sub.add_parser(
        "label", help="fill permeability labels by LBM (Ray tasks, resumable) or a CNN surrogate"
    )
    label.add_argument("dataset", type=Path)
    label.add_argument(
        "--method", choices=("lbm", "surrogate"), default="lbm", help="labelling method"
    )
    label.add_argument("--model", type=Path, help="surrogate model file (--method surrogate)")
    label.add_argument(
        "--fallback-lbm-above",
        type=float,
        metavar="SIGMA",
        help="surrogate: label by LBM the samples whose ensemble spread of log10 K "
        "(decades, largest axis) is above SIGMA",
    )
    label.add_argument("--workers", type=int, help="tasks at once (default: CPUs, or 4 per GPU)")
    label.add_argument("--batch-size", type=int, help="samples per task (default 4 CPU, 64 GPU)")
    label.add_argument("--relabel", action="store_true", help="recompute existing labels too")
    add_lbm(label)
    add_progress(label)
    label.set_defaults(run=run_label)

    build = sub.add_parser(
        "build-default", help="rebuild the embedded default dataset data/default (LBM, minutes)"
    )
    build.add_argument("--out", type=Path, help="elsewhere than data/default (no record update)")
    build.add_argument("--workers", type=int, help="LBM tasks at once (default: CPUs)")
    build.add_argument(
        "--seed",
        type=int,
        help="a companion set by the same recipe with another seed (needs --out)",
    )
    build.add_argument(
        "--per-family",
        type=int,
        help="samples of each family in a companion set (default: the recipe's)",
    )
    add_progress(build)
    build.set_defaults(run=run_build_default)

    info = sub.add_parser("info", help="summary of a dataset")
    info.add_argument("dataset", type=Path)
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(run=run_info)


def run_synth(args) -> None:
    overrides = dict(parse_param(p) for p in args.param)
    if args.porosity:
        overrides["porosity"] = args.porosity
    options = family_options(args.family, overrides)
    if args.workers is not None and args.workers < 1:
        raise PvaeError(f"--workers {args.workers}: need at least 1")
    out = synthesize(
        args.family,
        args.count,
        args.size,
        args.seed,
        args.out,
        options=options,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print(f"wrote {args.count} {args.family} samples to {out}")


def run_import(args) -> None:
    if args.voxel_size is not None and not args.voxel_size > 0:
        raise PvaeError(f"--voxel-size {args.voxel_size}: must be > 0 (metres)")
    out = import_dataset(
        args.images,
        args.out,
        properties=args.properties,
        rule=binarization(args),
        voxel_size_m=args.voxel_size,
        csv_convention=args.csv_convention,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print(f"imported {len(open_dataset(out))} samples to {out}")


def run_label(args) -> None:
    from tune.labelling import label_dataset  # Ray lives in tune/

    for name in ("workers", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise PvaeError(f"--{name.replace('_', '-')} {value}: need at least 1")
    open_dataset(args.dataset)  # a clear error before Ray starts
    if args.method == "surrogate":
        return run_label_surrogate(args)
    if args.model is not None or args.fallback_lbm_above is not None:
        raise PvaeError("--model and --fallback-lbm-above need --method surrogate")
    summary = label_dataset(
        args.dataset,
        lbm_settings(args),
        workers=args.workers,
        device=args.device,
        batch_size=args.batch_size,
        relabel=args.relabel,
        progress=args.progress,
    )
    print(
        f"labelled {summary['labelled']} samples by LBM ({summary['resumed']} resumed from an "
        f"interrupted run, {summary['already_labelled']} already labelled); "
        f"fingerprint {summary['fingerprint']}"
    )
    _warn_unconverged(summary)


def _warn_unconverged(summary: dict) -> None:
    """A :class:`PvaeWarning` (stderr, one line) when LBM solves hit ``--max-steps``."""
    if summary["not_converged"]:
        warnings.warn(
            f"{summary['not_converged']} samples did not converge; raise --max-steps",
            PvaeWarning,
            stacklevel=1,
        )


def run_label_surrogate(args) -> None:
    from pvae.device import resolve_device
    from pvae.surrogate import load_surrogate
    from tune.surrogate_labelling import label_with_surrogate

    if args.model is None:
        raise PvaeError("--method surrogate needs --model (a `pvae surrogate train` output)")
    model = load_surrogate(args.model, resolve_device(args.device))  # errors before any work
    summary = label_with_surrogate(
        args.dataset,
        model,
        args.fallback_lbm_above,
        lbm_settings(args),
        workers=args.workers,
        device=args.device,
        batch_size=args.batch_size,
        relabel=args.relabel,
        progress=args.progress,
    )
    fallback = args.fallback_lbm_above
    routed = "" if fallback is None else f" and {summary['lbm']} by LBM (spread > {fallback})"
    print(
        f"labelled {summary['surrogate']} samples by surrogate {summary['model']}{routed}; "
        f"{summary['already_labelled']} already labelled; fingerprint {summary['fingerprint']}"
    )
    _warn_unconverged(summary)


def run_build_default(args) -> None:
    from pvae.default_data import DEFAULT_DATASET, build_default

    if args.per_family is not None and args.per_family < 1:
        raise PvaeError(f"--per-family {args.per_family}: need at least 1")
    out = args.out or DEFAULT_DATASET
    record = build_default(out, args.workers, args.progress, args.seed, args.per_family)
    print(f"built {record['summary']['count']} samples, fingerprint {record['fingerprint']}")


def format_summary(summary: dict) -> str:
    """Human-readable ``pvae data info`` text."""
    por = summary["porosity"]
    shape = " x ".join(str(n) for n in summary["shape"])
    lines = [
        f"samples      {summary['count']}",
        f"shape        {shape} (z, y, x)",
        f"porosity     min {por['min']:.4f}  mean {por['mean']:.4f}  max {por['max']:.4f}",
        f"labelled     {summary['labelled']} with permeability"
        + (
            f" ({', '.join(f'{k}: {v}' for k, v in summary['label_sources'].items())})"
            if summary["label_sources"]
            else ""
        ),
        f"families     {', '.join(f'{k}: {v}' for k, v in summary['families'].items())}",
        f"fingerprint  {summary['fingerprint']}",
    ]
    if summary["voxel_size_m"]:
        lines.insert(2, f"voxel size   {summary['voxel_size_m']:g} m")
    return "\n".join(lines)


def run_info(args) -> None:
    summary = open_dataset(args.dataset).summary()
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary))
