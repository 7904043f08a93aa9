"""Does the LBM fallback catch structures a surrogate never saw? Spread vs. domain.

    python bench/bench_domain.py [--dataset data/default] [--epochs 150] [--held-out foam ...]

For each held-out family, a 3-member surrogate ensemble is trained on the LBM-labelled
samples of the other families only (their train split; validation split for early
stopping and the domain's calibration). It then predicts

- the held-out family's samples (all of them: foreign structures), and
- the test split of the families it was trained on (unseen, in distribution),

and the table compares its error against LBM with the two fallback tests of
``pvae data build``: ensemble spread above 0.1 decade, and a distance outside the
applicability domain (:mod:`pvae.surrogate.domain`). Writes bench/results/domain.json
and domain.md.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402

from pvae.core.atomic import atomic_write_bytes, atomic_write_json  # noqa: E402
from pvae.data.descriptors import store_descriptors  # noqa: E402
from pvae.data.microstructures.synthesize import BUILD_FAMILIES  # noqa: E402
from pvae.data.splits import make_splits  # noqa: E402
from pvae.data.store import open_dataset  # noqa: E402
from pvae.data.store.layout import VOXELS  # noqa: E402
from pvae.data.store.writer import write_dataset  # noqa: E402
from pvae.surrogate import SurrogateConfig, TrainSettings, train_ensemble  # noqa: E402
from pvae.surrogate.labelling import FALLBACK_SPREAD  # noqa: E402


def subset(store, rows, out: Path) -> Path:
    """A dataset of some rows of ``store`` (images, manifest rows and labels as they are)."""
    voxels = np.load(Path(store.root) / VOXELS, mmap_mode="r")
    manifest = store.manifest
    with write_dataset(out, len(rows), store.shape, {"made_by": "subset"}) as writer:
        for position, row in enumerate(rows):
            writer.put_packed(position, np.asarray(voxels[row]), manifest.iloc[row].to_dict())
    return out


def group_stats(ensemble, store, rows) -> dict:
    """Error against LBM and what each fallback test flags, over ``rows``."""
    prediction = ensemble.predict_store(store, rows)
    truth = store.labels()[rows, 1:].reshape(-1, 3, 3)
    ours, lbm = np.diagonal(prediction.k, axis1=1, axis2=2), np.diagonal(truth, axis1=1, axis2=2)
    both = (ours > 0) & (lbm > 0)
    error = np.abs(np.log10(np.where(both, ours, 1.0) / np.where(both, lbm, 1.0)))
    worst = np.where(both, error, np.nan).max(axis=1, initial=0.0, where=both)  # decades
    spread = prediction.max_spread
    domain = ensemble.domain
    outside = domain.distance(store_descriptors(store, rows)) > domain.threshold
    uncertain = spread > FALLBACK_SPREAD
    kept = ~(outside | uncertain)
    return {
        "samples": len(rows),
        "median_error": round(float(np.nanmedian(worst)), 3),
        "p90_error": round(float(np.nanquantile(worst, 0.9)), 3),
        "median_spread": round(float(np.median(spread)), 3),
        "share_spread": round(float(uncertain.mean()), 3),
        "share_domain": round(float(outside.mean()), 3),
        "share_either": round(float((outside | uncertain).mean()), 3),
        "median_error_kept": round(float(np.nanmedian(worst[kept])), 3) if kept.any() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("data/default"))
    parser.add_argument(
        "--held-out", nargs="+", default=list(BUILD_FAMILIES), choices=BUILD_FAMILIES
    )
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--patience", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    store = open_dataset(args.dataset)
    family = store.manifest["family"].to_numpy()
    rows = []
    for held in args.held_out:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            kept = np.flatnonzero(family != held)
            train_set = open_dataset(subset(store, kept, Path(folder) / "train"))
            settings = TrainSettings(epochs=args.epochs, patience=args.patience, device="cpu")
            ensemble = train_ensemble([train_set], SurrogateConfig(channels=(8, 16, 32)), settings)
            test = kept[make_splits(len(kept), settings.split, settings.split_seed)["test"]]
            result = {
                "held_out": held,
                "foreign": group_stats(ensemble, store, np.flatnonzero(family == held)),
                "in_distribution_test": group_stats(ensemble, store, test),
                "domain_threshold": round(ensemble.domain.threshold, 3),
                "seconds": round(time.perf_counter() - start, 1),
            }
        rows.append(result)
        print(result, flush=True)
    report = {"command": " ".join(["python", *sys.argv]), "machine": machine(),
              "dataset": str(args.dataset), "fingerprint": store.fingerprint,
              "fallback_spread": FALLBACK_SPREAD, "rows": rows}  # fmt: skip
    lines = [
        "# Surrogate fallback on a held-out family: spread vs. applicability domain\n",
        f"`{report['command']}` ({machine()['cores']} cores, load average "
        f"{report['machine']['load_average_1min']:.1f} at the end). Each ensemble (3 members, "
        f"{args.epochs} epochs max) is trained on {args.dataset}'s LBM-labelled samples of the "
        "other two families; errors are the largest |log10 K_ii - log10 K_ii(LBM)| of a sample "
        f"(decades). Fallback tests: spread > {FALLBACK_SPREAD} decade, or outside the domain.\n",
        "| held out | samples | median error | p90 error | median spread | flagged by spread "
        "| by domain | by either | median error of the rest |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for group in ("foreign", "in_distribution_test"):
            g = row[group]
            name = f"{row['held_out']}" if group == "foreign" else "(trained families, test)"
            lines.append(
                f"| {name} | {g['samples']} | {g['median_error']} | {g['p90_error']} "
                f"| {g['median_spread']} | {g['share_spread']:.0%} | {g['share_domain']:.0%} "
                f"| {g['share_either']:.0%} | {g['median_error_kept']} |"
            )
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "domain.json", report)
    atomic_write_bytes(args.out / "domain.md", markdown.encode())


if __name__ == "__main__":
    main()
