"""The design space of a catalogue: the region it covers in property space, and where
targets lie (:mod:`pvae.design.design_space`)."""

import json
import math

import numpy as np
import pytest

from pvae.data.default_data import DEFAULT_DATASET
from pvae.data.store import open_dataset
from pvae.design.design_space import DesignSpace, coordinates
from pvae.design.pool import DesignPool, nearest_parents
from pvae.design.targets import K_TARGETS


@pytest.fixture(scope="module")
def default():
    store = open_dataset(DEFAULT_DATASET)
    rows = np.flatnonzero(store.manifest["porosity"].notna().to_numpy())
    return store, rows, DesignSpace.of_rows(store, rows, "data/default")


def _labels(store, row) -> dict:
    sample = store.manifest.iloc[row]
    return {"porosity": float(sample["porosity"])} | {k: float(sample[k]) for k in K_TARGETS}


def test_a_rotated_sample_is_inside_and_is_its_own_nearest(default):
    store, rows, space = default
    channels = np.flatnonzero((store.manifest["family"] == "channels").to_numpy())
    target = _labels(store, channels[3])
    # the sample turned so that its x and z axes swap: K_xx and K_zz swap
    target["k_xx"], target["k_zz"] = target["k_zz"], target["k_xx"]
    where = space.locate(target)
    assert where["distance"] == pytest.approx(0.0, abs=1e-9)
    assert where["inside"]
    sample_id = store.manifest["sample_id"].iloc[channels[3]]
    assert where["nearest_sample"].startswith(f"{sample_id}@")
    assert where["nearest"]["k_xx"] == pytest.approx(target["k_xx"])


def test_a_target_in_a_gap_is_outside_and_the_nearest_vector_is_the_best_lookup(default):
    store, rows, space = default
    # dense like a sphere packing, as permeable as the open foams: inside every range, but
    # far from every sample (permeability rises with porosity in all three families)
    target = {"porosity": 0.45, "k_xx": 3.0, "k_yy": 3.0, "k_zz": 3.0}
    where = space.locate(target)
    assert not where["inside"] and where["distance"] > 3 * where["radius"]
    # the nearest sample in this space is the one the lookup baseline picks: the same
    # distance is its largest error in the success measure
    pool = DesignPool(store, rows, "data/default")
    (best,) = nearest_parents(pool, target, 1)
    assert where["distance"] == pytest.approx(best.score)
    errors = [abs(where["nearest"]["porosity"] - 0.45) / 0.02] + [
        abs(math.log10(where["nearest"][k] / 3.0)) / 0.1 for k in K_TARGETS
    ]
    assert max(errors) == pytest.approx(where["distance"])


def test_radius_is_the_catalogues_spacing(default):
    _, _, space = default
    # 381 porosities between 0.21 and 0.95 lie far closer than the 0.02 tolerance; in four
    # properties at once the samples are sparser
    porosity_only = space.radius(["porosity"])
    assert porosity_only < 0.5 < space.radius(["porosity", *K_TARGETS])
    # 95% of samples have their nearest other sample within the radius
    points = space.samples(["porosity"])[:, 0]
    gaps = np.array([np.delete(np.abs(points - p), i).min() for i, p in enumerate(points)])
    assert np.mean(gaps <= porosity_only + 1e-12) >= 0.95


def test_coordinates_are_tolerance_units():
    labels = np.array([[0.5, 1.0, 10.0, 100.0]])
    got = coordinates(labels, ["porosity", "k_xx", "k_zz", "log10_k_mean", "anisotropy"])
    np.testing.assert_allclose(got[0], [25.0, 0.0, 20.0, 10.0, 20.0])


def test_design_space_command(tmp_path, run_cli):
    out = tmp_path / "space.png"
    code, stdout, err = run_cli(
        "design-space", "--dataset", DEFAULT_DATASET, "--out", out, "--json",
        "--target", "porosity=0.45", "k_xx=3", "k_yy=3", "k_zz=3",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    assert report["design_space"]["samples"] > 300 and report["design_space"]["permutations"] == 6
    (target,) = report["targets"]
    assert target["inside"] is False and set(target["nearest"]) == {"porosity", *K_TARGETS}
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run_cli("design-space", "--dataset", DEFAULT_DATASET, "--out", out)
    assert code == 2 and "--overwrite" in err
    code, _, err = run_cli("design-space", "--dataset", DEFAULT_DATASET,
                           "--out", tmp_path / "space.pdf")  # fmt: skip
    assert code == 2 and "PNG" in err and not (tmp_path / "space.pdf").exists()


def test_inverse_names_the_nearest_reachable_vector(trained_run, tmp_path):
    from pvae.design.inverse import InverseSettings
    from pvae.design.inverse_report import run_inverse
    from pvae.design.pool import design_pool
    from pvae.physics.lbm import LBMSettings
    from pvae.vae.loading import load_model

    run, data = trained_run
    loaded = load_model(run)
    pool = design_pool(loaded, open_dataset(data))
    labels = pool.store.manifest.iloc[pool.rows]
    # the loosest packing's porosity with the tightest packing's permeability: each value
    # inside the training range, the pair in no sample's neighbourhood
    target = {"porosity": float(labels["porosity"].max()), "k_xx": float(labels["k_xx"].min())}
    settings = InverseSettings(candidates=1, starts=2, steps=5, lbm_budget=1)
    lbm = LBMSettings(max_steps=4000)
    summary = run_inverse(loaded, [("gap", target)], tmp_path / "gap", pool, settings, lbm,
                          formats="npy")  # fmt: skip
    row = summary.iloc[0]
    assert row["status"] == "designed"  # attempted: beyond the catalogue is where design pays
    assert "outside the design space" in row["note"] and "nearest reachable" in row["note"]
    assert row["design_space_distance"] > row["design_space_radius"]
    assert row["nearest_reachable"].split("@")[0] in set(labels["sample_id"])
