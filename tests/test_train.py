"""Training loop: determinism, exact resume, nested subsets, NaN handling, checkpoints."""

import dataclasses

import numpy as np
import pytest
import torch

from pvae.core.errors import PvaeError
from pvae.data.microstructures import synthesize
from pvae.data.splits import make_splits, training_subset
from pvae.data.store import open_dataset, rewrite_manifest
from pvae.data.store.manifest import K_COLUMNS
from pvae.vae.config import experiment_from_dict, load_experiment
from pvae.vae.train import Trainer, model_from_checkpoint, read_checkpoint

TINY = {"model": {"latent_dim": 4, "base_channels": 4, "regressor_hidden": [16]},
        "train": {"epochs": 2, "batch_size": 8, "augment": True}}  # fmt: skip


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """40 foam samples at 16^3 with a cheap stand-in permeability label.

    The label is a deterministic function of each image (porosity-based), so these
    tests exercise the training machinery without running LBM; physics-labelled
    training is covered by the study and benchmark.
    """
    root = synthesize("foam", 40, 16, seed=2, out=tmp_path_factory.mktemp("d") / "foam",
                      workers=1, progress=False)  # fmt: skip
    store = open_dataset(root)
    frame = store.manifest.copy()
    n = frame["porosity"].to_numpy()
    tensor = np.einsum("n,ij->nij", n**3 / (1 - n) ** 2, np.diag([1.0, 1.2, 0.8]))
    frame[list(K_COLUMNS)] = tensor.reshape(len(n), 9)
    frame["label_source"] = "lbm"
    rewrite_manifest(root, frame)
    return root


def config(**train):
    data = {"model": dict(TINY["model"]), "train": {**TINY["train"], **train}}
    return experiment_from_dict(data)


def test_same_seed_same_run_different_seed_differs(labelled):
    a = list(Trainer(config(), labelled).run())
    b = list(Trainer(config(), labelled).run())
    c = list(Trainer(config(seed=1), labelled).run())
    assert [m["train_loss"] for m in a] == [m["train_loss"] for m in b]
    assert a[-1]["val_objective"] == b[-1]["val_objective"]
    assert a[-1]["train_loss"] != c[-1]["train_loss"]


def test_resume_equals_uninterrupted(labelled, tmp_path):
    uninterrupted = Trainer(config(epochs=3), labelled)
    full = list(uninterrupted.run())
    first = Trainer(config(epochs=1), labelled)
    list(first.run())
    first.save(tmp_path / "ck.pt")
    resumed = Trainer.resume(tmp_path / "ck.pt")
    resumed.config = dataclasses.replace(resumed.config, train=config(epochs=3).train)
    rest = list(resumed.run())
    assert [m["epoch"] for m in rest] == [2, 3]
    assert rest[-1]["train_loss"] == full[-1]["train_loss"]
    assert rest[-1]["val_objective"] == full[-1]["val_objective"]
    for p, q in zip(
        resumed.model.parameters(),
        Trainer(config(epochs=3), labelled).model.parameters(),
        strict=True,
    ):
        assert p.shape == q.shape


def test_nested_training_subsets():
    splits = make_splits(200, seed=3)
    assert set(splits["train"]).isdisjoint(splits["val"]) and set(splits["val"]).isdisjoint(
        splits["test"]
    )
    assert len(splits["train"]) + len(splits["val"]) + len(splits["test"]) == 200
    small, large = training_subset(splits["train"], 30), training_subset(splits["train"], 90)
    assert len(small) == 30 and set(small) <= set(large)
    assert make_splits(200, seed=3) == splits != make_splits(200, seed=4)


def test_dataset_size_capped_with_warning(labelled):
    with pytest.warns(UserWarning, match="exceeds the training split"):
        trainer = Trainer(config(dataset_size=10_000), labelled)
    assert len(trainer.train_indices) == len(trainer.splits["train"])
    assert len(Trainer(config(dataset_size=8), labelled).train_indices) == 8


def test_epoch_samples_cycle_through_a_small_subset(labelled):
    trainer = Trainer(config(dataset_size=8, epoch_samples=24), labelled)
    drawn = list(trainer._loader(trainer.train_indices, True, False, 1, 24).sampler)
    assert len(drawn) == 24
    assert np.bincount(drawn, minlength=8).tolist() == [3] * 8  # three whole shuffled passes
    assert drawn[:8] != drawn[8:16]
    history = list(trainer.run())
    assert [m["dataset_size"] for m in history] == [8, 8]
    assert all(m["status"] == "ok" for m in history)
    with pytest.raises(PvaeError, match="epoch_samples 0"):
        config(epoch_samples=0)


def test_diverging_run_stops_with_status(labelled):
    history = list(Trainer(config(lr=1e12, epochs=5), labelled).run())
    assert history[-1]["status"] == "diverged"
    assert len(history) < 5


def test_checkpoint_round_trip_is_weights_only(labelled, tmp_path):
    trainer = Trainer(config(), labelled)
    list(trainer.run())
    trainer.save(tmp_path / "ck.pt")
    state = torch.load(tmp_path / "ck.pt", weights_only=True)  # no arbitrary unpickling
    for key in (
        "experiment",
        "model_state",
        "normalizer",
        "dataset_fingerprint",
        "code_version",
        "splits",
    ):
        assert key in state
    assert state["dataset_fingerprint"] == open_dataset(labelled).fingerprint
    model, normalizer = model_from_checkpoint(state)
    x = torch.from_numpy(open_dataset(labelled).images([0, 1])).float()[:, None]
    trainer.model.eval()
    assert torch.allclose(model(x)["prediction"], trainer.model(x)["prediction"])
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(PvaeError, match="not a readable pvae checkpoint"):
        read_checkpoint(tmp_path / "bad.pt")


def test_run_directory_and_cli(labelled, tmp_path, run_cli):
    experiment = tmp_path / "tiny.yaml"
    experiment.write_text(
        "name: tiny\nmodel: {latent_dim: 4, base_channels: 4}\ntrain: {epochs: 2, batch_size: 8}\n"
    )
    out = tmp_path / "run"
    code, stdout, _ = run_cli(
        "train", "--experiment", experiment, "--dataset", labelled, "--out", out
    )
    assert code == 0 and "complete: 2 epochs" in stdout
    for name in ("config.yaml", "splits.json", "history.parquet", "summary.json",
                 "checkpoints/best.pt", "checkpoints/last.pt"):  # fmt: skip
        assert (out / name).is_file()
    code, _, err = run_cli("train", "--experiment", experiment, "--dataset", labelled, "--out", out)
    assert code == 2 and "--resume" in err
    experiment.write_text(
        "name: tiny\nmodel: {latent_dim: 4, base_channels: 4}\ntrain: {epochs: 3, batch_size: 8}\n"
    )
    code, stdout, _ = run_cli(
        "train", "--experiment", experiment, "--dataset", labelled, "--out", out, "--resume"
    )
    assert "complete: 3 epochs" in stdout
    import json

    code, stdout, _ = run_cli("evaluate", "--model", out, "--json", "--out", tmp_path / "ev")
    metrics = json.loads(stdout)
    assert set(metrics["r2"]) == {"porosity", "log10_k_xx", "log10_k_yy", "log10_k_zz"}
    assert {"dice", "porosity_mae", "n_samples"} <= set(metrics)
    assert metrics["n_samples"] == len(
        read_checkpoint(out / "checkpoints/best.pt")["splits"]["test"]
    )
    for name in ("metrics.json", "samples.parquet", "parity.png", "slices.png"):
        assert (tmp_path / "ev" / name).is_file()


def test_bad_experiment_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {latent_dims: 4}\n")
    with pytest.raises(PvaeError, match="bad.yaml: model: unknown key 'latent_dims'"):
        load_experiment(bad)
    bad.write_text("train: {split: [0.5, 0.5, 0.5]}\n")
    with pytest.raises(PvaeError, match="split"):
        load_experiment(bad)
    bad.write_text("[1, 2")
    with pytest.raises(PvaeError, match="not valid YAML"):
        load_experiment(bad)


def test_bfloat16_steps_on_cpu_train_to_a_finite_loss(labelled):
    """``train.amp_cpu``: bfloat16 training steps where the CPU has them, float32
    validation; the run completes with finite losses either way."""
    history = list(Trainer(config(amp_cpu=True), labelled).run())
    assert all(np.isfinite(m["train_loss"]) and np.isfinite(m["val_objective"]) for m in history)
