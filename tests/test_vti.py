"""VTK ImageData (.vti) files: axis order, spacing, fields, errors (pvae.data.imaging.vti).

Images are boolean, True = pore, indexed (z, y, x); vector components are (x, y, z).
"""

import numpy as np
import pytest
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkIOXML import vtkXMLImageDataReader

from pvae.core.errors import PvaeError
from pvae.data.imaging import (
    read_image,
    read_vti,
    structure_formats,
    write_image,
    write_structure,
    write_vti,
)
from pvae.data.imaging.vti import read_vti_field_data


def vtk_read(path):
    """The file as VTK itself reads it (not through pvae)."""
    reader = vtkXMLImageDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    return reader.GetOutput()


@pytest.fixture
def image(rng):
    return rng.random((5, 6, 7)) < 0.5  # (z, y, x), non-cubic to catch axis mix-ups


def test_vtk_reads_the_structure_cell_by_cell(tmp_path, image):
    write_vti(image, tmp_path / "a.vti", voxel_size=2.5e-6)
    data = vtk_read(tmp_path / "a.vti")
    assert data.GetDimensions() == (8, 7, 6)  # points (x, y, z): one cell per voxel
    assert data.GetNumberOfCells() == image.size
    assert data.GetSpacing() == pytest.approx((2.5e-6,) * 3)
    assert data.GetOrigin() == (0.0, 0.0, 0.0)
    pore = vtk_to_numpy(data.GetCellData().GetArray("pore"))
    assert pore.dtype == np.uint8 and set(np.unique(pore)) <= {0, 1}
    np.testing.assert_array_equal(pore.reshape(image.shape), image)  # x fastest = C order
    # voxel (z, y, x) is VTK cell (i, j, k) = (x, y, z), spanning [x, x + 1] voxel edges
    z, y, x = (int(v) for v in np.argwhere(image)[-1])
    cell = data.ComputeCellId([x, y, z])
    bounds = [0.0] * 6
    data.GetCellBounds(cell, bounds)
    expected = np.array([x, x + 1, y, y + 1, z, z + 1]) * 2.5e-6
    assert pore[cell] == 1 and np.allclose(bounds, expected, rtol=1e-9)
    write_vti(image, tmp_path / "b.vti")
    assert vtk_read(tmp_path / "b.vti").GetSpacing() == (1.0, 1.0, 1.0)  # lattice units


def test_round_trip_with_fields_and_field_data(tmp_path, image, rng):
    velocity = rng.standard_normal((3, *image.shape)).astype(np.float32)  # (x, y, z)
    speed = np.linalg.norm(velocity, axis=0)
    k = np.arange(9.0).reshape(3, 3)
    write_vti(image, tmp_path / "a.vti", fields={"velocity": velocity, "speed": speed},
              field_data={"porosity": 0.5, "permeability": k, "sample_id": "s-1"})  # fmt: skip
    back, fields = read_vti(tmp_path / "a.vti")
    np.testing.assert_array_equal(back, image)
    np.testing.assert_array_equal(fields["velocity"], velocity)
    np.testing.assert_array_equal(fields["speed"], speed)
    data = vtk_read(tmp_path / "a.vti")
    tuples = vtk_to_numpy(data.GetCellData().GetArray("velocity"))  # (cells, 3)
    np.testing.assert_array_equal(tuples[:, 0].reshape(image.shape), velocity[0])
    labels = read_vti_field_data(tmp_path / "a.vti")
    assert labels["porosity"] == 0.5 and labels["sample_id"] == "s-1"
    np.testing.assert_array_equal(labels["permeability"].reshape(3, 3), k)
    with pytest.raises(PvaeError, match="field 'bad' has shape"):
        write_vti(image, tmp_path / "c.vti", fields={"bad": velocity[:2]})
    assert not (tmp_path / "c.vti").exists()


def test_read_image_and_write_image_know_vti(tmp_path, image):
    write_image(image, tmp_path / "a.vti", voxel_size=1e-6)
    np.testing.assert_array_equal(read_image(tmp_path / "a.vti"), image)
    assert vtk_read(tmp_path / "a.vti").GetSpacing() == pytest.approx((1e-6,) * 3)
    assert [p.name for p in tmp_path.iterdir()] == ["a.vti"]  # no temporary left behind


def test_bad_vti_files_name_the_file(tmp_path, image):
    (tmp_path / "junk.vti").write_text("not xml")
    with pytest.raises(PvaeError, match=r"junk\.vti: not a VTK ImageData"):
        read_image(tmp_path / "junk.vti")
    write_vti(image, tmp_path / "a.vti")
    (tmp_path / "cut.vti").write_bytes((tmp_path / "a.vti").read_bytes()[:650])
    with pytest.raises(PvaeError, match=r"cut\.vti: not a readable \.vti file"):
        read_vti(tmp_path / "cut.vti")
    with pytest.raises(PvaeError, match="no such file"):
        read_vti(tmp_path / "missing.vti")


def test_structure_formats(tmp_path, image):
    assert structure_formats("tif, vti") == ("npy", "tif", "vti")
    assert structure_formats(["vti", "npy"]) == ("npy", "vti")
    with pytest.raises(PvaeError, match="--formats png"):
        structure_formats("npy,png")
    write_structure(image, tmp_path, "s", "bmp,vti")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npy", "s.vti", "s_bmp"]
    for path in ("s.npy", "s.vti", "s_bmp"):
        np.testing.assert_array_equal(read_image(tmp_path / path), image)
