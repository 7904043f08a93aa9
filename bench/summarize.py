"""Write bench/README.md: one table of every benchmark's latest figures.

    python bench/summarize.py

Reads bench/results/*.json (each written by its benchmark with the command and the
machine) and lists the headline figures; the per-benchmark Markdown files beside them
hold the details.
"""

import json
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).parent / "results"


def _lbm(d):
    rows = []
    for r in d["rows"]:
        rows.append(
            (
                f"LBM {r['case']}, {r['kernel']}",
                f"{r['mlups']:.1f} MLUPS "
                f"({r['fraction_of_roofline']:.0%} of {r['roofline_mlups']:.0f} roofline"
                + (f"; fluid nodes {r['fluid_mlups']:.1f}" if "fluid_mlups" in r else "")
                + ")",
            )
        )
    frame = pd.DataFrame(d.get("time_to_tensor", []))
    for size, part in frame.groupby("size") if len(frame) else ():
        ours = part["default_s"].median()
        text = f"median {ours:.1f} s ({len(part)} images)"
        if "lbmpy_s" in part:
            lbmpy = part["lbmpy_s"].median()
            text += (f"; lbmpy, same steps, {lbmpy:.1f} s ({lbmpy / ours:.1f}x ours) plus "
                     f"{part['lbmpy_setup_s'].median():.0f} s of code generation")  # fmt: skip
        rows.append((f"LBM permeability tensor at {size}^3, default settings", text))
    return rows


def _data(d):
    rows = [
        (
            f"synthesis {k} at {d['size']}^3",
            f"{v['samples_per_s']:.0f} samples/s ({v['samples']} in {v['seconds']:.1f} s)",
        )
        for k, v in d["generation"].items()
    ]
    rows += [
        (f"random-access read, {k}", f"{v['samples_per_s']:.0f} samples/s")
        for k, v in d["reading"].items()
    ]
    return rows


def _train(d):
    rows = []
    for s in d.get("speed", []):
        fp32 = next(r for r in s["rows"] if r["variant"] == "float32")
        best = max(
            (r for r in s["rows"] if "failed" not in r), key=lambda r: r["ours_samples_per_s"]
        )
        rows.append((
            f"training speed vs. research-code network at {s['side']}^3 (batch "
            f"{s['batch_size']})",
            f"float32 {fp32['ours_samples_per_s']:.1f} vs {fp32['reference_samples_per_s']:.1f} "
            f"samples/s ({fp32['ours_samples_per_s'] / fp32['reference_samples_per_s']:.1f}x); "
            f"ours with {best['variant']} {best['ours_samples_per_s']:.1f} samples/s "
            f"({best['ours_samples_per_s'] / fp32['reference_samples_per_s']:.1f}x the reference "
            "in float32)",
        ))  # fmt: skip
    for name, a in d.get("accuracy", {}).items():
        r2 = ", ".join(f"{k} {v:.3f}" for k, v in a["test"]["r2"].items() if v is not None)
        rows.append((
            f"test accuracy, {name} ({a['config']['train']['epochs']} epochs, "
            f"{a['dataset_size']} samples)",
            f"R^2 {r2}; recon porosity MAE {a['test']['porosity_mae']:.4f}",
        ))  # fmt: skip
    return rows


def _asha(d):
    return [
        (
            "ASHA vs FIFO (same trials and seed)",
            f"{d['compute_ratio']:.1f}x fewer trial-epochs ({d['asha']['trial_epochs']} vs "
            f"{d['fifo']['trial_epochs']}), best metric {d['best_gap']:+.2%}",
        )
    ]


SOLVES = "_lbm_solves_per_target"  # each LBM-searched baseline reports its solves


def _inverse(d):
    def searched(s):
        kinds = [key.removesuffix(SOLVES) for key in s if key.endswith(SOLVES) and key != SOLVES]
        found = [f"{k} {s[f'{k}_success_rate']:.0%}" for k in kinds]
        return f" (LBM-searched baselines: {', '.join(found)})" if found else ""

    kind = "" if d.get("name", "inverse") == "inverse" else f", {d['name']}"
    return [
        (
            f"inverse design, {s['targets']} unseen targets ({name}{kind})",
            f"{s['success_rate']:.0%} verified success vs {s['baseline_success_rate']:.0%} "
            f"nearest-training-sample baseline{searched(s)}; median novelty "
            f"{s['median_novelty']:.2f}; {s['seconds_per_target']:.1f} s and "
            f"{s['lbm_solves_per_target']:.1f} LBM solves per target",
        )
        for name, s in d["sets"].items()
    ]


def _surrogate(d):
    a, t = d["accuracy"], d["throughput"]
    r2 = " / ".join(f"{a['r2_log10_k'][k]:.3f}" for k in "xyz")
    return [
        (
            f"CNN surrogate, {d['training']['train_samples']} training samples, {a['n']} held out",
            f"R^2 log10 K x/y/z {r2}; median relative error {a['median_rel_error']['all']:.1%}; "
            f"error-spread Spearman {a['calibration']['spearman']:.2f}",
        ),
        (
            "surrogate (steady state) vs LBM throughput (same samples, one core)",
            f"{t['surrogate_samples_per_s']:.1f} vs {t['lbm_samples_per_s']:.2f} samples/s "
            f"({t['speedup']:.0f}x)"
            + (
                f"; bfloat16 network {t['surrogate_bf16_samples_per_s']:.1f} samples/s "
                f"({t['speedup_bf16']:.0f}x)"
                if "speedup_bf16" in t
                else ""
            ),
        ),
    ]


def _fidelity(d):
    def figure(row):
        test, fid = row["test"], row["test"]["fidelity"]
        return (
            f"Dice {test['dice']:.3f}; decoded structures within tolerance (LBM, "
            f"{fid['n_samples']} test samples) {fid['within_tolerance']:.0%}; R^2 mean "
            f"{sum(test['r2'].values()) / len(test['r2']):.3f}; {row['train_seconds']:.0f} s"
        )

    runs = len(d.get("runs", [])) > 1  # merged runs: each row names its own (fidelity.md)
    rows = [
        (f"generator fidelity, {name} ({d['epochs']} epochs)"
         + (f", run {row.get('run', 0) + 1} of fidelity.md" if runs else ""), figure(row))
        for name, row in d.get("variants", {}).items()
    ]  # fmt: skip
    if "recipe" in d:
        recipe = d["recipe"]
        rows.append(
            (f"design recipe bench/design.yaml ({recipe['epochs']} epochs)", figure(recipe))
        )
    return rows


def _generation(d):
    rows = []
    for kind, row in d["priors"].items():
        cond = row.get("conditional") or {}
        share = cond.get("success_share")
        rows.append((
            f"generation, {kind} prior of {d['model']} ({row['n_samples']} draws)",
            f"realism {row['realism']:.0%}, coverage {row['coverage']:.0%}"
            + ("" if share is None else f"; conditioned draws within tolerance (critic) "
               f"{share:.0%}"),
        ))  # fmt: skip
    return rows


def _dataset_build(d):
    label, check = d["stages"]["label"], d["check"]
    return [(
        f"surrogate-labelled dataset build, {sum(d['label_sources'].values())} samples at "
        f"{'x'.join(map(str, d['recipe']['shape']))}",
        f"{d['wall_s']:.0f} s ({d['samples_per_s']:.1f} samples/s); {d['lbm_share']:.1%} to LBM "
        f"({label['uncertain']} uncertain, {label['outside_domain']} outside the domain); LBM "
        f"check of {check['samples']} surrogate labels: median |log10 K error| "
        f"{check['median_abs_log10_error']}, 90th percentile "
        f"{check['p90_abs_log10_error']} decades",
    )]  # fmt: skip


def _domain(d):
    """Rows of bench_domain.py: (label, figure, the nested run they come from)."""
    rows = []
    foreign = d.get("foreign")
    if foreign:  # bench_domain.py --foreign: recall on structures near the families
        total = foreign["total"]["bundle"]
        rows.append((
            f"applicability domain on {foreign['foreign_samples']} foreign structures "
            f"({foreign['foreign_bad']} with surrogate error > {foreign['bad_error']} decade)",
            f"recall {total['recall']:.1%}; false alarms on "
            f"{foreign['in_distribution_samples']} unseen in-distribution samples "
            f"{total['false_alarms']:.1%}", foreign,
        ))  # fmt: skip
    held_out = d.get("held_out", d)
    for r in held_out.get("rows", []):
        f, t = r["foreign"], r["in_distribution_test"]
        rows.append((
            f"LBM fallback on a held-out family ({r['held_out']}, {f['samples']} samples)",
            f"median error {f['median_error']} decades; flagged by spread {f['share_spread']:.0%}, "
            f"by the domain {f['share_domain']:.0%}; false alarms on unseen in-distribution "
            f"samples: spread {t['share_spread']:.0%}, domain {t['share_domain']:.0%}", held_out,
        ))  # fmt: skip
    return rows


def _dataset_size(d):
    def need(f):
        n = f["n_for_target"]
        never = n is None or n == float("inf")
        flag = " (extrapolated)" if f.get("extrapolated") and not never else ""
        n = "never" if never else f"{n:,.0f}"
        return f"latent {f['latent_dim']} {n}{flag}"

    fits = [f for f in d["fits"] if "target" in f]
    parts = []
    for metric in ("fidelity_success", "design_success", "realism", "r2_log10_k_xx"):
        chosen = [f for f in fits if f["metric"] == metric]
        if chosen:
            parts.append(f"{metric} >= {chosen[0]['target']}: " + ", ".join(map(need, chosen)))
    return [(
        f"dataset-size study `{Path(d['experiment']['file']).stem}`, {len(d['trials'])} trials "
        "(test split)",
        "samples needed for " + "; ".join(parts),
    )]  # fmt: skip


def _gpu(d):
    best = max(d["lbm"], key=lambda r: r["mlups"]) if d["lbm"] else None
    train = {(r["size"], r["bf16"]): r["samples_per_s"] for r in d["training"]}
    return [(
        "GPU: LBM and pVAE training",
        (f"LBM {best['size']}^3 {best['mlups']:.0f} MLUPS ({best['fraction_of_roofline']:.0%} of "
         f"roofline); " if best else "")
        + "; ".join(f"pVAE {s}^3 {'bf16' if b else 'fp32'} {v:.0f} samples/s"
                    for (s, b), v in train.items()),
    )]  # fmt: skip


def _production(d):
    s, h = d["study"], d["heldout"]
    best = h["best_baseline"]
    return [
        (
            "production study on data/default (ASHA + Optuna)",
            f"{s['wall_minutes']:.0f} min, {s['trials']} trials, ASHA saved "
            f"{s['asha_saving']:.0%} of trial-epochs; chose trial {d['choice']['trial_id']}",
        ),
        (
            f"production model, inverse design on {h['targets']} held-out targets",
            f"{h['success_rate']:.0%} verified success vs {h['baselines'][best]:.0%} for the "
            f"best no-model baseline ({best})",
            h,
        ),
    ]


def _render(d):
    times = ", ".join(f"{r['way']} {r['seconds_per_view']:.2f} s" for r in d["results"])
    return [("3D view of a 32^3 foam, headless (s per view)", times)]


EXTRACTORS = {
    "lbm": _lbm,
    "data": _data,
    "train": _train,
    "asha": _asha,
    "inverse": _inverse,
    "inverse-foreign": _inverse,
    "inverse-heldout": _inverse,
    "inverse-heldout-production": _inverse,
    "inverse-64": _inverse,
    "inverse-64-midpoints": _inverse,
    "inverse-64-heldout": _inverse,
    "production_cpu": _production,
    "surrogate": _surrogate,
    "fidelity": _fidelity,
    "generation": _generation,
    "dataset_build": _dataset_build,
    "dataset_build_64": _dataset_build,
    "domain": _domain,
    "dataset_size": _dataset_size,
    "dataset_size_flat": _dataset_size,
    "gpu": _gpu,
    "render": _render,
}


def _where(run: dict) -> str:
    """The machine a run was measured on, with its load."""
    machine = run.get("machine", {})
    where = f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores"
    if machine.get("gpu"):
        where += f", {machine['gpu']}"
    if machine.get("load_average_1min"):
        where += f", load {machine['load_average_1min']:.1f}"
    return where


def main() -> None:
    lines = [
        "# Benchmarks\n",
        "Latest figures of every benchmark; details in `results/<name>.md`, raw "
        "numbers in `results/<name>.json`. Ratios are measured within one run (ours vs. a "
        "baseline on the same machine), since these machines are shared.\n",
        "| benchmark | figure | command | machine |",
        "|---|---|---|---|",
    ]
    for name, extract in EXTRACTORS.items():
        path = RESULTS / f"{name}.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        for label, figure, *source in extract(data):
            run = source[0] if source else data  # a row may come from a nested run
            lines.append(f"| {label} | {figure} | `{run.get('command', '?')}` | {_where(run)} |")
    (Path(__file__).parent / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
