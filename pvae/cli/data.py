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
from pvae.core.errors import PvaeError
from pvae.core.warnings import PvaeWarning
from pvae.data.microstructures import FAMILIES, family_options, synthesize
from pvae.data.microstructures.synthesize import BUILD_FAMILIES, parse_param
from pvae.data.store import open_dataset
from pvae.data.store.export import EXPORT_FORMATS, export_samples
from pvae.data.store.importer import import_dataset
from pvae.data.store.property_table import CONVENTIONS
from pvae.surrogate.domain import no_domain_message
from pvae.surrogate.labelling import CHECK_FRACTION, FALLBACK_SPREAD


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

    large = sub.add_parser(
        "build",
        help="a large mixed-family dataset labelled by a surrogate, LBM where it is unsure",
        description="Synthesize COUNT samples of the families in equal shares, label them "
        "with a surrogate ensemble, send samples it is unsure of (spread) or that are unlike "
        "its training images (applicability domain) to LBM, and check a random share of the "
        "surrogate labels against LBM. Resumable: rerun the same command after an interruption.",
    )
    large.add_argument("--count", type=int, required=True, help="samples in all")
    large.add_argument("--size", default="32", help="S (cube) or ZxYxX: the surrogate's shape")
    large.add_argument("--seed", type=int, default=0, help="synthesis seed")
    large.add_argument(
        "--families", default=",".join(BUILD_FAMILIES), help="comma-separated, in equal shares"
    )
    large.add_argument("--surrogate", type=Path, required=True, help="surrogate model file")
    large.add_argument(
        "--fallback-spread",
        type=float,
        default=FALLBACK_SPREAD,
        metavar="SIGMA",
        help="LBM for samples whose ensemble spread of log10 K is above SIGMA decades",
    )
    large.add_argument(
        "--check-fraction",
        type=float,
        default=CHECK_FRACTION,
        help="share of surrogate labels also solved by LBM to measure their error",
    )
    large.add_argument("--out", type=Path, required=True, help="dataset directory")
    large.add_argument("--workers", type=int, help="LBM tasks at once (default: CPUs)")
    large.add_argument("--overwrite", action="store_true", help="replace another dataset at --out")
    large.add_argument("--json", action="store_true", help="print the build report as JSON")
    add_lbm(large)
    add_progress(large)
    large.set_defaults(run=run_build)

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

    export = sub.add_parser(
        "export",
        help="write samples as image files: .vti (ParaView), .tif or .npy",
        description="One file per sample, named <sample id>.<format>, in a new folder. "
        "vti: VTK ImageData with the cell array 'pore' (1 = pore), spacing = voxel size in "
        "metres when the dataset knows it (else 1), porosity and permeability (when "
        "labelled) as FieldData; tif: multi-page, pore = 255, pages along z; npy: bool "
        "(Z, Y, X), True = pore.",
    )
    export.add_argument("dataset", type=Path)
    export.add_argument(
        "--ids",
        nargs="+",
        action="extend",
        metavar="ID",
        help="sample IDs to export (default: all samples)",
    )
    export.add_argument("--format", choices=EXPORT_FORMATS, default="vti", help="file format")
    export.add_argument("--out", type=Path, required=True, help="new folder for the files")
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    add_progress(export)
    export.set_defaults(run=run_export)

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
    from pvae.core.device import resolve_device
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
    routed = (
        f" and {summary['lbm']} by LBM ({summary['uncertain']} with spread > "
        f"{args.fallback_lbm_above}, {summary['outside_domain']} outside its domain)"
    )
    print(
        f"labelled {summary['surrogate']} samples by surrogate {summary['model']}{routed}; "
        f"{summary['already_labelled']} already labelled; fingerprint {summary['fingerprint']}"
    )
    if not summary["domain_checked"]:
        warnings.warn(no_domain_message(args.model), PvaeWarning, stacklevel=1)
    _warn_unconverged(summary)


def run_build(args) -> None:
    from pvae.core.device import resolve_device
    from pvae.surrogate import load_surrogate
    from tune.dataset_build import build_dataset

    if args.workers is not None and args.workers < 1:
        raise PvaeError(f"--workers {args.workers}: need at least 1")
    if not args.fallback_spread >= 0:
        raise PvaeError(f"--fallback-spread {args.fallback_spread}: need a spread >= 0 (decades)")
    model = load_surrogate(args.surrogate, resolve_device(args.device))
    report = build_dataset(
        args.out,
        args.count,
        args.size,
        args.seed,
        model,
        families=[f.strip() for f in args.families.split(",")],
        fallback_spread=args.fallback_spread,
        check_fraction=args.check_fraction,
        settings=lbm_settings(args),
        workers=args.workers,
        device=args.device,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    if args.json:
        return print_json(report)
    print(format_build(report, args.out))


def format_build(report: dict, out) -> str:
    """Human-readable summary of a :func:`tune.dataset_build.build_dataset` report."""
    sources, label = report["label_sources"], report["stages"]["label"]
    lines = [
        f"built {sum(sources.values())} samples in {out}: {report['wall_s']:.0f} s, "
        f"{report['samples_per_s']:.1f} samples/s",
        f"labels       {', '.join(f'{k}: {v}' for k, v in sources.items())} "
        f"(LBM share {100 * report['lbm_share']:.1f}%: {label['uncertain']} uncertain, "
        f"{label['outside_domain']} outside the surrogate's domain)",
    ]
    check, seconds = report["check"], report["stages"].get("check", {}).get("wall_s", 0)
    if check and check["samples"]:
        lines.append(
            f"LBM check    {check['samples']} samples: |log10 K error| median "
            f"{check['median_abs_log10_error']}, 90th percentile {check['p90_abs_log10_error']}, "
            f"max {check['max_abs_log10_error']} decades ({seconds:.0f} s)"
        )
    lines.append(f"fingerprint  {report['fingerprint']}")
    return "\n".join(lines)


def run_build_default(args) -> None:
    from pvae.data.default_data import DEFAULT_DATASET
    from tune.dataset_build import build_default

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


def run_export(args) -> None:
    store = open_dataset(args.dataset)
    files = export_samples(
        store, args.out, args.format, args.ids, overwrite=args.overwrite, progress=args.progress
    )
    print(f"wrote {len(files)} .{args.format} files to {args.out}")


def run_info(args) -> None:
    summary = open_dataset(args.dataset).summary()
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary))
