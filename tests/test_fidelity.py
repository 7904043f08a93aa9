"""Fidelity of decoded structures: the metric, the critic, evaluation and training."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import lbm_label

from pvae.core.errors import PvaeError
from pvae.data.microstructures import synthesize
from pvae.data.store import open_dataset, rewrite_manifest
from pvae.data.store.layout import SURROGATE
from pvae.data.store.manifest import K_COLUMNS, K_DIAGONAL
from pvae.physics.lbm import LBMSettings
from pvae.surrogate import TrainSettings, train_ensemble
from pvae.surrogate.model import SurrogateConfig
from pvae.vae.bundle import write_bundle_core, write_torchscript
from pvae.vae.config import experiment_from_dict
from pvae.vae.fidelity import (
    Critic,
    compare_structures,
    fidelity_summary,
    log10_k_errors,
    spread_positions,
)
from pvae.vae.loading import load_model
from pvae.vae.train import Trainer

FAST_LBM = LBMSettings()
SPATIAL = {"latent_layout": "spatial", "latent_dim": 128, "depth": 2, "base_channels": 4,
           "max_channels": 8, "res_blocks": 1, "regressor_hidden": [16]}  # fmt: skip


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """24 LBM-labelled sphere packings at 16^3 with their own surrogate critic."""
    root = synthesize("spheres", 24, 16, seed=5, out=tmp_path_factory.mktemp("f") / "sph",
                      workers=1, progress=False)  # fmt: skip
    lbm_label(root, FAST_LBM)
    settings = TrainSettings(members=2, epochs=2, batch_size=8, device="cpu")
    ensemble = train_ensemble([root], SurrogateConfig(channels=(4, 8)), settings, progress=False)
    ensemble.save(root / SURROGATE)
    return root


def test_log10_errors_treat_blocked_directions_exactly():
    measured = np.array([[1.0, 0.0, 0.0], [10.0, 2.0, np.nan]])
    source = np.array([[0.1, 0.0, 3.0], [10.0, 2.0, 1.0]])
    errors = log10_k_errors(measured, source)
    assert errors[0, 0] == pytest.approx(1.0)
    assert errors[0, 1] == 0.0  # both blocked: they agree
    assert errors[0, 2] == np.inf  # blocked against open
    assert errors[1, 0] == errors[1, 1] == 0.0 and np.isnan(errors[1, 2])


def test_a_structure_compared_with_itself_has_fidelity_zero(labelled):
    store = open_dataset(labelled)
    images = store.images(range(6))
    k = store.manifest[list(K_DIAGONAL)].to_numpy()[:6]
    table = compare_structures(images, images, k, Critic("lbm", lbm=FAST_LBM))
    summary = fidelity_summary(table, "lbm")
    assert summary["median_log10_k_error"] == pytest.approx(0.0, abs=1e-9)
    assert summary["within_tolerance"] == 1.0 and summary["n_samples"] == 6
    # a different structure of the same porosity is measured as different
    flipped = np.roll(images, 1, axis=0)
    other = fidelity_summary(compare_structures(flipped, images, k, Critic("lbm", lbm=FAST_LBM)),
                             "lbm")  # fmt: skip
    assert other["median_log10_k_error"] > 0.05 and other["within_tolerance"] < 1.0


def test_spread_positions():
    assert spread_positions(10, None).tolist() == list(range(10))
    assert spread_positions(10, 3).tolist() == [0, 4, 9]  # linspace 0, 4.5, 9 rounded (even)
    assert spread_positions(5, 0).size == 0 and spread_positions(3, 8).tolist() == [0, 1, 2]


def spatial_config(epochs=2, **train):
    return experiment_from_dict({"model": SPATIAL, "train": {"epochs": epochs, "batch_size": 8,
                                                             **train}})  # fmt: skip


def test_training_reports_fidelity_and_it_can_enter_the_study_metric(labelled):
    plain = list(Trainer(spatial_config(fidelity_every=1), labelled).run())
    assert {"val_fidelity", "val_fidelity_success"} <= set(plain[-1])
    assert 0.0 <= plain[-1]["val_fidelity_success"] <= 1.0 and plain[-1]["val_fidelity"] >= 0
    weighted = list(Trainer(spatial_config(fidelity_every=1, fidelity_weight=2.0), labelled).run())
    penalty = 2.0 * (1.0 - weighted[-1]["val_fidelity_success"])
    assert weighted[-1]["val_objective"] == pytest.approx(
        plain[-1]["val_objective"] + penalty, rel=1e-9
    )
    every_other = list(Trainer(spatial_config(epochs=3, fidelity_every=2), labelled).run())
    assert ["val_fidelity" in m for m in every_other] == [False, True, True]  # and the last
    with pytest.raises(PvaeError, match="fidelity_every = 1"):
        spatial_config(fidelity_weight=1.0, fidelity_every=2)


def test_spatial_model_trains_resumes_exactly_exports_and_reloads(labelled, tmp_path):
    full = list(Trainer(spatial_config(epochs=3), labelled).run())
    first = Trainer(spatial_config(epochs=1), labelled)
    list(first.run())
    first.save(tmp_path / "ck.pt")
    resumed = Trainer.resume(tmp_path / "ck.pt")
    resumed.config = spatial_config(epochs=3)
    rest = list(resumed.run())
    assert rest[-1]["train_loss"] == full[-1]["train_loss"]
    assert rest[-1]["val_objective"] == full[-1]["val_objective"]

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    write_bundle_core(bundle, resumed.state(), {"metrics": {}, "provenance": {}})
    write_torchscript(resumed.model, bundle)
    loaded = load_model(bundle)
    assert loaded.model.spatial and loaded.model.latent_shape == resumed.model.latent_shape
    x = torch.from_numpy(open_dataset(labelled).images([0, 1])).float()[:, None]
    resumed.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model(x)["logits"], resumed.model(x)["logits"])
        mu, _, _ = torch.jit.load(bundle / "model.torchscript.pt")(x)
        assert torch.allclose(mu, resumed.model(x)["mu"], atol=1e-5)


def test_evaluate_reports_fidelity_by_lbm_and_surrogate(labelled, tmp_path, run_cli):
    trainer = Trainer(spatial_config(epochs=2), labelled)
    list(trainer.run())
    trainer.save(tmp_path / "model.pt")
    code, out, err = run_cli("evaluate", "--model", tmp_path / "model.pt", "--json",
                             "--fidelity-samples", "3", "--out", tmp_path / "eval")  # fmt: skip
    assert code == 0, err
    metrics = json.loads(out)
    fidelity = metrics["fidelity"]
    assert fidelity["method"] == "lbm" and fidelity["n_samples"] == 3
    assert set(fidelity) == {"method", "n_samples", "median_log10_k_error", "within_tolerance"}
    assert set(metrics["per_family"]) == {"spheres"}
    assert metrics["per_family"]["spheres"]["dice"] == pytest.approx(metrics["dice"])
    samples = pd.read_parquet(tmp_path / "eval" / "samples.parquet")
    assert samples["fidelity_within"].notna().sum() == 3
    assert samples["fidelity_log10_k_error"].notna().sum() == 3

    code, out, err = run_cli("evaluate", "--model", tmp_path / "model.pt", "--json",
                             "--fidelity-method", "surrogate")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["fidelity"]["method"] == "surrogate"


def test_bad_critics_and_unlabelled_data_are_refused(labelled, tmp_path, run_cli):
    trainer = Trainer(spatial_config(epochs=1), labelled)
    list(trainer.run())
    trainer.save(tmp_path / "model.pt")
    # a surrogate for another image shape
    other = synthesize("spheres", 6, "16x16x24", seed=1, out=tmp_path / "other", workers=1,
                       progress=False)  # fmt: skip
    lbm_label(other, FAST_LBM)
    settings = TrainSettings(members=1, epochs=1, batch_size=4, device="cpu")
    wrong = train_ensemble([other], SurrogateConfig(channels=(4,)), settings, progress=False)
    wrong.save(tmp_path / "wrong_shape.pt")
    # a surrogate whose labels are in other units
    foreign = train_ensemble([labelled], SurrogateConfig(channels=(4,)), settings, progress=False)
    foreign.info["units"] = {"permeability": "m^2", "convention": "pore-averaged"}
    foreign.save(tmp_path / "foreign.pt")
    for bundle, problem in (("wrong_shape.pt", "image shape"), ("foreign.pt", "units")):
        code, out, err = run_cli("evaluate", "--model", tmp_path / "model.pt",
                                 "--fidelity-method", "surrogate", "--surrogate",
                                 tmp_path / bundle)  # fmt: skip
        assert code == 2 and out == "" and problem in err and len(err.strip().splitlines()) == 1

    # unlabelled data: fidelity refused with one line, fine without it
    bare = tmp_path / "bare"
    shutil.copytree(labelled, bare)
    frame = open_dataset(bare).manifest.copy()
    frame[list(K_COLUMNS)] = np.nan
    frame["label_source"] = ""
    rewrite_manifest(bare, frame)
    args = ("evaluate", "--model", tmp_path / "model.pt", "--dataset", bare, "--split", "all")
    code, out, err = run_cli(*args)
    errors = [line for line in err.splitlines() if line.startswith("pvae: error")]
    assert code == 2 and len(errors) == 1 and "unlabelled" in errors[0]
    code, out, err = run_cli(*args, "--fidelity-samples", "0")
    assert code == 0, err
    # training with fidelity: unlabelled validation samples, then a missing critic
    with pytest.raises(PvaeError, match="unlabelled"):
        Trainer(spatial_config(fidelity_every=1), bare)
    (bare / SURROGATE).unlink()
    with pytest.raises(PvaeError, match="no surrogate.pt"):
        Trainer(spatial_config(fidelity_every=1), bare)
