"""The embedded default dataset: present, labelled, and rebuilt bit-identically."""

import json

import pytest

from pvae.core.errors import PvaeError
from pvae.data.datasets import resolve_dataset
from pvae.data.default_data import DEFAULT_DATASET, RECIPE, RECORD, synthesize_default
from pvae.data.store import open_dataset
from tune.dataset_build import build_default


def test_default_dataset_matches_its_record():
    store = open_dataset(DEFAULT_DATASET)
    record = json.loads(RECORD.read_text())
    assert store.fingerprint == record["fingerprint"]
    assert store.labelled().all() and set(store.manifest["label_source"]) == {"lbm"}
    assert len(store) == sum(count for _, count in RECIPE["parts"])
    assert store.shape == (RECIPE["size"],) * 3
    assert record["recipe"]["seed"] == RECIPE["seed"]
    assert record["recipe"]["lbm"] == RECIPE["lbm"]
    assert resolve_dataset(None) == DEFAULT_DATASET
    size = sum(p.stat().st_size for p in DEFAULT_DATASET.iterdir())
    assert size < 5 * 2**20  # a few MB at most


def test_default_images_rebuild_bit_identically(tmp_path):
    rebuilt = open_dataset(synthesize_default(tmp_path / "images", progress=False))
    committed = open_dataset(DEFAULT_DATASET)
    assert rebuilt.metadata["voxels_sha256"] == committed.metadata["voxels_sha256"]


def test_companion_set_has_other_samples_of_the_same_recipe(tmp_path):
    companion = open_dataset(synthesize_default(tmp_path / "s7", progress=False, seed=7))
    committed = open_dataset(DEFAULT_DATASET)
    assert companion.metadata["voxels_sha256"] != committed.metadata["voxels_sha256"]
    assert companion.summary()["families"] == committed.summary()["families"]
    assert companion.manifest["sample_id"].iloc[0].endswith("-s7-00000")
    with pytest.raises(PvaeError, match="give --out"):
        build_default(DEFAULT_DATASET, seed=7)
    small = open_dataset(synthesize_default(tmp_path / "small", False, False, 7, per_family=3))
    assert small.summary()["families"] == {"channels": 3, "spheres": 3, "foam": 3}
    assert set(small.manifest["sample_id"]).isdisjoint(committed.manifest["sample_id"])
    with pytest.raises(PvaeError, match="give --out"):
        build_default(DEFAULT_DATASET, per_family=3)


@pytest.mark.slow
def test_full_rebuild_has_the_recorded_fingerprint(tmp_path):
    record = build_default(tmp_path / "default", progress=False)
    assert record["fingerprint"] == json.loads(RECORD.read_text())["fingerprint"]
