"""Dataset directory: manifest schema, random access, fingerprints, atomicity."""

import pickle

import numpy as np
import pandas as pd
import pytest

from pvae.core.atomic import atomic_directory, read_parquet_metadata
from pvae.core.errors import PvaeError
from pvae.data.store import open_dataset, rewrite_manifest, write_dataset
from pvae.data.store.layout import pack, unpack
from pvae.data.store.manifest import COLUMNS, K_COLUMNS


def test_pack_round_trip_odd_sizes(rng):
    image = rng.random((3, 5, 7)) < 0.5  # 105 voxels: not a multiple of 8
    assert np.array_equal(unpack(pack(image), image.shape), image)


def test_manifest_schema_and_random_access(spheres_dataset):
    store = open_dataset(spheres_dataset)
    assert list(store.manifest.columns) == list(COLUMNS)
    assert store.shape == (16, 24, 32) and len(store) == 20
    assert isinstance(store._voxels, np.memmap)  # read by index, never loaded whole
    for i in (0, 7, 19):
        image = store.image(i)
        assert image.dtype == np.bool_ and image.shape == (16, 24, 32)
        assert store.manifest["porosity"].iloc[i] == pytest.approx(image.mean(), abs=0)
    batch = store.images([19, 3])
    assert np.array_equal(batch[0], store.image(19)) and np.array_equal(batch[1], store.image(3))
    assert store.index_of("spheres-s7-00004") == 4
    with pytest.raises(PvaeError, match="unknown sample ID"):
        store.index_of("nope")
    assert not store.labelled().any()
    meta = read_parquet_metadata(spheres_dataset / "manifest.parquet")
    assert meta["seed"] == 7 and meta["count"] == 20
    assert meta["families"][0]["family"] == "spheres" and meta["families"][0]["count"] == 20


def test_summary_keys(spheres_dataset):
    summary = open_dataset(spheres_dataset).summary()
    assert {"count", "shape", "porosity", "labelled", "fingerprint"} <= set(summary)
    assert set(summary["porosity"]) == {"min", "mean", "max"}
    assert summary["porosity"]["min"] <= summary["porosity"]["mean"] <= summary["porosity"]["max"]
    assert summary["shape"] == [16, 24, 32] and summary["labelled"] == 0


def test_store_pickles_without_copying_voxels(spheres_dataset):
    store = open_dataset(spheres_dataset)
    blob = pickle.dumps(store)
    assert len(blob) < (spheres_dataset / "voxels.npy").stat().st_size
    assert np.array_equal(pickle.loads(blob).image(5), store.image(5))


def test_relabelling_changes_fingerprint_atomically(spheres_dataset, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(spheres_dataset, copy)
    store = open_dataset(copy)
    frame = store.manifest.copy()
    frame.loc[3, list(K_COLUMNS)] = np.eye(3).ravel() * 2.5
    frame.loc[3, "label_source"] = "lbm"
    new = rewrite_manifest(copy, frame)
    relabelled = open_dataset(copy)
    assert new == relabelled.fingerprint != store.fingerprint
    assert relabelled.labelled().sum() == 1
    assert np.allclose(relabelled.permeability(3), np.eye(3) * 2.5)
    assert relabelled.summary()["label_sources"] == {"lbm": 1}
    assert not list(copy.glob(".*tmp*"))


def test_failed_write_leaves_nothing(tmp_path, rng):
    out = tmp_path / "new" / "deeper" / "ds"
    with pytest.raises(RuntimeError), write_dataset(out, 3, (4, 4, 4), {}) as writer:
        writer.put(0, rng.random((4, 4, 4)) < 0.5, "a", source="s", family="f", params={})
        raise RuntimeError("crash mid-way")
    assert not (tmp_path / "new").exists()
    assert list(tmp_path.iterdir()) == []


def test_incomplete_dataset_is_refused(tmp_path, rng):
    with (
        pytest.raises(RuntimeError, match="incomplete"),
        write_dataset(tmp_path / "d", 2, (4, 4, 4), {}) as w,
    ):
        w.put(0, rng.random((4, 4, 4)) < 0.5, "a", source="s", family="f", params={})
    assert not (tmp_path / "d").exists()


def test_existing_output_needs_overwrite(tmp_path, rng):
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(PvaeError, match="exists and is not empty; use --overwrite"):
        with atomic_directory(out):
            pass
    assert (out / "keep.txt").read_text() == "mine"
    with write_dataset(out, 1, (4, 4, 4), {}, overwrite=True) as w:
        w.put(0, rng.random((4, 4, 4)) < 0.5, "a", source="s", family="f", params={})
    assert not (out / "keep.txt").exists() and len(open_dataset(out)) == 1


def test_not_a_dataset(tmp_path):
    with pytest.raises(PvaeError, match="no such dataset"):
        open_dataset(tmp_path / "missing")
    with pytest.raises(PvaeError, match="not a pvae dataset"):
        open_dataset(tmp_path)
    (tmp_path / "manifest.parquet").write_bytes(b"junk")
    (tmp_path / "voxels.npy").write_bytes(b"junk")
    with pytest.raises(PvaeError, match="unreadable dataset"):
        open_dataset(tmp_path)


def test_manifest_is_real_parquet(spheres_dataset):
    frame = pd.read_parquet(spheres_dataset / "manifest.parquet", engine="pyarrow")
    assert frame["nz"].dtype == "int32" and frame["k_xy"].isna().all()
