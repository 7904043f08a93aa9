"""The main job end to end (`make demo`) on a tiny configuration, and its reuse of outputs."""

import json

import pandas as pd
import pytest
from test_optuna_storage import dashboard_trials

from pvae.cli.demo import main


@pytest.mark.slow  # about 50 s on 2 cores: make test-slow
def test_demo_pipeline_end_to_end(trained_run, ray_cluster, tmp_path, capsys):
    _, data = trained_run
    out = tmp_path / "demo"
    assert main(["--out", str(out), "--dataset", str(data), "--smoke", "--targets", "1"]) == 0
    printed = capsys.readouterr().out
    for stage in range(1, 9):
        assert f"== {stage}/8" in printed
    assert "best trial" in printed and "inverse design success" in printed
    assert "fidelity of decoded structures (LBM)" in printed
    assert "decoded recombinations of training encodings" in printed  # realism, measured
    designs = pd.read_parquet(out / "inverse" / "summary.parquet")
    row = designs.iloc[0]
    if row["status"] == "designed":  # the demo prints the design beside the lookup baseline
        line = f"novelty {row['novelty']:.2f}; nearest training sample {row['baseline_sample']}"
    else:
        line = f"target {row['id']}: {row['status']}"
    assert line in printed
    bundle = json.loads((out / "models" / "production" / "bundle.json").read_text())
    assert f"trial {bundle['provenance']['trial_id']} (pvae analyze's choice)" in printed
    splits = bundle["splits"]
    ids = pd.read_parquet(data / "manifest.parquet")["sample_id"]
    assert row["baseline_sample"] in set(ids.iloc[splits["train"]])  # lookup in training data
    assert (out / "models" / "production" / "critic.pt").is_file()  # the dataset's, exported
    study = json.loads((out / "study" / "study.json").read_text())
    assert study["status"] == "complete" and study["smoke"]
    assert study["optuna"]["dashboard"] in printed  # the command that opens it
    served = dashboard_trials(study["optuna"]["storage"])  # optuna-dashboard's own app
    assert len(served) == study["summary"]["trials"]
    history = pd.read_parquet(out / "study" / "history.parquet")
    assert history["val_fidelity_success"].between(0, 1).all()  # the study measured fidelity
    assert history["val_realism"].between(0, 1).all()  # and realism
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert metrics["fidelity"]["method"] == "lbm" and metrics["fidelity"]["n_samples"] > 0
    for path in (
        "analysis/report.md",
        "models/production/bundle.json",
        "evaluation/metrics.json",
        "latent/latents.parquet",
        "interpolation/path.parquet",
        "inverse/summary.json",
    ):
        assert (out / path).is_file(), path
    report = (out / "analysis" / "report.md").stat().st_mtime
    assert main(["--out", str(out), "--dataset", str(data), "--smoke", "--targets", "1"]) == 0
    assert "reusing the finished study" in capsys.readouterr().out
    assert (out / "analysis" / "report.md").stat().st_mtime == report  # reused, not redone


def test_a_failed_stage_stops_the_demo_with_one_line(tmp_path, capsys):
    from pvae.data.microstructures import synthesize

    bare = synthesize("spheres", 4, 16, seed=1, out=tmp_path / "bare", workers=1, progress=False)
    assert main(["--out", str(tmp_path / "a"), "--dataset", str(bare)]) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert (
        line.startswith("pvae demo: stage 1/8 (dataset) failed:") and "not fully labelled" in line
    )
    assert "== 2/8" not in captured.out  # nothing after the failed stage ran
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntune: {samples: 0}\n")
    assert main(["--out", str(tmp_path / "b"), "--experiment", str(bad)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "pvae demo: stage 2/8 (Ray Tune study (ASHA + Optuna, local Ray)) failed"
    )
    assert "bad.yaml" in line
