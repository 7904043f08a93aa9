"""pVAE model and loss: shapes for many sizes, loss terms vs. hand computation."""

import math

import pytest
import torch

from pvae.core.errors import PvaeError
from pvae.vae.config import ModelConfig
from pvae.vae.inference import autocast, cpu_bfloat16_native
from pvae.vae.losses import kl_per_sample, masked_mse, pvae_loss, reconstruction_bce
from pvae.vae.model import PVAE, default_depth, latent_grid, stage_shapes

SPATIAL = {"latent_layout": "spatial", "base_channels": 2, "max_channels": 4, "res_blocks": 1,
           "decoder_channels": 3, "regressor_hidden": (8,)}  # fmt: skip


def spatial_config(shape, channels=2, **extra):
    """A spatial-latent config with ``channels`` latent channels for ``shape`` images."""
    grid = latent_grid(ModelConfig(**{**SPATIAL, **extra}), shape)
    return ModelConfig(latent_dim=channels * math.prod(grid), **{**SPATIAL, **extra})


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
    assert model.shapes[-1] == (2, 2, 2)
    counts = model.parameter_counts()
    # the research code spent 33M of 35M parameters in one flatten layer
    assert counts["flatten_layers"] < 0.2 * counts["total"]
    z = torch.zeros(1, model.config.latent_dim)
    if side <= 128:
        assert model.decode(z).shape == (1, 1, side, side, side)


@pytest.mark.parametrize(
    "shape", [(16, 16, 16), (17, 23, 31), (32, 32, 32), (16, 40, 24), (64, 64, 64), (20, 32, 48)]
)
def test_spatial_latent_round_trips_every_shape(shape):
    config = spatial_config(shape)
    model = PVAE(config, shape)
    x = torch.randint(0, 2, (2, 1, *shape)).float()
    out = model(x)
    assert out["logits"].shape == x.shape
    assert out["mu"].shape == out["z"].shape == (2, config.latent_dim)
    assert model.latent_shape == (2, *latent_grid(config, shape))
    assert max(model.latent_shape[1:]) <= 8
    assert out["prediction"].shape == (2, 4)


@pytest.mark.parametrize("side", [128, 200, 256])
def test_spatial_latent_large_sides_decode_to_the_input_shape(side):
    shape = (side, 16, 16)  # one large side keeps the test small; the grid follows it
    model = PVAE(spatial_config(shape, channels=1), shape)
    assert model.latent_shape[1] <= 8
    with torch.no_grad():
        assert model.decode(torch.zeros(1, model.config.latent_dim)).shape == (1, 1, *shape)


def test_spatial_latent_dim_must_fill_the_grid():
    with pytest.raises(PvaeError, match="multiple of 512"):
        PVAE(ModelConfig(latent_dim=1000, latent_layout="spatial"), (32, 32, 32))


def test_circular_padding_paints_no_border_frame():
    """A uniform spatial latent decodes to a structure that repeats every latent cell
    with circular padding; zero padding paints the faces differently (the solid frame)."""
    shape = (16, 16, 16)
    for padding, periodic in (("circular", True), ("zeros", False)):
        torch.manual_seed(0)
        model = PVAE(spatial_config(shape, padding=padding), shape).eval()
        stride = shape[0] // model.latent_shape[1]
        with torch.no_grad():
            logits = model.decode(torch.ones(1, model.config.latent_dim))
        repeats = torch.allclose(logits, logits.roll(stride, dims=2), atol=1e-5)
        assert repeats is periodic


def test_spatial_decoding_commutes_with_periodic_shifts():
    shape = (32, 32, 32)
    torch.manual_seed(0)
    model = PVAE(spatial_config(shape), shape).eval()
    stride = shape[0] // model.latent_shape[1]  # voxels per latent cell
    z = torch.randn(1, *model.latent_shape)
    with torch.no_grad():
        logits = model.decode(z.flatten(1))
        for cells in ((1, 0, 0), (0, 2, 3), (3, 1, 5)):
            shifted = model.decode(z.roll(cells, dims=(2, 3, 4)).flatten(1))
            voxels = tuple(c * stride for c in cells)
            assert torch.allclose(shifted, logits.roll(voxels, dims=(2, 3, 4)), atol=1e-5)
    x = (torch.rand(1, 1, *shape) > 0.5).float()
    with torch.no_grad():  # the encoder too: shifting the image shifts the latent grid
        mu = model.encode(x)[0].view(1, *model.latent_shape)
        mu_shifted = model.encode(x.roll((4, 8, 0), dims=(2, 3, 4)))[0].view_as(mu)
    assert torch.allclose(mu_shifted, mu.roll((1, 2, 0), dims=(2, 3, 4)), atol=1e-5)


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


def test_cpu_bfloat16_autocast_only_where_asked_and_native():
    conv = torch.nn.Conv3d(1, 2, 3)
    x = torch.rand(1, 1, 6, 6, 6)
    cpu = torch.device("cpu")
    with autocast(cpu, True):  # train.amp alone: CUDA only
        assert conv(x).dtype == torch.float32
    with autocast(cpu, False, cpu=True):  # train.amp_cpu
        expected = torch.bfloat16 if cpu_bfloat16_native() else torch.float32
        assert conv(x).dtype == expected
