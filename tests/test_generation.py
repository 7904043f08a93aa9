"""Generation: realism and coverage in descriptor space, latent priors, evaluate's block."""

import json

import numpy as np
import pytest
import torch

from pvae.core.errors import PvaeError
from pvae.data.default_data import DEFAULT_DATASET
from pvae.data.descriptors import descriptors
from pvae.data.splits import make_splits
from pvae.data.store import open_dataset
from pvae.vae.generation import generation_metrics
from pvae.vae.prior import (
    PRIOR,
    GaussianPrior,
    StandardNormalPrior,
    find_prior,
    prior_from_dict,
    save_prior,
)


@pytest.fixture(scope="module")
def default_descriptors():
    """Descriptors of the default dataset's training and test splits."""
    store = open_dataset(DEFAULT_DATASET)
    splits = make_splits(len(store), (0.7, 0.15, 0.15), 0)
    return (
        descriptors(store.images(splits["train"])),
        descriptors(store.images(splits["test"])),
        store.images(splits["test"]),
    )


def test_held_out_data_is_realistic_and_covers(default_descriptors):
    """Data the reference never saw, fed in as "generated": realistic and covering."""
    train, test, _ = default_descriptors
    metrics = generation_metrics(test, train, test)
    assert metrics["realism"] >= 0.85
    assert metrics["coverage"] == 1.0  # each test sample is its own generated twin
    assert metrics["n_samples"] == len(test)
    assert metrics["porosity_min"] >= metrics["data_porosity_min"] - 0.05


def test_noise_at_the_data_porosity_is_not_realistic(default_descriptors, rng):
    train, test, test_images = default_descriptors
    porosity = test_images.mean(axis=(1, 2, 3))
    noise = rng.random(test_images.shape) < porosity[:, None, None, None]
    metrics = generation_metrics(descriptors(noise), train, test)
    assert metrics["realism"] == 0.0
    assert metrics["coverage"] == 0.0


def test_one_good_sample_repeated_is_realistic_but_does_not_cover(default_descriptors):
    train, test, _ = default_descriptors
    collapsed = np.repeat(test[:1], 32, axis=0)
    metrics = generation_metrics(collapsed, train, test)
    assert metrics["realism"] in (0.0, 1.0)
    assert metrics["coverage"] < 0.2


def test_a_diffusion_prior_written_before_the_grid_denoiser_still_loads(rng):
    from pvae.vae.diffusion import CoefficientDenoiser, DenoiserConfig, DiffusionPrior, LatentBasis

    net = CoefficientDenoiser(DenoiserConfig(4, hidden=16, blocks=1, targets=1))
    prior = DiffusionPrior(LatentBasis.fit(torch.as_tensor(rng.normal(size=(10, 6))), 4), net,
                           ["porosity"], [0.5], [0.1])  # fmt: skip
    record = prior.to_dict()
    record["state"] = {k.removeprefix("embed."): v for k, v in record["state"].items()}
    again = DiffusionPrior.from_dict(record)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(prior.sample(5, g1), again.sample(5, g2))


def test_gaussian_prior_matches_the_encodings_moments(rng):
    mu = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 3.0
    prior = GaussianPrior.fit(mu)
    z = prior.sample(20000, torch.Generator().manual_seed(0)).double().numpy()
    np.testing.assert_allclose(z.mean(axis=0), mu.mean(axis=0), atol=0.1)
    np.testing.assert_allclose(np.cov(z.T), np.cov(mu.T), rtol=0.1, atol=0.1)


def test_priors_round_trip_through_their_file(tmp_path, rng):
    prior = GaussianPrior.fit(rng.normal(size=(10, 4)))
    save_prior(prior, tmp_path / PRIOR)
    again = find_prior(tmp_path, 4)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(prior.sample(5, g1), again.sample(5, g2))
    (tmp_path / "bare").mkdir()
    assert isinstance(find_prior(tmp_path / "bare", 4), StandardNormalPrior)
    with pytest.raises(PvaeError, match="unknown latent prior"):
        prior_from_dict({"kind": "mystery"}, 4)
    (tmp_path / PRIOR).write_bytes(b"not a prior")
    with pytest.raises(PvaeError, match="not a readable latent prior"):
        find_prior(tmp_path, 4)


def test_evaluate_reports_generation_and_shows_prior_samples(trained_spatial_run, tmp_path):
    from pvae.vae.evaluate import evaluate

    run, data = trained_spatial_run
    out = tmp_path / "eval"
    metrics = evaluate(run, data, "test", out, "cpu", fidelity_samples=0, generation_samples=8)
    generation = metrics["generation"]
    assert generation["prior"] == "standard_normal" and generation["n_samples"] == 8
    assert 0.0 <= generation["realism"] <= 1.0 and 0.0 <= generation["coverage"] <= 1.0
    assert json.loads((out / "metrics.json").read_text())["generation"] == generation
    assert (out / "prior_samples.png").stat().st_size > 10_000
    recombined = metrics["recombinations"]
    assert recombined["prior"] == "recombinations" and recombined["n_samples"] == 8
    assert 0.0 <= recombined["realism"] <= 1.0 and 0.0 <= recombined["coverage"] <= 1.0


def test_smoothing_is_a_periodic_mean_preserving_blur_that_removes_speckle(rng):
    from scipy.ndimage import gaussian_filter

    from pvae.data.descriptors import descriptors
    from pvae.vae.inference import binarize_logits, smooth_logits

    logits = torch.from_numpy(rng.normal(size=(2, 1, 12, 10, 8)).astype(np.float32))
    blurred = smooth_logits(logits, 0.7)
    expected = gaussian_filter(logits.numpy(), (0, 0, 0.7, 0.7, 0.7), mode="wrap",
                               truncate=3 / 0.7)  # radius ceil(3 sigma) = 3 voxels
    assert np.allclose(blurred.numpy(), expected, atol=1e-5)  # a periodic Gaussian blur
    assert torch.allclose(blurred.mean(dim=(2, 3, 4)), logits.mean(dim=(2, 3, 4)), atol=1e-5)
    assert torch.equal(smooth_logits(logits, 0.0), logits)
    # a sphere's logits with speckle: the blur takes the speckle's surface away
    z, y, x = np.mgrid[:24, :24, :24]
    sphere = 4.0 * (((z - 12) ** 2 + (y - 12) ** 2 + (x - 12) ** 2) < 64) - 2.0
    noisy = torch.from_numpy((sphere + 3.0 * rng.normal(size=sphere.shape)).astype(np.float32))
    surface = [descriptors(binarize_logits(v)[None].numpy())[0, 1:4].mean()
               for v in (torch.from_numpy(sphere.astype(np.float32)), noisy,
                         smooth_logits(noisy, 0.7))]  # fmt: skip
    assert surface[2] < 0.5 * surface[1] and surface[2] < 3 * surface[0]


def test_diffusion_prior_learns_a_conditional_distribution():
    """Coefficients whose first component is the target: conditioned draws follow it."""
    from pvae.vae.diffusion import DenoiserConfig, ddim_sample, train_denoiser

    g = torch.Generator().manual_seed(0)
    y = torch.randn(2000, 1, generator=g)  # standardized target
    x = torch.cat([y + 0.1 * torch.randn(2000, 1, generator=g),
                   torch.randn(2000, 3, generator=g)], dim=1)  # fmt: skip
    net = train_denoiser(x, y, DenoiserConfig(4, hidden=64, blocks=2, targets=1), steps=800,
                         batch_size=128, lr=3e-3)  # fmt: skip
    free = ddim_sample(net, 500, torch.Generator().manual_seed(1), steps=30)
    assert torch.isfinite(free).all()
    assert abs(float(free[:, 0].mean())) < 0.3 and 0.7 < float(free[:, 0].std()) < 1.3
    targets, mask = torch.full((500, 1), 1.5), torch.ones(500, 1)
    drawn = ddim_sample(net, 500, torch.Generator().manual_seed(2), 30, targets, mask, 2.0)
    assert 0.9 < float(drawn[:, 0].median()) < 2.0  # measured 1.15: pulled to the target
    assert float(drawn[:, 0].std()) < 0.5  # measured 0.25 (free: 0.8)
    assert abs(float(drawn[:, 1].mean())) < 0.3  # the unconditioned coordinates stay free
    # the ancestral sampler (fresh noise every step) draws from the same distributions
    free = ddim_sample(net, 500, torch.Generator().manual_seed(1), 60, eta=1.0)
    assert abs(float(free[:, 0].mean())) < 0.3 and 0.7 < float(free[:, 0].std()) < 1.3
    assert 0.7 < float(free[:, 1:].std()) < 1.3
    drawn = ddim_sample(net, 500, torch.Generator().manual_seed(2), 60, targets, mask, 2.0, 1.0)
    assert 0.9 < float(drawn[:, 0].median()) < 2.0 and float(drawn[:, 0].std()) < 0.6


def test_grid_denoiser_is_periodic_and_learns_a_conditional_field():
    """On the latent grid: folding is undone exactly, a periodic shift of the input
    shifts the output, and conditioned draws carry the target as the field's mean."""
    from pvae.vae.diffusion import DenoiserConfig, GridDenoiser, ddim_sample, train_denoiser

    config = DenoiserConfig(2, hidden=16, blocks=1, targets=1, grid=(4, 4, 4))
    net = GridDenoiser(config)
    x = torch.randn(3, 2, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(net._fold(net._fold(x), inverse=True), x)
    for p in net.parameters():  # zero-initialised outlets would make the check vacuous
        torch.nn.init.normal_(p, std=0.2, generator=torch.Generator().manual_seed(p.numel()))
    t = torch.full((3,), 0.5)
    shifted = net(torch.roll(x, (2, 2, -2), dims=(2, 3, 4)), t)
    assert torch.allclose(shifted, torch.roll(net(x, t), (2, 2, -2), dims=(2, 3, 4)), rtol=1e-5,
                          atol=1e-5 * float(shifted.abs().max()))  # fmt: skip
    g = torch.Generator().manual_seed(1)
    y = torch.randn(1000, 1, generator=g)
    fields = y[:, :, None, None, None] + 0.3 * torch.randn(1000, 1, 4, 4, 4, generator=g)
    config = DenoiserConfig(1, hidden=16, blocks=1, targets=1, grid=(4, 4, 4))
    net = train_denoiser(fields, y, config, steps=400, batch_size=64, lr=3e-3)
    targets, mask = torch.full((200, 1), 1.5), torch.ones(200, 1)
    drawn = ddim_sample(net, 200, torch.Generator().manual_seed(2), 30, targets, mask, 1.0)
    assert drawn.shape == (200, 1, 4, 4, 4) and torch.isfinite(drawn).all()
    means = drawn.mean(dim=(1, 2, 3, 4))
    assert 1.2 < float(means.median()) < 1.8  # measured 1.47
    free = ddim_sample(net, 200, torch.Generator().manual_seed(3), 30).mean(dim=(1, 2, 3, 4))
    # measured: median 0.08, spread 0.58 (data 1.0; conditioned 0.25)
    assert abs(float(free.median())) < 0.4 and float(free.std()) > 2 * float(means.std())


@pytest.mark.parametrize("grid", [(), (4, 4, 4)])
def test_an_unconditional_call_is_the_all_hidden_input_the_denoiser_was_trained_on(grid):
    """Training shows the denoiser "no targets" as every target masked; sampling without
    a condition must feed it exactly that (once it fed it nothing, an input never
    trained on, and the design model's draws drifted to porosity 0.84 against the
    data's 0.56)."""
    from pvae.vae.diffusion import DenoiserConfig, build_denoiser

    net = build_denoiser(DenoiserConfig(2, hidden=16, blocks=1, targets=3, grid=grid))
    for p in net.parameters():  # zero-initialised outlets would make the check vacuous
        torch.nn.init.normal_(p, std=0.2, generator=torch.Generator().manual_seed(p.numel()))
    x = torch.randn(3, *net.sample_shape, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.1, 0.5, 0.9])
    hidden = net(x, t, torch.randn(3, 3), torch.zeros(3, 3))
    assert torch.allclose(net(x, t), hidden, atol=1e-6)
    assert not torch.allclose(net(x, t, torch.randn(3, 3), torch.ones(3, 3)), hidden, atol=1e-3)


def test_denoiser_training_resumes_to_the_same_weights(tmp_path):
    """Interrupted after its checkpoint at step 2 and run again, training ends with the
    weights of a run never interrupted; a checkpoint of another run is refused."""
    from pvae.vae.diffusion import DenoiserConfig, train_denoiser

    config = DenoiserConfig(1, hidden=8, blocks=1, targets=1, grid=(4, 4, 4))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 1, 4, 4, 4, generator=g), torch.randn(40, 1, generator=g)
    kwargs = {"steps": 6, "batch_size": 8, "checkpoint_every": 2}
    whole = train_denoiser(x, y, config, **kwargs).state_dict()

    def interrupt(step, loss):
        if step == 3:
            raise KeyboardInterrupt

    checkpoint = tmp_path / "prior.pt.partial"
    with pytest.raises(KeyboardInterrupt):
        train_denoiser(x, y, config, progress=interrupt, checkpoint=checkpoint, **kwargs)
    assert torch.load(checkpoint, weights_only=True)["step"] == 2
    done = []
    resumed = train_denoiser(x, y, config, checkpoint=checkpoint,
                             progress=lambda step, loss: done.append(np.isnan(loss)),
                             **kwargs)  # fmt: skip
    assert done == [True, True, False, False, False, False]  # two steps were already done
    for name, value in resumed.state_dict().items():
        assert torch.equal(value, whole[name]), name
    with pytest.raises(PvaeError, match="another training run"):
        train_denoiser(x, y, config, checkpoint=checkpoint, steps=8, batch_size=8)


def test_prior_fit_and_sample_commands(trained_spatial_run, tmp_path, run_cli):
    import shutil

    import pandas as pd

    from pvae.vae.loading import load_model

    run, data = trained_spatial_run
    model = tmp_path / "run"
    shutil.copytree(run, model)
    code, out, err = run_cli("prior", "fit", "--model", model, "--kind", "diffusion-pca",
                             "--steps", "30", "--components", "8", "--out", model / "pca.pt",
                             "--no-progress")  # fmt: skip
    assert code == 0, err
    assert "diffusion-pca prior (8 numbers a draw)" in out
    code, out, err = run_cli("prior", "fit", "--model", model, "--steps", "30", "--no-progress")
    assert code == 0, err
    latent = load_model(model).model.latent_shape
    assert f"diffusion prior ({np.prod(latent)} numbers a draw)" in out  # on the latent grid
    assert find_prior(model, int(np.prod(latent))).basis.shape == latent
    code, _, err = run_cli("prior", "fit", "--model", model, "--steps", "30")
    assert code == 2 and "exists" in err
    assert not (model / f"{PRIOR}.partial").exists()  # removed once the prior is saved
    drawn = tmp_path / "drawn"
    code, out, err = run_cli("sample", "--model", model, "--count", "3", "--target",
                             "porosity=0.5", "--out", drawn, "--formats", "npy,vti")  # fmt: skip
    assert code == 0, err
    table = pd.read_parquet(tmp_path / "drawn" / "samples.parquet")
    assert len(table) == 3 and {"porosity", "predicted_porosity"} <= set(table.columns)
    for file in table["file"]:
        image = np.load(tmp_path / "drawn" / file)
        assert image.dtype == bool and image.shape == (16, 16, 16)
    assert len(list((tmp_path / "drawn").glob("*.vti"))) == 3
    code, _, err = run_cli("sample", "--model", run, "--count", "2", "--target", "porosity=0.5",
                           "--out", tmp_path / "plain")  # fmt: skip
    assert code == 2 and "draws without conditions" in err
    assert not (tmp_path / "plain").exists()
    # inverse design screens the conditional draws, and variations of the best, beside
    # its recombinations
    from pvae.design.inverse import InverseSettings, _starts
    from pvae.design.pool import design_pool
    from pvae.vae.critic import find_critic
    from pvae.vae.prior import StandardNormalPrior

    loaded = load_model(model)
    prior = find_prior(model, loaded.model.config.latent_dim)
    critic, _ = find_critic(model, loaded)
    assert prior.eta == 1.0 and prior.smoothing > 0  # a new fit samples ancestrally, blurred
    numpy_target = {"porosity": np.float64(0.5)}  # numpy values condition like Python floats
    assert prior.sample(2, torch.Generator(), numpy_target).shape == (2, np.prod(latent))
    z = prior.sample(6, torch.Generator().manual_seed(0))
    near, far = (prior.vary(z, t, torch.Generator().manual_seed(1)) for t in (0.05, 1.0))
    assert ((near - z) ** 2).mean() < 0.2 * ((far - z) ** 2).mean()  # a small time keeps z
    with pytest.raises(ValueError, match="time"):
        prior.vary(z, 0.0, torch.Generator())
    pool = design_pool(loaded, open_dataset(data))
    settings = InverseSettings(candidates=2, starts=2, parents=2, mixtures=8, prior_samples=4,
                               variations=6, variation_rounds=2, blur_seeds=0)  # fmt: skip
    target = {"porosity": 0.5, "k_xx": 0.1}
    screened = _starts(loaded, pool, target, 0.5, settings, "cpu", critic, prior).screened
    kinds = screened.kinds
    assert len(screened) == 3 * 8 + 3 * 4 + 2 * 6  # mixtures and draws at n and n -/+ 0.01
    assert kinds[24:36] == ["prior"] * 4 + ["prior@n=0.490"] * 4 + ["prior@n=0.510"] * 4
    assert all(k.startswith("vary(0.3):") for k in kinds[36:])
    porosity = screened.images.mean(axis=(1, 2, 3))
    expected = [0.5, 0.49, 0.51, 0.5, 0.49, 0.51, 0.5, 0.5]
    at = [0, 8, 16, 24, 28, 32, 36, 47]  # mixtures, draws, variations (at n only)
    np.testing.assert_allclose(porosity[at], expected, atol=1 / 4096)
    assert (screened.overlap[24:36] == 0).all()  # a draw has no parents
    # a structure that does not percolate along an axis has K = 0 there (log10 -inf), never NaN
    assert not np.isnan(screened.log10_k).any() and np.isfinite(screened.log10_k).any()
    plain = StandardNormalPrior(loaded.model.config.latent_dim)
    plain_screened = _starts(loaded, pool, target, 0.5, settings, "cpu", critic, plain).screened
    assert len(plain_screened) == 3 * 8  # no conditional prior: recombinations only


def test_training_measures_generation_into_the_study_metric(tiny_labelled, tmp_path):
    import pandas as pd

    from pvae.vae.config import experiment_from_dict
    from pvae.vae.runs import train_run

    config = experiment_from_dict({
        "name": "gen", "model": {"latent_dim": 6, "base_channels": 4, "regressor_hidden": [8]},
        "train": {"epochs": 2, "batch_size": 8, "generation_every": 1,
                  "generation_samples": 6, "generation_weight": 0.5},
    })  # fmt: skip
    train_run(config, tiny_labelled, tmp_path / "run", progress=False)
    history = pd.read_parquet(tmp_path / "run" / "history.parquet")
    assert history["val_realism"].between(0, 1).all()
    assert history["val_coverage"].between(0, 1).all()
    expected = history["val_recon"] + history["val_reg"] + 0.5 * (1 - history["val_realism"])
    np.testing.assert_allclose(history["val_objective"], expected, rtol=1e-9)
    with pytest.raises(PvaeError, match="generation_every = 1"):
        experiment_from_dict({"train": {"generation_weight": 1.0, "generation_every": 2}})
    with pytest.raises(PvaeError, match="generation_source 'prior'"):
        experiment_from_dict({"train": {"generation_source": "prior"}})


def test_recombination_draws_join_two_distinct_encodings_along_a_slab():
    from pvae.vae.generation import recombination_latents

    shape = (2, 4, 4, 4)
    latents = torch.arange(5, dtype=torch.float32)[:, None].repeat(1, 128) * 10 + 1
    z = recombination_latents(latents, shape, 50, np.random.default_rng(0))
    assert z.shape == (50, 128)
    for row in z.numpy():
        values = np.unique(row)
        assert len(values) == 2  # exactly two source encodings, never one
        grid = row.reshape(shape)
        assert (grid[0] == grid[1]).all()  # every channel takes the same cells
        share = (grid[0] == grid[0, 0, 0, 0]).mean()
        assert 0.25 <= min(share, 1 - share) <= 0.5  # a slab of 1-3 of the 4 layers
        slab = grid[0] == values[0]
        assert any((slab == slab.take([0], axis=a)).all() for a in range(3))  # normal to one axis
    flat = recombination_latents(latents[:, :8], (8,), 20, np.random.default_rng(1)).numpy()
    assert flat.shape == (20, 8) and np.allclose(flat, flat[:, :1])
    rows = latents[:, 0].numpy()
    for v in flat[:, 0]:  # v = t z_a + (1 - t) z_b for two distinct rows, t in [0.25, 0.75]
        assert any(0.25 - 1e-6 <= (v - zb) / (za - zb) <= 0.75 + 1e-6
                   for za in rows for zb in rows if za != zb)  # fmt: skip
    with pytest.raises(PvaeError, match=">= 2 encodings"):
        recombination_latents(latents[:1], shape, 3, np.random.default_rng(0))


def test_training_measures_the_realism_of_recombinations(tiny_labelled, tmp_path):
    import pandas as pd

    from pvae.vae.config import experiment_from_dict
    from pvae.vae.runs import train_run

    config = experiment_from_dict({
        "name": "gen", "model": {"latent_layout": "spatial", "latent_dim": 128, "depth": 2,
                                 "base_channels": 4, "regressor_hidden": [8]},
        "train": {"epochs": 1, "batch_size": 8, "generation_every": 1,
                  "generation_samples": 6, "generation_source": "recombinations"},
    })  # fmt: skip
    train_run(config, tiny_labelled, tmp_path / "run", progress=False)
    history = pd.read_parquet(tmp_path / "run" / "history.parquet")
    assert history["val_realism"].between(0, 1).all()
    assert history["val_coverage"].between(0, 1).all()
    # the same draws at every epoch: an unchanged model keeps its realism
    from pvae.vae.train import Trainer

    trainer = Trainer(config, tiny_labelled)
    first = trainer.generation()
    trainer.epoch = 7
    assert trainer.generation() == first
