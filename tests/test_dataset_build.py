"""Large surrogate-labelled datasets: applicability domain, routing to LBM, the build."""

import json

import numpy as np
import pandas as pd
import pytest
from test_surrogate import FAST_LBM, tiny_ensemble

from pvae.data.descriptors import DOMAIN_FEATURES, FEATURES, descriptors
from pvae.data.microstructures import synthesize
from pvae.data.microstructures.synthesize import mix_parts
from pvae.data.splits import make_splits
from pvae.data.store import open_dataset
from pvae.data.store.manifest import K_COLUMNS
from pvae.data.symmetry import cube_symmetries
from pvae.surrogate.domain import ApplicabilityDomain, fit_domain
from pvae.surrogate.labelling import write_surrogate_labels


def test_descriptors_are_exact_and_symmetry_invariant(rng):
    image = rng.random((16, 12, 20)) < 0.4
    d = descriptors(image[None])[0]
    assert d.shape == (len(FEATURES),)
    assert d[0] == pytest.approx(image.mean())  # porosity
    cube = image[:12, :12, :12]
    reference = descriptors(cube[None])[0]
    for op in cube_symmetries():
        assert np.allclose(descriptors(op.apply(cube)[None])[0], reference)
    # an uncorrelated medium: S2(r) = phi^2, so the normalised autocorrelation is ~0
    noise = rng.random((1, 48, 48, 48)) < 0.5
    assert np.abs(descriptors(noise)[0, 4:]).max() < 0.02
    # straight channels along x: perfectly correlated along x, a surface only across it
    channels = np.zeros((1, 16, 16, 16), bool)
    channels[:, 4:8, 4:8, :] = True
    d = descriptors(channels)[0]
    assert d[1] == 0.0 and d[2] > 0 and d[3] > 0  # sorted surfaces: none normal to x
    assert d[6] == pytest.approx(1.0)  # lag 1, largest over axes: along the channels


@pytest.fixture(scope="module")
def default_domain_parts():
    """data/default's descriptors per family with a fixed train/val split."""
    store = open_dataset("data/default")
    split = make_splits(len(store), (0.7, 0.3, 0.0), seed=0)
    family = store.manifest["family"].to_numpy()
    return store, split, family


@pytest.mark.parametrize("held_out", ["channels", "spheres", "foam"])
def test_domain_sends_a_held_out_family_to_lbm(default_domain_parts, held_out, tmp_path):
    store, split, family = default_domain_parts
    keep = lambda rows: [r for r in rows if family[r] != held_out]  # noqa: E731
    domain = fit_domain([(store, keep(split["train"]), keep(split["val"]))])
    foreign = [r for r in range(len(store)) if family[r] == held_out]
    outside = domain.store_distance(store, foreign) > domain.threshold
    assert outside.mean() >= 0.95, f"{held_out}: {outside.mean():.2f} flagged"
    # new samples of the families it was fitted on stay inside (other seed, unseen)
    families = [f for f in ("channels", "spheres", "foam") if f != held_out]
    new = [synthesize(f, 8, 32, seed=99, out=tmp_path / f, workers=1, progress=False)
           for f in families]  # fmt: skip
    fresh = np.concatenate([domain.store_distance(open_dataset(p), range(8)) for p in new])
    assert (fresh > domain.threshold).mean() <= 0.125


@pytest.mark.parametrize("names", [FEATURES, DOMAIN_FEATURES])
@pytest.mark.parametrize("local", [False, True])
def test_domain_round_trips_and_refuses_other_descriptors(rng, names, local):
    train, held = rng.normal(size=(40, len(names))), rng.normal(size=(10, len(names)))
    domain = ApplicabilityDomain.fit(train, held, quantile=0.9, local=local)
    back = ApplicabilityDomain.from_dict(json.loads(json.dumps(domain.to_dict())))
    assert back.extended == (names == DOMAIN_FEATURES) and (back.local is None) != local
    probe = rng.normal(size=(5, len(names)))
    assert np.allclose(back.distance(probe), domain.distance(probe))
    assert (domain.distance(np.concatenate([held, train]) + 100.0) > domain.threshold).all()
    state = domain.to_dict() | {"features": ["porosity"]}
    with pytest.raises(Exception, match="refit"):
        ApplicabilityDomain.from_dict(state)


def test_local_distance_adapts_to_the_density_of_the_training_images(rng):
    # a tight cluster and a loose one: the same offset is far from the tight one only
    tight, loose = rng.normal(0, 0.1, (60, 2)), rng.normal(0, 3.0, (60, 2)) + [20.0, 0.0]
    pad = lambda points: np.pad(points, ((0, 0), (0, len(FEATURES) - 2)))  # noqa: E731
    points = np.concatenate([tight, loose])
    train, held = pad(points), pad(points[::7] + 0.01)
    domain = ApplicabilityDomain.fit(train, held, quantile=0.99)
    near_tight, near_loose = pad(np.array([[1.5, 0.0]])), pad(np.array([[20.0, 4.5]]))
    assert domain.distance(near_tight)[0] > domain.threshold > domain.distance(near_loose)[0]
    raw = ApplicabilityDomain.fit(train, held, quantile=0.99, local=False)
    assert raw.distance(near_tight)[0] < raw.distance(near_loose)[0]


def test_extended_descriptors_measure_topology_sizes_and_straight_paths():
    cube = np.zeros((1, 16, 16, 16), bool)
    cube[0, 4:8, 4:8, 4:8] = True  # one isolated pore: chi = 1; solid around it: chi = 0 - 1 + 2
    channel = np.zeros((1, 16, 16, 16), bool)
    channel[0, :, 4:8, 4:8] = True  # a straight channel along z: a circle, chi = 0
    d = descriptors(np.concatenate([cube, channel]), extended=True)
    column = {name: d[:, i] for i, name in enumerate(DOMAIN_FEATURES)}
    assert column["euler_pore"] * 16**3 == pytest.approx([1.0, 0.0])
    assert column["euler_solid"][0] * 16**3 == pytest.approx(1.0)
    assert column["pore_size_p90"] == pytest.approx([2.0, 2.0])  # half of 4 voxels
    shares = {name: 10 ** column[f"log_{name}"] - 1e-3 for name in ("through_max", "through_mid",
                                                                   "lineal8_max")}  # fmt: skip
    assert shares["through_max"] == pytest.approx([0.0, 16 / 256], abs=1e-12)  # 16 of 256 lines
    assert shares["through_mid"][1] == pytest.approx(0.0, abs=1e-12)
    assert shares["lineal8_max"][1] == pytest.approx(1 / 16)


@pytest.fixture
def two_families(tmp_path):
    """4 channel and 4 sphere samples at 16^3, unlabelled."""
    from pvae.data.microstructures.synthesize import synthesize_mix

    parts = [(f, n, None) for f, n in mix_parts(8, ("channels", "spheres"))]
    return synthesize_mix(parts, 16, 5, tmp_path / "mix", workers=1, progress=False)


def sphere_domain(tmp_path) -> ApplicabilityDomain:
    """A domain fitted on sphere packings only (16^3)."""
    root = synthesize("spheres", 40, 16, seed=8, out=tmp_path / "sph", workers=1, progress=False)
    store = open_dataset(root)
    return fit_domain([(store, range(30), range(30, 40))])


def test_outside_domain_is_left_for_lbm_even_when_members_agree(two_families, tmp_path):
    ensemble = tiny_ensemble(members=1)  # one member: spread 0, the spread test cannot fire
    ensemble.info["domain"] = sphere_domain(tmp_path).to_dict()
    summary = write_surrogate_labels(two_families, ensemble, fallback_above=0.5)
    manifest = open_dataset(two_families).manifest
    channels = (manifest["family"] == "channels").to_numpy()
    assert summary["uncertain"] == 0 and summary["outside_domain"] == 4
    assert sorted(summary["fallback"]) == list(np.flatnonzero(channels))
    assert (manifest["label_source"] == np.where(channels, "", "surrogate")).all()
    assert manifest.loc[channels, list(K_COLUMNS)].isna().all().all()
    info = json.loads(manifest["label_info"][np.flatnonzero(~channels)[0]])
    assert info["domain_distance"] <= info["domain_threshold"]
    # without the domain test every sample gets a surrogate label
    assert write_surrogate_labels(two_families, ensemble, domain_check=False)["surrogate"] == 4


def test_predict_says_which_images_lie_outside_the_domain(two_families, run_cli, tmp_path):
    ensemble = tiny_ensemble(members=2)
    domain = sphere_domain(tmp_path)
    ensemble.info["domain"] = domain.to_dict()
    model = ensemble.save(tmp_path / "model.pt")
    code, out, _ = run_cli("surrogate", "predict", "--model", model, two_families, "--json")
    result = json.loads(out)
    store = open_dataset(two_families)
    channels = (store.manifest["family"] == "channels").to_numpy()
    expected = domain.store_distance(store, range(len(store)))
    assert code == 0 and result["domain_threshold"] == pytest.approx(domain.threshold)
    assert np.allclose([s["domain_distance"] for s in result["samples"]], expected)
    assert [s["in_domain"] for s in result["samples"]] == list(~channels)
    code, out, err = run_cli("surrogate", "predict", "--model", model, two_families)
    verdicts = [line.split()[-1] for line in out.splitlines()[1:]]
    assert code == 0 and verdicts == ["NO" if c else "yes" for c in channels]
    assert "4 of 8 images lie outside the surrogate's domain" in err
    del ensemble.info["domain"]  # a bundle from before domains: said, not guessed
    code, out, err = run_cli("surrogate", "predict", "--model", ensemble.save(model), two_families,
                             "--json")  # fmt: skip
    assert code == 0 and {s["in_domain"] for s in json.loads(out)["samples"]} == {None}
    assert "has no applicability domain" in err


@pytest.mark.slow  # about 11 s on 2 cores: make test-slow
def test_build_routes_checks_resumes_and_refuses(ray_cluster, tmp_path):
    from tune.dataset_build import build_dataset

    ensemble = tiny_ensemble(members=2)
    ensemble.info["domain"] = sphere_domain(tmp_path).to_dict()
    out = tmp_path / "built"
    args = dict(families=("channels", "spheres"), fallback_spread=None, check_fraction=0.5,
                settings=FAST_LBM, workers=1, device="cpu", progress=False)  # fmt: skip
    report = build_dataset(out, 8, 16, 5, ensemble, **args)
    store = open_dataset(out)
    channels = (store.manifest["family"] == "channels").to_numpy()
    assert store.labelled().all()
    assert (store.manifest["label_source"] == np.where(channels, "lbm", "surrogate")).all()
    assert report["label_sources"] == {"lbm": 4, "surrogate": 4} and report["lbm_share"] == 0.5
    assert report["stages"]["label"]["outside_domain"] == 4
    check = pd.read_parquet(out / "label_check.parquet")
    assert len(check) == 2 and set(check["family"]) == {"spheres"}  # half of the surrogate rows
    assert report["check"]["samples"] == 2
    assert report["check"]["median_abs_log10_error"] == pytest.approx(
        np.nanmedian(np.abs(check[["error_xx", "error_yy", "error_zz"]].to_numpy())), abs=1e-4
    )
    assert json.loads((out / "build.json").read_text()) == report
    assert (out / "surrogate.pt").exists() and not (out / "check-journal").exists()
    # a rerun resumes: same images, labels and check, no new work
    voxels = (out / "voxels.npy").stat().st_mtime_ns
    again = build_dataset(out, 8, 16, 5, ensemble, **args)
    assert (out / "voxels.npy").stat().st_mtime_ns == voxels
    assert again["fingerprint"] == report["fingerprint"] and again["check"] == report["check"]
    # another recipe at the same place is refused unless --overwrite
    with pytest.raises(Exception, match="--overwrite"):
        build_dataset(out, 10, 16, 5, ensemble, **args)


def test_build_cli_refuses_a_bundle_without_domain(run_cli, tmp_path):
    model = tmp_path / "old.pt"
    tiny_ensemble().save(model)
    code, _, err = run_cli("data", "build", "--count", "6", "--size", "16", "--surrogate", model,
                           "--out", tmp_path / "x")  # fmt: skip
    assert code != 0 and "pvae surrogate domain" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
