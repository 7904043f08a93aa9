"""Importing real-data layouts with property tables; every bad-input case."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pvae.core.errors import PvaeError
from pvae.data.imaging import write_bmp_stack, write_image
from pvae.data.store import open_dataset
from pvae.data.store.importer import import_dataset

REFERENCE = Path(__file__).parents[1] / "data" / "reference" / "foam_properties_200.csv"


@pytest.fixture
def samples(rng):
    """Three 10 x 12 x 14 volumes keyed by the research table's IDs 1, 2, 10."""
    return {cid: rng.random((10, 12, 14)) < 0.7 for cid in ("1", "2", "10")}


@pytest.fixture
def bmp_dir(tmp_path, samples):
    for cid, image in samples.items():
        write_bmp_stack(image, tmp_path / "images" / cid)
    return tmp_path / "images"


@pytest.fixture
def research_csv(tmp_path):
    table = pd.read_csv(REFERENCE, dtype={"case": str})
    path = tmp_path / "props.csv"
    table[table["case"].isin(["1", "2", "10"])].to_csv(path, index=False)
    return path


def test_reference_table_layout():
    table = pd.read_csv(REFERENCE)
    assert len(table) == 798
    assert table["n_F"].between(0.48, 0.82).all()
    k = table[["Permeability_x", "Permeability_y", "Permeability_z"]]
    assert k.min().min() > 0.08 and k.max().max() < 6.4


@pytest.mark.filterwarnings("ignore:.*porosity differs")
def test_import_research_layout_matches_by_id(bmp_dir, research_csv, tmp_path, samples):
    out = import_dataset(bmp_dir, tmp_path / "ds", properties=research_csv, progress=False)
    store = open_dataset(out)
    assert list(store.manifest["sample_id"]) == ["1", "2", "10"]  # numeric order
    table = pd.read_csv(research_csv, dtype={"case": str}).set_index("case")
    for i, cid in enumerate(["1", "2", "10"]):
        assert np.array_equal(store.image(i), samples[cid])
        k = store.permeability(i)
        # pore-averaged research values -> superficial: times the table's n_F
        n = table.loc[cid, "n_F"]
        assert k[0, 0] == pytest.approx(n * table.loc[cid, "Permeability_x"])
        assert k[2, 2] == pytest.approx(n * table.loc[cid, "Permeability_z"])
        assert np.isnan(k[0, 1])  # off-diagonals unknown in this layout
    assert store.labelled().all()
    assert set(store.manifest["label_source"]) == {"csv"}
    assert '"convention": "pore-averaged"' in store.manifest["label_info"].iloc[0]


def test_porosity_mismatch_is_warned(bmp_dir, research_csv, tmp_path):
    # random 0.7-porosity images vs. the table's n_F: off by more than 0.01 for some
    with pytest.warns(UserWarning, match="porosity differs"):
        import_dataset(bmp_dir, tmp_path / "ds", properties=research_csv, progress=False)


def test_import_plain_layout_tiff_and_npy(tmp_path, samples):
    images = tmp_path / "images"
    images.mkdir()
    write_image(samples["1"], images / "a.tif")
    write_image(samples["2"], images / "b.npy")
    (images / "notes.txt").write_text("side files are skipped")
    plain = tmp_path / "plain.csv"
    plain.write_text(
        "sample_id,porosity,k_xx,k_yy,k_zz,k_xy\na,0.7,1.0,2.0,3.0,-0.1\nb,0.7,4,5,6,0\n"
    )
    store = open_dataset(import_dataset(images, tmp_path / "ds", plain, voxel_size_m=2e-6))
    assert np.allclose(np.diag(store.permeability(0)), [1.0, 2.0, 3.0])  # superficial: as is
    assert store.permeability(0)[0, 1] == pytest.approx(-0.1)
    assert store.summary()["voxel_size_m"] == pytest.approx(2e-6)


def test_import_without_properties(bmp_dir, tmp_path):
    store = open_dataset(import_dataset(bmp_dir, tmp_path / "ds"))
    assert len(store) == 3 and not store.labelled().any()


def _fails(match, *args, **kwargs):
    out = Path(args[1])
    with pytest.raises(PvaeError, match=match):
        import_dataset(*args, progress=False, **kwargs)
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*"))


def test_bad_input_ids_without_images(bmp_dir, research_csv, tmp_path):
    table = pd.read_csv(REFERENCE, dtype={"case": str})
    extra = tmp_path / "extra.csv"
    table[table["case"].isin(["1", "2", "10", "11", "12"])].to_csv(extra, index=False)
    _fails(r"extra\.csv: 2 IDs have no images: 11, 12", bmp_dir, tmp_path / "ds", extra)


def test_bad_input_images_without_rows(bmp_dir, tmp_path, samples):
    table = pd.read_csv(REFERENCE, dtype={"case": str})
    short = tmp_path / "short.csv"
    table[table["case"].isin(["1", "2"])].to_csv(short, index=False)
    _fails(r"short\.csv: no rows for 1 image samples: 10", bmp_dir, tmp_path / "ds", short)


@pytest.mark.parametrize(
    ("value", "match"),
    [("nan", r"row 3 \(ID 2\): Permeability_y is nan"), ("-1.5", "Permeability_y is -1.5")],
)
def test_bad_input_nan_or_negative(bmp_dir, research_csv, tmp_path, value, match):
    table = pd.read_csv(research_csv, dtype={"case": str})
    table.loc[table["case"] == "2", "Permeability_y"] = float(value)
    bad = tmp_path / "bad.csv"
    table.to_csv(bad, index=False)
    _fails(match, bmp_dir, tmp_path / "ds", bad)


def test_bad_input_unrecognised_csv(bmp_dir, tmp_path):
    odd = tmp_path / "odd.csv"
    odd.write_text("name,value\n1,2\n")
    _fails(r"odd\.csv: unrecognised property table", bmp_dir, tmp_path / "ds", odd)
    _fails(
        r"missing\.csv: no such property file", bmp_dir, tmp_path / "ds", tmp_path / "missing.csv"
    )


def test_bad_input_inconsistent_sample_shapes(tmp_path, rng):
    images = tmp_path / "images"
    images.mkdir()
    write_image(rng.random((4, 4, 4)) < 0.5, images / "1.npy")
    write_image(rng.random((4, 4, 5)) < 0.5, images / "2.npy")
    _fails(r"2\.npy: shape \(4, 4, 5\) differs", images, tmp_path / "ds")


def test_bad_input_empty_and_foreign_files(tmp_path, rng):
    (tmp_path / "empty").mkdir()
    _fails("empty: no samples found", tmp_path / "empty", tmp_path / "ds")
    (tmp_path / "mixed").mkdir()
    write_image(rng.random((4, 4, 4)) < 0.5, tmp_path / "mixed" / "1.npy")
    (tmp_path / "mixed" / "photo.png").write_bytes(b"png")
    _fails(r"photo\.png: unsupported file", tmp_path / "mixed", tmp_path / "ds")
    (tmp_path / "grey").mkdir()
    np.save(tmp_path / "grey" / "1.npy", rng.integers(0, 255, (4, 4, 4)))
    _fails(r"1\.npy: \d+ distinct grey values", tmp_path / "grey", tmp_path / "ds")


def test_bad_input_existing_output(bmp_dir, tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "notes.txt").write_text("a user's file")
    with pytest.raises(PvaeError, match="exists and is not empty; use --overwrite"):
        import_dataset(bmp_dir, tmp_path / "ds")
    assert [p.name for p in (tmp_path / "ds").iterdir()] == ["notes.txt"]
    assert len(open_dataset(import_dataset(bmp_dir, tmp_path / "ds", overwrite=True))) == 3
    (tmp_path / "empty").mkdir()  # an empty folder is free to use
    assert len(open_dataset(import_dataset(bmp_dir, tmp_path / "empty"))) == 3
