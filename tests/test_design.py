"""Latent tools, Slerp, interpolation and physics-verified inverse design."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from pvae.errors import PvaeError
from pvae.imaging import read_image
from pvae.inverse import (
    InverseSettings,
    coverage_problems,
    design,
    optimise_latents,
    parse_target,
    target_vector,
    targets_from_csv,
)
from pvae.latent import lerp, slerp
from pvae.loading import load_model
from pvae.physics.lbm import LBMSettings, permeability
from pvae.store import open_dataset

FAST_LBM = LBMSettings(tol=1e-4, check_every=50, max_steps=4000)  # bounded: tiny-model designs


def test_slerp_endpoints_and_unit_norm(rng):
    a, b = rng.normal(size=8), rng.normal(size=8)
    assert np.allclose(slerp(a, b, 0.0), a) and np.allclose(slerp(a, b, 1.0), b)
    ua, ub = a / np.linalg.norm(a), b / np.linalg.norm(b)
    path = slerp(ua, ub, np.linspace(0, 1, 11))
    assert path.shape == (11, 8)
    assert np.allclose(np.linalg.norm(path, axis=1), 1.0)  # stays on the sphere
    assert np.linalg.norm(lerp(ua, ub, 0.5)) < 1.0  # a straight line cuts inside
    # constant angular speed: equal steps subtend equal angles
    angles = np.arccos(np.clip(np.sum(path[1:] * path[:-1], axis=1), -1, 1))
    assert np.allclose(angles, angles[0])


def test_slerp_near_parallel_falls_back_to_linear(rng):
    a = rng.normal(size=5)
    b = a * 2.0 + 1e-9
    t = np.linspace(0, 1, 5)
    assert np.all(np.isfinite(slerp(a, b, t)))
    assert np.allclose(slerp(a, b, t), lerp(a, b, t))


def test_target_parsing_and_bad_input(tmp_path):
    assert parse_target(["porosity=0.7", "k_xx=2.0"]) == {"porosity": 0.7, "k_xx": 2.0}
    with pytest.raises(PvaeError, match="unknown property 'k_xy'"):
        parse_target(["k_xy=1"])
    with pytest.raises(PvaeError, match="expected NAME=VALUE"):
        parse_target(["porosity"])
    with pytest.raises(PvaeError, match="not a number"):
        parse_target(["porosity=high"])
    with pytest.raises(PvaeError, match="impossible"):
        parse_target(["porosity=1.2"])
    with pytest.raises(PvaeError, match="impossible"):
        parse_target(["k_zz=-3"])
    research = tmp_path / "t.csv"
    research.write_text(
        "case,n_F,Permeability_x,Permeability_y,Permeability_z\n7,0.8,2.0,3.0,4.0\n"
    )
    ((rid, target),) = targets_from_csv(research)
    assert rid == "7" and target["porosity"] == 0.8
    assert target["k_xx"] == pytest.approx(1.6)  # pore-averaged -> superficial


def test_coverage_reported_not_attempted():
    ranges = {"porosity": [0.4, 0.7], "log10_k_xx": [-1.0, 0.0]}
    assert coverage_problems({"porosity": 0.55, "k_xx": 0.5}, ranges) == []
    problems = coverage_problems({"porosity": 0.95, "k_xx": 50.0}, ranges)
    assert len(problems) == 2 and "porosity = 0.95 is outside the training data" in problems[0]


def test_optimisation_reduces_regressor_error(trained_run):
    run, data = trained_run
    loaded = load_model(run)
    goal = target_vector({"porosity": 0.55}, loaded.targets)
    z0 = torch.randn(6, loaded.model.config.latent_dim, generator=torch.Generator().manual_seed(0))
    _, history = optimise_latents(loaded, goal, z0, InverseSettings(steps=150, prior_weight=0.0))
    assert history[-1] < 0.1 * history[0]
    assert all(p.requires_grad for p in loaded.model.parameters())  # model left trainable


def test_designs_are_verified_by_the_solver(trained_run, tmp_path, run_cli):
    run, data = trained_run
    out = tmp_path / "designs"
    code, stdout, stderr = run_cli(
        "inverse",
        "--model",
        run,
        "--target",
        "porosity=0.55",
        "--candidates",
        "4",
        "--steps",
        "60",
        "--out",
        out,
        "--tol",
        "1e-4",
        "--check-every",
        "50",
        "--max-steps",
        "4000",
    )
    assert code == 0, stderr
    table = pd.read_parquet(out / "designs.parquet")
    assert len(table) == 4 and list(table["rank"]) == [1, 2, 3, 4]
    assert (table["score"].diff().dropna() >= 0).all()  # ranked by verified error
    for row in table.itertuples():
        image = read_image(out / row.file)  # the saved structure itself
        assert row.verified_porosity == pytest.approx(image.mean(), abs=0)
        assert (out / row.file.replace(".npy", ".tif")).is_file()
        assert (out / row.file.replace(".npy", "_bmp")).is_dir()
    best = read_image(out / table["file"].iloc[0])
    if 0 < best.mean() < 1:
        k = permeability(best, FAST_LBM).k
        assert table["verified_k_xx"].iloc[0] == pytest.approx(k[0, 0], rel=1e-6, abs=1e-12)
    summary = json.loads((out / "designs.json").read_text())
    assert summary["target"] == {"porosity": 0.55} and summary["candidates"] == 4
    assert "verified" in stdout or "misses" in stdout
    assert (out / "designs.png").is_file()


def test_out_of_range_target_is_reported(trained_run, tmp_path, run_cli):
    run, _ = trained_run
    code, stdout, _ = run_cli(
        "inverse", "--model", run, "--target", "k_xx=500", "--out", tmp_path / "d"
    )
    assert code == 1 and "not attempted" in stdout and "outside the training data" in stdout


def test_many_targets_success_rate(trained_run, tmp_path):
    from pvae.inverse_report import run_inverse

    run, data = trained_run
    loaded = load_model(run)
    store = open_dataset(data)
    targets = [("a", {"porosity": 0.5}), ("b", {"porosity": 0.6}), ("c", {"porosity": 0.999})]
    summary = run_inverse(
        loaded, targets, tmp_path / "many", store, InverseSettings(candidates=2, steps=30), FAST_LBM
    )
    assert list(summary["status"]) == ["designed", "designed", "outside_training_data"]
    assert (tmp_path / "many" / "a" / "designs.parquet").is_file()
    stats = json.loads((tmp_path / "many" / "summary.json").read_text())
    assert stats["designed"] == 2 and stats["outside_training_data"] == 1
    assert stats["success_rate"] == summary["success"].iloc[:2].mean()


@pytest.mark.parametrize("layout", ["trained_run", "trained_spatial_run"])
def test_interpolation_writes_verified_path(layout, request, tmp_path, run_cli):
    run, data = request.getfixturevalue(layout)
    store = open_dataset(data)
    a, b = store.manifest["sample_id"].iloc[[0, 5]]
    out = tmp_path / "path"
    code, stdout, stderr = run_cli(
        "interpolate",
        "--model",
        run,
        "--from",
        a,
        "--to",
        b,
        "--steps",
        "3",
        "--out",
        out,
        "--tol",
        "1e-4",
        "--check-every",
        "50",
        "--max-steps",
        "4000",
    )
    assert code == 0, stderr
    table = pd.read_parquet(out / "path.parquet")
    assert list(table["t"]) == [0.0, 0.5, 1.0]
    for row in table.itertuples():
        assert row.verified_porosity == pytest.approx(read_image(out / row.file).mean(), abs=0)
    assert (out / "interpolation.png").is_file() and (out / "step_01.tif").is_file()
    code, _, err = run_cli("interpolate", "--model", run, "--from", a, "--to", "nope", "--out", out)
    assert code == 2 and "unknown sample ID 'nope'" in err


@pytest.mark.parametrize("layout", ["trained_run", "trained_spatial_run"])
def test_latent_extraction(layout, request, tmp_path, run_cli):
    run, data = request.getfixturevalue(layout)
    out = tmp_path / "lat" / "latents.parquet"
    code, _, stderr = run_cli("latent", "--model", run, "--out", out)
    assert code == 0, stderr
    table = pd.read_parquet(out)
    assert len(table) == len(open_dataset(data))
    assert {"mu_0", "logvar_5", "porosity", "pred_porosity", "pc1", "pc2"} <= set(table.columns)
    assert (out.parent / "latents_pca.png").is_file()
    assert (out.parent / "latents_traversal.png").is_file()


def test_design_function_ranks_and_returns_images(trained_run):
    run, data = trained_run
    loaded = load_model(run)
    table, images = design(
        loaded,
        {"porosity": 0.5},
        open_dataset(data),
        InverseSettings(candidates=3, starts=3, steps=20),
        FAST_LBM,
    )
    assert images.shape == (3, 16, 16, 16) and images.dtype == bool
    assert table["start"].str.startswith("nearest:").sum() == 2  # half nearest (rounded)
    assert np.allclose(table["verified_porosity"], images.mean(axis=(1, 2, 3)))
    # binarized at the target porosity, to the voxel
    assert np.allclose(table["verified_porosity"], round(0.5 * 16**3) / 16**3)
    assert (table["texture"] == 0).all()  # no K target: nothing to texture for


def test_permeability_targets_are_screened_and_refined_by_lbm(trained_run):
    run, data = trained_run
    loaded, store = load_model(run), open_dataset(data)
    row = store.manifest.iloc[int(np.argmax(store.manifest["porosity"]))]
    target = {"porosity": 0.5, "k_xx": float(row["k_xx"]) / 4, "k_zz": float(row["k_zz"]) / 4}
    settings = InverseSettings(candidates=2, starts=6, steps=20, refine=2)
    table, images = design(loaded, target, store, settings, FAST_LBM)
    assert len(table) == 2 and table["lbm_solves"].between(1, 3).all()
    for i, image in enumerate(images):  # the reported values are those of the kept image
        k = permeability(image, FAST_LBM).k
        assert table["verified_k_xx"].iloc[i] == pytest.approx(k[0, 0], rel=1e-6, abs=1e-12)
        assert table["verified_porosity"].iloc[i] == image.mean()
    # the same first round without refinement: refinement only ever keeps a better structure
    first = design(loaded, target, store, replace(settings, refine=0), FAST_LBM)[0]
    assert (first["lbm_solves"] == 1).all()
    assert table["score"].iloc[0] <= first["score"].iloc[0]
    plain = design(loaded, target, store, replace(settings, textures=(0.0,)), FAST_LBM)[0]
    assert (plain["texture"] == 0).all()
