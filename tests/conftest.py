"""Shared fixtures: small seeded datasets and a CLI runner."""

import numpy as np
import pytest

from pvae.cli import main
from pvae.data.microstructures import synthesize


@pytest.fixture(scope="session")
def spheres_dataset(tmp_path_factory):
    """20 overlapping-sphere samples at 16 x 24 x 32 (z, y, x), seed 7."""
    out = tmp_path_factory.mktemp("data") / "spheres"
    return synthesize("spheres", 20, "16x24x32", seed=7, out=out, workers=1, progress=False)


@pytest.fixture
def run_cli(capsys):
    """Run ``pvae`` in-process: returns (exit status, stdout, stderr)."""

    def run(*argv):
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def ray_cluster():
    """A small private Ray shared by the tests that need one.

    Its own session folder (not ``/tmp/ray``) and ports; ``ray.shutdown()`` ends the
    processes it started and nothing else: a study or another test run on the same
    machine keeps its Ray.
    """
    import os
    import shutil
    import tempfile

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(
        address="local",  # its own, even beside a `ray start` cluster on this machine
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 2**20,
        log_to_driver=False,
        configure_logging=False,
        _temp_dir=(folder := tempfile.mkdtemp(prefix="ray-test-")),  # short: socket paths
    )
    yield ray
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


def lbm_label(root, settings=None) -> None:
    """Label a small dataset by LBM in-process (no Ray), as ``pvae data label`` would."""
    from pvae.data.store import open_dataset
    from pvae.data.store.labelling import LabelJournal, label_batch, merge_journal, settings_key
    from pvae.physics.lbm import LBMSettings

    settings = settings or LBMSettings(tol=1e-4, check_every=50)
    journal = LabelJournal(root, settings_key(settings))
    journal.add(label_batch(root, np.arange(len(open_dataset(root))), settings))
    merge_journal(root, journal)


def tiny_critic(data) -> None:
    """Give ``data`` a tiny surrogate critic of its own (``surrogate.pt``: 2 members,
    2 epochs), as the default dataset ships one for training-time fidelity."""
    from pvae.data.store.layout import SURROGATE
    from pvae.surrogate import SurrogateConfig, TrainSettings, train_ensemble

    settings = TrainSettings(members=2, epochs=2, batch_size=8, device="cpu")
    critic = train_ensemble([data], SurrogateConfig(channels=(4, 8)), settings, progress=False)
    critic.save(data / SURROGATE)


@pytest.fixture(scope="session")
def labelled64(tmp_path_factory, ray_cluster):
    """64 labelled overlapping-sphere samples at 16^3 (training split: 44 samples), labelled
    by LBM as Ray tasks, with a tiny surrogate critic for the experiments that measure
    fidelity while training."""
    from pvae.physics.lbm import LBMSettings
    from tune.labelling import label_dataset

    out = tmp_path_factory.mktemp("tune-data") / "spheres64"
    synthesize("spheres", 64, 16, seed=3, out=out, workers=1, progress=False)
    label_dataset(out, LBMSettings(tol=1e-4, check_every=50), progress=False)
    tiny_critic(out)
    return out


@pytest.fixture(scope="session")
def tiny_labelled(tmp_path_factory):
    """48 LBM-labelled sphere packings at 16^3 (seed 11), with a tiny surrogate critic
    (:func:`tiny_critic`)."""
    base = tmp_path_factory.mktemp("tiny")
    data = synthesize("spheres", 48, 16, seed=11, out=base / "data", workers=1, progress=False)
    lbm_label(data)
    tiny_critic(data)
    return data


def _train_tiny(data, folder, model: dict):
    from pvae.vae.config import experiment_from_dict
    from pvae.vae.runs import train_run

    config = experiment_from_dict(
        {"name": "tiny", "model": model, "train": {"epochs": 12, "batch_size": 8, "lr": 3e-3}}
    )
    train_run(config, data, folder, progress=False)
    return folder, data


@pytest.fixture(scope="session")
def trained_run(tiny_labelled, tmp_path_factory):
    """A tiny flat-latent pVAE trained for a few epochs on :func:`tiny_labelled`.

    Returns (run directory, dataset directory).
    """
    model = {"latent_dim": 6, "base_channels": 4, "regressor_hidden": [32]}
    return _train_tiny(tiny_labelled, tmp_path_factory.mktemp("trained") / "run", model)


@pytest.fixture(scope="session")
def trained_spatial_run(tiny_labelled, tmp_path_factory):
    """A tiny spatial-latent pVAE (2 x 4^3 latent, residual blocks) on :func:`tiny_labelled`.

    Returns (run directory, dataset directory).
    """
    model = {"latent_layout": "spatial", "latent_dim": 128, "depth": 2, "base_channels": 4,
             "max_channels": 8, "res_blocks": 1, "regressor_hidden": [32]}  # fmt: skip
    return _train_tiny(tiny_labelled, tmp_path_factory.mktemp("spatial") / "run", model)
