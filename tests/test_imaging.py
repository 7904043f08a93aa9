"""Reading BMP slice folders, multi-page TIFF and .npy; binarisation rules."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from pvae.core.errors import PvaeError
from pvae.data.imaging import (
    Binarization,
    binarize,
    read_grey,
    read_image,
    write_bmp_stack,
    write_image,
)
from pvae.data.imaging.binarize import binarize_at


@pytest.fixture
def volume(rng):
    return rng.random((12, 9, 7)) < 0.6  # (z, y, x), non-cubic to catch axis mix-ups


def _save_slices(image, folder, mode, names=None):
    folder.mkdir()
    for k, page in enumerate(image):
        name = names[k] if names else f"slice_{k + 1}.bmp"
        if mode == "1":
            Image.fromarray(page).convert("1").save(folder / name)
        elif mode == "L":
            Image.fromarray(page.astype(np.uint8) * 255, mode="L").save(folder / name)
        else:
            rgb = np.repeat(page.astype(np.uint8)[..., None] * 255, 3, axis=-1)
            Image.fromarray(rgb, mode="RGB").save(folder / name)


@pytest.mark.parametrize("mode", ["1", "L", "RGB"])
def test_bmp_folder_bit_depths(tmp_path, volume, mode):
    _save_slices(volume, tmp_path / "s", mode)
    assert np.array_equal(read_image(tmp_path / "s"), volume)


def test_bmp_slices_sorted_by_number_not_text(tmp_path, volume):
    # 1, 2, ..., 12: text order would put 10, 11, 12 before 2
    _save_slices(volume, tmp_path / "s", "L", names=[f"img{k + 1}.bmp" for k in range(12)])
    assert np.array_equal(read_image(tmp_path / "s"), volume)


def test_tiff_npy_and_writers_round_trip(tmp_path, volume):
    write_image(volume, tmp_path / "a.tif")
    write_image(volume, tmp_path / "a.npy")
    write_bmp_stack(volume, tmp_path / "bmp")
    for path in (tmp_path / "a.tif", tmp_path / "a.npy", tmp_path / "bmp"):
        assert np.array_equal(read_image(path), volume)
    assert tifffile.imread(tmp_path / "a.tif").shape == volume.shape  # pages along z


def test_rgb_tiff_is_converted(tmp_path, volume):
    rgb = np.repeat(volume.astype(np.uint8)[..., None] * 200, 3, axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    assert np.array_equal(read_image(tmp_path / "rgb.tif"), volume)


def test_binarisation_rules(volume):
    grey = np.where(volume, 40, 180).astype(np.uint8)  # dark pores
    assert np.array_equal(binarize(grey, Binarization(), "x"), ~volume)  # default: brighter
    assert np.array_equal(binarize(grey, Binarization(pore_value=40), "x"), volume)
    assert np.array_equal(binarize(grey, Binarization(invert=True), "x"), volume)
    noisy = grey.astype(float) + np.linspace(0, 10, grey.size).reshape(grey.shape)
    with pytest.raises(PvaeError, match="distinct grey values.*--threshold"):
        binarize(noisy, Binarization(), "noisy.tif")
    assert np.array_equal(binarize(noisy, Binarization(threshold=110, invert=True), "x"), volume)
    with pytest.raises(PvaeError, match="does not occur"):
        binarize(grey, Binarization(pore_value=255), "x")
    with pytest.raises(PvaeError, match="either"):
        Binarization(pore_value=1, threshold=1)
    assert binarize(np.zeros((2, 2, 2)), Binarization(), "x").sum() == 0
    assert binarize(np.ones((2, 2, 2)), Binarization(), "x").all()


def test_bad_images(tmp_path, volume):
    _save_slices(volume, tmp_path / "s", "L")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "s" / "slice_5.bmp")
    with pytest.raises(PvaeError, match=r"slice_5\.bmp: slice is 8x9 pixels, expected 7x9"):
        read_image(tmp_path / "s")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PvaeError, match="empty: no .bmp slices"):
        read_image(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "1.bmp").write_bytes(b"this is not a bitmap")
    with pytest.raises(PvaeError, match=r"1\.bmp: not a readable image"):
        read_image(tmp_path / "bad")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(PvaeError, match=r"bad\.tif: not a readable TIFF"):
        read_grey(tmp_path / "bad.tif")
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    with pytest.raises(PvaeError, match=r"bad\.npy: not a readable \.npy"):
        read_grey(tmp_path / "bad.npy")
    np.save(tmp_path / "flat.npy", np.zeros((4, 4)))
    with pytest.raises(PvaeError, match="expected a 3D volume"):
        read_grey(tmp_path / "flat.npy")
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(PvaeError, match="unsupported image type"):
        read_grey(tmp_path / "x.png")
    with pytest.raises(PvaeError, match="no such file"):
        read_grey(tmp_path / "missing.npy")


def test_binarize_at_hits_the_pore_count_exactly(rng):
    values = rng.normal(size=(9, 10, 11))
    values[0, 0, :4] = 0.0  # ties
    for porosity in (0.0, 0.013, 0.5, 0.731, 1.0):
        image = binarize_at(values, porosity)
        assert image.dtype == bool and image.shape == values.shape
        assert image.sum() == round(porosity * values.size)
    image = binarize_at(values, 0.3)
    assert values[image].min() >= values[~image].max()  # the largest values are pore
