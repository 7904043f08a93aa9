"""The CNN permeability surrogate: target algebra, ensemble outputs, bundles, labelling, CLI."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import pvae.cli
from pvae.cli import surrogate as surrogate_cli
from pvae.data.microstructures import synthesize
from pvae.data.store import open_dataset, rewrite_manifest, write_dataset
from pvae.data.store.manifest import K_COLUMNS
from pvae.data.symmetry import cube_symmetries
from pvae.physics.lbm import LBMSettings, permeability
from pvae.surrogate import (
    Prediction,
    SurrogateConfig,
    SurrogateEnsemble,
    TrainSettings,
    load_surrogate,
    train_ensemble,
)
from pvae.surrogate.evaluation import accuracy_by_family
from pvae.surrogate.labelling import write_surrogate_labels
from pvae.surrogate.logtensor import LogNormalizer, exp_tensor, log_tensor, to_matrix
from pvae.surrogate.model import FusedEnsembleCNN, PermeabilityCNN

TINY = SurrogateConfig(channels=(4, 8), hidden=8)
FAST_LBM = LBMSettings()
# What an ensemble trained on data/default alone (268 training samples, 40 epochs) must
# reach. The requirement (R^2 >= 0.98 per axis, median relative error <= 10%) needs more
# data and is measured by bench/bench_surrogate.py on 804 samples: 0.982-0.993 and 6.8%.
R2_FLOOR_268 = 0.93
MEDIAN_REL_ERROR_CEILING_268 = 0.2


def random_spd(rng, n):
    a = rng.normal(size=(n, 3, 3))
    return torch.from_numpy(a @ a.transpose(0, 2, 1) + 0.5 * np.eye(3))


def tiny_ensemble(members=2, shape=(16, 16, 16), seed=0):
    torch.manual_seed(seed)
    states = [PermeabilityCNN(TINY).state_dict() for _ in range(members)]
    return SurrogateEnsemble(TINY, LogNormalizer(-1.0, 0.5), states, {"input_shape": shape})


@pytest.fixture(scope="module")
def labelled_dataset(tmp_path_factory):
    """10 sphere packings at 16^3 with cheap made-up anisotropic labels (no LBM)."""
    root = synthesize("spheres", 10, 16, seed=3, out=tmp_path_factory.mktemp("s") / "ds",
                      workers=1, progress=False)  # fmt: skip
    frame = open_dataset(root).manifest.copy()
    phi = frame["porosity"].to_numpy()
    k = np.zeros((len(frame), 3, 3))
    k[:, [0, 1, 2], [0, 1, 2]] = (phi**3 / (1 - phi) ** 2)[:, None] * [1.0, 0.5, 0.25]
    k[:, 0, 1] = k[:, 1, 0] = 0.1 * k[:, 1, 1]
    frame[list(K_COLUMNS)] = k.reshape(-1, 9)
    frame["label_source"] = "lbm"
    rewrite_manifest(root, frame)
    return root


@pytest.fixture(scope="module")
def trained(labelled_dataset, tmp_path_factory):
    settings = TrainSettings(members=2, epochs=2, batch_size=4, device="cpu")
    ensemble = train_ensemble([labelled_dataset], TINY, settings, progress=False)
    return ensemble, ensemble.save(tmp_path_factory.mktemp("m") / "model.pt")


def test_log_tensor_inverts_and_rotates_with_the_image(rng):
    k = random_spd(rng, 5)
    s6, mask = log_tensor(k)
    assert mask.all()
    assert torch.allclose(exp_tensor(s6.double(), torch.ones(5, 3, dtype=bool)), k, rtol=1e-5)
    for symmetry in cube_symmetries():  # augmentation-consistent: log(R K R^T) = R log(K) R^T
        rotated, _ = log_tensor(symmetry.apply_tensor(k))
        expected = symmetry.apply_tensor(to_matrix(s6.double()))
        assert torch.allclose(to_matrix(rotated.double()), expected, atol=1e-5)


def test_non_percolating_directions_are_masked_and_zero(rng):
    k = random_spd(rng, 2)
    k[0, 2, :] = k[0, :, 2] = 0.0  # no flow along z
    k[1] = torch.nan  # unknown
    s6, mask = log_tensor(k)
    assert mask[0].tolist() == [True, True, False, True, False, False]
    assert not mask[1].any() and torch.isfinite(s6).all()
    out = exp_tensor(s6.double(), torch.tensor([[True, True, False], [True] * 3]))
    assert torch.allclose(out[0, :2, :2], k[0, :2, :2], rtol=1e-5)
    assert (out[0, 2] == 0).all() and (out[0, :, 2] == 0).all()


def test_prediction_is_symmetric_positive_definite_with_spread(rng):
    images = rng.random((4, 16, 16, 16)) < 0.6
    images[3, 5] = False  # a solid layer across z: no flow along z
    p = tiny_ensemble(members=3).predict(images)
    assert p.k.shape == (4, 3, 3) and p.spread.shape == (4, 3) and p.max_spread.shape == (4,)
    assert np.allclose(p.k, p.k.transpose(0, 2, 1))
    assert (np.linalg.eigvalsh(p.k[:3]) > 0).all()
    assert p.percolating[3].tolist() == [True, True, False] and (p.k[3, 2] == 0).all()
    assert (p.spread >= 0).all() and p.spread[3, 2] == 0 and (p.spread[:3] > 0).all()
    assert np.allclose(p.porosity, images.mean(axis=(1, 2, 3)))
    assert (tiny_ensemble(members=1).predict(images).spread == 0).all()


@pytest.mark.parametrize("config", [TINY, replace(TINY, straight_pores=True)])
def test_fused_ensemble_equals_its_members(rng, config):
    torch.manual_seed(1)
    members = [PermeabilityCNN(config) for _ in range(3)]
    for member in members:  # random weights everywhere, GroupNorm affines included
        for parameter in member.parameters():
            torch.nn.init.normal_(parameter, std=0.5)
    fused = FusedEnsembleCNN(config, [m.state_dict() for m in members])
    x = torch.from_numpy(rng.random((5, 1, 16, 16, 16)) < 0.6).float()
    porosity = x.mean(dim=(1, 2, 3, 4))
    expected = torch.stack([m(x, porosity) for m in members]).detach()  # (M, B, 6)
    with torch.inference_mode():  # the padding of prediction, not the one of training
        out = fused(x, porosity)
    assert out.shape == (3, 5, 6)
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_accuracy_by_family_separates_the_families():
    k = np.tile(np.diag([1.0, 2.0, 4.0]), (4, 1, 1))
    wrong = k.copy()
    wrong[2:] *= 10.0  # the channels are a decade off, the foams exact
    prediction = Prediction(wrong, np.zeros((4, 3)), np.ones((4, 3), bool), np.full(4, 0.5))
    result = accuracy_by_family(prediction, k, ["foam", "foam", "channels", "channels"])
    assert result["foam"] == {"n": 2, "median_rel_error": 0.0, "median_log10_error": 0.0}
    assert result["channels"]["median_rel_error"] == pytest.approx(9.0)
    assert result["channels"]["median_log10_error"] == pytest.approx(1.0)


def test_config_of_bundles_before_straight_pores_loads():
    assert SurrogateConfig.from_dict({"channels": [4, 8], "hidden": 8}) == TINY
    lines = replace(TINY, straight_pores=True)
    assert SurrogateConfig.from_dict(lines.to_dict()) == lines and lines.scalars == 8


def test_training_bundle_round_trip(trained, labelled_dataset):
    ensemble, path = trained
    loaded = load_surrogate(path)
    assert loaded.fingerprint == ensemble.fingerprint and loaded.n_members == 2
    store = open_dataset(labelled_dataset)
    a, b = ensemble.predict(store.images([0, 1])), loaded.predict(store.images([0, 1]))
    assert np.allclose(a.k, b.k) and np.allclose(a.spread, b.spread)
    fast = load_surrogate(path, bfloat16=True).predict(store.images([0, 1]))
    k32, k16 = (np.diagonal(p.k, axis1=1, axis2=2) for p in (a, fast))
    assert np.array_equal(k32 > 0, k16 > 0)  # the same zeros (exact connectivity)
    both = k32 > 0
    assert np.abs(np.log10(k16[both] / k32[both])).max() < 0.02  # decades
    record = loaded.info["datasets"][0]
    assert record["fingerprint"] == store.fingerprint
    assert len(record["train"]) + len(record["val"]) + len(record["test"]) == 10
    assert set(record["test"]).isdisjoint(record["train"])
    assert {"r2_log10_k", "median_rel_error", "calibration"} <= set(loaded.info["validation"])
    assert [len(h["epochs"]) for h in loaded.info["history"]] == [2, 2]


def test_surrogate_labels_and_lbm_fallback(ray_cluster, tmp_path, rng):
    from tune.surrogate_labelling import label_with_surrogate

    root = tmp_path / "ds"
    with write_dataset(root, 3, (8, 8, 8), {}) as writer:  # tiny: cheap LBM
        for i in range(3):
            writer.put(i, rng.random((8, 8, 8)) < 0.7, f"r{i}", source="synthetic",
                       family="random", params={})  # fmt: skip
    ensemble = tiny_ensemble(members=3, shape=(8, 8, 8))
    spread = ensemble.predict_store(open_dataset(root)).max_spread
    threshold = float(np.sort(spread)[1])  # the largest spread goes to LBM
    summary = label_with_surrogate(root, ensemble, threshold, FAST_LBM, workers=1,
                                   device="cpu", progress=False)  # fmt: skip
    store = open_dataset(root)
    routed = spread > threshold
    assert summary["surrogate"] == 2 and summary["lbm"] == 1 and store.labelled().all()
    assert (store.manifest["label_source"] == np.where(routed, "lbm", "surrogate")).all()
    assert store.summary()["label_sources"] == {"surrogate": 2, "lbm": 1}
    i = int(np.flatnonzero(routed)[0])
    assert np.allclose(store.permeability(i), permeability(store.image(i), FAST_LBM).k)
    info = json.loads(store.manifest["label_info"].iloc[int(np.flatnonzero(~routed)[0])])
    assert info["method"] == "surrogate" and info["model"] == ensemble.fingerprint
    assert max(info["spread_log10"]) <= threshold


def test_relabel_without_fallback_stays_in_process(labelled_dataset, tmp_path):
    import shutil

    root = shutil.copytree(labelled_dataset, tmp_path / "copy")
    assert write_surrogate_labels(root, tiny_ensemble())["surrogate"] == 0  # all labelled
    summary = write_surrogate_labels(root, tiny_ensemble(), relabel=True)
    assert summary["surrogate"] == 10 and len(summary["fallback"]) == 0
    assert set(open_dataset(root).manifest["label_source"]) == {"surrogate"}


@pytest.fixture
def cli(run_cli):
    """``run_cli``, after checking that ``pvae surrogate`` is a registered command."""
    assert surrogate_cli in pvae.cli.COMMANDS
    return run_cli


def assert_one_line_error(code, err, *fragments):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("pvae: error: "), err
    assert all(fragment in lines[0] for fragment in fragments), err


def test_cli_predict(cli, trained, labelled_dataset, tmp_path):
    _, model = trained
    code, out, _ = cli("surrogate", "predict", "--model", model, labelled_dataset, "--json")
    result = json.loads(out)
    assert code == 0 and len(result["samples"]) == 10 and result["units"] == "lattice"
    np.save(tmp_path / "one.npy", open_dataset(labelled_dataset).image(0))
    code, out, _ = cli("surrogate", "predict", "--model", model, tmp_path / "one.npy")
    assert code == 0 and "one" in out.splitlines()[1]


def test_cli_bad_input_is_one_line(cli, trained, labelled_dataset, tmp_path):
    _, model = trained
    np.save(tmp_path / "big.npy", np.ones((8, 16, 24), bool))
    code, _, err = cli("surrogate", "predict", "--model", model, tmp_path / "big.npy")
    assert_one_line_error(code, err, "big.npy", "(8, 16, 24)", "trained on (16, 16, 16)")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    code, _, err = cli("surrogate", "predict", "--model", tmp_path / "junk.pt", tmp_path)
    assert_one_line_error(code, err, "junk.pt", "not a readable surrogate model")
    code, _, err = cli("data", "label", labelled_dataset, "--method", "surrogate")
    assert_one_line_error(code, err, "needs --model")
    code, _, err = cli("data", "label", labelled_dataset, "--model", model)
    assert_one_line_error(code, err, "need --method surrogate")
    code, _, err = cli("surrogate", "train", "--dataset", labelled_dataset, "--out", model)
    assert_one_line_error(code, err, "exists")
    code, _, err = cli("surrogate", "train", "--dataset", tmp_path / "none", "--out",
                       tmp_path / "m.pt", "--channels", "8,x")  # fmt: skip
    assert_one_line_error(code, err, "--channels")


@pytest.mark.slow
def test_accuracy_on_held_out_lbm_labels_from_268_samples():
    """Accuracy on data/default's held-out test split from its 268 training samples alone
    (minutes on 2 CPU cores): R^2 >= 0.93 per axis, median relative error <= 20%."""
    from pvae.data.default_data import DEFAULT_DATASET
    from pvae.surrogate.evaluation import accuracy

    store = open_dataset(DEFAULT_DATASET)
    if not store.labelled().all():
        pytest.skip("data/default is not fully labelled (pvae data build-default)")
    settings = TrainSettings(members=3, epochs=40, patience=10, device="cpu")
    ensemble = train_ensemble([store], SurrogateConfig(), settings, progress=False)
    rows = [store.index_of(i) for i in ensemble.info["datasets"][0]["test"]]
    k_lbm = store.labels()[rows, 1:].reshape(-1, 3, 3)
    result = accuracy(ensemble.predict_store(store, rows), k_lbm)
    assert min(result["r2_log10_k"].values()) >= R2_FLOOR_268
    assert result["median_rel_error"]["all"] <= MEDIAN_REL_ERROR_CEILING_268
    assert result["calibration"]["spearman"] > 0
