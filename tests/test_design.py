"""Latent tools, Slerp, interpolation and physics-verified inverse design."""

import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from pvae.core.errors import PvaeError
from pvae.data.imaging import read_image
from pvae.data.store import open_dataset
from pvae.design.active import CriticLearner
from pvae.design.inverse import InverseSettings, design, optimise_latents
from pvae.design.latent import lerp, slerp
from pvae.design.novelty import NoveltyIndex
from pvae.design.pool import design_pool, lookup
from pvae.design.targets import coverage_problems, parse_target, target_vector, targets_from_csv
from pvae.physics.lbm import LBMSettings, permeability
from pvae.vae.critic import find_critic
from pvae.vae.loading import load_model

FAST_LBM = LBMSettings(max_steps=4000)  # bounded: tiny-model designs


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


def test_midpoint_targets_are_distinct_same_family_midpoints(tiny_labelled):
    from pvae.design.targets import midpoint_targets

    store = open_dataset(tiny_labelled)
    table = store.manifest.set_index("sample_id")
    targets = midpoint_targets(store, 30, seed=3)
    pairs = [frozenset(i.split("+")) for i, _ in targets]
    assert len(pairs) == len(set(pairs)) > 5  # never the same pair twice
    for ids, target in targets:
        a, b = (table.loc[i] for i in ids.split("+"))
        assert a["family"] == b["family"]
        assert target["porosity"] == pytest.approx((a["porosity"] + b["porosity"]) / 2)
        assert target["k_zz"] == pytest.approx(np.sqrt(a["k_zz"] * b["k_zz"]))


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
    settings = InverseSettings(steps=150, prior_weight=0.0)
    _, history = optimise_latents(loaded, z0, goal, torch.full((6,), 0.55), settings)
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
        "1e-3",
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
        vti = read_image(out / row.file.replace(".npy", ".vti"))  # for ParaView
        assert np.array_equal(vti, image)
    best = read_image(out / table["file"].iloc[0])
    k = permeability(best, FAST_LBM).k  # porosity 0.55: a solid and a pore phase
    assert table["verified_k_xx"].iloc[0] == pytest.approx(k[0, 0], rel=1e-6, abs=1e-12)
    assert table["novelty"].between(0, 1).all() and table["nearest_sample"].notna().all()
    summary = json.loads((out / "designs.json").read_text())
    assert summary["target"] == {"porosity": 0.55} and summary["candidates"] == 4
    assert summary["baseline"]["baseline_sample"] in set(open_dataset(data).manifest["sample_id"])
    verdict = "verified within tolerance" if table["success"].iloc[0] else "best candidate misses"
    assert stdout.startswith(f"target: {verdict}: LBM/exact porosity")
    assert f"novelty {table['novelty'].iloc[0]:.2f}; nearest sample" in stdout
    assert (out / "designs.png").is_file()
    again = run_cli("inverse", "--model", run, "--target", "porosity=0.55", "--out", out)
    assert again[0] == 2 and "--overwrite" in again[2]  # a second run keeps the first's designs


def test_out_of_range_target_is_reported(trained_run, tmp_path, run_cli):
    run, _ = trained_run
    code, stdout, _ = run_cli(
        "inverse", "--model", run, "--target", "k_xx=500", "--out", tmp_path / "d"
    )
    assert code == 1 and "not attempted" in stdout and "outside the training data" in stdout


def test_many_targets_success_rate(trained_run, tmp_path):
    from pvae.design.inverse_report import run_inverse

    run, data = trained_run
    loaded = load_model(run)
    pool = design_pool(loaded, open_dataset(data))
    targets = [("a", {"porosity": 0.5}), ("b", {"porosity": 0.6}), ("c", {"porosity": 0.999})]
    settings = InverseSettings(candidates=2, starts=4, steps=30)
    summary = run_inverse(loaded, targets, tmp_path / "many", pool, settings, FAST_LBM)
    assert list(summary["status"]) == ["designed", "designed", "outside_training_data"]
    assert (tmp_path / "many" / "a" / "designs.parquet").is_file()
    stats = json.loads((tmp_path / "many" / "summary.json").read_text())
    assert stats["designed"] == 2 and stats["outside_training_data"] == 1
    assert stats["success_rate"] == summary["success"].iloc[:2].mean()
    assert stats["baseline_success_rate"] == summary["baseline_success"].iloc[:2].mean()
    assert stats["median_novelty"] == pytest.approx(summary["novelty"].iloc[:2].median())
    assert stats["pool"].startswith("training split of")


@pytest.mark.parametrize(
    ("layout", "formats", "suffixes"),
    [
        ("trained_run", [], {".npy", ".tif", ".vti"}),  # the default
        ("trained_spatial_run", ["--formats", "bmp"], {".npy", "_bmp"}),
    ],
)
def test_interpolation_writes_verified_path(layout, formats, suffixes, request, tmp_path, run_cli):
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
        "1e-3",
        "--check-every",
        "50",
        "--max-steps",
        "4000",
        *formats,
    )
    assert code == 0, stderr
    table = pd.read_parquet(out / "path.parquet")
    assert list(table["t"]) == [0.0, 0.5, 1.0]
    for row in table.itertuples():
        assert row.verified_porosity == pytest.approx(read_image(out / row.file).mean(), abs=0)
    assert (out / "interpolation.png").is_file()
    step = {p.name.removeprefix("step_01") for p in out.iterdir() if p.name.startswith("step_01")}
    assert step == suffixes
    np.testing.assert_array_equal(read_image(out / f"step_01{sorted(suffixes)[-1]}"),
                                  read_image(out / "step_01.npy"))  # fmt: skip
    code, _, err = run_cli("interpolate", "--model", run, "--from", a, "--to", b, "--out", out)
    assert code == 2 and "--overwrite" in err  # a second run keeps the first's path
    code, _, err = run_cli("interpolate", "--model", run, "--from", a, "--to", "nope", "--out",
                           tmp_path / "other")  # fmt: skip
    assert code == 2 and "unknown sample ID 'nope'" in err
    code, _, err = run_cli("interpolate", "--model", run, "--from", a, "--to", b, "--out",
                           tmp_path / "other", "--formats", "tif,png")  # fmt: skip
    assert code == 2 and "--formats png: unknown" in err


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
    pool = design_pool(loaded, open_dataset(data))
    table, images = design(
        loaded, {"porosity": 0.5}, pool, InverseSettings(candidates=3, starts=3, steps=20),
        FAST_LBM,
    )  # fmt: skip
    assert images.shape == (3, 16, 16, 16) and images.dtype == bool
    # each start blends two encoded parents (pool samples, maybe permuted or shifted)
    assert table["start"].str.fullmatch(r"mix\(0\.\d\d\):[^+]+\+[^+]+").all()
    assert np.allclose(table["verified_porosity"], images.mean(axis=(1, 2, 3)))
    # binarized at the target porosity, to the voxel
    assert np.allclose(table["verified_porosity"], round(0.5 * 16**3) / 16**3)
    assert list(table["rank"]) == [1, 2, 3] and table["score"].is_monotonic_increasing


def test_starts_and_novelty_come_from_the_training_split_only(trained_run):
    """Designing for a test-split sample's properties never starts from that sample (or
    any test or validation sample), and the lookup baseline searches the same pool."""
    run, data = trained_run
    loaded, store = load_model(run), open_dataset(data)
    splits = loaded.state["splits"]
    pool = design_pool(loaded, store)
    assert sorted(pool.rows) == sorted(splits["train"])
    ids = store.manifest["sample_id"]
    held_out = set(ids.iloc[splits["test"]]) | set(ids.iloc[splits["val"]])
    for row in splits["test"][:3]:
        sample = store.manifest.iloc[row]
        target = {"porosity": float(sample["porosity"]), "k_zz": float(sample["k_zz"])}
        settings = InverseSettings(candidates=2, starts=8, steps=5, lbm_budget=2)
        table, _ = design(loaded, target, pool, settings, FAST_LBM)
        used = {i for s in table["start"] for i in re.findall(r"[:+]([^@/+]+)", s)}
        assert used and not used & held_out
        assert lookup(pool, target)["baseline_sample"] not in held_out
        assert not set(table["nearest_sample"]) & held_out


def test_another_dataset_passed_explicitly_is_used_whole(trained_run, tmp_path):
    from conftest import lbm_label

    from pvae.data.microstructures import synthesize

    run, _ = trained_run
    other = synthesize("spheres", 6, 16, seed=99, out=tmp_path / "other", workers=1, progress=False)
    lbm_label(other)
    pool = design_pool(load_model(run), open_dataset(other))
    assert list(pool.rows) == list(range(6)) and pool.description.startswith(str(other))


def test_novelty_is_zero_for_a_training_sample_and_its_rotated_shifted_copies(rng):
    from pvae.data.symmetry import cube_symmetries

    references = rng.random((5, 12, 12, 12)) < 0.6
    index = NoveltyIndex(references)
    sample = references[3]
    assert index.best_match(sample) == (1.0, 3)
    for symmetry in cube_symmetries((12, 12, 12))[::7]:
        moved = np.roll(symmetry.apply(sample), (5, -3, 7), axis=(0, 1, 2))
        iou, match = index.best_match(moved)
        assert iou == pytest.approx(1.0) and match == 3
    assert index.novelty(moved[None])[0] == pytest.approx(0.0, abs=1e-9)
    fresh = rng.random((12, 12, 12)) < 0.6  # independent: IoU about 0.6 / 1.4
    assert 0.45 < index.novelty(fresh[None])[0] < 0.65
    half = sample.copy()
    half[:6] = fresh[:6]  # half replaced: in between
    assert 0.05 < index.novelty(half[None])[0] < 0.45


def test_novelty_does_not_depend_on_the_reference_batch(rng):
    """The batch only bounds memory (sized by image volume when not given): one reference at a
    time finds the same best match as all at once."""
    references = rng.random((9, 10, 10, 10)) < 0.5
    designs = rng.random((4, 10, 10, 10)) < 0.5
    one, default = NoveltyIndex(references, batch=1), NoveltyIndex(references)
    assert one.batch == 1 and default.batch == 16  # a small volume: the most the cap allows
    assert [one.best_match(d) for d in designs] == [default.best_match(d) for d in designs]


def test_the_critic_lowers_the_measured_error_of_decoded_structures(tmp_path):
    """Optimising with the critic in the loop brings the critic's permeability of the
    binarized decoded structures closer to the target than the regressor alone does.

    The critic is the default dataset's shipped surrogate (the tiny test critics predict
    about one value for every structure); the pVAE a small spatial one trained for a few
    epochs on 48 default samples at 32^3."""
    from pvae.data.datasets import resolve_dataset
    from pvae.design.screening import binarized_decodes, critic_log10_k
    from pvae.vae.config import experiment_from_dict
    from pvae.vae.inference import infer
    from pvae.vae.runs import train_run

    data = resolve_dataset(None)
    model = {"latent_layout": "spatial", "latent_dim": 512, "depth": 2, "base_channels": 4,
             "max_channels": 8, "regressor_hidden": [16]}  # fmt: skip
    train = {"epochs": 4, "batch_size": 16, "lr": 3e-3, "dataset_size": 48}
    config = experiment_from_dict({"name": "critic", "model": model, "train": train})
    run = tmp_path / "run"
    train_run(config, data, run, progress=False)
    loaded = load_model(run)
    critic, found = find_critic(run, loaded)
    assert found.resolve() == (data / "surrogate.pt").resolve()  # the dataset's, found by itself
    mu = infer(loaded.model, loaded.normalizer, open_dataset(data), np.arange(8))["mu"]
    z0 = torch.as_tensor(mu, dtype=torch.float32)
    porosity = torch.full((8,), 0.6)

    def critic_k_xx(z):
        images, _ = binarized_decodes(loaded, z, porosity)
        return critic_log10_k(loaded, critic, images)[:, 0]

    goal_k = float(np.median(critic_k_xx(z0))) - 0.3  # 0.3 decade below the starts
    goal = target_vector({"porosity": 0.6, "k_xx": 10**goal_k}, loaded.targets)
    critic_goal = torch.full((8, 3), np.nan)
    critic_goal[:, 0] = goal_k
    settings = InverseSettings(steps=40, lr=0.05)
    with_critic, _ = optimise_latents(loaded, z0, goal, porosity, settings, critic, critic_goal)
    alone = optimise_latents(loaded, z0, goal, porosity, replace(settings, critic_weight=0.0))[0]
    before, after, regressor = (
        np.median(np.abs(critic_k_xx(z) - goal_k)) for z in (z0, with_critic, alone)
    )
    assert after < 0.5 * before and after < regressor


def test_refinement_is_bounded_by_the_lbm_budget_and_keeps_verified_images(trained_run):
    run, data = trained_run
    loaded, store = load_model(run), open_dataset(data)
    critic, _ = find_critic(run, loaded)
    row = store.manifest.iloc[int(np.argmax(store.manifest["porosity"]))]
    target = {"porosity": 0.5, "k_xx": float(row["k_xx"]) / 4, "k_zz": float(row["k_zz"]) / 4}
    settings = InverseSettings(candidates=2, starts=6, steps=20, lbm_budget=5)
    pool = design_pool(loaded, store)
    table, images = design(loaded, target, pool, settings, FAST_LBM, critic=critic)
    assert len(table) == 2 and table["lbm_solves"].between(1, 4).all()
    assert table["lbm_solves"].sum() <= 5
    for i, image in enumerate(images):  # the reported values are those of the kept image
        k = permeability(image, FAST_LBM).k
        assert table["verified_k_xx"].iloc[i] == pytest.approx(k[0, 0], rel=1e-6, abs=1e-12)
        assert table["verified_porosity"].iloc[i] == image.mean()
    # the first round alone (budget = candidates): refinement only keeps a better structure
    first = design(loaded, target, pool, replace(settings, lbm_budget=2), FAST_LBM, critic=critic)[
        0
    ]
    assert (first["lbm_solves"] == 1).all()
    assert table["score"].iloc[0] <= first["score"].iloc[0]
    # active learning: the critic learns every verified design, on no extra LBM solve
    learner = CriticLearner(critic, pool, steps=2, batch=4)
    learned = design(loaded, target, pool, settings, FAST_LBM, critic=critic, learner=learner)[0]
    assert learner.summary()["designs"] == learned["lbm_solves"].sum() <= 5
    assert len(learner.history) >= 1 and learner.critic is not critic


def test_min_novelty_rejects_near_copies_and_json_is_strict(trained_run, tmp_path, run_cli):
    run, _ = trained_run
    argv = ["inverse", "--model", run, "--target", "porosity=0.5", "--candidates", "2",
            "--steps", "5", "--max-steps", "2000", "--json"]  # fmt: skip
    code, stdout, stderr = run_cli(*argv, "--min-novelty", "0.99", "--out", tmp_path / "a")
    assert code == 1, stderr
    (row,) = json.loads(stdout, parse_constant=pytest.fail)  # no NaN / Infinity
    assert row["status"] == "no_novel_design" and row["score"] is None
    assert "novelty < 0.99" in row["note"] and isinstance(row["baseline_success"], bool)
    code, stdout, stderr = run_cli(*argv, "--out", tmp_path / "b")
    assert code == 0, stderr
    (row,) = json.loads(stdout, parse_constant=pytest.fail)
    assert 0 <= row["novelty"] <= 1 and row["status"] == "designed"
    assert {"baseline_sample", "baseline_score", "baseline_success"} <= set(row)


def test_critic_beside_the_model_is_preferred(trained_run, tmp_path):
    import shutil

    run, data = trained_run
    loaded = load_model(run)
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    shutil.copyfile(data / "surrogate.pt", folder / "critic.pt")
    assert find_critic(folder, loaded)[1] == folder / "critic.pt"
    with pytest.raises(PvaeError, match="no such critic"):
        find_critic(folder, loaded, tmp_path / "missing.pt")
    bare = replace(loaded, dataset_path=str(tmp_path))  # a dataset without surrogate.pt
    assert find_critic(run, bare) == (None, None)
