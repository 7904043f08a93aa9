"""``pvae surrogate``: train the CNN permeability surrogate and predict with it."""

import warnings
from pathlib import Path

import numpy as np

from pvae.cli.options import add_fields, add_progress, from_fields, print_json
from pvae.core.atomic import check_out
from pvae.core.errors import PvaeError
from pvae.core.warnings import PvaeWarning
from pvae.data.store.layout import MANIFEST
from pvae.surrogate import SurrogateConfig, TrainSettings
from pvae.surrogate.domain import QUANTILE, no_domain_message

_SPLIT = "train/val/test fractions of each dataset's labelled samples"


def register(commands) -> None:
    """Add ``pvae surrogate`` and its sub-commands."""
    parser = commands.add_parser("surrogate", help="CNN permeability surrogate (LBM stand-in)")
    sub = parser.add_subparsers(dest="surrogate_command", metavar="ACTION", required=True)

    train = sub.add_parser("train", help="train an ensemble of 3D CNNs on LBM labels")
    train.add_argument(
        "--dataset",
        type=Path,
        action="append",
        required=True,
        help="labelled dataset (repeat for several of one image shape)",
    )
    train.add_argument("--out", type=Path, required=True, help="model file to write (.pt)")
    add_fields(train, TrainSettings, TRAIN_OPTIONS)
    channels = ",".join(map(str, SurrogateConfig().channels))
    train.add_argument("--channels", default=channels, help="CNN channels per stage")
    train.add_argument(
        "--straight-pores",
        action="store_true",
        help="also read the Poiseuille permeability of straight through-pores (channels)",
    )
    train.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda, cuda:1")
    train.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    add_progress(train)
    train.set_defaults(run=run_train)

    domain = sub.add_parser(
        "domain",
        help="fit the applicability domain of a trained model (bundles made before it existed)",
    )
    domain.add_argument("model", type=Path, help="surrogate model file, updated in place")
    domain.add_argument(
        "--dataset",
        type=Path,
        action="append",
        help="where a training dataset lives now (repeat, in training order; default: recorded)",
    )
    domain.add_argument(
        "--quantile",
        type=float,
        default=QUANTILE,
        help="share of unseen in-distribution samples to keep inside the domain",
    )
    domain.set_defaults(run=run_domain)

    predict = sub.add_parser("predict", help="permeability of an image or of a dataset's samples")
    predict.add_argument("--model", type=Path, required=True, help="surrogate model file")
    predict.add_argument("path", type=Path, help="dataset directory, image file or BMP folder")
    predict.add_argument("--json", action="store_true", help="machine-readable output")
    predict.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    predict.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda, cuda:1")
    predict.add_argument(
        "--bf16", action="store_true", help="bfloat16 network (faster; K within ~0.005 decades)"
    )
    add_progress(predict)
    predict.set_defaults(run=run_predict)


TRAIN_OPTIONS = (  # pvae surrogate train: (TrainSettings field, add_argument keywords)
    ("members", {"type": int, "help": "ensemble size (spread needs 2+)"}),
    ("epochs", {"type": int, "help": "maximum epochs per member"}),
    ("patience", {"type": int, "help": "early-stopping patience"}),
    ("batch_size", {"type": int, "help": "samples per step"}),
    ("lr", {"type": float, "help": "AdamW learning rate"}),
    ("seed", {"type": int, "help": "member m uses seed + m"}),
    ("split", {"type": float, "nargs": 3, "metavar": ("TRAIN", "VAL", "TEST"), "help": _SPLIT}),
    ("split_seed", {"type": int, "help": "seed of the split"}),
    ("max_train", {"type": int, "help": "use only this many training samples"}),
)


def _channels(text: str) -> tuple[int, ...]:
    try:
        channels = tuple(int(c) for c in text.split(","))
    except ValueError:
        channels = ()
    if not channels or min(channels) < 1:
        raise PvaeError(f"--channels {text!r}: expected positive integers like 16,32,64")
    return channels


def run_train(args) -> None:
    from pvae.surrogate import train_ensemble

    check_out(args.out, args.overwrite)
    if args.split is not None:
        args.split = tuple(args.split)
    settings = from_fields(TrainSettings, args, [n for n, _ in TRAIN_OPTIONS], device=args.device)
    config = SurrogateConfig(channels=_channels(args.channels), straight_pores=args.straight_pores)
    ensemble = train_ensemble(args.dataset, config, settings, args.progress)
    ensemble.save(args.out)
    val = ensemble.info["validation"]
    r2 = " ".join(f"{a} {v:.3f}" for a, v in val["r2_log10_k"].items())
    print(
        f"wrote {args.out}: {settings.members} members, {ensemble.info['train_samples']} "
        f"training samples; validation ({val['n']} samples) R^2 log10 K {r2}, median "
        f"relative error {val['median_rel_error']['all']:.1%}; model {ensemble.fingerprint}"
    )


def _read(path: Path, ensemble, batch_size: int, progress):
    """Sample IDs, prediction and domain distance (NaN without a domain) of a dataset
    directory or of one image."""
    from pvae.data.imaging.read import read_image, sample_id_of
    from pvae.data.store import open_dataset

    domain = ensemble.domain
    if path.is_dir() and (path / MANIFEST).exists():
        store = open_dataset(path)
        prediction = ensemble.predict_store(store, batch_size=batch_size, progress=progress)
        rows = range(len(store))
        distance = domain.store_distance(store, rows) if domain else np.full(len(rows), np.nan)
        return store.manifest["sample_id"].tolist(), prediction, distance
    image = read_image(path)
    ensemble.check_shape(image.shape, path)
    distance = domain.image_distance(image[None]) if domain else np.full(1, np.nan)
    return [sample_id_of(path)], ensemble.predict(image[None]), distance


def run_domain(args) -> None:
    from pvae.surrogate import load_surrogate
    from pvae.surrogate.domain import refit_domain

    model = load_surrogate(args.model)
    domain = refit_domain(model.info, args.dataset, args.quantile)
    model.info["domain"] = domain.to_dict()
    model.save(args.model)
    print(
        f"{args.model}: domain of {len(domain.reference)} training images, threshold "
        f"{domain.threshold:.3f} (quantile {domain.quantile} of unseen in-distribution samples)"
    )


def run_predict(args) -> None:
    from pvae.core.device import resolve_device
    from pvae.surrogate import load_surrogate

    if args.batch_size < 1:
        raise PvaeError(f"--batch-size {args.batch_size}: need at least 1")
    ensemble = load_surrogate(args.model, resolve_device(args.device), bfloat16=args.bf16)
    ids, p, distance = _read(args.path, ensemble, args.batch_size, args.progress)
    domain = ensemble.domain
    inside = distance <= domain.threshold if domain is not None else [None] * len(ids)
    if args.json:
        print_json({
            "model": ensemble.fingerprint, "units": "lattice", "convention": "superficial",
            "domain_threshold": domain.threshold if domain is not None else None,
            "samples": [
                {"sample_id": i, "porosity": float(p.porosity[n]), "permeability": p.k[n].tolist(),
                 "spread_log10": p.spread[n].tolist(), "percolating": p.percolating[n].tolist(),
                 "domain_distance": None if domain is None else float(distance[n]),
                 "in_domain": None if domain is None else bool(inside[n])}
                for n, i in enumerate(ids)
            ],
        })  # fmt: skip
    else:
        _print_table(ids, p, distance, inside, domain)
    if domain is None:
        warnings.warn(no_domain_message(args.model), PvaeWarning, stacklevel=1)
    elif not all(inside):
        warnings.warn(f"{sum(not v for v in inside)} of {len(ids)} images lie outside the "
                      f"surrogate's domain (distance > {domain.threshold:.2f}): check them "
                      "with LBM", PvaeWarning, stacklevel=1)  # fmt: skip


def _print_table(ids, p, distance, inside, domain) -> None:
    """The table of ``pvae surrogate predict``: one line per sample."""
    print(f"{'sample_id':<24} {'porosity':>8} {'k_xx':>10} {'k_yy':>10} {'k_zz':>10} {'spread':>7} "
          f"{'domain':>7} {'in_domain':>9}")  # fmt: skip
    for n, sample_id in enumerate(ids):
        kxx, kyy, kzz = (p.k[n, i, i] for i in range(3))
        verdict = "-" if domain is None else ("yes" if inside[n] else "NO")
        print(f"{sample_id:<24} {p.porosity[n]:8.4f} {kxx:10.4g} {kyy:10.4g} {kzz:10.4g} "
              f"{p.max_spread[n]:7.3f} {distance[n]:7.2f} {verdict:>9}")  # fmt: skip
