"""Analysis of a real study: selection rule, figures, report, notebooks, export round trip."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from nbclient import NotebookClient

import analysis
import pvae
from analysis.selection import SelectionRule, parse_constraint
from pvae.core.errors import PvaeError
from pvae.data.store import open_dataset
from pvae.vae.bundle import read_torchscript
from pvae.vae.train import model_from_checkpoint, read_checkpoint

NOTEBOOKS = sorted((Path(__file__).parents[1] / "analysis" / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory, trained_run, ray_cluster):
    """A finished 4-trial ASHA + Optuna study on the 48-sample 16^3 dataset."""
    from tune.study import prepare_study, run_study

    _, data = trained_run
    base = tmp_path_factory.mktemp("study")
    experiment = base / "tiny.yaml"
    experiment.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "model": {
                    "latent_dim": 4,
                    "base_channels": 4,
                    "max_channels": 8,
                    "regressor_hidden": [8],
                },
                "train": {"epochs": 3, "batch_size": 8, "design_every": 3,
                          "design_targets": 1, "design_weight": 0.5},
                "tune": {
                    "samples": 4,
                    "max_concurrent": 2,
                    "seed": 0,
                    "startup_trials": 2,
                    "grace_period": 1,
                    "reduction_factor": 2,
                    "resources": {"cpu": 1, "gpu": 0.25},
                    "keep_checkpoints": 1,
                    "space": {
                        "train.dataset_size": {"choice": [16, 32]},
                        "model.latent_dim": {"choice": [2, 4]},
                        "train.beta": {"loguniform": [1.0e-3, 1.0]},
                    },
                },
            }
        )
    )
    record = run_study(prepare_study(experiment, data, base / "out"))
    assert record["status"] == "complete"
    return base / "out"


def test_selection_rule(study_dir):
    study = analysis.load_study(study_dir)
    trials = study.trials
    choice = analysis.choose(trials)
    completed = trials[trials["status"] == "completed"]
    assert choice.trial_id in set(completed["trial_id"])
    best = completed["best_val_objective"].min()
    assert choice.row["best_val_objective"] <= best * 1.01 + 1e-12
    assert "production model" in choice.reason and "Eligible" in choice.reason
    # ties: with a huge tolerance every completed trial ties, the smallest latent dim wins
    wide = analysis.choose(
        trials, SelectionRule(tie_tolerance=10.0, tie_breaks=("model.latent_dim",))
    )
    assert wide.row["model.latent_dim"] == completed["model.latent_dim"].min()
    with pytest.raises(PvaeError, match="no trial meets the selection rule"):
        analysis.choose(trials, SelectionRule(constraints=(("best_val_objective", "<", -1.0),)))
    assert parse_constraint("best_val_r2_mean>=0.9") == ("best_val_r2_mean", ">=", 0.9)
    with pytest.raises(PvaeError):
        parse_constraint("nonsense")


def test_analyze_writes_figures_and_report(study_dir, tmp_path, run_cli):
    out = tmp_path / "report"
    # no LBM check here: it would write into the shared study folder (tested below on a copy)
    code, stdout, stderr = run_cli("analyze", study_dir, "--out", out, "--finalists", "0")
    assert code == 0, stderr
    assert "production model" in stdout
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert {
        "learning_curves",
        "metric_vs_dataset_size",
        "metric_vs_latent_dim",
        "metric_vs_beta",
        "parallel_coordinates",
        "pareto_front",
        "pareto_r2_vs_design",  # validation design success, measured in every trial
    } <= figures
    assert all((out / "figures" / f"{f}.pdf").is_file() for f in figures)
    report = (out / "report.md").read_text()
    assert "## Leaderboard" in report and "## Production model" in report
    assert "best_val_design_success" in report
    assert all(f"figures/{f}.png" in report for f in figures)
    assert json.loads((out / "choice.json").read_text())["trial_id"]


def test_pareto_fronts_mark_the_chosen_trial(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from analysis import plots

    trials = pd.DataFrame({"trial_id": ["a1", "b2", "c3"],
                           "best_val_r2_mean": [0.90, 0.95, 0.97],
                           "best_val_design_success": [1.0, 0.75, 1.0]})  # fmt: skip
    drawn, save = [], plots.save
    monkeypatch.setattr(plots, "save", lambda fig, stem: drawn.append(fig) or save(fig, stem))
    study = SimpleNamespace(trials=trials)
    plots.pareto_front(study, tmp_path / "chosen", "r2_vs_design", chosen="a1")
    plots.pareto_front(study, tmp_path / "none", "r2_vs_design")
    labels = [fig.axes[0].get_legend_handles_labels()[1] for fig in drawn]
    assert labels == [["trials", "Pareto front", "chosen: a1"], ["trials", "Pareto front"]]
    star = drawn[0].axes[0].collections[-1].get_offsets()
    assert np.allclose(star, [[0.90, 1.0]])  # a1 is dominated by c3: marked, not on the front


@pytest.mark.slow  # about 30-40 s on 2 cores: make test-slow
def test_notebooks_execute(study_dir, tmp_path):
    os.environ["PVAE_RESULTS"] = str(study_dir)
    try:
        for path in NOTEBOOKS:
            notebook = nbformat.read(path, as_version=4)
            NotebookClient(
                notebook,
                timeout=300,
                kernel_name="python3",
                resources={"metadata": {"path": str(tmp_path)}},
            ).execute()
            errors = [
                o
                for c in notebook.cells
                for o in c.get("outputs", [])
                if o.get("output_type") == "error"
            ]
            assert not errors, path.name
    finally:
        os.environ.pop("PVAE_RESULTS")
    assert (tmp_path / "models" / "notebook-choice" / "bundle.json").is_file()


def test_finalists_overrule_the_metric_only_when_they_design_better(study_dir):
    trials = analysis.load_study(study_dir).trials
    plain = analysis.choose(trials)
    eligible = set(trials.loc[trials["status"] == "completed", "trial_id"])
    others = [t for t in trials["trial_id"] if t != plain.trial_id]

    def checked(rates, scores=None):
        table = pd.DataFrame({"trial_id": list(rates), "rank": range(1, len(rates) + 1),
                              "targets": 2,
                              "verified_design_success": list(rates.values())})  # fmt: skip
        return table if scores is None else table.assign(verified_design_score=scores)

    # the rule's choice designs as well as any: it stays
    kept = analysis.choose(trials, finalists=checked({plain.trial_id: 0.5, others[0]: 0.5}))
    assert kept.trial_id == plain.trial_id and "as well as any" in kept.reason
    kept = analysis.choose(trials, finalists=checked({plain.trial_id: 0.5, others[0]: 0.5},
                                                     [0.8, 0.8]))  # fmt: skip
    assert kept.trial_id == plain.trial_id
    # equal success: the finalist whose designs came closer (median score) wins
    rival = others[0]
    both = trials.assign(status=trials["status"].where(trials["trial_id"] != rival, "completed"))
    both = both[both["trial_id"].isin([plain.trial_id, rival])].copy()
    both["best_val_objective"] = both["best_val_objective"].fillna(plain.row["best_val_objective"])
    assert analysis.choose(both).trial_id == plain.trial_id
    closer = analysis.choose(both, finalists=checked({plain.trial_id: 0.5, rival: 0.5},
                                                     [0.9, 0.4]))  # fmt: skip
    assert closer.trial_id == rival and "the smallest median score" in closer.reason
    assert "median score 0.40" in closer.reason
    for other in others:
        found = analysis.choose(trials, finalists=checked({plain.trial_id: 0.0, other: 1.0}))
        if other in eligible:  # an eligible trial that designs better is chosen, and says why
            assert found.trial_id == other
            assert found.reason.startswith(f"Trial {other} is the production model.")
            assert f"chosen over the rule's trial {plain.trial_id}" in found.reason
        else:  # a trial that is not eligible never wins, however it designs
            assert found.trial_id == plain.trial_id


def test_analyze_checks_the_finalists_by_lbm_and_export_follows(study_dir, tmp_path, run_cli):
    study = tmp_path / "study"
    shutil.copytree(study_dir, study)  # the checkpoints stay where the trials wrote them
    code, stdout, stderr = run_cli("analyze", study, "--out", tmp_path / "report",
                                   "--max-steps", "3000", "--finalist-targets", "2")  # fmt: skip
    assert code == 0, stderr
    finalists = pd.read_parquet(study / "finalists.parquet")
    eligible = int(analysis.load_study(study).trials["status"].eq("completed").sum())
    assert len(finalists) == min(3, eligible)
    assert list(finalists["rank"]) == list(range(1, len(finalists) + 1))
    assert (finalists["targets"] == 2).all()  # --finalist-targets, not the study's 1
    assert finalists["verified_design_success"].isin([0.0, 0.5, 1.0]).all()
    assert finalists["lbm_solves"].between(2, 4).all()  # 1 or 2 per target
    assert "validation designs verified by LBM" in stdout
    choice = json.loads((tmp_path / "report" / "choice.json").read_text())
    assert "LBM checked the validation designs" in choice["reason"]
    assert choice["trial_id"] in set(finalists["trial_id"])
    assert "## LBM check of the finalists" in (tmp_path / "report" / "report.md").read_text()
    # export without --trial chooses alike, from the check kept in the study folder
    code, _, stderr = run_cli("export", study, "--out", tmp_path / "bundle")
    assert code == 0, stderr
    bundle = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert bundle["provenance"]["trial_id"] == choice["trial_id"]


def _digest(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_export_round_trip(study_dir, trained_run, tmp_path, run_cli):
    _, data = trained_run
    # exporting twice (two runs of the command) gives the same bundle, byte for byte
    for where in ("a", "b"):
        command = [
            sys.executable,
            "-m",
            "pvae",
            "export",
            str(study_dir),
            "--out",
            str(tmp_path / where / "m1"),
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert _digest(tmp_path / "a" / "m1") == _digest(tmp_path / "b" / "m1")
    shutil.move(tmp_path / "a" / "m1", tmp_path / "m1")
    bundle = json.loads((tmp_path / "m1" / "bundle.json").read_text())
    assert bundle["provenance"]["trial_id"] and bundle["provenance"]["dataset_fingerprint"]
    assert "git_commit" in bundle["provenance"] and bundle["provenance"]["versions"]["ray"]
    card = (tmp_path / "m1" / "README.md").read_text()
    assert "Model card" in card
    design = None
    for line in card.splitlines():  # the study measured validation design success: shown
        if line.startswith("| validation targets met by designs (critic) |"):
            design = float(line.split("|")[2])
    study = analysis.load_study(study_dir)
    row = study.trials[study.trials["trial_id"] == bundle["provenance"]["trial_id"]].iloc[0]
    assert design == pytest.approx(row["best_val_design_success"], abs=1e-4)

    loaded = pvae.load_model(tmp_path / "m1")
    reference, _ = model_from_checkpoint(read_checkpoint(row["best_checkpoint"]))
    x = torch.from_numpy(open_dataset(data).images([0, 1, 2])).float()[:, None]
    with torch.no_grad():
        expected = reference(x)
        got = loaded.model(x)
        mu, _, prediction = read_torchscript(tmp_path / "m1")(x)
    assert torch.equal(got["mu"], expected["mu"]) and torch.equal(got["logits"], expected["logits"])
    assert torch.allclose(mu, expected["mu"], atol=1e-5)
    assert torch.allclose(prediction, expected["prediction"], atol=1e-5)
    code, stdout, _ = run_cli("evaluate", "--model", tmp_path / "m1", "--dataset", data, "--json")
    assert code == 0 and json.loads(stdout)["n_samples"] == len(loaded.state["splits"]["test"])


def test_bad_results_folders(study_dir, tmp_path, run_cli):
    code, _, err = run_cli("analyze", tmp_path)
    assert code == 2 and "not a study results folder" in err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "study.json").write_text('{"hello": 1}')
    code, _, err = run_cli("analyze", foreign)
    assert code == 2 and "foreign" in err
    unfinished = tmp_path / "unfinished"
    shutil.copytree(study_dir, unfinished, ignore=shutil.ignore_patterns("ray"))
    record = json.loads((unfinished / "study.json").read_text())
    (unfinished / "study.json").write_text(json.dumps({**record, "status": "interrupted"}))
    code, _, err = run_cli("export", unfinished, "--out", tmp_path / "x")
    assert code == 2 and "--resume" in err and not (tmp_path / "x").exists()
    code, _, err = run_cli(
        "export", study_dir, "--out", tmp_path / "y", "--constraint", "best_val_objective < -5"
    )
    assert code == 2 and "no trial meets" in err and not (tmp_path / "y").exists()
    code, _, err = run_cli("export", study_dir, "--out", tmp_path / "z", "--trial", "nope")
    assert code == 2 and "no trial 'nope'" in err


def test_missing_checkpoint_is_reported(study_dir, tmp_path):
    study = analysis.load_study(study_dir)
    study.trials = study.trials.assign(best_checkpoint=str(tmp_path / "gone.pt"))
    with pytest.raises(PvaeError, match="gone.pt: checkpoint of trial .* is missing"):
        analysis.export_trial(study, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    bundle = tmp_path / "old"
    bundle.mkdir()
    (bundle / "bundle.json").write_text(json.dumps({"format": "pvae-bundle-0"}))
    with pytest.raises(PvaeError, match="re-export"):
        pvae.load_model(bundle)
    assert np.isfinite(study.trials["best_val_objective"]).any()


@pytest.mark.parametrize("command", ["analyze", "export", "evaluate", "interpolate", "latent"])
def test_commands_refuse_a_non_empty_out(command, study_dir, trained_run, tmp_path, run_cli):
    run, data = trained_run
    out = tmp_path / ("latents.parquet" if command == "latent" else "out")
    if command == "latent":
        out.write_text("earlier run")
    else:
        out.mkdir()
        (out / "earlier.txt").write_text("earlier run")
    ids = open_dataset(data).manifest["sample_id"]
    argv = {
        "analyze": ["analyze", study_dir],
        "export": ["export", study_dir],
        "evaluate": ["evaluate", "--model", run],
        "interpolate": ["interpolate", "--model", run, "--from", ids[0], "--to", ids[1]],
        "latent": ["latent", "--model", run],
    }[command]
    code, stdout, err = run_cli(*argv, "--out", out)
    assert code == 2 and err.count("\n") == 1 and f"{out}: exists" in err and "--overwrite" in err
    assert not stdout and sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    kept = out if command == "latent" else out / "earlier.txt"
    assert kept.read_text() == "earlier run"
    if command in ("analyze", "export"):  # with --overwrite the new output replaces it
        code, _, err = run_cli(*argv, "--out", out, "--overwrite")
        assert code == 0, err
        assert not (out / "earlier.txt").exists()


def test_export_with_a_prior_generates(study_dir, tmp_path, run_cli):
    code, _, err = run_cli("export", study_dir, "--out", tmp_path / "x", "--prior-steps", "-1")
    assert code == 2 and "--prior-steps" in err and not (tmp_path / "x").exists()
    code, out, err = run_cli("export", study_dir, "--out", tmp_path / "m", "--prior-steps", "20")
    assert code == 0, err
    assert "prior.pt" in out and (tmp_path / "m" / "prior.pt").is_file()
    assert "latent diffusion prior fitted" in (tmp_path / "m" / "README.md").read_text()
    code, out, err = run_cli("sample", "--model", tmp_path / "m", "--count", "2", "--target",
                             "porosity=0.5", "--out", tmp_path / "drawn")  # fmt: skip
    assert code == 0, err  # conditional draws need the learned prior: N(0, I) refuses them
    assert len(list((tmp_path / "drawn").glob("*.npy"))) == 2
