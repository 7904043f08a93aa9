"""The pVAE learns porosity with either padding and either latent layout (issue 27).

The cause of issue 27: GroupNorm takes each group's mean over the volume away. In a
circularly padded network every convolution is shift-equivariant, so a channel's mean
over the volume is an affine function of the input's mean, the porosity, and one
channel per group (GroupNorm(8) on the 8-channel first stage of the README's smallest
model) erased it before anything could read it. Zero padding hid the fault: the padded
border is a fixed reference level that the mean is measured against.
"""

import numpy as np
import pytest
import torch

from pvae.vae.config import SAVED_BEFORE_NORM_GROUPS, ModelConfig, saved_experiment
from pvae.vae.model import PVAE

FLAT = {"latent_dim": 8, "base_channels": 8, "max_channels": 32, "regressor_hidden": (32,)}
SPATIAL = {**FLAT, "latent_layout": "spatial", "latent_dim": 512}  # 1 channel on 8^3 cells


@pytest.mark.parametrize("layout", [FLAT, SPATIAL], ids=["flat", "spatial"])
def test_first_stage_tells_an_open_volume_from_a_solid_one(layout):
    """All pore and all solid: the first encoder stage's features must differ. With one
    channel per group (the layout saved before ``norm_groups``) both normalise to zero, up
    to rounding: on CPU the stage runs channels-last, where PyTorch's GroupNorm takes the
    variance as E[x^2] - E[x]^2, and a constant channel's rounding residue, divided by
    sqrt(eps), is about 1e-3."""
    x = torch.stack([torch.ones(1, 16, 16, 16), torch.zeros(1, 16, 16, 16)])  # (2, 1, D, H, W)

    def first_stage(config):
        torch.manual_seed(0)
        features = PVAE(config, (16, 16, 16)).eval().encoder[0](2 * x - 1)  # (2, 8, 8, 8, 8)
        return (features[0] - features[1]).abs().max().item()

    assert first_stage(ModelConfig(**layout)) > 0.1
    assert first_stage(ModelConfig(**layout, norm_groups=SAVED_BEFORE_NORM_GROUPS)) < 1e-2


def test_models_saved_before_norm_groups_are_rebuilt_as_they_were_trained():
    saved = {"name": "old", "model": {"latent_dim": 8}, "train": {}}
    assert saved_experiment(saved)["model"]["norm_groups"] == SAVED_BEFORE_NORM_GROUPS
    kept = {**saved, "model": {"latent_dim": 8, "norm_groups": 1}}
    assert saved_experiment(kept)["model"]["norm_groups"] == 1


def test_an_old_checkpoint_loads_with_its_own_norm(trained_run, tmp_path):
    from pvae.vae.loading import load_model
    from pvae.vae.runs import resolve_checkpoint

    run, _ = trained_run
    state = torch.load(resolve_checkpoint(run), map_location="cpu", weights_only=True)
    del state["experiment"]["model"]["norm_groups"]
    torch.save(state, tmp_path / "old.pt")
    model = load_model(tmp_path / "old.pt").model
    first_norm = model.encoder[0][1]
    assert first_norm.num_groups == min(SAVED_BEFORE_NORM_GROUPS, first_norm.num_channels)


@pytest.fixture(scope="module")
def sphere_sets(tmp_path_factory):
    """96 sphere packings at 16^3 (the issue's set) and 64 at 32^3, LBM-labelled."""
    from conftest import lbm_label

    from pvae.data.microstructures import synthesize

    base = tmp_path_factory.mktemp("porosity-learning")
    sets = {}
    for side, count in ((16, 96), (32, 64)):
        data = synthesize("spheres", count, side, seed=5, out=base / f"s{side}", workers=1,
                          progress=False)  # fmt: skip
        lbm_label(data)
        sets[side] = data
    return sets


@pytest.mark.slow
@pytest.mark.parametrize("side", [16, 32])
@pytest.mark.parametrize("padding", ["circular", "zeros"])
@pytest.mark.parametrize("layout", [FLAT, SPATIAL], ids=["flat", "spatial"])
def test_small_models_learn_porosity(sphere_sets, tmp_path, side, padding, layout):
    """The issue's configuration (30 epochs, batch 8) reaches a test R^2 of porosity
    >= 0.9 at 16^3 (67 training samples) and >= 0.85 at 32^3 (44 training samples); before
    the fix the circular flat model scored -0.45 at 16^3. Measured after the fix: 0.98-0.99
    at 16^3, 0.92-0.93 at 32^3 (both paddings, both layouts)."""
    from pvae.vae.config import experiment_from_dict
    from pvae.vae.evaluate import evaluate
    from pvae.vae.runs import train_run

    config = experiment_from_dict(
        {
            "name": "c1",
            "model": {**layout, "padding": padding},
            "train": {"epochs": 30, "batch_size": 8, "device": "cpu"},
        }  # fmt: skip
    )
    train_run(config, sphere_sets[side], tmp_path / "run", progress=False)
    metrics = evaluate(tmp_path / "run", sphere_sets[side], "test", None, "cpu",
                       fidelity_samples=0)  # fmt: skip
    r2 = metrics["r2"]["porosity"]
    print(f"{side}^3 {padding} {layout.get('latent_layout', 'flat')}: R^2 porosity {r2:.3f}")
    assert np.isfinite(r2) and r2 >= (0.9 if side == 16 else 0.85)
