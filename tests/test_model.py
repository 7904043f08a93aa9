"""pVAE model and loss: shapes for many sizes, loss terms vs. hand computation."""

import math

import pytest
import torch

from pvae.config import ModelConfig
from pvae.losses import kl_per_sample, masked_mse, pvae_loss, reconstruction_bce
from pvae.model import PVAE, default_depth, stage_shapes


@pytest.mark.parametrize(
    "shape", [(16, 16, 16), (17, 23, 31), (32, 32, 32), (16, 40, 24), (48, 48, 48)]
)
def test_decoder_returns_exactly_the_input_shape(shape):
    model = PVAE(ModelConfig(latent_dim=4, base_channels=2, regressor_hidden=(8,)), shape)
    x = torch.randint(0, 2, (2, 1, *shape)).float()
    out = model(x)
    assert out["logits"].shape == x.shape
    assert out["mu"].shape == out["logvar"].shape == out["z"].shape == (2, 4)
    assert out["prediction"].shape == (2, 4)


@pytest.mark.parametrize("side", [64, 128, 200, 256])
def test_large_sizes_shapes_and_small_flatten(side):
    model = PVAE(ModelConfig(), (side,) * 3)
    assert model.shapes[-1] == (2, 2, 2) if side <= 256 else True
    counts = model.parameter_counts()
    # the research code spent 33M of 35M parameters in one flatten layer
    assert counts["flatten_layers"] < 0.2 * counts["total"]
    z = torch.zeros(1, model.config.latent_dim)
    if side <= 128:
        assert model.decode(z).shape == (1, 1, side, side, side)


def test_stage_geometry():
    assert default_depth((200, 200, 200)) == 7
    assert stage_shapes((200, 200, 200), 3) == [(100, 100, 100), (50, 50, 50), (25, 25, 25)]
    assert stage_shapes((17, 16, 15), 1) == [(9, 8, 8)]


def test_eval_mode_is_deterministic_and_train_mode_samples():
    model = PVAE(ModelConfig(latent_dim=4, base_channels=2), (16, 16, 16))
    x = torch.randint(0, 2, (2, 1, 16, 16, 16)).float()
    model.eval()
    a, b = model(x), model(x)
    assert torch.equal(a["z"], a["mu"]) and torch.equal(a["logits"], b["logits"])
    model.train()
    assert not torch.equal(model(x)["z"], model(x)["mu"])


def test_loss_terms_match_hand_computation():
    logits = torch.tensor([2.0, -1.0, 0.5, 0.0]).view(1, 1, 1, 2, 2)
    x = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 1, 1, 2, 2)
    by_hand = -(math.log(1 / (1 + math.exp(-2))) + math.log(1 - 1 / (1 + math.exp(1)))
                + math.log(1 - 1 / (1 + math.exp(-0.5))) + math.log(0.5)) / 4  # fmt: skip
    assert reconstruction_bce(logits, x).item() == pytest.approx(by_hand, rel=1e-6)

    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]])
    kl = 0.5 * (1.0 + 0 + (0 + 4 - 1 - math.log(4.0)))
    assert kl_per_sample(mu, logvar).item() == pytest.approx(kl)

    pred = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    target = torch.tensor([[0.0, float("nan")], [2.0, 1.0]])
    assert masked_mse(pred, target).item() == pytest.approx((1 + 4 + 1) / 3)  # NaN masked

    out = {"logits": logits, "mu": mu, "logvar": logvar, "prediction": pred[:1]}
    parts = pvae_loss(out, x, target[:1], beta=0.5, gamma=2.0)
    assert parts.kl.item() == pytest.approx(kl / 4)  # per voxel
    assert parts.total.item() == pytest.approx(by_hand + 0.5 * kl / 4 + 2.0 * 1.0, rel=1e-6)


def test_all_targets_unknown_gives_zero_regression_loss():
    pred = torch.ones(3, 2, requires_grad=True)
    loss = masked_mse(pred, torch.full((3, 2), float("nan")))
    loss.backward()
    assert loss.item() == 0 and torch.equal(pred.grad, torch.zeros(3, 2))
