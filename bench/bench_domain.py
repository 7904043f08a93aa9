"""Does the LBM fallback catch structures a surrogate never saw? Spread vs. domain.

    python bench/bench_domain.py [--dataset data/default] [--epochs 150] [--held-out foam ...]
    python bench/bench_domain.py --model M --foreign DIR [DIR ...]

Held-out families (the first form) are a coarse difference; the second form asks the
finer question. ``--foreign`` datasets hold LBM-labelled structures near the model's
training families but unlike their samples (``make foreign-near``: the families at
parameters outside the recipe's ranges, Gaussian random fields). A sample the surrogate
gets wrong by more than 0.1 decade on its worst axis must be flagged (recall), and the
unseen in-distribution samples, the test splits of the model's training datasets, must
not (false alarms). The domain of the bundle is compared with the domain fitted the
earlier way (16 descriptors, raw distance), at the same quantile.

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
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine  # noqa: E402

from pvae.core.atomic import atomic_write_bytes, atomic_write_json  # noqa: E402
from pvae.data.microstructures.synthesize import BUILD_FAMILIES  # noqa: E402
from pvae.data.splits import make_splits  # noqa: E402
from pvae.data.store import open_dataset  # noqa: E402
from pvae.data.store.layout import VOXELS  # noqa: E402
from pvae.data.store.writer import write_dataset  # noqa: E402
from pvae.surrogate import (  # noqa: E402
    SurrogateConfig,
    TrainSettings,
    load_surrogate,
    train_ensemble,
)
from pvae.surrogate.domain import ApplicabilityDomain, refit_domain  # noqa: E402
from pvae.surrogate.labelling import FALLBACK_SPREAD  # noqa: E402


def subset(store, rows, out: Path) -> Path:
    """A dataset of some rows of ``store`` (images, manifest rows and labels as they are)."""
    voxels = np.load(Path(store.root) / VOXELS, mmap_mode="r")
    manifest = store.manifest
    with write_dataset(out, len(rows), store.shape, {"made_by": "subset"}) as writer:
        for position, row in enumerate(rows):
            writer.put_packed(position, np.asarray(voxels[row]), manifest.iloc[row].to_dict())
    return out


BAD_ERROR = 0.1  # decades: a sample the surrogate should not label


def worst_error(ensemble, store, rows) -> tuple[np.ndarray, np.ndarray]:
    """Largest |log10 K_ii - log10 K_ii(LBM)| of each sample (decades) and its spread."""
    prediction = ensemble.predict_store(store, rows)
    truth = store.labels()[rows, 1:].reshape(-1, 3, 3)
    ours, lbm = np.diagonal(prediction.k, axis1=1, axis2=2), np.diagonal(truth, axis1=1, axis2=2)
    both = (ours > 0) & (lbm > 0)
    error = np.abs(np.log10(np.where(both, ours, 1.0) / np.where(both, lbm, 1.0)))
    return np.where(both, error, 0.0).max(axis=1), prediction.max_spread


def group_stats(ensemble, store, rows) -> dict:
    """Error against LBM and what each fallback test flags, over ``rows``."""
    worst, spread = worst_error(ensemble, store, rows)
    domain = ensemble.domain
    outside = domain.store_distance(store, rows) > domain.threshold
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


def foreign_report(model: Path, folders: list[Path]) -> dict:
    """Recall on badly predicted foreign samples and false alarms on unseen ones."""
    ensemble = load_surrogate(model)
    domains = {"bundle": ensemble.domain, "earlier": earlier_domain(ensemble)}
    groups = {"in-distribution (test splits)": []}
    for record in ensemble.info["datasets"]:
        store = open_dataset(record["path"])
        test = [store.index_of(i) for i in record["test"]]
        groups["in-distribution (test splits)"].append((store, test))
    for folder in folders:
        store = open_dataset(folder)
        groups[folder.name] = [(store, np.flatnonzero(store.labelled()))]
    rows = {}
    for name, parts in groups.items():
        error, spread, flags = [], [], {k: [] for k in domains}
        for store, part in parts:
            e, sp = worst_error(ensemble, store, part)
            error.append(e)
            spread.append(sp)
            for key, domain in domains.items():
                flags[key].append(domain.store_distance(store, part) > domain.threshold)
        error, spread = np.concatenate(error), np.concatenate(spread)
        flags = {k: np.concatenate(v) for k, v in flags.items()}
        rows[name] = {"error": error, "spread": spread, **flags}
    return summarize_foreign(rows, ensemble, domains, model, folders)


def earlier_domain(ensemble) -> ApplicabilityDomain:
    """The domain as fitted before the extension: 16 descriptors, raw kNN distance."""
    return refit_domain(ensemble.info, quantile=ensemble.domain.quantile, extended=False,
                        local=False)  # fmt: skip


def summarize_foreign(rows, ensemble, domains, model, folders) -> dict:
    table = []
    for name, r in rows.items():
        bad = r["error"] > BAD_ERROR
        spread = r["spread"] > FALLBACK_SPREAD
        entry = {"group": name, "samples": int(len(bad)), "bad": int(bad.sum()),
                 "median_error": round(float(np.median(r["error"])), 3),
                 "flagged_spread": round(float(spread.mean()), 3)}  # fmt: skip
        for key in domains:
            entry[f"flagged_{key}"] = round(float(r[key].mean()), 3)
            entry[f"recall_{key}"] = round(float(r[key][bad].mean()), 3) if bad.any() else None
        table.append(entry)
    foreign = [r for name, r in rows.items() if not name.startswith("in-distribution")]
    pooled = {k: np.concatenate([r[k] for r in foreign]) for k in ("error", "spread", *domains)}
    inside = rows["in-distribution (test splits)"]
    bad = pooled["error"] > BAD_ERROR
    total = {}
    for key in domains:
        total[key] = {
            "recall": round(float(pooled[key][bad].mean()), 3),
            "recall_with_spread": round(
                float((pooled[key] | (pooled["spread"] > FALLBACK_SPREAD))[bad].mean()), 3
            ),
            "false_alarms": round(float(inside[key].mean()), 3),
            "false_alarms_with_spread": round(
                float((inside[key] | (inside["spread"] > FALLBACK_SPREAD)).mean()), 3
            ),
        }
    return {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "model": str(model),
        "model_fingerprint": ensemble.fingerprint,
        "datasets": [str(f) for f in folders],
        "foreign_samples": int(len(bad)),
        "foreign_bad": int(bad.sum()),
        "in_distribution_samples": int(len(inside["error"])),
        "bad_error": BAD_ERROR,
        "quantile": ensemble.domain.quantile,
        "thresholds": {k: round(d.threshold, 3) for k, d in domains.items()},
        "total": total,
        "groups": table,
    }


def foreign_markdown(report: dict) -> list[str]:
    t = report["total"]
    lines = [
        "## Foreign structures near the training families\n",
        f"`{report['command']}` ({report['machine']['cores']} cores, load average "
        f"{report['machine']['load_average_1min']:.1f} at the end). Surrogate "
        f"`{report['model']}` ({report['model_fingerprint']}). "
        f"{report['foreign_samples']} LBM-labelled foreign samples, {report['foreign_bad']} of "
        f"them predicted with an error above {report['bad_error']} decade on their worst axis; "
        f"{report['in_distribution_samples']} unseen in-distribution samples (the test splits "
        "of the surrogate's training datasets). Domain: the bundle's (30 descriptors, local "
        "outlier factor) and the earlier one (16 descriptors, raw distance), both at the "
        f"quantile {report['quantile']} of unseen in-distribution distances.\n",
        "| domain | recall on bad foreign | false alarms | recall, domain or spread | "
        "false alarms, domain or spread |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {key} | {v['recall']:.1%} | {v['false_alarms']:.1%} | "
            f"{v['recall_with_spread']:.1%} | {v['false_alarms_with_spread']:.1%} |"
            for key, v in t.items()
        ],
        "",
        "| group | samples | error > 0.1 | median error | flagged (bundle) | recall (bundle) | "
        "flagged (earlier) | recall (earlier) | flagged by spread |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for g in report["groups"]:
        recall = {k: "-" if g[f"recall_{k}"] is None else f"{g[f'recall_{k}']:.0%}"
                  for k in ("bundle", "earlier")}  # fmt: skip
        lines.append(
            f"| {g['group']} | {g['samples']} | {g['bad']} | {g['median_error']} | "
            f"{g['flagged_bundle']:.0%} | {recall['bundle']} | {g['flagged_earlier']:.0%} | "
            f"{recall['earlier']} | {g['flagged_spread']:.0%} |"
        )
    return lines


def held_out_families(args) -> dict:
    """Train one ensemble per held-out family and compare the fallback tests."""
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
    return {"command": " ".join(["python", *sys.argv]), "machine": machine(),
            "dataset": str(args.dataset), "fingerprint": store.fingerprint,
            "fallback_spread": FALLBACK_SPREAD, "epochs": args.epochs, "rows": rows}  # fmt: skip


def held_out_markdown(report: dict) -> list[str]:
    lines = [
        "## A held-out family\n",
        f"`{report['command']}` ({report['machine']['cores']} cores, load average "
        f"{report['machine']['load_average_1min']:.1f} at the end). Each ensemble (3 members, "
        f"{report.get('epochs', 150)} epochs max) is trained on {report['dataset']}'s "
        "LBM-labelled samples of the other two families; errors are the largest "
        "|log10 K_ii - log10 K_ii(LBM)| of a sample (decades). Fallback tests: spread > "
        f"{report['fallback_spread']} decade, or outside the domain.\n",
        "| held out | samples | median error | p90 error | median spread | flagged by spread "
        "| by domain | by either | median error of the rest |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        for group in ("foreign", "in_distribution_test"):
            g = row[group]
            name = f"{row['held_out']}" if group == "foreign" else "(trained families, test)"
            lines.append(
                f"| {name} | {g['samples']} | {g['median_error']} | {g['p90_error']} "
                f"| {g['median_spread']} | {g['share_spread']:.0%} | {g['share_domain']:.0%} "
                f"| {g['share_either']:.0%} | {g['median_error_kept']} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("data/default"))
    parser.add_argument(
        "--held-out", nargs="+", default=list(BUILD_FAMILIES), choices=BUILD_FAMILIES
    )
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--patience", type=int, default=40)
    parser.add_argument("--model", type=Path, default=Path("data/default/surrogate.pt"))
    parser.add_argument(
        "--foreign", type=Path, nargs="+", help="LBM-labelled foreign datasets (second form)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    path = args.out / "domain.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    if "rows" in report:  # the held-out-family report of before, kept as its section
        report = {"held_out": report}
    if args.foreign:
        report["foreign"] = foreign_report(args.model, args.foreign)
    else:
        report["held_out"] = held_out_families(args)
    lines = ["# Surrogate fallback: spread vs. applicability domain\n"]
    if "foreign" in report:
        lines += foreign_markdown(report["foreign"]) + [""]
    if "held_out" in report:
        lines += held_out_markdown(report["held_out"])
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, report)
    atomic_write_bytes(args.out / "domain.md", markdown.encode())


if __name__ == "__main__":
    main()
