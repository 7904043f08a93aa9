"""Learning-curve fits of a dataset-size study: known curves come back, with intervals."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis.learning_curve import fit_curve, learning_curves, sentence, size_for

SIZES = [125, 250, 500, 1000, 2000]


def synthetic_trials(rng, a=3.0, b=0.6, c=0.01, noise=0.002, seeds=3) -> pd.DataFrame:
    """R^2 = 1 - (a N^-b + c) + noise per seed, for latent sizes 8 and 16 (16: half the a)."""
    rows = []
    for latent, scale in ((8, 1.0), (16, 0.5)):
        for n in SIZES:
            for seed in range(seeds):
                error = scale * a * n**-b + c + rng.normal(0, noise)
                rows.append({"trial_id": f"{latent}-{n}-{seed}", "status": "completed",
                             "dataset_size": n, "model.latent_dim": latent,
                             "best_val_r2_log10_k_xx": 1 - error,
                             "best_val_recon": 0.1 + 2 * n**-0.5})  # fmt: skip
    rows.append({"trial_id": "x", "status": "error", "dataset_size": 4000,
                 "model.latent_dim": 8, "best_val_r2_log10_k_xx": 0.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_known_power_law_is_recovered_exactly():
    sizes = np.array(SIZES, dtype=float)
    a, b, c = fit_curve(sizes, 3.0 * sizes**-0.6 + 0.01)
    assert (a, b, c) == pytest.approx((3.0, 0.6, 0.01), rel=1e-3, abs=1e-5)
    assert size_for((a, b, c), 0.03) == pytest.approx((3.0 / 0.02) ** (1 / 0.6), rel=1e-3)
    assert size_for((a, b, c), 0.009) == math.inf  # below the floor: never


def test_learning_curves_per_latent_with_bootstrap_intervals(rng):
    fits = learning_curves(synthetic_trials(rng), boot=100)
    by = {(f["metric"], f["latent_dim"]): f for f in fits}
    assert set(by) == {("r2_log10_k_xx", 8), ("r2_log10_k_xx", 16), ("bce", 8), ("bce", 16)}
    eight = by[("r2_log10_k_xx", 8)]
    assert eight["sizes"] == SIZES and eight["seeds"] == 3  # the failed trial is left out
    assert eight["b_interval"][0] < 0.6 < eight["b_interval"][1]
    true_n = (3.0 / (0.03 - 0.01)) ** (1 / 0.6)  # about 4,300: beyond the largest size run
    lo, hi = eight["n_interval"]
    assert eight["target"] == 0.97 and lo < true_n < hi
    assert eight["n_for_target"] == pytest.approx(true_n, rel=0.3) and eight["extrapolated"]
    sixteen = by[("r2_log10_k_xx", 16)]  # half the error: fewer samples needed
    assert sixteen["n_for_target"] < eight["n_for_target"]
    assert "target" not in by[("bce", 8)]  # a loss has no default target
    text = sentence(eight)
    assert text.startswith("R^2 log10 K_xx >= 0.97 at latent size 8 needs about")
    assert "extrapolated" in text


def test_an_answer_far_beyond_the_sizes_run_is_not_given_as_a_number():
    from analysis.learning_curve import sentence

    row = {"metric": "coverage", "latent_dim": 8, "target": 0.8, "sizes": [16, 256],
           "a": 1.0, "b": 0.01, "c": 0.0, "n_for_target": 3.9e28, "n_interval": [1e17, 1e40],
           "extrapolated": True}  # fmt: skip
    assert sentence(row) == ("coverage >= 0.8 at latent size 8: not reached within 100x the "
                             "largest size run (the fitted curve is nearly flat, b = 0.01)")
    row |= {"n_for_target": 1200.0, "n_interval": [900.0, 2000.0]}
    assert "needs about 1,200 samples (900-2,000) (extrapolated" in sentence(row)


def test_too_few_sizes_give_no_fit(rng):
    trials = synthetic_trials(rng)
    assert learning_curves(trials[trials["dataset_size"] <= 250], boot=10) == []


def test_analyze_reports_the_dataset_size_needed(rng, tmp_path):
    import json

    from analysis.report import analyze
    from analysis.study import Study

    trials = synthetic_trials(rng)
    trials["epochs"] = 10
    trials["best_val_objective"] = 1 - trials["best_val_r2_log10_k_xx"]
    trials["best_val_r2_mean"] = trials["best_val_r2_log10_k_xx"]
    trials["best_checkpoint"] = None
    record = {"experiment": {"name": "dataset_size"}, "status": "complete",
              "search_space": {"dataset_size": {"grid": SIZES},
                               "model.latent_dim": {"grid": [8, 16]}}}  # fmt: skip
    study = Study(tmp_path, record, trials, pd.DataFrame(columns=["trial_id", "epoch"]))
    analyze(study, tmp_path / "report")
    fits = json.loads((tmp_path / "report" / "dataset_size.json").read_text())["fits"]
    assert {f["latent_dim"] for f in fits} == {8, 16}
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Dataset size needed" in report
    assert "R^2 log10 K_xx >= 0.97 at latent size 8 needs about" in report
    assert (tmp_path / "report" / "figures" / "dataset_size_fits.png").is_file()
    assert "figures/dataset_size_fits.png" in report
