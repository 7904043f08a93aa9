"""Validation design success during training (pvae.design.probe) and in the study metric."""

import numpy as np
import pandas as pd
import pytest

import pvae
from pvae.core.errors import PvaeError
from pvae.data.store import open_dataset
from pvae.design.inverse import estimated_score
from pvae.design.pool import design_pool
from pvae.design.probe import PROBE_SETTINGS, DesignProbe, design_probe
from pvae.vae.config import experiment_from_dict
from pvae.vae.fidelity import critic_surrogate
from pvae.vae.runs import train_run
from pvae.vae.train import Trainer

SPATIAL = {"latent_layout": "spatial", "latent_dim": 128, "depth": 2, "base_channels": 4,
           "max_channels": 8, "res_blocks": 1, "regressor_hidden": [16]}  # fmt: skip


def test_a_reachable_target_scores_better_than_an_unreachable_one(trained_spatial_run):
    run, data = trained_spatial_run
    loaded = pvae.load_model(run)
    store = open_dataset(data)
    pool = design_pool(loaded, store)
    critic = critic_surrogate(None, store)
    row = store.manifest.iloc[int(pool.rows[0])]
    near = {"porosity": row.porosity, "k_xx": row.k_xx, "k_yy": row.k_yy, "k_zz": row.k_zz}
    far = near | {"k_xx": row.k_xx * 1e4, "k_yy": row.k_yy * 1e4, "k_zz": row.k_zz * 1e4}
    scores = [estimated_score(loaded, t, pool, PROBE_SETTINGS, critic) for t in (near, far)]
    assert np.isfinite(scores).all() and min(scores) >= 0
    assert scores[1] > scores[0] + 30  # 4 decades off: about 40 tolerance units worse


def test_training_carries_design_success_into_the_study_metric(tiny_labelled, tmp_path):
    config = experiment_from_dict({
        "name": "probe", "model": SPATIAL,
        "train": {"epochs": 3, "batch_size": 8, "design_every": 5, "design_targets": 2,
                  "design_weight": 0.5},
    })  # fmt: skip
    probe, measured = design_probe(config), []

    def recording(trainer):
        measured.append(len(trainer.history) + 1)  # the epoch being reported
        return probe(trainer)

    train_run(config, tiny_labelled, tmp_path / "run", progress=False, design_probe=recording)
    assert measured == [1, 3]  # the first and the last epoch; epoch 2 carries epoch 1's
    assert len(probe.targets) == 2 and len(probe.pool.rows) > 0
    history = pd.read_parquet(tmp_path / "run" / "history.parquet")
    assert history["val_design_success"].between(0, 1).all()
    assert (history["val_design_score"] >= 0).all()
    assert history.loc[1, "val_design_score"] == history.loc[0, "val_design_score"]
    expected = (history["val_recon"] + history["val_reg"]
                + 0.5 * (1 - history["val_design_success"]))  # fmt: skip
    np.testing.assert_allclose(history["val_objective"], expected, rtol=1e-9)
    # the probe's targets are validation samples' property vectors, its pool the training subset
    trainer = Trainer(config, tiny_labelled, "cpu", probe)
    val_porosity = set(open_dataset(tiny_labelled).manifest["porosity"].iloc[trainer.splits["val"]])
    assert {t["porosity"] for t in probe.targets} <= val_porosity
    assert set(probe.pool.rows) <= set(trainer.train_indices)


def test_design_settings_are_checked(tiny_labelled):
    config = experiment_from_dict({"model": SPATIAL, "train": {"design_every": 1}})
    with pytest.raises(PvaeError, match="design probe"):
        Trainer(config, tiny_labelled, "cpu")
    assert isinstance(design_probe(config), DesignProbe)
    assert design_probe(experiment_from_dict({})) is None
    with pytest.raises(PvaeError, match="design_every >= 1"):
        experiment_from_dict({"train": {"design_weight": 1.0}})
    with pytest.raises(PvaeError, match="design_targets >= 1"):
        experiment_from_dict({"train": {"design_every": 1, "design_targets": 0}})
