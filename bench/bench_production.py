"""The production study's figures: what it cost, what ASHA saved, what it chose, and how
the exported model designs on held-out targets against the no-model baselines.

    python bench/bench_production.py --study runs/production-cpu \
        --heldout bench/results/inverse-heldout-production.json --load-at-start 0.0 \
        [--name production_cpu]

Reads the finished study (``analysis.load_study``), the trial ``pvae export`` exports
(``analysis.choose`` with the LBM check of the finalists kept in the study folder) and the
held-out inverse-design result of the exported model (``bench/bench_inverse.py``); it runs
nothing itself (``make production-model`` and ``make bench-inverse-heldout-production``
do). ASHA's saving is counted in trial-epochs: what the study trained against every trial
trained to the full budget. The held-out bar is the generator issue's: success over both
target sets >= 95% and >= the best no-model baseline. Writes ``results/NAME.{json,md}``.
"""

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from machine import machine, write_results  # noqa: E402

from analysis.report import markdown_table  # noqa: E402
from analysis.selection import choose  # noqa: E402
from analysis.study import Study, load_study  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BASELINES = {  # key in bench_inverse's sets -> label
    "baseline": "nearest training sample",
    "rotated_baseline": "nearest sample, any axis order",
    "nearest_porosity": "nearest (any axis order), porosity set by signed distance",
    "splice": "slab splice of the nearest, porosity set, searched by LBM",
    "blur": "directional blur of the nearest, porosity set, searched by LBM",
}
SHOWN = ["trial_id", "status", "epochs", "best_val_objective", "best_val_r2_mean",
         "best_val_dice", "best_val_fidelity_success", "best_val_realism",
         "best_val_coverage", "best_val_design_success"]  # fmt: skip
BAR = 0.95


def study_figures(study: Study) -> dict:
    """Wall time, trial counts and ASHA's saving of a finished study."""
    record, trials = study.record, study.trials
    started, finished = (datetime.fromisoformat(record[k]) for k in ("started_at", "finished_at"))
    full = int(record["study"]["max_t"])
    epochs = int(trials["epochs"].sum())
    stopped = trials[trials["status"] == "stopped_early"]
    return {
        "study": str(study.root),
        "status": record["status"],
        "git_commit": record["code"]["git_commit"],
        "hardware": record["hardware"],
        "wall_minutes": (finished - started).total_seconds() / 60,
        "trial_minutes": float(trials["wall_time_s"].sum()) / 60,
        "trials": len(trials),
        "by_status": trials["status"].value_counts().to_dict(),
        "stopped_at": {int(k): int(v) for k, v in stopped["epochs"].value_counts().items()},
        "full_budget_epochs": full,
        "trial_epochs": epochs,
        "asha_saving": 1 - epochs / (full * len(trials)),
        "leaderboard": trials.sort_values("best_val_objective")[
            [c for c in SHOWN if c in trials]].to_dict("records"),
    }  # fmt: skip


def choice_figures(study: Study) -> dict:
    """The trial ``pvae export`` exports, with its reason and the LBM check of the
    finalists."""
    choice = choose(study.trials, finalists=study.finalists)
    checked = [] if study.finalists is None else study.finalists.to_dict("records")
    return {"trial_id": choice.trial_id, "reason": choice.reason, "finalists": checked}


def heldout_figures(path: Path) -> dict:
    """Success over the held-out target sets, the model's and each baseline's."""
    result = json.loads(path.read_text())
    sets = result["sets"]
    targets = sum(s["targets"] for s in sets.values())

    def rate(key: str) -> float:
        return sum(s[f"{key}_rate"] * s["targets"] for s in sets.values()) / targets

    measured = [k for k in BASELINES if f"{k}_success_rate" in sets["samples"]]
    baselines = {k: rate(f"{k}_success") for k in measured}
    best = max(baselines, key=baselines.get)
    success = rate("success")
    return {
        "file": str(path),
        "command": result["command"],
        "machine": result["machine"],
        "model": result["model"],
        "targets": targets,
        "success_rate": success,
        "baselines": baselines,
        "best_baseline": best,
        "meets_bar": success >= BAR and success >= baselines[best],
        "sets": {k: {"targets": s["targets"], "success_rate": s["success_rate"]}
                 for k, s in sets.items()},
    }  # fmt: skip


def markdown(r: dict) -> str:
    """The result as a Markdown page."""
    s, c, h = r["study"], r["choice"], r["heldout"]
    status = ", ".join(f"{n} {k}" for k, n in s["by_status"].items())
    rungs = ", ".join(f"{n} at epoch {e}" for e, n in sorted(s["stopped_at"].items()))
    board = markdown_table(pd.DataFrame(s["leaderboard"]))
    check = markdown_table(pd.DataFrame(c["finalists"]))
    rows = [f"| pvae inverse (model `{h['model']}`) | {h['success_rate']:.1%} |"] + [
        f"| {BASELINES[k]} | {v:.1%} |" for k, v in h["baselines"].items()
    ]
    verdict = "meets" if h["meets_bar"] else "misses"
    sets = ", ".join(f"{k} ({v['targets']})" for k, v in h["sets"].items())
    return "\n".join([
        f"# Production study: {Path(s['study']).name}\n",
        f"`{r['command']}`; study at commit {s['git_commit'][:7]}, load average "
        f"{r['load_at_start']} at its start ({s['hardware'].get('device')}, "
        f"{s['hardware']['cluster'].get('CPU', 0):.0f} CPUs).\n",
        "## Cost and ASHA\n",
        f"- Wall time {s['wall_minutes']:.1f} min; the trials' own time summed "
        f"{s['trial_minutes']:.1f} min.",
        f"- {s['trials']} trials: {status}; stopped by ASHA: {rungs}.",
        f"- {s['trial_epochs']} trial-epochs of {s['trials'] * s['full_budget_epochs']} had "
        f"every trial trained the full {s['full_budget_epochs']} epochs: ASHA saved "
        f"{s['asha_saving']:.0%}.\n",
        "## Leaderboard (best epoch of each trial)\n",
        board,
        "## The choice\n",
        c["reason"] + "\n",
        check,
        "## Held-out design success of the exported model\n",
        f"`{h['command']}` ({h['machine']['cores']} cores, load average "
        f"{h['machine']['load_average_1min']:.1f} at the start); {h['targets']} targets of "
        f"{sets}, none seen in "
        "training. Baselines searched by LBM spend at most the model's LBM budget.\n",
        "| method | success, all targets |",
        "|---|---:|",
        *rows,
        "",
        f"The model {verdict} the bar: success >= {BAR:.0%} and >= the best no-model "
        f"baseline ({BASELINES[h['best_baseline']]}, {h['baselines'][h['best_baseline']]:.1%}).",
        "",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=Path("runs/production-cpu"))
    parser.add_argument("--heldout", type=Path,
                        default=RESULTS / "inverse-heldout-production.json")  # fmt: skip
    parser.add_argument("--load-at-start", type=float, required=True,
                        help="the 1-min load average when the study started (the study "
                             "records none)")  # fmt: skip
    parser.add_argument("--name", default="production_cpu")
    args = parser.parse_args()
    for path in (args.study / "study.json", args.heldout):
        if not path.is_file():
            sys.exit(f"error: {path}: missing (run make production-model and "
                     "make bench-inverse-heldout-production first)")  # fmt: skip
    study = load_study(args.study)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "load_at_start": args.load_at_start,
        "machine": {**machine(), "load_average_1min": args.load_at_start},
        "study": study_figures(study),
        "choice": choice_figures(study),
        "heldout": heldout_figures(args.heldout),
    }
    write_results(RESULTS, args.name, result, markdown(result))


if __name__ == "__main__":
    main()
